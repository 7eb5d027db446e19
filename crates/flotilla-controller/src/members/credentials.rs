//! Member credentials: a kubeconfig held in a labelled Secret in the operator's namespace, turned
//! into a client. Every way this can fail has its own reason, shown on the MemberCluster's
//! conditions. Only Secrets labelled [`MEMBER_CREDENTIALS`]`=true` are ever read, and their
//! kubeconfig is taken as data through [`kubeconfig_policy`](super::kubeconfig_policy): kube's
//! kubeconfig loader, which runs plugins and reads files, is never called on it.
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client};

use flotilla_api::labels::{MEMBER_CREDENTIALS, MEMBER_CREDENTIALS_VALUE};
use flotilla_api::member_cluster::SecretKeyReference;

use super::kubeconfig_policy::{self, MemberEndpoint, PolicyOptions};
use super::renewal::Renewal;
use super::token::{TokenClaims, current_token};

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

/// The label selector of member credential Secrets.
pub fn credentials_selector() -> String {
    format!("{MEMBER_CREDENTIALS}={MEMBER_CREDENTIALS_VALUE}")
}

/// Reads the Secret, if it is labelled as member credentials. An unlabelled Secret's data is never
/// fetched: it is listed by name and label, and only its existence is checked otherwise.
pub async fn read_secret(
    host: &Client,
    namespace: &str,
    secret_ref: &SecretKeyReference,
) -> Result<Secret, CredentialsProblem> {
    let api: Api<Secret> = Api::namespaced(host.clone(), namespace);
    let name = &secret_ref.name;
    let unreadable = |e: kube::Error| {
        CredentialsProblem::new(
            "SecretUnreadable",
            format!("cannot read Secret {namespace}/{name}: {e}"),
        )
    };
    let labelled = ListParams::default()
        .labels(&credentials_selector())
        .fields(&format!("metadata.name={name}"));
    let found = api.list(&labelled).await.map_err(unreadable)?;
    if let Some(secret) = found.items.into_iter().next() {
        return Ok(secret);
    }
    match api.get_metadata_opt(name).await.map_err(unreadable)? {
        Some(_) => Err(CredentialsProblem::new(
            "SecretNotLabelled",
            format!(
                "Secret {namespace}/{name} is not labelled {}; the operator reads only Secrets \
                 labelled as member credentials. Label it: kubectl -n {namespace} label secret \
                 {name} {}",
                credentials_selector(),
                credentials_selector()
            ),
        )),
        None => Err(CredentialsProblem::new(
            "SecretNotFound",
            format!("Secret {namespace}/{name} does not exist"),
        )),
    }
}

/// Extracts the kubeconfig from the Secret and builds the clients for its current context.
pub fn clients_from_secret(
    secret: &Secret,
    secret_ref: &SecretKeyReference,
    timeouts: ClientTimeouts,
    policy: PolicyOptions,
) -> Result<(MemberClients, String), CredentialsProblem> {
    let text = kubeconfig_text(secret, secret_ref)?;
    let name = secret.metadata.name.as_deref().unwrap_or(&secret_ref.name);
    let endpoint = kubeconfig_policy::evaluate(&text, policy).map_err(|e| {
        CredentialsProblem::new(
            e.reason(),
            format!("Secret {name} key {:?}: {e}", secret_ref.key),
        )
    })?;
    clients_for(endpoint, timeouts).map_err(|message| {
        CredentialsProblem::new(
            kubeconfig_policy::INVALID_KUBECONFIG,
            format!("Secret {name} key {:?}: {message}", secret_ref.key),
        )
    })
}

/// How to renew the Secret's token, when it is a ServiceAccount token that expires.
pub fn renewal_of(secret: &Secret, secret_ref: &SecretKeyReference) -> Option<Renewal> {
    let kubeconfig = kubeconfig_text(secret, secret_ref).ok()?;
    let parsed = kube::config::Kubeconfig::from_yaml(&kubeconfig).ok()?;
    let claims = TokenClaims::of(current_token(&parsed)?)?;
    Some(Renewal {
        secret: secret_ref.name.clone(),
        key: secret_ref.key.clone(),
        kubeconfig,
        claims,
    })
}

/// The kubeconfig text under the Secret's key.
fn kubeconfig_text(
    secret: &Secret,
    secret_ref: &SecretKeyReference,
) -> Result<String, CredentialsProblem> {
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
    String::from_utf8(bytes).map_err(|_| {
        CredentialsProblem::new(
            "InvalidKubeconfig",
            format!("Secret {name} key {:?} is not UTF-8 text", secret_ref.key),
        )
    })
}

/// Builds the clients from the accepted fields alone; returns them with the server URL.
pub fn clients_for(
    endpoint: MemberEndpoint,
    timeouts: ClientTimeouts,
) -> Result<(MemberClients, String), &'static str> {
    let server = endpoint.server.to_string();
    let mut config = kube::Config::new(endpoint.server);
    config.root_cert = endpoint.ca_certificates;
    config.tls_server_name = endpoint.tls_server_name;
    config.accept_invalid_certs = endpoint.insecure_skip_tls_verify;
    config.auth_info = endpoint.auth;
    config.connect_timeout = Some(timeouts.connect);
    config.read_timeout = Some(timeouts.request);
    config.write_timeout = Some(timeouts.request);
    crate::user_agent::apply(&mut config);
    // kube's errors here can quote the certificate or key it failed on: a fixed text instead.
    let client = |config: kube::Config| {
        Client::try_from(config)
            .map_err(|_| "cannot build a client from the kubeconfig's data (is the client certificate and key pair valid?)")
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
    fn problem_of(secret: Secret) -> CredentialsProblem {
        match clients_from_secret(
            &secret,
            &reference(),
            ClientTimeouts::default(),
            PolicyOptions::default(),
        ) {
            Ok(_) => panic!("expected the credentials to be rejected"),
            Err(p) => p,
        }
    }

    #[test]
    fn missing_key_is_reported() {
        let err = problem_of(secret_with("other", "x"));
        assert_eq!(err.reason, "SecretKeyMissing");
    }

    #[test]
    fn garbage_is_an_invalid_kubeconfig() {
        let err = problem_of(secret_with("kubeconfig", "{{{ not yaml"));
        assert_eq!(err.reason, "InvalidKubeconfig");
    }

    #[test]
    fn kubeconfig_without_contexts_is_invalid() {
        let err = problem_of(secret_with(
            "kubeconfig",
            "apiVersion: v1\nkind: Config\nclusters: []\n",
        ));
        assert_eq!(err.reason, "InvalidKubeconfig");
    }

    #[test]
    fn exec_is_unsupported_and_not_echoed() {
        let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch /tmp/flotilla-marker\"]\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
        let err = problem_of(secret_with("kubeconfig", kubeconfig));
        assert_eq!(err.reason, "UnsupportedCredentials");
        assert!(err.message.contains("user.exec"), "{}", err.message);
        assert!(!err.message.contains("touch"), "{}", err.message);
        assert!(!err.message.contains("/bin/sh"), "{}", err.message);
    }
}
