//! Property tests for the invariants: nothing unhealthy, filtered or (newly) tainted is
//! selected; counts and spread are respected; replicas add up to the total within bounds; the
//! result is deterministic and independent of inventory order; unrelated clusters cause no
//! reshuffle. Bounded to a few hundred small cases so the suite stays fast.
mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use flotilla_placement::{
    ClusterInfo, Decision, DecisionInput, FailbackMode, Health, LabelSelector, PlacementSpec,
    PreviousDecision, PriorityGroup, ReplicaPreference, ReplicaRequest, ReplicaTarget,
    SelectorOperator, SpreadConstraint, Taint, TaintEffect, Toleration, TolerationOperator,
    Verdict, decide, divide_replicas,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const POOL: usize = 24;
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

fn name(i: usize) -> String {
    format!("c{i:02}")
}

#[derive(Clone, Debug)]
struct Attrs {
    region: Option<usize>,
    zone: Option<usize>,
    gold: bool,
    ready: bool,
    since: u64,
    taint: Option<(usize, TaintEffect)>,
    capacity: Option<i32>,
}

fn effect() -> impl Strategy<Value = TaintEffect> {
    prop_oneof![Just(TaintEffect::NoSchedule), Just(TaintEffect::NoExecute)]
}

fn attrs() -> impl Strategy<Value = Attrs> {
    (
        prop::option::weighted(0.9, 0..REGIONS.len()),
        prop::option::weighted(0.8, 0usize..4),
        any::<bool>(),
        prop::bool::weighted(0.8),
        0u64..2_000,
        prop::option::weighted(0.2, (0usize..2, effect())),
        prop::option::weighted(0.2, 0i32..10),
    )
        .prop_map(
            |(region, zone, gold, ready, since, taint, capacity)| Attrs {
                region,
                zone,
                gold,
                ready,
                since,
                taint,
                capacity,
            },
        )
}

fn build(i: usize, a: &Attrs) -> ClusterInfo {
    let mut c = ClusterInfo::new(name(i)).with_health(Health {
        ready: a.ready,
        since: at(a.since),
    });
    if let Some(r) = a.region {
        c = c.with_label(REGION, REGIONS[r]);
    }
    if let Some(z) = a.zone {
        c = c.with_label("zone", format!("z{z}"));
    }
    if a.gold {
        c = c.with_label("tier", "gold");
    }
    if let Some((k, e)) = a.taint {
        c = c.with_taint(Taint::new(format!("k{k}"), "v", e));
    }
    if let Some(cap) = a.capacity {
        c = c.with_capacity_replicas(cap);
    }
    c
}

fn inventory() -> impl Strategy<Value = Vec<ClusterInfo>> {
    prop::collection::vec(prop::option::weighted(0.6, attrs()), 0..=POOL).prop_map(|v| {
        v.iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| build(i, a)))
            .collect()
    })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::from_labels([("tier", "gold")])),
        Just(LabelSelector::default().with_expression(REGION, SelectorOperator::In, ["eu", "us"])),
        Just(LabelSelector::default().with_expression(REGION, SelectorOperator::NotIn, ["us"])),
        Just(LabelSelector::default().with_expression(
            "zone",
            SelectorOperator::Exists,
            Vec::<String>::new()
        )),
        Just(LabelSelector::default().with_expression(
            "tier",
            SelectorOperator::DoesNotExist,
            Vec::<String>::new()
        )),
    ]
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence((0..POOL).collect::<Vec<_>>(), 0..8)
        .prop_map(|v| v.into_iter().map(name).collect())
}

fn spread() -> impl Strategy<Value = SpreadConstraint> {
    (
        prop_oneof![Just(REGION), Just("zone")],
        prop::option::of(1u32..3),
        prop::option::of(1u32..4),
    )
        .prop_map(|(k, max, min)| SpreadConstraint::new(k, max, min))
}

fn toleration() -> impl Strategy<Value = Toleration> {
    prop_oneof![
        Just(Toleration::everything()),
        Just(Toleration {
            key: Some("k0".into()),
            operator: TolerationOperator::Exists,
            ..Toleration::default()
        }),
        Just(Toleration {
            key: Some("k1".into()),
            value: Some("v".into()),
            ..Toleration::default()
        }),
        Just(Toleration {
            effect: Some(TaintEffect::NoSchedule),
            ..Toleration::everything()
        }),
    ]
}

fn group() -> impl Strategy<Value = PriorityGroup> {
    prop_oneof![
        3 => names().prop_map(PriorityGroup::of_clusters),
        1 => selector().prop_map(PriorityGroup::of_selector),
    ]
}

fn spec() -> impl Strategy<Value = PlacementSpec> {
    (
        prop::option::weighted(0.3, names()),
        prop::option::weighted(0.3, selector()),
        prop::option::weighted(0.6, 1u32..6),
        prop::collection::vec(spread(), 0..=2),
        prop::collection::vec(toleration(), 0..=2),
        prop::collection::vec(group(), 0..=3),
        prop::bool::weighted(0.2),
        0u32..120,
    )
        .prop_map(
            |(clusters, selector, max, spread, tolerations, groups, never, stab)| {
                let mut spec = PlacementSpec {
                    clusters: clusters.unwrap_or_default(),
                    cluster_selector: selector,
                    failover_priority: groups,
                    ..PlacementSpec::default()
                };
                spec.constraints.max_clusters = max;
                spec.constraints.spread = spread;
                spec.constraints.tolerations = tolerations;
                spec.failback.stabilization_seconds = stab;
                if never {
                    spec.failback.mode = FailbackMode::Never;
                }
                spec
            },
        )
}

fn previous() -> impl Strategy<Value = PreviousDecision> {
    names().prop_map(|n| PreviousDecision::from_names(n, at(500)))
}

fn request() -> impl Strategy<Value = Option<ReplicaRequest>> {
    let pref = (
        prop::option::of(0u32..5),
        prop::option::weighted(0.3, 0i32..6),
        prop::option::weighted(0.3, 0i32..12),
    );
    prop::option::weighted(
        0.5,
        (
            0i32..60,
            0u32..3,
            prop::collection::vec(prop::option::weighted(0.5, pref), POOL),
        )
            .prop_map(|(total, default_weight, prefs)| ReplicaRequest {
                total,
                default_weight,
                preferences: prefs
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let (weight, min, max) = p?;
                        Some(ReplicaPreference {
                            name: name(i),
                            weight,
                            min_replicas: min,
                            max_replicas: max,
                        })
                    })
                    .collect(),
            }),
    )
}

#[derive(Debug)]
struct Case {
    spec: PlacementSpec,
    clusters: Vec<ClusterInfo>,
    previous: PreviousDecision,
    now: u64,
    request: Option<ReplicaRequest>,
}

impl Case {
    fn decide_with(&self, clusters: &[ClusterInfo], previous: &PreviousDecision) -> Decision {
        decide(&DecisionInput {
            spec: &self.spec,
            clusters,
            previous,
            now: at(self.now),
            replicas: self.request.as_ref(),
            namespace: None,
        })
        .expect("generated specs are valid")
    }

    fn decide(&self) -> Decision {
        self.decide_with(&self.clusters, &self.previous)
    }
}

fn case() -> impl Strategy<Value = Case> {
    (spec(), inventory(), previous(), 1_000u64..2_200, request()).prop_map(
        |(spec, clusters, previous, now, request)| Case {
            spec,
            clusters,
            previous,
            now,
            request,
        },
    )
}

fn untolerated(spec: &PlacementSpec, c: &ClusterInfo, effect: TaintEffect) -> bool {
    c.taints.iter().any(|t| {
        t.effect == effect
            && !spec
                .constraints
                .tolerations
                .iter()
                .any(|tol| tol.tolerates(t))
    })
}

fn check_selection(case: &Case, d: &Decision) -> Result<(), TestCaseError> {
    let spec = &case.spec;
    let by_name: BTreeMap<&str, &ClusterInfo> =
        case.clusters.iter().map(|c| (&*c.name, c)).collect();
    let before: BTreeSet<&str> = case
        .previous
        .selected
        .iter()
        .map(|p| p.name.as_str())
        .collect();

    // Every cluster exactly once, sorted by name.
    let verdict_names: Vec<&str> = d.clusters.iter().map(|v| &*v.name).collect();
    prop_assert_eq!(&verdict_names, &by_name.keys().copied().collect::<Vec<_>>());

    // `selected` lists exactly the Selected verdicts, in (priority, name) order.
    let mut expected: Vec<(u32, &str)> = d
        .clusters
        .iter()
        .filter(|v| v.verdict == Verdict::Selected)
        .map(|v| (v.priority.unwrap_or(0), &*v.name))
        .collect();
    expected.sort();
    let expected: Vec<&str> = expected.into_iter().map(|(_, n)| n).collect();
    prop_assert_eq!(
        &d.selected.iter().map(String::as_str).collect::<Vec<_>>(),
        &expected
    );

    // Nothing unhealthy, filtered or newly tainted is selected.
    for n in &d.selected {
        let c = by_name[n.as_str()];
        prop_assert!(c.health.ready, "{} selected but not ready", n);
        prop_assert!(spec.clusters.is_empty() || spec.clusters.contains(n));
        prop_assert!(
            spec.cluster_selector
                .as_ref()
                .is_none_or(|s| s.matches(&c.labels))
        );
        prop_assert!(
            spec.constraints
                .spread
                .iter()
                .all(|s| c.labels.contains_key(&s.topology_key))
        );
        prop_assert!(!untolerated(spec, c, TaintEffect::NoExecute));
        prop_assert!(
            !untolerated(spec, c, TaintEffect::NoSchedule) || before.contains(n.as_str()),
            "{} newly placed despite NoSchedule",
            n
        );
    }
    for v in &d.clusters {
        let c = by_name[&*v.name];
        if v.verdict == Verdict::Unhealthy {
            prop_assert!(!c.health.ready);
        }
    }

    // Counts and spread.
    if let Some(max) = spec.constraints.max_clusters {
        prop_assert!(d.selected.len() <= max as usize);
    }
    for s in &spec.constraints.spread {
        let mut per_value: BTreeMap<&str, u32> = BTreeMap::new();
        for n in &d.selected {
            if let Some(v) = by_name[n.as_str()].labels.get(&s.topology_key) {
                *per_value.entry(v).or_default() += 1;
            }
        }
        if let Some(max) = s.max_per_group {
            prop_assert!(per_value.values().all(|&n| n <= max), "{:?}", per_value);
        }
        if let Some(min) = s.min_groups
            && (per_value.len() as u32) < min
        {
            prop_assert!(d.unsatisfied.iter().any(|u| u.contains(&s.topology_key)));
        }
    }
    Ok(())
}

fn check_replicas(case: &Case, d: &Decision) -> Result<(), TestCaseError> {
    let Some(request) = &case.request else {
        prop_assert!(d.clusters.iter().all(|v| v.replicas.is_none()));
        return Ok(());
    };
    let mut sum_min = 0i64;
    let mut sum_max = Some(0i64);
    let mut sum = 0i64;
    for v in &d.clusters {
        if v.verdict != Verdict::Selected {
            prop_assert_eq!(v.replicas, None);
            continue;
        }
        let replicas = v.replicas.unwrap_or(-1);
        prop_assert!(replicas >= 0);
        let cluster = case.clusters.iter().find(|c| c.name == v.name);
        let pref = request.preferences.iter().find(|p| *p.name == *v.name);
        let max = [
            pref.and_then(|p| p.max_replicas),
            cluster.and_then(|c| c.capacity_replicas),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|m| i64::from(m.max(0)));
        let min = i64::from(pref.and_then(|p| p.min_replicas).unwrap_or(0).max(0));
        let min = max.map_or(min, |m| min.min(m));
        if let Some(max) = max {
            prop_assert!(
                i64::from(replicas) <= max,
                "{} exceeds its max {}",
                v.name,
                max
            );
        }
        sum_min += min;
        sum_max = sum_max.zip(max).map(|(a, b)| a + b);
        sum += i64::from(replicas);
    }
    let total = i64::from(request.total);
    prop_assert!(sum <= total, "assigned {} > total {}", sum, total);
    let feasible = !d.selected.is_empty() && sum_min <= total && sum_max.is_none_or(|m| total <= m);
    if feasible {
        prop_assert_eq!(sum, total);
    } else if sum != total {
        prop_assert!(!d.unsatisfied.is_empty());
    }
    Ok(())
}

proptest! {
    // Regression seeds live next to this file (tests/properties.proptest-regressions).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn invariants_hold(case in case()) {
        let d = case.decide();
        check_selection(&case, &d)?;
        check_replicas(&case, &d)?;
    }

    #[test]
    fn deterministic_and_order_independent(case in case()) {
        let d = case.decide();
        prop_assert_eq!(&d, &case.decide());
        let mut reversed = case.clusters.clone();
        reversed.reverse();
        prop_assert_eq!(&d, &case.decide_with(&reversed, &case.previous));
        let mut prev = case.previous.clone();
        prev.selected.reverse();
        prop_assert_eq!(&d, &case.decide_with(&case.clusters, &prev));
    }

    #[test]
    fn a_decision_is_a_fixed_point(case in case()) {
        let d = case.decide();
        let again = case.decide_with(&case.clusters, &d.to_previous());
        prop_assert_eq!(&again.selected, &d.selected, "\n{}\n{}", d, again);
        prop_assert!(!again.changed);
        // Every verdict, reason and message too, once fed back: status holds them, and a text
        // that changed at every reconcile would be written again for nothing. (The first feed
        // may still change a text where the case's own previous selection was left, e.g. a
        // tainted cluster that was kept while selected; that is once per move.)
        let third = case.decide_with(&case.clusters, &again.to_previous());
        prop_assert_eq!(third.to_string(), again.to_string());
    }

    #[test]
    fn removing_an_unselected_cluster_does_not_reshuffle(case in case(), pick in any::<prop::sample::Index>()) {
        let d = case.decide();
        let previous = d.to_previous();
        let unselected: Vec<&str> = d
            .clusters
            .iter()
            .filter(|v| v.verdict != Verdict::Selected)
            .map(|v| &*v.name)
            .collect();
        if unselected.is_empty() {
            return Ok(());
        }
        let gone = unselected[pick.index(unselected.len())];
        let fewer: Vec<ClusterInfo> = case.clusters.iter().filter(|c| &*c.name != gone).cloned().collect();
        let after = case.decide_with(&fewer, &previous);
        prop_assert_eq!(&after.selected, &d.selected, "removed {}\n{}\n{}", gone, d, after);
    }

    #[test]
    fn adding_an_unrelated_cluster_does_not_reshuffle(case in case(), extra in attrs()) {
        let d = case.decide();
        let previous = d.to_previous();
        let newcomer = build(POOL + 1, &extra);
        let mut more = case.clusters.clone();
        more.push(newcomer.clone());
        let after = case.decide_with(&more, &previous);
        let v = after.verdict(&newcomer.name).map(|v| (v.verdict, v.priority));
        let worst = d
            .selected
            .iter()
            .filter_map(|n| d.verdict(n)?.priority)
            .max();
        let ranks_at_or_below = match (v.and_then(|v| v.1), worst) {
            (Some(p), Some(w)) => p >= w,
            _ => true,
        };
        // A newcomer that lets an unmet spread constraint be met is related by definition.
        let spread_was_unmet = d.unsatisfied.iter().any(|u| u.starts_with("spread over"));
        if spread_was_unmet {
            return Ok(());
        }
        if v.map(|v| v.0) != Some(Verdict::Selected) {
            // Not selected: nothing else may change.
            prop_assert_eq!(&after.selected, &d.selected, "\n{}\n{}", d, after);
        } else if ranks_at_or_below {
            // Selected without outranking anyone: everything selected stays selected.
            for n in &d.selected {
                prop_assert!(after.selected.contains(n), "{} dropped\n{}\n{}", n, d, after);
            }
        }
    }

    #[test]
    fn division_adds_up_within_bounds(
        total in -5i32..200,
        targets in prop::collection::vec(
            (0u32..3, 0u32..6, -2i32..8, prop::option::of(-1i32..20), prop::bool::weighted(0.85)),
            0..12,
        ),
    ) {
        let targets: Vec<ReplicaTarget> = targets
            .into_iter()
            .enumerate()
            .map(|(i, (rank, weight, min, max, healthy))| ReplicaTarget {
                name: name(i),
                rank,
                weight,
                min_replicas: min,
                max_replicas: max,
                healthy,
            })
            .collect();
        let division = divide_replicas(total, &targets);
        let mut reversed = targets.clone();
        reversed.reverse();
        prop_assert_eq!(&division, &divide_replicas(total, &reversed));

        let total = i64::from(total.max(0));
        let (mut sum_min, mut sum_max) = (0i64, Some(0i64));
        for t in &targets {
            let got = i64::from(division.replicas_of(&t.name).unwrap_or(-1));
            prop_assert!(got >= 0);
            if !t.healthy {
                prop_assert_eq!(got, 0);
                continue;
            }
            let max = t.max_replicas.map(|m| i64::from(m.max(0)));
            let min = i64::from(t.min_replicas.max(0));
            let min = max.map_or(min, |m| min.min(m));
            if let Some(max) = max {
                prop_assert!(got <= max);
            }
            sum_min += min;
            sum_max = sum_max.zip(max).map(|(a, b)| a + b);
        }
        prop_assert!(division.total() <= total);
        let any_healthy = targets.iter().any(|t| t.healthy);
        let feasible = (any_healthy || total == 0) && sum_min <= total && sum_max.is_none_or(|m| total <= m);
        if feasible {
            prop_assert_eq!(division.total(), total);
            for t in targets.iter().filter(|t| t.healthy) {
                let min = i64::from(t.min_replicas.max(0));
                let min = t.max_replicas.map_or(min, |m| min.min(i64::from(m.max(0))));
                prop_assert!(i64::from(division.replicas_of(&t.name).unwrap_or(0)) >= min);
            }
        } else {
            prop_assert!(!division.unsatisfied.is_empty());
        }
    }

    #[test]
    fn unbounded_division_is_proportional(
        total in 0i32..500,
        weights in prop::collection::vec(1u32..10, 1..10),
    ) {
        let targets: Vec<ReplicaTarget> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| ReplicaTarget {
                name: name(i),
                rank: 0,
                weight,
                min_replicas: 0,
                max_replicas: None,
                healthy: true,
            })
            .collect();
        let division = divide_replicas(total, &targets);
        let weight_sum: u32 = weights.iter().sum();
        for t in &targets {
            let exact = f64::from(total) * f64::from(t.weight) / f64::from(weight_sum);
            let got = f64::from(division.replicas_of(&t.name).unwrap_or(-1));
            prop_assert!((got - exact).abs() < 1.0, "{} got {} for exact share {}", t.name, got, exact);
        }
        prop_assert_eq!(division.total(), i64::from(total));
    }
}

proptest! {
    // Few random cases have a cluster held by the failback gate, so this one runs more cases.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(1_000)
    })]

    #[test]
    fn flapping_a_pending_cluster_changes_nothing(case in case(), flaps in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 1..6)) {
        // A recovered cluster held back by the failback gate may go down and come back up any
        // number of times within the stabilization period: the selection must not move.
        let d = case.decide();
        let previous = d.to_previous();
        let d = case.decide_with(&case.clusters, &previous);
        let stab_ms = u64::from(case.spec.failback.stabilization_seconds) * 1_000;
        let now_ms = at(case.now).as_unix_millis();
        for v in d.clusters.iter().filter(|v| v.reason == flotilla_placement::Reason::FailbackPending) {
            for &(ready, when) in &flaps {
                // A transition strictly inside the last `stab` window (or a down state).
                let offset = when.index(usize::try_from(stab_ms.max(1)).unwrap_or(1)) as u64;
                let since = now_ms.saturating_sub(offset);
                let flapped: Vec<ClusterInfo> = case
                    .clusters
                    .iter()
                    .map(|c| {
                        let mut c = c.clone();
                        if c.name == v.name {
                            c.health = Health { ready, since: flotilla_placement::Timestamp::from_unix_millis(since) };
                        }
                        c
                    })
                    .collect();
                let after = case.decide_with(&flapped, &previous);
                prop_assert_eq!(&after.selected, &d.selected, "{} flapped to ready={} since {}\n{}\n{}", v.name, ready, since, d, after);
            }
        }
    }
}
