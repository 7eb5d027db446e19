//! PropagationPolicy and ClusterPropagationPolicy: native objects applied to the host unchanged
//! (plain manifests, Helm charts) propagated by selectors (Karmada style). Each propagated object
//! gets a status record: a FederatedObject (ClusterFederatedObject for a cluster-scoped object)
//! generated from it and owned by it, which the propagation engine places like any other.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::federated_object::ReplicaSpread;
use crate::propagation::PropagationSpec;

pub const KIND: &str = "PropagationPolicy";
pub const CLUSTER_KIND: &str = "ClusterPropagationPolicy";

/// Selects host objects in this policy's namespace and propagates them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "PropagationPolicy",
    plural = "propagationpolicies",
    shortname = "pp",
    category = "flotilla",
    namespaced,
    status = "PolicyStatus",
    doc = "Propagates the host objects of its namespace that its selectors match.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Matched", type_ = "integer", json_path = ".status.matched"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PropagationPolicySpec {
    #[serde(flatten)]
    pub policy: PolicySpec,
}

/// Selects host objects in any namespace, and cluster-scoped ones, and propagates them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "ClusterPropagationPolicy",
    plural = "clusterpropagationpolicies",
    shortname = "cpp",
    category = "flotilla",
    status = "PolicyStatus",
    doc = "Propagates the host objects (of any namespace, or cluster-scoped) that its selectors match.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Matched", type_ = "integer", json_path = ".status.matched"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPropagationPolicySpec {
    #[serde(flatten)]
    pub policy: PolicySpec,
}

/// What both policy kinds say.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Which host objects this policy propagates: an object matching any selector (1 to 100).
    #[schemars(length(min = 1, max = 100))]
    pub resource_selectors: Vec<ResourceSelector>,

    /// When several policies match one object, the highest priority wins; then the more specific
    /// selector (by name, then by labels, then by kind); then a PropagationPolicy over a
    /// ClusterPropagationPolicy; then the policy whose namespace/name sorts first.
    #[serde(default)]
    pub priority: i32,

    /// Also propagate, to the same members, what a propagated object needs from its namespace:
    /// the ConfigMaps, Secrets, ServiceAccount and PersistentVolumeClaims a pod template
    /// references, and the Services and TLS Secrets an Ingress references.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub propagate_dependencies: bool,

    /// For kinds with `spec.replicas`: duplicated (default) or divided among the clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaSpread>,

    /// Placement, overrides, drift, adoption and deletion, as for a FederatedObject.
    #[serde(flatten)]
    pub propagation: PropagationSpec,
}

/// Host objects of one kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.apiVersion.matches('^[^/]*(/[^/]+)?$')",
        "message": "must be group/version (e.g. apps/v1) or version (v1)",
        "fieldPath": ".apiVersion",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "!self.apiVersion.startsWith('federation.flotilla.dev/')",
        "message": "Flotilla's own kinds are not propagated by policies",
        "fieldPath": ".apiVersion",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct ResourceSelector {
    /// e.g. `apps/v1`, `v1` (not Flotilla's own `federation.flotilla.dev`).
    #[schemars(length(min = 1, max = 320))]
    pub api_version: String,
    /// e.g. `Deployment`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Only the object of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only objects in this namespace (ClusterPropagationPolicy; a PropagationPolicy selects in
    /// its own namespace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only objects with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// What a policy propagates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the policy is valid and its objects have status records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// How many host objects it propagates (dependencies included).
    #[serde(default)]
    pub matched: i64,
    /// Objects it matches that another policy propagates (the first 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<OverriddenObject>,
}

/// An object a policy matches but does not propagate, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverriddenObject {
    /// The object's apiVersion.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's namespace (unset for a cluster-scoped object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The policy that propagates it, as `Kind namespace/name`.
    pub claimed_by: String,
    /// Why that policy won.
    pub reason: String,
}
