//! Which member resource a copy's kind is, per member: the plural and scope come from the
//! member's own discovery (a custom resource is served only once its CRD is established
//! there), and which kinds may be federated at all (the allowlist).
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, oneshot};

/// How long "not served" is believed before discovery is asked again: objects waiting for the
/// same CRD share one discovery call.
const NOT_SERVED_TTL: Duration = Duration::from_secs(1);

/// A kind as found in one member.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Served {
        resource: ApiResource,
        namespaced: bool,
    },
    /// The member does not serve this kind (yet).
    NotServed(String),
    /// Discovery failed (transport, permissions): retried.
    Failed(String),
}

pub struct Kinds {
    served: RwLock<HashMap<(String, String), (ApiResource, bool)>>,
    not_served: RwLock<HashMap<(String, String), (Instant, String)>>,
    /// Members that may serve new kinds now (a CRD became established there).
    changed: tokio::sync::broadcast::Sender<String>,
}

impl Default for Kinds {
    fn default() -> Self {
        Self {
            served: RwLock::default(),
            not_served: RwLock::default(),
            changed: tokio::sync::broadcast::channel(64).0,
        }
    }
}

pub fn gvk_key(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}/{}", gvk.version, gvk.kind)
    } else {
        format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind)
    }
}

impl Kinds {
    /// `gvk` in `member`, from the cache or the member's discovery.
    pub async fn resolve(
        &self,
        member: &str,
        client: &Client,
        gvk: &GroupVersionKind,
    ) -> Resolution {
        let key = (member.to_string(), gvk_key(gvk));
        if let Some((resource, namespaced)) = self
            .served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Resolution::Served {
                resource: resource.clone(),
                namespaced: *namespaced,
            };
        }
        if let Some((at, why)) = self
            .not_served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < NOT_SERVED_TTL
        {
            return Resolution::NotServed(why.clone());
        }
        match oneshot::pinned_kind(client, gvk).await {
            Ok((resource, caps)) => {
                let namespaced = caps.scope == Scope::Namespaced;
                self.served
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), (resource.clone(), namespaced));
                self.not_served
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                Resolution::Served {
                    resource,
                    namespaced,
                }
            }
            Err(e) if not_served(&e) => {
                let why = format!(
                    "the member does not serve {} {} yet",
                    gvk.api_version(),
                    gvk.kind
                );
                self.no_longer_served(member, gvk, &why);
                Resolution::NotServed(why)
            }
            Err(e) => Resolution::Failed(super::truncate::message(&format!(
                "discovering {}: {e}",
                gvk.kind
            ))),
        }
    }

    /// The resource of `gvk` as any member serves it (the plural is the same everywhere).
    pub fn known(&self, gvk: &GroupVersionKind) -> Option<ApiResource> {
        let key = gvk_key(gvk);
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|((_, k), _)| *k == key)
            .map(|(_, (r, _))| r.clone())
    }

    /// A CRD became established in `member`: what it did not serve is asked again, and the
    /// objects waiting for a kind there are reconciled at once (not at their next backoff).
    pub fn may_serve_more(&self, member: &str) {
        self.not_served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(m, _), _| m != member);
        let _ = self.changed.send(member.to_string());
    }

    /// Members that may serve new kinds, as they come (see [`Self::may_serve_more`]).
    pub fn changes(&self) -> impl futures::Stream<Item = String> + Send + 'static {
        futures::stream::unfold(self.changed.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(member) => return Some((member, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// The member answered that it does not serve `gvk` any more (its CRD was deleted): believed
    /// like a discovery miss, so the next resolve asks discovery again.
    pub fn no_longer_served(&self, member: &str, gvk: &GroupVersionKind, why: &str) {
        let key = (member.to_string(), gvk_key(gvk));
        self.served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.not_served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), why.to_string()));
    }

    /// Forgets what a member served (its credentials or cluster changed).
    pub fn forget_member(&self, member: &str) {
        self.served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(m, _), _| m != member);
        self.not_served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(m, _), _| m != member);
    }
}

fn not_served(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}
