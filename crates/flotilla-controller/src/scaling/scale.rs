//! One poll of one valid policy, phase by phase: place, observe the members, decide the total,
//! divide it, write the shares, then report (Events, status). Each phase is a function of its
//! own module; this one only runs them in order and carries their results along.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use flotilla_api::ScalingPolicy;
use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::scaling_policy::{
    ClusterReplicaStatus, ConflictPolicy, Distribution, ScalingPolicyStatus,
};
use flotilla_placement::PlacementSpec;

use super::apply::apply;
use super::decide::{decide_total, total_to_divide};
use super::observe::observe_members;
use super::placement::{divide, place};
use super::report::{
    report_conflicts, report_placement_change, report_scaling, write_status_if_due,
};
use super::spec::Plan;
use super::standing::{cluster_statuses, conflict_condition, standings, unscalable};
use super::state::{PolicyState, State};
use super::status::{self, Report};
use crate::error::Result;
use crate::members::registry::Member;
use crate::placement_input::to_status;

/// What one poll of one policy works from, read once before the phases and never changed by
/// them.
pub(super) struct Poll<'a> {
    pub state: &'a State,
    pub api: &'a Api<ScalingPolicy>,
    pub sp: &'a ScalingPolicy,
    pub namespace: &'a str,
    /// The validated spec.
    pub plan: &'a Plan,
    pub placement_spec: &'a PlacementSpec,
    /// The federated workload the policy scales, when Flotilla propagates it.
    pub workload: Option<&'a super::workload::Workload>,
    /// The member snapshot.
    pub members: &'a [Member],
    /// The time of the poll (status times, the autoscaler's and the placement engine's clock).
    pub now: jiff::Timestamp,
}

impl Poll<'_> {
    pub fn name(&self) -> String {
        self.sp.name_any()
    }

    pub fn previous_status(&self) -> Option<&ScalingPolicyStatus> {
        self.sp.status.as_ref()
    }

    /// The placement decision the selection starts from: the workload's, when Flotilla
    /// propagates it (both then move together), else the policy's own.
    pub fn placement_before(&self) -> Option<&PlacementStatus> {
        match self.workload {
            Some(w) => w.previous.as_ref(),
            None => self.previous_status().and_then(|s| s.placement.as_ref()),
        }
    }

    /// Weights and per-cluster bounds of the division.
    pub fn distribution(&self) -> &Distribution {
        self.workload
            .map_or(&self.sp.spec.distribution, |w| &w.distribution)
    }

    pub fn member(&self, cluster: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == cluster)
    }

    /// `memberAutoscalerConflict: TakeOver`: member HPAs do not stop Flotilla.
    pub fn takeover(&self) -> bool {
        self.sp.spec.member_autoscaler_conflict == ConflictPolicy::TakeOver
    }
}

/// Runs one poll; `ps` is the policy's memory, updated in place.
pub(super) async fn scale(poll: &Poll<'_>, ps: &mut PolicyState) -> Result<()> {
    let ctx = &poll.state.ctx;
    let previous_status = poll.previous_status();
    let target = &poll.plan.target;
    let takeover = poll.takeover();
    ps.retarget(target);

    // Dereference: where the workload runs, then the members there and where it ran before.
    let placement = place(poll)?;
    let selected = placement.selected();
    ps.observed.retain(|c, _| placement.consider.contains(c));
    let queried = observe_members(poll, &placement.consider, ps).await;
    let standings = standings(&placement.consider, poll.members, ps, takeover);
    let mut report = Report {
        generation: poll.sp.metadata.generation,
        member_conflict: Some(conflict_condition(&standings, &selected, target, takeover)),
        ..Report::default()
    };

    // Decide the total, and divide it: clusters Flotilla does not scale get no share.
    let decision = decide_total(poll, &placement, &standings, queried, ps, &mut report).await;
    let total = total_to_divide(
        decision.as_ref(),
        ps.desired_total,
        previous_status.and_then(|s| s.desired_replicas),
    );
    let division = divide(
        poll,
        &placement,
        decision.is_some(),
        total,
        unscalable(&standings),
    )?;
    let shares: BTreeMap<&str, i32> = division.replicas().into_iter().collect();

    // Apply.
    let applied = apply(poll, &standings, &selected, &shares, decision.is_some(), ps).await;
    if let Some(failed) = applied.condition() {
        report.able_to_scale = Some(failed);
    }

    // Report.
    let clusters = cluster_statuses(
        &standings,
        &selected,
        &shares,
        &applied.failed_clusters,
        ps,
        previous_status,
    );
    report.current_replicas = Some(observed_total(&clusters, &selected));
    report.desired_replicas = Some(total);
    report.rescaled = decision.as_ref().is_some_and(|d| d.rescale);
    report.placement = Some(to_status(&division));
    report.clusters = clusters;
    if decision.is_some() {
        ps.desired_total = Some(total);
    }

    let reference = poll.sp.object_ref(&());
    report_scaling(
        ctx,
        &reference,
        decision.as_ref(),
        total,
        &division,
        &applied,
        ps,
    )
    .await;
    report_conflicts(ctx, &reference, &standings, &selected, takeover, ps).await;
    report_placement_change(
        ctx,
        &reference,
        previous_status.and_then(|s| s.placement.as_ref()),
        report.placement.as_ref(),
    )
    .await;

    let new_status = status::build(previous_status, report, Time(poll.now));
    write_status_if_due(poll, &new_status, ps).await
}

/// `status.currentReplicas`: the observed replicas of the selected clusters Flotilla scales.
fn observed_total(clusters: &[ClusterReplicaStatus], selected: &BTreeSet<&str>) -> i32 {
    clusters
        .iter()
        .filter(|c| selected.contains(c.cluster.as_str()) && c.state == "Scaled")
        .filter_map(|c| c.current_replicas)
        .fold(0i32, i32::saturating_add)
}
