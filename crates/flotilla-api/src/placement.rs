//! Placement: which member clusters an object goes to. Shared by FederatedIngress and ScalingPolicy.
//!
//! Semantics (implemented by the `flotilla-placement` crate, which has its own copy of these types):
//! - Candidates: a cluster listed in `clusters` (when the list is non-empty) AND matching
//!   `clusterSelector` (when set). With neither, every member cluster is a candidate.
//! - Constraints filter candidates: taints not tolerated, spread limits, `maxClusters`.
//! - `failoverPriority` ranks candidates: a cluster's rank is the first group it belongs to;
//!   clusters in no group rank after every group. Healthy clusters are selected in rank order;
//!   the others are standby and take over when a selected cluster becomes unhealthy.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest failback stabilization, in seconds (one week). Longer is `mode: Never`.
pub const MAX_FAILBACK_STABILIZATION_SECONDS: u32 = 604_800;

/// Where an object is placed among the member clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Names of MemberClusters that may receive the object. Empty means no restriction by name.
    /// When `clusterSelector` is also set, a cluster must be listed here and match the selector.
    /// Each cluster at most once; at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 253)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, y == x))",
        "message": "must not name a cluster twice"
    }]))]
    pub clusters: Vec<String>,

    /// A label selector over MemberCluster labels (including `topology.kubernetes.io/region` and
    /// `topology.kubernetes.io/zone`, which Flotilla derives from the MemberCluster's region and
    /// zone). Unset means no restriction by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,

    /// Limits on the chosen set: how many clusters, how they spread, which taints are tolerated.
    #[serde(default, skip_serializing_if = "PlacementConstraints::is_empty")]
    pub constraints: PlacementConstraints,

    /// Ordered preference: the first group is the primary, the next ones are fallbacks. Healthy
    /// clusters of a higher group are selected before those of a lower one. Without
    /// `constraints.maxClusters`, every healthy candidate of the best group that has one is selected.
    /// Empty means all candidates are equal (ordered by name for stability). At most 10 groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub failover_priority: Vec<PriorityGroup>,

    /// When a higher-priority cluster that had failed becomes healthy again.
    #[serde(default)]
    pub failback: Failback,
}

/// Limits on the set of selected clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraints {
    /// At most this many clusters are selected. Unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_clusters: Option<u32>,

    /// Spread the selected clusters across the values of a cluster label, such as a region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<SpreadConstraint>,

    /// Cluster taints this object tolerates. A cluster with a NoSchedule taint that is not
    /// tolerated gets no new placements; one with a NoExecute taint loses the ones it has.
    /// At most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tolerations: Vec<ClusterToleration>,
}

impl PlacementConstraints {
    pub fn is_empty(&self) -> bool {
        self.max_clusters.is_none() && self.spread.is_empty() && self.tolerations.is_empty()
    }
}

/// Spread across the values of one cluster label.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpreadConstraint {
    /// The MemberCluster label whose values form the groups, for example
    /// `topology.kubernetes.io/region`. Clusters without the label are not selected.
    #[schemars(length(min = 1))]
    pub topology_key: String,

    /// At most this many selected clusters share one value of the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_per_group: Option<u32>,

    /// The selected clusters must cover at least this many distinct values of the label;
    /// when they cannot, the placement reports the constraint as unsatisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_groups: Option<u32>,
}

/// One level of failover preference: the clusters named here and/or those matching the selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriorityGroup {
    /// A name for this group, shown in status and explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Clusters in this group, by MemberCluster name. Each cluster at most once; at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 253)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, y == x))",
        "message": "must not name a cluster twice"
    }]))]
    pub clusters: Vec<String>,

    /// Clusters in this group, by MemberCluster labels. Combined with `clusters` as a union.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
}

/// Failing back to a higher-priority cluster once it is healthy again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failback {
    /// `Automatic` moves the object back once the higher-priority cluster has been healthy for
    /// `stabilizationSeconds`; `Never` keeps it where it failed over to.
    #[serde(default)]
    pub mode: FailbackMode,

    /// How long a recovered cluster must stay healthy before the object moves back to it, in
    /// seconds (0 to 604800, one week). Protects against flapping clusters.
    #[serde(default = "default_failback_stabilization_seconds")]
    #[schemars(range(min = 0, max = 604_800))]
    pub stabilization_seconds: u32,
}

fn default_failback_stabilization_seconds() -> u32 {
    60
}

impl Default for Failback {
    fn default() -> Self {
        Self {
            mode: FailbackMode::default(),
            stabilization_seconds: default_failback_stabilization_seconds(),
        }
    }
}

/// Whether to fail back automatically.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailbackMode {
    /// Move back after the stabilization period.
    #[default]
    Automatic,
    /// Stay on the cluster failed over to.
    Never,
}

/// A taint on a member cluster: objects that do not tolerate it are kept off (NoSchedule) or
/// moved away (NoExecute).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTaint {
    /// The taint key, for example `flotilla.dev/maintenance`.
    #[schemars(length(min = 1))]
    pub key: String,
    /// The taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What the taint does to objects that do not tolerate it.
    pub effect: TaintEffect,
}

/// The effect of a cluster taint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TaintEffect {
    /// No new placements; objects already placed stay.
    NoSchedule,
    /// No placements; objects already placed are moved to other clusters.
    NoExecute,
}

/// Tolerates a cluster taint, as a pod toleration does a node taint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.operator == 'Exists' || (has(self.key) && size(self.key) > 0)",
        "message": "an empty key requires operator Exists",
        "fieldPath": ".key",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.operator != 'Exists' || !has(self.value) || size(self.value) == 0",
        "message": "operator Exists takes no value",
        "fieldPath": ".value",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct ClusterToleration {
    /// The taint key this toleration matches. Empty with operator `Exists` matches every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) matches key and value; `Exists` matches any value of the key.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The taint value to match with operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The effect to match. Unset matches every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

/// How a toleration matches a taint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TolerationOperator {
    /// Key and value must be equal.
    #[default]
    Equal,
    /// The key must exist; the value is ignored.
    Exists,
}
