//! Flotilla's federated autoscaler core: the Kubernetes HorizontalPodAutoscaler (`autoscaling/v2`)
//! algorithm as pure logic. It decides the TOTAL replicas of a workload across member clusters
//! (dividing them across clusters happens elsewhere). No Kubernetes client, no I/O, no clock:
//! the caller reads the metrics, passes the time, keeps a [`ScalerState`] per policy and applies
//! the [`ScaleDecision`].
//!
//! It follows the upstream controller (`pkg/controller/podautoscaler/horizontal.go` and
//! `replica_calculator.go`):
//! - per metric, a usage ratio (current / target) checked against the tolerance
//!   (`1 - scaleDown.tolerance <= ratio <= 1 + scaleUp.tolerance` keeps the current count, 0.1
//!   by default), else `ceil(ratio * current)`; External `AverageValue` proposes
//!   `ceil(total / target)`;
//! - the largest proposal of all metrics wins; failed metrics are skipped; no proposal when all
//!   failed, or when some failed and the rest would scale down;
//! - current 0 with `minReplicas > 0` disables scaling; current outside `[min, max]` goes
//!   straight to the bound;
//! - stabilization: the current count is raised to the lowest recommendation of the scale-up
//!   window and lowered to the highest of the scale-down window;
//! - rate policies from the history of scale events, per policy period, `selectPolicy`
//!   `Max`/`Min`/`Disabled`, then `[min, max]`;
//! - `behavior` unset, or partly set, takes the `autoscaling/v2` defaults.
//!
//! Resource and Pods metrics can be read as one value (an average over all pods) or as one
//! [`PodSample`] per pod ([`MetricReading::PerPod`]). The federated autoscaler treats the pods of
//! all member clusters as one pod set: the caller pools every member's samples into one list.
//! Per-pod samples follow upstream's handling of unready pods and pods without metrics
//! (`GetResourceReplicas`, `calcPlainMetricReplicas`, `groupPods`):
//! - ignored pods (deleted, failed) are dropped; unready pods and pods without a sample are left
//!   out of a first usage ratio over the ready pods with samples. With no such pod the metric
//!   fails ("did not receive metrics for targeted pods (pods might be unready)"): it never
//!   scales on unready or missing pods alone;
//! - with no missing pod, and no unready pod or no scale-up, that ratio decides as usual:
//!   current replicas inside the tolerance, else `ceil(ratio * ready pods)`;
//! - otherwise the ratio is computed again with, on a scale-up, missing and unready pods at 0
//!   (their requests count), on a scale-down, missing pods at the target (Utilization: 100 % of
//!   their request, or the target when it is above 100 %) and unready pods still out; the
//!   current replicas stay when the new ratio is inside the tolerance or reverses the
//!   direction, or when `ceil(new ratio * pods counted)` moves against it; else that count;
//! - Utilization is `trunc(100 * sum(usage) / sum(requests))` over the pods counted, like
//!   upstream's integer arithmetic; every counted pod needs a request.
//!
//! ```
//! use flotilla_autoscaling::{
//!     decide, MetricReading, MetricSpec, ScaleInput, ScalerState, ScalingSpec, Timestamp,
//! };
//!
//! let spec = ScalingSpec {
//!     min_replicas: 1,
//!     max_replicas: 20,
//!     metrics: vec![MetricSpec::external_average_value("queue_depth", 30.0)],
//!     behavior: None,
//! };
//! let mut state = ScalerState::new(); // keep one per policy, between calls
//! let input = ScaleInput {
//!     current_replicas: 2,
//!     metrics: vec![MetricReading::Value(240.0)], // 240 queued, 30 per replica wanted
//! };
//! let decision = decide(&spec, &input, &mut state, Timestamp::from_unix_secs(1_700_000_000));
//! assert_eq!(decision.proposed_replicas, Some(8));
//! // The default scale-up policies allow max(+4 pods, +100%) per 15 s: 2 -> 6.
//! assert_eq!(decision.desired_replicas, 6);
//! assert_eq!(decision.scaling_limited.map(|c| c.reason.as_str()), Some("ScaleUpLimit"));
//! ```

mod behavior;
mod decision;
mod metrics;
mod pod_state;
mod pods;
mod spec;
mod state;
mod time;

pub use decision::{
    AbleToScaleReason, Condition, ScaleDecision, ScaleInput, ScalingActiveReason,
    ScalingLimitedReason, decide,
};
pub use metrics::{
    MetricReading, MetricStatus, MetricsEvaluation, compute_replicas_for_metric, evaluate_metrics,
    metric_description,
};
pub use pod_state::{PodFacts, PodPhase, ReadyCondition, classify};
pub use pods::{PodReadiness, PodSample};
pub use spec::{
    DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, DEFAULT_SCALE_UP_STABILIZATION_SECONDS,
    DEFAULT_TOLERANCE, MetricSource, MetricSourceType, MetricSpec, MetricTarget, ResolvedBehavior,
    ResolvedRules, ScalingBehavior, ScalingPolicyRule, ScalingPolicyType, ScalingRules,
    ScalingSpec, SelectPolicy, Tolerances,
};
pub use state::{MAX_HISTORY, ScaleEvent, ScalerState, TimestampedRecommendation};
pub use time::Timestamp;
