//! Flotilla's API, group `federation.flotilla.dev`, version `v1alpha1`.
//!
//! Every type lives here so later versions can refine fields in one place. The CRD YAML under
//! `crds/` is generated from these types by the `crdgen` binary (`make crds`).
// kube's `#[kube(printcolumn(...))]` is repeated once per column by design; clippy reads the
// repeated `type_ = "string"` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]
pub mod federated_ingress;
pub mod federated_object;
pub mod int_bounds;
pub mod labels;
pub mod member_cluster;
pub mod overrides;
pub mod placement;
pub mod placement_status;
pub mod policies;
pub mod propagation;
pub mod propagation_policy;
pub mod scaling_policy;
pub mod validation;

mod crd;

pub use crd::{CrdFile, crd_files};
pub use federated_ingress::{FederatedIngress, FederatedIngressSpec, FederatedIngressStatus};
pub use federated_object::{
    ClusterFederatedObject, ClusterFederatedObjectSpec, FederatedObject, FederatedObjectSpec,
};
pub use member_cluster::{MemberCluster, MemberClusterSpec, MemberClusterStatus};
pub use propagation_policy::{
    ClusterPropagationPolicy, PolicySpec, PolicyStatus, PropagationPolicy, ResourceSelector,
};
pub use scaling_policy::{ScalingPolicy, ScalingPolicySpec, ScalingPolicyStatus};

/// The API group of every Flotilla kind.
pub const GROUP: &str = "federation.flotilla.dev";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
