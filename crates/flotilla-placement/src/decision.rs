//! The engine's output, shaped to map 1:1 onto `flotilla_api::PlacementStatus`: the selected
//! clusters in priority order, one verdict per member cluster with a stable CamelCase reason and a
//! human-readable message, and the constraints that could not be met.
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::previous::{PreviousDecision, PreviousSelection};
use crate::time::Timestamp;

/// The outcome of placement for one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// One verdict per member cluster, sorted by cluster name.
    pub clusters: Vec<ClusterVerdict>,
    /// The selected clusters in priority order (rank, then name).
    pub selected: Vec<String>,
    /// Constraints that could not be met, in plain words.
    pub unsatisfied: Vec<String>,
    /// Whether the selected set differs from the previous decision's.
    pub changed: bool,
    /// When the selected set last changed: `now` if it changed, else the previous value.
    pub last_change: Option<Timestamp>,
}

/// Why one cluster was or was not chosen (`flotilla_api::ClusterVerdict`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterVerdict {
    /// The cluster name (shared with the inventory's [`crate::ClusterInfo::name`]).
    pub name: Arc<str>,
    /// The verdict.
    pub verdict: Verdict,
    /// A stable machine-readable reason.
    pub reason: Reason,
    /// A human-readable explanation. Fixed texts are borrowed (`Cow::Borrowed`) so that
    /// thousands of clusters with the same verdict do not cost an allocation each; use
    /// `to_string()` / `into_owned()` for the status field.
    pub message: Cow<'static, str>,
    /// The failover-priority rank (0 is highest) when `failoverPriority` is used and the
    /// cluster is a candidate.
    pub priority: Option<u32>,
    /// Replicas for this cluster, for selected clusters when replicas were divided.
    pub replicas: Option<i32>,
    /// For selected clusters: when the cluster was first selected (carried over from the
    /// previous decision, or `now` for a new selection). Not part of the API status.
    pub selected_since: Option<Timestamp>,
}

/// A placement verdict (`flotilla_api::Verdict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The object is placed on this cluster.
    Selected,
    /// Eligible but not needed now; can take over if a selected cluster fails.
    Standby,
    /// Excluded by the cluster list, the selector or a constraint.
    Filtered,
    /// Excluded because the cluster is not ready.
    Unhealthy,
    /// Excluded by a taint the object does not tolerate.
    Tainted,
}

/// The reason codes, one per rule. `as_str` gives the CamelCase string for status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Selected; no failover priority is in use.
    Matched,
    /// Selected from the best-ranked candidate group.
    PrimaryHealthy,
    /// Selected in place of a better-ranked candidate that is unavailable.
    FailedOver,
    /// Selected from a lower group because the count or spread needs more clusters.
    LowerPriorityNeeded,
    /// Selected to cover another topology value for a spread `minGroups`.
    SpreadCoverage,
    /// Standby: a better-ranked group supplies the selection (no `maxClusters`).
    LowerPriority,
    /// Standby: `maxClusters` is reached by clusters ranked or kept ahead of this one.
    MaxClustersReached,
    /// Standby: recovered but not yet healthy for the stabilization period.
    FailbackPending,
    /// Standby: would rank above the current selection, but failback mode is `Never`.
    FailbackDisabled,
    /// Filtered: the member does not admit objects of the object's host namespace.
    NamespaceNotAllowed,
    /// Filtered: not in the placement's `clusters` list.
    NotInClusterList,
    /// Filtered: does not match the placement's `clusterSelector`.
    SelectorMismatch,
    /// Filtered: lacks a label a spread constraint groups by.
    MissingTopologyLabel,
    /// Filtered: its topology value already has `maxPerGroup` selected clusters.
    SpreadMaxPerGroup,
    /// Tainted: has a taint the object does not tolerate.
    TaintNotTolerated,
    /// Unhealthy: the cluster is not ready.
    ClusterNotReady,
}

impl Verdict {
    /// The verdict's name as written in status.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Selected => "Selected",
            Self::Standby => "Standby",
            Self::Filtered => "Filtered",
            Self::Unhealthy => "Unhealthy",
            Self::Tainted => "Tainted",
        }
    }
}

impl Reason {
    /// The CamelCase reason string for status.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Matched => "Matched",
            Self::PrimaryHealthy => "PrimaryHealthy",
            Self::FailedOver => "FailedOver",
            Self::LowerPriorityNeeded => "LowerPriorityNeeded",
            Self::SpreadCoverage => "SpreadCoverage",
            Self::LowerPriority => "LowerPriority",
            Self::MaxClustersReached => "MaxClustersReached",
            Self::FailbackPending => "FailbackPending",
            Self::FailbackDisabled => "FailbackDisabled",
            Self::NamespaceNotAllowed => "NamespaceNotAllowed",
            Self::NotInClusterList => "NotInClusterList",
            Self::SelectorMismatch => "SelectorMismatch",
            Self::MissingTopologyLabel => "MissingTopologyLabel",
            Self::SpreadMaxPerGroup => "SpreadMaxPerGroup",
            Self::TaintNotTolerated => "TaintNotTolerated",
            Self::ClusterNotReady => "ClusterNotReady",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Decision {
    /// The verdict for `name`, if it is in the inventory.
    pub fn verdict(&self, name: &str) -> Option<&ClusterVerdict> {
        self.clusters
            .binary_search_by(|v| (*v.name).cmp(name))
            .ok()
            .and_then(|i| self.clusters.get(i))
    }

    /// Replicas per selected cluster, in priority order (empty when replicas were not divided).
    pub fn replicas(&self) -> Vec<(&str, i32)> {
        self.selected
            .iter()
            .filter_map(|name| {
                let replicas = self.verdict(name)?.replicas?;
                Some((name.as_str(), replicas))
            })
            .collect()
    }

    /// The input for the next reconcile.
    pub fn to_previous(&self) -> PreviousDecision {
        PreviousDecision {
            selected: self
                .selected
                .iter()
                .filter_map(|name| {
                    let since = self.verdict(name)?.selected_since?;
                    Some(PreviousSelection {
                        name: name.clone(),
                        since,
                    })
                })
                .collect(),
            last_change: self.last_change,
        }
    }
}
