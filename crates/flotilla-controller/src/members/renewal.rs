//! Renews a member's token before it expires and writes it back to the host Secret.
//!
//! Runs inside the member's agent: a new Secret version replaces the agent, and with it this
//! loop, so after one successful write it only waits to be replaced.
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource as _};
use serde_json::json;

use flotilla_api::member_cluster::MemberCluster;

use super::token::{TokenClaims, request_token, with_token};
use crate::context::Context;

/// What the agent needs to renew its member's token.
#[derive(Clone)]
pub struct Renewal {
    /// The credentials Secret on the host (in the operator's namespace) and its key.
    pub secret: String,
    pub key: String,
    /// The kubeconfig text the agent was started from.
    pub kubeconfig: String,
    pub claims: TokenClaims,
}

/// When the operator renews, in percent of a token's lifetime (`--member-token-renew-percent`).
pub const DEFAULT_RENEW_PERCENT: u8 = 80;

/// Waits until the token is due, renews it (retrying with backoff until it expires), writes it.
pub async fn run(ctx: Arc<Context>, member: MemberCluster, client: Client, renewal: Renewal) {
    let name = member.metadata.name.clone().unwrap_or_default();
    let due = renewal.claims.renew_at(ctx.token_renew_percent);
    tracing::debug!(member = %name, renew_at = %due, expires_at = %renewal.claims.expires_at, "member token renewal scheduled");
    sleep_until(due).await;
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(5))
        .with_max_delay(Duration::from_secs(300))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match renew(&ctx, &client, &renewal).await {
            Ok(()) => {
                tracing::info!(member = %name, "member token renewed");
                ctx.event(
                    &member.object_ref(&()),
                    false,
                    "TokenRenewed",
                    "RenewCredentials",
                    format!(
                        "issued a new token for ServiceAccount {}/{} in member {name}; the previous one expires at {}",
                        renewal.claims.namespace,
                        renewal.claims.service_account,
                        renewal.claims.expires_at
                    ),
                )
                .await;
                // The Secret changed: the MemberCluster controller replaces this agent.
                futures::future::pending::<()>().await;
            }
            Err(message) => {
                tracing::warn!(member = %name, error = %message, "member token renewal failed; retrying");
                ctx.event(
                    &member.object_ref(&()),
                    true,
                    "TokenRenewalFailed",
                    "RenewCredentials",
                    format!(
                        "could not renew the token of member {name} (it expires at {}): {message}. If it has expired, re-run `flotilla join {name}` with the member's admin credentials.",
                        renewal.claims.expires_at
                    ),
                )
                .await;
            }
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(300));
        tokio::time::sleep(delay).await;
    }
}

async fn sleep_until(at: Timestamp) {
    let wait = at.duration_since(Timestamp::now());
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
}

/// Why no new kubeconfig could be made.
#[derive(Debug)]
pub enum RenewalFailure {
    /// The member did not issue a token (an expired or revoked one cannot ask for another).
    Refused(kube::Error),
    /// The kubeconfig could not be rewritten with the new token.
    Unwritable(&'static str),
}

/// The merge patch that puts a new token into the credentials Secret: the token is issued by
/// the member to `client`, which holds the current one. Shared by the operator's renewal and
/// `flotilla join --rotate`, which each write it their own way.
pub async fn renewed_secret_patch(
    client: &Client,
    renewal: &Renewal,
) -> Result<serde_json::Value, RenewalFailure> {
    let token = request_token(client, &renewal.claims)
        .await
        .map_err(RenewalFailure::Refused)?;
    let text = with_token(&renewal.kubeconfig, &token).map_err(RenewalFailure::Unwritable)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    Ok(json!({"data": {renewal.key.as_str(): encoded}}))
}

/// One renewal: a new token from the member, written into the host Secret.
async fn renew(ctx: &Context, client: &Client, renewal: &Renewal) -> Result<(), String> {
    let patch = renewed_secret_patch(client, renewal)
        .await
        .map_err(|failure| match failure {
            RenewalFailure::Refused(e) => crate::members::probe::error_chain(&e),
            RenewalFailure::Unwritable(message) => message.to_owned(),
        })?;
    let secrets: Api<Secret> = Api::namespaced(ctx.host.clone(), &ctx.namespace);
    ctx.lease
        .fence(secrets.patch(
            &renewal.secret,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ))
        .await
        .map_err(|_| "this replica is not the leader".to_owned())?
        .map_err(|e| {
            format!(
                "cannot write Secret {}/{}: {e}",
                ctx.namespace, renewal.secret
            )
        })?;
    Ok(())
}
