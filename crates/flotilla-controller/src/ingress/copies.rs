//! What the FederatedIngress controller does in one member: apply a copy (creating the namespace
//! if needed and respecting the adoption policy), delete a copy, or release it (orphan).
//! Every write runs under the lease guard: without the leader Lease nothing is written.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use flotilla_api::labels::{
    FIELD_MANAGER, MANAGED_BY, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE, ORIGIN_UID,
};
use flotilla_api::policies::AdoptionPolicy;
use flotilla_syncer::diff_owned_fields;

use super::desired::{DELETION_POLICY_ANNOTATION, Origin, is_our_copy};
use crate::lease_guard::{Fenced, LeaseGuard};
use crate::members::probe::error_chain;

/// The result of applying one copy.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Applied; the member's copy now matches. (Its load-balancer addresses reach status through
    /// the status syncer's watch, not from here.)
    Applied,
    /// A foreign object of that name exists and the adoption policy forbids taking it over.
    Conflict(String),
    /// The member refused or failed the request.
    Failed(String),
}

/// Applies `desired` in the member. `known_ours` skips the ownership read when status already
/// records that Flotilla applied this copy.
pub async fn apply_copy(
    guard: &LeaseGuard,
    client: &Client,
    origin: &Origin,
    desired: &Value,
    adoption: AdoptionPolicy,
    known_ours: bool,
) -> ApplyOutcome {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &origin.namespace);
    if !known_ours {
        match api.get_opt(&origin.name).await {
            Ok(None) => {}
            Ok(Some(existing)) => {
                if let Some(refusal) = adoption_refusal(&existing, origin, desired, adoption) {
                    return ApplyOutcome::Conflict(refusal);
                }
            }
            Err(e) => {
                return ApplyOutcome::Failed(format!(
                    "reading the existing Ingress: {}",
                    error_chain(&e)
                ));
            }
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let Ok(mut result) = guard
        .fence(api.patch(&origin.name, &params, &Patch::Apply(desired)))
        .await
    else {
        return ApplyOutcome::Failed(Fenced.to_string());
    };
    if matches!(&result, Err(kube::Error::Api(s)) if s.code == 404) {
        // The namespace does not exist in this member yet: create it, then apply again.
        if let Err(e) = ensure_namespace(guard, client, &origin.namespace).await {
            return ApplyOutcome::Failed(format!(
                "creating namespace {}: {}",
                origin.namespace,
                error_chain(&e)
            ));
        }
        let Ok(again) = guard
            .fence(api.patch(&origin.name, &params, &Patch::Apply(desired)))
            .await
        else {
            return ApplyOutcome::Failed(Fenced.to_string());
        };
        result = again;
    }
    match result {
        Ok(_) => ApplyOutcome::Applied,
        Err(e) => ApplyOutcome::Failed(error_chain(&e)),
    }
}

/// Why an existing object may not be taken over, or `None` when it may.
fn adoption_refusal(
    existing: &Ingress,
    origin: &Origin,
    desired: &Value,
    adoption: AdoptionPolicy,
) -> Option<String> {
    let meta = &existing.metadata;
    if is_our_copy(meta.labels.as_ref(), meta.annotations.as_ref(), origin) {
        return None;
    }
    let whose = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .next()
        .map(|m| format!(" (last written by {m})"))
        .unwrap_or_default();
    match adoption {
        AdoptionPolicy::Always => None,
        AdoptionPolicy::Never => Some(format!(
            "Ingress {}/{} already exists and is not managed by Flotilla{whose}; adoption policy Never leaves it untouched",
            origin.namespace, origin.name
        )),
        AdoptionPolicy::IfNoDiff => {
            let observed = serde_json::to_value(existing).unwrap_or(Value::Null);
            let wanted = json!({"spec": desired.get("spec").cloned().unwrap_or(Value::Null)});
            let diffs = diff_owned_fields(&wanted, &observed, &[]);
            (!diffs.is_empty()).then(|| {
                let paths: Vec<_> = diffs.iter().take(5).map(|d| d.path.as_str()).collect();
                format!(
                    "Ingress {}/{} already exists, is not managed by Flotilla{whose} and differs at {}; adoption policy IfNoDiff leaves it untouched",
                    origin.namespace,
                    origin.name,
                    paths.join(", ")
                )
            })
        }
    }
}

async fn ensure_namespace(
    guard: &LeaseGuard,
    client: &Client,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let params = PatchParams::apply(FIELD_MANAGER);
    guard
        .fence(api.patch(name, &params, &Patch::Apply(&ns)))
        .await
        .map_err(crate::finalizer::fenced)?
        .map(|_| ())
}

/// What removing a copy found.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoveOutcome {
    /// Deleted, released, or already gone.
    Done,
    /// The object there is not Flotilla's copy; left alone.
    NotOurs,
    Failed(String),
}

/// Flotilla's copy of `origin` in the member, or the outcome to report when there is none to act
/// on (already gone, not ours, or unreadable).
async fn our_copy(api: &Api<Ingress>, origin: &Origin) -> Result<Ingress, RemoveOutcome> {
    match api.get_opt(&origin.name).await {
        Ok(None) => Err(RemoveOutcome::Done),
        Ok(Some(existing))
            if is_our_copy(
                existing.metadata.labels.as_ref(),
                existing.metadata.annotations.as_ref(),
                origin,
            ) =>
        {
            Ok(existing)
        }
        Ok(Some(_)) => Err(RemoveOutcome::NotOurs),
        Err(e) => Err(RemoveOutcome::Failed(error_chain(&e))),
    }
}

/// Deletes Flotilla's copy of `origin` from the member (never an object that is not ours).
pub async fn delete_copy(guard: &LeaseGuard, client: &Client, origin: &Origin) -> RemoveOutcome {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &origin.namespace);
    let existing = match our_copy(&api, origin).await {
        Ok(existing) => existing,
        Err(outcome) => return outcome,
    };
    // Precondition on uid: never delete an object that replaced ours in the meantime.
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match guard.fence(api.delete(&origin.name, &params)).await {
        Err(fenced) => RemoveOutcome::Failed(fenced.to_string()),
        Ok(Ok(_)) => RemoveOutcome::Done,
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => RemoveOutcome::Done,
        Ok(Err(e)) => RemoveOutcome::Failed(error_chain(&e)),
    }
}

/// Releases Flotilla's copy (deletion policy Orphan): removes the tracking labels and
/// annotations so the object is the member's own from now on.
pub async fn release_copy(guard: &LeaseGuard, client: &Client, origin: &Origin) -> RemoveOutcome {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &origin.namespace);
    if let Err(outcome) = our_copy(&api, origin).await {
        return outcome;
    }
    let nulls = |keys: &[&str]| {
        keys.iter()
            .map(|k| (k.to_string(), Value::Null))
            .collect::<BTreeMap<_, _>>()
    };
    let patch = json!({"metadata": {
        "labels": nulls(&[MANAGED_BY, ORIGIN_KIND]),
        "annotations": nulls(&[ORIGIN_NAMESPACE, ORIGIN_NAME, ORIGIN_UID, DELETION_POLICY_ANNOTATION]),
    }});
    let params = PatchParams::default();
    match guard
        .fence(api.patch(&origin.name, &params, &Patch::Merge(&patch)))
        .await
    {
        Err(fenced) => RemoveOutcome::Failed(fenced.to_string()),
        Ok(Ok(_)) => RemoveOutcome::Done,
        Ok(Err(e)) => RemoveOutcome::Failed(error_chain(&e)),
    }
}
