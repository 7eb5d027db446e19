//! A member's cluster identity: the uid of its `kube-system` namespace, which every cluster has
//! and no two clusters share. Two MemberClusters reaching one cluster (a second Secret for
//! member1, say) would otherwise each prune, through the other, the copies only one applied.
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};

use super::probe::error_chain;

/// The uid of the member's `kube-system` namespace.
pub async fn read(client: &Client, timeout: Duration) -> Result<String, String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let why = |e: String| {
        format!(
            "cannot read namespace kube-system to identify the cluster (the member role needs get on namespaces): {}",
            crate::propagation::truncate::message(&e)
        )
    };
    match tokio::time::timeout(timeout, api.get_metadata("kube-system")).await {
        Ok(Ok(ns)) => ns.metadata.uid.ok_or_else(|| why("it has no uid".into())),
        Ok(Err(e)) => Err(why(error_chain(&e))),
        Err(_) => Err(why(format!("no answer within {timeout:?}"))),
    }
}

/// The condition message of a member that duplicates `holder`.
pub fn duplicate_message(name: &str, holder: &str) -> String {
    format!(
        "{name} reaches the same cluster as MemberCluster {holder} (same kube-system namespace uid), which was registered first; {name} is not used. Delete one of the two MemberClusters."
    )
}
