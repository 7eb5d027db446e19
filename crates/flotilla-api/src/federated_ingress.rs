//! FederatedIngress: an Ingress template placed into member clusters.
use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::IngressSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::propagation::{
    CopyState, DriftStatus, DriftedField, LoadBalancerAddress, MemberCopyStatus,
};
use crate::propagation::{PropagationSpec, PropagationStatus};

/// The status of a FederatedIngress: the status every propagated kind shares.
pub type FederatedIngressStatus = PropagationStatus;

/// An Ingress propagated to member clusters: the `template` is applied to every cluster the
/// `placement` selects, with that cluster's `overrides`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "FederatedIngress",
    plural = "federatedingresses",
    shortname = "fing",
    category = "flotilla",
    namespaced,
    status = "FederatedIngressStatus",
    doc = "An Ingress propagated to the member clusters a placement selects.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Clusters",
        type_ = "string",
        json_path = ".status.placement.selected"
    ),
    printcolumn(
        name = "Drift",
        type_ = "string",
        json_path = ".spec.drift.mode",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIngressSpec {
    /// The Ingress to create in each selected member, in the same namespace and with the same
    /// name as this object.
    pub template: IngressTemplate,

    /// Placement, overrides, drift, adoption and deletion: the same for every propagated kind.
    #[serde(flatten)]
    pub propagation: PropagationSpec,
}

/// The Ingress to propagate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTemplate {
    /// Labels and annotations for the member copies.
    #[serde(default)]
    pub metadata: TemplateMetadata,
    /// The Ingress spec.
    pub spec: IngressSpec,
}

/// Metadata for member copies. Name and namespace are those of the host object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels for the member copies (Flotilla adds its own tracking labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations for the member copies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The kind, as recorded on member copies.
pub const KIND: &str = "FederatedIngress";
