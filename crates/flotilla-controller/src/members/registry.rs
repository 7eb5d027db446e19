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
    /// A client for the member's watches (see [`super::credentials::MemberClients::watch`]).
    pub watch_client: Option<Client>,
    /// The cluster's own identity (its kube-system namespace's uid), once read.
    pub cluster_uid: Option<String>,
    /// Another member that reaches the same cluster and holds it: this one is never used.
    pub duplicate_of: Option<String>,
    /// Bumped whenever `client` is replaced, so watchers know to reconnect.
    pub client_generation: u64,
    /// When its MemberCluster was created (the oldest of duplicates holds the cluster).
    pub created: Option<Timestamp>,
    /// Which host namespaces may place objects here (`spec.namespaces`).
    pub namespaces: flotilla_placement::NamespaceAccess,
}

impl Member {
    /// A client when the member is Ready; the copy operations never talk to other members.
    pub fn ready_client(&self) -> Option<&Client> {
        (self.health == HealthState::Ready && self.duplicate_of.is_none())
            .then_some(self.client.as_ref())
            .flatten()
    }

    /// Not probed yet, though it can be: not known to be down. Placing and cleanup wait for its
    /// first probe rather than treat it as down (a copy there would be left behind or moved
    /// away for nothing). A member without usable credentials or refused as a duplicate is
    /// down, not waited for.
    pub fn awaiting_first_probe(&self) -> bool {
        self.health == HealthState::Unknown && self.client.is_some() && self.duplicate_of.is_none()
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
                            watch_client: None,
                            cluster_uid: None,
                            duplicate_of: None,
                            client_generation: 0,
                            created: None,
                            namespaces: flotilla_placement::NamespaceAccess::All,
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

    /// Sets which host namespaces may place objects in the member.
    pub fn set_namespaces(&self, name: &str, namespaces: flotilla_placement::NamespaceAccess) {
        let changed = match self.write().get_mut(name) {
            Some(m) if m.namespaces != namespaces => {
                m.namespaces = namespaces;
                true
            }
            _ => false,
        };
        if changed {
            self.emit(RegistryEvent::Changed(name.to_string()));
        }
    }

    /// Replaces the member's client (new credentials) or clears it (unusable credentials).
    pub fn set_client(&self, name: &str, clients: Option<&super::credentials::MemberClients>) {
        if let Some(m) = self.write().get_mut(name) {
            m.client = clients.map(|c| c.work.clone());
            m.watch_client = clients.map(|c| c.watch.clone());
            m.client_generation += 1;
        }
        self.emit(RegistryEvent::Changed(name.to_string()));
    }

    /// Records that `name` reaches the cluster whose identity is `cluster_uid`. One cluster is
    /// one member: of the members that reach it, the one whose MemberCluster is oldest (then
    /// by name) holds it, and the others are NotReady and never used for apply, prune or
    /// watch. Returns the holder when it is another member.
    pub fn claim(&self, name: &str, cluster_uid: &str, created: Timestamp) -> Result<(), String> {
        let mut demoted = Vec::new();
        let result = {
            let mut members = self.write();
            let Some(me) = members.get_mut(name) else {
                return Ok(());
            };
            me.cluster_uid = Some(cluster_uid.to_string());
            me.created = Some(created);
            let rank = |m: &Member| (m.created.unwrap_or(Timestamp::MAX), m.name.clone());
            let holder = members
                .values()
                .filter(|m| m.cluster_uid.as_deref() == Some(cluster_uid))
                .min_by_key(|m| rank(m))
                .map(|m| m.name.clone())
                .unwrap_or_else(|| name.to_string());
            for m in members.values_mut() {
                if m.cluster_uid.as_deref() != Some(cluster_uid) {
                    continue;
                }
                if m.name == holder {
                    m.duplicate_of = None;
                } else if m.duplicate_of.as_deref() != Some(holder.as_str()) {
                    m.duplicate_of = Some(holder.clone());
                    // Never Ready, and known as such: one left Unknown (a new alias, never
                    // probed Ready) would hold back every object that could be placed on it,
                    // waiting for a first probe that never makes it Ready.
                    if m.health != HealthState::NotReady {
                        m.health = HealthState::NotReady;
                        m.health_since = Timestamp::now();
                        demoted.push(m.name.clone());
                    }
                }
            }
            if holder == name { Ok(()) } else { Err(holder) }
        };
        for m in demoted {
            self.emit(RegistryEvent::BecameNotReady(m.clone()));
            self.emit(RegistryEvent::Changed(m));
        }
        result
    }

    /// Records a health transition.
    pub fn set_health(&self, name: &str, health: HealthState, since: Timestamp) {
        let changed = match self.write().get_mut(name) {
            // A duplicate is never Ready.
            Some(m) if m.duplicate_of.is_some() && health == HealthState::Ready => false,
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
        let removed = {
            let mut members = self.write();
            let removed = members.remove(name).is_some();
            // Its duplicates are judged again at their next claim.
            for m in members.values_mut() {
                if m.duplicate_of.as_deref() == Some(name) {
                    m.duplicate_of = None;
                    m.cluster_uid = None;
                }
            }
            removed
        };
        if removed {
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
    fn the_oldest_member_of_one_cluster_holds_it_and_the_others_are_never_ready() {
        let r = MemberRegistry::new();
        r.upsert("m1", BTreeMap::new(), vec![]);
        r.upsert("alias", BTreeMap::new(), vec![]);
        let old = Timestamp::UNIX_EPOCH;
        let new = Timestamp::now();
        // The newer one claims first and is Ready for a moment…
        assert_eq!(r.claim("alias", "cluster-a", new), Ok(()));
        r.set_health("alias", HealthState::Ready, new);
        // …until the older one claims the same cluster.
        assert_eq!(r.claim("m1", "cluster-a", old), Ok(()));
        let alias = r.get("alias").expect("present");
        assert_eq!(alias.duplicate_of.as_deref(), Some("m1"));
        assert_eq!(alias.health, HealthState::NotReady);
        assert_eq!(r.claim("alias", "cluster-a", new), Err("m1".into()));
        r.set_health("alias", HealthState::Ready, new);
        assert_eq!(
            r.get("alias").expect("present").health,
            HealthState::NotReady
        );
        // The holder goes: the other may take over at its next claim.
        r.remove("m1");
        assert_eq!(r.claim("alias", "cluster-a", new), Ok(()));
        assert_eq!(r.get("alias").expect("present").duplicate_of, None);
    }

    #[test]
    fn a_new_duplicate_is_not_ready_at_once_not_unknown() {
        let r = MemberRegistry::new();
        let mut rx = r.subscribe();
        r.upsert("m1", BTreeMap::new(), vec![]);
        r.upsert("alias", BTreeMap::new(), vec![]);
        assert_eq!(r.claim("m1", "cluster-a", Timestamp::UNIX_EPOCH), Ok(()));
        while rx.try_recv().is_ok() {}
        assert_eq!(
            r.get("alias").expect("present").health,
            HealthState::Unknown
        );
        assert_eq!(
            r.claim("alias", "cluster-a", Timestamp::now()),
            Err("m1".into())
        );
        assert_eq!(
            r.get("alias").expect("present").health,
            HealthState::NotReady
        );
        assert_eq!(
            rx.try_recv().ok(),
            Some(RegistryEvent::BecameNotReady("alias".into()))
        );
    }

    #[test]
    fn a_member_without_client_or_health_has_no_ready_client() {
        let r = MemberRegistry::new();
        r.upsert("m1", BTreeMap::new(), vec![]);
        assert!(r.get("m1").expect("present").ready_client().is_none());
    }
}
