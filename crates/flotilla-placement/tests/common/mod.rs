//! Shared helpers for the table tests: terse builders for clusters and specs, and a `decide`
//! shortcut that fails the test on an invalid spec.
#![allow(dead_code)]

use flotilla_placement::{
    ClusterInfo, Decision, DecisionInput, Health, PlacementSpec, PreviousDecision, PriorityGroup,
    Reason, ReplicaRequest, Timestamp, Verdict, decide,
};

pub const REGION: &str = "topology.kubernetes.io/region";

/// Seconds since the epoch as a timestamp.
pub fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_millis(secs * 1_000)
}

/// A ready cluster (since t=0) with a region label.
pub fn in_region(name: &str, region: &str) -> ClusterInfo {
    ClusterInfo::new(name).with_label(REGION, region)
}

/// A ready cluster (since t=0) without labels.
pub fn plain(name: &str) -> ClusterInfo {
    ClusterInfo::new(name)
}

pub fn down(cluster: ClusterInfo, since: u64) -> ClusterInfo {
    cluster.with_health(Health::not_ready_since(at(since)))
}

pub fn up(cluster: ClusterInfo, since: u64) -> ClusterInfo {
    cluster.with_health(Health::ready_since(at(since)))
}

pub fn priority(groups: &[&[&str]]) -> PlacementSpec {
    PlacementSpec {
        failover_priority: groups
            .iter()
            .map(|g| PriorityGroup::of_clusters(g.iter().copied()))
            .collect(),
        ..PlacementSpec::default()
    }
}

pub fn run(
    spec: &PlacementSpec,
    clusters: &[ClusterInfo],
    previous: &PreviousDecision,
    now: u64,
) -> Decision {
    decide(&DecisionInput {
        spec,
        clusters,
        previous,
        now: at(now),
        replicas: None,
        namespace: None,
    })
    .expect("valid spec")
}

pub fn run_fresh(spec: &PlacementSpec, clusters: &[ClusterInfo]) -> Decision {
    run(spec, clusters, &PreviousDecision::default(), 1_000)
}

pub fn run_replicas(
    spec: &PlacementSpec,
    clusters: &[ClusterInfo],
    request: &ReplicaRequest,
) -> Decision {
    decide(&DecisionInput {
        spec,
        clusters,
        previous: &PreviousDecision::default(),
        now: at(1_000),
        replicas: Some(request),
        namespace: None,
    })
    .expect("valid spec")
}

/// The previous decision that selected `names`.
pub fn was(names: &[&str]) -> PreviousDecision {
    PreviousDecision::from_names(names.iter().copied(), at(0))
}

pub fn verdict_of(decision: &Decision, name: &str) -> (Verdict, Reason) {
    let v = decision
        .verdict(name)
        .unwrap_or_else(|| panic!("no verdict for {name}:\n{decision}"));
    (v.verdict, v.reason)
}

pub fn selected(decision: &Decision) -> Vec<&str> {
    decision.selected.iter().map(String::as_str).collect()
}
