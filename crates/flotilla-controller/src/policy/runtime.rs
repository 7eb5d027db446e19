//! The policy controller's I/O: watches the policies, the host objects of the kinds they select
//! (one watch per kind, started and stopped as policies change), and the records it generated;
//! on any change (debounced) it plans ([`super::plan`]) and applies the difference: records
//! created or updated by server-side apply, records no longer wanted deleted (the engine then
//! cleans up their member copies per their deletion policy), and each policy's status. Level
//! based: a restart or a missed event is repaired by the next pass, and every 30 s.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions,
};
use kube::discovery::oneshot;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;

use flotilla_api::federated_object::{ClusterFederatedObjectSpec, FederatedObjectSpec};
use flotilla_api::propagation_policy::{PolicySpec, PolicyStatus};
use flotilla_api::{
    ClusterFederatedObject, ClusterPropagationPolicy, FederatedObject, PropagationPolicy,
};

use super::dependencies;
use super::expectations::Expectations;
use super::plan::{
    DEPENDENCIES_ANNOTATION, GENERATED_BY, GENERATED_BY_VALUE, HostObject, POLICY_ANNOTATION,
    Policy, Record, SOURCE_ANNOTATION, plan,
};
use crate::conditions::{NewCondition, set_condition};
use crate::context::Context;
use crate::propagation::truncate;

/// The field manager of generated records.
const MANAGER: &str = "flotilla-policy";
/// Changes arriving within this long are planned together.
const DEBOUNCE: Duration = Duration::from_millis(200);
const RESYNC: Duration = Duration::from_secs(30);
/// Record writes in flight at once.
const WRITES: usize = 16;

/// One host kind's watch.
struct NativeWatch {
    resource: ApiResource,
    store: Store<DynamicObject>,
    listed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NativeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send) {
    let changed = Arc::new(Notify::new());
    let namespaced = typed_store::<PropagationPolicy>(&ctx, None, &changed, |_| {});
    let cluster = typed_store::<ClusterPropagationPolicy>(&ctx, None, &changed, |_| {});
    let selector = format!("{GENERATED_BY}={GENERATED_BY_VALUE}");
    // Of its records the planner reads metadata and spec: their status (the engine's, a
    // placement verdict and a copy entry per member) would only take memory here.
    let records = typed_store::<FederatedObject>(&ctx, Some(&selector), &changed, |o| {
        o.status = None;
    });
    let cluster_records =
        typed_store::<ClusterFederatedObject>(&ctx, Some(&selector), &changed, |o| {
            o.status = None;
        });
    let mut watches: HashMap<(String, String), NativeWatch> = HashMap::new();
    let mut kind_errors: HashMap<(String, String), String> = HashMap::new();
    let mut expectations: Expectations<RecordKey> = Expectations::default();
    let mut resync = tokio::time::interval(RESYNC);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = resync.tick() => {}
            () = &mut shutdown => return,
        }
        if !(namespaced.1.load(Ordering::Acquire)
            && cluster.1.load(Ordering::Acquire)
            && records.1.load(Ordering::Acquire)
            && cluster_records.1.load(Ordering::Acquire))
        {
            continue;
        }
        let pps = namespaced.0.state();
        let cpps = cluster.0.state();
        let policies: Vec<Policy> = pps
            .iter()
            .map(|p| Policy {
                kind: flotilla_api::propagation_policy::KIND,
                namespace: p.metadata.namespace.as_deref(),
                name: p.metadata.name.as_deref().unwrap_or_default(),
                spec: &p.spec.policy,
            })
            .chain(cpps.iter().map(|p| Policy {
                kind: flotilla_api::propagation_policy::CLUSTER_KIND,
                namespace: None,
                name: p.metadata.name.as_deref().unwrap_or_default(),
                spec: &p.spec.policy,
            }))
            .collect();

        // The host kinds the policies need watched.
        let wanted = wanted_kinds(&policies, &ctx);
        watches.retain(|k, _| wanted.contains_key(k));
        for (key, gvk) in &wanted {
            if watches.contains_key(key) {
                continue;
            }
            match oneshot::pinned_kind(&ctx.host, gvk).await {
                Ok((resource, _)) => {
                    kind_errors.remove(key);
                    watches.insert(key.clone(), native_watch(&ctx, resource, &changed));
                }
                Err(e) => {
                    kind_errors.insert(
                        key.clone(),
                        truncate::message(&format!(
                            "the host does not serve {} {}: {e}",
                            gvk.api_version(),
                            gvk.kind
                        )),
                    );
                }
            }
        }
        let listed: HashSet<(String, String)> = watches
            .iter()
            .filter(|(_, w)| w.listed.load(Ordering::Acquire))
            .map(|(k, _)| k.clone())
            .collect();
        let states: Vec<(ApiResource, Vec<Arc<DynamicObject>>)> = watches
            .iter()
            .filter(|(k, _)| listed.contains(*k))
            .map(|(_, w)| (w.resource.clone(), w.store.state()))
            .collect();
        let values: Vec<(String, String, Value)> = states
            .iter()
            .flat_map(|(r, objects)| {
                objects.iter().filter_map(|o| {
                    Some((
                        r.api_version.clone(),
                        r.kind.clone(),
                        serde_json::to_value(o.as_ref()).ok()?,
                    ))
                })
            })
            .collect();
        let objects: Vec<HostObject> = values
            .iter()
            .map(|(api_version, kind, value)| HostObject {
                api_version,
                kind,
                value,
            })
            .collect();
        let planned = plan(&policies, &objects, &ctx.federated_kinds);

        // Apply the difference.
        let existing = existing_records(&records.0, &cluster_records.0);
        let desired: HashSet<(String, Option<String>, String)> = planned
            .records
            .iter()
            .map(|r| (r.kind.to_string(), r.namespace.clone(), r.name.clone()))
            .collect();
        let now = Instant::now();
        expectations.expire(now);
        let mut to_write: Vec<(RecordKey, Record, Option<String>)> = Vec::new();
        for r in &planned.records {
            let key = (r.kind.to_string(), r.namespace.clone(), r.name.clone());
            let stored = existing.get(&key);
            if stored.is_some_and(|e| same(r, e)) {
                continue;
            }
            let version = stored.and_then(|e| e.resource_version.as_deref());
            if expectations.in_flight(&key, &r.object, version, now) {
                continue;
            }
            to_write.push((key, r.clone(), stored.and_then(|e| e.uid.clone())));
        }
        let writes: Vec<_> = to_write
            .into_iter()
            .map(|(key, r, ours)| {
                let ctx = ctx.clone();
                async move {
                    let written = apply_record(&ctx, &r, ours).await;
                    (key, r, written)
                }
            })
            .collect();
        let mut conflicts: HashMap<String, Vec<String>> = HashMap::new();
        let results: Vec<_> = futures::stream::iter(writes)
            .buffer_unordered(WRITES)
            .collect()
            .await;
        let now = Instant::now();
        for (key, r, written) in results {
            match written {
                Ok(version) => expectations.wrote(key, &r.object, version, now),
                Err((policy, message)) => conflicts.entry(policy).or_default().push(message),
            }
        }
        let policy_ids: HashSet<String> = policies.iter().map(Policy::id).collect();
        let mut to_delete: Vec<(RecordKey, Option<String>)> = Vec::new();
        for (k, e) in &existing {
            // Only what is known to be unwanted: the policy is gone, or the object's kind is
            // listed and the plan does not want it (never on a kind still listing).
            if !desired.contains(k)
                && (!policy_ids.contains(&e.policy) || listed.contains(&e.source_kind))
            {
                to_delete.push((k.clone(), e.uid.clone()));
            }
        }
        let deletions: Vec<_> = to_delete
            .into_iter()
            .map(|((kind, ns, name), uid)| {
                let ctx = ctx.clone();
                async move { delete_record(&ctx, &kind, ns.as_deref(), &name, uid).await }
            })
            .collect();
        futures::stream::iter(deletions)
            .buffer_unordered(WRITES)
            .collect::<Vec<()>>()
            .await;

        // Each policy's status.
        let report = Report {
            ctx: &ctx,
            outcomes: &planned.outcomes,
            conflicts: &conflicts,
            kind_errors: &kind_errors,
        };
        for p in &pps {
            let api = Api::namespaced(ctx.host.clone(), &p.namespace().unwrap_or_default());
            report
                .policy(
                    api,
                    p.as_ref(),
                    flotilla_api::propagation_policy::KIND,
                    &p.spec.policy,
                    p.status.as_ref(),
                )
                .await;
        }
        for p in &cpps {
            let api = Api::all(ctx.host.clone());
            report
                .policy(
                    api,
                    p.as_ref(),
                    flotilla_api::propagation_policy::CLUSTER_KIND,
                    &p.spec.policy,
                    p.status.as_ref(),
                )
                .await;
        }
    }
}

/// What a pass found, for the policies' statuses.
struct Report<'a> {
    ctx: &'a Context,
    outcomes: &'a HashMap<String, super::plan::Outcome>,
    conflicts: &'a HashMap<String, Vec<String>>,
    kind_errors: &'a HashMap<(String, String), String>,
}

impl Report<'_> {
    /// Writes one policy's status, when it changed.
    async fn policy<K>(
        &self,
        api: Api<K>,
        p: &K,
        kind: &'static str,
        spec: &PolicySpec,
        before: Option<&PolicyStatus>,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Serialize,
    {
        let name = p.meta().name.clone().unwrap_or_default();
        let id = Policy {
            kind,
            namespace: p.meta().namespace.as_deref(),
            name: &name,
            spec,
        }
        .id();
        let status = policy_status(
            before,
            p.meta().generation,
            spec,
            self.outcomes.get(&id),
            self.conflicts.get(&id),
            self.kind_errors,
        );
        write_status(self.ctx, &api, &name, before, status).await;
    }
}

/// A reflector of `K` (optionally label-filtered) that notifies `changed`; and whether it has
/// listed. Stored objects have no managed fields, and whatever else `trim` takes out.
fn typed_store<K>(
    ctx: &Context,
    labels: Option<&str>,
    changed: &Arc<Notify>,
    mut trim: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, Arc<AtomicBool>)
where
    K: crate::store::WatchedKind,
{
    let (reader, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let mut config = watcher::Config::default();
    if let Some(l) = labels {
        config = config.labels(l);
    }
    let stream = watcher(Api::<K>::all(ctx.host.clone()), config)
        .default_backoff()
        .modify(move |o| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    follow(stream, listed.clone(), changed.clone());
    (reader, listed)
}

/// Drives a reflector's stream: marks it listed, and notifies `changed` on every change.
fn follow<K, S>(
    stream: S,
    listed: Arc<AtomicBool>,
    changed: Arc<Notify>,
) -> tokio::task::JoinHandle<()>
where
    K: Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::InitDone) = event {
                listed.store(true, Ordering::Release);
            }
            if matches!(
                event,
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_))
            ) {
                changed.notify_one();
            }
        }
    })
}

fn native_watch(ctx: &Context, resource: ApiResource, changed: &Arc<Notify>) -> NativeWatch {
    let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
    let store = writer.as_reader();
    let listed = Arc::new(AtomicBool::new(false));
    let api = Api::<DynamicObject>::all_with(ctx.host.clone(), &resource);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    let task = follow(stream, listed.clone(), changed.clone());
    NativeWatch {
        resource,
        store,
        listed,
        task,
    }
}

/// (group, kind) → the version to watch, for every valid policy's selectors (and the dependency
/// kinds when a policy propagates dependencies).
fn wanted_kinds(policies: &[Policy], ctx: &Context) -> HashMap<(String, String), GroupVersionKind> {
    let mut out = HashMap::new();
    for p in policies {
        if super::plan::validate(p, &ctx.federated_kinds).is_some() {
            continue;
        }
        for s in &p.spec.resource_selectors {
            let (group, version) = s
                .api_version
                .rsplit_once('/')
                .unwrap_or(("", s.api_version.as_str()));
            out.entry((group.to_string(), s.kind.clone()))
                .or_insert_with(|| GroupVersionKind::gvk(group, version, &s.kind));
        }
        if p.spec.propagate_dependencies {
            // Only allowlisted kinds: the host RBAC grants reading those and no others.
            for kind in dependencies::KINDS
                .iter()
                .filter(|k| ctx.federated_kinds.allows("", k))
            {
                out.entry((String::new(), kind.to_string()))
                    .or_insert_with(|| GroupVersionKind::gvk("", "v1", kind));
            }
        }
    }
    out
}

/// A record that exists, as far as the diff needs it.
struct Existing {
    spec: Value,
    annotations: std::collections::BTreeMap<String, String>,
    owner_uid: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    policy: String,
    /// (group, kind) of the object it was generated from.
    source_kind: (String, String),
}

type RecordKey = (String, Option<String>, String);

fn existing_records(
    records: &Store<FederatedObject>,
    cluster: &Store<ClusterFederatedObject>,
) -> HashMap<RecordKey, Existing> {
    fn entry<K: Resource<DynamicType = ()>>(o: &K, spec: Value) -> (RecordKey, Existing) {
        let meta = o.meta();
        let annotations = meta.annotations.clone().unwrap_or_default();
        let source = annotations
            .get(SOURCE_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let mut words = source.split(' ');
        let api_version = words.next().unwrap_or_default();
        let kind = words.next().unwrap_or_default().to_string();
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        (
            (
                K::kind(&()).into_owned(),
                meta.namespace.clone(),
                meta.name.clone().unwrap_or_default(),
            ),
            Existing {
                spec,
                policy: annotations
                    .get(POLICY_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                annotations,
                owner_uid: meta
                    .owner_references
                    .as_ref()
                    .and_then(|o| o.first())
                    .map(|o| o.uid.clone()),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                source_kind: (group, kind),
            },
        )
    }
    records
        .state()
        .iter()
        .map(|o| {
            entry(
                o.as_ref(),
                serde_json::to_value(&o.spec).unwrap_or_default(),
            )
        })
        .chain(cluster.state().iter().map(|o| {
            entry(
                o.as_ref(),
                serde_json::to_value(&o.spec).unwrap_or_default(),
            )
        }))
        .collect()
}

/// Whether the record exists as planned (spec read through the type, so defaults compare equal).
fn same(r: &Record, e: &Existing) -> bool {
    let spec = r.object.get("spec").cloned().unwrap_or_default();
    let normalized = if r.kind == flotilla_api::federated_object::KIND {
        serde_json::from_value::<FederatedObjectSpec>(spec)
            .ok()
            .and_then(|s| serde_json::to_value(s).ok())
    } else {
        serde_json::from_value::<ClusterFederatedObjectSpec>(spec)
            .ok()
            .and_then(|s| serde_json::to_value(s).ok())
    };
    let text = |k: &str| {
        r.object
            .pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
    };
    normalized.as_ref() == Some(&e.spec)
        && text(POLICY_ANNOTATION) == e.annotations.get(POLICY_ANNOTATION).map(String::as_str)
        && text(SOURCE_ANNOTATION) == e.annotations.get(SOURCE_ANNOTATION).map(String::as_str)
        && text(DEPENDENCIES_ANNOTATION)
            == e.annotations
                .get(DEPENDENCIES_ANNOTATION)
                .map(String::as_str)
        && r.object
            .pointer("/metadata/ownerReferences/0/uid")
            .and_then(Value::as_str)
            == e.owner_uid.as_deref()
}

fn record_api(ctx: &Context, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = if kind == flotilla_api::federated_object::KIND {
        ApiResource::erase::<FederatedObject>(&())
    } else {
        ApiResource::erase::<ClusterFederatedObject>(&())
    };
    match namespace {
        Some(ns) => Api::namespaced_with(ctx.host.clone(), ns, &resource),
        None => Api::all_with(ctx.host.clone(), &resource),
    }
}

/// Creates or updates a record; the resourceVersion written, or `Err((policy, why))` when it
/// cannot (a user's own object of that name is in the way, or the host refused). `ours`: the uid
/// of the generated record the watch has under that name, if any.
async fn apply_record(
    ctx: &Context,
    r: &Record,
    ours: Option<String>,
) -> Result<Option<String>, (String, String)> {
    let api = record_api(ctx, r.kind, r.namespace.as_deref());
    let fail = |m: String| Err((r.policy.clone(), truncate::message(&m)));
    let mut object = std::borrow::Cow::Borrowed(&r.object);
    match ours {
        // A record this controller generated: updated only if it is still that object (the
        // uid is the apply's precondition; it is not a field anyone owns), so no read first.
        Some(uid) => object.to_mut()["metadata"]["uid"] = json!(uid),
        // Never take over an object of that name that no policy generated.
        None => match api.get_metadata_opt(&r.name).await {
            Ok(Some(o))
                if o.labels().get(GENERATED_BY).map(String::as_str) != Some(GENERATED_BY_VALUE) =>
            {
                return fail(format!(
                    "{} {} exists and was not generated by a policy; its object is not propagated",
                    r.kind, r.name
                ));
            }
            Err(e) => return fail(format!("reading {} {}: {e}", r.kind, r.name)),
            _ => {}
        },
    }
    match ctx
        .lease
        .fence(api.patch(
            &r.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object.as_ref()),
        ))
        .await
    {
        Ok(Ok(written)) => Ok(written.metadata.resource_version),
        Ok(Err(e)) => fail(format!("writing {} {}: {e}", r.kind, r.name)),
        Err(_) => Ok(None),
    }
}

async fn delete_record(
    ctx: &Context,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    uid: Option<String>,
) {
    let api = record_api(ctx, kind, namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Ok(Err(e)) = ctx.lease.fence(api.delete(name, &params)).await
        && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
    {
        tracing::warn!(kind, name, error = %truncate::message(&e.to_string()), "could not delete a policy record");
    }
}

fn policy_status(
    before: Option<&PolicyStatus>,
    generation: Option<i64>,
    spec: &PolicySpec,
    outcome: Option<&super::plan::Outcome>,
    conflicts: Option<&Vec<String>>,
    kind_errors: &HashMap<(String, String), String>,
) -> PolicyStatus {
    let outcome = outcome.cloned().unwrap_or_default();
    let unserved: Vec<&String> = spec
        .resource_selectors
        .iter()
        .filter_map(|s| {
            let group = s.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            kind_errors.get(&(group.to_string(), s.kind.clone()))
        })
        .collect();
    let (ready, reason, message) = if let Some((reason, message)) = &outcome.invalid {
        (false, *reason, message.clone())
    } else if !unserved.is_empty() {
        (
            false,
            "KindNotServed",
            unserved
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else if let Some(c) = conflicts {
        (false, "RecordConflict", c.join("; "))
    } else {
        (
            true,
            "Propagating",
            format!("{} object(s) propagated", outcome.matched),
        )
    };
    let mut conditions = before.map(|s| s.conditions.clone()).unwrap_or_default();
    set_condition(
        &mut conditions,
        NewCondition {
            type_: "Ready",
            status: ready,
            reason,
            message: truncate::message(&message),
            observed_generation: generation,
        },
        Time(jiff::Timestamp::now()),
    );
    PolicyStatus {
        observed_generation: generation,
        conditions,
        matched: outcome.matched,
        overridden: outcome.overridden,
    }
}

async fn write_status<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    before: Option<&PolicyStatus>,
    status: PolicyStatus,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Serialize,
{
    if before == Some(&status) {
        return;
    }
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    let params = PatchParams::apply(flotilla_api::labels::FIELD_MANAGER).force();
    if let Ok(Err(e)) = ctx
        .lease
        .fence(api.patch_status(name, &params, &Patch::Apply(&patch)))
        .await
    {
        tracing::warn!(name, error = %truncate::message(&e.to_string()), "could not write a policy's status");
    } else {
        ctx.metrics
            .status_written("policy", patch.to_string().len());
    }
}
