//! What the engine does in one member, for any kind: apply a copy (creating its namespace if
//! needed, honouring the adoption policy), delete a copy, release one (orphan). Every request
//! names the member object by the host object's namespace and name, and every removal is
//! guarded by the member object's uid, so an object that replaced the copy meanwhile is never
//! touched.
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};

use flotilla_api::labels::FIELD_MANAGER;
use flotilla_api::policies::{AdoptionPolicy, DeletionPolicy};
use flotilla_syncer::diff_owned_fields;

use super::origin::{CopyMeta, Origin, TRACKING_ANNOTATIONS, TRACKING_LABELS};
use super::truncate;
use crate::members::probe::error_chain;

/// The field manager of a release: not Flotilla's, so the released object carries no field
/// Flotilla owns.
const RELEASE_MANAGER: &str = "flotilla-release";

/// The result of applying one copy.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Applied; the member's answer (the copy as stored, after defaulting and normalisation).
    Applied(Box<Value>),
    /// A foreign object of that name exists and the adoption policy forbids taking it over.
    Conflict(String),
    /// The member refused or failed the request. `permanent`: the member will refuse the same
    /// request again (validation, forbidden), so it is retried only with a long backoff.
    Failed { message: String, permanent: bool },
    /// The member's credentials may not do this (the message names verb and resource).
    Forbidden(String),
    /// The member no longer serves the kind (its CRD was deleted there): the copy waits for it.
    KindGone(String),
}

/// The member API of `resource`; an empty namespace is a cluster-scoped copy.
fn api(client: &Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, resource)
    }
}

/// The annotation a member's own object carries to let Flotilla adopt it (`IfNoDiff`,
/// `Always`) when the operator was not started with `--allow-adoption`.
pub const ADOPTABLE_ANNOTATION: &str = "federation.flotilla.dev/adoptable";

/// Who may let Flotilla take over a foreign member object: the operator (`--allow-adoption`) or
/// the object itself ([`ADOPTABLE_ANNOTATION`]). Without either, host namespace rights would
/// become the right to overwrite any same-named object in every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    pub policy: AdoptionPolicy,
    pub allowed_by_operator: bool,
}

/// Applies `desired` in the member. `known_ours` skips the ownership read when Flotilla's
/// records say the copy there is its own.
pub async fn apply_copy(
    client: &Client,
    resource: &ApiResource,
    origin: &Origin,
    desired: &Value,
    adoption: Adoption,
    known_ours: bool,
) -> ApplyOutcome {
    let api = api(client, resource, &origin.namespace);
    // Forced only over Flotilla's own copy or an object the policy lets it take over; a new
    // object is created by an unforced apply, so one created by someone else meanwhile makes
    // the apply conflict instead of being silently overwritten.
    let mut force = known_ours;
    let mut body = std::borrow::Cow::Borrowed(desired);
    if !known_ours {
        match api.get_opt(&origin.copy_name).await {
            Ok(None) => {}
            Ok(Some(existing)) => match ownership(&api, &existing, origin, desired, adoption).await
            {
                Ok(()) => {
                    force = true;
                    // The decision holds for the object as read: the apply carries its
                    // resourceVersion, so a change made since makes it fail (409) instead of
                    // being overwritten (no check-then-force race).
                    if let Some(version) = existing.metadata.resource_version.as_deref() {
                        let mut guarded = desired.clone();
                        guarded["metadata"]["resourceVersion"] = json!(version);
                        body = std::borrow::Cow::Owned(guarded);
                    }
                }
                Err(outcome) => return outcome,
            },
            // See `remove_copy`: the resource path itself is gone.
            Err(e) if resource_missing(&e) => return kind_gone(resource),
            Err(e) => return failed("reading the existing object", &e),
        }
    }
    let desired = body.as_ref();
    let params = if force {
        PatchParams::apply(FIELD_MANAGER).force()
    } else {
        PatchParams::apply(FIELD_MANAGER)
    };
    let mut result = api
        .patch(&origin.copy_name, &params, &Patch::Apply(desired))
        .await;
    if !origin.namespace.is_empty() && matches!(&result, Err(kube::Error::Api(s)) if s.code == 404)
    {
        // The namespace does not exist in this member yet: create it, then apply again.
        if let Err(e) = ensure_namespace(client, &origin.namespace).await {
            return failed(&format!("creating namespace {}", origin.namespace), &e);
        }
        result = api
            .patch(&origin.copy_name, &params, &Patch::Apply(desired))
            .await;
    }
    match result {
        Ok(applied) => ApplyOutcome::Applied(Box::new(
            serde_json::to_value(applied).unwrap_or(Value::Null),
        )),
        // Still not found with its namespace there (or cluster-scoped): the resource itself is
        // gone.
        Err(e) if resource_missing(&e) => kind_gone(resource),
        Err(kube::Error::Api(s)) if s.code == 409 && !force => {
            ApplyOutcome::Conflict(truncate::message(&format!(
                "{} {}/{} was created in the member by someone else meanwhile: {}",
                resource.kind, origin.namespace, origin.copy_name, s.message
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 409 && !known_ours => {
            // Changed between the adoption decision and the apply: decided again next time.
            ApplyOutcome::Failed {
                message: truncate::message(&format!(
                    "{} {}/{} changed in the member while Flotilla was adopting it; trying again: {}",
                    resource.kind, origin.namespace, origin.copy_name, s.message
                )),
                permanent: false,
            }
        }
        Err(e) => failed("", &e),
    }
}

/// A 404 that is not an object's NotFound: answering a read (`get_opt` takes those as `None`)
/// or an apply (which creates a missing object), the resource path itself is missing (the
/// member does not serve the kind), or, for an apply before it is created, the namespace.
fn resource_missing(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn kind_gone(resource: &ApiResource) -> ApplyOutcome {
    ApplyOutcome::KindGone(format!(
        "the member no longer serves {} {}",
        resource.api_version, resource.kind
    ))
}

fn failed(context: &str, e: &kube::Error) -> ApplyOutcome {
    if let kube::Error::Api(s) = e
        && s.code == 403
    {
        // The API server's message names the user, verb and resource it refused.
        return ApplyOutcome::Forbidden(truncate::message(&s.message));
    }
    let permanent = matches!(e, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 413 | 422));
    let chain = error_chain(e);
    let message = if context.is_empty() {
        chain
    } else {
        format!("{context}: {chain}")
    };
    ApplyOutcome::Failed {
        message: truncate::message(&message),
        permanent,
    }
}

/// Whether an existing member object may be overwritten by `origin`'s copy: `Ok` for its own
/// copy, a stale copy of an earlier object of that name whose policy was Delete, or a foreign
/// object the adoption policy lets Flotilla take over. A stale copy left with policy Orphan is
/// released first: it is its member's own object now, and the adoption policy decides.
async fn ownership(
    api: &Api<DynamicObject>,
    existing: &DynamicObject,
    origin: &Origin,
    desired: &Value,
    adoption: Adoption,
) -> Result<(), ApplyOutcome> {
    let observed = serde_json::to_value(existing).unwrap_or(Value::Null);
    if let Some(meta) = CopyMeta::of(&observed).filter(|m| m.in_place_of(origin)) {
        if meta.is_copy_of(origin) || meta.deletion == DeletionPolicy::Delete {
            return Ok(());
        }
        if let Err(e) = release(api, existing).await {
            return Err(failed(
                "releasing an orphaned copy of an earlier object",
                &e,
            ));
        }
    }
    let kind = existing
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or("object");
    let whose = existing
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .next()
        .map(|m| format!(" (last written by {})", truncate::truncate(&m, 64)))
        .unwrap_or_default();
    let at = format!("{kind} {}/{}", origin.namespace, origin.copy_name);
    let annotated = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPTABLE_ANNOTATION))
        .is_some_and(|v| v == "true");
    if adoption.policy != AdoptionPolicy::Never && !adoption.allowed_by_operator && !annotated {
        return Err(ApplyOutcome::Conflict(format!(
            "AdoptionNotAllowed: {at} already exists and is not managed by Flotilla{whose}; adoption policy {:?} is treated as Never because the operator runs without --allow-adoption and the object is not annotated {ADOPTABLE_ANNOTATION}=true",
            adoption.policy
        )));
    }
    match adoption.policy {
        AdoptionPolicy::Always => Ok(()),
        AdoptionPolicy::Never => Err(ApplyOutcome::Conflict(format!(
            "{at} already exists and is not managed by Flotilla{whose}; adoption policy Never leaves it untouched"
        ))),
        AdoptionPolicy::IfNoDiff => {
            let mut wanted = desired.clone();
            if let Some(o) = wanted.as_object_mut() {
                o.remove("metadata");
                o.remove("apiVersion");
                o.remove("kind");
            }
            let diffs = diff_owned_fields(&wanted, &observed, &[]);
            if diffs.is_empty() {
                return Ok(());
            }
            let paths: Vec<_> = diffs.iter().take(5).map(|d| d.path.as_str()).collect();
            Err(ApplyOutcome::Conflict(format!(
                "{at} already exists, is not managed by Flotilla{whose} and differs at {}; adoption policy IfNoDiff leaves it untouched",
                paths.join(", ")
            )))
        }
    }
}

/// Creates the namespace when it is missing. A create, not an apply: the member role grants
/// `create` on namespaces and no `patch`, so an existing namespace is never modified.
async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&kube::api::PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What removing a copy found.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoveOutcome {
    /// Deleted, released, or already gone.
    Done,
    /// The object there is not this host object's copy; left alone.
    NotOurs,
    /// The member's credentials may not even read the kind: Flotilla cannot have a copy
    /// there that it could remove.
    Forbidden(String),
    Failed(String),
}

/// Deletes (`Delete`) or releases (`Orphan`) `origin`'s copy in the member. Only the copy whose
/// origin uid is `origin`'s is touched.
pub async fn remove_copy(
    client: &Client,
    resource: &ApiResource,
    origin: &Origin,
    policy: DeletionPolicy,
) -> RemoveOutcome {
    let api = api(client, resource, &origin.namespace);
    let existing = match api.get_opt(&origin.copy_name).await {
        Ok(None) => return RemoveOutcome::Done,
        Ok(Some(existing)) => existing,
        // A missing resource rather than a missing object: the member no longer serves the kind
        // (its CRD was deleted, with every object of it), so it holds no copy. Its API server
        // answers "404 page not found" in plain text, which is not a NotFound Status, so
        // `get_opt` does not read it as `None`. Retrying would hold the deletion for ever.
        Err(e) if resource_missing(&e) => return RemoveOutcome::Done,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return RemoveOutcome::Forbidden(truncate::message(&s.message));
        }
        Err(e) => return RemoveOutcome::Failed(truncate::message(&error_chain(&e))),
    };
    let observed = serde_json::to_value(&existing).unwrap_or(Value::Null);
    if !CopyMeta::of(&observed).is_some_and(|m| m.is_copy_of(origin)) {
        return RemoveOutcome::NotOurs;
    }
    let result = match policy {
        DeletionPolicy::Delete => {
            let params = DeleteParams {
                // The object as read, not one that replaced or changed it meanwhile.
                preconditions: Some(Preconditions {
                    uid: existing.metadata.uid.clone(),
                    resource_version: existing.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            api.delete(&origin.copy_name, &params).await.map(|_| ())
        }
        DeletionPolicy::Orphan => release(&api, &existing).await,
    };
    match result {
        Ok(()) => RemoveOutcome::Done,
        Err(kube::Error::Api(s)) if s.code == 404 => RemoveOutcome::Done,
        // A precondition failed: the object changed after it was read; judged again on retry.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            RemoveOutcome::Failed("the copy changed while it was being removed".into())
        }
        Err(e) => RemoveOutcome::Failed(truncate::message(&error_chain(&e))),
    }
}

/// Makes a copy its member's own: one JSON patch, guarded by the object's uid, that removes
/// every tracking label and annotation and Flotilla's field ownership, so the next owner gets a
/// clean object and no apply conflicts.
async fn release(api: &Api<DynamicObject>, existing: &DynamicObject) -> Result<(), kube::Error> {
    let name = existing.metadata.name.clone().unwrap_or_default();
    let patch = release_patch(&serde_json::to_value(existing).unwrap_or(Value::Null));
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(
        &name,
        &PatchParams {
            field_manager: Some(RELEASE_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::<Value>::Json(patch),
    )
    .await
    .map(|_| ())
}

/// The release patch of `object` (see [`release`]). Pure, for tests.
pub fn release_patch(object: &Value) -> Value {
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    let meta = &object["metadata"];
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": meta["uid"]})];
    for (field, keys) in [
        ("labels", &TRACKING_LABELS[..]),
        ("annotations", &TRACKING_ANNOTATIONS[..]),
    ] {
        for key in keys {
            if meta[field].get(*key).is_some() {
                ops.push(
                    json!({"op": "remove", "path": format!("/metadata/{field}/{}", escape(key))}),
                );
            }
        }
    }
    if let Some(entries) = meta["managedFields"].as_array() {
        let kept: Vec<&Value> = entries
            .iter()
            .filter(|e| e["manager"].as_str() != Some(FIELD_MANAGER))
            .collect();
        if kept.len() != entries.len() {
            // An empty list would leave managedFields as they are; `[{}]` clears them.
            let value = if kept.is_empty() {
                json!([{}])
            } else {
                json!(kept)
            };
            ops.push(json!({"op": "replace", "path": "/metadata/managedFields", "value": value}));
        }
    }
    Value::Array(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code,
                reason: reason.into(),
                ..Default::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn a_plain_text_404_is_a_missing_resource_which_get_opt_does_not_take_as_none() {
        // What kube makes of an API server's "404 page not found" (a path nothing serves).
        let gone = api_error(404, "Failed to parse error data");
        assert!(resource_missing(&gone));
        assert!(matches!(&gone, kube::Error::Api(s) if !s.is_not_found()));
        assert!(!resource_missing(&api_error(409, "Conflict")));
        assert!(!resource_missing(&api_error(403, "Forbidden")));
    }

    #[test]
    fn release_removes_every_tracking_key_and_our_field_ownership_guarded_by_uid() {
        let object = json!({"metadata": {
            "uid": "m-1",
            "labels": {"app": "web", "app.kubernetes.io/managed-by": "flotilla",
                       "federation.flotilla.dev/origin-kind": "FederatedIngress"},
            "annotations": {"federation.flotilla.dev/origin-generation": "2",
                            "federation.flotilla.dev/origin-uid": "u"},
            "managedFields": [{"manager": "flotilla"}, {"manager": "kubectl"}],
        }});
        let patch = release_patch(&object);
        let ops = patch.as_array().expect("ops");
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/uid", "value": "m-1"})
        );
        let removed: Vec<&str> = ops
            .iter()
            .filter(|o| o["op"] == "remove")
            .filter_map(|o| o["path"].as_str())
            .collect();
        assert!(removed.contains(&"/metadata/labels/app.kubernetes.io~1managed-by"));
        assert!(
            removed.contains(&"/metadata/annotations/federation.flotilla.dev~1origin-generation")
        );
        assert!(removed.contains(&"/metadata/annotations/federation.flotilla.dev~1origin-uid"));
        assert!(!removed.iter().any(|p| p.ends_with("/app")));
        let replaced = ops
            .iter()
            .find(|o| o["op"] == "replace")
            .expect("managedFields");
        assert_eq!(replaced["value"], json!([{"manager": "kubectl"}]));
    }

    #[test]
    fn release_clears_managed_fields_that_were_all_ours() {
        let object = json!({"metadata": {"uid": "m", "managedFields": [{"manager": "flotilla"}]}});
        let patch = release_patch(&object);
        let replaced = patch
            .as_array()
            .expect("ops")
            .iter()
            .find(|o| o["op"] == "replace")
            .cloned();
        assert_eq!(replaced.expect("replace")["value"], json!([{}]));
    }
}
