//! failoverPriority: ordered preference, failover, failback after stabilization, failback
//! Never, and hysteresis against health flaps.
mod common;

use common::*;
use flotilla_placement::{
    ClusterInfo, FailbackMode, LabelSelector, PlacementSpec, PriorityGroup, Reason, Verdict,
};

/// primary (rank 0), two secondaries (rank 1), one cluster in no group (rank 2).
fn spec(max: Option<u32>) -> PlacementSpec {
    let mut spec = priority(&[&["primary"], &["second-a", "second-b"]]);
    spec.constraints.max_clusters = max;
    spec.failback.stabilization_seconds = 60;
    spec
}

fn fleet(primary: ClusterInfo) -> Vec<ClusterInfo> {
    vec![
        primary,
        plain("second-a"),
        plain("second-b"),
        plain("other"),
    ]
}

#[test]
fn best_group_is_selected_and_others_stand_by() {
    let d = run_fresh(&spec(None), &fleet(plain("primary")));
    assert_eq!(selected(&d), ["primary"]);
    assert_eq!(
        verdict_of(&d, "primary"),
        (Verdict::Selected, Reason::PrimaryHealthy)
    );
    assert_eq!(
        verdict_of(&d, "second-a"),
        (Verdict::Standby, Reason::LowerPriority)
    );
    assert_eq!(d.verdict("other").and_then(|v| v.priority), Some(2));
    assert_eq!(d.verdict("primary").and_then(|v| v.priority), Some(0));
}

#[test]
fn groups_can_be_given_by_selector() {
    let mut spec = PlacementSpec {
        failover_priority: vec![
            PriorityGroup::of_selector(LabelSelector::from_labels([(REGION, "us")])),
            PriorityGroup::of_selector(LabelSelector::from_labels([(REGION, "eu")])),
        ],
        ..PlacementSpec::default()
    };
    spec.constraints.max_clusters = Some(1);
    let d = run_fresh(&spec, &[in_region("eu-1", "eu"), in_region("us-1", "us")]);
    assert_eq!(selected(&d), ["us-1"]);
}

#[test]
fn a_cluster_ranks_by_its_first_group() {
    let spec = priority(&[&["b"], &["a", "b"]]);
    let d = run_fresh(&spec, &[plain("a"), plain("b")]);
    assert_eq!(selected(&d), ["b"]);
    assert_eq!(d.verdict("a").and_then(|v| v.priority), Some(1));
}

#[test]
fn unhealthy_primary_fails_over_to_the_next_group_at_once() {
    let d = run(
        &spec(None),
        &fleet(down(plain("primary"), 999)),
        &was(&["primary"]),
        1_000,
    );
    assert_eq!(selected(&d), ["second-a", "second-b"]);
    assert_eq!(
        verdict_of(&d, "second-a"),
        (Verdict::Selected, Reason::FailedOver)
    );
    assert_eq!(
        verdict_of(&d, "primary"),
        (Verdict::Unhealthy, Reason::ClusterNotReady)
    );
    assert!(d.changed);
    assert_eq!(d.last_change, Some(at(1_000)));
}

#[test]
fn with_max_clusters_the_next_in_rank_takes_the_place() {
    let d = run(
        &spec(Some(2)),
        &fleet(down(plain("primary"), 999)),
        &was(&["primary", "second-a"]),
        1_000,
    );
    assert_eq!(selected(&d), ["second-a", "second-b"]);
    let d = run(
        &spec(Some(2)),
        &[
            down(plain("primary"), 999),
            down(plain("second-a"), 999),
            plain("second-b"),
            plain("other"),
        ],
        &was(&["primary", "second-a"]),
        1_000,
    );
    assert_eq!(selected(&d), ["second-b", "other"]);
    assert_eq!(
        verdict_of(&d, "other"),
        (Verdict::Selected, Reason::FailedOver)
    );
}

#[test]
fn recovered_primary_waits_for_the_stabilization_period() {
    let failed_over = was(&["second-a", "second-b"]);
    // Healthy again since t=1000; at t=1030 it has only been up 30s of 60s.
    let d = run(
        &spec(None),
        &fleet(up(plain("primary"), 1_000)),
        &failed_over,
        1_030,
    );
    assert_eq!(selected(&d), ["second-a", "second-b"]);
    assert_eq!(
        verdict_of(&d, "primary"),
        (Verdict::Standby, Reason::FailbackPending)
    );
    assert!(!d.changed);
    // At t=1060 it has been up the full period: fail back.
    let d = run(
        &spec(None),
        &fleet(up(plain("primary"), 1_000)),
        &failed_over,
        1_060,
    );
    assert_eq!(selected(&d), ["primary"]);
    assert_eq!(
        verdict_of(&d, "second-a"),
        (Verdict::Standby, Reason::LowerPriority)
    );
    assert!(d.changed);
}

#[test]
fn failback_with_max_clusters_replaces_the_lower_ranked_cluster() {
    let failed_over = was(&["second-a"]);
    let d = run(
        &spec(Some(1)),
        &fleet(up(plain("primary"), 1_000)),
        &failed_over,
        1_010,
    );
    assert_eq!(selected(&d), ["second-a"]);
    assert_eq!(verdict_of(&d, "primary").1, Reason::FailbackPending);
    let d = run(
        &spec(Some(1)),
        &fleet(up(plain("primary"), 1_000)),
        &failed_over,
        1_100,
    );
    assert_eq!(selected(&d), ["primary"]);
    assert_eq!(
        verdict_of(&d, "second-a"),
        (Verdict::Standby, Reason::MaxClustersReached)
    );
}

#[test]
fn failback_never_keeps_the_object_where_it_failed_over_to() {
    let mut spec = spec(Some(1));
    spec.failback.mode = FailbackMode::Never;
    let failed_over = was(&["second-a"]);
    let d = run(
        &spec,
        &fleet(up(plain("primary"), 0)),
        &failed_over,
        100_000,
    );
    assert_eq!(selected(&d), ["second-a"]);
    assert_eq!(
        verdict_of(&d, "primary"),
        (Verdict::Standby, Reason::FailbackDisabled)
    );
    // ...until that cluster itself fails.
    let d = run(
        &spec,
        &[
            up(plain("primary"), 0),
            down(plain("second-a"), 99_999),
            plain("second-b"),
            plain("other"),
        ],
        &failed_over,
        100_000,
    );
    assert_eq!(selected(&d), ["primary"]);
}

#[test]
fn zero_stabilization_fails_back_immediately() {
    let mut spec = spec(None);
    spec.failback.stabilization_seconds = 0;
    let d = run(
        &spec,
        &fleet(up(plain("primary"), 1_000)),
        &was(&["second-a", "second-b"]),
        1_000,
    );
    assert_eq!(selected(&d), ["primary"]);
}

#[test]
fn health_flaps_shorter_than_the_period_do_not_change_the_decision() {
    let spec = spec(Some(1));
    let mut previous = was(&["second-a"]);
    // The primary flaps: up 20s, down 5s, up 30s, down 5s, up 40s... never up for 60s.
    let mut transitions = vec![];
    let mut t = 1_000;
    for up_for in [20, 30, 40, 50] {
        transitions.push((t, true));
        t += up_for;
        transitions.push((t, false));
        t += 5;
    }
    for &(since, ready) in &transitions {
        let primary = if ready {
            up(plain("primary"), since)
        } else {
            down(plain("primary"), since)
        };
        for now in [since, since + 1, since + 4] {
            let d = run(&spec, &fleet(primary.clone()), &previous, now);
            assert_eq!(selected(&d), ["second-a"], "at t={now}:\n{d}");
            assert!(!d.changed);
            previous = d.to_previous();
        }
    }
    // Once it stays up for the whole period, it takes its place back.
    let d = run(&spec, &fleet(up(plain("primary"), t)), &previous, t + 60);
    assert_eq!(selected(&d), ["primary"]);
}

#[test]
fn first_placement_is_not_delayed_by_stabilization() {
    // Nothing placed yet: the primary is used even though it just became ready.
    let d = run(
        &spec(Some(1)),
        &fleet(up(plain("primary"), 999)),
        &Default::default(),
        1_000,
    );
    assert_eq!(selected(&d), ["primary"]);
}

#[test]
fn recovered_secondary_rejoins_its_group_without_waiting() {
    // Failed over to the secondaries; second-b blips. It does not displace anyone (same rank),
    // so it rejoins as soon as it is ready.
    let d = run(
        &spec(None),
        &[
            down(plain("primary"), 0),
            plain("second-a"),
            up(plain("second-b"), 999),
            plain("other"),
        ],
        &was(&["second-a"]),
        1_000,
    );
    assert_eq!(selected(&d), ["second-a", "second-b"]);
}

#[test]
fn previous_selection_is_carried_in_selected_since() {
    let d = run(
        &spec(None),
        &fleet(plain("primary")),
        &was(&["primary"]),
        5_000,
    );
    assert_eq!(
        d.verdict("primary").and_then(|v| v.selected_since),
        Some(at(0))
    );
    assert!(!d.changed);
    assert_eq!(d.last_change, Some(at(0)));
    assert_eq!(d.to_previous(), was(&["primary"]));
}

#[test]
fn failback_goes_to_the_stable_cluster_not_an_unstable_better_one() {
    // Failed over to `other` (no group). `second-a` is stable, `primary` only just came back:
    // the object moves to the secondaries now, and to the primary only once it is stable.
    let inventory = [
        up(plain("primary"), 995),
        plain("second-a"),
        down(plain("second-b"), 0),
        plain("other"),
    ];
    let d = run(&spec(None), &inventory, &was(&["other"]), 1_000);
    assert_eq!(selected(&d), ["second-a"]);
    assert_eq!(verdict_of(&d, "primary").1, Reason::FailbackPending);
    assert_eq!(verdict_of(&d, "other").1, Reason::LowerPriority);
    // Fed back, the decision reproduces itself.
    let again = run(&spec(None), &inventory, &d.to_previous(), 1_000);
    assert_eq!(again.selected, d.selected);
}

#[test]
fn unstable_peers_join_a_group_that_failback_moved_to() {
    // Failed over to `other`; both secondaries are back, one of them only just. Failing back to
    // the stable one moves the selection to rank 1, so its just-recovered peer displaces nobody
    // and joins at once (as it would on the next reconcile anyway).
    let inventory = [
        down(plain("primary"), 0),
        plain("second-a"),
        up(plain("second-b"), 999),
        plain("other"),
    ];
    let d = run(&spec(None), &inventory, &was(&["other"]), 1_000);
    assert_eq!(selected(&d), ["second-a", "second-b"]);
    let again = run(&spec(None), &inventory, &d.to_previous(), 1_000);
    assert_eq!(again.selected, d.selected);
}
