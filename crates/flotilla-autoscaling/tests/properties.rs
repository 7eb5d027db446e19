//! Invariants of `decide`, checked with proptest over random specs, behaviors and metric series.

use flotilla_autoscaling::{
    MetricReading, MetricSource, MetricSpec, MetricTarget, ResolvedBehavior, ResolvedRules,
    ScaleInput, ScalerState, ScalingBehavior, ScalingPolicyRule, ScalingPolicyType, ScalingRules,
    ScalingSpec, SelectPolicy, Timestamp, decide,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn select_policy() -> impl Strategy<Value = SelectPolicy> {
    prop_oneof![
        Just(SelectPolicy::Max),
        Just(SelectPolicy::Min),
        Just(SelectPolicy::Disabled)
    ]
}

fn policy() -> impl Strategy<Value = ScalingPolicyRule> {
    (any::<bool>(), -5i32..300, -5i32..120).prop_map(|(pods, value, period)| {
        if pods {
            ScalingPolicyRule::pods(value, period)
        } else {
            ScalingPolicyRule::percent(value, period)
        }
    })
}

fn tolerance() -> impl Strategy<Value = f64> {
    prop_oneof![-0.5f64..1.5, Just(f64::NAN), Just(0.0)]
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    (
        proptest::option::of(-10i32..400),
        proptest::option::of(select_policy()),
        proptest::collection::vec(policy(), 0..4),
        proptest::option::of(tolerance()),
    )
        .prop_map(|(window, select, policies, tolerance)| ScalingRules {
            stabilization_window_seconds: window,
            select_policy: select,
            policies,
            tolerance,
        })
}

fn behavior() -> impl Strategy<Value = Option<ScalingBehavior>> {
    proptest::option::of(
        (proptest::option::of(rules()), proptest::option::of(rules())).prop_map(
            |(scale_up, scale_down)| ScalingBehavior {
                scale_up,
                scale_down,
            },
        ),
    )
}

fn metric_spec() -> impl Strategy<Value = MetricSpec> {
    prop_oneof![
        (1i32..200).prop_map(|u| MetricSpec::resource_utilization("cpu", u)),
        (0.01f64..100.0).prop_map(|v| MetricSpec::resource_average_value("memory", v)),
        (0.01f64..100.0).prop_map(|v| MetricSpec::pods_average_value("rps", v)),
        (0.01f64..1000.0).prop_map(|v| MetricSpec::external_value("lag", v)),
        (0.01f64..100.0).prop_map(|v| MetricSpec::external_average_value("queue", v)),
        // Invalid combinations and targets.
        Just(MetricSpec {
            source: MetricSource::Pods { name: "x".into() },
            target: MetricTarget::Value(1.0),
        }),
        Just(MetricSpec::external_value("zero", 0.0)),
    ]
}

fn reading() -> impl Strategy<Value = MetricReading> {
    prop_oneof![
        8 => (-10.0f64..2000.0).prop_map(MetricReading::Value),
        1 => Just(MetricReading::Value(f64::NAN)),
        1 => Just(MetricReading::Failed("unavailable".into())),
    ]
}

/// A valid spec (0 <= min <= max) and a starting count inside `[min, max]`.
fn spec_and_start() -> impl Strategy<Value = (ScalingSpec, i32)> {
    (
        0i32..10,
        0i32..60,
        proptest::collection::vec(metric_spec(), 1..4),
        behavior(),
    )
        .prop_flat_map(|(min, span, metrics, behavior)| {
            let max = (min + span).max(1);
            let spec = ScalingSpec {
                min_replicas: min,
                max_replicas: max,
                metrics,
                behavior,
            };
            (Just(spec), min..=max)
        })
}

/// Steps: seconds since the previous call (0 allowed) and one reading per metric.
fn steps() -> impl Strategy<Value = Vec<(u64, Vec<MetricReading>)>> {
    proptest::collection::vec(
        (0u64..45_000, proptest::collection::vec(reading(), 0..4)),
        1..40,
    )
}

/// The replicas in effect at `t` (after every change made at or before `t`).
fn replicas_as_of(start: i32, timeline: &[(u64, i32)], t: i128) -> i64 {
    timeline
        .iter()
        .rev()
        .find(|(at, _)| i128::from(*at) <= t)
        .map_or(i64::from(start), |(_, r)| i64::from(*r))
}

/// The most (scale-up) or least (scale-down) replicas the policies allow at `now`, from the
/// replica timeline alone (independently of the state's event bookkeeping).
fn allowed(
    rules: &ResolvedRules,
    up: bool,
    start: i32,
    timeline: &[(u64, i32)],
    now: u64,
    current: i32,
) -> i64 {
    let current = i64::from(current);
    if rules.select_policy == SelectPolicy::Disabled {
        return current;
    }
    let bounds = rules.policies.iter().map(|p| {
        let period_ms = i128::from(p.period_seconds.max(0)) * 1000;
        let base = replicas_as_of(start, timeline, i128::from(now) - period_ms);
        let v = i64::from(p.value);
        match (p.policy_type, up) {
            (ScalingPolicyType::Pods, true) => base + v,
            (ScalingPolicyType::Pods, false) => base - v,
            (ScalingPolicyType::Percent, true) => {
                (base as f64 * (1.0 + v as f64 / 100.0)).ceil() as i64
            }
            (ScalingPolicyType::Percent, false) => (base as f64 * (1.0 - v as f64 / 100.0)) as i64,
        }
    });
    let most_permissive = up == (rules.select_policy == SelectPolicy::Max);
    let limit = if most_permissive {
        bounds.max()
    } else {
        bounds.min()
    };
    limit.unwrap_or(current)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The result stays in [min, max]; no policy is exceeded over its period, given the history
    /// of applied changes; and the same inputs always give the same decision and state.
    #[test]
    fn bounded_rate_limited_deterministic((spec, start) in spec_and_start(), steps in steps()) {
        let behavior = ResolvedBehavior::resolve(spec.behavior.as_ref());
        let mut state = ScalerState::new();
        let mut current = start;
        let mut now = T0;
        let mut timeline: Vec<(u64, i32)> = Vec::new();
        for (dt, readings) in steps {
            now += dt;
            let input = ScaleInput { current_replicas: current, metrics: readings };
            let mut twin = state.clone();
            let d = decide(&spec, &input, &mut state, Timestamp::from_unix_millis(now));
            let again = decide(&spec, &input, &mut twin, Timestamp::from_unix_millis(now));
            prop_assert_eq!(&d, &again);
            prop_assert_eq!(&state, &twin);

            let desired = d.desired_replicas;
            prop_assert!(spec.min_replicas <= desired && desired <= spec.max_replicas, "{d:?}");
            prop_assert_eq!(d.rescale, desired != current);
            if desired > current {
                let limit = allowed(&behavior.scale_up, true, start, &timeline, now, current);
                prop_assert!(i64::from(desired) <= limit.max(i64::from(current)), "up {current} -> {desired}, limit {limit}");
                prop_assert!(d.proposed_replicas.is_some_and(|p| desired <= p.max(spec.min_replicas)));
            } else if desired < current {
                let limit = allowed(&behavior.scale_down, false, start, &timeline, now, current);
                prop_assert!(i64::from(desired) >= limit.min(i64::from(current)), "down {current} -> {desired}, limit {limit}");
                prop_assert!(d.proposed_replicas.is_some_and(|p| desired >= p.min(spec.max_replicas)));
            }
            if desired != current {
                timeline.push((now, desired));
            }
            current = desired;
        }
    }

    /// With one `Pods` scale-up policy and scale-down disabled, the replicas never grow by more
    /// than `value` within any window of `periodSeconds`.
    #[test]
    fn pods_policy_caps_growth_in_every_window(
        value in 1i32..10,
        period in 1i32..120,
        max in 1i32..200,
        proposals in proptest::collection::vec((0u64..60_000, 0.0f64..400.0), 1..50),
    ) {
        let spec = ScalingSpec {
            min_replicas: 1,
            max_replicas: max,
            metrics: vec![MetricSpec::external_average_value("queue", 1.0)],
            behavior: Some(ScalingBehavior {
                scale_up: Some(ScalingRules {
                    policies: vec![ScalingPolicyRule::pods(value, period)],
                    ..Default::default()
                }),
                scale_down: Some(ScalingRules {
                    select_policy: Some(SelectPolicy::Disabled),
                    ..Default::default()
                }),
            }),
        };
        let mut state = ScalerState::new();
        let mut current = 1;
        let mut now = T0;
        let mut timeline = Vec::new();
        for (dt, value_read) in proposals {
            now += dt;
            let input = ScaleInput { current_replicas: current, metrics: vec![MetricReading::Value(value_read)] };
            let d = decide(&spec, &input, &mut state, Timestamp::from_unix_millis(now));
            prop_assert!(d.desired_replicas >= current);
            if d.desired_replicas != current {
                timeline.push((now, d.desired_replicas));
            }
            current = d.desired_replicas;
        }
        let period_ms = i128::from(period) * 1000;
        let mut ends: Vec<i128> = timeline.iter().map(|(t, _)| i128::from(*t)).collect();
        ends.extend(timeline.iter().map(|(t, _)| i128::from(*t) + period_ms - 1));
        for end in ends {
            let growth = replicas_as_of(1, &timeline, end) - replicas_as_of(1, &timeline, end - period_ms);
            prop_assert!(growth <= i64::from(value), "grew {growth} in the window ending {end}");
        }
    }

    /// With every metric missing or unreadable the count never changes, whatever came before.
    #[test]
    fn never_scales_on_missing_data(
        (spec, start) in spec_and_start(),
        history in steps(),
        failures in proptest::collection::vec(
            prop_oneof![Just(MetricReading::Value(f64::NAN)), Just(MetricReading::Failed("down".into()))],
            0..4,
        ),
        dt in 0u64..1_000_000,
    ) {
        let mut state = ScalerState::new();
        let mut current = start;
        let mut now = T0;
        for (step_dt, readings) in history {
            now += step_dt;
            let input = ScaleInput { current_replicas: current, metrics: readings };
            current = decide(&spec, &input, &mut state, Timestamp::from_unix_millis(now)).desired_replicas;
        }
        let events_before = state.scale_events().to_vec();
        let input = ScaleInput { current_replicas: current, metrics: failures };
        let d = decide(&spec, &input, &mut state, Timestamp::from_unix_millis(now + dt));
        prop_assert_eq!(d.desired_replicas, current);
        prop_assert!(!d.rescale);
        prop_assert_eq!(d.proposed_replicas, None);
        prop_assert!(!d.scaling_active.status);
        // No new scale event was recorded.
        prop_assert!(state.scale_events().iter().all(|e| events_before.contains(e)));
    }

    /// Arbitrary numbers anywhere (negative counts, min above max, NaN and infinite values,
    /// extreme policies, time going backwards) never panic, and the result is never negative.
    #[test]
    fn never_panics(
        min in any::<i32>(),
        max in any::<i32>(),
        windows in (any::<Option<i32>>(), any::<Option<i32>>()),
        policies in proptest::collection::vec((any::<bool>(), any::<i32>(), any::<i32>()), 0..4),
        selects in (proptest::option::of(select_policy()), proptest::option::of(select_policy())),
        tolerances in (any::<Option<f64>>(), any::<Option<f64>>()),
        targets in proptest::collection::vec((0u8..5, any::<f64>(), any::<i32>()), 0..4),
        calls in proptest::collection::vec(
            (any::<i32>(), any::<u64>(), proptest::collection::vec(any::<f64>(), 0..5)),
            1..8,
        ),
    ) {
        let policies: Vec<_> = policies
            .into_iter()
            .map(|(pods, value, period)| if pods { ScalingPolicyRule::pods(value, period) } else { ScalingPolicyRule::percent(value, period) })
            .collect();
        let spec = ScalingSpec {
            min_replicas: min,
            max_replicas: max,
            metrics: targets
                .into_iter()
                .map(|(kind, v, u)| match kind {
                    0 => MetricSpec::resource_utilization("cpu", u),
                    1 => MetricSpec::resource_average_value("mem", v),
                    2 => MetricSpec::pods_average_value("rps", v),
                    3 => MetricSpec::external_value("lag", v),
                    _ => MetricSpec::external_average_value("queue", v),
                })
                .collect(),
            behavior: Some(ScalingBehavior {
                scale_up: Some(ScalingRules {
                    stabilization_window_seconds: windows.0,
                    select_policy: selects.0,
                    policies: policies.clone(),
                    tolerance: tolerances.0,
                }),
                scale_down: Some(ScalingRules {
                    stabilization_window_seconds: windows.1,
                    select_policy: selects.1,
                    policies,
                    tolerance: tolerances.1,
                }),
            }),
        };
        let mut state = ScalerState::new();
        for (current, now, values) in calls {
            let input = ScaleInput {
                current_replicas: current,
                metrics: values.into_iter().map(MetricReading::Value).collect(),
            };
            let d = decide(&spec, &input, &mut state, Timestamp::from_unix_millis(now));
            prop_assert!(d.desired_replicas >= 0);
            prop_assert!(d.proposed_replicas.is_none_or(|p| p >= 0));
        }
    }
}
