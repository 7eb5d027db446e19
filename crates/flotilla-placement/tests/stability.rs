//! Stability: same input, same output; inventory order does not matter; unrelated clusters do
//! not reshuffle the selection.
mod common;

use common::*;
use flotilla_placement::{ClusterInfo, PlacementSpec, SpreadConstraint};

fn fleet() -> Vec<ClusterInfo> {
    vec![
        in_region("m", "eu"),
        in_region("c", "us"),
        in_region("x", "eu"),
        in_region("f", "ap"),
        in_region("k", "us"),
    ]
}

fn spec(max: u32) -> PlacementSpec {
    let mut spec = PlacementSpec::default();
    spec.constraints.max_clusters = Some(max);
    spec
}

#[test]
fn same_input_same_output_regardless_of_inventory_order() {
    let mut spec = spec(3);
    spec.constraints.spread = vec![SpreadConstraint::new(REGION, Some(1), Some(2))];
    let a = run_fresh(&spec, &fleet());
    let mut reversed = fleet();
    reversed.reverse();
    let b = run_fresh(&spec, &reversed);
    assert_eq!(a, b);
    assert_eq!(a, run_fresh(&spec, &fleet()));
}

#[test]
fn adding_a_cluster_that_sorts_first_does_not_reshuffle() {
    let first = run_fresh(&spec(2), &fleet());
    assert_eq!(selected(&first), ["c", "f"]);
    let mut grown = fleet();
    grown.push(in_region("a", "eu"));
    let d = run(&spec(2), &grown, &first.to_previous(), 2_000);
    assert_eq!(selected(&d), ["c", "f"]);
    assert!(!d.changed);
}

#[test]
fn removing_an_unselected_cluster_does_not_reshuffle() {
    let previous = was(&["m", "x"]);
    let mut shrunk = fleet();
    shrunk.retain(|c| &*c.name != "k");
    let d = run(&spec(2), &shrunk, &previous, 2_000);
    assert_eq!(selected(&d), ["m", "x"]);
}

#[test]
fn losing_one_selected_cluster_replaces_only_that_one() {
    let previous = was(&["m", "x"]);
    let mut shrunk = fleet();
    shrunk.retain(|c| &*c.name != "x");
    let d = run(&spec(2), &shrunk, &previous, 2_000);
    // m stays; the free slot goes to the first other cluster by name.
    assert_eq!(selected(&d), ["c", "m"]);
}

#[test]
fn spread_keeps_current_members_of_a_full_region() {
    let mut spec = spec(3);
    spec.constraints.spread = vec![SpreadConstraint::new(REGION, Some(1), None)];
    let previous = was(&["x", "k"]);
    let mut grown = fleet();
    grown.push(in_region("a", "eu"));
    let d = run(&spec, &grown, &previous, 2_000);
    assert_eq!(selected(&d), ["f", "k", "x"]);
}

#[test]
fn the_longest_selected_clusters_are_kept_when_the_count_shrinks() {
    let previous = flotilla_placement::PreviousDecision {
        selected: vec![
            flotilla_placement::PreviousSelection {
                name: "m".into(),
                since: at(20),
            },
            flotilla_placement::PreviousSelection {
                name: "x".into(),
                since: at(10),
            },
        ],
        last_change: Some(at(20)),
    };
    let d = run(&spec(1), &fleet(), &previous, 2_000);
    assert_eq!(selected(&d), ["x"]);
}

#[test]
fn a_proven_cluster_is_preferred_for_a_new_slot() {
    // Without priorities, equal clusters go by name, except that one ready for less than the
    // stabilization period (60s by default) comes after those that have proven themselves.
    let inventory = [up(plain("a"), 1_990), plain("b")];
    let d = run(&spec(1), &inventory, &Default::default(), 2_000);
    assert_eq!(selected(&d), ["b"]);
    let d = run(&spec(1), &inventory, &Default::default(), 2_050);
    assert_eq!(selected(&d), ["a"]);
}

#[test]
fn a_decision_fed_back_as_previous_is_unchanged() {
    // Controllers write the decision to status and feed it back on the next reconcile: a verdict
    // that changed only because its cluster is now placed would cost every object a second
    // status write with nothing new in it.
    let mut spec = spec(3);
    spec.constraints.spread = vec![SpreadConstraint::new(REGION, Some(1), Some(2))];
    let prio = priority(&[&["m", "c"], &["x"]]);
    for spec in [spec, prio, PlacementSpec::default()] {
        let first = run_fresh(&spec, &fleet());
        let again = run(&spec, &fleet(), &was(&selected(&first)), 2_000);
        // The text users read (and status holds) must be the same; timestamps may differ.
        assert_eq!(first.to_string(), again.to_string());
    }
}

#[test]
fn an_unhealthy_cluster_reads_the_same_as_its_outage_goes_on() {
    // An age in the text ("not ready for 3m20s") would rewrite the status of every object that
    // could be placed on the cluster at each of their reconciles, for as long as it is down.
    let clusters = [plain("a"), down(plain("b"), 100)];
    let spec = PlacementSpec::default();
    let early = run(&spec, &clusters, &was(&["a"]), 1_000);
    let later = run(&spec, &clusters, &was(&["a"]), 100_000);
    assert_eq!(early.to_string(), later.to_string());
    assert!(
        early
            .to_string()
            .contains("not ready since 1970-01-01T00:01:40Z"),
        "{early}"
    );
}
