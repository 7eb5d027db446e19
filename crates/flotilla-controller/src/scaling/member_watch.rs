//! One watch per member of one kind, shared by every ScalingPolicy (as the HPA controller shares
//! its informers): what a policy needs of the members' HPAs and pods costs no request of its
//! own. A watch starts the first time a policy asks about a member, restarts when the member's
//! client changes, and stops when the member is gone.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use crate::members::registry::Member;

struct Watch<K: Resource<DynamicType = ()> + 'static> {
    client_generation: u64,
    store: Store<K>,
    /// Set once the first list is in the store.
    listed: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl<K: Resource<DynamicType = ()>> Drop for Watch<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches of one kind in every member that was asked about.
pub(super) struct MemberWatches<K: Resource<DynamicType = ()> + 'static> {
    watches: Mutex<HashMap<String, Watch<K>>>,
    /// Keeps only what readers use of each object (the stores hold every object of the member).
    trim: fn(&mut K),
}

impl<K> MemberWatches<K>
where
    K: crate::store::WatchedKind,
{
    pub fn new(trim: fn(&mut K)) -> Self {
        Self {
            watches: Mutex::default(),
            trim,
        }
    }

    /// `member`'s store of the kind; `None` until its watch has listed once (the caller then
    /// asks the member directly). Starts or restarts the watch as needed.
    pub fn store(&self, member: &Member) -> Option<Store<K>> {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let watch = match watches.get(&member.name) {
            Some(w) if w.client_generation == member.client_generation => w,
            _ => {
                let client = member
                    .watch_client
                    .clone()
                    .or_else(|| member.client.clone())?;
                let watch = start(client, &member.name, member.client_generation, self.trim);
                watches.insert(member.name.clone(), watch);
                watches.get(&member.name)?
            }
        };
        watch
            .listed
            .load(Ordering::Acquire)
            .then(|| watch.store.clone())
    }

    /// Stops the watches of members that are gone.
    pub fn retain(&self, members: &[Member]) {
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| members.iter().any(|m| &m.name == name));
    }
}

fn start<K>(client: Client, member: &str, client_generation: u64, trim: fn(&mut K)) -> Watch<K>
where
    K: crate::store::WatchedKind,
{
    let api: Api<K> = Api::all(client);
    let (store, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let seen = listed.clone();
    let member = member.to_string();
    let task = tokio::spawn(async move {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .for_each(|event| {
                match &event {
                    Ok(watcher::Event::InitDone) => seen.store(true, Ordering::Release),
                    Err(e) => {
                        tracing::debug!(member = %member, kind = %K::kind(&()), error = %e, "member watch failed; retrying");
                    }
                    _ => {}
                }
                futures::future::ready(())
            })
            .await;
    })
    .abort_handle();
    Watch {
        client_generation,
        store,
        listed,
        task,
    }
}
