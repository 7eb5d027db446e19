//! The FederatedIngress controller: places each object with the placement engine, applies its
//! copies to the selected members, removes copies where it is no longer placed, and reports.
//!
//! It reconciles on spec changes (not on its own status or finalizer writes), on the member
//! changes the registry broadcasts (a health transition only for the objects it concerns;
//! labels, taints and credentials for all), and when a pending failback becomes due. At most
//! a set number of objects (by default [`CONCURRENCY`]) are reconciled at once.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use flotilla_api::FederatedIngress;
use flotilla_api::federated_ingress::{CopyState, FederatedIngressStatus};
use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::policies::DeletionPolicy;
use flotilla_api::policies::DriftMode;
use flotilla_placement::{DecisionInput, decide};

use super::copies::{ApplyOutcome, RemoveOutcome, apply_copy, delete_copy, release_copy};
use super::desired::{Origin, desired_copy};
use super::index::CopyIndex;
use super::status::{self, ClusterResult, Observed};
use super::triggers;
use crate::conditions::{NewCondition, set_condition};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::finalizer;
use crate::placement_change::PlacementChange;
use crate::placement_input::{
    any_unknown, inventory, next_failback, placement_spec, previous, timestamp, to_status,
};
use crate::status_apply::apply_status;

pub const CONTROLLER: &str = "federatedingress";

/// What the reconciler works with.
pub struct State {
    pub ctx: Arc<Context>,
    pub copies: Arc<CopyIndex>,
    /// Objects whose status was just written, for the status syncer to judge their copies again.
    pub rechecks: tokio::sync::mpsc::UnboundedSender<Arc<FederatedIngress>>,
}
const RESYNC: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(5);
/// A 409 means the object changed under the reconcile; its watch brings the new version at once,
/// so waiting out [`RETRY`] would only add latency.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);
/// Reconciles at once, by default. Unbounded, a burst of objects put thousands of requests in
/// flight on the members' clients at the same moment, and every one of them waited behind the
/// others; bounded, objects are worked off in order at the rate the members take.
pub const CONCURRENCY: u16 = 32;

async fn reconcile(fi: Arc<FederatedIngress>, state: Arc<State>) -> Result<Action> {
    let start = Instant::now();
    let ctx = &state.ctx;
    let origin = Origin::of(&fi).ok_or(Error::MissingObjectKey("namespace or name"))?;
    let api: Api<FederatedIngress> = Api::namespaced(ctx.host.clone(), &origin.namespace);
    let action = if fi.meta().deletion_timestamp.is_some() {
        cleanup(&state, &api, &fi, &origin).await?
    } else {
        apply(&state, &api, fi, &origin).await?
    };
    ctx.metrics.reconciled(CONTROLLER, start.elapsed());
    Ok(action)
}

/// dereference → validate → build → apply → status.
async fn apply(
    state: &State,
    api: &Api<FederatedIngress>,
    fi: Arc<FederatedIngress>,
    origin: &Origin,
) -> Result<Action> {
    let ctx = &state.ctx;
    let members = ctx.registry.snapshot();
    if !ctx.registry.is_synced() || any_unknown(&members) {
        // Just after start-up: deciding now would treat unprobed members as down.
        tracing::debug!(
            synced = ctx.registry.is_synced(),
            members = members.len(),
            "deferring: member inventory incomplete"
        );
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    // A new object gets its finalizer while its first copies are applied, not before: that is
    // one host round trip less before the copies exist. Any other object without it (someone
    // removed it) gets it first, as copies may exist already.
    let fresh = is_fresh(&fi);
    let fi = if fresh || finalizer::has_finalizer(fi.as_ref()) {
        fi
    } else {
        Arc::new(
            finalizer::add(&ctx.lease, api, fi.as_ref())
                .await
                .map_err(Error::HostApi)?,
        )
    };
    let previous_status = fi.status.as_ref();

    // Validate (pure).
    let spec = match placement_spec(&fi.spec.placement) {
        Ok(spec) => spec,
        Err(message) => {
            write_invalid_spec(ctx, api, &fi, &message).await?;
            return Ok(Action::await_change());
        }
    };

    // Build (pure): the decision.
    let now = jiff::Timestamp::now();
    let inventory = inventory(&members);
    let previous_placement = previous(previous_status.and_then(|s| s.placement.as_ref()));
    let decision = decide(&DecisionInput {
        spec: &spec,
        clusters: &inventory,
        previous: &previous_placement,
        now: timestamp(now),
        replicas: None,
    })
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;

    // Apply to the selected members, and remove copies from members no longer selected.
    let applied = futures::future::join_all(
        decision
            .selected
            .iter()
            .map(|cluster| apply_to(state, &fi, origin, cluster, previous_status)),
    );
    // Copies to remove: wherever the members' watches see one, or status records one.
    let mut stale: BTreeSet<String> = state.copies.members_with_copy(origin).into_iter().collect();
    stale.extend(previous_status.iter().flat_map(|s| {
        s.clusters
            .iter()
            .filter(|e| e.state != CopyState::Conflict)
            .map(|e| e.cluster.clone())
    }));
    stale.retain(|c| !decision.selected.contains(c));
    let pruned =
        futures::future::join_all(stale.iter().map(|cluster| prune_from(ctx, origin, cluster)));
    let finalized = async {
        if fresh {
            finalizer::add(&ctx.lease, api, fi.as_ref())
                .await
                .map(|_| ())
        } else {
            Ok(())
        }
    };
    let propagation = Instant::now();
    let (finalized, applied, pruned) = futures::join!(finalized, applied, pruned);
    ctx.metrics.propagated(CONTROLLER, propagation.elapsed());
    if let Err(e) = finalized {
        // Without the finalizer nothing would clean these copies up when the object is deleted
        // (it may be gone already): take them back; the retry applies them again.
        withdraw(ctx, origin, &decision.selected).await;
        return Err(Error::HostApi(e));
    }
    let results: Vec<Observed> = applied
        .into_iter()
        .chain(pruned.into_iter().flatten())
        .collect();

    // Status, written only when it changed.
    let placement = to_status(&decision);
    report_placement_change(
        ctx,
        &fi,
        previous_status.and_then(|s| s.placement.as_ref()),
        &placement,
    )
    .await;
    let new_status = status::build(
        previous_status,
        fi.metadata.generation,
        placement,
        &results,
        Time(now),
    );
    if previous_status.map(status::controller_part).as_ref() != Some(&new_status) {
        apply_status(ctx, CONTROLLER, api, &origin.name, &new_status).await?;
        // The syncer judges copies against the status as written now, not as its watch will
        // show it a moment later.
        let mut written = fi.as_ref().clone();
        let mut merged = new_status;
        for entry in &mut merged.clusters {
            if let Some(old) =
                previous_status.and_then(|s| s.clusters.iter().find(|e| e.cluster == entry.cluster))
            {
                entry.drift = old.drift.clone();
                entry.load_balancer = old.load_balancer.clone();
            }
        }
        written.status = Some(merged);
        let _ = state.rechecks.send(Arc::new(written));
    }

    let retry = results.iter().any(|o| {
        matches!(
            o.result,
            ClusterResult::Failed(_) | ClusterResult::PruneFailed(_)
        )
    });
    Ok(if retry {
        Action::requeue(RETRY)
    } else if let Some(due) = next_failback(&decision, &inventory, &fi.spec.placement.failback) {
        let wait = due.saturating_since(timestamp(jiff::Timestamp::now()));
        Action::requeue(wait + Duration::from_millis(50))
    } else {
        Action::requeue(RESYNC)
    })
}

/// Never reconciled (no finalizer, no status): its copies, if any, are the ones this reconcile
/// applies.
fn is_fresh(fi: &FederatedIngress) -> bool {
    !finalizer::has_finalizer(fi) && fi.status.is_none()
}

/// Deletes the copies just applied to `clusters` (see [`apply`]).
async fn withdraw(ctx: &Context, origin: &Origin, clusters: &[String]) {
    futures::future::join_all(clusters.iter().map(|c| prune_from(ctx, origin, c))).await;
}

async fn apply_to(
    state: &State,
    fi: &FederatedIngress,
    origin: &Origin,
    cluster: &str,
    previous: Option<&FederatedIngressStatus>,
) -> Observed {
    let entry = previous.and_then(|s| s.clusters.iter().find(|e| e.cluster == cluster));
    // Under ReportOnly a copy already applied at this generation is left as it is: re-applying
    // would silently undo a change the user asked to be told about. (The status syncer reports
    // it; a new generation is the user's new intent and is applied.)
    // A copy kept while its member was unreachable counts too: coming back is no reason to
    // overwrite it.
    let up_to_date = entry.is_some_and(|e| {
        matches!(e.state, CopyState::Applied | CopyState::Unreachable)
            && e.applied_generation == fi.metadata.generation
    });
    if up_to_date && fi.spec.drift.mode == DriftMode::ReportOnly {
        return Observed {
            cluster: cluster.to_string(),
            result: ClusterResult::Applied,
        };
    }
    let result = match desired_copy(fi, origin, cluster) {
        Err(e) => ClusterResult::InvalidOverride(e.0),
        Ok(desired) => match state
            .ctx
            .registry
            .get(cluster)
            .as_ref()
            .and_then(|m| m.ready_client().cloned())
        {
            None => ClusterResult::Failed("the member has no usable client".into()),
            Some(client) => {
                // The member's watch sees Flotilla's copy, or status records that Flotilla
                // applied it: skip the ownership read.
                let known_ours = state.copies.has_copy(cluster, origin)
                    || entry.is_some_and(|e| {
                        e.applied_generation.is_some() && e.state != CopyState::Conflict
                    });
                match apply_copy(
                    &state.ctx.lease,
                    &client,
                    origin,
                    &desired,
                    fi.spec.adoption,
                    known_ours,
                )
                .await
                {
                    ApplyOutcome::Applied => ClusterResult::Applied,
                    ApplyOutcome::Conflict(m) => ClusterResult::Conflict(m),
                    ApplyOutcome::Failed(m) => {
                        tracing::warn!(cluster, object = %origin.name, error = %m, "apply to member failed");
                        ClusterResult::Failed(m)
                    }
                }
            }
        },
    };
    Observed {
        cluster: cluster.to_string(),
        result,
    }
}

/// Removes the copy from a member where the object is no longer placed. `None` when it is gone.
/// A member that is not Ready keeps its copy until it is back (no purge while unreachable).
async fn prune_from(ctx: &Context, origin: &Origin, cluster: &str) -> Option<Observed> {
    let observed = |result| {
        Some(Observed {
            cluster: cluster.to_string(),
            result,
        })
    };
    let Some(member) = ctx.registry.get(cluster) else {
        // The MemberCluster itself is gone: nothing left to clean up through it.
        return None;
    };
    let Some(client) = member.ready_client() else {
        return observed(ClusterResult::Unreachable {
            still_placed: false,
        });
    };
    match delete_copy(&ctx.lease, client, origin).await {
        RemoveOutcome::Done | RemoveOutcome::NotOurs => None,
        RemoveOutcome::Failed(m) => observed(ClusterResult::PruneFailed(m)),
    }
}

/// Deletion: remove (or release) every copy in a reachable member, then let the object go.
/// Copies in members that are not Ready do not hold the deletion: they carry their deletion
/// policy, and the sweeper applies it when the member is back.
async fn cleanup(
    state: &State,
    api: &Api<FederatedIngress>,
    fi: &FederatedIngress,
    origin: &Origin,
) -> Result<Action> {
    let ctx = &state.ctx;
    if !finalizer::has_finalizer(fi) {
        return Ok(Action::await_change());
    }
    let mut clusters: BTreeSet<String> =
        state.copies.members_with_copy(origin).into_iter().collect();
    if let Some(s) = &fi.status {
        clusters.extend(
            s.clusters
                .iter()
                .filter(|e| e.state != CopyState::Conflict)
                .map(|e| e.cluster.clone()),
        );
        clusters.extend(s.placement.iter().flat_map(|p| p.selected.iter().cloned()));
    }
    let outcomes = futures::future::join_all(clusters.iter().map(|cluster| async move {
        let member = ctx.registry.get(cluster)?;
        let client = member.ready_client()?.clone();
        let outcome = match fi.spec.deletion {
            DeletionPolicy::Delete => delete_copy(&ctx.lease, &client, origin).await,
            DeletionPolicy::Orphan => release_copy(&ctx.lease, &client, origin).await,
        };
        match outcome {
            RemoveOutcome::Failed(m) => Some((cluster.clone(), m)),
            RemoveOutcome::Done | RemoveOutcome::NotOurs => None,
        }
    }))
    .await;
    let failures: Vec<String> = outcomes
        .into_iter()
        .flatten()
        .map(|(c, m)| format!("{c}: {m}"))
        .collect();
    if !failures.is_empty() {
        // A reachable member refused: retry rather than leave a copy behind.
        return Err(Error::Cleanup(failures.join("; ")));
    }
    finalizer::remove(&ctx.lease, api, fi)
        .await
        .map_err(Error::HostApi)?;
    tracing::info!(namespace = %origin.namespace, name = %origin.name, policy = ?fi.spec.deletion, "member copies cleaned up");
    Ok(Action::await_change())
}

async fn write_invalid_spec(
    ctx: &Context,
    api: &Api<FederatedIngress>,
    fi: &FederatedIngress,
    message: &str,
) -> Result<()> {
    let before = fi.status.as_ref().map(status::controller_part);
    let mut status = before.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: "Ready",
            status: false,
            reason: "InvalidSpec",
            message: message.to_string(),
            observed_generation: fi.metadata.generation,
        },
        now,
    );
    status.observed_generation = fi.metadata.generation;
    if before.as_ref() != Some(&status) {
        apply_status(ctx, CONTROLLER, api, &fi.name_any(), &status).await?;
    }
    Ok(())
}

/// Events for a changed placement; a cluster dropped because it became unhealthy is a failover.
/// A first placement is no event: it is the routine outcome of creating an object (one event per
/// object in a burst of creations), and status already shows it.
async fn report_placement_change(
    ctx: &Context,
    fi: &FederatedIngress,
    before: Option<&PlacementStatus>,
    after: &PlacementStatus,
) {
    let Some(change) = PlacementChange::between(before, after) else {
        return;
    };
    ctx.metrics.placement_changed(CONTROLLER);
    let reference = fi.object_ref(&());
    if change.is_failover() {
        ctx.metrics.failed_over(CONTROLLER);
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

fn error_policy(fi: Arc<FederatedIngress>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(namespace = fi.namespace().unwrap_or_default(), name = %fi.name_any(), %error, "federatedingress reconcile failed");
    Action::requeue(retry_after(error))
}

fn retry_after(error: &Error) -> Duration {
    match error {
        Error::HostApi(kube::Error::Api(s)) if s.code == 409 => CONFLICT_RETRY,
        _ => RETRY,
    }
}

/// Runs the controller, with at most `concurrency` reconciles at once (0: unbounded), until
/// `shutdown` resolves. Returns the object store, ready once listed.
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> (
    Store<FederatedIngress>,
    impl std::future::Future<Output = ()>,
) {
    let api: Api<FederatedIngress> = Api::all(ctx.host.clone());
    let (reader, writer) = reflector::store();
    let stream = triggers::host_changes(
        watcher(api, watcher::Config::default())
            .default_backoff()
            // Nothing reads them, and they are a good part of every cached object.
            .modify(|fi| fi.managed_fields_mut().clear())
            .reflect(writer),
    );
    let changes = triggers::member_changes(&ctx.registry, reader.clone());
    let (copies, copy_events) = CopyIndex::new();
    tokio::spawn(copies.clone().run(ctx.clone()));
    let (rechecks, recheck_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(super::drift::run(
        ctx.clone(),
        reader.clone(),
        copies.clone(),
        copy_events,
        recheck_rx,
    ));
    let state = Arc::new(State {
        ctx,
        copies,
        rechecks,
    });
    let run = Controller::for_stream(stream, reader.clone())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .reconcile_on(changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|_| futures::future::ready(()));
    (reader, run)
}
