//! Policies for what Flotilla does with member copies: drift, adoption, deletion.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to do when a member copy no longer matches what Flotilla applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftPolicy {
    /// `ReportOnly` (default) reports drift in status and never touches the copy; `Enforce`
    /// reports it and re-applies the desired state.
    #[serde(default)]
    pub mode: DriftMode,
    /// JSON pointers (e.g. `/metadata/annotations/team`) whose changes are neither reported
    /// nor corrected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_paths: Vec<String>,
}

/// Drift handling mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftMode {
    /// Report drift; leave the member copy as it is.
    #[default]
    ReportOnly,
    /// Report drift and restore the desired state.
    Enforce,
}

/// What to do when the member already has an object of the same name that Flotilla did not create.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AdoptionPolicy {
    /// Never touch it; report a conflict for that cluster.
    #[default]
    Never,
    /// Take it over only if it already equals the desired copy.
    IfNoDiff,
    /// Take it over and overwrite it.
    Always,
}

/// What happens to member copies when the host object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the member copies.
    #[default]
    Delete,
    /// Leave the member copies in place, no longer managed.
    Orphan,
}
