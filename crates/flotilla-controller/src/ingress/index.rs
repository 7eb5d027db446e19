//! Where Flotilla's copies are: one label-selected watch per member over the Ingresses Flotilla
//! manages there, each feeding an in-memory store. Pruning asks it which members still hold a
//! copy (status alone can be stale), and every change it sees goes to the status syncer.
//!
//! A member's watch is restarted when its credentials change and when it becomes Ready again
//! (a fresh list, rather than waiting out the watcher's backoff). While a member is unreachable
//! its store keeps what it last saw: a copy there is still known to exist.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio::task::JoinHandle;

use flotilla_api::labels::{FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND};

use super::desired::{KIND, Origin, is_our_copy};
use crate::context::Context;
use crate::members::registry::RegistryEvent;

/// The label selector of every FederatedIngress copy.
pub fn copy_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE},{ORIGIN_KIND}={KIND}")
}

struct MemberWatch {
    client_generation: u64,
    store: Store<Ingress>,
    listed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for MemberWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A change seen by a member's watch, for the status syncer.
#[derive(Debug, Clone)]
pub enum CopyEvent {
    /// A copy was created or changed (also: listed again after a reconnect).
    Applied { member: String, copy: Arc<Ingress> },
    /// A copy was deleted.
    Deleted { member: String, copy: Arc<Ingress> },
    /// The member's copies were listed afresh: deletions missed while disconnected show now.
    Relisted { member: String },
}

/// The copies in every member.
pub struct CopyIndex {
    watches: RwLock<HashMap<String, MemberWatch>>,
    events: mpsc::UnboundedSender<CopyEvent>,
}

impl CopyIndex {
    /// The index, and the receiver of every change its watches see.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<CopyEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let index = Arc::new(Self {
            watches: RwLock::default(),
            events,
        });
        (index, rx)
    }

    /// Flotilla's copy of `origin` in the member, as last seen.
    pub fn copy(&self, member: &str, origin: &Origin) -> Option<Arc<Ingress>> {
        let key = ObjectRef::new(&origin.name).within(&origin.namespace);
        self.read()
            .get(member)
            .and_then(|w| w.store.get(&key))
            .filter(|i| {
                is_our_copy(
                    i.metadata.labels.as_ref(),
                    i.metadata.annotations.as_ref(),
                    origin,
                )
            })
    }

    /// Whether the member's watch has listed its copies at least once.
    pub fn is_listed(&self, member: &str) -> bool {
        self.read()
            .get(member)
            .is_some_and(|w| w.listed.load(Ordering::Acquire))
    }

    /// Members whose store holds Flotilla's copy of `origin`, and members whose store has not
    /// listed yet (they might). Pruning treats both as holding a copy.
    pub fn members_with_copy(&self, origin: &Origin) -> Vec<String> {
        let key = ObjectRef::new(&origin.name).within(&origin.namespace);
        self.read()
            .iter()
            .filter(|(_, w)| {
                !w.listed.load(Ordering::Acquire)
                    || w.store.get(&key).is_some_and(|i| {
                        is_our_copy(
                            i.metadata.labels.as_ref(),
                            i.metadata.annotations.as_ref(),
                            origin,
                        )
                    })
            })
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Whether the member's store has listed and holds Flotilla's copy of `origin`.
    pub fn has_copy(&self, member: &str, origin: &Origin) -> bool {
        let key = ObjectRef::new(&origin.name).within(&origin.namespace);
        self.read().get(member).is_some_and(|w| {
            w.listed.load(Ordering::Acquire)
                && w.store.get(&key).is_some_and(|i| {
                    is_our_copy(
                        i.metadata.labels.as_ref(),
                        i.metadata.annotations.as_ref(),
                        origin,
                    )
                })
        })
    }

    /// Follows the registry: a watch per member with a client. Runs until the registry closes.
    pub async fn run(self: Arc<Self>, ctx: Arc<Context>) {
        let mut events = ctx.registry.subscribe();
        self.refresh_all(&ctx, false);
        loop {
            match events.recv().await {
                Ok(RegistryEvent::Changed(name)) if name.is_empty() => {
                    self.refresh_all(&ctx, false)
                }
                Ok(RegistryEvent::Changed(name)) => self.refresh(&ctx, &name, false),
                Ok(RegistryEvent::BecameReady(name)) => self.refresh(&ctx, &name, true),
                Ok(RegistryEvent::BecameNotReady(_)) => {}
                Err(RecvError::Lagged(_)) => self.refresh_all(&ctx, false),
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn refresh_all(&self, ctx: &Context, restart: bool) {
        for member in ctx.registry.snapshot() {
            self.refresh(ctx, &member.name, restart);
        }
        let known: Vec<String> = self.read().keys().cloned().collect();
        for name in known {
            if ctx.registry.get(&name).is_none() {
                self.write().remove(&name);
            }
        }
    }

    /// (Re)starts the member's watch when its client changed, or when `restart` is asked.
    fn refresh(&self, ctx: &Context, name: &str, restart: bool) {
        let Some(member) = ctx.registry.get(name) else {
            self.write().remove(name);
            return;
        };
        let Some(client) = member.client.clone() else {
            self.write().remove(name);
            return;
        };
        let current = self.read().get(name).map(|w| w.client_generation);
        if current == Some(member.client_generation) && !restart {
            return;
        }
        let (store, writer) = reflector::store();
        let listed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch_member(
            name.to_string(),
            Api::all(client),
            writer,
            listed.clone(),
            self.events.clone(),
        ));
        self.write().insert(
            name.to_string(),
            MemberWatch {
                client_generation: member.client_generation,
                store,
                listed,
                task,
            },
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, MemberWatch>> {
        self.watches.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, MemberWatch>> {
        self.watches.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the managedFields entries of other managers only: drift is attributed to them, never to
/// Flotilla, and Flotilla's own entry (every field of the copy) is most of a cached copy.
fn drop_own_managed_fields(copy: &mut Ingress) {
    if let Some(entries) = copy.metadata.managed_fields.as_mut() {
        entries.retain(|e| e.manager.as_deref() != Some(FIELD_MANAGER));
    }
}

async fn watch_member(
    member: String,
    api: Api<Ingress>,
    writer: reflector::store::Writer<Ingress>,
    listed: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<CopyEvent>,
) {
    let config = watcher::Config::default().labels(&copy_selector());
    let mut events = watcher(api, config)
        .default_backoff()
        .modify(drop_own_managed_fields)
        .reflect(writer)
        .boxed();
    while let Some(event) = events.next().await {
        let member = member.clone();
        let forwarded = match event {
            Ok(watcher::Event::InitDone) => {
                listed.store(true, Ordering::Release);
                Some(CopyEvent::Relisted { member })
            }
            Ok(watcher::Event::Apply(copy) | watcher::Event::InitApply(copy)) => {
                Some(CopyEvent::Applied {
                    member,
                    copy: Arc::new(copy),
                })
            }
            Ok(watcher::Event::Delete(copy)) => Some(CopyEvent::Deleted {
                member,
                copy: Arc::new(copy),
            }),
            Ok(watcher::Event::Init) => None,
            Err(e) => {
                tracing::debug!(member, error = %e, "copy watch interrupted; retrying");
                None
            }
        };
        if let Some(event) = forwarded {
            // The syncer is gone only at shutdown.
            let _ = out.send(event);
        }
    }
}
