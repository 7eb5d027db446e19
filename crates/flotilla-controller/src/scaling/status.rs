//! The ScalingPolicy status, built from what one reconcile found (pure; time is an input), and
//! the write policy that keeps a 1-second poll from writing status every second.
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::scaling_policy::{
    ClusterReplicaStatus, MetricSourceType, MetricValueStatus, ScalingPolicyStatus,
};
use flotilla_autoscaling as hpa;

use super::quantity;
use crate::conditions::{NewCondition, set_condition};

/// A condition to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// From one of the autoscaler's conditions.
    pub fn from_hpa<R: std::fmt::Display>(c: &hpa::Condition<R>) -> Self {
        Self::new(c.status, c.reason.to_string(), c.message.clone())
    }
}

/// What a reconcile found and decided.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub generation: Option<i64>,
    /// Observed total over the selected clusters Flotilla scales.
    pub current_replicas: Option<i32>,
    /// The total Flotilla decided.
    pub desired_replicas: Option<i32>,
    /// Whether the total changed in this reconcile (moves `lastScaleTime`).
    pub rescaled: bool,
    /// Metric values; `None` keeps the previous ones (metrics were not read).
    pub metrics: Option<Vec<MetricValueStatus>>,
    pub able_to_scale: Option<Cond>,
    /// `None` keeps the previous condition (as the HPA does when it did not evaluate it).
    pub scaling_active: Option<Cond>,
    pub scaling_limited: Option<Cond>,
    pub member_conflict: Option<Cond>,
    /// `None` keeps the previous placement.
    pub placement: Option<PlacementStatus>,
    pub clusters: Vec<ClusterReplicaStatus>,
}

/// The metric values the autoscaler computed, as status (metrics without a value are left out).
pub fn metric_values(metrics: &[hpa::MetricStatus]) -> Vec<MetricValueStatus> {
    metrics
        .iter()
        .filter(|m| {
            m.value.is_some() || m.average_value.is_some() || m.average_utilization.is_some()
        })
        .map(|m| MetricValueStatus {
            name: m.name.clone(),
            type_: match m.source {
                hpa::MetricSourceType::Resource => MetricSourceType::Resource,
                hpa::MetricSourceType::Pods => MetricSourceType::Pods,
                hpa::MetricSourceType::External => MetricSourceType::External,
                hpa::MetricSourceType::Object => MetricSourceType::Object,
            },
            value: m.value.map(quantity::format),
            average_value: m.average_value.map(quantity::format),
            average_utilization: m.average_utilization,
        })
        .collect()
}

/// Builds the new status from the previous one and the report.
pub fn build(
    previous: Option<&ScalingPolicyStatus>,
    report: Report,
    now: Time,
) -> ScalingPolicyStatus {
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let generation = report.generation;
    for (type_, cond) in [
        ("AbleToScale", &report.able_to_scale),
        ("ScalingActive", &report.scaling_active),
        ("ScalingLimited", &report.scaling_limited),
        ("MemberConflict", &report.member_conflict),
    ] {
        if let Some(c) = cond {
            set_condition(
                &mut conditions,
                NewCondition {
                    type_,
                    status: c.status,
                    reason: &c.reason,
                    message: c.message.clone(),
                    observed_generation: generation,
                },
                now.clone(),
            );
        }
    }
    let mut clusters = report.clusters;
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    ScalingPolicyStatus {
        observed_generation: generation,
        current_replicas: report
            .current_replicas
            .or(previous.and_then(|p| p.current_replicas)),
        desired_replicas: report
            .desired_replicas
            .or(previous.and_then(|p| p.desired_replicas)),
        last_scale_time: if report.rescaled {
            Some(now)
        } else {
            previous.and_then(|p| p.last_scale_time.clone())
        },
        current_metrics: report.metrics.unwrap_or_else(|| {
            previous
                .map(|p| p.current_metrics.clone())
                .unwrap_or_default()
        }),
        conditions,
        placement: report
            .placement
            .or_else(|| previous.and_then(|p| p.placement.clone())),
        clusters,
    }
}

/// Whether to write `new` over `previous`. Anything but the metric values is written at once;
/// a change of only the metric values (which move on every poll while load changes) is written
/// at most once per `metrics_interval`, so the status does not churn every second. The values
/// used for decisions are never stale: the autoscaler reads them fresh on every poll.
pub fn should_write(
    previous: Option<&ScalingPolicyStatus>,
    new: &ScalingPolicyStatus,
    last_write: Option<Instant>,
    now: Instant,
    metrics_interval: Duration,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    if previous == new {
        return false;
    }
    let mut without_metrics = previous.clone();
    without_metrics.current_metrics = new.current_metrics.clone();
    if &without_metrics != new {
        return true;
    }
    last_write.is_none_or(|t| now.saturating_duration_since(t) >= metrics_interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::find;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).expect("time"))
    }

    fn report() -> Report {
        Report {
            generation: Some(2),
            current_replicas: Some(3),
            desired_replicas: Some(5),
            rescaled: true,
            metrics: Some(vec![]),
            able_to_scale: Some(Cond::new(true, "ReadyForNewScale", "ok")),
            scaling_active: Some(Cond::new(true, "ValidMetricFound", "ok")),
            scaling_limited: Some(Cond::new(false, "DesiredWithinRange", "ok")),
            member_conflict: Some(Cond::new(false, "NoConflict", "none")),
            placement: None,
            clusters: vec![
                ClusterReplicaStatus {
                    cluster: "b".into(),
                    desired_replicas: 2,
                    current_replicas: Some(2),
                    state: "Scaled".into(),
                    message: None,
                },
                ClusterReplicaStatus {
                    cluster: "a".into(),
                    desired_replicas: 3,
                    current_replicas: Some(3),
                    state: "Scaled".into(),
                    message: None,
                },
            ],
        }
    }

    #[test]
    fn builds_conditions_and_sorted_clusters() {
        let s = build(None, report(), at(10));
        assert_eq!(s.clusters[0].cluster, "a");
        assert_eq!(s.last_scale_time, Some(at(10)));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            find(&s.conditions, "ScalingActive").map(|c| c.reason.as_str()),
            Some("ValidMetricFound")
        );
        assert_eq!(s.conditions.len(), 4);
    }

    #[test]
    fn an_unchanged_reconcile_builds_the_same_status() {
        let first = build(None, report(), at(10));
        let mut again = report();
        again.rescaled = false;
        let second = build(Some(&first), again, at(11));
        assert_eq!(second, first);
        assert!(!should_write(
            Some(&first),
            &second,
            None,
            Instant::now(),
            Duration::from_secs(15)
        ));
    }

    #[test]
    fn unevaluated_conditions_and_metrics_are_kept() {
        let first = build(None, report(), at(10));
        let mut r = report();
        r.rescaled = false;
        r.scaling_limited = None;
        r.metrics = None;
        r.desired_replicas = None;
        let s = build(Some(&first), r, at(20));
        assert_eq!(
            find(&s.conditions, "ScalingLimited"),
            find(&first.conditions, "ScalingLimited")
        );
        assert_eq!(s.desired_replicas, Some(5));
    }

    #[test]
    fn metric_only_changes_are_throttled() {
        let first = build(None, report(), at(10));
        let mut r = report();
        r.rescaled = false;
        r.metrics = Some(vec![MetricValueStatus {
            name: "lag".into(),
            type_: MetricSourceType::External,
            value: Some(quantity::format(12.5)),
            average_value: None,
            average_utilization: None,
        }]);
        let second = build(Some(&first), r, at(11));
        let t0 = Instant::now();
        let interval = Duration::from_secs(15);
        assert!(!should_write(
            Some(&first),
            &second,
            Some(t0),
            t0 + Duration::from_secs(3),
            interval
        ));
        assert!(should_write(
            Some(&first),
            &second,
            Some(t0),
            t0 + Duration::from_secs(15),
            interval
        ));
        assert!(should_write(Some(&first), &second, None, t0, interval));
        // Any other change is written at once.
        let mut third = second.clone();
        third.desired_replicas = Some(6);
        assert!(should_write(Some(&first), &third, Some(t0), t0, interval));
    }

    #[test]
    fn metric_values_keep_only_read_values() {
        let values = metric_values(&[
            hpa::MetricStatus {
                name: "lag".into(),
                source: hpa::MetricSourceType::External,
                value: None,
                average_value: Some(1.5),
                average_utilization: None,
                usage_ratio: Some(1.0),
                proposed_replicas: Some(3),
                error: None,
            },
            hpa::MetricStatus {
                name: "cpu".into(),
                source: hpa::MetricSourceType::Resource,
                value: None,
                average_value: None,
                average_utilization: None,
                usage_ratio: None,
                proposed_replicas: None,
                error: None,
            },
        ]);
        assert_eq!(values.len(), 1);
        assert_eq!(
            values[0].average_value.as_ref().map(|q| q.0.as_str()),
            Some("1500m")
        );
    }
}
