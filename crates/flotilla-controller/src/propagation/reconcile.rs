//! The engine's reconcile of one host object, for any kind: place it with the placement engine,
//! apply its copies to the selected members, remove copies where it is no longer placed, and
//! report. dereference → validate → build (pure) → apply (per member, in its lane) → status.
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;

use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::policies::{DeletionPolicy, DriftMode};
use flotilla_api::propagation::{CopyState, PropagationStatus};
use flotilla_placement::{DecisionInput, ObjectNamespace, decide};

use super::kinds::Resolution;
use super::member_ops::{Adoption, ApplyOutcome, RemoveOutcome, apply_copy, remove_copy};
use super::origin::Origin;
use super::render::desired_copy;
use super::status::{self, ClusterResult, Observed};
use super::{Engine, Placed, Propagated, triggers};
use crate::conditions::{NewCondition, set_condition};
use crate::error::{Error, Result};
use crate::finalizer;
use crate::placement_change::PlacementChange;
use crate::placement_input::{
    inventory, next_failback, placement_spec, previous, timestamp, to_status,
};
use crate::scaled_targets::TargetKey;
use crate::status_apply::apply_status;

const RESYNC: Duration = Duration::from_secs(300);
/// The longest one reconcile may take. Member requests have deadlines of their own (the lanes),
/// host requests only the client's read timeout (minutes): a host that stops answering one
/// request would hold a worker that long, and enough such reconciles would hold every worker,
/// so that no object is reconciled until the host answers. Past this the reconcile is
/// abandoned (each of its steps is idempotent) and retried with backoff.
const RECONCILE_DEADLINE: Duration = Duration::from_secs(60);
/// A 409 means the object changed under the reconcile; its watch brings the new version at once.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);
/// How soon an object waiting for a member's first probe is looked at again.
const PROBE_WAIT: Duration = Duration::from_millis(250);
/// After this long waiting for a member's first probe, the object says so in its status.
const PROBE_PATIENCE: Duration = Duration::from_secs(2);
/// First and longest retry of an object whose copies failed: doubled per failure, with jitter.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The longest wait of an object whose kind a member does not serve yet (its CRD may be
/// established any moment), or whose copy conflicts with a member's own object (which may be
/// removed or annotated adoptable any moment).
const KIND_WAIT_MAX: Duration = Duration::from_secs(30);

/// What the reconciler of one kind works with.
pub struct State<K: Propagated> {
    pub engine: Arc<Engine>,
    /// Objects whose status was just written, for the status syncer to judge their copies again.
    pub rechecks: tokio::sync::mpsc::UnboundedSender<Arc<K>>,
    /// Consecutive failures per object uid (for the backoff).
    failures: Mutex<HashMap<String, u32>>,
    /// When each object started waiting for a member's first probe.
    waiting: Mutex<HashMap<String, Instant>>,
}

impl<K: Propagated> State<K> {
    pub fn new(engine: Arc<Engine>, rechecks: tokio::sync::mpsc::UnboundedSender<Arc<K>>) -> Self {
        Self {
            engine,
            rechecks,
            failures: Mutex::default(),
            waiting: Mutex::default(),
        }
    }

    /// The next retry after one more failure of `uid`: exponential, with jitter, capped.
    fn backoff(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = BACKOFF_FIRST
            .saturating_mul(1u32 << (*n - 1).min(12))
            .min(BACKOFF_MAX);
        // Jitter of up to a quarter, from the clock: spreads retries of objects that failed together.
        let nanos = u64::from(jiff::Timestamp::now().subsec_nanosecond().unsigned_abs());
        base + Duration::from_nanos(nanos % (base.as_nanos() as u64 / 4 + 1))
    }

    fn succeeded(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// How long `uid` has been waiting for a member's first probe (starting now if it was not).
    fn waited(&self, uid: &str) -> Duration {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting
            .entry(uid.to_string())
            .or_insert_with(Instant::now)
            .elapsed()
    }

    fn done_waiting(&self, uid: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}

pub async fn reconcile<K: Propagated>(obj: Arc<K>, state: Arc<State<K>>) -> Result<Action> {
    tokio::time::timeout(RECONCILE_DEADLINE, reconcile_once(obj, state))
        .await
        .map_err(|_| Error::ReconcileTimeout {
            seconds: RECONCILE_DEADLINE.as_secs(),
        })?
}

async fn reconcile_once<K: Propagated>(obj: Arc<K>, state: Arc<State<K>>) -> Result<Action> {
    let start = Instant::now();
    let ctx = &state.engine.ctx;
    let origin =
        Origin::of(obj.as_ref()).ok_or(Error::MissingObjectKey("namespace, name or uid"))?;
    let api = K::host_api(ctx.host.clone(), &origin.namespace);
    // Stored objects carry no status; it is kept beside the store.
    let previous = state.engine.statuses.of(obj.as_ref());
    let action = if obj.meta().deletion_timestamp.is_some() {
        cleanup(&state, &api, &obj, previous.as_ref(), &origin).await?
    } else {
        apply(&state, &api, obj, previous.as_ref(), &origin).await?
    };
    ctx.metrics.reconciled(K::CONTROLLER, start.elapsed());
    Ok(action)
}

/// Members whose health is not known yet and that this object could be placed on: deciding
/// now would treat them as down. Members it cannot use do not hold it back.
fn probing<K: Propagated>(
    obj: &K,
    status: Option<&PropagationStatus>,
    members: &[crate::members::registry::Member],
) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.awaiting_first_probe() && triggers::concerns(obj, &m.name, || status))
        .map(|m| m.name.clone())
        .collect()
}

async fn apply<K: Propagated>(
    state: &State<K>,
    api: &Api<K>,
    obj: Arc<K>,
    previous_status: Option<&PropagationStatus>,
    origin: &Origin,
) -> Result<Action> {
    let engine = &state.engine;
    let ctx = &engine.ctx;
    if !ctx.registry.is_synced() {
        return Ok(Action::requeue(PROBE_WAIT));
    }
    let members = ctx.registry.snapshot();
    let unknown = probing(obj.as_ref(), previous_status, &members);
    if !unknown.is_empty() {
        if state.waited(&origin.uid) >= PROBE_PATIENCE {
            let message = format!(
                "waiting for the first health probe of {} before placing",
                unknown.join(", ")
            );
            write_condition(
                ctx,
                api,
                &obj,
                previous_status,
                None,
                "MemberBeingProbed",
                &message,
            )
            .await?;
        }
        return Ok(Action::requeue(PROBE_WAIT));
    }
    state.done_waiting(&origin.uid);
    // A new object gets its finalizer while its first copies are applied, not before: that is
    // one host round trip less before the copies exist. Any other object without it (someone
    // removed it) gets it first, as copies may exist already.
    let fresh = !finalizer::has_finalizer(obj.as_ref()) && previous_status.is_none();
    let obj = if fresh || finalizer::has_finalizer(obj.as_ref()) {
        obj
    } else {
        Arc::new(
            finalizer::add(&engine.ctx.lease, api, obj.as_ref())
                .await
                .map_err(Error::HostApi)?,
        )
    };
    let spec = obj.propagation();
    // A spec Flotilla cannot act on: said in the Ready condition, and nothing more is done
    // until the object changes.
    let refuse = async |reason: &'static str, message: String| -> Result<Action> {
        write_condition(
            ctx,
            api,
            &obj,
            previous_status,
            Some(false),
            reason,
            &message,
        )
        .await?;
        Ok(Action::await_change())
    };

    // Validate (pure).
    let placement = match placement_spec(&spec.placement)
        .and_then(|p| super::render::overrides_problem(&spec.overrides).map_or(Ok(p), Err))
    {
        Ok(p) => p,
        Err(message) => return refuse("InvalidSpec", message).await,
    };
    let template = match obj.template() {
        Ok(t) => t,
        Err(message) => return refuse("InvalidTemplate", message).await,
    };
    let gvk = match obj.member_kind() {
        Ok(gvk) => gvk,
        Err(message) => return refuse("InvalidTemplate", message).await,
    };
    if !ctx.federated_kinds.allows(&gvk.group, &gvk.kind) {
        let message = ctx.federated_kinds.refusal(&gvk.group, &gvk.kind);
        return refuse("KindNotAllowed", message).await;
    }
    if template.pointer("/spec/replicas").is_some() && !ctx.scaled.is_synced() {
        // Whether a ScalingPolicy owns these replicas is not known before the policies are
        // listed: applying the template's count now would undo the policy's after a restart.
        return Ok(Action::requeue(PROBE_WAIT));
    }
    let replicas = match super::replicas::request(obj.as_ref(), &template) {
        Ok(r) => r,
        Err(message) => return refuse("InvalidSpec", message).await,
    };

    // Build (pure): the decision.
    let now = jiff::Timestamp::now();
    let inventory = inventory(&members);
    let previous_placement = previous(previous_status.and_then(|s| s.placement.as_ref()));
    // Cluster-scoped objects are not held to members' namespace rules.
    let namespace_labels =
        (!origin.namespace.is_empty()).then(|| ctx.namespace_labels(&origin.namespace));
    let decision = decide(&DecisionInput {
        spec: &placement,
        clusters: &inventory,
        previous: &previous_placement,
        now: timestamp(now),
        replicas: replicas.as_ref(),
        namespace: namespace_labels.as_ref().map(|labels| ObjectNamespace {
            name: &origin.namespace,
            labels,
        }),
    })
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let generation = obj.meta().generation.unwrap_or_default();

    // Copies to remove: where a listed watch sees one, where status records one, and where the
    // engine last placed it. Never a member the engine has no record of a copy in.
    let before = engine.ledger.placement(&origin.uid);
    let mut stale: BTreeSet<String> = engine
        .kinds
        .known(&gvk)
        .map(|resource| engine.informers.members_with_copy(&resource, origin))
        .unwrap_or_default()
        .into_iter()
        .collect();
    stale.extend(previous_status.iter().flat_map(|s| {
        s.clusters
            .iter()
            .filter(|e| e.state != CopyState::Conflict)
            .map(|e| e.cluster.clone())
    }));
    stale.extend(before.iter().flat_map(|p| p.selected.iter().cloned()));
    stale.retain(|c| !decision.selected.contains(c));
    // Tell the syncer first: from here on these copies' disappearance is the engine's doing.
    engine.ledger.place(
        &origin.uid,
        Placed {
            kind: K::KIND,
            generation,
            selected: decision.selected.clone(),
        },
    );
    for cluster in &stale {
        engine.ledger.expect_removal(&origin.uid, cluster);
    }

    let job = Job {
        engine,
        obj: obj.as_ref(),
        origin,
        gvk: &gvk,
        decision: &decision,
        template: &template,
        generation,
        previous: previous_status,
    };
    let applied = futures::future::join_all(decision.selected.iter().map(|c| job.apply_to(c)));
    let pruned = futures::future::join_all(stale.iter().map(|c| job.prune_from(c)));
    let finalized = async {
        if fresh {
            finalizer::add(&engine.ctx.lease, api, obj.as_ref())
                .await
                .map(|_| ())
        } else {
            Ok(())
        }
    };
    let propagation = Instant::now();
    let (finalized, applied, pruned) = futures::join!(finalized, applied, pruned);
    ctx.metrics.propagated(K::CONTROLLER, propagation.elapsed());
    if let Err(e) = finalized {
        // Without the finalizer nothing would clean these copies up when the object is deleted
        // (it may be gone already): take them back; the retry applies them again.
        futures::future::join_all(decision.selected.iter().map(|c| {
            engine.ledger.expect_removal(&origin.uid, c);
            job.prune_from(c)
        }))
        .await;
        return Err(Error::HostApi(e));
    }
    let results: Vec<Observed> = applied
        .into_iter()
        .chain(pruned.into_iter().flatten())
        .collect();

    // Status, written only when it changed.
    let placement_status = to_status(&decision);
    report_placement_change::<K>(
        ctx,
        &obj,
        previous_status.and_then(|s| s.placement.as_ref()),
        &placement_status,
    )
    .await;
    let new_status = status::build(
        previous_status,
        obj.meta().generation,
        placement_status,
        &results,
        Time(now),
    );
    if previous_status.map(status::controller_part).as_ref() != Some(&new_status) {
        apply_status(ctx, K::CONTROLLER, api, &origin.name, &new_status).await?;
        let mut merged = new_status;
        for entry in &mut merged.clusters {
            if let Some(old) =
                previous_status.and_then(|s| s.clusters.iter().find(|e| e.cluster == entry.cluster))
            {
                entry.drift = old.drift.clone();
                entry.load_balancer = old.load_balancer.clone();
                entry.health = old.health.clone();
            }
        }
        if let Some(conditions) = previous_status.map(|s| &s.conditions) {
            for c in conditions
                .iter()
                .filter(|c| !status::OWN_CONDITIONS.contains(&c.type_.as_str()))
            {
                merged.conditions.push(c.clone());
            }
        }
        // The syncer looks again with the status just written, before its watch event is back.
        engine.statuses.put(&origin.uid, &merged);
        let _ = state.rechecks.send(obj.clone());
    }

    let failed = results.iter().any(|o| {
        matches!(
            o.result,
            ClusterResult::Failed(_) | ClusterResult::PruneFailed(_) | ClusterResult::Forbidden(_)
        )
    });
    // Waiting on something only a member's owner changes (a kind to be served, a foreign object
    // to be removed or annotated adoptable), which no watch of Flotilla's announces: looked at
    // again with backoff, at most every 30 s.
    let waiting = results.iter().any(|o| {
        matches!(
            o.result,
            ClusterResult::WaitingForKind(_) | ClusterResult::Conflict(_)
        )
    });
    Ok(if failed {
        Action::requeue(state.backoff(&origin.uid))
    } else if waiting {
        Action::requeue(state.backoff(&origin.uid).min(KIND_WAIT_MAX))
    } else {
        state.succeeded(&origin.uid);
        match next_failback(&decision, &inventory, &spec.placement.failback) {
            Some(due) => {
                let wait = due.saturating_since(timestamp(jiff::Timestamp::now()));
                Action::requeue(wait + Duration::from_millis(50))
            }
            None => Action::requeue(RESYNC),
        }
    })
}

/// One object's work in its members.
struct Job<'a, K> {
    engine: &'a Engine,
    obj: &'a K,
    origin: &'a Origin,
    gvk: &'a GroupVersionKind,
    decision: &'a flotilla_placement::Decision,
    template: &'a serde_json::Value,
    generation: i64,
    previous: Option<&'a PropagationStatus>,
}

impl<K: Propagated> Job<'_, K> {
    async fn apply_to(&self, cluster: &str) -> Observed {
        let observed = |result| Observed {
            cluster: cluster.to_string(),
            result,
        };
        let spec = self.obj.propagation();
        let entry = self
            .previous
            .and_then(|s| s.clusters.iter().find(|e| e.cluster == cluster));
        // Under ReportOnly a copy already applied at this generation is left as it is:
        // re-applying would silently undo a change the user asked to be told about. A copy kept
        // while its member was unreachable counts too: coming back is no reason to overwrite it.
        let up_to_date = entry.is_some_and(|e| {
            matches!(e.state, CopyState::Applied | CopyState::Unreachable)
                && e.applied_generation == Some(self.generation)
        });
        let client = self
            .engine
            .ctx
            .registry
            .get(cluster)
            .and_then(|m| m.ready_client().cloned());
        let divided = self.decision.verdict(cluster).and_then(|v| v.replicas);
        let replicas_changed = divided.is_some()
            && self
                .previous
                .and_then(|s| s.placement.as_ref())
                .and_then(|p| p.clusters.iter().find(|c| c.cluster == cluster))
                .and_then(|c| c.replicas)
                != divided;
        // Resolving the kind also starts the member's watch of it (after a restart, this is
        // what starts it for a copy left as it is: drift and health come from it).
        let resolved = match &client {
            Some(client) => Some(self.resource_in(cluster, client).await),
            None => None,
        };
        let seen = resolved
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .and_then(|r| self.engine.informers.copy(cluster, r, self.origin));
        // A ScalingPolicy owns the replicas of the workload it scales; they change hands (to it,
        // or back when it goes) by an apply, whatever the drift mode.
        let scaled = self
            .engine
            .ctx
            .scaled
            .is_scaled(&TargetKey::of_copy(self.origin, self.gvk));
        let handover = scaled
            != seen
                .as_ref()
                .and_then(|m| m.scale.as_ref())
                .is_some_and(|s| s.by_scaler);
        if up_to_date && spec.drift.mode == DriftMode::ReportOnly && !replicas_changed && !handover
        {
            return observed(ClusterResult::Applied);
        }
        let template = super::replicas::for_cluster(self.template, divided);
        let template = if scaled {
            super::replicas::left_to_scaler(template, seen.as_ref())
        } else {
            template
        };
        let desired = match desired_copy(
            &template,
            &spec.overrides,
            self.origin,
            spec.deletion,
            self.generation,
            cluster,
        ) {
            Ok(d) => d,
            Err(e) => return observed(ClusterResult::InvalidOverride(e.0)),
        };
        let (Some(client), Some(resolved)) = (client, resolved) else {
            return observed(ClusterResult::Unreachable { still_placed: true });
        };
        let resource = match resolved {
            Ok(r) => r,
            Err(result) => return observed(result),
        };
        let known_ours = self
            .engine
            .informers
            .copy(cluster, &resource, self.origin)
            .is_some()
            || entry
                .is_some_and(|e| e.applied_generation.is_some() && e.state != CopyState::Conflict);
        let outcome = self
            .engine
            .in_lane(
                cluster,
                apply_copy(
                    &client,
                    &resource,
                    self.origin,
                    &desired,
                    Adoption {
                        policy: spec.adoption,
                        allowed_by_operator: self.engine.ctx.allow_adoption,
                    },
                    known_ours,
                ),
            )
            .await;
        observed(match outcome {
            Ok(ApplyOutcome::Applied(answer)) => {
                self.engine
                    .ledger
                    .applied(&self.origin.uid, cluster, &desired, &answer);
                ClusterResult::Applied
            }
            Ok(ApplyOutcome::Conflict(m)) => ClusterResult::Conflict(m),
            Ok(ApplyOutcome::KindGone(m)) => {
                // Asked again by discovery from now on, like a kind never served there.
                self.engine.kinds.no_longer_served(cluster, self.gvk, &m);
                ClusterResult::WaitingForKind(m)
            }
            Ok(ApplyOutcome::Forbidden(m)) => {
                self.engine.log_member_failure(cluster, "apply", &m, true);
                ClusterResult::Forbidden(m)
            }
            Ok(ApplyOutcome::Failed { message, permanent }) => {
                self.engine
                    .log_member_failure(cluster, "apply", &message, permanent);
                ClusterResult::Failed(message)
            }
            Err(lane) => {
                self.engine
                    .log_member_failure(cluster, "apply", &lane.to_string(), false);
                ClusterResult::Failed(lane.to_string())
            }
        })
    }

    /// Removes the copy from a member where the object is no longer placed; `None` when there
    /// is nothing left to say. A member that is not Ready keeps its copy until it is back.
    async fn prune_from(&self, cluster: &str) -> Option<Observed> {
        let observed = |result| {
            Some(Observed {
                cluster: cluster.to_string(),
                result,
            })
        };
        // The MemberCluster itself is gone: nothing left to clean up through it.
        let member = self.engine.ctx.registry.get(cluster)?;
        let Some(client) = member.ready_client().cloned() else {
            return observed(ClusterResult::Unreachable {
                still_placed: false,
            });
        };
        // A member that does not serve the kind holds no copy of it.
        let resource = self.resource_in(cluster, &client).await.ok()?;
        let removed = self
            .engine
            .in_lane(
                cluster,
                remove_copy(&client, &resource, self.origin, DeletionPolicy::Delete),
            )
            .await;
        match removed {
            Ok(RemoveOutcome::Done | RemoveOutcome::NotOurs) => None,
            Ok(RemoveOutcome::Failed(m) | RemoveOutcome::Forbidden(m)) => {
                observed(ClusterResult::PruneFailed(m))
            }
            Err(lane) => observed(ClusterResult::PruneFailed(lane.to_string())),
        }
    }
}

impl<K: Propagated> Job<'_, K> {
    /// The copy's resource in `cluster`, or why there is none to write.
    async fn resource_in(
        &self,
        cluster: &str,
        client: &kube::Client,
    ) -> std::result::Result<ApiResource, ClusterResult> {
        resolve(self.engine, cluster, client, self.gvk, self.origin).await
    }
}

/// `gvk`'s resource in `cluster`, checked against the host object's scope, and watched there
/// from now on.
async fn resolve(
    engine: &Engine,
    cluster: &str,
    client: &kube::Client,
    gvk: &GroupVersionKind,
    origin: &Origin,
) -> std::result::Result<ApiResource, ClusterResult> {
    match engine.kinds.resolve(cluster, client, gvk).await {
        Resolution::Served {
            resource,
            namespaced,
        } => {
            if namespaced == origin.namespace.is_empty() {
                return Err(ClusterResult::InvalidTemplate(if namespaced {
                    format!("{} is namespaced: put it in a FederatedObject", gvk.kind)
                } else {
                    format!(
                        "{} is cluster-scoped: put it in a ClusterFederatedObject",
                        gvk.kind
                    )
                }));
            }
            engine
                .informers
                .watch_resource(&engine.ctx, resource.clone());
            Ok(resource)
        }
        Resolution::NotServed(m) => Err(ClusterResult::WaitingForKind(m)),
        Resolution::Failed(m) => Err(ClusterResult::Failed(m)),
    }
}

/// Deletion: remove (or release) every copy in a reachable member, then let the object go.
/// Copies in members that are not Ready do not hold the deletion: they carry their deletion
/// policy, and the sweeper applies it when the member is back.
async fn cleanup<K: Propagated>(
    state: &State<K>,
    api: &Api<K>,
    obj: &K,
    status: Option<&PropagationStatus>,
    origin: &Origin,
) -> Result<Action> {
    let engine = &state.engine;
    if !finalizer::has_finalizer(obj) {
        engine.ledger.forget_object(&origin.uid);
        return Ok(Action::await_change());
    }
    let policy = obj.propagation().deletion;
    let Ok(gvk) = obj.member_kind() else {
        // Nothing was ever applied from a template without a kind.
        finalizer::remove(&engine.ctx.lease, api, obj)
            .await
            .map_err(Error::HostApi)?;
        engine.ledger.forget_object(&origin.uid);
        return Ok(Action::await_change());
    };
    let mut clusters: BTreeSet<String> = engine
        .kinds
        .known(&gvk)
        .map(|resource| engine.informers.members_with_copy(&resource, origin))
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(s) = status {
        clusters.extend(
            s.clusters
                .iter()
                .filter(|e| e.state != CopyState::Conflict)
                .map(|e| e.cluster.clone()),
        );
        clusters.extend(s.placement.iter().flat_map(|p| p.selected.iter().cloned()));
    }
    clusters.extend(
        engine
            .ledger
            .placement(&origin.uid)
            .into_iter()
            .flat_map(|p| p.selected),
    );
    // A member not probed yet (this operator just started) is not known to be down: skipping it
    // would leave its copy behind for the sweeper, and a new object of the same name would find
    // it first. Wait for its first probe, as placing does; members known to be down are skipped
    // and swept when they return.
    if !engine.ctx.registry.is_synced() {
        return Ok(Action::requeue(PROBE_WAIT));
    }
    let unprobed: Vec<&String> = clusters
        .iter()
        .filter(|c| {
            engine
                .ctx
                .registry
                .get(c)
                .is_some_and(|m| m.awaiting_first_probe())
        })
        .collect();
    if !unprobed.is_empty() {
        tracing::debug!(kind = K::KIND, namespace = %origin.namespace, name = %origin.name, ?unprobed, "cleanup waits for the first health probe");
        return Ok(Action::requeue(PROBE_WAIT));
    }
    for cluster in &clusters {
        engine.ledger.expect_removal(&origin.uid, cluster);
    }
    let gvk = &gvk;
    let outcomes = futures::future::join_all(clusters.iter().map(|cluster| async move {
        let client = engine.ctx.registry.get(cluster)?.ready_client()?.clone();
        let resource = match resolve(engine, cluster, &client, gvk, origin).await {
            Ok(r) => r,
            // A member that does not serve the kind holds no copy of it.
            Err(ClusterResult::WaitingForKind(_) | ClusterResult::InvalidTemplate(_)) => {
                return None;
            }
            Err(other) => return Some(format!("{cluster}: {other:?}")),
        };
        let removed = engine
            .in_lane(cluster, remove_copy(&client, &resource, origin, policy))
            .await;
        match removed {
            Ok(RemoveOutcome::Done | RemoveOutcome::NotOurs) => None,
            Ok(RemoveOutcome::Failed(m)) => Some(format!("{cluster}: {m}")),
            // Not readable with the member's credentials: nothing Flotilla could have put
            // there, and nothing it can remove. Holding the deletion would hold it forever.
            Ok(RemoveOutcome::Forbidden(m)) => {
                engine.log_member_failure(cluster, "cleanup", &m, true);
                None
            }
            Err(lane) => Some(format!("{cluster}: {lane}")),
        }
    }))
    .await;
    let failures: Vec<String> = outcomes.into_iter().flatten().collect();
    if !failures.is_empty() {
        // A reachable member refused: retry rather than leave a copy behind.
        return Err(Error::Cleanup(failures.join("; ")));
    }
    finalizer::remove(&engine.ctx.lease, api, obj)
        .await
        .map_err(Error::HostApi)?;
    engine.ledger.forget_object(&origin.uid);
    state.succeeded(&origin.uid);
    tracing::info!(kind = K::KIND, namespace = %origin.namespace, name = %origin.name, policy = ?policy, "member copies cleaned up");
    Ok(Action::await_change())
}

/// Writes the Ready condition alone (an invalid spec, or a wait), leaving the rest of the
/// controller's status as it is. `ready: None` is Unknown.
async fn write_condition<K: Propagated>(
    ctx: &crate::Context,
    api: &Api<K>,
    obj: &K,
    previous: Option<&PropagationStatus>,
    ready: Option<bool>,
    reason: &str,
    message: &str,
) -> Result<()> {
    let before = previous.map(status::controller_part);
    let mut status = before.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: "Ready",
            status: ready.unwrap_or(false),
            reason,
            message: message.to_string(),
            observed_generation: obj.meta().generation,
        },
        now,
    );
    if ready.is_none()
        && let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == "Ready")
    {
        c.status = "Unknown".into();
    }
    if before.as_ref().is_some_and(|b| same_ready(b, &status)) {
        return Ok(());
    }
    status.observed_generation = obj.meta().generation;
    apply_status(ctx, K::CONTROLLER, api, &obj.name_any(), &status).await
}

/// The same Ready condition (status, reason, message), whatever its time.
fn same_ready(a: &PropagationStatus, b: &PropagationStatus) -> bool {
    let ready = |s: &PropagationStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    ready(a) == ready(b)
}

/// Events for a changed placement; a cluster dropped because it became unhealthy is a failover.
/// A first placement is no event: it is the routine outcome of creating an object, and status
/// already shows it.
async fn report_placement_change<K: Propagated>(
    ctx: &crate::Context,
    obj: &K,
    before: Option<&PlacementStatus>,
    after: &PlacementStatus,
) {
    let Some(change) = PlacementChange::between(before, after) else {
        return;
    };
    ctx.metrics.placement_changed(K::CONTROLLER);
    let reference = obj.object_ref(&());
    if change.is_failover() {
        ctx.metrics.failed_over(K::CONTROLLER);
        let to = if change.added.is_empty() {
            "no other cluster".into()
        } else {
            change.added.join(", ")
        };
        let note = format!("failed over from {} to {to}", change.failed.join(", "));
        ctx.event(&reference, true, "FailedOver", "Place", note)
            .await;
    } else if !change.first {
        ctx.event(
            &reference,
            false,
            "PlacementChanged",
            "Place",
            change.change_note(),
        )
        .await;
    }
}

pub fn error_policy<K: Propagated>(obj: Arc<K>, error: &Error, state: Arc<State<K>>) -> Action {
    state
        .engine
        .ctx
        .metrics
        .reconcile_failed(K::CONTROLLER, error.metric_label());
    let message = super::truncate::message(&error.to_string());
    tracing::warn!(kind = K::KIND, namespace = obj.namespace().unwrap_or_default(), name = %obj.name_any(), error = %message, "reconcile failed");
    match error {
        Error::HostApi(kube::Error::Api(s)) if s.code == 409 => Action::requeue(CONFLICT_RETRY),
        _ => Action::requeue(state.backoff(obj.meta().uid.as_deref().unwrap_or_default())),
    }
}
