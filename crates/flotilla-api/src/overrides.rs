//! Per-cluster overrides: JSON-patch operations applied to the template for one cluster.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation;

/// Paths no override may touch: the copy's identity (the host object's), and what would break
/// ownership in the member (an ownerReference lets the member's garbage collector delete the
/// copy, which Flotilla would re-create, in a loop), or is the server's to set. Below one of
/// these is forbidden too, and so are `/`, `/metadata` and `/metadata/deletionTimestamp`.
pub const FORBIDDEN_PATHS: [&str; 12] = [
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/ownerReferences",
    "/metadata/finalizers",
    "/metadata/resourceVersion",
    "/metadata/uid",
    "/metadata/generation",
    "/metadata/managedFields",
    "/metadata/creationTimestamp",
    "/status",
];

/// Whole objects above the [`FORBIDDEN_PATHS`], and one more server-set field, forbidden as
/// they are (what is below them is allowed).
pub const FORBIDDEN_EXACT_PATHS: [&str; 3] = ["/", "/metadata", "/metadata/deletionTimestamp"];

/// Why an override may not use `path`, in the words of the CRD's rule and the controller.
pub const FORBIDDEN_PATH_MESSAGE: &str =
    "this path is the host object's identity, ownership or status, which overrides cannot set";

/// The path is one of [`FORBIDDEN_PATHS`] or below one, or one of [`FORBIDDEN_EXACT_PATHS`].
pub fn forbidden_path(path: &str) -> bool {
    path.is_empty()
        || FORBIDDEN_EXACT_PATHS.contains(&path)
        || FORBIDDEN_PATHS.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// The JSON-patch operations that carry a `value`.
pub fn op_needs_value(op: PatchOp) -> bool {
    !matches!(op, PatchOp::Remove)
}

/// Changes to the template for one member cluster (KubeFed's `clusterOverrides`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOverride {
    /// The MemberCluster these operations apply to. One entry per cluster: put all of a
    /// cluster's operations in its one `patches` list.
    #[schemars(length(min = 1, max = 253))]
    pub cluster_name: String,
    /// RFC 6902 JSON-patch operations, applied in order to the member copy (paths are relative
    /// to the whole object, e.g. `/spec/rules/0/host` or `/metadata/annotations/x`). An
    /// operation that does not apply is reported in that cluster's status; the other clusters
    /// still get their copies.
    #[schemars(length(min = 1, max = 100))]
    pub patches: Vec<PatchOperation>,
}

/// One JSON-patch operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = patch_operation_rules)]
pub struct PatchOperation {
    /// The operation.
    pub op: PatchOp,
    /// A JSON pointer into the object, starting with `/`. Not the copy's identity, ownership or
    /// status: `/apiVersion`, `/kind`, `/metadata/name`, `/metadata/namespace`,
    /// `/metadata/ownerReferences`, `/metadata/finalizers`, the server's metadata fields and
    /// `/status` (nor below them), `/` and `/metadata`.
    #[schemars(regex(pattern = r"^/"), length(max = 1024))]
    pub path: String,
    /// The value for `add`, `replace` and `test` (required for them; checked by the controller).
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

/// The CEL rule of one operation: its path is not forbidden. (That `add`, `replace` and `test`
/// carry a `value` is the controller's check only: `value` is schemaless, which CEL cannot see.)
fn patch_operation_rules(schema: &mut schemars::Schema) {
    let quoted = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let under: Vec<String> = FORBIDDEN_PATHS.iter().map(|p| format!("{p}/")).collect();
    let under: Vec<&str> = under.iter().map(String::as_str).collect();
    let mut exact: Vec<&str> = FORBIDDEN_EXACT_PATHS.to_vec();
    exact.extend(FORBIDDEN_PATHS);
    validation::add_rules(
        schema,
        [validation::rule(
            &format!(
                "!(self.path in [{}]) && ![{}].exists(p, self.path.startsWith(p))",
                quoted(&exact),
                quoted(&under)
            ),
            &format!(
                "{FORBIDDEN_PATH_MESSAGE} (apiVersion, kind, metadata.name, metadata.namespace, metadata.ownerReferences, metadata.finalizers, the server's metadata, status)"
            ),
        )
        .field(".path")
        .reason(validation::Reason::Forbidden)],
    );
}
