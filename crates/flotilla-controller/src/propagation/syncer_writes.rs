//! The status syncer's host writes, in the background: a copy event is judged and the next one
//! taken while the host answers. Ten members drifting at the same moment were ~20 host writes
//! awaited one after the other (the last shown ~290 ms after the edit); now they are in flight
//! together. Writes of one part of one object (a member's entry, the Drifted condition, the
//! health) go one at a time and in order, the newest winning ([`InOrder`]); a failed one is
//! retried with backoff while its object exists, so what the syncer remembers as written is what
//! the host will show. The Drifted condition, a summary of the entries, is written
//! [`CONDITION_DELAY`] after the change that asks for it: several members' drift of one object
//! (one script run against every cluster) is then one condition write, and the entries, which
//! say what changed where, reach the host first.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::in_order::{InOrder, Next};
use super::{Engine, Propagated, truncate};
use crate::digest::digest;

/// The field manager of the Drifted condition.
const CONDITION_MANAGER: &str = "flotilla-drift";
/// The field manager of the Healthy condition and the copies' health.
const HEALTH_MANAGER: &str = "flotilla-health";
/// Writes in flight at once, per kind of part: health flushes come in batches, and must not hold
/// up drift writes behind them.
const HEALTH_WRITES: usize = 8;
const DRIFT_WRITES: usize = 8;
/// How long a Drifted condition write waits for more changes of its object.
const CONDITION_DELAY: Duration = Duration::from_millis(250);

/// The field manager of one member's status entry.
pub fn entry_manager(member: &str) -> String {
    format!("flotilla-syncer.{member}")
}

/// A part of a host object's status the syncer writes, each under a field manager of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// One member's entry: its drift and its kind's status projection.
    Entry(String),
    /// The Drifted condition.
    Drifted,
    /// Every placed copy's health and the Healthy condition.
    Health,
}

impl Part {
    fn manager(&self) -> String {
        match self {
            Part::Entry(member) => entry_manager(member),
            Part::Drifted => CONDITION_MANAGER.to_string(),
            Part::Health => HEALTH_MANAGER.to_string(),
        }
    }
}

type Key = (String, Part); // (host object uid, part)

struct Write<K> {
    obj: Arc<K>,
    status: Arc<Value>,
}

impl<K> Clone for Write<K> {
    fn clone(&self) -> Self {
        Self {
            obj: self.obj.clone(),
            status: self.status.clone(),
        }
    }
}

/// How a write in the background ended.
pub struct Finished {
    key: Key,
    outcome: Outcome,
}

#[derive(PartialEq)]
enum Outcome {
    Landed,
    Failed,
    /// The object is gone (or going): nothing to write any more.
    Gone,
    /// A delayed write's time has come.
    Due,
}

pub struct SyncerWrites<K: Propagated> {
    engine: Arc<Engine>,
    objects: Store<K>,
    queue: InOrder<Key, Write<K>>,
    /// Writes waiting out [`CONDITION_DELAY`]; a newer one replaces the one waiting.
    delayed: HashMap<Key, Write<K>>,
    done: mpsc::UnboundedSender<Finished>,
    health_slots: Arc<Semaphore>,
    drift_slots: Arc<Semaphore>,
}

impl<K: Propagated> SyncerWrites<K> {
    /// The writer, and the channel its finished writes come back on (to hand to [`Self::finished`]).
    pub fn new(
        engine: Arc<Engine>,
        objects: Store<K>,
    ) -> (Self, mpsc::UnboundedReceiver<Finished>) {
        let (done, finished) = mpsc::unbounded_channel();
        let writes = Self {
            engine,
            objects,
            queue: InOrder::default(),
            delayed: HashMap::new(),
            done,
            health_slots: Arc::new(Semaphore::new(HEALTH_WRITES)),
            drift_slots: Arc::new(Semaphore::new(DRIFT_WRITES)),
        };
        (writes, finished)
    }

    /// Writes `status` as `part` of `obj`'s status (server-side apply, forced, under the part's
    /// field manager), after any earlier write of the same part.
    pub fn write(&mut self, obj: &Arc<K>, uid: &str, part: Part, status: Value) {
        let key = (uid.to_string(), part);
        let write = Write {
            obj: obj.clone(),
            status: Arc::new(status),
        };
        if key.1 == Part::Drifted {
            if self.delayed.insert(key.clone(), write).is_none() {
                let done = self.done.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(CONDITION_DELAY).await;
                    let _ = done.send(Finished {
                        key,
                        outcome: Outcome::Due,
                    });
                });
            }
            return;
        }
        self.offer(key, write);
    }

    fn offer(&mut self, key: Key, write: Write<K>) {
        if let Some(write) = self.queue.offer(key.clone(), digest(&write.status), write) {
            self.send(key, write, None);
        }
    }

    /// A write finished: sends what waited for it, or retries it.
    pub fn finished(&mut self, f: Finished) {
        if f.outcome == Outcome::Due {
            if let Some(write) = self.delayed.remove(&f.key) {
                self.offer(f.key, write);
            }
            return;
        }
        if f.outcome == Outcome::Gone {
            self.queue.forget(&f.key);
            return;
        }
        match self.queue.finished(&f.key, f.outcome == Outcome::Landed) {
            Next::Idle => {}
            Next::Send(write) => self.send(f.key, write, None),
            Next::Retry(write, after) => self.send(f.key, write, Some(after)),
        }
    }

    /// Drops what waits for objects that are gone.
    pub fn retain_objects(&mut self, live: &HashSet<String>) {
        self.queue.retain(|(uid, _)| live.contains(uid));
        self.delayed.retain(|(uid, _), _| live.contains(uid));
    }

    fn send(&self, key: Key, write: Write<K>, after: Option<Duration>) {
        let slots = match key.1 {
            Part::Health => self.health_slots.clone(),
            Part::Entry(_) | Part::Drifted => self.drift_slots.clone(),
        };
        let (engine, objects, done) =
            (self.engine.clone(), self.objects.clone(), self.done.clone());
        tokio::spawn(async move {
            if let Some(after) = after {
                tokio::time::sleep(after).await;
            }
            let reference = ObjectRef::from_obj(write.obj.as_ref());
            let outcome = if crate::store::live(&objects, &reference, &key.0).is_none() {
                Outcome::Gone
            } else {
                let _slot = slots.acquire_owned().await;
                let manager = key.1.manager();
                write_status(&engine, write.obj.as_ref(), &manager, &write.status).await
            };
            let _ = done.send(Finished { key, outcome });
        });
    }
}

/// Applies `status` to `obj` under `manager`.
async fn write_status<K: Propagated>(
    engine: &Engine,
    obj: &K,
    manager: &str,
    status: &Value,
) -> Outcome {
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let api = K::host_api(
        engine.ctx.host.clone(),
        &obj.namespace().unwrap_or_default(),
    );
    let written = engine
        .ctx
        .lease
        .fence(api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        ))
        .await;
    let Ok(written) = written else {
        return Outcome::Failed;
    };
    match written {
        Ok(_) => {
            engine
                .ctx
                .metrics
                .status_written("syncer", patch.to_string().len());
            Outcome::Landed
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Gone,
        Err(e) => {
            // Rate-limited like member failures: a host that refuses every write retries them all.
            let error = e.to_string();
            if let Some(suppressed) = engine.log_limit.admit("host", &error) {
                let error = truncate::message(&error);
                tracing::warn!(object = %obj.name_any(), manager, suppressed, %error, "could not write status; retrying with backoff");
            }
            Outcome::Failed
        }
    }
}
