//! The host objects' propagation status, kept packed beside the host store instead of in it.
//!
//! The status is the largest part of a cached host object (on 10 members: a placement verdict
//! and a copy entry per member, and the conditions; 4.6 KB an object decoded, measured with
//! heaptrack), and the engine reads it only while it works on that object. The host watch takes
//! it out of each object on its way into the store ([`Statuses::observe`]) and keeps it here as
//! compressed JSON; a reader decodes it when it needs it ([`Statuses::of`]). Stored objects
//! carry no status: read it here, never from the object.
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::watcher;

use flotilla_api::propagation::PropagationStatus;

use super::{Propagated, uid::Uid};

#[derive(Default)]
pub struct Statuses {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By object uid: the status as lz4-compressed JSON.
    packed: HashMap<Uid, Box<[u8]>>,
    /// During a relist, the objects it has listed so far: at its end the others are gone.
    relisted: Option<HashSet<Uid>>,
}

fn pack(status: &PropagationStatus) -> Option<Box<[u8]>> {
    let json = serde_json::to_vec(status).ok()?;
    Some(lz4_flex::compress_prepend_size(&json).into_boxed_slice())
}

fn unpack(bytes: &[u8]) -> Option<PropagationStatus> {
    let json = lz4_flex::decompress_size_prepended(bytes).ok()?;
    serde_json::from_slice(&json).ok()
}

impl Statuses {
    /// The status of the object with `uid`, as last seen or written.
    pub fn get(&self, uid: &str) -> Option<PropagationStatus> {
        let bytes = self.lock().packed.get(&Uid::new(uid)).cloned()?;
        unpack(&bytes)
    }

    /// The status of `obj` (a stored object, which carries none itself).
    pub fn of<K: Resource>(&self, obj: &K) -> Option<PropagationStatus> {
        self.get(obj.meta().uid.as_deref()?)
    }

    /// Records a status this replica has just written, before its watch event comes back.
    pub fn put(&self, uid: &str, status: &PropagationStatus) {
        if let Some(bytes) = pack(status) {
            self.lock().packed.insert(Uid::new(uid), bytes);
        }
    }

    /// Takes the status out of a host watch event's object and keeps it; forgets deleted
    /// objects, and at the end of a relist every object it did not list.
    pub fn observe<K: Propagated>(&self, event: &mut watcher::Event<K>) {
        let mut inner = self.lock();
        match event {
            watcher::Event::Init => inner.relisted = Some(HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(listed) = inner.relisted.take() {
                    inner.packed.retain(|uid, _| listed.contains(uid));
                }
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let status = obj.take_propagation_status();
                let Some(uid) = obj.meta().uid.as_deref().map(Uid::new) else {
                    return;
                };
                if let Some(listed) = inner.relisted.as_mut() {
                    listed.insert(uid.clone());
                }
                match status.as_ref().and_then(pack) {
                    Some(bytes) => inner.packed.insert(uid, bytes),
                    None => inner.packed.remove(&uid),
                };
            }
            watcher::Event::Delete(obj) => {
                obj.take_propagation_status();
                if let Some(uid) = obj.meta().uid.as_deref() {
                    inner.packed.remove(&Uid::new(uid));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the map whole (no update spans two
        // steps), so carry on with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::FederatedIngress;
    use serde_json::json;

    const UID: &str = "0b7e7d64-3f1a-4c55-9a47-1f6f3c2a9d10";

    fn object(uid: &str, selected: &[&str]) -> FederatedIngress {
        serde_json::from_value(json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "shop", "uid": uid},
            "spec": {"template": {"spec": {}}},
            "status": {"observedGeneration": 3, "placement": {"selected": selected}},
        }))
        .expect("decodes")
    }

    #[test]
    fn the_status_leaves_the_object_and_is_read_back_whole() {
        let statuses = Statuses::default();
        let original = object(UID, &["m1", "m2"]);
        let mut event = watcher::Event::Apply(original.clone());
        statuses.observe(&mut event);
        let watcher::Event::Apply(stored) = event else {
            unreachable!()
        };
        assert_eq!(stored.status, None, "the stored object carries no status");
        assert_eq!(statuses.of(&stored), original.status);
    }

    #[test]
    fn deleted_and_unlisted_objects_are_forgotten() {
        let statuses = Statuses::default();
        let other = "1c8f8e75-4a2b-4d66-8b58-2a7a4d3b8e21";
        statuses.observe(&mut watcher::Event::Apply(object(UID, &["m1"])));
        statuses.observe(&mut watcher::Event::Apply(object(other, &["m1"])));
        statuses.observe(&mut watcher::Event::Delete(object(other, &["m1"])));
        assert!(statuses.get(other).is_none());
        assert!(statuses.get(UID).is_some());
        // A relist that no longer lists UID.
        statuses.observe(&mut watcher::Event::<FederatedIngress>::Init);
        statuses.observe(&mut watcher::Event::InitApply(object(other, &["m2"])));
        assert!(statuses.get(UID).is_some(), "kept until the relist ends");
        statuses.observe(&mut watcher::Event::<FederatedIngress>::InitDone);
        assert!(statuses.get(UID).is_none());
        let selected = statuses
            .get(other)
            .and_then(|s| s.placement)
            .map(|p| p.selected);
        assert_eq!(selected, Some(vec!["m2".to_string()]));
    }

    #[test]
    fn an_object_without_status_has_none_and_a_written_one_is_seen_at_once() {
        let statuses = Statuses::default();
        let mut bare = object(UID, &[]);
        bare.status = None;
        statuses.observe(&mut watcher::Event::Apply(bare.clone()));
        assert!(statuses.of(&bare).is_none());
        let written = object(UID, &["m3"]).status.expect("status");
        statuses.put(UID, &written);
        assert_eq!(statuses.of(&bare), Some(written));
    }
}
