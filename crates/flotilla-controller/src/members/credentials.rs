//! Member credentials: a kubeconfig held in a Secret in the operator's namespace, turned into a
//! client. Every way this can fail has its own reason, shown on the MemberCluster's conditions.
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use flotilla_api::member_cluster::SecretKeyReference;

/// Why a member's credentials could not be turned into a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsProblem {
    /// CamelCase reason for the condition.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl CredentialsProblem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Timeouts applied to every request a member client makes, so a hung member cannot hold a
/// reconcile for long.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        }
    }
}

/// Longer than the server's watch timeout (kube's watcher asks for 290 s): only a connection
/// that says nothing for longer than that is dead.
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(330);

/// The clients of one member, each with a connection pool of its own.
#[derive(Clone)]
pub struct MemberClients {
    /// For requests about the copies (short read timeout: a hung member cannot hold a
    /// request for long).
    pub work: Client,
    /// For long-lived watches: a watch is idle while nothing changes, and the work client's
    /// read timeout would cut it every few seconds.
    pub watch: Client,
    /// For the health probe alone: a probe queued behind a burst of copy requests on a shared
    /// client timed out, and marked a healthy but busy member NotReady.
    pub probe: Client,
}

/// Reads the Secret. `Ok(None)` when it does not exist.
pub async fn read_secret(
    host: &Client,
    namespace: &str,
    secret_ref: &SecretKeyReference,
) -> Result<Secret, CredentialsProblem> {
    let api: Api<Secret> = Api::namespaced(host.clone(), namespace);
    match api.get_opt(&secret_ref.name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => Err(CredentialsProblem::new(
            "SecretNotFound",
            format!("Secret {namespace}/{} does not exist", secret_ref.name),
        )),
        Err(e) => Err(CredentialsProblem::new(
            "SecretUnreadable",
            format!("cannot read Secret {namespace}/{}: {e}", secret_ref.name),
        )),
    }
}

/// Extracts the kubeconfig from the Secret and builds the clients for its current context.
pub async fn clients_from_secret(
    secret: &Secret,
    secret_ref: &SecretKeyReference,
    timeouts: ClientTimeouts,
) -> Result<(MemberClients, String), CredentialsProblem> {
    let name = secret.metadata.name.as_deref().unwrap_or(&secret_ref.name);
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&secret_ref.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&secret_ref.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            CredentialsProblem::new(
                "SecretKeyMissing",
                format!("Secret {name} has no key {:?}", secret_ref.key),
            )
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CredentialsProblem::new(
            "InvalidKubeconfig",
            format!("Secret {name} key {:?} is not UTF-8 text", secret_ref.key),
        )
    })?;
    clients_from_kubeconfig(&text, timeouts)
        .await
        .map_err(|message| {
            CredentialsProblem::new(
                "InvalidKubeconfig",
                format!("Secret {name} key {:?}: {message}", secret_ref.key),
            )
        })
}

/// Builds the clients for the kubeconfig's current context; returns them with the server URL.
pub async fn clients_from_kubeconfig(
    text: &str,
    timeouts: ClientTimeouts,
) -> Result<(MemberClients, String), String> {
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("unusable kubeconfig: {e}"))?;
    config.connect_timeout = Some(timeouts.connect);
    config.read_timeout = Some(timeouts.request);
    config.write_timeout = Some(timeouts.request);
    let server = config.cluster_url.to_string();
    let client = |config: kube::Config| {
        Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
    };
    let mut watch_config = config.clone();
    watch_config.read_timeout = Some(WATCH_READ_TIMEOUT);
    let clients = MemberClients {
        work: client(config.clone())?,
        watch: client(watch_config)?,
        probe: client(config)?,
    };
    Ok((clients, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret_with(key: &str, value: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("m1".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    fn reference() -> SecretKeyReference {
        SecretKeyReference {
            name: "m1".into(),
            key: "kubeconfig".into(),
        }
    }

    /// The problem, or a panic if a client was built.
    async fn problem_of(secret: Secret) -> CredentialsProblem {
        match clients_from_secret(&secret, &reference(), ClientTimeouts::default()).await {
            Ok(_) => panic!("expected the credentials to be rejected"),
            Err(p) => p,
        }
    }

    #[tokio::test]
    async fn missing_key_is_reported() {
        let err = problem_of(secret_with("other", "x")).await;
        assert_eq!(err.reason, "SecretKeyMissing");
    }

    #[tokio::test]
    async fn garbage_is_an_invalid_kubeconfig() {
        let err = problem_of(secret_with("kubeconfig", "{{{ not yaml")).await;
        assert_eq!(err.reason, "InvalidKubeconfig");
    }

    #[tokio::test]
    async fn kubeconfig_without_contexts_is_invalid() {
        let err = problem_of(secret_with(
            "kubeconfig",
            "apiVersion: v1\nkind: Config\nclusters: []\n",
        ))
        .await;
        assert_eq!(err.reason, "InvalidKubeconfig");
    }
}
