//! The status of a propagated object, built from what a reconcile found. Pure: no I/O, time is an input.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::propagation::{CopyState, MemberCopyStatus, PropagationStatus};

use crate::conditions::{NewCondition, set_condition};

/// What happened in one cluster during a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterResult {
    Applied,
    Conflict(String),
    Failed(String),
    /// An override does not apply to the template; nothing was sent to this cluster.
    InvalidOverride(String),
    /// The template cannot be a copy in this cluster (its kind's scope is not the host
    /// object's); nothing was sent.
    InvalidTemplate(String),
    /// Holds (or may hold) a copy but is not Ready: the copy stays until it is back.
    Unreachable {
        still_placed: bool,
    },
    /// No longer placed here and removing the copy failed; retried.
    PruneFailed(String),
    /// The member does not serve the copy's kind yet; applied once it does.
    WaitingForKind(String),
    /// The member's credentials may not write the copy's kind.
    Forbidden(String),
}

/// One cluster's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub cluster: String,
    pub result: ClusterResult,
}

/// The condition types this controller writes; others (Drifted) belong to the status syncer.
pub const OWN_CONDITIONS: [&str; 2] = ["Ready", "Degraded"];

/// The part of a status this controller writes: without drift and load-balancer details and
/// the syncer's conditions, which the status syncer writes under its own field managers.
pub fn controller_part(status: &PropagationStatus) -> PropagationStatus {
    PropagationStatus {
        observed_generation: status.observed_generation,
        conditions: status
            .conditions
            .iter()
            .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect(),
        placement: status.placement.clone(),
        clusters: status
            .clusters
            .iter()
            .map(|c| MemberCopyStatus {
                drift: None,
                load_balancer: vec![],
                health: None,
                ..c.clone()
            })
            .collect(),
    }
}

/// Builds the controller's part of the new status (see [`controller_part`]). Entries keep their
/// transition time while their state does not change.
pub fn build(
    previous: Option<&PropagationStatus>,
    generation: Option<i64>,
    placement: PlacementStatus,
    results: &[Observed],
    now: Time,
) -> PropagationStatus {
    let previous = previous.map(controller_part);
    let previous = previous.as_ref();
    let previous_entry =
        |c: &str| previous.and_then(|p| p.clusters.iter().find(|e| e.cluster == c));
    let mut clusters: Vec<MemberCopyStatus> = results
        .iter()
        .map(|o| {
            let before = previous_entry(&o.cluster);
            let (state, message, applied) = match &o.result {
                ClusterResult::Applied => (CopyState::Applied, None, generation),
                ClusterResult::Conflict(m) => (CopyState::Conflict, Some(m.clone()), None),
                ClusterResult::Failed(m)
                | ClusterResult::InvalidOverride(m)
                | ClusterResult::InvalidTemplate(m) => {
                    (CopyState::Failed, Some(m.clone()), before.and_then(|b| b.applied_generation))
                }
                ClusterResult::Unreachable { still_placed } => (
                    CopyState::Unreachable,
                    Some(if *still_placed {
                        "member is not Ready; its copy is kept until it is back".to_string()
                    } else {
                        "member is not Ready; its copy is no longer placed here and will be removed when the member is back".to_string()
                    }),
                    before.and_then(|b| b.applied_generation),
                ),
                ClusterResult::WaitingForKind(m) => (CopyState::WaitingForKind, Some(m.clone()), None),
                ClusterResult::Forbidden(m) => (
                    CopyState::Forbidden,
                    Some(m.clone()),
                    before.and_then(|b| b.applied_generation),
                ),
                ClusterResult::PruneFailed(m) => (
                    CopyState::Pruning,
                    Some(format!("removing the copy failed: {m}")),
                    before.and_then(|b| b.applied_generation),
                ),
            };
            let last_transition_time = match before {
                Some(b) if b.state == state => b.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
            MemberCopyStatus {
                cluster: o.cluster.clone(),
                state,
                applied_generation: applied,
                message,
                last_transition_time,
                load_balancer: vec![],
                drift: None,
                health: None,
            }
        })
        .collect();
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));

    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let (ready, reason, message) = ready_condition(&placement, results);
    set_condition(
        &mut conditions,
        NewCondition {
            type_: "Ready",
            status: ready,
            reason,
            message,
            observed_generation: generation,
        },
        now.clone(),
    );
    let (degraded, reason, message) = degraded_condition(&placement, results);
    set_condition(
        &mut conditions,
        NewCondition {
            type_: "Degraded",
            status: degraded,
            reason,
            message,
            observed_generation: generation,
        },
        now,
    );
    PropagationStatus {
        observed_generation: generation,
        conditions,
        placement: Some(placement),
        clusters,
    }
}

fn ready_condition(
    placement: &PlacementStatus,
    results: &[Observed],
) -> (bool, &'static str, String) {
    if placement.selected.is_empty() {
        let why: Vec<String> = placement
            .clusters
            .iter()
            .map(|c| format!("{}: {}", c.cluster, c.reason))
            .collect();
        let detail = if why.is_empty() {
            "there are no member clusters".to_string()
        } else {
            why.join(", ")
        };
        return (
            false,
            "NoClusterSelected",
            format!("no cluster is eligible ({detail})"),
        );
    }
    let of = |c: &str| results.iter().find(|o| o.cluster == c).map(|o| &o.result);
    let mut problems = Vec::new();
    let mut reason = "Propagated";
    for cluster in &placement.selected {
        match of(cluster) {
            Some(ClusterResult::Applied) => {}
            Some(ClusterResult::Conflict(m)) => {
                reason = "Conflict";
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::InvalidOverride(m)) => {
                if reason != "Conflict" {
                    reason = "InvalidOverride";
                }
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::InvalidTemplate(m)) => {
                if reason != "Conflict" {
                    reason = "InvalidTemplate";
                }
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::WaitingForKind(m)) => {
                if reason == "Propagated" {
                    reason = "WaitingForKind";
                }
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::Forbidden(m)) => {
                if matches!(reason, "Propagated" | "WaitingForKind") {
                    reason = "Forbidden";
                }
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::Failed(m) | ClusterResult::PruneFailed(m)) => {
                if reason == "Propagated" {
                    reason = "PropagationFailed";
                }
                problems.push(format!("{cluster}: {m}"));
            }
            Some(ClusterResult::Unreachable { .. }) => {
                if reason == "Propagated" {
                    reason = "PropagationFailed";
                }
                problems.push(format!("{cluster}: the member is not Ready"));
            }
            None => {
                if reason == "Propagated" {
                    reason = "PropagationFailed";
                }
                problems.push(format!("{cluster}: not applied"));
            }
        }
    }
    if problems.is_empty() {
        (
            true,
            reason,
            format!("applied to {}", placement.selected.join(", ")),
        )
    } else {
        (false, reason, problems.join("; "))
    }
}

fn degraded_condition(
    placement: &PlacementStatus,
    results: &[Observed],
) -> (bool, &'static str, String) {
    if !placement.unsatisfied.is_empty() {
        return (
            true,
            "ConstraintsUnsatisfied",
            placement.unsatisfied.join("; "),
        );
    }
    let awaiting: Vec<&str> = results
        .iter()
        .filter(|o| {
            matches!(
                o.result,
                ClusterResult::Unreachable {
                    still_placed: false
                } | ClusterResult::PruneFailed(_)
            )
        })
        .map(|o| o.cluster.as_str())
        .collect();
    if !awaiting.is_empty() {
        return (
            true,
            "CopiesAwaitingCleanup",
            format!(
                "copies no longer placed remain in {} until removed",
                awaiting.join(", ")
            ),
        );
    }
    let failed = results
        .iter()
        .filter(|o| placement.selected.contains(&o.cluster))
        .filter(|o| !matches!(o.result, ClusterResult::Applied))
        .count();
    if failed > 0 {
        let reason = if failed < placement.selected.len() {
            "PartiallyPropagated"
        } else {
            "PropagationFailed"
        };
        return (
            true,
            reason,
            format!(
                "{failed} of {} selected clusters have no current copy",
                placement.selected.len()
            ),
        );
    }
    (
        false,
        "AsExpected",
        "every selected cluster has a current copy".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::find;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).expect("time"))
    }

    fn placed(selected: &[&str]) -> PlacementStatus {
        PlacementStatus {
            selected: selected.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn applied(c: &str) -> Observed {
        Observed {
            cluster: c.into(),
            result: ClusterResult::Applied,
        }
    }

    #[test]
    fn all_applied_is_ready_and_not_degraded() {
        let s = build(
            None,
            Some(3),
            placed(&["a", "b"]),
            &[applied("a"), applied("b")],
            at(1),
        );
        assert_eq!(
            find(&s.conditions, "Ready").map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&s.conditions, "Degraded").map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(s.clusters[0].applied_generation, Some(3));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn a_conflict_is_named_in_ready_and_degrades() {
        let results = [
            applied("a"),
            Observed {
                cluster: "b".into(),
                result: ClusterResult::Conflict("foreign".into()),
            },
        ];
        let s = build(None, Some(1), placed(&["a", "b"]), &results, at(1));
        let ready = find(&s.conditions, "Ready").expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Conflict")
        );
        assert!(ready.message.contains("b: foreign"));
        assert_eq!(
            find(&s.conditions, "Degraded").map(|c| c.reason.as_str()),
            Some("PartiallyPropagated")
        );
        assert_eq!(s.clusters[1].state, CopyState::Conflict);
    }

    #[test]
    fn every_selected_cluster_failing_degrades() {
        let results = [Observed {
            cluster: "a".into(),
            result: ClusterResult::Failed("refused".into()),
        }];
        let s = build(None, Some(1), placed(&["a"]), &results, at(1));
        assert_eq!(
            find(&s.conditions, "Degraded").map(|c| (c.status.as_str(), c.reason.as_str())),
            Some(("True", "PropagationFailed"))
        );
        assert_eq!(
            find(&s.conditions, "Ready").map(|c| c.message.as_str()),
            Some("a: refused")
        );
    }

    #[test]
    fn nothing_selected_explains_why() {
        let mut p = placed(&[]);
        p.clusters
            .push(flotilla_api::placement_status::ClusterVerdict {
                cluster: "a".into(),
                verdict: flotilla_api::placement_status::Verdict::Unhealthy,
                reason: "ClusterNotReady".into(),
                message: String::new(),
                priority: None,
                replicas: None,
                selected_since: None,
            });
        let s = build(None, Some(1), p, &[], at(1));
        let ready = find(&s.conditions, "Ready").expect("ready");
        assert_eq!(ready.reason, "NoClusterSelected");
        assert!(ready.message.contains("a: ClusterNotReady"));
    }

    #[test]
    fn unchanged_state_keeps_its_transition_time() {
        let first = build(None, Some(1), placed(&["a"]), &[applied("a")], at(1));
        let second = build(
            Some(&first),
            Some(1),
            placed(&["a"]),
            &[applied("a")],
            at(50),
        );
        assert_eq!(second.clusters[0].last_transition_time, Some(at(1)));
        assert_eq!(
            second, first,
            "a reconcile that finds nothing new builds the same status"
        );
    }

    #[test]
    fn copies_left_in_unreachable_members_degrade() {
        let results = [
            applied("a"),
            Observed {
                cluster: "b".into(),
                result: ClusterResult::Unreachable {
                    still_placed: false,
                },
            },
        ];
        let s = build(None, Some(1), placed(&["a"]), &results, at(1));
        assert_eq!(
            find(&s.conditions, "Ready").map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&s.conditions, "Degraded").map(|c| c.reason.as_str()),
            Some("CopiesAwaitingCleanup")
        );
        assert_eq!(s.clusters[1].state, CopyState::Unreachable);
    }
}
