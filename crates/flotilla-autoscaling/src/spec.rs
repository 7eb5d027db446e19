//! The autoscaler's inputs that come from the ScalingPolicy spec: plain mirrors of the
//! `autoscaling/v2` shapes in `flotilla-api` (the controller converts; this crate does not depend
//! on the API crate). Metric values are `f64`, replicas `i32`.

use serde::{Deserialize, Serialize};

/// The HPA's default tolerance (`--horizontal-pod-autoscaler-tolerance`): no scaling while the
/// usage ratio is within 10% of 1.0.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The HPA's default scale-down stabilization window
/// (`--horizontal-pod-autoscaler-downscale-stabilization`, used when
/// `scaleDown.stabilizationWindowSeconds` is unset).
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS: i32 = 300;
/// The default scale-up stabilization window of `autoscaling/v2`.
pub const DEFAULT_SCALE_UP_STABILIZATION_SECONDS: i32 = 0;

/// What the autoscaler needs from a ScalingPolicy spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSpec {
    /// The smallest total (upstream default 1; 0 enables scaling from zero, as the HPA's
    /// `HPAScaleToZero` gate does). Negative values are treated as 0.
    pub min_replicas: i32,
    /// The largest total. A value below `min_replicas` is treated as `min_replicas`.
    pub max_replicas: i32,
    /// The metrics; the largest proposal wins.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// Stabilization, rate policies and tolerances. `None` means the `autoscaling/v2` defaults.
    #[serde(default)]
    pub behavior: Option<ScalingBehavior>,
}

/// One metric and its target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Where the value comes from.
    pub source: MetricSource,
    /// The value the metric should have.
    pub target: MetricTarget,
}

impl MetricSpec {
    /// A Resource metric with a `Utilization` target (percent of the pods' requests).
    pub fn resource_utilization(name: impl Into<String>, average_utilization: i32) -> Self {
        Self {
            source: MetricSource::Resource { name: name.into() },
            target: MetricTarget::Utilization(average_utilization),
        }
    }

    /// A Resource metric with an `AverageValue` target (raw usage per pod).
    pub fn resource_average_value(name: impl Into<String>, average_value: f64) -> Self {
        Self {
            source: MetricSource::Resource { name: name.into() },
            target: MetricTarget::AverageValue(average_value),
        }
    }

    /// A Pods (custom per-pod) metric with an `AverageValue` target.
    pub fn pods_average_value(name: impl Into<String>, average_value: f64) -> Self {
        Self {
            source: MetricSource::Pods { name: name.into() },
            target: MetricTarget::AverageValue(average_value),
        }
    }

    /// An External metric with a `Value` target (the total).
    pub fn external_value(name: impl Into<String>, value: f64) -> Self {
        Self {
            source: MetricSource::External { name: name.into() },
            target: MetricTarget::Value(value),
        }
    }

    /// An External metric with an `AverageValue` target (the total divided by the replicas).
    pub fn external_average_value(name: impl Into<String>, average_value: f64) -> Self {
        Self {
            source: MetricSource::External { name: name.into() },
            target: MetricTarget::AverageValue(average_value),
        }
    }
}

/// The source of a metric, as `autoscaling/v2` `MetricSourceType` with its source struct.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricSource {
    /// A resource (`cpu`, `memory`) of the target's pods.
    Resource {
        /// The resource name.
        name: String,
    },
    /// A custom per-pod metric.
    Pods {
        /// The metric name.
        name: String,
    },
    /// A metric not tied to a Kubernetes object (summed across member clusters by the caller).
    External {
        /// The metric name.
        name: String,
    },
    /// A metric of one object (summed across member clusters by the caller); computed as
    /// upstream computes it, which is the External computation.
    Object {
        /// The metric name.
        name: String,
    },
}

impl MetricSource {
    /// The metric (or resource) name.
    pub fn name(&self) -> &str {
        match self {
            Self::Resource { name }
            | Self::Pods { name }
            | Self::External { name }
            | Self::Object { name } => name,
        }
    }

    /// The source type.
    pub fn source_type(&self) -> MetricSourceType {
        match self {
            Self::Resource { .. } => MetricSourceType::Resource,
            Self::Pods { .. } => MetricSourceType::Pods,
            Self::External { .. } => MetricSourceType::External,
            Self::Object { .. } => MetricSourceType::Object,
        }
    }
}

/// The type of a metric source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricSourceType {
    /// A resource metric.
    Resource,
    /// A per-pod custom metric.
    Pods,
    /// An external metric.
    External,
    /// An object metric.
    Object,
}

/// A metric target, as `autoscaling/v2` `MetricTarget`.
///
/// Valid combinations (as in upstream validation): Resource with `Utilization` or
/// `AverageValue`; Pods with `AverageValue`; External and Object with `Value` or `AverageValue`. Other
/// combinations, and targets that are not finite and positive, make that metric invalid
/// (reason `InvalidMetricSourceType`); they never panic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricTarget {
    /// Target average utilization, in percent of the pods' requests.
    Utilization(i32),
    /// Target total value.
    Value(f64),
    /// Target value per replica.
    AverageValue(f64),
}

/// Scale-up and scale-down behaviour, as `autoscaling/v2` `HorizontalPodAutoscalerBehavior`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingBehavior {
    /// Rules for scaling up; unset fields take the `autoscaling/v2` defaults.
    #[serde(default)]
    pub scale_up: Option<ScalingRules>,
    /// Rules for scaling down; unset fields take the `autoscaling/v2` defaults.
    #[serde(default)]
    pub scale_down: Option<ScalingRules>,
}

/// Rules for one direction, as `autoscaling/v2` `HPAScalingRules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Stabilization window in seconds; negative values are treated as 0.
    #[serde(default)]
    pub stabilization_window_seconds: Option<i32>,
    /// Which policy applies; default `Max`.
    #[serde(default)]
    pub select_policy: Option<SelectPolicy>,
    /// Rate policies. Empty means "unset": the direction's default policies apply (the API
    /// cannot tell an empty list from an omitted one, and upstream validation requires at least
    /// one policy when the field is given).
    #[serde(default)]
    pub policies: Vec<ScalingPolicyRule>,
    /// Tolerance for this direction (HPAConfigurableTolerance); default [`DEFAULT_TOLERANCE`].
    /// NaN is treated as unset, negative values as 0.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

/// Which policy's limit applies when there are several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A rate limit, as `autoscaling/v2` `HPAScalingPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyRule {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub policy_type: ScalingPolicyType,
    /// The change allowed within the period (upstream requires > 0).
    pub value: i32,
    /// The period in seconds (upstream requires 1..=1800); negative values are treated as 0.
    pub period_seconds: i32,
}

impl ScalingPolicyRule {
    /// Allow `value` pods of change per `period_seconds`.
    pub const fn pods(value: i32, period_seconds: i32) -> Self {
        Self {
            policy_type: ScalingPolicyType::Pods,
            value,
            period_seconds,
        }
    }

    /// Allow `value` percent of change per `period_seconds`.
    pub const fn percent(value: i32, period_seconds: i32) -> Self {
        Self {
            policy_type: ScalingPolicyType::Percent,
            value,
            period_seconds,
        }
    }
}

/// The unit of a rate policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalingPolicyType {
    /// An absolute number of replicas.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// Rules for one direction with every default filled in (upstream `GenerateHPAScaleUpRules` /
/// `GenerateHPAScaleDownRules` plus the controller's tolerance and downscale window flags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedRules {
    /// Stabilization window, seconds, at least 0.
    pub stabilization_window_seconds: i32,
    /// Which policy applies.
    pub select_policy: SelectPolicy,
    /// The policies (never empty).
    pub policies: Vec<ScalingPolicyRule>,
    /// The tolerance for this direction, at least 0.
    pub tolerance: f64,
}

impl ResolvedRules {
    /// The longest policy period, in seconds (at least 0).
    pub fn longest_period_seconds(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds.max(0))
            .max()
            .unwrap_or(0)
    }
}

/// Both directions with defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedBehavior {
    /// Scale-up rules.
    pub scale_up: ResolvedRules,
    /// Scale-down rules.
    pub scale_down: ResolvedRules,
}

impl ResolvedBehavior {
    /// Fills the `autoscaling/v2` defaults into `behavior` (field by field, as upstream's
    /// `copyHPAScalingRules`):
    /// - scale up: window 0 s, `Max`, policies `[Pods 4 / 15 s, Percent 100 / 15 s]`;
    /// - scale down: window 300 s, `Max`, policies `[Percent 100 / 15 s]`;
    /// - tolerance 0.1 both ways.
    pub fn resolve(behavior: Option<&ScalingBehavior>) -> Self {
        let up = behavior.and_then(|b| b.scale_up.as_ref());
        let down = behavior.and_then(|b| b.scale_down.as_ref());
        Self {
            scale_up: resolve_rules(
                up,
                DEFAULT_SCALE_UP_STABILIZATION_SECONDS,
                &[
                    ScalingPolicyRule::pods(4, 15),
                    ScalingPolicyRule::percent(100, 15),
                ],
            ),
            scale_down: resolve_rules(
                down,
                DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS,
                &[ScalingPolicyRule::percent(100, 15)],
            ),
        }
    }

    /// The longest stabilization window of both directions, in seconds.
    pub fn longest_window_seconds(&self) -> i32 {
        self.scale_up
            .stabilization_window_seconds
            .max(self.scale_down.stabilization_window_seconds)
    }

    /// The longest policy period of both directions, in seconds.
    pub fn longest_period_seconds(&self) -> i32 {
        self.scale_up
            .longest_period_seconds()
            .max(self.scale_down.longest_period_seconds())
    }

    /// The tolerances used for the usage ratio.
    pub fn tolerances(&self) -> Tolerances {
        Tolerances {
            scale_up: self.scale_up.tolerance,
            scale_down: self.scale_down.tolerance,
        }
    }
}

fn resolve_rules(
    rules: Option<&ScalingRules>,
    default_window: i32,
    default_policies: &[ScalingPolicyRule],
) -> ResolvedRules {
    let window = rules
        .and_then(|r| r.stabilization_window_seconds)
        .unwrap_or(default_window)
        .max(0);
    let select_policy = rules
        .and_then(|r| r.select_policy)
        .unwrap_or(SelectPolicy::Max);
    let policies = match rules {
        Some(r) if !r.policies.is_empty() => r.policies.clone(),
        _ => default_policies.to_vec(),
    };
    let tolerance = match rules.and_then(|r| r.tolerance) {
        Some(t) if t.is_nan() => DEFAULT_TOLERANCE,
        Some(t) => t.max(0.0),
        None => DEFAULT_TOLERANCE,
    };
    ResolvedRules {
        stabilization_window_seconds: window,
        select_policy,
        policies,
        tolerance,
    }
}

/// Scale-up and scale-down tolerances around a usage ratio of 1.0 (upstream `Tolerances`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tolerances {
    /// No scale-up while the ratio is at most `1 + scale_up`.
    pub scale_up: f64,
    /// No scale-down while the ratio is at least `1 - scale_down`.
    pub scale_down: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            scale_up: DEFAULT_TOLERANCE,
            scale_down: DEFAULT_TOLERANCE,
        }
    }
}

impl Tolerances {
    /// Upstream `isWithin`: `1 - scale_down <= ratio <= 1 + scale_up`. NaN is never within.
    pub fn is_within(&self, usage_ratio: f64) -> bool {
        (1.0 - self.scale_down) <= usage_ratio && usage_ratio <= (1.0 + self.scale_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_autoscaling_v2() {
        let r = ResolvedBehavior::resolve(None);
        assert_eq!(r.scale_up.stabilization_window_seconds, 0);
        assert_eq!(r.scale_up.select_policy, SelectPolicy::Max);
        assert_eq!(
            r.scale_up.policies,
            vec![
                ScalingPolicyRule::pods(4, 15),
                ScalingPolicyRule::percent(100, 15)
            ]
        );
        assert_eq!(r.scale_down.stabilization_window_seconds, 300);
        assert_eq!(r.scale_down.select_policy, SelectPolicy::Max);
        assert_eq!(
            r.scale_down.policies,
            vec![ScalingPolicyRule::percent(100, 15)]
        );
        assert_eq!(r.tolerances(), Tolerances::default());
        assert_eq!(r.longest_window_seconds(), 300);
        assert_eq!(r.longest_period_seconds(), 15);
    }

    #[test]
    fn partial_rules_keep_other_defaults() {
        let behavior = ScalingBehavior {
            scale_up: Some(ScalingRules {
                tolerance: Some(0.05),
                ..Default::default()
            }),
            scale_down: Some(ScalingRules {
                select_policy: Some(SelectPolicy::Disabled),
                stabilization_window_seconds: Some(-7),
                tolerance: Some(f64::NAN),
                ..Default::default()
            }),
        };
        let r = ResolvedBehavior::resolve(Some(&behavior));
        assert_eq!(r.scale_up.tolerance, 0.05);
        assert_eq!(r.scale_up.policies.len(), 2);
        assert_eq!(r.scale_down.select_policy, SelectPolicy::Disabled);
        assert_eq!(r.scale_down.stabilization_window_seconds, 0);
        assert_eq!(r.scale_down.tolerance, DEFAULT_TOLERANCE);
        assert_eq!(
            r.scale_down.policies,
            vec![ScalingPolicyRule::percent(100, 15)]
        );
    }

    #[test]
    fn tolerance_bounds_are_inclusive_and_per_direction() {
        let t = Tolerances {
            scale_up: 0.05,
            scale_down: 0.2,
        };
        assert!(t.is_within(1.05));
        assert!(!t.is_within(1.051));
        assert!(t.is_within(0.8));
        assert!(!t.is_within(0.79));
        assert!(!t.is_within(f64::NAN));
        assert!(!t.is_within(f64::INFINITY));
    }
}
