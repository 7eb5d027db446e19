//! Which clusters are candidates: the `clusters` list, the `clusterSelector`, both, neither.
mod common;

use common::*;
use flotilla_placement::{LabelSelector, PlacementSpec, Reason, SelectorOperator, Verdict};

fn inventory() -> Vec<flotilla_placement::ClusterInfo> {
    vec![
        in_region("eu-1", "eu").with_label("tier", "gold"),
        in_region("eu-2", "eu"),
        in_region("us-1", "us").with_label("tier", "gold"),
        plain("lab"),
    ]
}

#[test]
fn neither_list_nor_selector_places_on_every_cluster() {
    let d = run_fresh(&PlacementSpec::default(), &inventory());
    assert_eq!(selected(&d), ["eu-1", "eu-2", "lab", "us-1"]);
    assert_eq!(verdict_of(&d, "lab"), (Verdict::Selected, Reason::Matched));
    assert!(d.unsatisfied.is_empty());
}

#[test]
fn explicit_list_restricts_by_name() {
    let spec = PlacementSpec {
        clusters: vec!["us-1".into(), "eu-2".into()],
        ..PlacementSpec::default()
    };
    let d = run_fresh(&spec, &inventory());
    assert_eq!(selected(&d), ["eu-2", "us-1"]);
    assert_eq!(
        verdict_of(&d, "eu-1"),
        (Verdict::Filtered, Reason::NotInClusterList)
    );
}

#[test]
fn listed_names_that_are_not_members_are_reported() {
    let spec = PlacementSpec {
        clusters: vec!["us-1".into(), "typo".into(), "typo".into()],
        ..PlacementSpec::default()
    };
    let d = run_fresh(&spec, &inventory());
    assert_eq!(selected(&d), ["us-1"]);
    assert_eq!(d.unsatisfied.len(), 1, "{:?}", d.unsatisfied);
    assert!(d.unsatisfied[0].contains("typo"));
}

#[test]
fn selector_match_labels_and_expressions() {
    let spec = PlacementSpec {
        cluster_selector: Some(LabelSelector::from_labels([("tier", "gold")])),
        ..PlacementSpec::default()
    };
    let d = run_fresh(&spec, &inventory());
    assert_eq!(selected(&d), ["eu-1", "us-1"]);
    assert_eq!(
        verdict_of(&d, "eu-2"),
        (Verdict::Filtered, Reason::SelectorMismatch)
    );

    let cases: [(SelectorOperator, &[&str], &[&str]); 4] = [
        (SelectorOperator::In, &["eu"], &["eu-1", "eu-2"]),
        (SelectorOperator::NotIn, &["eu"], &["lab", "us-1"]),
        (SelectorOperator::Exists, &[], &["eu-1", "eu-2", "us-1"]),
        (SelectorOperator::DoesNotExist, &[], &["lab"]),
    ];
    for (op, values, expected) in cases {
        let spec = PlacementSpec {
            cluster_selector: Some(LabelSelector::default().with_expression(
                REGION,
                op,
                values.iter().copied(),
            )),
            ..PlacementSpec::default()
        };
        assert_eq!(selected(&run_fresh(&spec, &inventory())), expected, "{op}");
    }
}

#[test]
fn list_and_selector_together_require_both() {
    let spec = PlacementSpec {
        clusters: vec!["eu-1".into(), "eu-2".into(), "lab".into()],
        cluster_selector: Some(LabelSelector::default().with_expression(
            REGION,
            SelectorOperator::In,
            ["eu", "us"],
        )),
        ..PlacementSpec::default()
    };
    let d = run_fresh(&spec, &inventory());
    assert_eq!(selected(&d), ["eu-1", "eu-2"]);
    assert_eq!(
        verdict_of(&d, "lab"),
        (Verdict::Filtered, Reason::SelectorMismatch)
    );
    assert_eq!(
        verdict_of(&d, "us-1"),
        (Verdict::Filtered, Reason::NotInClusterList)
    );
}

#[test]
fn empty_selector_matches_every_cluster() {
    let spec = PlacementSpec {
        cluster_selector: Some(LabelSelector::default()),
        ..PlacementSpec::default()
    };
    assert_eq!(selected(&run_fresh(&spec, &inventory())).len(), 4);
}

#[test]
fn invalid_selector_is_an_error_not_a_panic() {
    let spec = PlacementSpec {
        cluster_selector: Some(LabelSelector::default().with_expression(
            REGION,
            SelectorOperator::Exists,
            ["eu"],
        )),
        ..PlacementSpec::default()
    };
    assert!(spec.validate().is_err());
    let result = flotilla_placement::decide(&flotilla_placement::DecisionInput {
        spec: &spec,
        clusters: &inventory(),
        previous: &Default::default(),
        now: at(0),
        replicas: None,
        namespace: None,
    });
    assert!(result.is_err());
}

#[test]
fn every_cluster_gets_a_verdict_and_nothing_selected_is_reported() {
    let spec = PlacementSpec {
        clusters: vec!["nowhere".into()],
        ..PlacementSpec::default()
    };
    let d = run_fresh(&spec, &inventory());
    assert_eq!(d.clusters.len(), 4);
    assert!(d.selected.is_empty());
    assert!(
        d.unsatisfied
            .iter()
            .any(|u| u.starts_with("no cluster is selected"))
    );
}

#[test]
fn empty_inventory_is_fine() {
    let d = run_fresh(&PlacementSpec::default(), &[]);
    assert!(d.clusters.is_empty() && d.selected.is_empty());
}
