//! The host watch of a kind, decoded one object at a time: an object the Rust type cannot hold
//! (a value the schema let through, such as a u32 field set to 4294967296 on an old CRD) is
//! reported with the path of the offending field, as a Warning event on that object, and left
//! out; every other object keeps working. Decoding the whole list at once would fail the
//! watcher's initial list, and with it every object of the kind.
use std::collections::HashMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use flotilla_api::propagation::PropagationSpec;

use super::{Propagated, truncate};
use crate::context::Context;

/// An object that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub reference: ObjectReference,
    pub resource_version: Option<String>,
    pub message: String,
}

/// Decodes one object, naming the path of the field that does not fit.
pub fn decode<K: Propagated>(object: Value) -> Result<K, String> {
    let spec = object.get("spec").cloned();
    serde_path_to_error::deserialize::<_, K>(object).map_err(|e| {
        let path = e.path().to_string();
        // Every kind flattens the propagation settings into its spec, and a flattened field's
        // error carries no path below `spec`: decode them alone to find it.
        let inner = (path == "spec")
            .then(|| {
                let spec = spec?;
                serde_path_to_error::deserialize::<_, PropagationSpec>(spec)
                    .err()
                    .map(|e| format!("field spec.{}: {}", e.path(), e.inner()))
            })
            .flatten();
        inner.unwrap_or_else(|| format!("field {path}: {}", e.inner()))
    })
}

fn reference<K: Propagated>(object: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: object.metadata.namespace.clone(),
        name: object.metadata.name.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// The kind's watch events, typed; undecodable objects go to `invalid` instead.
pub fn watch<K: Propagated>(
    ctx: &Context,
    invalid: tokio::sync::mpsc::UnboundedSender<Undecodable>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(ctx.host.clone(), &resource);
    let typed = move |object: DynamicObject| -> Option<K> {
        let reference = reference::<K>(&object);
        let resource_version = object.metadata.resource_version.clone();
        let value = serde_json::to_value(&object).ok()?;
        match decode::<K>(value) {
            Ok(k) => Some(k),
            Err(message) => {
                let _ = invalid.send(Undecodable {
                    reference,
                    resource_version,
                    message: truncate::message(&message),
                });
                None
            }
        }
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Apply(o)) => typed(o).map(|k| Ok(watcher::Event::Apply(k))),
                Ok(watcher::Event::InitApply(o)) => {
                    typed(o).map(|k| Ok(watcher::Event::InitApply(k)))
                }
                // A deleted object that cannot be decoded was never in the store either.
                Ok(watcher::Event::Delete(o)) => typed(o).map(|k| Ok(watcher::Event::Delete(k))),
                Ok(watcher::Event::Init) => Some(Ok(watcher::Event::Init)),
                Ok(watcher::Event::InitDone) => Some(Ok(watcher::Event::InitDone)),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
}

/// Publishes one Warning event per undecodable object version. Runs until the senders close.
pub async fn report(
    ctx: Arc<Context>,
    kind: &'static str,
    mut invalid: tokio::sync::mpsc::UnboundedReceiver<Undecodable>,
) {
    // The version last reported, per object uid: a relist repeats every object.
    let mut reported: HashMap<String, Option<String>> = HashMap::new();
    while let Some(u) = invalid.recv().await {
        let uid = u.reference.uid.clone().unwrap_or_default();
        if reported.get(&uid) == Some(&u.resource_version) {
            continue;
        }
        if reported.len() > 10_000 {
            reported.clear();
        }
        reported.insert(uid, u.resource_version.clone());
        tracing::warn!(kind, namespace = u.reference.namespace.as_deref().unwrap_or_default(), name = u.reference.name.as_deref().unwrap_or_default(), error = %u.message, "object cannot be decoded; it is left alone until it is fixed");
        let note = format!(
            "Flotilla cannot read this object, and leaves it and its copies as they are until it is fixed: {}",
            u.message
        );
        ctx.event(&u.reference, true, "InvalidObject", "Decode", note)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::FederatedIngress;
    use serde_json::json;

    #[test]
    fn an_out_of_range_value_is_named_by_its_path() {
        let object = json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {}},
                     "placement": {"constraints": {"maxClusters": 4294967296u64}}},
        });
        let err = decode::<FederatedIngress>(object).expect_err("out of range");
        assert!(
            err.contains("spec.placement.constraints.maxClusters"),
            "{err}"
        );
    }
}
