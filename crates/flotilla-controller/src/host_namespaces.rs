//! The host's namespaces and their labels, for `MemberCluster.spec.namespaces` selectors.
//!
//! One metadata-only watch: the labels are all a placement needs. Until it has listed, every
//! namespace reads as unlabelled, which a selector never admits, so the operator waits for the
//! list before its controllers start (a selector must not prune copies on a half-read cache).
use std::collections::BTreeMap;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

/// A shared, read-only view of the host's namespaces.
#[derive(Clone)]
pub struct HostNamespaces {
    store: Store<PartialObjectMeta<Namespace>>,
}

impl HostNamespaces {
    /// Starts the watch and returns once it has listed.
    pub async fn start(host: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        // `Api<PartialObjectMeta<_>>` asks for metadata only.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(host);
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "host namespace watch failed; retrying");
                }
                futures::future::ready(())
            });
        tokio::spawn(stream);
        crate::store::wait_until_listed(&store).await;
        Self { store }
    }

    /// The namespace's labels (none for a namespace that does not exist).
    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        self.store
            .get(&ObjectRef::new(name))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }
}
