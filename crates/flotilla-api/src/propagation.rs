//! What every propagated kind shares: how it is placed, overridden, kept in sync, adopted and
//! deleted (`PropagationSpec`, flattened into each kind's spec so the YAML stays flat), and what
//! Flotilla reports about its copies (`PropagationStatus`).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::overrides::ClusterOverride;
use crate::placement::Placement;
use crate::placement_status::PlacementStatus;
use crate::policies::{AdoptionPolicy, DeletionPolicy, DriftPolicy};

/// Where and how a template is propagated. Flattened into each kind's spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropagationSpec {
    /// Which member clusters receive the object.
    #[serde(default)]
    pub placement: Placement,

    /// Per-cluster changes to the template: one entry per cluster, at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, y.clusterName == x.clusterName))",
        "message": "must not have two entries for one cluster: put all of a cluster's patches in its one entry"
    }]))]
    pub overrides: Vec<ClusterOverride>,

    /// What to do when a member copy is changed by someone else.
    #[serde(default)]
    pub drift: DriftPolicy,

    /// What to do with an object of the same name that exists in a member and is not Flotilla's.
    #[serde(default)]
    pub adoption: AdoptionPolicy,

    /// What happens to the member copies when this object is deleted.
    #[serde(default)]
    pub deletion: DeletionPolicy,
}

/// What Flotilla observed and did for a propagated object: the same for every kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropagationStatus {
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
    pub drift: Option<Box<DriftStatus>>,
    /// The copy's health, from its status in the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<CopyHealth>,
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
    /// The member does not serve the copy's kind yet (a custom resource before its CRD is
    /// established there); applied as soon as it does.
    WaitingForKind,
    /// The member's credentials may not write the copy's kind (see message: verb and resource).
    Forbidden,
}

/// How a member copy is doing, judged from its own status by kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyHealth {
    /// `Healthy`, `Progressing` or `Unhealthy`; `Applied` for kinds with no status to judge.
    pub state: HealthState,
    /// What the judgement rests on, e.g. `2/3 replicas available`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// See [`CopyHealth::state`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HealthState {
    Healthy,
    Progressing,
    Unhealthy,
    /// Applied; the kind has no status Flotilla can judge.
    Applied,
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
