//! Per-cluster overrides: JSON-patch operations applied to the template for one cluster.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Changes to the template for one member cluster (KubeFed's `clusterOverrides`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOverride {
    /// The MemberCluster these operations apply to.
    #[schemars(length(min = 1))]
    pub cluster_name: String,
    /// RFC 6902 JSON-patch operations, applied in order to the member copy (paths are relative
    /// to the whole object, e.g. `/spec/rules/0/host` or `/metadata/annotations/x`). An
    /// operation that does not apply is reported in that cluster's status; the other clusters
    /// still get their copies.
    #[schemars(length(min = 1))]
    pub patches: Vec<PatchOperation>,
}

/// One JSON-patch operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchOperation {
    /// The operation.
    pub op: PatchOp,
    /// A JSON pointer into the object, starting with `/`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// The value for `add`, `replace` and `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub value: Option<serde_json::Value>,
}

/// A JSON-patch operation type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    /// Add a value (or insert into an array).
    Add,
    /// Remove the value at the path.
    Remove,
    /// Replace the value at the path, which must exist.
    Replace,
    /// Fail the patch unless the value at the path equals `value`.
    Test,
}
