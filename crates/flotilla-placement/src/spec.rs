//! The placement spec, mirroring `flotilla_api::Placement` field for field.
//!
//! The engine owns these plain types so that it depends on neither kube nor k8s-openapi; the
//! controller converts the API object into them. Doc comments here state the engine's meaning;
//! the crate documentation summarises how the fields combine.
use crate::selector::LabelSelector;
use crate::taint::Toleration;

/// Where an object is placed among the member clusters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementSpec {
    /// Names of clusters that may receive the object; empty means no restriction by name.
    pub clusters: Vec<String>,
    /// Label selector over cluster labels; `None` means no restriction by label.
    pub cluster_selector: Option<LabelSelector>,
    /// Limits on the selected set.
    pub constraints: Constraints,
    /// Ordered preference groups; empty means every candidate ranks equally.
    pub failover_priority: Vec<PriorityGroup>,
    /// Whether and when to move back to a recovered higher-priority cluster.
    pub failback: Failback,
}

/// Limits on the selected set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Constraints {
    /// At most this many clusters are selected; `None` means no limit.
    pub max_clusters: Option<u32>,
    /// Spread across the values of cluster labels.
    pub spread: Vec<SpreadConstraint>,
    /// Taints this object tolerates.
    pub tolerations: Vec<Toleration>,
}

/// Spread the selected clusters across the values of one label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpreadConstraint {
    /// The label whose values form the groups. Clusters without it are never selected.
    pub topology_key: String,
    /// At most this many selected clusters share one value.
    pub max_per_group: Option<u32>,
    /// The selected clusters should cover at least this many values; reported as unsatisfied
    /// when they cannot.
    pub min_groups: Option<u32>,
}

/// One level of failover preference: the union of the named clusters and those matching the
/// selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriorityGroup {
    /// A display name for explanations.
    pub name: Option<String>,
    /// Clusters in the group by name.
    pub clusters: Vec<String>,
    /// Clusters in the group by label.
    pub cluster_selector: Option<LabelSelector>,
}

/// Failing back to a recovered higher-priority cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failback {
    /// Whether to fail back at all.
    pub mode: FailbackMode,
    /// How long a recovered cluster must have been healthy, continuously, before it displaces a
    /// currently selected lower-priority cluster.
    pub stabilization_seconds: u32,
}

/// Whether to fail back automatically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FailbackMode {
    /// Move back after the stabilization period.
    #[default]
    Automatic,
    /// Stay where the object failed over to until that cluster itself fails.
    Never,
}

/// The API's default stabilization period.
pub const DEFAULT_STABILIZATION_SECONDS: u32 = 60;

impl Default for Failback {
    fn default() -> Self {
        Self {
            mode: FailbackMode::Automatic,
            stabilization_seconds: DEFAULT_STABILIZATION_SECONDS,
        }
    }
}

impl PriorityGroup {
    /// A group of clusters named explicitly.
    pub fn of_clusters<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            name: None,
            clusters: names.into_iter().map(Into::into).collect(),
            cluster_selector: None,
        }
    }

    /// A group of clusters matching a selector.
    pub fn of_selector(selector: LabelSelector) -> Self {
        Self {
            name: None,
            clusters: Vec::new(),
            cluster_selector: Some(selector),
        }
    }
}

impl SpreadConstraint {
    /// A spread constraint over `topology_key`.
    pub fn new(
        topology_key: impl Into<String>,
        max_per_group: Option<u32>,
        min_groups: Option<u32>,
    ) -> Self {
        Self {
            topology_key: topology_key.into(),
            max_per_group,
            min_groups,
        }
    }
}
