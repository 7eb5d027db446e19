//! Per-pod samples: the cases of upstream `pkg/controller/podautoscaler/replica_calculator_test.go`
//! that exercise unready pods, pods without metrics and ignored pods, ported to
//! `MetricReading::PerPod`, plus this crate's input checks.
//!
//! Upstream fixtures have two containers per pod, each requesting the pod's request and using the
//! pod's level (milli-units); the helpers below keep that, so the expected raw values match.
//! Upstream's pod states map to [`PodReadiness`] as the caller would classify them for `cpu`:
//! `Ready=False` (never ready) and "hot CPU" pods (started within the CPU initialization period
//! without a fresh sample) and `Pending` pods are `Unready`; failed pods and pods being deleted are
//! `Ignored`. The hot-CPU and deleted-pod variants of a case therefore have the same input here
//! as its unready and failed-pod variants, and are covered by them.

use flotilla_autoscaling::{
    MetricReading, MetricSpec, MetricStatus, PodReadiness, PodSample, ScalingActiveReason,
    Tolerances, compute_replicas_for_metric, evaluate_metrics,
};
use proptest::prelude::*;

use PodReadiness::{Ignored, Ready, Unready};

const CONTAINERS_PER_POD: f64 = 2.0;
const NO_READY_METRICS: &str = "did not receive metrics for targeted pods (pods might be unready)";

fn tol() -> Tolerances {
    Tolerances::default()
}

/// Upstream `Tolerances{scaleDown, scaleUp}`.
fn tolerances(scale_down: f64, scale_up: f64) -> Tolerances {
    Tolerances {
        scale_down,
        scale_up,
    }
}

/// CPU pods as upstream's fixtures build them: pod `i` has `readiness[i]` (Ready past the end),
/// requests `requests[i]` per container (none past the end) and uses `levels[i]` per container,
/// or has no sample when `levels` is shorter.
fn cpu_pods(readiness: &[PodReadiness], requests: &[i64], levels: &[i64]) -> Vec<PodSample> {
    let pods = requests.len().max(readiness.len()).max(levels.len());
    (0..pods)
        .map(|i| PodSample {
            readiness: readiness.get(i).copied().unwrap_or(Ready),
            value: levels.get(i).map(|&l| CONTAINERS_PER_POD * l as f64),
            request: requests.get(i).map(|&r| CONTAINERS_PER_POD * r as f64),
        })
        .collect()
}

/// `n` pods requesting 1 CPU ("1.0") per container.
fn one_cpu(n: usize) -> Vec<i64> {
    vec![1000; n]
}

/// Custom-metric pods: pod `i` reports `levels[i]`, or nothing when `levels` is shorter.
fn metric_pods(readiness: &[PodReadiness], pods: usize, levels: &[i64]) -> Vec<PodSample> {
    (0..pods)
        .map(|i| PodSample {
            readiness: readiness.get(i).copied().unwrap_or(Ready),
            value: levels.get(i).map(|&l| l as f64),
            request: None,
        })
        .collect()
}

fn run(spec: &MetricSpec, samples: Vec<PodSample>, current: i32, t: Tolerances) -> MetricStatus {
    compute_replicas_for_metric(spec, Some(&MetricReading::PerPod(samples)), current, t)
}

/// Upstream `GetResourceReplicas` for `cpu`: asserts replicas, utilization and raw value.
#[track_caller]
fn assert_cpu(
    status: &MetricStatus,
    replicas: i32,
    utilization: i32,
    raw_value_per_container: i64,
) {
    assert_eq!(status.error, None);
    assert_eq!(status.proposed_replicas, Some(replicas), "replicas");
    assert_eq!(status.average_utilization, Some(utilization), "utilization");
    assert_eq!(
        status.average_value,
        Some(CONTAINERS_PER_POD * raw_value_per_container as f64),
        "raw value"
    );
}

fn cpu_case(
    target: i32,
    current: i32,
    readiness: &[PodReadiness],
    requests: &[i64],
    levels: &[i64],
) -> MetricStatus {
    let spec = MetricSpec::resource_utilization("cpu", target);
    run(&spec, cpu_pods(readiness, requests, levels), current, tol())
}

#[track_caller]
fn assert_fails(status: &MetricStatus, reason: ScalingActiveReason, message: &str) {
    assert_eq!(status.proposed_replicas, None);
    let error = status.error.as_ref().expect("an error");
    assert!(!error.status);
    assert_eq!(error.reason, reason);
    assert!(
        error.message.contains(message),
        "{:?} does not contain {message:?}",
        error.message
    );
}

// --- Resource utilization (upstream TestReplicaCalcResourceScale and the classic cases) ---

#[test]
fn scale_up() {
    let s = cpu_case(30, 3, &[], &one_cpu(3), &[300, 500, 700]);
    assert_cpu(&s, 5, 50, 500);
}

#[test]
fn scale_up_unready_less_scale() {
    // "scale up: unready pod scales less" (also the hot-CPU pod variant).
    let s = cpu_case(
        30,
        3,
        &[Unready, Ready, Ready],
        &one_cpu(3),
        &[300, 500, 700],
    );
    assert_cpu(&s, 4, 60, 600);
}

#[test]
fn scale_up_unready_no_scale() {
    // "no scale: unready pods ignored": 40 % of the ready pod is a scale-up, but with the
    // unready pods at 0 it would be a scale-down: keep 3.
    let s = cpu_case(
        30,
        3,
        &[Ready, Unready, Unready],
        &one_cpu(3),
        &[400, 500, 700],
    );
    assert_cpu(&s, 3, 40, 400);
}

#[test]
fn scale_up_ignores_failed_pods() {
    // "scale up: failed pods ignored" (and "pods being deleted are ignored").
    let s = cpu_case(
        30,
        2,
        &[Ready, Ready, Ignored, Ignored],
        &one_cpu(4),
        &[500, 700],
    );
    assert_cpu(&s, 4, 60, 600);
}

#[test]
fn scale_down() {
    let s = cpu_case(50, 5, &[], &one_cpu(5), &[100, 300, 500, 250, 250]);
    assert_cpu(&s, 3, 28, 280);
}

#[test]
fn scale_down_exclude_unready_pods() {
    // "scale down: exclude unready pods" (classic TestReplicaCalcScaleDownIncludeUnreadyPods;
    // also the hot-CPU variant): unready pods stay out of a scale-down.
    let s = cpu_case(
        50,
        5,
        &[Ready, Ready, Ready, Unready, Unready],
        &one_cpu(5),
        &[100, 300, 500, 250, 250],
    );
    assert_cpu(&s, 2, 30, 300);
}

#[test]
fn scale_down_exclude_unscheduled_pods() {
    // Pending pods: unready, without a sample (not "missing").
    let s = cpu_case(
        50,
        5,
        &[Ready, Unready, Unready, Unready, Unready],
        &one_cpu(5),
        &[100],
    );
    assert_cpu(&s, 1, 10, 100);
}

#[test]
fn scale_down_ignores_failed_pods() {
    // "scale down: failed pods ignored" (and "pods being deleted are ignored").
    let s = cpu_case(
        50,
        5,
        &[Ready, Ready, Ready, Ready, Ready, Ignored, Ignored],
        &one_cpu(7),
        &[100, 300, 500, 250, 250],
    );
    assert_cpu(&s, 3, 28, 280);
}

#[test]
fn tolerance() {
    let s = cpu_case(100, 3, &[], &[900, 1000, 1100], &[1010, 1030, 1020]);
    assert_cpu(&s, 3, 102, 1020);
}

#[test]
fn configurable_tolerance() {
    let spec = MetricSpec::resource_utilization("cpu", 100);
    let requests = [900, 1000, 1100];
    let cases = [
        (
            "Outside of a 0% tolerance",
            (0.0, 0.0),
            [909, 1010, 1111],
            4,
            101,
        ),
        (
            "Within a 200% scale-up tolerance",
            (0.1, 2.0),
            [1890, 1910, 1900],
            3,
            190,
        ),
        (
            "Outside 8% scale-up tolerance (and superfuous scale-down tolerance)",
            (2.0, 0.08),
            [1100, 1080, 1090],
            4,
            109,
        ),
        (
            "Within a 36% scale-down tolerance",
            (0.36, 0.1),
            [660, 640, 650],
            3,
            65,
        ),
        (
            "Outside a 34% scale-down tolerance",
            (0.34, 0.1),
            [660, 640, 650],
            2,
            65,
        ),
    ];
    for (name, (down, up), levels, replicas, utilization) in cases {
        let s = run(
            &spec,
            cpu_pods(&[], &requests, &levels),
            3,
            tolerances(down, up),
        );
        assert_eq!(s.proposed_replicas, Some(replicas), "{name}");
        assert_eq!(s.average_utilization, Some(utilization), "{name}");
    }
}

#[test]
fn missing_metrics() {
    // Scale-down with two pods without samples: they count at 100 % of their request.
    let s = cpu_case(100, 4, &[], &one_cpu(4), &[400, 95]);
    assert_eq!(s.proposed_replicas, Some(3));
    assert_eq!(s.average_utilization, Some(24));
    assert_eq!(s.average_value, Some(495.0)); // 2 * 247.5
}

#[test]
fn empty_metrics() {
    // Upstream's metrics client fails first ("no metrics returned from resource metrics API");
    // here the pods are known and none has a sample.
    let s = cpu_case(100, 4, &[], &one_cpu(3), &[]);
    assert_fails(
        &s,
        ScalingActiveReason::FailedGetResourceMetric,
        NO_READY_METRICS,
    );
}

#[test]
fn empty_cpu_request() {
    let s = cpu_case(100, 1, &[], &[], &[200]);
    assert_fails(
        &s,
        ScalingActiveReason::FailedGetResourceMetric,
        "missing request",
    );
}

#[test]
fn missing_metrics_no_change_eq() {
    let s = cpu_case(100, 2, &[], &one_cpu(2), &[1000]);
    assert_cpu(&s, 2, 100, 1000);
}

#[test]
fn missing_metrics_no_change_gt() {
    // 190 % on one pod, the missing one at 0: 95 %, inside the tolerance.
    let s = cpu_case(100, 2, &[], &one_cpu(2), &[1900]);
    assert_cpu(&s, 2, 190, 1900);
}

#[test]
fn missing_metrics_no_change_lt() {
    // 60 % on one pod, the missing one at 100 %: 80 %, ceil(0.8 * 2) = 2.
    let s = cpu_case(100, 2, &[], &one_cpu(2), &[600]);
    assert_cpu(&s, 2, 60, 600);
}

#[test]
fn missing_metrics_unready_change() {
    // (also the hot-CPU variant) 45 % of a 50 % target is a scale-down; the missing pod at 100 %
    // turns it into a scale-up: keep 3.
    let s = cpu_case(50, 3, &[Unready, Ready, Ready], &one_cpu(3), &[100, 450]);
    assert_cpu(&s, 3, 45, 450);
}

#[test]
fn missing_metrics_unready_scale_up() {
    // (also the hot-CPU variant) 200 % of 50 %: the missing and the unready pod at 0 -> 66 %.
    let s = cpu_case(50, 3, &[Unready, Ready, Ready], &one_cpu(3), &[100, 2000]);
    assert_cpu(&s, 4, 200, 2000);
}

#[test]
fn missing_metrics_unready_scale_down() {
    let s = cpu_case(
        50,
        4,
        &[Unready, Ready, Ready, Ready],
        &one_cpu(4),
        &[100, 100, 100],
    );
    assert_cpu(&s, 3, 10, 100);
}

#[test]
fn missing_metrics_scale_down_target_over_100() {
    // A missing pod counts at the target utilization when the target is above 100 %.
    let s = cpu_case(
        300,
        4,
        &[Unready, Ready, Ready, Ready],
        &[1000, 1000, 2000, 2000],
        &[200, 100, 100],
    );
    assert_cpu(&s, 2, 6, 100);
}

#[test]
fn during_rolling_update_with_max_surge() {
    // 3 pods for 2 replicas: ceil(0.8 * 3) = 3 would turn the scale-down into a scale-up.
    let s = cpu_case(50, 2, &[Ready, Ready, Ready], &one_cpu(3), &[100, 100]);
    assert_cpu(&s, 2, 10, 100);
}

#[test]
fn computed_tolerance_alg_implementation() {
    // 10 pods using 150m each of about 300m requested (50 %), the target just past and just
    // inside the 10 % tolerance.
    let start_pods = 10;
    let per_pod_requested = 300;
    let requests: Vec<i64> = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0]
        .iter()
        .map(|d| per_pod_requested + d)
        .collect();
    let levels = vec![150; start_pods];
    let requested_to_used = 2.0;
    let tolerance = 0.1;

    let target = 1.0 / (requested_to_used * (1.0 - tolerance)) + 0.01;
    let percent_target = (target * 100.0) as i32;
    let resources_used_ratio = 1500.0 / (3000.0 * target);
    let final_pods = (resources_used_ratio * start_pods as f64).ceil() as i32;
    let s = cpu_case(percent_target, 10, &[], &requests, &levels);
    assert_cpu(&s, final_pods, 50, 150);
    assert_eq!(final_pods, 9);

    let target = 1.0 / (requested_to_used * (1.0 - tolerance)) + 0.004;
    let s = cpu_case((target * 100.0) as i32, 10, &[], &requests, &levels);
    assert_cpu(&s, 10, 50, 150);
}

#[test]
fn disjoint_resources_metrics() {
    // Upstream fails with "no metrics returned matched known pods" when no request matches a
    // metric (a request total of 0); the same total here is pods that request nothing.
    let s = cpu_case(100, 1, &[], &[0], &[100]);
    assert_fails(
        &s,
        ScalingActiveReason::FailedGetResourceMetric,
        "total request 0",
    );
}

// --- Pods metrics (upstream calcPlainMetricReplicas, "CM" cases) ---

fn qps(target: f64) -> MetricSpec {
    MetricSpec::pods_average_value("qps", target)
}

#[test]
fn scale_up_cm() {
    let s = run(
        &qps(15000.0),
        metric_pods(&[], 3, &[20000, 10000, 30000]),
        3,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(4));
    assert_eq!(s.average_value, Some(20000.0));
}

#[test]
fn scale_up_cm_unready_hot_cpu_no_less_scale() {
    // Readiness and CPU warm-up only make a running pod unready for `cpu`: for a custom metric
    // the caller classifies all three pods as ready.
    let s = run(
        &qps(15000.0),
        metric_pods(&[], 3, &[50000, 10000, 30000]),
        3,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(6));
    assert_eq!(s.average_value, Some(30000.0));
}

#[test]
fn scale_up_cm_unready_hot_cpu_scale_would_scale_down() {
    let s = run(
        &qps(15000.0),
        metric_pods(&[], 3, &[50000, 15000, 30000]),
        3,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(7));
    // Upstream truncates the average to whole milli-units (31666).
    assert_eq!(s.average_value.map(f64::floor), Some(31666.0));
}

#[test]
fn scale_down_cm() {
    let s = run(&qps(20000.0), metric_pods(&[], 5, &[12000; 5]), 5, tol());
    assert_eq!(s.proposed_replicas, Some(3));
    assert_eq!(s.average_value, Some(12000.0));
}

#[test]
fn tolerance_cm() {
    let pods = || metric_pods(&[], 3, &[20000, 21000, 21000]);
    let s = run(&qps(20000.0), pods(), 3, tol());
    assert_eq!(s.proposed_replicas, Some(3));
    // TestReplicaCalcConfigurableToleranceCM: a 1 % scale-up tolerance.
    let s = run(&qps(20000.0), pods(), 3, tolerances(0.1, 0.01));
    assert_eq!(s.proposed_replicas, Some(4));
}

#[test]
fn plain_metric_missing_metrics_no_change_eq() {
    // Exactly at the target with two pods missing: they stay out, the ratio stays 1.
    let s = run(
        &qps(20000.0),
        metric_pods(&[], 5, &[20000, 19000, 21000]),
        5,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(5));
    assert_eq!(s.average_value, Some(20000.0));
}

#[test]
fn during_rolling_update_with_max_surge_cm() {
    let s = run(
        &qps(17000.0),
        metric_pods(&[], 3, &[10000, 10000]),
        2,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(2));
    assert_eq!(s.average_value, Some(10000.0));
}

// --- Beyond the upstream cases ---

#[test]
fn pods_metric_missing_pods_count_as_target_on_scale_down() {
    // 2 pods at 10 of a 20 target, 2 missing at 20: (10+10+20+20)/4 = 15 -> ceil(0.75 * 4) = 3.
    let s = run(&qps(20.0), metric_pods(&[], 4, &[10, 10]), 4, tol());
    assert_eq!(s.proposed_replicas, Some(3));
    assert_eq!(s.usage_ratio, Some(0.5)); // the ready pods' ratio
}

#[test]
fn pods_metric_unready_pods_count_as_idle_on_a_scale_up() {
    // 2 ready pods at 12 of a 10 target call for a scale-up (3); the unready pod at 0 (not at
    // its 50) brings the average to 8, a scale-down: keep 2.
    let s = run(
        &qps(10.0),
        metric_pods(&[Ready, Ready, Unready], 3, &[12, 12, 50]),
        2,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(2));
    assert_eq!(s.average_value, Some(12.0));
    // Unready pods are ignored on a scale-down.
    let s = run(
        &qps(10.0),
        metric_pods(&[Ready, Ready, Unready, Unready], 4, &[5, 5, 9, 9]),
        4,
        tol(),
    );
    assert_eq!(s.proposed_replicas, Some(1));
}

#[test]
fn resource_average_value_follows_the_same_rules() {
    // GetRawResourceReplicas: 400 on the one ready pod of a 200 target is a scale-up; with the
    // missing and the unready pod at 0 the average is 133, a scale-down: keep 3.
    let spec = MetricSpec::resource_average_value("memory", 200.0);
    let pods = vec![
        PodSample::ready(400.0),
        PodSample::missing(),
        PodSample::unready(Some(900.0)),
    ];
    let s = run(&spec, pods, 3, tol());
    assert_eq!(s.proposed_replicas, Some(3));
    assert_eq!(s.average_value, Some(400.0));
    assert_eq!(s.average_utilization, None);
    // Scale-down: the missing pod at the target. (100 + 200) / 2 = 150 -> ceil(0.75 * 2) = 2.
    let pods = vec![
        PodSample::ready(100.0),
        PodSample::missing(),
        PodSample::unready(Some(900.0)),
    ];
    let s = run(&spec, pods, 3, tol());
    assert_eq!(s.proposed_replicas, Some(2));
}

#[test]
fn only_unready_or_missing_pods_fail() {
    let spec = MetricSpec::resource_utilization("cpu", 50);
    let cases = [
        vec![PodSample::unready(Some(900.0)).with_request(1000.0)],
        vec![PodSample::missing().with_request(1000.0)],
        vec![PodSample::ignored(), PodSample::ignored()],
    ];
    for pods in cases {
        let s = run(&spec, pods, 3, tol());
        assert_fails(
            &s,
            ScalingActiveReason::FailedGetResourceMetric,
            NO_READY_METRICS,
        );
    }
    let s = run(
        &qps(1.0),
        vec![PodSample::unready(Some(5.0)), PodSample::missing()],
        2,
        tol(),
    );
    assert_fails(
        &s,
        ScalingActiveReason::FailedGetPodsMetric,
        NO_READY_METRICS,
    );
}

#[test]
fn ignored_pods_need_no_request_and_are_not_checked() {
    let spec = MetricSpec::resource_utilization("cpu", 50);
    let pods = vec![
        PodSample::ready(100.0).with_request(100.0),
        PodSample {
            readiness: Ignored,
            value: Some(f64::NAN),
            request: Some(-1.0),
        },
    ];
    assert_eq!(run(&spec, pods, 1, tol()).proposed_replicas, Some(2));
}

#[test]
fn bad_samples_fail_with_a_message() {
    let cpu = MetricSpec::resource_utilization("cpu", 50);
    let cases: Vec<(MetricSpec, Vec<PodSample>, &str)> = vec![
        (cpu.clone(), vec![], "no pods returned by selector"),
        (
            cpu.clone(),
            vec![PodSample::ready(f64::NAN).with_request(1.0)],
            "not a finite number",
        ),
        (
            cpu.clone(),
            vec![PodSample::unready(Some(f64::INFINITY)).with_request(1.0)],
            "not a finite number",
        ),
        (
            cpu.clone(),
            vec![PodSample::ready(-1.0).with_request(1.0)],
            "negative",
        ),
        (
            cpu.clone(),
            vec![PodSample::ready(1.0).with_request(-1.0)],
            "not a finite, non-negative number",
        ),
        (
            cpu.clone(),
            vec![PodSample::ready(1.0).with_request(f64::NAN)],
            "not a finite, non-negative number",
        ),
        (
            // The missing pod's request is needed too.
            cpu.clone(),
            vec![
                PodSample::ready(1.0).with_request(1.0),
                PodSample::missing(),
            ],
            "missing request in pod sample 1",
        ),
        (
            qps(1.0),
            vec![PodSample::ready(f64::NEG_INFINITY)],
            "not a finite number",
        ),
    ];
    for (spec, pods, message) in cases {
        let reason = if spec == cpu {
            ScalingActiveReason::FailedGetResourceMetric
        } else {
            ScalingActiveReason::FailedGetPodsMetric
        };
        let s = run(&spec, pods, 3, tol());
        assert_fails(&s, reason, message);
    }
}

#[test]
fn extreme_values_saturate() {
    let s = run(&qps(1e-300), vec![PodSample::ready(1e300)], 1, tol());
    assert_eq!(s.proposed_replicas, Some(i32::MAX));
    // A sum past f64::MAX.
    let s = run(&qps(1.0), vec![PodSample::ready(f64::MAX); 2], 2, tol());
    assert_eq!(s.proposed_replicas, Some(i32::MAX));
    let cpu = MetricSpec::resource_utilization("cpu", 50);
    let s = run(
        &cpu,
        vec![PodSample::ready(f64::MAX).with_request(1e-300)],
        1,
        tol(),
    );
    // The utilization stays at the int32 rail: ceil(i32::MAX / 50) replicas.
    assert_eq!(s.average_utilization, Some(i32::MAX));
    assert_eq!(s.proposed_replicas, Some(42_949_673));
    // Negative custom metric values are allowed (quantities can be negative): scale to 0.
    let s = run(&qps(1.0), vec![PodSample::ready(-5.0)], 1, tol());
    assert_eq!(s.proposed_replicas, Some(0));
}

#[test]
fn per_pod_external_metric_is_invalid() {
    for spec in [
        MetricSpec::external_value("queue", 10.0),
        MetricSpec::external_average_value("queue", 10.0),
    ] {
        let s = run(&spec, vec![PodSample::ready(1.0)], 3, tol());
        assert_fails(
            &s,
            ScalingActiveReason::InvalidMetricSourceType,
            "per-pod samples apply to Resource and Pods metrics only",
        );
    }
}

#[test]
fn invalid_targets_fail_before_the_samples() {
    let s = run(
        &MetricSpec::resource_utilization("cpu", 0),
        vec![],
        3,
        tol(),
    );
    assert_fails(&s, ScalingActiveReason::InvalidMetricSourceType, "invalid");
}

#[test]
fn per_pod_does_not_need_current_replicas() {
    // The pods are known, so unlike a Value reading current 0 is not an error.
    let s = run(&qps(10.0), metric_pods(&[], 2, &[20, 20]), 0, tol());
    assert_eq!(s.proposed_replicas, Some(4));
    // Within the tolerance it keeps the current replicas (0), as upstream.
    let s = run(&qps(10.0), metric_pods(&[], 2, &[10, 10]), 0, tol());
    assert_eq!(s.proposed_replicas, Some(0));
}

#[test]
fn per_pod_readings_mix_with_values() {
    let specs = [
        MetricSpec::resource_utilization("cpu", 30),
        MetricSpec::external_value("queue", 100.0),
    ];
    let readings = [
        MetricReading::PerPod(cpu_pods(
            &[Unready, Ready, Ready],
            &one_cpu(3),
            &[300, 500, 700],
        )),
        MetricReading::Value(250.0),
    ];
    let e = evaluate_metrics(&specs, &readings, 3, tol());
    let proposals: Vec<_> = e.metrics.iter().map(|m| m.proposed_replicas).collect();
    assert_eq!(proposals, vec![Some(4), Some(8)]);
    assert_eq!(e.proposed_replicas, Some(8));

    // No ready samples: the cpu metric fails, the other one may still scale up only.
    let readings = [
        MetricReading::PerPod(vec![PodSample::unready(Some(1.0)).with_request(1.0)]),
        MetricReading::Value(50.0),
    ];
    let e = evaluate_metrics(&specs, &readings, 3, tol());
    assert_eq!(e.proposed_replicas, None);
    assert!(e.scaling_active.message.contains(NO_READY_METRICS));
}

#[test]
fn serde_shape() {
    let reading = MetricReading::PerPod(vec![
        PodSample::ready(250.0).with_request(500.0),
        PodSample::missing(),
        PodSample::unready(Some(1.0)),
        PodSample::ignored(),
    ]);
    let json = serde_json::to_value(&reading).expect("serialize reading");
    assert_eq!(
        json,
        serde_json::json!({"perPod": [
            {"readiness": "ready", "value": 250.0, "request": 500.0},
            {"readiness": "ready"},
            {"readiness": "unready", "value": 1.0},
            {"readiness": "ignored"},
        ]})
    );
    let back: MetricReading = serde_json::from_value(json).expect("deserialize reading");
    assert_eq!(back, reading);
}

fn sample() -> impl Strategy<Value = PodSample> {
    let readiness = prop_oneof![
        6 => Just(Ready),
        2 => Just(Unready),
        1 => Just(Ignored),
    ];
    let value = proptest::option::weighted(
        0.8,
        prop_oneof![8 => -10.0f64..5000.0, 1 => Just(f64::NAN), 1 => Just(1e308)],
    );
    let request = proptest::option::weighted(
        0.9,
        prop_oneof![8 => 0.0f64..4000.0, 1 => Just(-1.0), 1 => Just(f64::INFINITY)],
    );
    (readiness, value, request).prop_map(|(readiness, value, request)| PodSample {
        readiness,
        value,
        request,
    })
}

proptest! {
    /// Any samples: a proposal (never negative) or an error, never a panic.
    #[test]
    fn per_pod_never_panics(
        samples in proptest::collection::vec(sample(), 0..12),
        current in -3i32..20,
        utilization in prop_oneof![Just(true), Just(false)],
    ) {
        let spec = if utilization {
            MetricSpec::resource_utilization("cpu", 60)
        } else {
            qps(100.0)
        };
        let s = run(&spec, samples, current, tol());
        prop_assert!(s.proposed_replicas.is_some() != s.error.is_some());
        prop_assert!(s.proposed_replicas.is_none_or(|r| r >= 0));
    }

    /// With every pod ready and reporting, per-pod samples agree with the average as a Value
    /// when the current replicas are the pod count.
    #[test]
    fn all_ready_per_pod_matches_value(
        values in proptest::collection::vec(0.0f64..5000.0, 1..12),
        target in 1.0f64..3000.0,
    ) {
        let spec = qps(target);
        let n = values.len();
        let average = values.iter().sum::<f64>() / n as f64;
        let per_pod: Vec<_> = values.into_iter().map(PodSample::ready).collect();
        let current = i32::try_from(n).expect("fewer than 12 pods");
        let a = run(&spec, per_pod, current, tol());
        let b = compute_replicas_for_metric(&spec, Some(&MetricReading::Value(average)), current, tol());
        prop_assert_eq!(a.proposed_replicas, b.proposed_replicas);
    }
}
