//! The member-cluster inventory as the engine sees it.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::namespace::NamespaceAccess;
use crate::taint::Taint;
use crate::time::Timestamp;

/// One member cluster. Names are the identity: the engine keys everything by name and ignores
/// later entries that repeat an earlier name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The MemberCluster name. Shared (`Arc<str>`) because a controller decides for thousands
    /// of objects over one inventory, and every verdict names its cluster: sharing makes that
    /// a reference count instead of a string copy per cluster per decision.
    pub name: Arc<str>,
    /// The cluster's labels, including the derived `topology.kubernetes.io/region` and `zone`.
    pub labels: BTreeMap<String, String>,
    /// The cluster's taints.
    pub taints: Vec<Taint>,
    /// The (already debounced) health signal from the member prober.
    pub health: Health,
    /// How many replicas the cluster says it can run, if it says. Caps replica division on top
    /// of the policy's per-cluster maximum.
    pub capacity_replicas: Option<i32>,
    /// Which host namespaces may place objects here (`MemberCluster.spec.namespaces`).
    pub namespaces: NamespaceAccess,
}

/// A cluster's health and when it last changed. The engine uses `since` to decide whether a
/// recovered cluster has been healthy long enough to fail back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether the cluster is ready to receive objects.
    pub ready: bool,
    /// When `ready` last changed.
    pub since: Timestamp,
}

impl Health {
    /// Ready since `since`.
    pub const fn ready_since(since: Timestamp) -> Self {
        Self { ready: true, since }
    }

    /// Not ready since `since`.
    pub const fn not_ready_since(since: Timestamp) -> Self {
        Self {
            ready: false,
            since,
        }
    }
}

impl ClusterInfo {
    /// A ready cluster with no labels, no taints and no capacity hint, healthy since the epoch.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            health: Health::ready_since(Timestamp::default()),
            capacity_replicas: None,
            namespaces: NamespaceAccess::All,
        }
    }

    /// Adds a label (builder style).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint (builder style).
    pub fn with_taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// Sets the health (builder style).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Sets the capacity hint (builder style).
    pub fn with_capacity_replicas(mut self, replicas: i32) -> Self {
        self.capacity_replicas = Some(replicas);
        self
    }
}
