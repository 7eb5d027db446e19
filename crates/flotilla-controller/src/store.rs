//! Waiting for a reflector store to be listed.
use std::time::Duration;

use kube::runtime::reflector::Store;

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
