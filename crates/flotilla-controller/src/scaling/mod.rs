//! ScalingPolicy: federated autoscaling. Metrics decide a workload's total replicas with the
//! HPA v2 algorithm (`flotilla-autoscaling`); the placement engine divides the total across the
//! member clusters; the controller writes each cluster's share through the workload's scale
//! subresource. See [`mod@controller`] for the loop, its period and its status write policy.
pub mod controller;
pub mod events;
pub mod member;
pub mod prometheus;
pub mod quantity;
pub mod spec;
pub mod status;

// One poll of a policy, phase by phase (see `scale`).
mod apply;
mod conflicts;
mod decide;
mod member_hpas;
mod member_pods;
mod member_watch;
mod observe;
mod placement;
mod read_metrics;
mod report;
mod scale;
mod standing;
mod state;
mod workload;

pub use controller::{CONTROLLER, DEFAULT_NAMESPACE_LABEL, ScalingConfig, controller};
