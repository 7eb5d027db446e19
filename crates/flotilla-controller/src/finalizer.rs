//! Adding and removing Flotilla's finalizer without clobbering anyone else's: a merge patch of the
//! whole list, guarded by the resourceVersion it was computed from.
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;

/// The finalizer on host objects whose member copies must be cleaned up first.
pub const FINALIZER: &str = "federation.flotilla.dev/cleanup";

/// Whether the object carries the finalizer.
pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// Adds the finalizer; returns the updated object.
pub async fn add<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers = obj.meta().finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    patch_finalizers(api, obj, finalizers).await
}

/// Removes the finalizer.
pub async fn remove<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers: Vec<String> = obj
        .meta()
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    patch_finalizers(api, obj, finalizers).await
}

async fn patch_finalizers<K>(
    api: &Api<K>,
    obj: &K,
    finalizers: Vec<String>,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            // A conflict (409) if the list changed since we read it; the reconcile retries.
            "resourceVersion": obj.meta().resource_version,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}
