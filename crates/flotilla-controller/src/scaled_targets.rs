//! Which workloads a ScalingPolicy scales: one owner for `spec.replicas`. The ScalingPolicy
//! controller records every policy's target as it watches them; the propagation engine asks
//! before it applies a copy, and leaves `spec.replicas` of a scaled workload to the policy (no
//! field-manager fight, no drift reported or enforced on it). A change is broadcast so the
//! engine reconciles the workload at once: taking replicas back when the last policy goes.
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

/// The field manager of the ScalingPolicy controller's replica writes; the engine recognises
/// the policy's ownership of a copy's `spec.replicas` by it.
pub const SCALING_FIELD_MANAGER: &str = "flotilla-scaling";

/// A workload in one namespace, by API group, kind and name (the version does not matter: it
/// is the same object).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub namespace: String,
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl TargetKey {
    /// From an `apiVersion` such as `apps/v1` (the core group has no slash).
    pub fn new(namespace: &str, api_version: &str, kind: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            group: api_version
                .rsplit_once('/')
                .map_or("", |(g, _)| g)
                .to_string(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// The workload a host object propagates, as a policy names it: its copies' namespace,
    /// group, kind and name.
    pub fn of_copy(
        origin: &crate::propagation::origin::Origin,
        gvk: &kube::api::GroupVersionKind,
    ) -> Self {
        Self {
            namespace: origin.namespace.clone(),
            group: gvk.group.clone(),
            kind: gvk.kind.clone(),
            name: origin.copy_name.clone(),
        }
    }
}

#[derive(Default)]
struct Index {
    /// Policy uid → its target and its name.
    by_policy: HashMap<String, (TargetKey, String)>,
    /// Target → the uids of the policies that name it.
    by_target: HashMap<TargetKey, BTreeSet<String>>,
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct ScaledTargets {
    index: Arc<RwLock<Index>>,
    changes: broadcast::Sender<TargetKey>,
    synced: Arc<AtomicBool>,
}

impl Default for ScaledTargets {
    fn default() -> Self {
        Self {
            index: Arc::default(),
            changes: broadcast::channel(1024).0,
            synced: Arc::default(),
        }
    }
}

impl ScaledTargets {
    /// Whether the policies have been listed once: before, no workload is known to be scaled.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Whether a live policy scales `target`.
    pub fn is_scaled(&self, target: &TargetKey) -> bool {
        self.read().by_target.contains_key(target)
    }

    /// The policies (uid, name) that name `target`.
    pub fn policies_of(&self, target: &TargetKey) -> Vec<(String, String)> {
        let index = self.read();
        index
            .by_target
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|uid| {
                let (_, name) = index.by_policy.get(uid)?;
                Some((uid.clone(), name.clone()))
            })
            .collect()
    }

    /// Records the target of the policy with uid `policy` and name `name` (`None`: the policy is
    /// gone or being deleted).
    pub fn set(&self, policy: &str, name: &str, target: Option<TargetKey>) {
        let mut changed = Vec::new();
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            let before = index.by_policy.get(policy).map(|(t, _)| t.clone());
            if before == target {
                return;
            }
            if let Some(old) = before {
                index.by_policy.remove(policy);
                if let Some(uids) = index.by_target.get_mut(&old) {
                    uids.remove(policy);
                    if uids.is_empty() {
                        index.by_target.remove(&old);
                        changed.push(old);
                    }
                }
            }
            if let Some(new) = target {
                index
                    .by_policy
                    .insert(policy.to_string(), (new.clone(), name.to_string()));
                let uids = index.by_target.entry(new.clone()).or_default();
                if uids.is_empty() {
                    changed.push(new);
                }
                uids.insert(policy.to_string());
            }
        }
        for key in changed {
            let _ = self.changes.send(key);
        }
    }

    /// Forgets every policy not in `live` (after a relist of the policies).
    pub fn retain(&self, live: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .read()
            .by_policy
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.set(&uid, "", None);
        }
    }

    /// Targets that became scaled or stopped being scaled.
    pub fn subscribe(&self) -> broadcast::Receiver<TargetKey> {
        self.changes.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `manager` owns `spec.replicas` in a member object's managedFields (as written through
/// the object or its scale subresource).
pub fn replicas_owned_by(object: &serde_json::Value, manager: &str) -> bool {
    object
        .pointer("/metadata/managedFields")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e["manager"].as_str() == Some(manager)
                    && e.pointer("/fieldsV1/f:spec/f:replicas").is_some()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> TargetKey {
        TargetKey::new("shop", "apps/v1", "Deployment", name)
    }

    #[test]
    fn a_target_is_scaled_while_any_policy_names_it() {
        let t = ScaledTargets::default();
        let mut rx = t.subscribe();
        t.set("p1", "a", Some(key("web")));
        assert!(t.is_scaled(&key("web")));
        assert_eq!(rx.try_recv().ok(), Some(key("web")));
        t.set("p2", "b", Some(key("web")));
        assert_eq!(t.policies_of(&key("web")).len(), 2);
        assert!(rx.try_recv().is_err(), "still scaled: no change");
        t.set("p1", "a", None);
        assert_eq!(
            t.policies_of(&key("web")),
            [("p2".to_string(), "b".to_string())]
        );
        assert!(t.is_scaled(&key("web")));
        t.set("p2", "b", Some(key("api")));
        assert!(!t.is_scaled(&key("web")));
        assert_eq!(rx.try_recv().ok(), Some(key("web")));
        assert_eq!(rx.try_recv().ok(), Some(key("api")));
        t.retain(&BTreeSet::new());
        assert!(!t.is_scaled(&key("api")));
    }

    #[test]
    fn the_group_comes_from_the_api_version() {
        assert_eq!(
            TargetKey::new("n", "v1", "ReplicationController", "x").group,
            ""
        );
        assert_eq!(
            TargetKey::new("n", "apps/v1", "Deployment", "x").group,
            "apps"
        );
    }

    #[test]
    fn replica_ownership_is_read_from_managed_fields() {
        let copy = json!({"metadata": {"managedFields": [
            {"manager": "flotilla", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {}}}},
            {"manager": SCALING_FIELD_MANAGER, "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}});
        assert!(replicas_owned_by(&copy, SCALING_FIELD_MANAGER));
        assert!(!replicas_owned_by(&copy, "flotilla"));
        assert!(!replicas_owned_by(&json!({}), SCALING_FIELD_MANAGER));
    }
}
