//! Removes copies whose host object is gone: deleted while their member was unreachable, or left
//! by an earlier object of the same name. Runs every [`PERIOD`] and when a member becomes
//! Ready, from the copy watches' projections (no list calls), and asks the host before it
//! removes anything: a copy is removed only when the host object its annotations name, with
//! that uid, does not exist. Each copy is deleted or released as its recorded deletion policy
//! says. Mislabelled objects (not standing where their named host object's copy would) are
//! never touched. A failed removal is tried again on the next sweep.
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;
use tokio::sync::broadcast::error::RecvError;

use super::member_ops::{RemoveOutcome, remove_copy};
use super::origin::{CopyMeta, Origin};
use super::{Engine, Propagated};
use crate::members::registry::RegistryEvent;

/// How often every Ready member is swept.
pub const PERIOD: Duration = Duration::from_secs(30);
/// How long a sweep on a member's return waits for its watches to list.
const LIST_PATIENCE: Duration = Duration::from_secs(15);

/// Runs until the registry closes.
pub async fn run<K: Propagated>(engine: Arc<Engine>, store: Store<K>) {
    let mut events = engine.ctx.registry.subscribe();
    // Never judge copies against a store that has not listed the host objects yet: an empty
    // store would make every copy look orphaned.
    crate::store::wait_until_listed(&store).await;
    let mut period = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = period.tick() => sweep_all(&engine, &store).await,
            event = events.recv() => match event {
                Ok(RegistryEvent::BecameReady(member)) => {
                    // A member back from an outage has its watches restarted: sweep what they
                    // list, not the nothing they hold before.
                    engine.informers.wait_listed(&member, LIST_PATIENCE).await;
                    sweep(&engine, &store, &member).await
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => sweep_all(&engine, &store).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

async fn sweep_all<K: Propagated>(engine: &Engine, store: &Store<K>) {
    for member in engine.ctx.registry.snapshot() {
        if member.ready_client().is_some() {
            sweep(engine, store, &member.name).await;
        }
    }
}

async fn sweep<K: Propagated>(engine: &Engine, store: &Store<K>, member: &str) {
    let Some(client) = engine
        .ctx
        .registry
        .get(member)
        .and_then(|m| m.ready_client().cloned())
    else {
        return;
    };
    let mut orphaned = 0;
    for (resource, meta) in engine.informers.copies_in(member) {
        let Some(origin) = meta.claimed_origin().filter(|o| o.kind == K::KIND) else {
            continue;
        };
        if store
            .get(&origin.host_ref())
            .is_some_and(|o| makes(o.as_ref(), &meta))
        {
            continue;
        }
        // The store may be behind: ask the host before removing anything.
        let api = K::host_api(engine.ctx.host.clone(), &origin.namespace);
        match api.get_opt(&origin.name).await {
            Ok(Some(o)) if makes(&o, &meta) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(member, error = %e, "sweep: cannot confirm with the host; next sweep");
                continue;
            }
        }
        orphaned += 1;
        engine.ledger.expect_removal(&origin.uid, member);
        let outcome = engine
            .in_lane(
                member,
                remove_copy(&client, &resource, &origin, meta.deletion),
            )
            .await;
        match outcome {
            Ok(RemoveOutcome::Done) => {
                orphaned -= 1;
                tracing::info!(member, namespace = %origin.namespace, name = %origin.name, policy = ?meta.deletion, "sweep: cleaned up a copy whose host object is gone");
            }
            Ok(RemoveOutcome::NotOurs) => orphaned -= 1,
            Ok(RemoveOutcome::Failed(m) | RemoveOutcome::Forbidden(m)) => {
                engine.log_member_failure(member, "sweep", &m, false)
            }
            Err(lane) => engine.log_member_failure(member, "sweep", &lane.to_string(), false),
        }
    }
    engine.ctx.metrics.orphaned_copies(member, orphaned);
}

/// Whether host object `obj` makes the member object `copy`: the uid its annotations name,
/// and the name and kind `obj` gives its copies now (a copy left by an earlier template name
/// or kind is stale).
pub fn makes<K: Propagated>(obj: &K, copy: &CopyMeta) -> bool {
    Origin::of(obj).is_some_and(|o| copy.origin_uid == o.uid && o.copy_name == copy.name)
        && obj
            .member_kind()
            .is_ok_and(|gvk| gvk.group == copy.type_.group && gvk.kind == copy.type_.kind)
}
