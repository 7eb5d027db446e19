//! Cleans up copies left in a member while it was unreachable. When a member becomes Ready, every
//! Flotilla copy in it whose host object no longer exists is deleted, or released when the copy
//! says its host object was deleted with policy Orphan. Copies whose host object exists are the
//! controller's business (it reconciles every object the transition concerns: see `triggers`).
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::broadcast::error::RecvError;

use flotilla_api::FederatedIngress;
use flotilla_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE, ORIGIN_UID,
};

use super::copies::{RemoveOutcome, delete_copy, release_copy};
use super::desired::{DELETION_POLICY_ANNOTATION, KIND, Origin};
use crate::context::Context;
use crate::members::registry::RegistryEvent;

/// Runs until the registry closes.
pub async fn run(ctx: Arc<Context>, store: Store<FederatedIngress>) {
    let mut events = ctx.registry.subscribe();
    // Never judge copies against a store that has not listed the host objects yet: an empty
    // store would make every copy look orphaned.
    crate::store::wait_until_listed(&store).await;
    tracing::debug!(
        objects = store.state().len(),
        "sweeper: host objects listed"
    );
    // Members already Ready before the store was: sweep them once too.
    for member in ctx.registry.snapshot() {
        if member.ready_client().is_some() {
            sweep(&ctx, &store, &member.name).await;
        }
    }
    loop {
        match events.recv().await {
            Ok(RegistryEvent::BecameReady(member)) => sweep(&ctx, &store, &member).await,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                for member in ctx.registry.snapshot() {
                    if member.ready_client().is_some() {
                        sweep(&ctx, &store, &member.name).await;
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sweep(ctx: &Context, store: &Store<FederatedIngress>, member: &str) {
    let Some(client) = ctx
        .registry
        .get(member)
        .and_then(|m| m.ready_client().cloned())
    else {
        return;
    };
    let api: Api<Ingress> = Api::all(client.clone());
    let selector = format!("{MANAGED_BY}={MANAGED_BY_VALUE},{ORIGIN_KIND}={KIND}");
    let copies = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(member, error = %e, "sweep: cannot list copies");
            return;
        }
    };
    for copy in copies {
        let annotations = copy.metadata.annotations.clone().unwrap_or_default();
        let (Some(namespace), Some(name)) = (
            annotations.get(ORIGIN_NAMESPACE),
            annotations.get(ORIGIN_NAME),
        ) else {
            continue;
        };
        if store.get(&ObjectRef::new(name).within(namespace)).is_some() {
            continue;
        }
        let origin = Origin {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: annotations.get(ORIGIN_UID).cloned().unwrap_or_default(),
        };
        let orphan = annotations
            .get(DELETION_POLICY_ANNOTATION)
            .is_some_and(|p| p == "Orphan");
        let outcome = if orphan {
            release_copy(&ctx.lease, &client, &origin).await
        } else {
            delete_copy(&ctx.lease, &client, &origin).await
        };
        match outcome {
            RemoveOutcome::Done => tracing::info!(
                member,
                namespace,
                name,
                orphan,
                "sweep: cleaned up a copy whose host object is gone"
            ),
            RemoveOutcome::NotOurs => {}
            RemoveOutcome::Failed(e) => {
                tracing::warn!(member, namespace, name, error = %e, "sweep: cleanup failed")
            }
        }
    }
}
