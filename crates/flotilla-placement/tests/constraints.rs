//! Constraints: maxClusters, spread over a topology label, taints and tolerations.
mod common;

use common::*;
use flotilla_placement::{
    ClusterInfo, PlacementSpec, Reason, SpreadConstraint, Taint, TaintEffect, Toleration,
    TolerationOperator, Verdict,
};

fn spec_with(max: Option<u32>, spread: Vec<SpreadConstraint>) -> PlacementSpec {
    let mut spec = PlacementSpec::default();
    spec.constraints.max_clusters = max;
    spec.constraints.spread = spread;
    spec
}

fn regions() -> Vec<ClusterInfo> {
    vec![
        in_region("eu-1", "eu"),
        in_region("eu-2", "eu"),
        in_region("eu-3", "eu"),
        in_region("us-1", "us"),
        in_region("us-2", "us"),
        in_region("ap-1", "ap"),
    ]
}

#[test]
fn max_clusters_takes_the_first_by_name_without_priority() {
    let d = run_fresh(&spec_with(Some(2), vec![]), &regions());
    assert_eq!(selected(&d), ["ap-1", "eu-1"]);
    assert_eq!(
        verdict_of(&d, "us-2"),
        (Verdict::Standby, Reason::MaxClustersReached)
    );
}

#[test]
fn at_most_one_cluster_per_region() {
    let spread = SpreadConstraint::new(REGION, Some(1), None);
    let d = run_fresh(&spec_with(None, vec![spread]), &regions());
    assert_eq!(selected(&d), ["ap-1", "eu-1", "us-1"]);
    assert_eq!(
        verdict_of(&d, "eu-2"),
        (Verdict::Filtered, Reason::SpreadMaxPerGroup)
    );
}

#[test]
fn at_least_n_regions_pulls_in_other_regions_first() {
    // Priority prefers Europe, but three regions are required.
    let mut spec = priority(&[&["eu-1", "eu-2", "eu-3"], &["us-1", "us-2"]]);
    spec.constraints.max_clusters = Some(3);
    spec.constraints.spread = vec![SpreadConstraint::new(REGION, None, Some(3))];
    let d = run_fresh(&spec, &regions());
    assert_eq!(selected(&d), ["eu-1", "us-1", "ap-1"]);
    assert!(d.unsatisfied.is_empty(), "{:?}", d.unsatisfied);
}

#[test]
fn min_groups_without_max_clusters_adds_coverage_to_the_best_group() {
    let mut spec = priority(&[&["eu-1", "eu-2"], &["us-1"]]);
    spec.constraints.spread = vec![SpreadConstraint::new(REGION, None, Some(2))];
    let d = run_fresh(&spec, &regions());
    assert_eq!(selected(&d), ["eu-1", "eu-2", "us-1"]);
    assert_eq!(
        verdict_of(&d, "us-1"),
        (Verdict::Selected, Reason::SpreadCoverage)
    );
    assert_eq!(
        verdict_of(&d, "us-2"),
        (Verdict::Standby, Reason::LowerPriority)
    );
}

#[test]
fn unmet_min_groups_is_reported() {
    let spread = SpreadConstraint::new(REGION, None, Some(4));
    let d = run_fresh(&spec_with(Some(3), vec![spread]), &regions());
    assert_eq!(d.selected.len(), 3);
    assert_eq!(d.unsatisfied.len(), 1, "{:?}", d.unsatisfied);
    assert!(
        d.unsatisfied[0].contains("at least 4"),
        "{}",
        d.unsatisfied[0]
    );

    let spread = SpreadConstraint::new(REGION, None, Some(3));
    let d = run_fresh(&spec_with(Some(2), vec![spread]), &regions());
    assert_eq!(selected(&d), ["ap-1", "eu-1"]);
    assert_eq!(d.unsatisfied.len(), 1);
}

#[test]
fn clusters_without_the_topology_label_are_filtered() {
    let mut inventory = regions();
    inventory.push(plain("lab"));
    let spread = SpreadConstraint::new(REGION, Some(2), None);
    let d = run_fresh(&spec_with(None, vec![spread]), &inventory);
    assert_eq!(
        verdict_of(&d, "lab"),
        (Verdict::Filtered, Reason::MissingTopologyLabel)
    );
    // Without a spread constraint on that key the label is not required.
    let d = run_fresh(&spec_with(None, vec![]), &inventory);
    assert_eq!(verdict_of(&d, "lab").0, Verdict::Selected);
}

#[test]
fn two_spread_constraints_apply_together() {
    let inventory = vec![
        in_region("a", "eu").with_label("zone", "z1"),
        in_region("b", "eu").with_label("zone", "z2"),
        in_region("c", "us").with_label("zone", "z1"),
        in_region("d", "us").with_label("zone", "z3"),
    ];
    let spec = spec_with(
        None,
        vec![
            SpreadConstraint::new(REGION, Some(1), None),
            SpreadConstraint::new("zone", Some(1), None),
        ],
    );
    let d = run_fresh(&spec, &inventory);
    // a takes eu and z1; b (eu full) and c (z1 full) are filtered; d takes us.
    assert_eq!(selected(&d), ["a", "d"]);
}

fn maintenance(effect: TaintEffect) -> Taint {
    Taint::new("flotilla.dev/maintenance", "true", effect)
}

#[test]
fn no_schedule_blocks_new_placements_only() {
    let inventory = vec![
        plain("a").with_taint(maintenance(TaintEffect::NoSchedule)),
        plain("b").with_taint(maintenance(TaintEffect::NoSchedule)),
        plain("c"),
    ];
    let d = run(&PlacementSpec::default(), &inventory, &was(&["a"]), 10);
    assert_eq!(selected(&d), ["a", "c"]);
    assert_eq!(
        verdict_of(&d, "b"),
        (Verdict::Tainted, Reason::TaintNotTolerated)
    );
    assert!(
        d.verdict("a")
            .is_some_and(|v| v.message.contains("NoSchedule keeps"))
    );
}

#[test]
fn no_schedule_cluster_that_loses_its_slot_is_not_placed_again() {
    let inventory = vec![
        plain("a").with_taint(maintenance(TaintEffect::NoSchedule)),
        plain("b"),
    ];
    let mut spec = priority(&[&["b"], &["a"]]);
    spec.constraints.max_clusters = Some(1);
    // b was down, so the object failed over to a; b is back and stable.
    let d = run(&spec, &inventory, &was(&["a"]), 1_000);
    assert_eq!(selected(&d), ["b"]);
    assert_eq!(
        verdict_of(&d, "a"),
        (Verdict::Tainted, Reason::TaintNotTolerated)
    );
}

#[test]
fn no_execute_moves_the_object_away() {
    let inventory = vec![
        plain("a").with_taint(maintenance(TaintEffect::NoExecute)),
        plain("b"),
    ];
    let d = run(&PlacementSpec::default(), &inventory, &was(&["a", "b"]), 10);
    assert_eq!(selected(&d), ["b"]);
    assert_eq!(
        verdict_of(&d, "a"),
        (Verdict::Tainted, Reason::TaintNotTolerated)
    );
    assert!(d.changed);
}

#[test]
fn tolerations_follow_pod_semantics() {
    let inventory = vec![
        plain("a").with_taint(maintenance(TaintEffect::NoExecute)),
        plain("b").with_taint(Taint::new("gpu", "a100", TaintEffect::NoSchedule)),
    ];
    let tolerates = |tolerations: Vec<Toleration>| {
        let mut spec = PlacementSpec::default();
        spec.constraints.tolerations = tolerations;
        run_fresh(&spec, &inventory).selected
    };
    assert_eq!(tolerates(vec![]), Vec::<String>::new());
    assert_eq!(tolerates(vec![Toleration::everything()]), ["a", "b"]);
    let exists_key = Toleration {
        key: Some("gpu".into()),
        operator: TolerationOperator::Exists,
        ..Toleration::default()
    };
    assert_eq!(tolerates(vec![exists_key]), ["b"]);
    let equal_wrong_value = Toleration {
        key: Some("gpu".into()),
        value: Some("h100".into()),
        ..Toleration::default()
    };
    assert_eq!(tolerates(vec![equal_wrong_value]), Vec::<String>::new());
    let only_no_schedule = Toleration {
        effect: Some(TaintEffect::NoSchedule),
        ..Toleration::everything()
    };
    assert_eq!(tolerates(vec![only_no_schedule]), ["b"]);
}

#[test]
fn filtered_wins_over_tainted_wins_over_unhealthy() {
    let inventory = vec![
        down(
            plain("a").with_taint(maintenance(TaintEffect::NoExecute)),
            0,
        ),
        down(plain("b"), 0),
    ];
    let d = run_fresh(&PlacementSpec::default(), &inventory);
    assert_eq!(verdict_of(&d, "a").0, Verdict::Tainted);
    assert_eq!(
        verdict_of(&d, "b"),
        (Verdict::Unhealthy, Reason::ClusterNotReady)
    );
    let spec = PlacementSpec {
        clusters: vec!["b".into()],
        ..PlacementSpec::default()
    };
    assert_eq!(
        verdict_of(&run_fresh(&spec, &inventory), "a").0,
        Verdict::Filtered
    );
}
