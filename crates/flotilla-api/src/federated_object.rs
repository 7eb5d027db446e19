//! FederatedObject and ClusterFederatedObject: any Kubernetes object, wrapped, placed into member
//! clusters (KubeFed / KubeAdmiral style: nothing of it runs on the host).
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::propagation::{PropagationSpec, PropagationStatus};
use crate::scaling_policy::Distribution;

/// The kinds, as recorded on member copies.
pub const KIND: &str = "FederatedObject";
pub const CLUSTER_KIND: &str = "ClusterFederatedObject";

/// The status of a FederatedObject or ClusterFederatedObject: the status every propagated kind
/// shares.
pub type FederatedObjectStatus = PropagationStatus;

/// A namespaced object of any kind propagated to member clusters: `template` is created in
/// every cluster the `placement` selects, in this object's namespace, with this object's name
/// (or the template's own `metadata.name`), with that cluster's `overrides`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "FederatedObject",
    plural = "federatedobjects",
    shortname = "fobj",
    category = "flotilla",
    namespaced,
    status = "FederatedObjectStatus",
    doc = "A namespaced object of any kind propagated to the member clusters a placement selects.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.template.kind"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Healthy")].status"#
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FederatedObjectSpec {
    /// The object to create in each selected member: `apiVersion`, `kind`, `metadata.labels`,
    /// `metadata.annotations` (and optionally `metadata.name`), and the rest of its body
    /// (`spec`, `data`, `stringData`, `rules`, …), preserved as given.
    #[schemars(schema_with = "object_template")]
    pub template: Value,

    /// For kinds with `spec.replicas`: whether every cluster runs the template's replicas
    /// (`Duplicated`, the default) or they are divided among the selected clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaSpread>,

    /// Placement, overrides, drift, adoption and deletion: the same for every propagated kind.
    #[serde(flatten)]
    pub propagation: PropagationSpec,
}

/// A cluster-scoped object of any kind (Namespace, ClusterRole, CustomResourceDefinition, …)
/// propagated to member clusters.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "ClusterFederatedObject",
    plural = "clusterfederatedobjects",
    shortname = "cfobj",
    category = "flotilla",
    status = "FederatedObjectStatus",
    doc = "A cluster-scoped object of any kind propagated to the member clusters a placement selects.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.template.kind"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Healthy")].status"#
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFederatedObjectSpec {
    /// The cluster-scoped object to create in each selected member, named as this object (or
    /// by the template's own `metadata.name`).
    #[schemars(schema_with = "object_template")]
    pub template: Value,

    /// Placement, overrides, drift, adoption and deletion: the same for every propagated kind.
    #[serde(flatten)]
    pub propagation: PropagationSpec,
}

/// How a template's `spec.replicas` reaches the members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpread {
    /// `Duplicated`: every selected cluster gets the template's replicas. `Divided`: the
    /// template's replicas are the total, split by `distribution`.
    #[serde(default)]
    pub mode: ReplicaMode,
    /// Weights and per-cluster bounds for `Divided` (the same as a ScalingPolicy's).
    #[serde(default)]
    pub distribution: Distribution,
}

/// See [`ReplicaSpread::mode`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReplicaMode {
    #[default]
    Duplicated,
    Divided,
}

/// An object whose fields are kept as given (the API server must not prune them).
fn object_template(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"type": "string", "minLength": 1, "description": "The copies' apiVersion, e.g. apps/v1."},
            "kind": {"type": "string", "minLength": 1, "description": "The copies' kind, e.g. Deployment."}
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}
