//! What a poll tells the world: Events (a rescale, a redistribution, write failures, member HPA
//! conflicts, placement changes; each once, not on every poll while it lasts) and the status
//! write. The notes are built by pure functions.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;

use flotilla_api::ScalingPolicy;
use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::scaling_policy::ScalingPolicyStatus;
use flotilla_autoscaling as hpa;
use flotilla_placement::Decision;

use super::apply::Applied;
use super::controller::CONTROLLER;
use super::events;
use super::scale::Poll;
use super::spec::SpecProblem;
use super::standing::{Standing, member_hpas};
use super::state::PolicyState;
use super::status::{self, Cond, Report};
use crate::context::Context;
use crate::error::Result;
use crate::placement_change::PlacementChange;
use crate::status_apply::apply_status;

/// `SuccessfulRescale` when the total changed, else `ReplicasRedistributed` when shares moved
/// (and no write failed); then `FailedRescale` when the write failures differ from the last
/// ones reported.
pub(super) async fn report_scaling(
    ctx: &Context,
    reference: &ObjectReference,
    decision: Option<&hpa::ScaleDecision>,
    total: i32,
    division: &Decision,
    applied: &Applied,
    ps: &mut PolicyState,
) {
    let split = split_note(division);
    if let Some(d) = decision.filter(|d| d.rescale) {
        let note = rescale_note(d, &split);
        events::publish(ctx, reference, false, "SuccessfulRescale", "Scale", note).await;
    } else if !applied.changes.is_empty() && applied.failures.is_empty() {
        let note = redistribution_note(total, &applied.changes, &split);
        events::publish(
            ctx,
            reference,
            false,
            "ReplicasRedistributed",
            "Scale",
            note,
        )
        .await;
    }
    // One event per distinct failure, not one per poll while it lasts.
    let failures: BTreeSet<String> = applied.failures.iter().cloned().collect();
    if !failures.is_empty() && failures != ps.reported_failures {
        events::publish(
            ctx,
            reference,
            true,
            "FailedRescale",
            "Scale",
            applied.failures.join("; "),
        )
        .await;
    }
    ps.reported_failures = failures;
}

/// "cluster=replicas, ..." of the division.
fn split_note(division: &Decision) -> String {
    division
        .replicas()
        .iter()
        .map(|(c, r)| format!("{c}={r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// As the HPA's `SuccessfulRescale` ("New size: 6; reason: ..."), with the split.
fn rescale_note(d: &hpa::ScaleDecision, split: &str) -> String {
    format!(
        "New size: {}; reason: {}; split: {split}",
        d.desired_replicas,
        d.rescale_reason.as_deref().unwrap_or("rescale")
    )
}

fn redistribution_note(total: i32, changes: &[String], split: &str) -> String {
    format!(
        "total {total} redistributed: {} (split: {split})",
        changes.join(", ")
    )
}

/// `MemberAutoscalerConflict` for the selected clusters whose member HPAs were not reported
/// yet.
pub(super) async fn report_conflicts(
    ctx: &Context,
    reference: &ObjectReference,
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    takeover: bool,
    ps: &mut PolicyState,
) {
    let now: BTreeSet<String> = member_hpas(standings, selected)
        .map(|(c, hpas)| format!("{c} ({})", hpas.join(", ")))
        .collect();
    let new: Vec<&String> = now.difference(&ps.reported_conflicts).collect();
    if !new.is_empty() {
        let list = new
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        events::publish(
            ctx,
            reference,
            true,
            "MemberAutoscalerConflict",
            "Scale",
            conflict_note(&list, takeover),
        )
        .await;
    }
    ps.reported_conflicts = now;
}

fn conflict_note(list: &str, takeover: bool) -> String {
    if takeover {
        format!(
            "member HorizontalPodAutoscalers target the workload in {list}; taking over (memberAutoscalerConflict: TakeOver)"
        )
    } else {
        format!(
            "member HorizontalPodAutoscalers target the workload in {list}; leaving those clusters alone"
        )
    }
}

/// The Event for a changed selection.
#[derive(Debug, PartialEq, Eq)]
struct PlacementEvent {
    warning: bool,
    reason: &'static str,
    note: String,
}

/// Events for a changed selection; a cluster dropped because it became unhealthy is a failover.
pub(super) async fn report_placement_change(
    ctx: &Context,
    reference: &ObjectReference,
    before: Option<&PlacementStatus>,
    after: Option<&PlacementStatus>,
) {
    let Some(event) = placement_event(before, after) else {
        return;
    };
    ctx.metrics.placement_changed(CONTROLLER);
    if event.reason == "FailedOver" {
        ctx.metrics.failed_over(CONTROLLER);
    }
    events::publish(
        ctx,
        reference,
        event.warning,
        event.reason,
        "Place",
        event.note,
    )
    .await;
}

/// The Event for going from `before` to `after`, if the selection changed (pure).
fn placement_event(
    before: Option<&PlacementStatus>,
    after: Option<&PlacementStatus>,
) -> Option<PlacementEvent> {
    let change = PlacementChange::between(before, after?)?;
    Some(if change.is_failover() {
        PlacementEvent {
            warning: true,
            reason: "FailedOver",
            note: format!(
                "failed over from {}; the remaining clusters take its share",
                change.failed.join(", ")
            ),
        }
    } else if change.first {
        PlacementEvent {
            warning: false,
            reason: "Placed",
            note: format!("placed on {}", change.added.join(", ")),
        }
    } else {
        PlacementEvent {
            warning: false,
            reason: "PlacementChanged",
            note: change.change_note(),
        }
    })
}

/// Writes `new` when the write policy ([`status::should_write`]) says so.
pub(super) async fn write_status_if_due(
    poll: &Poll<'_>,
    new: &ScalingPolicyStatus,
    ps: &mut PolicyState,
) -> Result<()> {
    let now = Instant::now();
    if status::should_write(
        poll.previous_status(),
        new,
        ps.last_status_write,
        now,
        poll.state.config.metrics_status_interval,
    ) {
        apply_status(&poll.state.ctx, CONTROLLER, poll.api, &poll.name(), new).await?;
        ps.last_status_write = Some(now);
    }
    Ok(())
}

/// Reports an invalid spec on the condition it concerns; nothing is scaled.
pub(super) async fn write_invalid_spec(
    ctx: &Context,
    api: &Api<ScalingPolicy>,
    sp: &ScalingPolicy,
    problem: &SpecProblem,
) -> Result<()> {
    let previous = sp.status.as_ref();
    let mut report = Report {
        generation: sp.metadata.generation,
        ..Report::default()
    };
    let cond = Some(Cond::new(false, problem.reason, problem.message.clone()));
    if problem.condition == "ScalingActive" {
        report.scaling_active = cond;
    } else {
        report.able_to_scale = cond;
    }
    let mut status = status::build(previous, report, Time(jiff::Timestamp::now()));
    // Keep the last cluster entries: nothing was done to them.
    status.clusters = previous.map(|p| p.clusters.clone()).unwrap_or_default();
    if previous != Some(&status) {
        apply_status(ctx, CONTROLLER, api, &sp.name_any(), &status).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement_change::test_placement as placement;

    #[test]
    fn placement_events_tell_a_failover_from_a_change() {
        let ab = placement(&["a", "b"], &[]);
        assert_eq!(placement_event(Some(&ab), Some(&ab)), None);
        assert_eq!(placement_event(Some(&ab), None), None);
        let placed = placement_event(None, Some(&ab)).expect("event");
        assert_eq!(
            (placed.reason, placed.note.as_str()),
            ("Placed", "placed on a, b")
        );
        let failed = placement_event(Some(&ab), Some(&placement(&["a"], &["b"]))).expect("event");
        assert_eq!(failed.reason, "FailedOver");
        assert!(failed.warning);
        assert!(failed.note.contains("b (NotReady)"), "{}", failed.note);
        let moved = placement_event(Some(&ab), Some(&placement(&["a", "c"], &[]))).expect("event");
        assert_eq!(
            (moved.reason, moved.note.as_str()),
            (
                "PlacementChanged",
                "placement changed: added [c], removed [b]"
            )
        );
    }
}
