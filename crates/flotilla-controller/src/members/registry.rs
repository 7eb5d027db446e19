//! The member registry: one entry per MemberCluster, with its client, placement labels, taints and
//! health. Controllers read snapshots of it; every change that can move a placement is broadcast
//! so they reconcile again.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use kube::Client;
use tokio::sync::broadcast;

use flotilla_api::placement::ClusterTaint;

use super::health::HealthState;

/// What a controller needs to know about one member.
#[derive(Clone)]
pub struct Member {
    pub name: String,
    /// Labels placement selects on (the MemberCluster's labels plus region/zone).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<ClusterTaint>,
    pub health: HealthState,
    /// When `health` last changed.
    pub health_since: Timestamp,
    /// A client for the member, when its credentials are usable.
    pub client: Option<Client>,
    /// Bumped whenever `client` is replaced, so watchers know to reconnect.
    pub client_generation: u64,
}

impl Member {
    /// A client when the member is Ready; the copy operations never talk to other members.
    pub fn ready_client(&self) -> Option<&Client> {
        (self.health == HealthState::Ready)
            .then_some(self.client.as_ref())
            .flatten()
    }
}

/// A change in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// Labels, taints or the client of a member changed, or it was added or removed.
    Changed(String),
    /// A member became Ready (it may hold copies to clean up).
    BecameReady(String),
    /// A member stopped being Ready.
    BecameNotReady(String),
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct MemberRegistry {
    members: Arc<RwLock<BTreeMap<String, Member>>>,
    events: broadcast::Sender<RegistryEvent>,
    synced: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for MemberRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberRegistry {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            members: Arc::default(),
            events,
            synced: Arc::default(),
        }
    }

    /// Whether every MemberCluster on the host has an entry (set once after start-up). Until
    /// then a placement decision could miss clusters that exist.
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the registry complete; see [`Self::is_synced`].
    pub fn mark_synced(&self) {
        if !self.synced.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.emit(RegistryEvent::Changed(String::new()));
        }
    }

    /// Every member, sorted by name.
    pub fn snapshot(&self) -> Vec<Member> {
        self.read().values().cloned().collect()
    }

    /// One member.
    pub fn get(&self, name: &str) -> Option<Member> {
        self.read().get(name).cloned()
    }

    /// Receives every later change.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// A stream of every later change; `None` when changes were missed (the receiver lagged),
    /// which concerns everything.
    pub fn event_stream(
        &self,
    ) -> impl futures::Stream<Item = Option<RegistryEvent>> + Send + 'static {
        futures::stream::unfold(self.subscribe(), |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((Some(event), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    /// Sets what placement sees of a member (labels, taints); adds it as Unknown if new.
    pub fn upsert(&self, name: &str, labels: BTreeMap<String, String>, taints: Vec<ClusterTaint>) {
        let changed = {
            let mut members = self.write();
            match members.get_mut(name) {
                Some(m) if m.labels == labels && m.taints == taints => false,
                Some(m) => {
                    m.labels = labels;
                    m.taints = taints;
                    true
                }
                None => {
                    members.insert(
                        name.to_string(),
                        Member {
                            name: name.to_string(),
                            labels,
                            taints,
                            health: HealthState::Unknown,
                            health_since: Timestamp::now(),
                            client: None,
                            client_generation: 0,
                        },
                    );
                    true
                }
            }
        };
        if changed {
            self.emit(RegistryEvent::Changed(name.to_string()));
        }
    }

    /// Replaces the member's client (new credentials) or clears it (unusable credentials).
    pub fn set_client(&self, name: &str, client: Option<Client>) {
        if let Some(m) = self.write().get_mut(name) {
            m.client = client;
            m.client_generation += 1;
        }
        self.emit(RegistryEvent::Changed(name.to_string()));
    }

    /// Records a health transition.
    pub fn set_health(&self, name: &str, health: HealthState, since: Timestamp) {
        let changed = match self.write().get_mut(name) {
            Some(m) if m.health != health => {
                m.health = health;
                m.health_since = since;
                true
            }
            _ => false,
        };
        if changed {
            self.emit(match health {
                HealthState::Ready => RegistryEvent::BecameReady(name.to_string()),
                HealthState::NotReady | HealthState::Unknown => {
                    RegistryEvent::BecameNotReady(name.to_string())
                }
            });
        }
    }

    /// Forgets a member (its MemberCluster was deleted).
    pub fn remove(&self, name: &str) {
        if self.write().remove(name).is_some() {
            self.emit(RegistryEvent::Changed(name.to_string()));
        }
    }

    fn emit(&self, event: RegistryEvent) {
        // No receivers is fine: nothing is running that cares yet.
        let _ = self.events.send(event);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Member>> {
        // A poisoned lock means a panic while holding it; the map itself is still consistent
        // (every write is a single insert/assign), so keep serving it.
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Member>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_real_changes_are_broadcast() {
        let r = MemberRegistry::new();
        let mut rx = r.subscribe();
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        r.upsert("m1", labels.clone(), vec![]);
        assert_eq!(
            rx.try_recv().ok(),
            Some(RegistryEvent::Changed("m1".into()))
        );
        r.upsert("m1", labels, vec![]);
        assert!(rx.try_recv().is_err(), "same labels: no event");
        r.set_health("m1", HealthState::Ready, Timestamp::now());
        assert_eq!(
            rx.try_recv().ok(),
            Some(RegistryEvent::BecameReady("m1".into()))
        );
        r.set_health("m1", HealthState::Ready, Timestamp::now());
        assert!(rx.try_recv().is_err(), "same health: no event");
        r.set_health("m1", HealthState::NotReady, Timestamp::now());
        assert_eq!(
            rx.try_recv().ok(),
            Some(RegistryEvent::BecameNotReady("m1".into()))
        );
    }

    #[test]
    fn a_member_without_client_or_health_has_no_ready_client() {
        let r = MemberRegistry::new();
        r.upsert("m1", BTreeMap::new(), vec![]);
        assert!(r.get("m1").expect("present").ready_client().is_none());
    }
}
