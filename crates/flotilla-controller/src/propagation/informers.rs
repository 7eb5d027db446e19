//! Where Flotilla's copies are: one watch per (member, resource), shared by every host kind,
//! over the member objects carrying Flotilla's label. Each keeps a small projection per copy
//! ([`CopyMeta`]), not the object; every change it sees goes, whole, to the status syncer of
//! the kind the copy names, which judges it at once.
//!
//! Watches run on the member's watch client (a read timeout longer than the server's watch
//! timeout), so an idle watch stays up. A watch is restarted when the member's credentials
//! change, and when the member becomes Ready again only if it was failing. While a member is
//! unreachable its projections keep what they last saw.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use compact_str::CompactString;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio::task::JoinHandle;

use flotilla_api::labels::{FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE};

use super::origin::{CopyMeta, CopyType, Origin};
use crate::context::Context;
use crate::members::registry::RegistryEvent;

/// A change seen by a member's watch.
#[derive(Debug, Clone)]
pub enum CopyEvent {
    /// A copy was created or changed (also: listed again after a reconnect). `object` is the
    /// whole member object, without Flotilla's own managedFields entry.
    Applied {
        member: String,
        meta: CopyMeta,
        object: Arc<Value>,
    },
    /// A copy was deleted.
    Deleted { member: String, meta: CopyMeta },
    /// The member's copies of a resource were listed afresh: deletions missed while
    /// disconnected show now.
    Relisted { member: String },
}

/// Keyed by (namespace, name). Boxed: a table keeps spare slots as it grows, and a slot holds
/// only the key and a pointer.
type Projections = HashMap<CopyAt, Box<CopyMeta>>;
type CopyAt = (CompactString, CompactString);

fn copy_at(origin: &Origin) -> CopyAt {
    (
        origin.namespace.as_str().into(),
        origin.copy_name.as_str().into(),
    )
}

fn at_of(meta: &CopyMeta) -> CopyAt {
    (meta.namespace.clone(), meta.name.clone())
}
type Subscribers = Arc<RwLock<HashMap<&'static str, mpsc::Sender<CopyEvent>>>>;

/// Events in flight to one kind's syncer. Bounded: a watch waits for the syncer rather than
/// queue whole objects without limit. Listing 100,000 copies at start-up once queued them all,
/// and the operator's memory grew by gigabytes it never gave back.
const EVENTS_IN_FLIGHT: usize = 256;

struct Watch {
    client_generation: u64,
    copies: Arc<RwLock<Projections>>,
    listed: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn resource_key(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// The copy watches of every member.
#[derive(Default)]
pub struct CopyInformers {
    resources: RwLock<Vec<ApiResource>>,
    /// Keyed by (member, resource key).
    watches: RwLock<HashMap<(String, String), Watch>>,
    /// One receiver per host kind, shared with the watch tasks (a kind that subscribes later
    /// gets the events of watches already running).
    subscribers: Subscribers,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl CopyInformers {
    /// The events about copies of host kind `kind`.
    pub fn subscribe(&self, kind: &'static str) -> mpsc::Receiver<CopyEvent> {
        let (tx, rx) = mpsc::channel(EVENTS_IN_FLIGHT);
        write(&self.subscribers).insert(kind, tx);
        rx
    }

    /// Watches `resource` in every member from now on (once, however many kinds ask).
    pub fn watch_resource(&self, ctx: &Context, resource: ApiResource) {
        {
            let mut resources = write(&self.resources);
            if resources
                .iter()
                .any(|r| resource_key(r) == resource_key(&resource))
            {
                return;
            }
            resources.push(resource);
        }
        self.refresh_all(ctx, false);
    }

    /// `origin`'s copy in the member, as last seen.
    pub fn copy(&self, member: &str, resource: &ApiResource, origin: &Origin) -> Option<CopyMeta> {
        let watches = read(&self.watches);
        let watch = watches.get(&(member.to_string(), resource_key(resource)))?;
        let copies = read(&watch.copies);
        copies
            .get(&copy_at(origin))
            .filter(|m| m.is_copy_of(origin))
            .map(|m| CopyMeta::clone(m))
    }

    /// Whether the member's watch of `resource` has listed at least once.
    pub fn is_listed(&self, member: &str, resource: &ApiResource) -> bool {
        read(&self.watches)
            .get(&(member.to_string(), resource_key(resource)))
            .is_some_and(|w| w.listed.load(Ordering::Acquire))
    }

    /// Waits (at most `patience`) until every watch of `member` has listed; whether they have.
    pub async fn wait_listed(&self, member: &str, patience: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + patience;
        loop {
            let listed = {
                let resources = read(&self.resources);
                let watches = read(&self.watches);
                resources.iter().all(|r| {
                    watches
                        .get(&(member.to_string(), resource_key(r)))
                        .is_some_and(|w| {
                            // A member that does not serve a resource never lists it.
                            w.listed.load(Ordering::Acquire) || w.failing.load(Ordering::Acquire)
                        })
                })
            };
            if listed || tokio::time::Instant::now() >= until {
                return listed;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Members whose watch has listed and sees `origin`'s copy.
    pub fn members_with_copy(&self, resource: &ApiResource, origin: &Origin) -> Vec<String> {
        let key = resource_key(resource);
        let at = copy_at(origin);
        read(&self.watches)
            .iter()
            .filter(|((_, r), w)| {
                *r == key
                    && w.listed.load(Ordering::Acquire)
                    && read(&w.copies)
                        .get(&at)
                        .is_some_and(|m| m.is_copy_of(origin))
            })
            .map(|((m, _), _)| m.clone())
            .collect()
    }

    /// Every copy the member's listed watches see, with its resource (for the sweeper).
    pub fn copies_in(&self, member: &str) -> Vec<(ApiResource, CopyMeta)> {
        let resources = read(&self.resources).clone();
        let watches = read(&self.watches);
        resources
            .iter()
            .filter_map(|r| {
                let w = watches.get(&(member.to_string(), resource_key(r)))?;
                w.listed.load(Ordering::Acquire).then(|| {
                    read(&w.copies)
                        .values()
                        .map(|m| (r.clone(), CopyMeta::clone(m)))
                        .collect::<Vec<_>>()
                })
            })
            .flatten()
            .collect()
    }

    /// Follows the registry. Runs until the registry closes.
    pub async fn run(self: Arc<Self>, ctx: Arc<Context>) {
        let mut events = ctx.registry.subscribe();
        self.refresh_all(&ctx, false);
        loop {
            match events.recv().await {
                Ok(RegistryEvent::Changed(name)) if name.is_empty() => {
                    self.refresh_all(&ctx, false)
                }
                Ok(RegistryEvent::Changed(name)) => self.refresh(&ctx, &name, false),
                // A watch that kept up while the member was NotReady (a probe blip) has
                // missed nothing: only a failing one is restarted.
                Ok(RegistryEvent::BecameReady(name)) => self.refresh(&ctx, &name, true),
                Ok(RegistryEvent::BecameNotReady(_)) => {}
                Err(RecvError::Lagged(_)) => self.refresh_all(&ctx, false),
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn refresh_all(&self, ctx: &Context, restart_failing: bool) {
        let members = ctx.registry.snapshot();
        for member in &members {
            self.refresh(ctx, &member.name, restart_failing);
        }
        write(&self.watches).retain(|(m, _), _| members.iter().any(|x| &x.name == m));
    }

    /// (Re)starts the member's watches whose client changed, and failing ones when asked.
    fn refresh(&self, ctx: &Context, name: &str, restart_failing: bool) {
        let member = ctx.registry.get(name);
        let Some((client, generation)) = member
            .as_ref()
            // A second MemberCluster for a cluster another member holds is never watched.
            .filter(|m| m.duplicate_of.is_none())
            .and_then(|m| Some((m.watch_client.clone()?, m.client_generation)))
        else {
            write(&self.watches).retain(|(m, _), _| m != name);
            return;
        };
        let resources = read(&self.resources).clone();
        for resource in resources {
            let key = (name.to_string(), resource_key(&resource));
            let keep = read(&self.watches).get(&key).is_some_and(|w| {
                w.client_generation == generation
                    && !(restart_failing && w.failing.load(Ordering::Acquire))
            });
            if keep {
                continue;
            }
            let copies = Arc::new(RwLock::new(Projections::new()));
            let listed = Arc::new(AtomicBool::new(false));
            let failing = Arc::new(AtomicBool::new(false));
            let subscribers = self.subscribers.clone();
            let task = tokio::spawn(watch_member(WatchTask {
                ctx_metrics: ctx.metrics.clone(),
                type_: Arc::new(CopyType {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                }),
                resource: resource.clone(),
                member: name.to_string(),
                api: Api::all_with(client.clone(), &resource),
                copies: copies.clone(),
                listed: listed.clone(),
                failing: failing.clone(),
                subscribers,
            }));
            write(&self.watches).insert(
                key,
                Watch {
                    client_generation: generation,
                    copies,
                    listed,
                    failing,
                    task,
                },
            );
        }
    }
}

struct WatchTask {
    ctx_metrics: crate::metrics::Metrics,
    resource: ApiResource,
    /// The resource's group and kind, shared by every projection this watch keeps.
    type_: Arc<CopyType>,
    member: String,
    api: Api<DynamicObject>,
    copies: Arc<RwLock<Projections>>,
    listed: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    subscribers: Subscribers,
}

impl WatchTask {
    /// Hands the event to `kind`'s syncer, waiting while it is behind.
    async fn send(&self, kind: &str, event: CopyEvent) {
        let tx = read(&self.subscribers).get(kind).cloned();
        if let Some(tx) = tx {
            // A receiver is gone only at shutdown.
            let _ = tx.send(event).await;
        }
    }

    async fn applied(&self, meta: CopyMeta, object: Value) {
        let Some(kind) = meta.origin_kind else {
            return;
        };
        self.send(
            kind,
            CopyEvent::Applied {
                member: self.member.clone(),
                meta,
                object: Arc::new(object),
            },
        )
        .await;
    }

    async fn broadcast(&self, event: &CopyEvent) {
        let senders: Vec<_> = read(&self.subscribers).values().cloned().collect();
        for tx in senders {
            let _ = tx.send(event.clone()).await;
        }
    }

    /// The projection and the object as the syncer sees it: without Flotilla's own
    /// managedFields entry (drift is attributed to other managers only).
    fn project(&self, object: &DynamicObject) -> Option<(CopyMeta, Value)> {
        let mut value = serde_json::to_value(object).ok()?;
        // List items carry no type: the watch knows it.
        let meta = CopyMeta::with_type(&value, || self.type_.clone())?;
        if let Some(v) = value.as_object_mut() {
            v.insert(
                "apiVersion".into(),
                self.resource.api_version.clone().into(),
            );
            v.insert("kind".into(), self.resource.kind.clone().into());
        }
        if let Some(entries) = value
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            entries.retain(|e| e["manager"].as_str() != Some(FIELD_MANAGER));
        }
        Some((meta, value))
    }
}

/// Objects per page of a copy watch's list.
const COPY_LIST_PAGE: u32 = 100;

async fn watch_member(task: WatchTask) {
    // Pages of 100, not kube's 500: a page is held as whole decoded objects until projected,
    // and every member lists at once at start-up; the smaller peak leaves less of the heap
    // fragmented for good under the long-lived projections.
    let config = watcher::Config::default()
        .labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
        .page_size(COPY_LIST_PAGE);
    let mut events = watcher(task.api.clone(), config).default_backoff().boxed();
    let mut relisting: Option<Projections> = None;
    while let Some(event) = events.next().await {
        // `Init` comes before the list request, which may fail again (a kind this member does
        // not serve): only an answer counts as recovery.
        let answered = matches!(&event, Ok(e) if !matches!(e, watcher::Event::Init));
        if answered && task.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(member = %task.member, resource = %task.api.resource_url(), "copy watch recovered");
        }
        match event {
            Ok(watcher::Event::Init) => relisting = Some(Projections::new()),
            Ok(watcher::Event::InitApply(object)) => {
                if let Some((meta, value)) = task.project(&object) {
                    if let Some(listed) = relisting.as_mut() {
                        listed.insert(at_of(&meta), Box::new(meta.clone()));
                    }
                    task.applied(meta, value).await;
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(mut listed) = relisting.take() {
                    // Grown by doubling while listing: up to half of it would stay empty.
                    listed.shrink_to_fit();
                    *write(&task.copies) = listed;
                }
                task.listed.store(true, Ordering::Release);
                task.broadcast(&CopyEvent::Relisted {
                    member: task.member.clone(),
                })
                .await;
            }
            Ok(watcher::Event::Apply(object)) => {
                if let Some((meta, value)) = task.project(&object) {
                    write(&task.copies).insert(at_of(&meta), Box::new(meta.clone()));
                    task.applied(meta, value).await;
                } else if let (Some(ns), Some(name)) = (
                    object.metadata.namespace.clone(),
                    object.metadata.name.clone(),
                ) {
                    // The label was removed: no longer a copy.
                    write(&task.copies).remove(&(ns.into(), name.into()));
                }
            }
            Ok(watcher::Event::Delete(object)) => {
                if let Some((meta, _)) = task.project(&object) {
                    write(&task.copies).remove(&at_of(&meta));
                    let Some(kind) = meta.origin_kind else {
                        continue;
                    };
                    task.send(
                        kind,
                        CopyEvent::Deleted {
                            member: task.member.clone(),
                            meta,
                        },
                    )
                    .await;
                }
            }
            Err(e) => {
                task.ctx_metrics.watch_failed(&task.member);
                // Once per failure spell: a member that is down would otherwise log at every
                // retry of the watcher's backoff.
                if !task.failing.swap(true, Ordering::AcqRel) {
                    let error = super::truncate::message(&e.to_string());
                    tracing::warn!(member = %task.member, resource = %task.api.resource_url(), %error, "copy watch failed; retrying with backoff");
                }
            }
        }
    }
}
