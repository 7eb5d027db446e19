//! One reconciliation of the autoscaler (upstream `reconcileAutoscaler` minus the I/O): from the
//! current replicas and the metric readings to the desired total and the HPA conditions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::behavior::{limit_by_rate, stabilize};
use crate::metrics::{MetricReading, MetricStatus, evaluate_metrics};
use crate::spec::{ResolvedBehavior, ScalingSpec};
use crate::state::ScalerState;
use crate::time::Timestamp;

/// What the caller observed for one call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleInput {
    /// The current total replicas (the sum of the members' scale subresources). Negative values
    /// are treated as 0.
    pub current_replicas: i32,
    /// One reading per entry of [`ScalingSpec::metrics`], in the same order. A missing entry
    /// counts as a failed read.
    pub metrics: Vec<MetricReading>,
}

/// A condition as the HPA reports it: status, a machine-readable reason, a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition<R> {
    /// `True` (`true`) or `False` (`false`).
    pub status: bool,
    /// The reason code.
    pub reason: R,
    /// A human-readable message.
    pub message: String,
}

macro_rules! reasons {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The reason as the HPA spells it in a condition.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons! {
    /// Reasons of the `AbleToScale` condition.
    AbleToScaleReason {
        /// The current scale was read; nothing was normalized (no proposal, or the current count
        /// was outside `[min, max]`).
        SucceededGetScale,
        /// The recommendation was not changed by stabilization.
        ReadyForNewScale,
        /// A lower recent recommendation held a scale-up back.
        ScaleUpStabilized,
        /// A higher recent recommendation held a scale-down back.
        ScaleDownStabilized,
    }
}

reasons! {
    /// Reasons of the `ScalingActive` condition.
    ScalingActiveReason {
        /// At least one metric gave a usable proposal.
        ValidMetricFound,
        /// The target has 0 replicas and `minReplicas` is not 0.
        ScalingDisabled,
        /// A Resource metric could not be read or computed.
        FailedGetResourceMetric,
        /// A Pods metric could not be read or computed.
        FailedGetPodsMetric,
        /// An External metric could not be read or computed.
        FailedGetExternalMetric,
        /// An Object metric could not be read or computed.
        FailedGetObjectMetric,
        /// A metric's target does not fit its source (or is not a positive number), or there
        /// are no metrics.
        InvalidMetricSourceType,
    }
}

reasons! {
    /// Reasons of the `ScalingLimited` condition.
    ScalingLimitedReason {
        /// Nothing limited the recommendation.
        DesiredWithinRange,
        /// `minReplicas` raised the count.
        TooFewReplicas,
        /// `maxReplicas` lowered the count.
        TooManyReplicas,
        /// A scale-up policy lowered the count.
        ScaleUpLimit,
        /// A scale-down policy raised the count.
        ScaleDownLimit,
    }
}

/// The result of one call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecision {
    /// The current total the decision was made from (after sanitizing).
    pub current_replicas: i32,
    /// The total to scale to. Equal to `current_replicas` when nothing should change.
    pub desired_replicas: i32,
    /// The largest metric proposal, before stabilization, rate limits and `[min, max]`; `None`
    /// when the metrics gave no usable proposal or were not evaluated.
    pub proposed_replicas: Option<i32>,
    /// The metric that made the proposal.
    pub proposing_metric: Option<String>,
    /// The proposal after the stabilization windows, before rate limits and `[min, max]`.
    pub stabilized_replicas: Option<i32>,
    /// Whether `desired_replicas` differs from `current_replicas`.
    pub rescale: bool,
    /// Why, when rescaling (upstream's event text, e.g. "external metric lag above target").
    pub rescale_reason: Option<String>,
    /// The `AbleToScale` condition (always `True` here: failures to read or write the scale are
    /// the caller's).
    pub able_to_scale: Condition<AbleToScaleReason>,
    /// The `ScalingActive` condition.
    pub scaling_active: Condition<ScalingActiveReason>,
    /// The `ScalingLimited` condition; `None` when it was not evaluated (no proposal, scaling
    /// disabled), in which case upstream leaves the previous condition in place.
    pub scaling_limited: Option<Condition<ScalingLimitedReason>>,
    /// Each metric's value and proposal, in spec order (empty when scaling is disabled).
    pub metrics: Vec<MetricStatus>,
}

fn succeeded_get_scale() -> Condition<AbleToScaleReason> {
    Condition {
        status: true,
        reason: AbleToScaleReason::SucceededGetScale,
        message: "the HPA controller was able to get the target's current scale".to_owned(),
    }
}

/// Runs one reconciliation of the HPA v2 algorithm at `now`, and updates `state` (the
/// recommendation history always; the scale-event history when the decision rescales — the
/// caller is expected to apply it. If applying fails, the recorded event only makes the rate
/// policies stricter until it leaves its period, whereas upstream records it after a successful
/// update).
///
/// Order, as upstream:
/// 1. current is 0 and `min_replicas` is not: scaling disabled, nothing proposed;
/// 2. current above `max_replicas` (below `min_replicas`): scale straight to the bound, with no
///    stabilization or rate limit;
/// 3. otherwise the metrics' largest proposal, stabilized, rate-limited and kept in
///    `[min, max]`.
pub fn decide(
    spec: &ScalingSpec,
    input: &ScaleInput,
    state: &mut ScalerState,
    now: Timestamp,
) -> ScaleDecision {
    let min = spec.min_replicas.max(0);
    let max = spec.max_replicas.max(min);
    let current = input.current_replicas.max(0);
    let behavior = ResolvedBehavior::resolve(spec.behavior.as_ref());

    state.prune(now, &behavior);
    state.record_initial_recommendation(current, now);

    if current == 0 && min != 0 {
        return ScaleDecision {
            current_replicas: current,
            desired_replicas: current,
            proposed_replicas: None,
            proposing_metric: None,
            stabilized_replicas: None,
            rescale: false,
            rescale_reason: None,
            able_to_scale: succeeded_get_scale(),
            scaling_active: Condition {
                status: false,
                reason: ScalingActiveReason::ScalingDisabled,
                message: "scaling is disabled since the replica count of the target is zero"
                    .to_owned(),
            },
            scaling_limited: None,
            metrics: Vec::new(),
        };
    }

    let evaluation = evaluate_metrics(
        &spec.metrics,
        &input.metrics,
        current,
        behavior.tolerances(),
    );

    let out_of_range = if current > max {
        Some((
            max,
            ScalingLimitedReason::TooManyReplicas,
            "the current replica count is more than the maximum replica count",
            "Current number of replicas above Spec.MaxReplicas",
        ))
    } else if current < min {
        Some((
            min,
            ScalingLimitedReason::TooFewReplicas,
            "the current replica count is less than the minimum replica count",
            "Current number of replicas below Spec.MinReplicas",
        ))
    } else {
        None
    };
    if let Some((bound, reason, message, rescale_reason)) = out_of_range {
        state.record_scale_event(current, bound, now);
        return ScaleDecision {
            current_replicas: current,
            desired_replicas: bound,
            proposed_replicas: evaluation.proposed_replicas,
            proposing_metric: evaluation.proposing_metric,
            stabilized_replicas: None,
            rescale: true,
            rescale_reason: Some(rescale_reason.to_owned()),
            able_to_scale: succeeded_get_scale(),
            scaling_active: evaluation.scaling_active,
            scaling_limited: Some(Condition {
                status: true,
                reason,
                message: message.to_owned(),
            }),
            metrics: evaluation.metrics,
        };
    }

    let Some(proposed) = evaluation.proposed_replicas else {
        // Never scale on missing data.
        return ScaleDecision {
            current_replicas: current,
            desired_replicas: current,
            proposed_replicas: None,
            proposing_metric: None,
            stabilized_replicas: None,
            rescale: false,
            rescale_reason: None,
            able_to_scale: succeeded_get_scale(),
            scaling_active: evaluation.scaling_active,
            scaling_limited: None,
            metrics: evaluation.metrics,
        };
    };

    let (stabilized, stabilized_reason, stabilized_message) =
        stabilize(state, &behavior, current, proposed, now);
    let able_to_scale = if stabilized != proposed {
        Condition {
            status: true,
            reason: stabilized_reason,
            message: stabilized_message.to_owned(),
        }
    } else {
        Condition {
            status: true,
            reason: AbleToScaleReason::ReadyForNewScale,
            message: "recommended size matches current size".to_owned(),
        }
    };

    let (desired, limited_reason, limited_message) =
        limit_by_rate(state, &behavior, current, stabilized, min, max, now);
    let rescale = desired != current;
    if rescale {
        state.record_scale_event(current, desired, now);
    }
    let rescale_reason = rescale.then(|| {
        if proposed > current {
            format!(
                "{} above target",
                evaluation.proposing_metric.as_deref().unwrap_or_default()
            )
        } else {
            "All metrics below target".to_owned()
        }
    });

    ScaleDecision {
        current_replicas: current,
        desired_replicas: desired,
        proposed_replicas: Some(proposed),
        proposing_metric: evaluation.proposing_metric,
        stabilized_replicas: Some(stabilized),
        rescale,
        rescale_reason,
        able_to_scale,
        scaling_active: evaluation.scaling_active,
        scaling_limited: Some(Condition {
            status: desired != stabilized,
            reason: limited_reason,
            message: limited_message.to_owned(),
        }),
        metrics: evaluation.metrics,
    }
}
