//! FederatedIngress: an Ingress template placed into member clusters.
use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::IngressSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::overrides::ClusterOverride;
use crate::placement::Placement;
use crate::placement_status::PlacementStatus;
use crate::policies::{AdoptionPolicy, DeletionPolicy, DriftPolicy};

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

    /// Which member clusters receive the Ingress.
    #[serde(default)]
    pub placement: Placement,

    /// Per-cluster changes to the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ClusterOverride>,

    /// What to do when a member copy is changed by someone else.
    #[serde(default)]
    pub drift: DriftPolicy,

    /// What to do with an Ingress of the same name that exists in a member and is not Flotilla's.
    #[serde(default)]
    pub adoption: AdoptionPolicy,

    /// What happens to the member copies when this object is deleted.
    #[serde(default)]
    pub deletion: DeletionPolicy,
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

/// What Flotilla observed and did for a FederatedIngress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIngressStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (every selected cluster has an up-to-date copy), `Degraded`, `Drifted`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The placement decision, with the reason for every cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,

    /// One entry per member cluster that holds, or should hold, a copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
    pub clusters: Vec<MemberCopyStatus>,
}

/// The state of the copy in one member cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberCopyStatus {
    /// The MemberCluster name.
    pub cluster: String,
    /// Where the copy stands.
    #[serde(default)]
    pub state: CopyState,
    /// The host object's generation last applied to this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// Details, e.g. the error of a failed apply or the override that did not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `state` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Load-balancer addresses reported by the member copy's status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer: Vec<LoadBalancerAddress>,
    /// Differences between the member copy and what Flotilla applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
}

/// Where one member copy stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CopyState {
    /// Selected, not applied yet.
    #[default]
    Pending,
    /// Applied and current.
    Applied,
    /// The apply failed (see message).
    Failed,
    /// An object of the same name exists that Flotilla does not own and may not adopt.
    Conflict,
    /// The member cannot be reached; its copy is kept until it can.
    Unreachable,
    /// No longer placed here; the copy is being removed.
    Pruning,
}

/// One load-balancer ingress point of a member copy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerAddress {
    /// An IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Drift of one member copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// Fields whose value differs from what Flotilla applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<DriftedField>,
    /// The member copy was deleted by someone other than Flotilla.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_deleted: bool,
    /// How many times Flotilla restored the desired state (Enforce mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections: Option<i64>,
    /// When Flotilla last restored the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_correction_time: Option<Time>,
}

/// One drifted field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftedField {
    /// A JSON pointer to the field, e.g. `/spec/rules/0/host`.
    pub path: String,
    /// The value Flotilla applied, as JSON; unset if Flotilla did not set the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    /// The value found in the member, as JSON; unset if the field was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// The field manager that last wrote the field in the member (from managedFields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// When Flotilla first saw this difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
}
