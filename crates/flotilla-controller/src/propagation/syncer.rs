//! The status syncer, for any kind: every change a member watch sees is compared with what
//! Flotilla applied there; drift is reported on the host object (each member's entry written
//! under a field manager of its own, so one cluster's drift writes one entry, whatever the
//! cluster count) and, under `Enforce`, handed to the engine's reconcile to restore (one writer
//! of member objects: the syncer never writes to members). The engine's own moves are told
//! from others' by the [`super::Ledger`]: a copy the engine is removing is not drift, and the
//! placement the engine acts on is the one judged against, not a status that may be behind.
//! Nothing is written when nothing changed.
use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use flotilla_api::labels::FIELD_MANAGER;
use flotilla_api::policies::DriftMode;
use flotilla_api::propagation::{
    CopyHealth, CopyState, DriftStatus, HealthState, LoadBalancerAddress, PropagationStatus,
};
use flotilla_syncer::{DriftInput, drift_status, same_drift};

use super::informers::CopyEvent;
use super::origin::{CopyMeta, Origin};
use super::per_copy::PerCopy;
use super::render::desired_copy;
use super::syncer_writes::{Part, SyncerWrites};
use super::{Engine, Placed, Propagated, truncate};
use crate::conditions::{NewCondition, set_condition};
use crate::digest::digest;

/// How often state about objects and members that are gone is dropped.
const TIDY_EVERY: Duration = Duration::from_secs(60);

/// What was last written for one (object, member).
#[derive(Clone, Default, PartialEq)]
struct Written {
    drift: Option<DriftStatus>,
    load_balancer: Vec<LoadBalancerAddress>,
}

impl Written {
    fn is_empty(&self) -> bool {
        self.drift.is_none() && self.load_balancer.is_empty()
    }
}

/// What was last written, per copy. The Drifted condition is rebuilt from an object's entries on
/// every copy event. Most entries say nothing (no drift, no address): those are kept as `None`,
/// a slot of a pointer's size.
#[derive(Default)]
struct WrittenEntries(PerCopy<Option<Box<Written>>>);

/// The entry of a copy with nothing to report.
static NOTHING_WRITTEN: Written = Written {
    drift: None,
    load_balancer: Vec::new(),
};

impl WrittenEntries {
    fn get(&self, (uid, member): &Key) -> Option<Written> {
        let entry = self.0.get(uid, member)?;
        Some(entry.as_deref().cloned().unwrap_or_default())
    }

    fn contains_key(&self, (uid, member): &Key) -> bool {
        self.0.get(uid, member).is_some()
    }

    fn insert(&mut self, (uid, member): Key, written: Written) {
        let entry = (!written.is_empty()).then(|| Box::new(written));
        self.0.insert(&uid, &member, entry);
    }

    fn remove(&mut self, (uid, member): &Key) {
        self.0.remove(uid, member);
    }

    /// The entries of one object, by member.
    fn of<'a>(&'a self, uid: &str) -> impl Iterator<Item = (&'a str, &'a Written)> {
        self.0
            .of(uid)
            .map(|(member, w)| (member, w.as_deref().unwrap_or(&NOTHING_WRITTEN)))
    }

    fn retain_members(&mut self, members: &HashSet<String>) {
        self.0.retain_members(members);
    }

    fn retain_objects(&mut self, live: &HashSet<String>) {
        self.0.retain_objects(live);
    }
}

/// How often the health of changed objects is written: a Deployment's copy changes its status
/// several times as it rolls out, in every member; one write per object per period carries all of
/// it.
const HEALTH_FLUSH: Duration = Duration::from_millis(500);
/// Objects whose health is looked at per flush.
const HEALTH_BATCH: usize = 128;
/// How long an object's health write waits for the first sighting of copies it expects.
const HEALTH_SETTLE: Duration = Duration::from_secs(2);

/// The placement a status records.
fn placed_in<K: Propagated>(status: Option<&PropagationStatus>) -> Placed {
    Placed {
        kind: K::KIND,
        generation: status
            .and_then(|s| s.observed_generation)
            .unwrap_or_default(),
        selected: status
            .and_then(|s| s.placement.as_ref())
            .map(|p| p.selected.clone())
            .unwrap_or_default(),
    }
}

/// The health part of a status as [`Syncer::health_status`] builds it: each entry's health and
/// the Healthy condition.
fn health_part(status: Option<&PropagationStatus>) -> Value {
    let entries: Vec<Value> = status
        .iter()
        .flat_map(|s| s.clusters.iter())
        .filter_map(|e| Some(json!({"cluster": e.cluster, "health": e.health.as_ref()?})))
        .collect();
    let conditions: Vec<_> = status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.type_ == "Healthy")
        .cloned()
        .collect();
    json!({"clusters": entries, "conditions": conditions})
}

/// A health part with its conditions' `lastTransitionTime` left out.
fn without_transition_times(mut part: Value) -> Value {
    if let Some(conditions) = part.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastTransitionTime");
        }
    }
    part
}

type Key = (String, String); // (host object uid, member)

struct Syncer<K: Propagated> {
    engine: Arc<Engine>,
    objects: Store<K>,
    enforce: mpsc::UnboundedSender<ObjectRef<K>>,
    written: WrittenEntries,
    /// The Drifted condition last written, by host object uid.
    drifted: HashMap<String, (bool, String)>,
    /// Each copy's health as last seen (kinds that report health).
    health: HashMap<Key, CopyHealth>,
    /// Objects whose health changed since the last flush, oldest first.
    health_dirty: super::write_queue::WriteQueue<ObjectRef<K>>,
    /// The digest of the health part of the status last written, by host object uid.
    health_written: HashMap<String, u64>,
    /// Every host write, in the background.
    writes: SyncerWrites<K>,
    /// Copies handed to the engine to restore (Enforce): their next clean sighting is a correction.
    correcting: HashSet<Key>,
    /// Copies seen before the engine recorded them applied: judged on the next recheck.
    early: HashMap<Key, Arc<Value>>,
}

/// Runs until the informers close. `rechecks` carries host objects whose status the engine has
/// just written; `enforce` asks the engine to apply an object's copies again.
pub async fn run<K: Propagated>(
    engine: Arc<Engine>,
    objects: Store<K>,
    mut events: mpsc::Receiver<CopyEvent>,
    mut rechecks: mpsc::UnboundedReceiver<Arc<K>>,
    enforce: mpsc::UnboundedSender<ObjectRef<K>>,
) {
    crate::store::wait_until_listed(&objects).await;
    let (writes, mut finished) = SyncerWrites::new(engine.clone(), objects.clone());
    let mut syncer = Syncer {
        engine,
        objects,
        enforce,
        written: WrittenEntries::default(),
        drifted: HashMap::new(),
        health: HashMap::new(),
        health_dirty: Default::default(),
        health_written: HashMap::new(),
        writes,
        correcting: HashSet::new(),
        early: HashMap::new(),
    };
    let mut tidy = tokio::time::interval(TIDY_EVERY);
    let mut health_flush = tokio::time::interval(HEALTH_FLUSH);
    health_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(CopyEvent::Applied { member, meta, object }) => {
                    syncer.observe_copy(&member, &meta, Some(object))
                }
                Some(CopyEvent::Deleted { member, meta }) => {
                    syncer.observe_copy(&member, &meta, None)
                }
                Some(CopyEvent::Relisted { member }) => syncer.relisted(&member),
                None => return,
            },
            Some(obj) = rechecks.recv() => syncer.recheck(obj),
            _ = tidy.tick() => syncer.tidy(),
            Some(f) = finished.recv() => syncer.writes.finished(f),
            _ = health_flush.tick(), if !syncer.health_dirty.is_empty() => {
                let t = std::time::Instant::now();
                let n = syncer.health_dirty.len();
                syncer.flush_health();
                tracing::debug!(kind = K::KIND, dirty = n, elapsed_ms = t.elapsed().as_millis() as u64, "health flushed");
            }
        }
    }
}

impl<K: Propagated> Syncer<K> {
    /// The host object `meta` is a copy of, if it still exists (same uid).
    fn host_object(&self, meta: &CopyMeta) -> Option<Arc<K>> {
        let origin = meta.claimed_origin()?;
        if origin.kind != K::KIND {
            return None;
        }
        // Same uid, and the copy is the one that object makes (its name and kind).
        self.objects
            .get(&origin.host_ref())
            .filter(|o| super::sweeper::makes(o.as_ref(), meta))
    }

    /// Where the engine placed `uid`: as its ledger says, or else as the object's status says
    /// (decoded only then).
    fn placement(&self, obj: &K, uid: &str) -> Placed {
        self.engine
            .ledger
            .placement(uid)
            .unwrap_or_else(|| placed_in::<K>(self.engine.statuses.of(obj).as_ref()))
    }

    /// [`Self::placement`] for a caller holding the status decoded already.
    fn placement_with(&self, uid: &str, status: Option<&PropagationStatus>) -> Placed {
        self.engine
            .ledger
            .placement(uid)
            .unwrap_or_else(|| placed_in::<K>(status))
    }

    /// After a member's watch listed afresh: copies deleted while nobody watched have no
    /// Delete event; find them from what the engine placed there.
    fn relisted(&mut self, member: &str) {
        for obj in self.objects.state() {
            let Some(origin) = Origin::of(obj.as_ref()) else {
                continue;
            };
            let Some(resource) = obj
                .member_kind()
                .ok()
                .and_then(|gvk| self.engine.kinds.known(&gvk))
            else {
                continue;
            };
            let placed = self
                .placement(&obj, &origin.uid)
                .selected
                .iter()
                .any(|m| m == member);
            if placed
                && self.engine.informers.is_listed(member, &resource)
                && self
                    .engine
                    .informers
                    .copy(member, &resource, &origin)
                    .is_none()
            {
                self.observe(member, obj.clone(), None);
            }
        }
    }

    /// The engine wrote `obj`'s status: judge the copies seen before it recorded them applied.
    fn recheck(&mut self, obj: Arc<K>) {
        let Some(uid) = obj.meta().uid.clone() else {
            return;
        };
        for member in self.placement(&obj, &uid).selected {
            if let Some(copy) = self.early.remove(&(uid.clone(), member.clone())) {
                self.observe(&member, obj.clone(), Some(copy));
            }
        }
    }

    fn observe_copy(&mut self, member: &str, meta: &CopyMeta, copy: Option<Arc<Value>>) {
        // Not a copy of an existing host object (its host object is gone, or it is a
        // mislabelled object elsewhere): the sweeper's business, never reported.
        let Some(obj) = self.host_object(meta) else {
            return;
        };
        self.observe(member, obj, copy);
    }

    /// Drops state about objects and members that are gone.
    fn tidy(&mut self) {
        let members: HashSet<String> = self
            .engine
            .ctx
            .registry
            .snapshot()
            .into_iter()
            .map(|m| m.name)
            .collect();
        self.written.retain_members(&members);
        self.correcting.retain(|(_, m)| members.contains(m));
        self.early.retain(|(_, m), _| members.contains(m));
        self.engine.ledger.retain_members(&members);
        self.engine.lanes.retain_members(&members);
        let live: HashSet<String> = self
            .objects
            .state()
            .iter()
            .filter_map(|o| o.meta().uid.clone())
            .collect();
        self.written.retain_objects(&live);
        self.writes.retain_objects(&live);
        self.drifted.retain(|u, _| live.contains(u));
        self.health
            .retain(|(u, m), _| live.contains(u) && members.contains(m));
        self.health_written.retain(|u, _| live.contains(u));
        self.correcting.retain(|(u, _)| live.contains(u));
        self.early.retain(|(u, _), _| live.contains(u));
        for uid in self.engine.ledger.objects(K::KIND) {
            if !live.contains(&uid) {
                self.engine.ledger.forget_object(&uid);
            }
        }
        self.engine.ledger.tidy();
    }

    /// Judges one member's copy of `obj` (`None`: the copy is gone).
    fn observe(&mut self, member: &str, obj: Arc<K>, copy: Option<Arc<Value>>) {
        if obj.meta().deletion_timestamp.is_some() {
            return;
        }
        let Some(origin) = Origin::of(obj.as_ref()) else {
            return;
        };
        let key = (origin.uid.clone(), member.to_string());
        // This sighting supersedes one kept for later: judged now, or kept instead below. A
        // stale one left behind would be judged at the next recheck after this newer one and
        // put the copy back as it was (a CRD's "not established yet", for good).
        self.early.remove(&key);
        let status = self.engine.statuses.of(obj.as_ref());
        let entry = status
            .as_ref()
            .and_then(|s| s.clusters.iter().find(|c| c.cluster == member))
            .cloned();
        let leaving = self.engine.ledger.is_leaving(&origin.uid, member);
        let placed = self.placement_with(&origin.uid, status.as_ref());
        if leaving || !placed.selected.iter().any(|m| m == member) {
            // The engine removed it, or it is not placed here: nothing to report here any more.
            if copy.is_none() {
                self.engine.ledger.removed(&origin.uid, member);
            }
            self.correcting.remove(&key);
            // A copy that is still there (kept while its member was away, or not removed yet):
            // judged if the engine places it there again (the recheck after that placement's
            // status write); its deletion event drops it.
            if let Some(c) = &copy {
                self.early.insert(key.clone(), c.clone());
            }
            self.set_health(&obj, &key, None);
            if entry.is_some_and(|e| e.drift.is_some() || !e.load_balancer.is_empty())
                || self.written.contains_key(&key)
            {
                self.write_entry(&obj, member, &Written::default());
                self.written.remove(&key);
            }
            self.update_condition(&obj);
            return;
        }
        if K::REPORTS_HEALTH {
            let health = copy.as_deref().map(super::health::of);
            let established =
                |h: Option<&CopyHealth>| h.is_some_and(|h| h.state == HealthState::Healthy);
            if copy
                .as_ref()
                .is_some_and(|c| c["kind"] == "CustomResourceDefinition")
                && established(health.as_ref())
                && !established(self.health.get(&key))
            {
                self.engine.kinds.may_serve_more(member);
            }
            self.set_health(&obj, &key, health);
        }
        let generation = obj.meta().generation.unwrap_or_default();
        let baseline = self.engine.ledger.baseline(&origin.uid, member);
        // A baseline of an earlier generation: the engine's apply of this one has not returned
        // yet (the member's watch can show the copy first). Judged against that older baseline,
        // every template change under load was reported as drift of the changed fields.
        let baseline_behind = baseline
            .as_ref()
            .is_some_and(|b| super::origin::origin_generation(b) != Some(generation));
        // Judge only a copy the engine applied from the object's current generation: otherwise
        // it has not applied it yet (or this view is behind) and will.
        let applied_now = placed.generation == generation
            && !baseline_behind
            && (baseline.is_some()
                || entry.as_ref().is_some_and(|e| {
                    matches!(e.state, CopyState::Applied | CopyState::Unreachable)
                        && e.applied_generation == Some(generation)
                }));
        if let Some(c) = &copy {
            let copy_generation = super::origin::origin_generation(c);
            if copy_generation != Some(generation) {
                return;
            }
            if !applied_now {
                self.early.insert(key, c.clone());
                return;
            }
        } else if !applied_now {
            return;
        }
        let spec = obj.propagation();
        let has_baseline = baseline.is_some();
        let desired = match baseline {
            Some(b) => b,
            None => {
                let Ok(template) = obj.template() else {
                    return;
                };
                // This member's share, when replicas are divided.
                let share = status
                    .as_ref()
                    .and_then(|s| s.placement.as_ref())
                    .and_then(|p| p.clusters.iter().find(|c| c.cluster == member))
                    .and_then(|c| c.replicas);
                let template = super::replicas::for_cluster(&template, share);
                let Ok(d) = desired_copy(
                    &template,
                    &spec.overrides,
                    &origin,
                    spec.deletion,
                    generation,
                    member,
                ) else {
                    return;
                };
                d
            }
        };
        // Items of a list carry no apiVersion and kind: the type is not what drift is about.
        let mut desired = desired;
        if let Some(d) = desired.as_object_mut() {
            d.remove("apiVersion");
            d.remove("kind");
        }
        let before = self.written.get(&key).unwrap_or_else(|| Written {
            drift: entry.as_ref().and_then(|e| e.drift.as_deref().cloned()),
            load_balancer: entry
                .as_ref()
                .map(|e| e.load_balancer.clone())
                .unwrap_or_default(),
        });
        let now = Time(jiff::Timestamp::now());
        let managed_fields: Vec<ManagedFieldsEntry> = copy
            .as_ref()
            .and_then(|c| c.pointer("/metadata/managedFields").cloned())
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default();
        // A scaled workload's replicas are its ScalingPolicy's: never drift (nor, before the
        // policies are listed, any workload's: it may be scaled).
        let scaled = !self.engine.ctx.scaled.is_synced()
            || obj.member_kind().is_ok_and(|gvk| {
                self.engine
                    .ctx
                    .scaled
                    .is_scaled(&crate::scaled_targets::TargetKey::of_copy(&origin, &gvk))
            });
        let ignore: std::borrow::Cow<'_, [String]> = if scaled {
            let mut paths = spec.drift.ignore_paths.clone();
            paths.push("/spec/replicas".into());
            paths.into()
        } else {
            spec.drift.ignore_paths.as_slice().into()
        };
        let mut drift = drift_status(&DriftInput {
            desired: &desired,
            observed: copy.as_deref(),
            managed_fields: &managed_fields,
            ignore: &ignore,
            field_manager: FIELD_MANAGER,
            previous: before.drift.as_ref(),
            now: now.clone(),
        });
        if !has_baseline {
            // No answer of the member to compare with (the operator restarted and has not
            // applied this copy since): a value that differs although nobody else wrote it is
            // the server's normalisation of Flotilla's own value (a quantity, a default), not
            // drift. A field someone removed still counts.
            if let Some(d) = drift.as_mut() {
                d.fields
                    .retain(|f| f.manager.is_some() || f.observed.is_none());
                if d.fields.is_empty() && !d.copy_deleted && d.corrections.is_none() {
                    drift = None;
                }
            }
        }
        cap_values(drift.as_mut());
        let drifted_now = drift
            .as_ref()
            .is_some_and(|d| d.copy_deleted || !d.fields.is_empty());
        let reference = obj.object_ref(&());
        if drifted_now && spec.drift.mode == DriftMode::Enforce {
            // Restored by the engine's reconcile; recorded when the copy is seen clean again.
            if self.correcting.insert(key.clone()) {
                self.engine.ctx.metrics.drift(K::CONTROLLER, false);
            }
            let _ = self.enforce.send(ObjectRef::from_obj(obj.as_ref()));
            return;
        }
        if !drifted_now && self.correcting.remove(&key) {
            self.engine.ctx.metrics.drift(K::CONTROLLER, true);
            let previous = before.drift.as_ref();
            drift = Some(DriftStatus {
                fields: vec![],
                copy_deleted: false,
                corrections: Some(previous.and_then(|d| d.corrections).unwrap_or(0) + 1),
                last_correction_time: Some(now.clone()),
            });
            self.engine.ctx.event_in_background(
                reference,
                false,
                "DriftCorrected",
                "Sync",
                format!("{member}: the copy was restored"),
            );
        } else if drifted_now && !same_drift(before.drift.as_ref(), drift.as_ref()) {
            self.engine.ctx.metrics.drift(K::CONTROLLER, false);
            let note = truncate::message(&describe(member, drift.as_ref()));
            self.engine
                .ctx
                .event_in_background(reference, true, "DriftDetected", "Sync", note);
        }
        let load_balancer = copy.as_ref().map(|c| K::copy_status(c)).unwrap_or_default();
        let after = Written {
            drift,
            load_balancer,
        };
        let changed = !same_drift(before.drift.as_ref(), after.drift.as_ref())
            || before.load_balancer != after.load_balancer;
        // What is written is remembered at once: the writes retry until they land.
        if changed {
            self.write_entry(&obj, member, &after);
        }
        self.written.insert(key, after);
        self.update_condition(&obj);
    }

    /// Records a copy's health (`None`: no copy, or not placed there); the object's health is
    /// written at the next flush when it changed.
    fn set_health(&mut self, obj: &K, key: &Key, health: Option<CopyHealth>) {
        if !K::REPORTS_HEALTH {
            return;
        }
        let changed = match health {
            Some(h) => self.health.insert(key.clone(), h.clone()).as_ref() != Some(&h),
            None => self.health.remove(key).is_some(),
        };
        // An object never written yet is written once, even with nothing to say (its Healthy
        // condition says where it stands).
        if changed || !self.health_written.contains_key(&key.0) {
            self.health_dirty.mark(
                key.0.clone(),
                ObjectRef::from_obj(obj),
                std::time::Instant::now(),
            );
        }
    }

    /// Writes the health of objects whose copies' health changed: one write per object, under
    /// one field manager, with every placed member's entry and the Healthy condition; nothing
    /// when the object's status already says it (after a restart, most do). At most
    /// [`HEALTH_BATCH`] objects per flush, oldest first, so copy events are not held up behind a
    /// long flush.
    fn flush_health(&mut self) {
        let now = std::time::Instant::now();
        let mut writes = Vec::new();
        let mut settling = Vec::new();
        // Objects still settling count against the batch. Letting them pass (tried once) writes
        // ready objects sooner but more often: with it, a policy's 1,000 ConfigMaps on 10 members
        // took 1,355 syncer writes instead of 889-981 (an object written before all its copies
        // were seen is written again when they are).
        for taken in self.health_dirty.take_oldest(HEALTH_BATCH) {
            let (uid, reference) = (taken.key.clone(), taken.value.clone());
            let Some(obj) = crate::store::live(&self.objects, &reference, &uid) else {
                continue;
            };
            // Where the engine placed it (its ledger; the status only for objects it has not
            // placed since start-up, decoded once more below if written).
            let placed = self.placement(&obj, &uid).selected;
            // Copies just applied show up one member after another: one write once they are all
            // seen instead of a "no copy observed yet" write now and another in a moment. For
            // [`HEALTH_SETTLE`] at most, so a copy that does not come is reported.
            let unseen = placed
                .iter()
                .any(|m| !self.health.contains_key(&(uid.clone(), m.clone())));
            if unseen && now.duration_since(taken.since) < HEALTH_SETTLE {
                settling.push(taken);
                continue;
            }
            let current = self.engine.statuses.of(obj.as_ref());
            let status = self.health_status(&obj, current.as_ref(), &uid, &placed);
            // Compared without the condition's transition time: while the watch has not brought
            // back the last health write, the condition is built afresh with a new time, and the
            // same health was written a second time for 4 objects in 10 of a policy's burst.
            let written = digest(&without_transition_times(status.clone()));
            if self.health_written.get(&uid) == Some(&written) {
                continue;
            }
            if digest(&without_transition_times(health_part(current.as_ref()))) == written {
                self.health_written.insert(uid, written);
                continue;
            }
            writes.push((uid, obj, status, written));
        }
        for taken in settling {
            self.health_dirty.put_back(taken);
        }
        for (uid, obj, status, written) in writes {
            self.writes.write(&obj, &uid, Part::Health, status);
            self.health_written.insert(uid, written);
        }
    }

    /// Writes one member's entry under that member's own field manager. An empty entry releases
    /// it (the controller's fields of the entry stay).
    fn write_entry(&mut self, obj: &Arc<K>, member: &str, written: &Written) {
        let status = if written.is_empty() {
            json!({})
        } else {
            let mut entry = json!({"cluster": member});
            if let Some(d) = &written.drift {
                entry["drift"] = json!(d);
            }
            if !written.load_balancer.is_empty() {
                entry["loadBalancer"] = json!(written.load_balancer);
            }
            json!({"clusters": [entry]})
        };
        let Some(uid) = obj.meta().uid.as_deref() else {
            return;
        };
        self.writes
            .write(obj, uid, Part::Entry(member.to_string()), status);
    }

    /// The Drifted condition, from what this syncer last wrote for every member of the object.
    fn update_condition(&mut self, obj: &Arc<K>) {
        let Some(uid) = obj.meta().uid.clone() else {
            return;
        };
        let mut drifted = Vec::new();
        let mut corrected = 0;
        for (member, w) in self.written.of(&uid) {
            if let Some(d) = &w.drift {
                corrected += d.corrections.unwrap_or(0);
                if d.copy_deleted || !d.fields.is_empty() {
                    drifted.push(describe(member, Some(d)));
                }
            }
        }
        drifted.sort();
        let state = if drifted.is_empty() {
            let message = if corrected > 0 {
                format!("every copy matches; {corrected} drift(s) corrected so far")
            } else {
                "every copy matches what Flotilla applied".to_string()
            };
            (false, message)
        } else {
            (true, truncate::message(&drifted.join("; ")))
        };
        let stored = || self.engine.statuses.of(obj.as_ref());
        let previous = self.drifted.get(&uid).cloned().or_else(|| {
            stored()?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Drifted")
                .map(|c| (c.status == "True", c.message))
        });
        // Never written and nothing to say: absence already means no drift.
        if previous.is_none() && !state.0 && corrected == 0 {
            return;
        }
        if previous.as_ref() == Some(&state) {
            return;
        }
        let mut conditions = stored().map(|s| s.conditions).unwrap_or_default();
        conditions.retain(|c| c.type_ == "Drifted");
        set_condition(
            &mut conditions,
            NewCondition {
                type_: "Drifted",
                status: state.0,
                reason: if state.0 { "DriftDetected" } else { "NoDrift" },
                message: state.1.clone(),
                observed_generation: obj.meta().generation,
            },
            Time(jiff::Timestamp::now()),
        );
        self.writes
            .write(obj, &uid, Part::Drifted, json!({"conditions": conditions}));
        self.drifted.insert(uid, state);
    }

    /// The health part of `obj`'s status: every placed member's copy health and the Healthy
    /// condition (every placed copy healthy, or applied for kinds with nothing to judge).
    fn health_status(
        &self,
        obj: &K,
        current: Option<&PropagationStatus>,
        uid: &str,
        placed: &[String],
    ) -> Value {
        let mut entries = Vec::new();
        let mut unhealthy = Vec::new();
        let mut progressing = Vec::new();
        for member in placed {
            let health = self.health.get(&(uid.to_string(), member.clone()));
            if let Some(h) = health {
                entries.push(json!({"cluster": member, "health": h}));
            }
            let message = health.and_then(|h| h.message.clone()).unwrap_or_default();
            match health.map(|h| h.state) {
                Some(HealthState::Healthy | HealthState::Applied) => {}
                Some(HealthState::Unhealthy) => unhealthy.push(format!("{member}: {message}")),
                Some(HealthState::Progressing) => progressing.push(format!("{member}: {message}")),
                None => progressing.push(format!("{member}: no copy observed yet")),
            }
        }
        let (healthy, reason, message) = if !unhealthy.is_empty() {
            unhealthy.extend(progressing);
            (false, "Unhealthy", unhealthy.join("; "))
        } else if !progressing.is_empty() {
            (false, "Progressing", progressing.join("; "))
        } else if placed.is_empty() {
            (false, "NotPlaced", "no cluster is selected".to_string())
        } else {
            (true, "Healthy", format!("healthy in {}", placed.join(", ")))
        };
        let mut conditions = current.map(|s| s.conditions.clone()).unwrap_or_default();
        conditions.retain(|c| c.type_ == "Healthy");
        set_condition(
            &mut conditions,
            NewCondition {
                type_: "Healthy",
                status: healthy,
                reason,
                message: truncate::message(&message),
                observed_generation: obj.meta().generation,
            },
            Time(jiff::Timestamp::now()),
        );
        json!({"clusters": entries, "conditions": conditions})
    }
}

/// Drifted values come from members: cut them before they reach the host.
fn cap_values(drift: Option<&mut DriftStatus>) {
    for f in drift.into_iter().flat_map(|d| d.fields.iter_mut()) {
        for v in [&mut f.desired, &mut f.observed, &mut f.manager] {
            if let Some(s) = v.as_mut() {
                *s = truncate::truncate(s, truncate::VALUE_MAX);
            }
        }
    }
}

/// One line per member: what drifted and who did it.
fn describe(member: &str, drift: Option<&DriftStatus>) -> String {
    let Some(d) = drift else {
        return format!("{member}: no drift");
    };
    if d.copy_deleted {
        return format!("{member}: the copy was deleted");
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in &d.fields {
        by_manager
            .entry(f.manager.clone().unwrap_or_else(|| "unknown".into()))
            .or_default()
            .push(&f.path);
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, paths)| format!("{} changed by {m}", paths.join(", ")))
        .collect();
    format!("{member}: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_parts_differing_only_in_transition_time_are_the_same_health() {
        let at = |t: &str| {
            json!({"clusters": [{"cluster": "m1", "health": {"state": "Applied"}}],
                "conditions": [{"type": "Healthy", "status": "True", "reason": "Healthy",
                    "message": "healthy in m1", "lastTransitionTime": t}]})
        };
        let a = at("2026-12-06T15:00:00Z");
        let b = at("2026-12-06T15:00:02Z");
        assert_ne!(a, b);
        assert_eq!(
            digest(&without_transition_times(a.clone())),
            digest(&without_transition_times(b))
        );
        let mut unhealthy = a.clone();
        unhealthy["conditions"][0]["status"] = json!("False");
        assert_ne!(
            digest(&without_transition_times(a)),
            digest(&without_transition_times(unhealthy))
        );
    }

    #[test]
    fn written_entries_are_kept_per_object_and_member() {
        let key = |u: &str, m: &str| (u.to_string(), m.to_string());
        let drifted = Written {
            drift: Some(DriftStatus::default()),
            load_balancer: Vec::new(),
        };
        let mut w = WrittenEntries::default();
        w.insert(key("u", "m1"), Written::default());
        w.insert(key("u", "m2"), drifted.clone());
        w.insert(key("v", "m1"), drifted.clone());
        assert!(w.contains_key(&key("u", "m1")));
        assert!(w.get(&key("u", "m1")).is_some_and(|e| e.is_empty()));
        assert!(w.get(&key("u", "m2")) == Some(drifted.clone()));
        assert!(w.get(&key("u", "m3")).is_none());
        // Written again: replaced, not added.
        w.insert(key("u", "m2"), Written::default());
        assert_eq!(w.of("u").count(), 2);
        assert!(w.of("u").all(|(_, e)| e.is_empty()));
        w.remove(&key("u", "m1"));
        w.retain_members(&HashSet::from(["m1".to_string()]));
        assert!(!w.contains_key(&key("u", "m2")));
        assert_eq!(
            w.of("u").count(),
            0,
            "an object with no entries left is dropped"
        );
        w.retain_objects(&HashSet::new());
        assert!(w.0.is_empty());
    }
}
