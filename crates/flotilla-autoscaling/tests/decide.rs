//! End-to-end rules of `decide`, with the worked examples of the Kubernetes HPA documentation.

use flotilla_autoscaling::{
    AbleToScaleReason, MetricReading, MetricSpec, ScaleDecision, ScaleInput, ScalerState,
    ScalingActiveReason, ScalingBehavior, ScalingLimitedReason, ScalingPolicyRule, ScalingRules,
    ScalingSpec, SelectPolicy, Timestamp, decide,
};

const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + secs)
}

fn spec(
    min: i32,
    max: i32,
    metrics: Vec<MetricSpec>,
    behavior: Option<ScalingBehavior>,
) -> ScalingSpec {
    ScalingSpec {
        min_replicas: min,
        max_replicas: max,
        metrics,
        behavior,
    }
}

fn input(current: i32, readings: &[f64]) -> ScaleInput {
    ScaleInput {
        current_replicas: current,
        metrics: readings.iter().map(|v| MetricReading::Value(*v)).collect(),
    }
}

/// A metric whose proposal is exactly `ceil(value)` (outside the tolerance).
fn direct() -> MetricSpec {
    MetricSpec::external_average_value("direct", 1.0)
}

fn no_down_window() -> ScalingBehavior {
    ScalingBehavior {
        scale_up: None,
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(0),
            ..Default::default()
        }),
    }
}

fn limited(d: &ScaleDecision) -> Option<ScalingLimitedReason> {
    d.scaling_limited.as_ref().map(|c| c.reason)
}

#[test]
fn docs_algorithm_example_scale_up() {
    // currentReplicas 2, current metric 200m, desired 100m -> 4.
    let s = spec(
        1,
        10,
        vec![MetricSpec::pods_average_value("rps", 0.1)],
        None,
    );
    let mut state = ScalerState::new();
    let d = decide(&s, &input(2, &[0.2]), &mut state, at(0));
    assert_eq!(d.proposed_replicas, Some(4));
    assert_eq!(d.stabilized_replicas, Some(4));
    assert_eq!(d.desired_replicas, 4);
    assert!(d.rescale);
    assert_eq!(
        d.rescale_reason.as_deref(),
        Some("pods metric rps above target")
    );
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::ReadyForNewScale);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::ValidMetricFound
    );
    assert!(d.scaling_active.status);
    assert_eq!(
        d.scaling_active.message,
        "the HPA was able to successfully calculate a replica count from pods metric rps"
    );
    assert_eq!(limited(&d), Some(ScalingLimitedReason::DesiredWithinRange));
    assert_eq!(d.scaling_limited.as_ref().map(|c| c.status), Some(false));
    assert_eq!(d.metrics[0].average_value, Some(0.2));
    assert_eq!(state.last_scale_time(), Some(at(0)));
}

#[test]
fn docs_algorithm_example_scale_down() {
    // currentReplicas 2, current metric 50m, desired 100m -> 1.
    let m = vec![MetricSpec::pods_average_value("rps", 0.1)];
    let s = spec(1, 10, m.clone(), Some(no_down_window()));
    let d = decide(&s, &input(2, &[0.05]), &mut ScalerState::new(), at(0));
    assert_eq!(d.proposed_replicas, Some(1));
    assert_eq!(d.desired_replicas, 1);
    assert_eq!(
        d.rescale_reason.as_deref(),
        Some("All metrics below target")
    );

    // With the default 300 s scale-down window a fresh autoscaler first remembers the current
    // count (upstream recordInitialRecommendation), so it holds 2 until that ages out.
    let s = spec(1, 10, m, None);
    let mut state = ScalerState::new();
    let d = decide(&s, &input(2, &[0.05]), &mut state, at(0));
    assert_eq!(d.proposed_replicas, Some(1));
    assert_eq!(d.desired_replicas, 2);
    assert!(!d.rescale);
    assert_eq!(
        d.able_to_scale.reason,
        AbleToScaleReason::ScaleDownStabilized
    );
    let d = decide(&s, &input(2, &[0.05]), &mut state, at(299));
    assert_eq!(d.desired_replicas, 2);
    let d = decide(&s, &input(2, &[0.05]), &mut state, at(300));
    assert_eq!(d.desired_replicas, 1);
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::ReadyForNewScale);
}

#[test]
fn tolerance_ratio_1_05_does_not_scale() {
    let s = spec(
        1,
        100,
        vec![MetricSpec::resource_utilization("cpu", 40)],
        None,
    );
    let mut state = ScalerState::new();
    let d = decide(&s, &input(10, &[42.0]), &mut state, at(0));
    assert_eq!(d.metrics[0].usage_ratio, Some(1.05));
    assert_eq!(d.proposed_replicas, Some(10));
    assert_eq!(d.desired_replicas, 10);
    assert!(!d.rescale);
    assert_eq!(d.rescale_reason, None);
    assert_eq!(d.metrics[0].average_utilization, Some(42));
}

#[test]
fn per_direction_tolerance_from_behavior() {
    let behavior = ScalingBehavior {
        scale_up: Some(ScalingRules {
            tolerance: Some(0.0),
            ..Default::default()
        }),
        scale_down: Some(ScalingRules {
            tolerance: Some(0.5),
            stabilization_window_seconds: Some(0),
            ..Default::default()
        }),
    };
    let s = spec(
        1,
        100,
        vec![MetricSpec::external_value("lag", 100.0)],
        Some(behavior),
    );
    let d = decide(&s, &input(10, &[102.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 11);
    let d = decide(&s, &input(10, &[55.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 10);
    let d = decide(&s, &input(10, &[45.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 5);
}

#[test]
fn several_metrics_largest_wins() {
    let s = spec(
        1,
        100,
        vec![
            MetricSpec::resource_utilization("cpu", 50),
            MetricSpec::resource_utilization("memory", 80),
            MetricSpec::external_value("lag", 1000.0),
        ],
        None,
    );
    // cpu 75% -> ceil(1.5 * 8) = 12; memory 40% -> 4; lag 500 -> 4.
    let d = decide(
        &s,
        &input(8, &[75.0, 40.0, 500.0]),
        &mut ScalerState::new(),
        at(0),
    );
    assert_eq!(d.proposed_replicas, Some(12));
    assert_eq!(
        d.proposing_metric.as_deref(),
        Some("cpu resource utilization (percentage of request)")
    );
    assert_eq!(d.desired_replicas, 12);
    let props: Vec<_> = d.metrics.iter().map(|m| m.proposed_replicas).collect();
    assert_eq!(props, vec![Some(12), Some(4), Some(4)]);
}

#[test]
fn no_scale_down_when_a_metric_is_missing() {
    let s = spec(
        1,
        100,
        vec![
            MetricSpec::resource_utilization("cpu", 50),
            MetricSpec::external_value("lag", 1000.0),
        ],
        Some(no_down_window()),
    );
    let mut state = ScalerState::new();
    let readings = ScaleInput {
        current_replicas: 8,
        metrics: vec![
            MetricReading::Value(10.0),
            MetricReading::Failed("external metrics API unavailable".into()),
        ],
    };
    let d = decide(&s, &readings, &mut state, at(0));
    assert_eq!(d.metrics[0].proposed_replicas, Some(2));
    assert_eq!(d.proposed_replicas, None);
    assert_eq!(d.desired_replicas, 8);
    assert!(!d.rescale);
    assert!(!d.scaling_active.status);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::FailedGetExternalMetric
    );
    assert!(
        d.scaling_active
            .message
            .contains("external metrics API unavailable")
    );
    assert_eq!(d.scaling_limited, None);
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::SucceededGetScale);
    // No recommendation was recorded beyond the initial one, no scale event.
    assert_eq!(state.recommendations().len(), 1);
    assert!(state.scale_events().is_empty());

    // The same failure with a scale-up on the valid metric: scale up.
    let readings = ScaleInput {
        current_replicas: 8,
        metrics: vec![
            MetricReading::Value(100.0),
            MetricReading::Failed("external metrics API unavailable".into()),
        ],
    };
    let d = decide(&s, &readings, &mut state, at(15));
    assert_eq!(d.proposed_replicas, Some(16));
    assert_eq!(d.desired_replicas, 16);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::ValidMetricFound
    );
}

#[test]
fn never_scale_when_all_metrics_are_missing() {
    let s = spec(
        1,
        100,
        vec![direct(), MetricSpec::resource_utilization("cpu", 60)],
        None,
    );
    let mut state = ScalerState::new();
    for (i, readings) in [
        vec![],
        vec![MetricReading::Failed("down".into())],
        vec![
            MetricReading::Value(f64::NAN),
            MetricReading::Value(f64::INFINITY),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let d = decide(
            &s,
            &ScaleInput {
                current_replicas: 5,
                metrics: readings,
            },
            &mut state,
            at(i as u64 * 15),
        );
        assert_eq!(d.desired_replicas, 5);
        assert!(!d.rescale);
        assert_eq!(d.proposed_replicas, None);
        assert!(!d.scaling_active.status);
    }
    assert!(state.scale_events().is_empty());

    // No metrics at all.
    let s = spec(1, 100, vec![], None);
    let d = decide(&s, &input(5, &[]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::InvalidMetricSourceType
    );
}

#[test]
fn zero_replicas_disables_scaling() {
    let s = spec(1, 10, vec![direct()], None);
    let d = decide(&s, &input(0, &[50.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 0);
    assert!(!d.rescale);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::ScalingDisabled
    );
    assert!(!d.scaling_active.status);
    assert_eq!(
        d.scaling_active.message,
        "scaling is disabled since the replica count of the target is zero"
    );
    assert!(d.metrics.is_empty());
    // Negative current replicas are treated as 0.
    let d = decide(&s, &input(-3, &[50.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 0);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::ScalingDisabled
    );
}

#[test]
fn scale_from_zero_when_min_is_zero() {
    // minReplicas 0 (upstream HPAScaleToZero): External metrics can scale from 0.
    let s = spec(0, 10, vec![MetricSpec::external_value("queue", 10.0)], None);
    let d = decide(&s, &input(0, &[25.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.proposed_replicas, Some(3));
    assert_eq!(d.desired_replicas, 3);
    // Empty queue: stay at 0.
    let d = decide(&s, &input(0, &[0.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 0);
    assert!(!d.rescale);
    // A Resource metric cannot be computed without pods.
    let s = spec(
        0,
        10,
        vec![MetricSpec::resource_utilization("cpu", 50)],
        None,
    );
    let d = decide(&s, &input(0, &[90.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 0);
    assert_eq!(
        d.scaling_active.reason,
        ScalingActiveReason::FailedGetResourceMetric
    );
}

#[test]
fn current_outside_bounds_goes_to_the_bound() {
    let s = spec(2, 10, vec![direct()], None);
    let mut state = ScalerState::new();
    let d = decide(&s, &input(25, &[30.0]), &mut state, at(0));
    assert_eq!(d.desired_replicas, 10);
    assert_eq!(
        d.rescale_reason.as_deref(),
        Some("Current number of replicas above Spec.MaxReplicas")
    );
    assert_eq!(limited(&d), Some(ScalingLimitedReason::TooManyReplicas));
    assert_eq!(state.scale_events().len(), 1);
    assert_eq!(state.scale_events()[0].replica_change, -15);

    let d = decide(&s, &input(1, &[0.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 2);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::TooFewReplicas));
    assert_eq!(
        d.rescale_reason.as_deref(),
        Some("Current number of replicas below Spec.MinReplicas")
    );
}

#[test]
fn min_max_clamp_with_reasons() {
    let s = spec(3, 10, vec![direct()], Some(no_down_window()));
    // Proposal 12 from 8: the default rate allows 16, max is 10 -> TooManyReplicas.
    let d = decide(&s, &input(8, &[12.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 10);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::TooManyReplicas));
    assert_eq!(d.scaling_limited.as_ref().map(|c| c.status), Some(true));
    // Proposal 1 from 8: min 3 -> TooFewReplicas.
    let d = decide(&s, &input(8, &[1.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 3);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::TooFewReplicas));
    // min above max: min wins, nothing panics.
    let bad = spec(7, 2, vec![direct()], None);
    let d = decide(&bad, &input(7, &[100.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 7);
}

#[test]
fn docs_scale_down_stabilization_window() {
    // scaleDown.stabilizationWindowSeconds 300: recommendations 5, 6, 7, then 3 within the window
    // keep the highest (7) until the older ones age out.
    let behavior = ScalingBehavior {
        scale_up: None,
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(300),
            ..Default::default()
        }),
    };
    let s = spec(1, 20, vec![direct()], Some(behavior));
    let mut state = ScalerState::new();
    let mut step =
        |secs: u64, proposal: f64| decide(&s, &input(7, &[proposal]), &mut state, at(secs));

    let d = step(0, 5.0);
    assert_eq!((d.proposed_replicas, d.desired_replicas), (Some(5), 7));
    assert_eq!(
        d.able_to_scale.reason,
        AbleToScaleReason::ScaleDownStabilized
    );
    assert_eq!(step(60, 6.0).desired_replicas, 7);
    assert_eq!(step(120, 7.0).desired_replicas, 7);
    let d = step(180, 3.0);
    assert_eq!((d.proposed_replicas, d.desired_replicas), (Some(3), 7));
    assert_eq!(
        d.able_to_scale.reason,
        AbleToScaleReason::ScaleDownStabilized
    );
    assert_eq!(
        d.able_to_scale.message,
        "recent recommendations were higher than current one, applying the highest recent recommendation"
    );
    // At 301 the initial 7 and the 5 (t=0) are out, the 7 from t=120 is still in.
    assert_eq!(step(301, 3.0).desired_replicas, 7);
    // At 420 the 7 (t=120) is exactly at the cutoff, i.e. out; 3s remain (and the 6 is gone too).
    let d = step(420, 3.0);
    assert_eq!(d.desired_replicas, 3);
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::ReadyForNewScale);
}

#[test]
fn scale_up_stabilization_window() {
    // A 60 s scale-up window: a spike must persist for the whole window.
    let behavior = ScalingBehavior {
        scale_up: Some(ScalingRules {
            stabilization_window_seconds: Some(60),
            ..Default::default()
        }),
        scale_down: None,
    };
    let s = spec(1, 50, vec![direct()], Some(behavior));
    let mut state = ScalerState::new();
    let d = decide(&s, &input(4, &[6.0]), &mut state, at(0));
    // The initial recommendation (4) is in the window.
    assert_eq!((d.proposed_replicas, d.desired_replicas), (Some(6), 4));
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::ScaleUpStabilized);
    assert_eq!(
        d.able_to_scale.message,
        "recent recommendations were lower than current one, applying the lowest recent recommendation"
    );
    assert_eq!(
        decide(&s, &input(4, &[7.0]), &mut state, at(30)).desired_replicas,
        4
    );
    assert_eq!(
        decide(&s, &input(4, &[5.0]), &mut state, at(45)).desired_replicas,
        4
    );
    // At 60 the samples of t=0 are out: the lowest of the window (7@30, 5@45, 7 now) is 5.
    let d = decide(&s, &input(4, &[7.0]), &mut state, at(60));
    assert_eq!(d.stabilized_replicas, Some(5));
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(d.able_to_scale.reason, AbleToScaleReason::ScaleUpStabilized);
    // A large spike is also rate-limited: max(5 + 4, 5 * 2) = 10 after 15 s.
    let d = decide(&s, &input(5, &[40.0]), &mut state, at(75));
    assert_eq!(d.stabilized_replicas, Some(5));
    let d = decide(&s, &input(5, &[40.0]), &mut state, at(140));
    assert_eq!(d.stabilized_replicas, Some(40));
    assert_eq!(d.desired_replicas, 10);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::ScaleUpLimit));
}

fn docs_policies(select: SelectPolicy) -> ScalingBehavior {
    ScalingBehavior {
        scale_up: None,
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: Some(select),
            policies: vec![
                ScalingPolicyRule::pods(4, 60),
                ScalingPolicyRule::percent(10, 60),
            ],
            tolerance: None,
        }),
    }
}

#[test]
fn docs_scale_down_policies_select_max() {
    // 80 replicas toward 10: Percent 10 allows 8 (more than Pods 4): 80 -> 72, held while those
    // 8 are inside the 60 s period, then 72 -> 64 (7.2 rounds to 8 removed).
    let s = spec(
        1,
        100,
        vec![direct()],
        Some(docs_policies(SelectPolicy::Max)),
    );
    let mut state = ScalerState::new();
    let mut current = 80;
    let mut seen = Vec::new();
    for secs in [0u64, 15, 30, 45, 60, 75, 120] {
        let d = decide(&s, &input(current, &[10.0]), &mut state, at(secs));
        assert!(d.desired_replicas >= current - 8);
        current = d.desired_replicas;
        seen.push(current);
        assert!(
            limited(&d) == Some(ScalingLimitedReason::ScaleDownLimit),
            "{d:?}"
        );
    }
    assert_eq!(seen, vec![72, 72, 72, 72, 64, 64, 57]);
}

#[test]
fn docs_scale_down_policies_select_min() {
    let s = spec(
        1,
        100,
        vec![direct()],
        Some(docs_policies(SelectPolicy::Min)),
    );
    let mut state = ScalerState::new();
    let d = decide(&s, &input(80, &[10.0]), &mut state, at(0));
    assert_eq!(d.desired_replicas, 76);
    let d = decide(&s, &input(76, &[10.0]), &mut state, at(30));
    assert_eq!(d.desired_replicas, 76);
    let d = decide(&s, &input(76, &[10.0]), &mut state, at(60));
    assert_eq!(d.desired_replicas, 72);
}

#[test]
fn disabled_directions() {
    let s = spec(
        1,
        100,
        vec![direct()],
        Some(docs_policies(SelectPolicy::Disabled)),
    );
    let d = decide(&s, &input(80, &[10.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 80);
    assert!(!d.rescale);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::ScaleDownLimit));
    assert_eq!(d.scaling_limited.as_ref().map(|c| c.status), Some(true));

    let up_disabled = ScalingBehavior {
        scale_up: Some(ScalingRules {
            select_policy: Some(SelectPolicy::Disabled),
            ..Default::default()
        }),
        scale_down: None,
    };
    let s = spec(1, 100, vec![direct()], Some(up_disabled));
    let d = decide(&s, &input(10, &[40.0]), &mut ScalerState::new(), at(0));
    assert_eq!(d.desired_replicas, 10);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::ScaleUpLimit));
    assert_eq!(
        d.scaling_limited.map(|c| c.message),
        Some("the desired replica count is increasing faster than the maximum scale rate".into())
    );
}

#[test]
fn default_behavior_scale_up_rate() {
    // No behavior: at most max(+100%, +4 pods) per 15 s. From 3 toward 40: 7, 14, 28, 40.
    let s = spec(1, 40, vec![direct()], None);
    let mut state = ScalerState::new();
    let mut current = 3;
    let mut seen = Vec::new();
    for secs in [0u64, 15, 30, 45, 60] {
        let d = decide(&s, &input(current, &[100.0]), &mut state, at(secs));
        current = d.desired_replicas;
        seen.push(current);
    }
    assert_eq!(seen, vec![7, 14, 28, 40, 40]);

    // Inside the 15 s period no further scale-up is allowed.
    let mut state = ScalerState::new();
    let d = decide(&s, &input(1, &[100.0]), &mut state, at(0));
    assert_eq!(d.desired_replicas, 5);
    let d = decide(&s, &input(5, &[100.0]), &mut state, at(10));
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::ScaleUpLimit));
    let d = decide(&s, &input(5, &[100.0]), &mut state, at(15));
    assert_eq!(d.desired_replicas, 10);
}

#[test]
fn default_behavior_scale_down_removes_all_after_window() {
    // Default scale-down: 300 s window, then up to 100% per 15 s (down to min).
    let s = spec(2, 40, vec![direct()], None);
    let mut state = ScalerState::new();
    let d = decide(&s, &input(30, &[1.0]), &mut state, at(0));
    assert_eq!(d.desired_replicas, 30);
    let d = decide(&s, &input(30, &[1.0]), &mut state, at(300));
    assert_eq!(d.desired_replicas, 2);
    assert_eq!(limited(&d), Some(ScalingLimitedReason::TooFewReplicas));
}

#[test]
fn state_survives_serialization() {
    let s = spec(
        1,
        100,
        vec![direct()],
        Some(docs_policies(SelectPolicy::Max)),
    );
    let mut a = ScalerState::new();
    let mut current = 80;
    for secs in [0u64, 20, 40] {
        current = decide(&s, &input(current, &[10.0]), &mut a, at(secs)).desired_replicas;
    }
    let json = serde_json::to_string(&a).expect("serialize state");
    let mut b: ScalerState = serde_json::from_str(&json).expect("deserialize state");
    let da = decide(&s, &input(current, &[10.0]), &mut a, at(61));
    let db = decide(&s, &input(current, &[10.0]), &mut b, at(61));
    assert_eq!(da, db);
    assert_eq!(a, b);
    let decision_json = serde_json::to_value(&da).expect("serialize decision");
    assert_eq!(decision_json["desiredReplicas"], 64);
    assert_eq!(decision_json["scalingLimited"]["reason"], "ScaleDownLimit");
}

#[test]
fn reason_strings_match_the_hpa() {
    assert_eq!(
        AbleToScaleReason::ScaleDownStabilized.as_str(),
        "ScaleDownStabilized"
    );
    assert_eq!(
        AbleToScaleReason::ReadyForNewScale.to_string(),
        "ReadyForNewScale"
    );
    assert_eq!(
        ScalingActiveReason::FailedGetExternalMetric.as_str(),
        "FailedGetExternalMetric"
    );
    assert_eq!(
        ScalingActiveReason::ScalingDisabled.as_str(),
        "ScalingDisabled"
    );
    assert_eq!(
        ScalingLimitedReason::TooFewReplicas.as_str(),
        "TooFewReplicas"
    );
    assert_eq!(
        ScalingLimitedReason::DesiredWithinRange.as_str(),
        "DesiredWithinRange"
    );
}
