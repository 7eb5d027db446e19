//! The ScalingPolicy side of a decision: how many replicas to divide and each cluster's
//! preferences. Given to [`crate::decide`], it turns into one [`crate::ReplicaTarget`] per
//! selected cluster, so only clusters that are actually placed receive replicas.
use std::collections::HashMap;

use crate::cluster::ClusterInfo;
use crate::replicas::ReplicaTarget;

/// Replicas to divide among the selected clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRequest {
    /// The total, already decided by the autoscaler within the policy's bounds.
    pub total: i32,
    /// The weight of a selected cluster that has no preference or no weight in its preference.
    pub default_weight: u32,
    /// Per-cluster preferences; clusters not listed use `default_weight` and no bounds.
    pub preferences: Vec<ReplicaPreference>,
}

/// One cluster's replica preference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaPreference {
    /// The cluster name.
    pub name: String,
    /// Relative share; `None` uses the request's default weight.
    pub weight: Option<u32>,
    /// At least this many replicas, when the total allows.
    pub min_replicas: Option<i32>,
    /// At most this many replicas.
    pub max_replicas: Option<i32>,
}

/// The default weight of a cluster without a preference.
pub const DEFAULT_WEIGHT: u32 = 1;

impl ReplicaRequest {
    /// A request for `total` replicas with default weight 1 and no preferences.
    pub fn new(total: i32) -> Self {
        Self {
            total,
            default_weight: DEFAULT_WEIGHT,
            preferences: Vec::new(),
        }
    }

    /// Adds a preference (builder style).
    pub fn with_preference(mut self, preference: ReplicaPreference) -> Self {
        self.preferences.push(preference);
        self
    }

    /// Preferences by cluster name; the first one naming a cluster wins.
    pub(crate) fn preference_index(&self) -> HashMap<&str, &ReplicaPreference> {
        let mut index = HashMap::with_capacity(self.preferences.len());
        for p in &self.preferences {
            index.entry(p.name.as_str()).or_insert(p);
        }
        index
    }

    /// The division target for a selected cluster with preference `pref`, capped by the
    /// cluster's capacity hint.
    pub(crate) fn target(
        &self,
        cluster: &ClusterInfo,
        pref: Option<&ReplicaPreference>,
        rank: u32,
    ) -> ReplicaTarget {
        let pref_max = pref.and_then(|p| p.max_replicas);
        let max_replicas = match (pref_max, cluster.capacity_replicas) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ReplicaTarget {
            name: cluster.name.to_string(),
            rank,
            weight: pref.and_then(|p| p.weight).unwrap_or(self.default_weight),
            min_replicas: pref.and_then(|p| p.min_replicas).unwrap_or(0),
            max_replicas,
            healthy: cluster.health.ready,
        }
    }
}

impl ReplicaPreference {
    /// A preference for `name` with only a weight.
    pub fn weighted(name: impl Into<String>, weight: u32) -> Self {
        Self {
            name: name.into(),
            weight: Some(weight),
            ..Self::default()
        }
    }

    /// Sets the bounds (builder style).
    pub fn bounded(mut self, min_replicas: Option<i32>, max_replicas: Option<i32>) -> Self {
        self.min_replicas = min_replicas;
        self.max_replicas = max_replicas;
        self
    }
}
