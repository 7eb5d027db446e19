//! Adding and removing Flotilla's finalizer without clobbering anyone else's, and without
//! depending on the object's resourceVersion: status writes (ours and the syncer's) change that
//! all the time, and a guard on it made most finalizer writes fail with a 409 under load.
//!
//! - Adding is a server-side apply of just the finalizer under a field manager of its own.
//!   `metadata.finalizers` is a set for server-side apply, so other finalizers stay as they are,
//!   and applying twice is a no-op (no duplicate entry). The patch names the object's uid, so it
//!   never lands on a different object of the same name; it cannot create an object that is gone
//!   either, since every Flotilla kind requires a `spec`.
//! - Removing is a JSON patch that tests the entry at the index it removes, so it removes exactly
//!   Flotilla's entry, whoever added it (also a merge patch of an older operator version). When
//!   the list moved since it was read, it is read again.
//!
//! Both run under the lease guard: a fenced write fails with [`fenced`]'s error.
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::lease_guard::{Fenced, LeaseGuard};

/// The finalizer on host objects whose member copies must be cleaned up first.
pub const FINALIZER: &str = "federation.flotilla.dev/cleanup";
/// The field manager that owns [`FINALIZER`] in `metadata.finalizers`; nothing else.
pub const FINALIZER_MANAGER: &str = "flotilla-finalizer";

/// Whether the object carries the finalizer.
pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    index_of(obj).is_some()
}

fn index_of<K: Resource>(obj: &K) -> Option<usize> {
    obj.meta()
        .finalizers
        .as_ref()
        .and_then(|f| f.iter().position(|x| x == FINALIZER))
}

/// The error of a finalizer write the lease guard refused. A kube error, so that callers report
/// it as a failed host write and retry (by then the process is exiting).
pub fn fenced(f: Fenced) -> kube::Error {
    kube::Error::Service(Box::new(f))
}

/// Adds the finalizer; returns the updated object.
pub async fn add<K>(guard: &LeaseGuard, api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FINALIZER_MANAGER);
    let patch = add_patch(obj);
    guard
        .fence(api.patch(&name, &params, &Patch::Apply(patch)))
        .await
        .map_err(fenced)?
}

/// The server-side apply document that adds the finalizer to `obj`.
fn add_patch<K: Resource<DynamicType = ()>>(obj: &K) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": obj.meta().name,
            "uid": obj.meta().uid,
            "finalizers": [FINALIZER],
        }
    })
}

/// Removes the finalizer. Done when the object is gone or no longer carries it.
pub async fn remove<K>(guard: &LeaseGuard, api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let Some(index) = index_of(obj) else {
        return Ok(());
    };
    match remove_at(guard, api, &name, index).await {
        // The list changed since `obj` was read (the test op failed): read it again, once.
        Err(kube::Error::Api(s)) if matches!(s.code, 409 | 422 | 500) => {
            let Some(fresh) = api.get_opt(&name).await? else {
                return Ok(());
            };
            match index_of(&fresh) {
                Some(index) => remove_at(guard, api, &name, index).await,
                None => Ok(()),
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

async fn remove_at<K>(
    guard: &LeaseGuard,
    api: &Api<K>,
    name: &str,
    index: usize,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(remove_patch(index)).map_err(kube::Error::SerdeError)?;
    let params = PatchParams::default();
    guard
        .fence(api.patch(name, &params, &Patch::<()>::Json(patch)))
        .await
        .map_err(fenced)?
        .map(|_| ())
}

/// The JSON patch that removes the finalizer at `index`, provided it is still there.
fn remove_patch(index: usize) -> Value {
    let path = format!("/metadata/finalizers/{index}");
    json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::FederatedIngress;

    fn object(finalizers: &[&str]) -> FederatedIngress {
        let mut fi: FederatedIngress = serde_json::from_value(json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "apps", "uid": "u-1"},
            "spec": {"template": {"spec": {}}, "placement": {}},
        }))
        .expect("a FederatedIngress");
        fi.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        fi
    }

    #[test]
    fn the_add_patch_names_only_the_finalizer_and_the_object() {
        let patch = add_patch(&object(&["other/keep"]));
        assert_eq!(
            patch,
            json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1",
                "kind": "FederatedIngress",
                "metadata": {"name": "web", "uid": "u-1", "finalizers": [FINALIZER]},
            })
        );
    }

    #[test]
    fn the_remove_patch_tests_the_entry_it_removes() {
        let fi = object(&["other/a", FINALIZER, "other/b"]);
        let mut doc = serde_json::to_value(&fi).expect("serializes");
        let index = index_of(&fi).expect("carries the finalizer");
        let patch: json_patch::Patch =
            serde_json::from_value(remove_patch(index)).expect("a JSON patch");
        json_patch::patch(&mut doc, &patch).expect("applies");
        assert_eq!(doc["metadata"]["finalizers"], json!(["other/a", "other/b"]));
    }

    #[test]
    fn the_remove_patch_fails_when_the_list_moved() {
        let mut doc = serde_json::to_value(object(&[FINALIZER, "other/b"])).expect("serializes");
        // Computed from a stale view where the finalizer was second.
        let patch: json_patch::Patch =
            serde_json::from_value(remove_patch(1)).expect("a JSON patch");
        assert!(json_patch::patch(&mut doc, &patch).is_err());
    }
}
