//! The members' HorizontalPodAutoscalers, watched once per member and shared by every
//! ScalingPolicy: a policy asks which HPAs target its workload without a request of its own, so
//! the cost at rest does not grow with policies × members. A watch starts the first time a
//! policy asks about a member, restarts when the member's client changes, and stops when the
//! member is gone.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::spec::Target;
use crate::members::registry::Member;

struct Watch {
    client_generation: u64,
    store: Store<HorizontalPodAutoscaler>,
    /// Set once the first list is in the store.
    listed: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Shared by the controller's reconciles.
#[derive(Default)]
pub(super) struct MemberHpas {
    watches: Mutex<HashMap<String, Watch>>,
}

impl MemberHpas {
    /// The HPAs in `namespace` of `member` whose `scaleTargetRef` is `target`, as
    /// `namespace/name`; `None` until the member's watch has listed once (the caller then asks
    /// the member directly).
    pub fn targeting(
        &self,
        member: &Member,
        namespace: &str,
        target: &Target,
    ) -> Option<Vec<String>> {
        let client = member
            .watch_client
            .clone()
            .or_else(|| member.client.clone())?;
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let watch = match watches.get(&member.name) {
            Some(w) if w.client_generation == member.client_generation => w,
            _ => {
                watches.insert(
                    member.name.clone(),
                    start(client, &member.name, member.client_generation),
                );
                watches.get(&member.name)?
            }
        };
        if !watch.listed.load(Ordering::Acquire) {
            return None;
        }
        let mut found: Vec<String> = watch
            .store
            .state()
            .iter()
            .filter(|h| h.namespace().as_deref() == Some(namespace))
            .filter(|h| {
                h.spec
                    .as_ref()
                    .is_some_and(|s| super::member::targets(&s.scale_target_ref, target))
            })
            .map(|h| format!("{namespace}/{}", h.name_any()))
            .collect();
        found.sort();
        Some(found)
    }

    /// Stops the watches of members that are gone.
    pub fn retain(&self, members: &[Member]) {
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| members.iter().any(|m| &m.name == name));
    }
}

fn start(client: Client, member: &str, client_generation: u64) -> Watch {
    let api: Api<HorizontalPodAutoscaler> = Api::all(client);
    let (store, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let seen = listed.clone();
    let member = member.to_string();
    let task = tokio::spawn(async move {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|event| {
                match &event {
                    Ok(watcher::Event::InitDone) => seen.store(true, Ordering::Release),
                    Err(e) => {
                        tracing::debug!(member = %member, error = %e, "member HPA watch failed; retrying");
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
