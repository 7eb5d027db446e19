//! When the engine reconciles a host object: which host-object changes and which member
//! changes are reasons to, and which objects a member change concerns.
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use flotilla_api::propagation::PropagationStatus;

use super::Propagated;
use super::statuses::Statuses;

use crate::finalizer;
use crate::members::registry::{MemberRegistry, RegistryEvent};

/// What of a host object the controller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lifecycle {
    generation: Option<i64>,
    deleting: bool,
    finalized: bool,
}

impl Lifecycle {
    fn of<K: Propagated>(fi: &K) -> Self {
        Self {
            generation: fi.meta().generation,
            deleting: fi.meta().deletion_timestamp.is_some(),
            finalized: finalizer::has_finalizer(fi),
        }
    }

    /// Whether going from `before` to `self` needs a reconcile: a new object, a new spec, a
    /// deletion, or Flotilla's finalizer removed by someone else. Not the status (the
    /// controller's and the syncer's own writes), and not the finalizer being added: that is the
    /// controller's own write, done before it applies anything, so reconciling again for it would
    /// only repeat the same work.
    fn needs_reconcile(&self, before: Option<&Self>) -> bool {
        before.is_none_or(|b| {
            b.generation != self.generation
                || b.deleting != self.deleting
                || (b.finalized && !self.finalized)
        })
    }
}

/// The last [`Lifecycle`] seen of every host object, by uid.
#[derive(Default)]
struct Seen {
    by_uid: HashMap<String, Lifecycle>,
    /// Uids listed by a relist in progress: whatever the relist does not list is gone.
    relisting: Option<HashSet<String>>,
}

impl Seen {
    /// The object to reconcile for this watch event, if any.
    fn on_event<K: Propagated>(&mut self, event: watcher::Event<K>) -> Option<K> {
        match event {
            watcher::Event::Apply(fi) => self.applied(fi),
            watcher::Event::InitApply(fi) => {
                if let (Some(listed), Some(uid)) = (self.relisting.as_mut(), &fi.meta().uid) {
                    listed.insert(uid.clone());
                }
                self.applied(fi)
            }
            watcher::Event::Delete(fi) => {
                if let Some(uid) = &fi.meta().uid {
                    self.by_uid.remove(uid);
                }
                None
            }
            watcher::Event::Init => {
                self.relisting = Some(HashSet::new());
                None
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.by_uid.retain(|uid, _| listed.contains(uid));
                }
                None
            }
        }
    }

    fn applied<K: Propagated>(&mut self, fi: K) -> Option<K> {
        let now = Lifecycle::of(&fi);
        let Some(uid) = fi.meta().uid.clone() else {
            return Some(fi);
        };
        let reconcile = now.needs_reconcile(self.by_uid.get(&uid));
        self.by_uid.insert(uid, now);
        reconcile.then_some(fi)
    }
}

/// The host objects to reconcile, from the (reflected) watch events.
pub fn host_changes<K: Propagated, S>(
    events: S,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen = Seen::default();
    events.filter_map(move |event| {
        let out = match event {
            Ok(event) => seen.on_event(event).map(Ok),
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    })
}

/// Whether a health change of `member` can change where `fi` is placed or what its status
/// says: the member may be selected for it (its cluster list is empty or names the member), or
/// it is selected or holds a copy now. `status` is asked for only when the spec does not decide.
pub fn concerns<K: Propagated, S: Borrow<PropagationStatus>>(
    fi: &K,
    member: &str,
    status: impl FnOnce() -> Option<S>,
) -> bool {
    may_select(fi, member) || status().is_some_and(|s| uses(s.borrow(), member))
}

/// Whether `member` may be selected for `fi`: its cluster list is empty or names the member.
fn may_select<K: Propagated>(fi: &K, member: &str) -> bool {
    let listed = &fi.propagation().placement.clusters;
    listed.is_empty() || listed.iter().any(|c| c == member)
}

/// Whether a status says `member` is selected or holds a copy.
fn uses(status: &PropagationStatus, member: &str) -> bool {
    status.clusters.iter().any(|e| e.cluster == member)
        || status
            .placement
            .as_ref()
            .is_some_and(|p| p.selected.iter().any(|c| c == member))
}

/// The objects a registry event concerns; `None` (events were missed) concerns every object.
fn concerned<K: Propagated>(
    objects: Vec<Arc<K>>,
    statuses: &Statuses,
    event: Option<RegistryEvent>,
) -> Vec<ObjectRef<K>> {
    let member = match event {
        Some(RegistryEvent::BecameReady(m) | RegistryEvent::BecameNotReady(m)) => Some(m),
        // Labels, taints, credentials, a member added or removed: rare, and every object's
        // verdicts list every member, so all of them.
        Some(RegistryEvent::Changed(_)) | None => None,
    };
    objects
        .iter()
        .filter(|fi| {
            member
                .as_deref()
                .is_none_or(|m| concerns(fi.as_ref(), m, || statuses.of(fi.as_ref())))
        })
        .map(|fi| ObjectRef::from_obj(fi.as_ref()))
        .collect()
}

/// The objects to reconcile for every member change the registry broadcasts.
pub fn member_changes<K: Propagated>(
    registry: &MemberRegistry,
    store: Store<K>,
    statuses: Arc<Statuses>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    registry
        .event_stream()
        .flat_map(move |event| futures::stream::iter(concerned(store.state(), &statuses, event)))
}

/// The objects whose workload a ScalingPolicy started or stopped scaling: its replicas change
/// hands. After a lag every object is reconciled (a missed change must not leave a workload's
/// replicas with nobody).
pub fn scaling_changes<K: Propagated>(
    scaled: &crate::scaled_targets::ScaledTargets,
    store: Store<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    let changes = futures::stream::unfold(scaled.subscribe(), |mut rx| async move {
        match rx.recv().await {
            Ok(key) => Some((Some(key), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    changes.flat_map(move |key| {
        let matching: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|o| key.as_ref().is_none_or(|k| workload_is(o.as_ref(), k)))
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        futures::stream::iter(matching)
    })
}

fn workload_is<K: Propagated>(obj: &K, key: &crate::scaled_targets::TargetKey) -> bool {
    let origin = super::origin::Origin::of(obj);
    obj.member_kind()
        .ok()
        .zip(origin)
        .is_some_and(|(gvk, origin)| {
            crate::scaled_targets::TargetKey::of_copy(&origin, &gvk) == *key
        })
}

/// The objects waiting for a kind in a member that may serve more kinds now.
pub fn kind_changes<K: Propagated>(
    kinds: &super::kinds::Kinds,
    store: Store<K>,
    statuses: Arc<Statuses>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    kinds.changes().flat_map(move |member| {
        let waiting: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|o| {
                statuses.of(o.as_ref()).is_some_and(|s| {
                    s.clusters.iter().any(|e| {
                        e.cluster == member
                            && e.state == flotilla_api::propagation::CopyState::WaitingForKind
                    })
                })
            })
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        futures::stream::iter(waiting)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::FederatedIngress;
    use serde_json::json;

    fn object(
        uid: &str,
        generation: i64,
        finalizers: &[&str],
        clusters: &[&str],
    ) -> FederatedIngress {
        serde_json::from_value(json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "apps", "uid": uid,
                         "generation": generation, "finalizers": finalizers},
            "spec": {"template": {"spec": {}}, "placement": {"clusters": clusters}},
        }))
        .expect("a FederatedIngress")
    }

    fn deleting(mut fi: FederatedIngress) -> FederatedIngress {
        fi.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        fi
    }

    fn reconciles(seen: &mut Seen, fi: FederatedIngress) -> bool {
        seen.on_event(watcher::Event::Apply(fi)).is_some()
    }

    #[test]
    fn a_new_object_a_new_spec_and_a_deletion_are_reconciled() {
        let mut seen = Seen::default();
        assert!(reconciles(&mut seen, object("u", 1, &[], &[])));
        assert!(reconciles(&mut seen, object("u", 2, &[], &[])));
        assert!(reconciles(&mut seen, deleting(object("u", 2, &[], &[]))));
    }

    #[test]
    fn adding_the_finalizer_is_not_a_reason_but_losing_it_is() {
        let mut seen = Seen::default();
        assert!(reconciles(&mut seen, object("u", 1, &[], &[])));
        assert!(!reconciles(
            &mut seen,
            object("u", 1, &[finalizer::FINALIZER], &[])
        ));
        assert!(!reconciles(
            &mut seen,
            object("u", 1, &[finalizer::FINALIZER, "x/y"], &[])
        ));
        assert!(reconciles(&mut seen, object("u", 1, &["x/y"], &[])));
    }

    #[test]
    fn status_writes_are_not_reasons() {
        let mut seen = Seen::default();
        let mut fi = object("u", 1, &[finalizer::FINALIZER], &[]);
        assert!(reconciles(&mut seen, fi.clone()));
        fi.status = Some(Default::default());
        assert!(!reconciles(&mut seen, fi));
    }

    #[test]
    fn an_object_recreated_under_the_same_name_is_new() {
        let mut seen = Seen::default();
        assert!(reconciles(&mut seen, object("u1", 1, &[], &[])));
        assert!(
            seen.on_event(watcher::Event::Delete(object("u1", 1, &[], &[])))
                .is_none()
        );
        assert!(reconciles(&mut seen, object("u1", 1, &[], &[])));
        assert!(reconciles(&mut seen, object("u2", 1, &[], &[])));
    }

    #[test]
    fn a_relist_forgets_objects_deleted_unseen_and_repeats_nothing() {
        let mut seen = Seen::default();
        assert!(reconciles(&mut seen, object("a", 1, &[], &[])));
        assert!(reconciles(&mut seen, object("b", 1, &[], &[])));
        seen.on_event::<FederatedIngress>(watcher::Event::Init);
        assert!(
            seen.on_event(watcher::Event::InitApply(object("a", 1, &[], &[])))
                .is_none()
        );
        seen.on_event::<FederatedIngress>(watcher::Event::InitDone);
        assert_eq!(seen.by_uid.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn a_member_concerns_objects_that_may_or_do_use_it() {
        let none = || None::<PropagationStatus>;
        assert!(concerns(&object("u", 1, &[], &[]), "m1", none));
        assert!(concerns(&object("u", 1, &[], &["m1", "m2"]), "m1", none));
        let elsewhere = object("u", 1, &[], &["m2"]);
        assert!(!concerns(&elsewhere, "m1", none));
        let placed: PropagationStatus =
            serde_json::from_value(json!({"placement": {"selected": ["m1"]}})).expect("status");
        assert!(concerns(&elsewhere, "m1", || Some(&placed)));
        let holding: PropagationStatus =
            serde_json::from_value(json!({"clusters": [{"cluster": "m1"}]})).expect("status");
        assert!(concerns(&elsewhere, "m1", || Some(&holding)));
        assert!(!concerns(&elsewhere, "m3", || Some(&holding)));
    }

    #[test]
    fn health_changes_reach_only_concerned_objects_and_other_changes_all() {
        let objects = vec![
            Arc::new(object("a", 1, &[], &["m1"])),
            Arc::new(object("b", 1, &[], &["m2"])),
        ];
        let names = |refs: Vec<ObjectRef<FederatedIngress>>| refs.len();
        assert_eq!(
            names(concerned(
                objects.clone(),
                &Statuses::default(),
                Some(RegistryEvent::BecameNotReady("m1".into()))
            )),
            1
        );
        assert_eq!(
            names(concerned(
                objects.clone(),
                &Statuses::default(),
                Some(RegistryEvent::Changed("m1".into()))
            )),
            2
        );
        assert_eq!(names(concerned(objects, &Statuses::default(), None)), 2);
    }
}
