//! The per-cluster half of a decision: is the cluster a candidate, does it carry every spread
//! label, is it kept off by a taint, is it ready, and what is its failover rank. None of this
//! depends on other clusters, so it runs once per cluster in a single pass.
use std::borrow::Cow;

use crate::cluster::ClusterInfo;
use crate::decision::{Reason, Verdict};
use crate::fasthash::FastSet;
use crate::namespace::ObjectNamespace;
use crate::selector::{LabelSelector, label};
use crate::spec::PlacementSpec;
use crate::taint::{Taint, TaintEffect, first_untolerated};

/// The spec prepared for fast per-cluster checks (name lists become hash sets).
pub(crate) struct Compiled<'a> {
    spec: &'a PlacementSpec,
    listed: Option<FastSet<&'a str>>,
    groups: Vec<Group<'a>>,
}

struct Group<'a> {
    names: FastSet<&'a str>,
    selector: Option<&'a LabelSelector>,
}

/// Where one cluster stands after the per-cluster checks.
pub(crate) enum Standing<'a> {
    /// Out of the running, with the final verdict.
    Out {
        verdict: Verdict,
        reason: Reason,
        message: Cow<'static, str>,
    },
    /// May be selected. `kept_despite` is an untolerated NoSchedule taint that is overlooked only
    /// because the cluster already holds the object.
    Eligible { kept_despite: Option<&'a Taint> },
}

/// The result of the per-cluster checks.
pub(crate) struct Classified<'a> {
    /// Whether the cluster passed the cluster list and selector.
    pub candidate: bool,
    /// Failover rank (0 is highest; clusters in no group rank after every group).
    pub rank: u32,
    pub standing: Standing<'a>,
}

impl<'a> Compiled<'a> {
    pub(crate) fn new(spec: &'a PlacementSpec) -> Self {
        let listed =
            (!spec.clusters.is_empty()).then(|| spec.clusters.iter().map(String::as_str).collect());
        let groups = spec
            .failover_priority
            .iter()
            .map(|g| Group {
                names: g.clusters.iter().map(String::as_str).collect(),
                selector: g.cluster_selector.as_ref(),
            })
            .collect();
        Self {
            spec,
            listed,
            groups,
        }
    }

    /// Whether `failoverPriority` is in use (ranks are then reported).
    pub(crate) fn uses_priority(&self) -> bool {
        !self.groups.is_empty()
    }

    fn rank(&self, cluster: &ClusterInfo) -> u32 {
        let position = self.groups.iter().position(|g| {
            g.names.contains(&*cluster.name)
                || g.selector.is_some_and(|s| s.matches(&cluster.labels))
        });
        let rank = position.unwrap_or(self.groups.len());
        u32::try_from(rank).unwrap_or(u32::MAX)
    }

    /// Runs the checks in a fixed order: cluster list, selector, spread labels, taints, health.
    /// The first that fails gives the verdict, so a cluster excluded by the spec is reported as
    /// filtered even if it is also unhealthy.
    pub(crate) fn classify(
        &self,
        cluster: &'a ClusterInfo,
        namespace: Option<&ObjectNamespace<'_>>,
        previously_selected: bool,
    ) -> Classified<'a> {
        if let Some(ns) = namespace
            && !cluster.namespaces.admits(ns)
        {
            return Classified {
                candidate: false,
                rank: 0,
                standing: out(
                    Verdict::Filtered,
                    Reason::NamespaceNotAllowed,
                    format!(
                        "the member admits no objects of host namespace {} (MemberCluster spec.namespaces)",
                        ns.name
                    ),
                ),
            };
        }
        if self
            .listed
            .as_ref()
            .is_some_and(|l| !l.contains(&*cluster.name))
        {
            return Classified {
                candidate: false,
                rank: 0,
                standing: out(
                    Verdict::Filtered,
                    Reason::NotInClusterList,
                    "not listed in placement.clusters",
                ),
            };
        }
        if self
            .spec
            .cluster_selector
            .as_ref()
            .is_some_and(|s| !s.matches(&cluster.labels))
        {
            return Classified {
                candidate: false,
                rank: 0,
                standing: out(
                    Verdict::Filtered,
                    Reason::SelectorMismatch,
                    "labels do not match placement.clusterSelector",
                ),
            };
        }
        let rank = self.rank(cluster);
        let classified = |standing| Classified {
            candidate: true,
            rank,
            standing,
        };
        if let Some(spread) = self
            .spec
            .constraints
            .spread
            .iter()
            .find(|s| label(&cluster.labels, &s.topology_key).is_none())
        {
            return classified(out(
                Verdict::Filtered,
                Reason::MissingTopologyLabel,
                format!(
                    "has no label {}, which a spread constraint groups by",
                    spread.topology_key
                ),
            ));
        }
        let tolerations = &self.spec.constraints.tolerations;
        if let Some(taint) = first_untolerated(&cluster.taints, tolerations, TaintEffect::NoExecute)
        {
            // The same text whether or not the object was there before: the move itself is an
            // event, and the verdict must read the same at the next reconcile.
            let message = format!("taint {taint} is not tolerated");
            return classified(out(Verdict::Tainted, Reason::TaintNotTolerated, message));
        }
        let no_schedule = first_untolerated(&cluster.taints, tolerations, TaintEffect::NoSchedule);
        if let Some(taint) = no_schedule
            && !previously_selected
        {
            return classified(out(
                Verdict::Tainted,
                Reason::TaintNotTolerated,
                format!("taint {taint} is not tolerated; no new placements"),
            ));
        }
        if !cluster.health.ready {
            // An instant, not an age ("for 3m20s"): the text stays the same from one reconcile to
            // the next, so an outage does not rewrite the status of every object that could be
            // placed on the cluster at each of their reconciles.
            let message = format!("not ready since {}", cluster.health.since);
            return classified(out(Verdict::Unhealthy, Reason::ClusterNotReady, message));
        }
        classified(Standing::Eligible {
            kept_despite: no_schedule,
        })
    }
}

/// A final verdict from the per-cluster checks. Fixed texts stay borrowed: at thousands of
/// clusters, one allocation per verdict shows.
fn out<'a>(
    verdict: Verdict,
    reason: Reason,
    message: impl Into<Cow<'static, str>>,
) -> Standing<'a> {
    Standing::Out {
        verdict,
        reason,
        message: message.into(),
    }
}
