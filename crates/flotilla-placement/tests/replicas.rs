//! Replica division for a ScalingPolicy, through `decide`.
mod common;

use common::*;
use flotilla_placement::{PlacementSpec, ReplicaPreference, ReplicaRequest};

fn replicas(d: &flotilla_placement::Decision) -> Vec<(&str, i32)> {
    d.replicas()
}

#[test]
fn divides_among_selected_clusters_by_weight() {
    let request = ReplicaRequest::new(10)
        .with_preference(ReplicaPreference::weighted("a", 3))
        .with_preference(ReplicaPreference::weighted("b", 2));
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), plain("b")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 6), ("b", 4)]);
    assert!(d.unsatisfied.is_empty());
}

#[test]
fn default_weight_is_configurable() {
    let mut request = ReplicaRequest::new(9).with_preference(ReplicaPreference::weighted("a", 1));
    request.default_weight = 2;
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), plain("b")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 3), ("b", 6)]);
}

#[test]
fn unhealthy_clusters_get_none_and_their_share_moves() {
    let request = ReplicaRequest::new(9);
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), down(plain("b"), 0), plain("c")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 5), ("c", 4)]);
    assert_eq!(d.verdict("b").and_then(|v| v.replicas), None);
}

#[test]
fn maximums_redistribute_and_capacity_hints_cap() {
    let request = ReplicaRequest::new(12)
        .with_preference(ReplicaPreference::weighted("a", 1).bounded(None, Some(2)));
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), plain("b").with_capacity_replicas(3), plain("c")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 2), ("b", 3), ("c", 7)]);
}

#[test]
fn impossible_bounds_are_reported() {
    let request = ReplicaRequest::new(10)
        .with_preference(ReplicaPreference::weighted("a", 1).bounded(None, Some(3)))
        .with_preference(ReplicaPreference::weighted("b", 1).bounded(None, Some(3)));
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), plain("b")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 3), ("b", 3)]);
    assert_eq!(d.unsatisfied.len(), 1);

    let request = ReplicaRequest::new(4)
        .with_preference(ReplicaPreference::weighted("a", 1).bounded(Some(3), None))
        .with_preference(ReplicaPreference::weighted("b", 1).bounded(Some(3), None));
    let d = run_replicas(
        &PlacementSpec::default(),
        &[plain("a"), plain("b")],
        &request,
    );
    assert_eq!(replicas(&d), [("a", 3), ("b", 1)]);
    assert_eq!(d.unsatisfied.len(), 1);
}

#[test]
fn remainders_follow_priority_rank_then_name() {
    let spec = {
        let mut s = priority(&[&["z"], &["a"]]);
        s.constraints.max_clusters = Some(3);
        s
    };
    let d = run_replicas(
        &spec,
        &[plain("a"), plain("m"), plain("z")],
        &ReplicaRequest::new(4),
    );
    // 4/3 each: the one leftover goes to rank 0 (z) before a (rank 1) and m (no group).
    assert_eq!(replicas(&d), [("z", 2), ("a", 1), ("m", 1)]);
}

#[test]
fn no_selected_cluster_means_replicas_cannot_be_placed() {
    let d = run_replicas(
        &PlacementSpec::default(),
        &[down(plain("a"), 0)],
        &ReplicaRequest::new(3),
    );
    assert!(d.replicas().is_empty());
    assert!(
        d.unsatisfied
            .iter()
            .any(|u| u.contains("no healthy cluster"))
    );
}
