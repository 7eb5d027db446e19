//! How Flotilla stands with each cluster in one poll (scalable, conflicting with a member HPA,
//! target missing, unreachable, failed), and what follows from it for the status: the
//! `MemberConflict` condition and the per-cluster entries. Pure.
use std::collections::{BTreeMap, BTreeSet};

use kube::core::ApiResource;

use flotilla_api::scaling_policy::{ClusterReplicaStatus, ScalingPolicyStatus};

use super::member::{ScaleError, ScaleView};
use super::spec::Target;
use super::state::PolicyState;
use super::status::Cond;
use crate::members::registry::Member;

/// How Flotilla stands with one cluster in this reconcile.
#[derive(Debug, Clone)]
pub(super) enum Standing {
    /// Flotilla scales the target here.
    Writable {
        ar: ApiResource,
        scale: ScaleView,
        hpas: Vec<String>,
    },
    /// A member HPA targets the workload and the policy respects it.
    Conflict {
        scale: ScaleView,
        hpas: Vec<String>,
    },
    TargetMissing(String),
    Unreachable,
    Failed(String),
}

/// The standing of each considered cluster that is still a member.
pub(super) fn standings(
    consider: &BTreeSet<String>,
    members: &[Member],
    ps: &PolicyState,
    takeover: bool,
) -> BTreeMap<String, Standing> {
    consider
        .iter()
        .filter_map(|cluster| {
            let member = members.iter().find(|m| &m.name == cluster)?;
            Some((cluster.clone(), standing(member, ps, takeover)))
        })
        .collect()
}

fn standing(member: &Member, ps: &PolicyState, takeover: bool) -> Standing {
    if member.ready_client().is_none() {
        return Standing::Unreachable;
    }
    let Some(o) = ps.observed.get(&member.name) else {
        return Standing::Unreachable;
    };
    let ar = ps.resolved.get(&member.name).cloned();
    match (&o.scale, &o.hpas, ar) {
        (Err(ScaleError::Missing(m)), _, _) => Standing::TargetMissing(m.clone()),
        (Err(ScaleError::Failed(m)), _, _) => Standing::Failed(m.clone()),
        (Ok(_), Err(m), _) if !takeover => Standing::Failed(format!(
            "cannot tell whether a member HorizontalPodAutoscaler manages the workload: {m}"
        )),
        (Ok(scale), Ok(hpas), _) if !hpas.is_empty() && !takeover => Standing::Conflict {
            scale: scale.clone(),
            hpas: hpas.clone(),
        },
        (Ok(scale), hpas, Some(ar)) => Standing::Writable {
            ar,
            scale: scale.clone(),
            hpas: hpas.clone().unwrap_or_default(),
        },
        (Ok(_), _, None) => Standing::Failed("the target's resource is not resolved".to_string()),
    }
}

/// The selected clusters Flotilla scales, with their current scale: the ones the total is
/// decided from and divided across.
pub(super) fn writable_selected<'a>(
    standings: &'a BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
) -> Vec<(&'a str, &'a ScaleView)> {
    standings
        .iter()
        .filter(|(c, _)| selected.contains(c.as_str()))
        .filter_map(|(c, s)| match s {
            Standing::Writable { scale, .. } => Some((c.as_str(), scale)),
            _ => None,
        })
        .collect()
}

/// The clusters Flotilla cannot or must not scale in this poll (they get no share).
pub(super) fn unscalable(standings: &BTreeMap<String, Standing>) -> impl Iterator<Item = &str> {
    standings
        .iter()
        .filter(|(_, s)| !matches!(s, Standing::Writable { .. }))
        .map(|(c, _)| c.as_str())
}

/// The selected clusters where member HPAs target the workload, with those HPAs: respected
/// (`Conflict`) or taken over (`Writable` with HPAs).
pub(super) fn member_hpas<'a>(
    standings: &'a BTreeMap<String, Standing>,
    selected: &'a BTreeSet<&'a str>,
) -> impl Iterator<Item = (&'a str, &'a [String])> {
    standings
        .iter()
        .filter(|(c, _)| selected.contains(c.as_str()))
        .filter_map(|(c, s)| match s {
            Standing::Conflict { hpas, .. } => Some((c.as_str(), hpas.as_slice())),
            Standing::Writable { hpas, .. } if !hpas.is_empty() => {
                Some((c.as_str(), hpas.as_slice()))
            }
            _ => None,
        })
}

/// Why a cluster cannot be scaled, in words (for `AbleToScale`).
pub(super) fn describe(s: &Standing) -> String {
    match s {
        Standing::Writable { .. } => "scalable".into(),
        Standing::Conflict { hpas, .. } => format!(
            "member HorizontalPodAutoscaler {} manages it",
            hpas.join(", ")
        ),
        Standing::TargetMissing(m) | Standing::Failed(m) => m.clone(),
        Standing::Unreachable => "member is not Ready".into(),
    }
}

/// The `MemberConflict` condition.
pub(super) fn conflict_condition(
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    target: &Target,
    takeover: bool,
) -> Cond {
    let conflicts: Vec<String> = member_hpas(standings, selected)
        .map(|(c, hpas)| format!("{c}: {}", hpas.join(", ")))
        .collect();
    if conflicts.is_empty() {
        Cond::new(
            false,
            "NoConflict",
            format!("no member HorizontalPodAutoscaler targets {target}"),
        )
    } else if takeover {
        Cond::new(
            true,
            "MemberAutoscalerTakenOver",
            format!(
                "member HorizontalPodAutoscalers target {target} ({}); Flotilla writes the replicas anyway (memberAutoscalerConflict: TakeOver), remove them",
                conflicts.join("; ")
            ),
        )
    } else {
        Cond::new(
            true,
            "MemberAutoscalerConflict",
            format!(
                "member HorizontalPodAutoscalers target {target} ({}); Flotilla leaves those clusters' replicas alone and gives them no share (memberAutoscalerConflict: Respect)",
                conflicts.join("; ")
            ),
        )
    }
}

const UNREACHABLE_SELECTED: &str =
    "member is not Ready; its replicas are left as they are until it is back";
const UNREACHABLE_UNSELECTED: &str = "member is not Ready; its share moved to the other clusters, and its replicas go to 0 when it is back unless it is selected again";

/// The `status.clusters` entries: one per considered cluster, except those Flotilla no longer
/// places the workload on and has scaled to 0. `failed` holds this poll's write failures.
pub(super) fn cluster_statuses(
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    shares: &BTreeMap<&str, i32>,
    failed: &BTreeMap<String, String>,
    ps: &PolicyState,
    previous: Option<&ScalingPolicyStatus>,
) -> Vec<ClusterReplicaStatus> {
    let previous_current = |c: &str| {
        previous
            .and_then(|p| p.clusters.iter().find(|e| e.cluster == c))
            .and_then(|e| e.current_replicas)
    };
    let observed = |c: &str| {
        ps.observed
            .get(c)
            .and_then(|o| o.scale.as_ref().ok())
            .map(|s| s.replicas)
    };
    standings
        .iter()
        .filter_map(|(cluster, standing)| {
            let is_selected = selected.contains(cluster.as_str());
            // A failed write is reported whatever the cluster's standing was before it.
            let (state, current, message) = match (failed.get(cluster), standing) {
                (Some(m), _) | (None, Standing::Failed(m)) => (
                    "Failed",
                    observed(cluster).or(previous_current(cluster)),
                    Some(m.clone()),
                ),
                // Scaled to 0 (or already there): no longer Flotilla's to report.
                (None, Standing::Writable { .. }) if !is_selected => return None,
                (None, Standing::Writable { .. }) => ("Scaled", observed(cluster), None),
                (None, Standing::Conflict { scale, hpas }) => (
                    "Conflict",
                    Some(scale.replicas),
                    Some(format!(
                        "member HorizontalPodAutoscaler {} manages this workload; Flotilla leaves its replicas alone",
                        hpas.join(", ")
                    )),
                ),
                (None, Standing::TargetMissing(m)) => ("TargetMissing", None, Some(m.clone())),
                (None, Standing::Unreachable) => (
                    "Unreachable",
                    previous_current(cluster),
                    Some(
                        if is_selected {
                            UNREACHABLE_SELECTED
                        } else {
                            UNREACHABLE_UNSELECTED
                        }
                        .to_string(),
                    ),
                ),
            };
            Some(ClusterReplicaStatus {
                cluster: cluster.clone(),
                desired_replicas: if is_selected {
                    shares.get(cluster.as_str()).copied().unwrap_or(0)
                } else {
                    0
                },
                current_replicas: current,
                state: state.to_string(),
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::scaling::spec::test_target as target;
    use std::time::Instant;

    use super::*;
    use crate::scaling::state::Observation;

    fn view(replicas: i32) -> ScaleView {
        ScaleView {
            replicas,
            ..ScaleView::default()
        }
    }

    fn writable(replicas: i32, hpas: &[&str]) -> Standing {
        Standing::Writable {
            ar: ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
            scale: view(replicas),
            hpas: hpas.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn conflicts_are_reported_per_policy() {
        let standings = BTreeMap::from([
            ("member1".to_string(), writable(3, &[])),
            (
                "member2".to_string(),
                Standing::Conflict {
                    scale: view(7),
                    hpas: vec!["ns/web".into()],
                },
            ),
        ]);
        let selected = BTreeSet::from(["member1", "member2"]);
        let c = conflict_condition(&standings, &selected, &target(), false);
        assert!(c.status);
        assert_eq!(c.reason, "MemberAutoscalerConflict");
        assert!(c.message.contains("member2: ns/web"), "{}", c.message);

        let taken = BTreeMap::from([("member2".to_string(), writable(7, &["ns/web"]))]);
        let c = conflict_condition(&taken, &selected, &target(), true);
        assert_eq!(c.reason, "MemberAutoscalerTakenOver");

        let none = BTreeMap::from([("member1".to_string(), writable(3, &[]))]);
        assert!(!conflict_condition(&none, &selected, &target(), false).status);
    }

    #[test]
    fn cluster_entries_explain_each_state() {
        let standings = BTreeMap::from([
            ("a".to_string(), writable(3, &[])),
            (
                "b".to_string(),
                Standing::Conflict {
                    scale: view(7),
                    hpas: vec!["ns/web".into()],
                },
            ),
            (
                "c".to_string(),
                Standing::TargetMissing("Deployment ns/web does not exist".into()),
            ),
            ("d".to_string(), Standing::Unreachable),
            ("e".to_string(), writable(0, &[])),
        ]);
        let selected = BTreeSet::from(["a", "b", "c"]);
        let shares = BTreeMap::from([("a", 5), ("b", 0), ("c", 0)]);
        let mut ps = PolicyState::default();
        ps.observed.insert(
            "a".into(),
            Observation {
                at: Instant::now(),
                client_generation: 0,
                health_since: jiff::Timestamp::UNIX_EPOCH,
                scale: Ok(view(5)),
                hpas: Ok(vec![]),
            },
        );
        let entries = cluster_statuses(&standings, &selected, &shares, &BTreeMap::new(), &ps, None);
        let states: Vec<(&str, &str, i32)> = entries
            .iter()
            .map(|e| (e.cluster.as_str(), e.state.as_str(), e.desired_replicas))
            .collect();
        assert_eq!(
            states,
            vec![
                ("a", "Scaled", 5),
                ("b", "Conflict", 0),
                ("c", "TargetMissing", 0),
                ("d", "Unreachable", 0)
            ]
        );
        assert_eq!(entries[0].current_replicas, Some(5));
        assert_eq!(entries[1].current_replicas, Some(7));
        let failed = BTreeMap::from([("a".to_string(), "forbidden".to_string())]);
        let entries = cluster_statuses(&standings, &selected, &shares, &failed, &ps, None);
        assert_eq!(entries[0].state, "Failed");
    }
}
