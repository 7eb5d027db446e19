//! Deciding the workload's total: why there is none in this poll (no cluster selected, none of
//! the selected ones scalable), or the HPA v2 algorithm on fresh metric readings. Pure but for
//! the metric reads.
use std::collections::BTreeMap;

use flotilla_autoscaling as hpa;
use flotilla_placement::Decision;

use super::member::hpa_time;
use super::placement::Placement;
use super::read_metrics::{Queried, read_metrics};
use super::scale::Poll;
use super::spec::Target;
use super::standing::{Standing, describe, writable_selected};
use super::state::PolicyState;
use super::status::{self, Cond, Report};

/// Decides the total and records the outcome in `report` (`AbleToScale`, and when decided
/// `ScalingActive`, `ScalingLimited` and the metric values). `None` when nothing can be scaled.
pub(super) async fn decide_total(
    poll: &Poll<'_>,
    placement: &Placement,
    standings: &BTreeMap<String, Standing>,
    queried: Queried,
    ps: &mut PolicyState,
    report: &mut Report,
) -> Option<hpa::ScaleDecision> {
    let writable = writable_selected(standings, &placement.selected());
    let target = &poll.plan.target;
    if let Some(why) = cannot_decide(&placement.selection, standings, writable.is_empty(), target) {
        report.able_to_scale = Some(why);
        return None;
    }
    let readings = read_metrics(poll, queried, &writable, &mut ps.member_readings).await;
    let observed_sum: i32 = writable
        .iter()
        .map(|(_, s)| s.replicas.max(0))
        .fold(0i32, i32::saturating_add);
    let current = current_total(
        ps.desired_total,
        poll.previous_status().and_then(|s| s.desired_replicas),
        observed_sum,
    );
    let d = hpa::decide(
        &poll.plan.scaling,
        &hpa::ScaleInput {
            current_replicas: current,
            metrics: readings,
        },
        &mut ps.scaler,
        hpa_time(poll.now),
    );
    report.able_to_scale = Some(Cond::from_hpa(&d.able_to_scale));
    report.scaling_active = Some(Cond::from_hpa(&d.scaling_active));
    report.scaling_limited = d.scaling_limited.as_ref().map(Cond::from_hpa);
    report.metrics = Some(status::metric_values(&d.metrics));
    Some(d)
}

/// Why no total can be decided in this poll, as the `AbleToScale` condition; `None` when it can.
fn cannot_decide(
    selection: &Decision,
    standings: &BTreeMap<String, Standing>,
    none_writable: bool,
    target: &Target,
) -> Option<Cond> {
    if selection.selected.is_empty() {
        let why: Vec<String> = selection
            .clusters
            .iter()
            .map(|c| format!("{}: {}", c.name, c.reason))
            .collect();
        Some(Cond::new(
            false,
            "NoClusterSelected",
            format!(
                "no member cluster is eligible for the workload ({})",
                if why.is_empty() {
                    "there are no member clusters".to_string()
                } else {
                    why.join(", ")
                }
            ),
        ))
    } else if none_writable {
        let why: Vec<String> = selection
            .selected
            .iter()
            .map(|c| {
                format!(
                    "{c}: {}",
                    standings
                        .get(c)
                        .map(describe)
                        .unwrap_or_else(|| "unknown".into())
                )
            })
            .collect();
        Some(Cond::new(
            false,
            "FailedGetScale",
            format!(
                "the target {target} cannot be scaled in any selected cluster ({})",
                why.join("; ")
            ),
        ))
    } else {
        None
    }
}

/// The autoscaler's "current replicas": the total Flotilla last decided (in memory, else from
/// the status), not the observed sum, which changes when a member goes away or comes back
/// without anyone scaling (see the module doc of [`mod@super::controller`]). The first time, with no
/// positive decided total, it adopts the observed sum, as the HPA adopts the target's scale.
fn current_total(remembered: Option<i32>, in_status: Option<i32>, observed_sum: i32) -> i32 {
    remembered
        .or(in_status)
        .filter(|d| *d > 0)
        .unwrap_or(observed_sum)
}

/// The total to divide: the one just decided, else the last one decided (kept as it is while
/// nothing can be scaled), else 0.
pub(super) fn total_to_divide(
    decision: Option<&hpa::ScaleDecision>,
    remembered: Option<i32>,
    in_status: Option<i32>,
) -> i32 {
    decision
        .map(|d| d.desired_replicas)
        .or(remembered)
        .or(in_status)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_total_is_the_decided_one_and_the_observed_sum_only_at_first() {
        assert_eq!(current_total(Some(6), Some(4), 9), 6);
        assert_eq!(current_total(None, Some(4), 9), 4);
        assert_eq!(current_total(None, None, 9), 9);
        // A decided total of 0 is not kept: the observed sum is adopted.
        assert_eq!(current_total(Some(0), Some(4), 9), 9);
    }
}
