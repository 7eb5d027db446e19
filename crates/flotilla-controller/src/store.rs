//! Waiting for a reflector store to be listed.
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::Store;
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
