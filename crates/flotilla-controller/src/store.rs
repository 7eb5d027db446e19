//! Waiting for a reflector store to be listed, and reading live objects from one.
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::de::DeserializeOwned;

/// What a typed watch and its reflector store need of a kind with a static type: one name for
/// the bound list the member watches and the policy runtime's stores share.
pub trait WatchedKind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> WatchedKind for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The object `reference` names if it is still the one with `uid` (not a replacement of the same
/// name) and is not being deleted.
pub fn live<K>(store: &Store<K>, reference: &ObjectRef<K>, uid: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(reference)
        .filter(|o| o.meta().uid.as_deref() == Some(uid) && o.meta().deletion_timestamp.is_none())
}

/// Resolves once the store has listed. `Store::wait_until_ready` keeps only the most recent
/// waiter's waker (it wraps a oneshot receiver), so when the Controller also waits on the same
/// store, an earlier waiter is never woken. Re-polling with a short timeout sidesteps that.
pub async fn wait_until_listed<K>(store: &Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await
        {
            return;
        }
    }
}
