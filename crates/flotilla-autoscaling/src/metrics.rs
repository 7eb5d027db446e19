//! Per-metric proposals (upstream `replica_calculator.go`) and the choice among several metrics
//! (upstream `computeReplicasForMetrics`).

use serde::{Deserialize, Serialize};

use crate::decision::{Condition, ScalingActiveReason};
use crate::pods::{PerPodTarget, PodSample, per_pod_replicas};
use crate::spec::{MetricSource, MetricSourceType, MetricSpec, MetricTarget, Tolerances};

/// What the caller read for one metric, in the order of [`crate::ScalingSpec::metrics`].
///
/// The value's meaning depends on the metric:
/// - Resource with a `Utilization` target: the pods' average utilization, in percent of their
///   requests (`100 * sum(usage) / sum(requests)` over all clusters). It is truncated to an
///   integer, as upstream computes it in integer arithmetic.
/// - Resource with an `AverageValue` target, and Pods: the average value per pod.
/// - External: the total (summed over the member clusters, or the Prometheus query result).
///
/// A `Value` for Resource and Pods metrics is an aggregate over all pods: it cannot tell unready
/// pods or pods without a sample apart. [`MetricReading::PerPod`] can, and follows upstream for
/// them (see [`PodSample`] and the crate documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricReading {
    /// The value that was read.
    Value(f64),
    /// One sample per pod, for Resource and Pods metrics, with the pods of all member clusters
    /// pooled into one list (the federated autoscaler treats them as one pod set, as one HPA
    /// treats one cluster's pods). The replica calculator's rules for unready pods and pods
    /// without metrics apply; the current replicas are still the caller's total. An External
    /// metric with per-pod samples is an `InvalidMetricSourceType` error.
    PerPod(Vec<PodSample>),
    /// The metric could not be read; the message goes into the condition.
    Failed(String),
}

/// The status of one metric after a call: its current value (for the policy's
/// `status.currentMetrics`) and its proposal, or why it has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// The metric (or resource) name.
    pub name: String,
    /// The source type.
    pub source: MetricSourceType,
    /// The current total, for `Value` targets.
    pub value: Option<f64>,
    /// The current value per replica, for `AverageValue` targets; with per-pod samples also the
    /// average usage per pod for `Utilization` targets (upstream's raw value). Per-pod figures
    /// are over the ready pods with samples.
    pub average_value: Option<f64>,
    /// The current utilization percentage, for `Utilization` targets.
    pub average_utilization: Option<i32>,
    /// The usage ratio (current / target) the tolerance was checked against (with per-pod
    /// samples: the ready pods' ratio, before unready and missing pods are put back).
    pub usage_ratio: Option<f64>,
    /// The replicas this metric proposes.
    pub proposed_replicas: Option<i32>,
    /// Why this metric has no proposal (a `ScalingActive` reason and message).
    pub error: Option<Condition<ScalingActiveReason>>,
}

impl MetricStatus {
    fn new(spec: &MetricSpec) -> Self {
        Self {
            name: spec.source.name().to_owned(),
            source: spec.source.source_type(),
            value: None,
            average_value: None,
            average_utilization: None,
            usage_ratio: None,
            proposed_replicas: None,
            error: None,
        }
    }

    fn failed(mut self, reason: ScalingActiveReason, message: impl std::fmt::Display) -> Self {
        self.proposed_replicas = None;
        self.error = Some(Condition {
            status: false,
            reason,
            message: format!("the HPA was unable to compute the replica count: {message}"),
        });
        self
    }
}

/// The upstream description of a metric in messages ("cpu resource utilization (percentage of
/// request)", "pods metric foo", "external metric bar").
pub fn metric_description(spec: &MetricSpec) -> String {
    match (&spec.source, &spec.target) {
        (MetricSource::Resource { name }, MetricTarget::Utilization(_)) => {
            format!("{name} resource utilization (percentage of request)")
        }
        (MetricSource::Resource { name }, _) => format!("{name} resource"),
        (MetricSource::Pods { name }, _) => format!("pods metric {name}"),
        (MetricSource::External { name }, _) => format!("external metric {name}"),
        (MetricSource::Object { name }, _) => format!("object metric {name}"),
    }
}

fn failed_get_reason(source: MetricSourceType) -> ScalingActiveReason {
    match source {
        MetricSourceType::Resource => ScalingActiveReason::FailedGetResourceMetric,
        MetricSourceType::Pods => ScalingActiveReason::FailedGetPodsMetric,
        MetricSourceType::External => ScalingActiveReason::FailedGetExternalMetric,
        MetricSourceType::Object => ScalingActiveReason::FailedGetObjectMetric,
    }
}

/// `ceil(x)` as replicas: negative results become 0, results past `i32::MAX` saturate (upstream
/// caps at `MaxInt32` too). `None` for NaN.
fn ceil_replicas(x: f64) -> Option<i32> {
    if x.is_nan() {
        return None;
    }
    // `as` saturates for out-of-range floats, including the infinities.
    Some((x.ceil() as i32).max(0))
}

/// Upstream `calcPlainMetricReplicas` / the simple branch of `GetResourceReplicas`, with the ready
/// pod count taken as the current replicas: keep the current replicas inside the tolerance,
/// else `ceil(ratio * current)`.
fn ratio_replicas(current: i32, ratio: f64, tolerances: Tolerances) -> Option<i32> {
    if tolerances.is_within(ratio) {
        Some(current)
    } else {
        ceil_replicas(ratio * f64::from(current))
    }
}

/// Computes one metric's proposal from its reading (upstream `computeReplicasForMetric`).
pub fn compute_replicas_for_metric(
    spec: &MetricSpec,
    reading: Option<&MetricReading>,
    current_replicas: i32,
    tolerances: Tolerances,
) -> MetricStatus {
    let mut status = MetricStatus::new(spec);
    let source = spec.source.source_type();
    let describe = metric_description(spec);

    // The target must fit the source and be a positive, finite number (upstream validation).
    let target = match (source, spec.target) {
        (MetricSourceType::Resource, MetricTarget::Utilization(u)) if u > 0 => f64::from(u),
        (MetricSourceType::Resource | MetricSourceType::Pods, MetricTarget::AverageValue(v))
        | (
            MetricSourceType::External | MetricSourceType::Object,
            MetricTarget::AverageValue(v) | MetricTarget::Value(v),
        ) if v.is_finite() && v > 0.0 => v,
        (_, target) => {
            return status.failed(
                ScalingActiveReason::InvalidMetricSourceType,
                format!("invalid {describe} target {target:?} for a {source:?} metric"),
            );
        }
    };

    let value = match reading {
        Some(MetricReading::PerPod(samples)) => {
            return per_pod_status(status, spec, samples, current_replicas, tolerances);
        }
        Some(MetricReading::Value(v)) if v.is_finite() => *v,
        Some(MetricReading::Value(v)) => {
            return status.failed(
                failed_get_reason(source),
                format!("unable to get {describe}: the value {v} is not a finite number"),
            );
        }
        Some(MetricReading::Failed(message)) => {
            return status.failed(
                failed_get_reason(source),
                format!("unable to get {describe}: {message}"),
            );
        }
        None => {
            return status.failed(
                failed_get_reason(source),
                format!("unable to get {describe}: no value was read"),
            );
        }
    };

    let current = current_replicas.max(0);
    let proposal = match (source, spec.target) {
        (MetricSourceType::Resource | MetricSourceType::Pods, _) if current == 0 => {
            // Upstream lists the pods; with none there is nothing to average over.
            return status.failed(
                failed_get_reason(source),
                "no pods returned by selector while calculating replica count",
            );
        }
        (MetricSourceType::Resource, MetricTarget::Utilization(_)) => {
            // Upstream: currentUtilization = int32(metricsTotal * 100 / requestsTotal).
            let utilization = value.trunc() as i32;
            status.average_utilization = Some(utilization);
            let ratio = f64::from(utilization) / target;
            status.usage_ratio = Some(ratio);
            ratio_replicas(current, ratio, tolerances)
        }
        (MetricSourceType::Resource | MetricSourceType::Pods, _) => {
            status.average_value = Some(value);
            let ratio = value / target;
            status.usage_ratio = Some(ratio);
            ratio_replicas(current, ratio, tolerances)
        }
        (MetricSourceType::External | MetricSourceType::Object, MetricTarget::AverageValue(_)) => {
            // Upstream GetExternalPerPodMetricReplicas (GetObjectPerPodMetricReplicas alike):
            // the tolerance is checked on
            // total / (target * replicas), the proposal is ceil(total / target).
            let ratio = value / (target * f64::from(current));
            status.usage_ratio = Some(ratio);
            if current > 0 {
                status.average_value = Some(value / f64::from(current));
            }
            if tolerances.is_within(ratio) {
                Some(current)
            } else {
                ceil_replicas(value / target)
            }
        }
        (MetricSourceType::External | MetricSourceType::Object, _) => {
            // Upstream GetExternalMetricReplicas (GetObjectMetricReplicas alike) /
            // getUsageRatioReplicaCount.
            status.value = Some(value);
            let ratio = value / target;
            status.usage_ratio = Some(ratio);
            if current == 0 {
                // Scaling from zero (minReplicas 0): no tolerance, ceil(ratio).
                ceil_replicas(ratio)
            } else {
                ratio_replicas(current, ratio, tolerances)
            }
        }
    };

    match proposal {
        Some(replicas) => {
            status.proposed_replicas = Some(replicas);
            status
        }
        None => status.failed(
            failed_get_reason(source),
            format!("the replica count computed from {describe} is not a number"),
        ),
    }
}

/// The status of a Resource or Pods metric read as per-pod samples (upstream
/// `GetResourceReplicas`, `GetRawResourceReplicas`, `GetMetricReplicas`). The target is already
/// validated.
fn per_pod_status(
    mut status: MetricStatus,
    spec: &MetricSpec,
    samples: &[PodSample],
    current_replicas: i32,
    tolerances: Tolerances,
) -> MetricStatus {
    let source = spec.source.source_type();
    let describe = metric_description(spec);
    let target = match (source, spec.target) {
        (MetricSourceType::Resource, MetricTarget::Utilization(u)) => PerPodTarget::Utilization(u),
        (MetricSourceType::Resource | MetricSourceType::Pods, MetricTarget::AverageValue(v)) => {
            PerPodTarget::AverageValue(v)
        }
        _ => {
            return status.failed(
                ScalingActiveReason::InvalidMetricSourceType,
                format!(
                    "per-pod samples apply to Resource and Pods metrics only, not to {describe}: \
                     read it as one value"
                ),
            );
        }
    };
    // A resource's usage cannot be negative; a custom metric's value can.
    let non_negative = source == MetricSourceType::Resource;
    match per_pod_replicas(
        samples,
        target,
        non_negative,
        current_replicas.max(0),
        tolerances,
    ) {
        Ok(proposal) => {
            status.average_utilization = proposal.utilization;
            status.average_value = Some(proposal.average_value);
            status.usage_ratio = Some(proposal.usage_ratio);
            status.proposed_replicas = Some(proposal.replicas);
            status
        }
        Err(message) => status.failed(
            failed_get_reason(source),
            format!("unable to get {describe}: {message}"),
        ),
    }
}

/// The outcome of all metrics (upstream `computeReplicasForMetrics`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsEvaluation {
    /// The winning proposal (the largest), when scaling on the metrics is allowed.
    pub proposed_replicas: Option<i32>,
    /// The metric that proposed it (its description).
    pub proposing_metric: Option<String>,
    /// The `ScalingActive` condition.
    pub scaling_active: Condition<ScalingActiveReason>,
    /// Each metric's status, in spec order.
    pub metrics: Vec<MetricStatus>,
}

/// Evaluates every metric and picks the largest proposal. Metrics that could not be computed are
/// skipped; there is no proposal when all of them failed, or when some failed and the others
/// would scale down (upstream allows only scaling up on partial data).
pub fn evaluate_metrics(
    specs: &[MetricSpec],
    readings: &[MetricReading],
    current_replicas: i32,
    tolerances: Tolerances,
) -> MetricsEvaluation {
    let current = current_replicas.max(0);
    let mut metrics = Vec::with_capacity(specs.len());
    let mut best: Option<(i32, String)> = None;
    let mut invalid = 0usize;
    let mut first_error: Option<Condition<ScalingActiveReason>> = None;

    for (i, spec) in specs.iter().enumerate() {
        let status = compute_replicas_for_metric(spec, readings.get(i), current, tolerances);
        match (status.proposed_replicas, &status.error) {
            (Some(replicas), None) => {
                if best.as_ref().is_none_or(|(b, _)| replicas > *b) {
                    best = Some((replicas, metric_description(spec)));
                }
            }
            (_, error) => {
                invalid += 1;
                if first_error.is_none() {
                    first_error = error.clone();
                }
            }
        }
        metrics.push(status);
    }

    if specs.is_empty() {
        return MetricsEvaluation {
            proposed_replicas: None,
            proposing_metric: None,
            scaling_active: Condition {
                status: false,
                reason: ScalingActiveReason::InvalidMetricSourceType,
                message:
                    "the HPA was unable to compute the replica count: no metrics are specified"
                        .to_owned(),
            },
            metrics,
        };
    }

    let scale_down_on_partial_data =
        invalid > 0 && best.as_ref().is_some_and(|(b, _)| *b < current);
    match best {
        Some((replicas, metric)) if !scale_down_on_partial_data => MetricsEvaluation {
            proposed_replicas: Some(replicas),
            scaling_active: Condition {
                status: true,
                reason: ScalingActiveReason::ValidMetricFound,
                message: format!(
                    "the HPA was able to successfully calculate a replica count from {metric}"
                ),
            },
            proposing_metric: Some(metric),
            metrics,
        },
        _ => {
            let first = first_error.unwrap_or(Condition {
                status: false,
                reason: ScalingActiveReason::InvalidMetricSourceType,
                message: "the HPA was unable to compute the replica count".to_owned(),
            });
            MetricsEvaluation {
                proposed_replicas: None,
                proposing_metric: None,
                scaling_active: Condition {
                    status: false,
                    reason: first.reason,
                    message: format!(
                        "{} (invalid metrics: {invalid} invalid out of {})",
                        first.message,
                        specs.len()
                    ),
                },
                metrics,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol() -> Tolerances {
        Tolerances::default()
    }

    fn proposal(spec: &MetricSpec, value: f64, current: i32) -> Option<i32> {
        compute_replicas_for_metric(spec, Some(&MetricReading::Value(value)), current, tol())
            .proposed_replicas
    }

    #[test]
    fn docs_algorithm_example() {
        // currentReplicas 2, current 200m, desired 100m -> 4; current 50m -> 1.
        let m = MetricSpec::pods_average_value("requests", 0.1);
        assert_eq!(proposal(&m, 0.2, 2), Some(4));
        assert_eq!(proposal(&m, 0.05, 2), Some(1));
        let r = MetricSpec::resource_average_value("cpu", 0.1);
        assert_eq!(proposal(&r, 0.2, 2), Some(4));
        assert_eq!(proposal(&r, 0.05, 2), Some(1));
    }

    #[test]
    fn tolerance_keeps_current() {
        let m = MetricSpec::resource_utilization("cpu", 50);
        // Ratio 1.05 and 0.92: inside the default 10%.
        assert_eq!(proposal(&m, 52.5, 10), Some(10));
        assert_eq!(proposal(&m, 46.0, 10), Some(10));
        // Ratio 1.2 -> ceil(12) = 12.
        assert_eq!(proposal(&m, 60.0, 10), Some(12));
        // Exactly at the bound (1.1) is still inside.
        assert_eq!(proposal(&m, 55.0, 10), Some(10));
        // 56 -> 1.12 -> ceil(11.2) = 12.
        assert_eq!(proposal(&m, 56.0, 10), Some(12));
    }

    #[test]
    fn utilization_is_truncated_like_upstream_integer_math() {
        let m = MetricSpec::resource_utilization("cpu", 50);
        let s = compute_replicas_for_metric(&m, Some(&MetricReading::Value(99.9)), 3, tol());
        assert_eq!(s.average_utilization, Some(99));
        assert_eq!(s.usage_ratio, Some(1.98));
        assert_eq!(s.proposed_replicas, Some(6));
    }

    #[test]
    fn per_direction_tolerance() {
        let m = MetricSpec::external_value("queue", 100.0);
        let t = Tolerances {
            scale_up: 0.0,
            scale_down: 0.5,
        };
        let p = |v: f64| {
            compute_replicas_for_metric(&m, Some(&MetricReading::Value(v)), 10, t).proposed_replicas
        };
        assert_eq!(p(101.0), Some(11)); // any increase scales up
        assert_eq!(p(100.0), Some(10));
        assert_eq!(p(60.0), Some(10)); // 0.6 is within the 50% scale-down tolerance
        assert_eq!(p(40.0), Some(4));
    }

    /// Upstream replica_calculator_test.go `TestReplicaCalcScaleUpCMObject` (3 replicas, value
    /// 20000, target 10000: 6) and `TestReplicaCalcScaleUpPerPodCMObject` (3 replicas, value
    /// 40000, average target 10000: 4).
    #[test]
    fn object_value_and_average_value_as_upstream() {
        let object = |target| MetricSpec {
            source: MetricSource::Object { name: "qps".into() },
            target,
        };
        let v = object(MetricTarget::Value(10000.0));
        assert_eq!(proposal(&v, 20000.0, 3), Some(6));
        let a = object(MetricTarget::AverageValue(10000.0));
        assert_eq!(proposal(&a, 40000.0, 3), Some(4));
        let failed = compute_replicas_for_metric(&v, None, 3, tol());
        assert_eq!(
            failed.error.map(|f| f.reason),
            Some(ScalingActiveReason::FailedGetObjectMetric)
        );
        let wrong = compute_replicas_for_metric(
            &object(MetricTarget::Utilization(50)),
            Some(&MetricReading::Value(1.0)),
            3,
            tol(),
        );
        assert_eq!(
            wrong.error.map(|f| f.reason),
            Some(ScalingActiveReason::InvalidMetricSourceType)
        );
    }

    #[test]
    fn external_value_and_average_value() {
        let v = MetricSpec::external_value("lag", 1000.0);
        assert_eq!(proposal(&v, 3000.0, 4), Some(12));
        assert_eq!(proposal(&v, 1050.0, 4), Some(4));
        let a = MetricSpec::external_average_value("lag", 100.0);
        // total 950, 10 per... : ceil(950 / 100) = 10, ratio 950 / (100 * 4) = 2.375.
        let s = compute_replicas_for_metric(&a, Some(&MetricReading::Value(950.0)), 4, tol());
        assert_eq!(s.proposed_replicas, Some(10));
        assert_eq!(s.usage_ratio, Some(2.375));
        assert_eq!(s.average_value, Some(237.5));
        // Ratio 1.05 -> keep 4, although ceil(420 / 100) would be 5.
        assert_eq!(proposal(&a, 420.0, 4), Some(4));
    }

    #[test]
    fn scaling_from_zero_only_for_external() {
        let v = MetricSpec::external_value("lag", 10.0);
        assert_eq!(proposal(&v, 25.0, 0), Some(3));
        assert_eq!(proposal(&v, 0.0, 0), Some(0));
        let a = MetricSpec::external_average_value("lag", 10.0);
        assert_eq!(proposal(&a, 25.0, 0), Some(3));
        assert_eq!(proposal(&a, 0.0, 0), Some(0)); // ratio NaN: not within, ceil(0) = 0
        let r = MetricSpec::resource_utilization("cpu", 50);
        let s = compute_replicas_for_metric(&r, Some(&MetricReading::Value(90.0)), 0, tol());
        assert_eq!(s.proposed_replicas, None);
        assert_eq!(
            s.error.map(|e| e.reason),
            Some(ScalingActiveReason::FailedGetResourceMetric)
        );
    }

    #[test]
    fn bad_inputs_never_panic() {
        let specs = [
            MetricSpec::resource_utilization("cpu", 0),
            MetricSpec::resource_utilization("cpu", -5),
            MetricSpec::resource_average_value("cpu", f64::NAN),
            MetricSpec::pods_average_value("x", -1.0),
            MetricSpec::external_value("x", f64::INFINITY),
            MetricSpec::external_average_value("x", 0.0),
            MetricSpec {
                source: MetricSource::Pods { name: "x".into() },
                target: MetricTarget::Value(1.0),
            },
            MetricSpec {
                source: MetricSource::External { name: "x".into() },
                target: MetricTarget::Utilization(50),
            },
            MetricSpec {
                source: MetricSource::Resource { name: "x".into() },
                target: MetricTarget::Value(1.0),
            },
        ];
        for s in &specs {
            let st = compute_replicas_for_metric(s, Some(&MetricReading::Value(1.0)), 3, tol());
            assert_eq!(st.proposed_replicas, None, "{s:?}");
            assert_eq!(
                st.error.map(|e| e.reason),
                Some(ScalingActiveReason::InvalidMetricSourceType)
            );
        }
        let ok = MetricSpec::external_value("x", 1e-300);
        assert_eq!(proposal(&ok, 1e300, 3), Some(i32::MAX));
        assert_eq!(proposal(&ok, -5.0, 3), Some(0));
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let st = compute_replicas_for_metric(&ok, Some(&MetricReading::Value(v)), 3, tol());
            assert_eq!(
                st.error.map(|e| e.reason),
                Some(ScalingActiveReason::FailedGetExternalMetric)
            );
        }
        let st = compute_replicas_for_metric(&ok, None, i32::MIN, tol());
        assert!(st.error.is_some());
    }

    #[test]
    fn largest_proposal_wins() {
        let specs = [
            MetricSpec::resource_utilization("cpu", 50),
            MetricSpec::external_value("queue", 100.0),
            MetricSpec::pods_average_value("rps", 10.0),
        ];
        let readings = [
            MetricReading::Value(100.0), // -> 8
            MetricReading::Value(300.0), // -> 12
            MetricReading::Value(5.0),   // -> 2
        ];
        let e = evaluate_metrics(&specs, &readings, 4, tol());
        assert_eq!(e.proposed_replicas, Some(12));
        assert_eq!(e.proposing_metric.as_deref(), Some("external metric queue"));
        assert_eq!(
            e.scaling_active.reason,
            ScalingActiveReason::ValidMetricFound
        );
        assert!(e.scaling_active.status);
        let props: Vec<_> = e.metrics.iter().map(|m| m.proposed_replicas).collect();
        assert_eq!(props, vec![Some(8), Some(12), Some(2)]);
    }

    #[test]
    fn missing_metrics() {
        let specs = [
            MetricSpec::resource_utilization("cpu", 50),
            MetricSpec::external_value("queue", 100.0),
        ];
        // All failed: no proposal, first error's reason.
        let e = evaluate_metrics(
            &specs,
            &[
                MetricReading::Failed("metrics-server down".into()),
                MetricReading::Failed("prometheus down".into()),
            ],
            4,
            tol(),
        );
        assert_eq!(e.proposed_replicas, None);
        assert!(!e.scaling_active.status);
        assert_eq!(
            e.scaling_active.reason,
            ScalingActiveReason::FailedGetResourceMetric
        );
        assert!(e.scaling_active.message.contains("metrics-server down"));
        assert!(e.scaling_active.message.contains("2 invalid out of 2"));

        // One failed, the other scales down: no proposal (no scale-down on partial data).
        let e = evaluate_metrics(
            &specs,
            &[
                MetricReading::Failed("metrics-server down".into()),
                MetricReading::Value(10.0),
            ],
            4,
            tol(),
        );
        assert_eq!(e.proposed_replicas, None);
        assert_eq!(
            e.scaling_active.reason,
            ScalingActiveReason::FailedGetResourceMetric
        );
        assert_eq!(e.metrics[1].proposed_replicas, Some(1));

        // One failed, the other scales up: scale up.
        let e = evaluate_metrics(
            &specs,
            &[MetricReading::Value(f64::NAN), MetricReading::Value(300.0)],
            4,
            tol(),
        );
        assert_eq!(e.proposed_replicas, Some(12));
        assert_eq!(
            e.scaling_active.reason,
            ScalingActiveReason::ValidMetricFound
        );

        // One failed, the other keeps the current count: allowed (not a scale-down).
        let e = evaluate_metrics(&specs, &[MetricReading::Value(50.0)], 4, tol());
        assert_eq!(e.proposed_replicas, Some(4));

        // No metrics at all.
        let e = evaluate_metrics(&[], &[], 4, tol());
        assert_eq!(e.proposed_replicas, None);
        assert_eq!(
            e.scaling_active.reason,
            ScalingActiveReason::InvalidMetricSourceType
        );
    }
}
