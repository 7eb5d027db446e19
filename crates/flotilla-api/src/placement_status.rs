//! The placement decision as recorded in an object's status: one verdict per member cluster.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The outcome of placement for one object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// The clusters the object is placed on, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected: Vec<String>,

    /// One verdict per member cluster, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
    pub clusters: Vec<ClusterVerdict>,

    /// Constraints that could not be met (for example too few regions), in plain words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsatisfied: Vec<String>,

    /// When the set of selected clusters last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

/// Why one cluster was or was not chosen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterVerdict {
    /// The MemberCluster name.
    pub cluster: String,
    /// The verdict.
    pub verdict: Verdict,
    /// A CamelCase reason, stable for automation (for example `NotInClusterList`, `TaintNotTolerated`).
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The failover priority rank (0 is the highest), when `failoverPriority` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Replicas assigned to this cluster, when replicas are divided among clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// When this cluster was selected (Selected clusters only). Keeps placements sticky across
    /// reconciles and operator restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_since: Option<Time>,
}

/// A placement verdict for one cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Verdict {
    /// The object is placed on this cluster.
    Selected,
    /// Eligible but not needed now; takes over if a selected cluster fails.
    Standby,
    /// Excluded by the placement's cluster list, selector or constraints.
    Filtered,
    /// Excluded because the cluster is not healthy.
    Unhealthy,
    /// Excluded because of a cluster taint the object does not tolerate.
    Tainted,
}
