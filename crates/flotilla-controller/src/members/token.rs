//! Member credentials that expire: bound ServiceAccount tokens issued through the TokenRequest
//! API, renewed before they expire.
//!
//! `flotilla join` issues a token with an expiry (default 24 h) for the operator's ServiceAccount
//! in the member; the member role lets that ServiceAccount request tokens for itself and nobody
//! else. The operator reads the token's own claims (issued at, expires at, which
//! ServiceAccount) to know when to renew, asks the member for a new one with its current token,
//! and writes the kubeconfig with the new token back to the host Secret, where the MemberCluster
//! controller picks it up like any other credentials change. The claims are read, not verified:
//! they only schedule the renewal, and the member's API server is what judges the token.
//!
//! A token without an expiry (a legacy token Secret's, a static token) or client certificates
//! are never renewed here.
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use secrecy::{ExposeSecret as _, SecretString};

/// The shortest lifetime the TokenRequest API accepts.
pub const MIN_LIFETIME: Duration = Duration::from_secs(600);

/// What the operator learns from a ServiceAccount token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The ServiceAccount's namespace and name.
    pub namespace: String,
    pub service_account: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

impl TokenClaims {
    /// The claims of a ServiceAccount token that expires; `None` for anything else (a token that
    /// is not a JWT, a legacy token without `exp`, a token of a user).
    pub fn of(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let subject = claims.get("sub")?.as_str()?;
        let mut parts = subject.strip_prefix("system:serviceaccount:")?.split(':');
        let (namespace, service_account) = (parts.next()?, parts.next()?);
        if namespace.is_empty() || service_account.is_empty() || parts.next().is_some() {
            return None;
        }
        let seconds = |key: &str| {
            claims
                .get(key)?
                .as_i64()
                .and_then(|s| Timestamp::from_second(s).ok())
        };
        let (issued_at, expires_at) = (seconds("iat")?, seconds("exp")?);
        (expires_at > issued_at).then(|| Self {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            issued_at,
            expires_at,
        })
    }

    /// How long the token was issued for.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.issued_at)
            .unsigned_abs()
            .max(MIN_LIFETIME)
    }

    /// When to renew: after `percent` of the lifetime (the kubelet renews projected tokens at
    /// 80 %), leaving the rest for retries.
    pub fn renew_at(&self, percent: u8) -> Timestamp {
        let lifetime = self.expires_at.duration_since(self.issued_at);
        let share = lifetime.as_secs_f64() * f64::from(percent.clamp(1, 99)) / 100.0;
        self.issued_at
            .checked_add(jiff::SignedDuration::from_secs_f64(share))
            .unwrap_or(self.expires_at)
    }
}

/// The bearer token of a kubeconfig's current context, if it has one.
pub fn current_token(kubeconfig: &Kubeconfig) -> Option<&str> {
    current_user(kubeconfig)
        .and_then(|name| kubeconfig.auth_infos.iter().find(|a| a.name == name))
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|u| u.token.as_ref())
        .map(|t| t.expose_secret())
}

fn current_user(kubeconfig: &Kubeconfig) -> Option<&str> {
    let context = kubeconfig.current_context.as_deref()?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .user
        .as_deref()
}

/// The kubeconfig text with the current context's token replaced, as YAML. Every other field is
/// kept as it was parsed.
pub fn with_token(text: &str, token: &str) -> Result<String, &'static str> {
    let mut kubeconfig =
        Kubeconfig::from_yaml(text).map_err(|_| "the kubeconfig no longer parses")?;
    let user = current_user(&kubeconfig)
        .ok_or("the kubeconfig's current context has no user")?
        .to_owned();
    let auth = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_mut())
        .ok_or("the kubeconfig's current context names no user it defines")?;
    auth.token = Some(SecretString::from(token.to_owned()));
    serde_saphyr::to_string(&kubeconfig).map_err(|_| "the kubeconfig cannot be written back")
}

/// Asks the member for a new token of the same ServiceAccount and lifetime, with the member
/// client that holds the current token.
pub async fn request_token(
    member: &kube::Client,
    claims: &TokenClaims,
) -> Result<String, kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(member.clone(), &claims.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(i64::try_from(claims.lifetime().as_secs()).unwrap_or(86_400)),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let issued = api
        .create_token_request(&claims.service_account, &PostParams::default(), &request)
        .await?;
    issued
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            kube::Error::Service(Box::<dyn std::error::Error + Send + Sync>::from(
                "the member answered the TokenRequest without a token",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let encode = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.signature",
            encode(br#"{"alg":"RS256"}"#),
            encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn service_account_claims_are_read() {
        let token = jwt(serde_json::json!({
            "sub": "system:serviceaccount:flotilla-system:flotilla-m1",
            "iat": 1_000_000, "exp": 1_086_400
        }));
        let claims = TokenClaims::of(&token).expect("claims");
        assert_eq!(claims.namespace, "flotilla-system");
        assert_eq!(claims.service_account, "flotilla-m1");
        assert_eq!(claims.lifetime(), Duration::from_secs(86_400));
        assert_eq!(
            claims.renew_at(80),
            Timestamp::from_second(1_000_000 + 69_120).expect("timestamp")
        );
    }

    #[test]
    fn tokens_that_do_not_expire_or_are_not_service_accounts_are_not_renewed() {
        for claims in [
            serde_json::json!({"sub": "system:serviceaccount:ns:sa", "iat": 1}),
            serde_json::json!({"sub": "admin", "iat": 1, "exp": 700}),
            serde_json::json!({"sub": "system:serviceaccount:ns", "iat": 1, "exp": 700}),
            serde_json::json!({"sub": "system:serviceaccount:ns:sa", "iat": 700, "exp": 1}),
        ] {
            assert_eq!(TokenClaims::of(&jwt(claims.clone())), None, "{claims}");
        }
        for token in ["", "abc", "a.b.c", "a.!!!.c", "static-token"] {
            assert_eq!(TokenClaims::of(token), None, "{token}");
        }
    }

    #[test]
    fn the_token_is_replaced_and_everything_else_kept() {
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Q0E=\nusers:\n- name: u\n  user:\n    token: old\n- name: other\n  user:\n    token: untouched\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
        let written = with_token(text, "new").expect("rewritten");
        let parsed = Kubeconfig::from_yaml(&written).expect("parses");
        assert_eq!(current_token(&parsed), Some("new"));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        let other = parsed
            .auth_infos
            .iter()
            .find(|a| a.name == "other")
            .and_then(|a| a.auth_info.as_ref())
            .and_then(|u| u.token.as_ref())
            .expect("the other user's token");
        assert_eq!(other.expose_secret(), "untouched");
        assert!(with_token("{{{", "new").is_err());
    }
}
