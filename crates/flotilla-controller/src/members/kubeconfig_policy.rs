//! The member kubeconfig is data, not code.
//!
//! Anyone who can write a Secret in the operator's namespace chooses what the kubeconfig in it
//! says. kube's kubeconfig loader would honour all of it: run `exec` plugins and `auth-provider`
//! commands as the operator's user, read local files named by path fields (in a pod, the
//! operator's own ServiceAccount token) and send them to a server the Secret names, go through a
//! proxy, or skip TLS verification. So the kubeconfig is parsed here, and only the data fields of
//! its current context are taken: the server URL (https), the inline CA, and an inline bearer token
//! or inline client certificate and key. Anything else is rejected by name.
//!
//! Messages never contain the Secret's content: field names and fixed texts only (parser errors
//! can quote the input, so they are replaced by a fixed text too).
use std::collections::BTreeSet;

use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Kubeconfig};
use secrecy::ExposeSecret as _;

/// Condition reason for a kubeconfig that asks for something Flotilla does not do with member
/// credentials (run a command, read a file, use a proxy, skip TLS verification, ...).
pub const UNSUPPORTED_CREDENTIALS: &str = "UnsupportedCredentials";
/// Condition reason for a value that is not a usable kubeconfig at all.
pub const INVALID_KUBECONFIG: &str = "InvalidKubeconfig";

/// What the policy allows beyond the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Development only (`--allow-insecure-member-tls`): accept `http://` servers and
    /// `insecure-skip-tls-verify: true`.
    pub allow_insecure_tls: bool,
}

/// How a member is reached: everything taken from the kubeconfig, and nothing else.
#[derive(Debug, Clone)]
pub struct MemberEndpoint {
    pub server: http::Uri,
    /// DER certificates of the inline CA; `None` means the system's roots.
    pub ca_certificates: Option<Vec<Vec<u8>>>,
    /// The name the server certificate must carry, when it is not the URL's host.
    pub tls_server_name: Option<String>,
    /// Only ever true with [`PolicyOptions::allow_insecure_tls`].
    pub insecure_skip_tls_verify: bool,
    /// Holds only `token`, `client-certificate-data` and `client-key-data`.
    pub auth: AuthInfo,
}

/// Why a kubeconfig was refused. The texts name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the value is not a kubeconfig (it does not parse as YAML of that shape)")]
    Unparsable,
    #[error("the kubeconfig has no current-context")]
    NoCurrentContext,
    #[error("the kubeconfig's current-context names no context, cluster or user it defines")]
    DanglingReference,
    #[error("the current context's cluster has no server")]
    NoServer,
    #[error("the current context's cluster.server is not a valid URL")]
    BadServer,
    #[error(
        "the current context has no credentials: set user.token, or user.client-certificate-data with user.client-key-data"
    )]
    NoCredentials,
    #[error("{0} is not base64-encoded PEM")]
    BadPem(&'static str),
    #[error("{}", unsupported_message(.fields, .insecure_only))]
    Unsupported {
        /// Field names (with their place: `cluster.`, `user.`), sorted.
        fields: Vec<String>,
        /// Every offending field would be accepted with the development flag.
        insecure_only: bool,
    },
}

fn unsupported_message(fields: &[String], insecure_only: &bool) -> String {
    let flag = if *insecure_only {
        " without --allow-insecure-member-tls"
    } else {
        ""
    };
    format!(
        "the kubeconfig uses {} which Flotilla does not accept from a Secret{flag}. Only \
         cluster.server (https), cluster.certificate-authority-data, cluster.tls-server-name, and \
         user.token or user.client-certificate-data with user.client-key-data are read; commands, \
         files, proxies and impersonation are never used",
        fields.join(", ")
    )
}

impl PolicyError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsupported { .. } => UNSUPPORTED_CREDENTIALS,
            _ => INVALID_KUBECONFIG,
        }
    }
}

/// Parses `text` and returns the endpoint of its current context, if it is only data.
pub fn evaluate(text: &str, options: PolicyOptions) -> Result<MemberEndpoint, PolicyError> {
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|_| PolicyError::Unparsable)?;
    let context_name = kubeconfig
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(PolicyError::NoCurrentContext)?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or(PolicyError::DanglingReference)?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or(PolicyError::DanglingReference)?;
    // A context without a user is anonymous: no credentials, reported below.
    let default_user = AuthInfo::default();
    let user = match &context.user {
        Some(name) => kubeconfig
            .auth_infos
            .iter()
            .find(|u| &u.name == name)
            .and_then(|u| u.auth_info.as_ref())
            .ok_or(PolicyError::DanglingReference)?,
        None => &default_user,
    };

    let mut refused = Refused::default();
    cluster_fields(cluster, &mut refused);
    user_fields(user, &mut refused);
    let server = server_of(cluster, &mut refused);
    let insecure_skip_tls_verify = cluster.insecure_skip_tls_verify == Some(true);
    if insecure_skip_tls_verify {
        refused.insecure("cluster.insecure-skip-tls-verify");
    }
    // Refused fields first: they say more than a missing or malformed server.
    refused.into_result(options)?;
    let server = server?;

    let ca_certificates = cluster
        .certificate_authority_data
        .as_deref()
        .map(|data| pem_certificates(data, "cluster.certificate-authority-data"))
        .transpose()?;
    let auth = credentials_of(user)?;
    Ok(MemberEndpoint {
        server,
        ca_certificates,
        tls_server_name: cluster.tls_server_name.clone(),
        insecure_skip_tls_verify,
        auth,
    })
}

/// The offending fields found so far.
#[derive(Default)]
struct Refused {
    always: BTreeSet<String>,
    /// Allowed with `--allow-insecure-member-tls`.
    insecure: BTreeSet<String>,
}

impl Refused {
    fn field(&mut self, present: bool, name: &str) {
        if present {
            self.always.insert(name.to_string());
        }
    }

    fn insecure(&mut self, name: &str) {
        self.insecure.insert(name.to_string());
    }

    fn into_result(self, options: PolicyOptions) -> Result<(), PolicyError> {
        let insecure_only = self.always.is_empty();
        let mut fields = self.always;
        if !options.allow_insecure_tls {
            fields.extend(self.insecure);
        }
        if fields.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Unsupported {
                fields: fields.into_iter().collect(),
                insecure_only,
            })
        }
    }
}

fn cluster_fields(cluster: &Cluster, refused: &mut Refused) {
    refused.field(
        cluster.certificate_authority.is_some(),
        "cluster.certificate-authority",
    );
    refused.field(cluster.proxy_url.is_some(), "cluster.proxy-url");
    // Unknown keys are counted, not named: a key is Secret content too.
    if !cluster.other.is_empty() {
        refused.field(true, "cluster.<unrecognised fields>");
    }
}

fn user_fields(user: &AuthInfo, refused: &mut Refused) {
    let fields = [
        (user.exec.is_some(), "user.exec"),
        (user.auth_provider.is_some(), "user.auth-provider"),
        (user.token_file.is_some(), "user.tokenFile"),
        (user.client_certificate.is_some(), "user.client-certificate"),
        (user.client_key.is_some(), "user.client-key"),
        (user.username.is_some(), "user.username"),
        (user.password.is_some(), "user.password"),
        (user.impersonate.is_some(), "user.as"),
        (user.impersonate_uid.is_some(), "user.as-uid"),
        (user.impersonate_groups.is_some(), "user.as-groups"),
        (user.impersonate_user_extra.is_some(), "user.as-user-extra"),
        (!user.other.is_empty(), "user.<unrecognised fields>"),
    ];
    for (present, name) in fields {
        refused.field(present, name);
    }
}

/// The server URL; `http://` is only recorded as insecure here, the caller decides.
fn server_of(cluster: &Cluster, refused: &mut Refused) -> Result<http::Uri, PolicyError> {
    let text = cluster
        .server
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or(PolicyError::NoServer)?;
    let uri: http::Uri = text.trim().parse().map_err(|_| PolicyError::BadServer)?;
    let authority = uri.authority().ok_or(PolicyError::BadServer)?;
    // `https://user:password@host` would send credentials the kubeconfig hides in the URL.
    if authority.as_str().contains('@') {
        refused.field(true, "cluster.server (user info in the URL)");
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => refused.insecure("cluster.server (http://)"),
        _ => return Err(PolicyError::BadServer),
    }
    Ok(uri)
}

/// Only the inline credentials, checked to decode, in an otherwise empty [`AuthInfo`]: kube then
/// has nothing else to act on.
fn credentials_of(user: &AuthInfo) -> Result<AuthInfo, PolicyError> {
    let token = user
        .token
        .clone()
        .filter(|t| !t.expose_secret().trim().is_empty());
    let certificate = user.client_certificate_data.clone();
    let key = user.client_key_data.clone();
    match (&certificate, &key) {
        (Some(c), Some(k)) => {
            pem_blocks(c, "user.client-certificate-data")?;
            pem_blocks(k.expose_secret(), "user.client-key-data")?;
        }
        (Some(_), None) | (None, Some(_)) => return Err(PolicyError::NoCredentials),
        (None, None) if token.is_none() => return Err(PolicyError::NoCredentials),
        (None, None) => {}
    }
    Ok(AuthInfo {
        token,
        client_certificate_data: certificate,
        client_key_data: key,
        ..AuthInfo::default()
    })
}

/// The DER certificates in base64-encoded PEM.
fn pem_certificates(data: &str, field: &'static str) -> Result<Vec<Vec<u8>>, PolicyError> {
    let certificates: Vec<Vec<u8>> = pem_blocks(data, field)?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certificates.is_empty() {
        return Err(PolicyError::BadPem(field));
    }
    Ok(certificates)
}

fn pem_blocks(data: &str, field: &'static str) -> Result<Vec<pem::Pem>, PolicyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| PolicyError::BadPem(field))?;
    let blocks = pem::parse_many(bytes).map_err(|_| PolicyError::BadPem(field))?;
    if blocks.is_empty() {
        return Err(PolicyError::BadPem(field));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate, only for its shape.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQ2dQ8xGz1eV2G8F3Xk7f0nX6p1gwCgYIKoZIzj0EAwIw\nETEPMA0GA1UEAwwGdGVzdGNhMB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAwMDAw\nMFowETEPMA0GA1UEAwwGdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    const TOKEN: &str = "s3cr3t-t0ken-value-Zq9";

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// A kubeconfig with `cluster` and `user` (YAML mapping bodies, indented by 4).
    fn kubeconfig(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n{cluster}\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n"
        )
    }

    fn good_cluster() -> String {
        format!(
            "    server: https://127.0.0.1:6443\n    certificate-authority-data: {}",
            b64(CA_PEM)
        )
    }

    fn token_user() -> String {
        format!("    token: {TOKEN}")
    }

    fn strict() -> PolicyOptions {
        PolicyOptions::default()
    }

    fn rejected_fields(text: &str) -> Vec<String> {
        match evaluate(text, strict()) {
            Err(PolicyError::Unsupported { fields, .. }) => fields,
            other => panic!("expected UnsupportedCredentials, got {other:?}"),
        }
    }

    #[test]
    fn inline_token_and_ca_are_accepted() {
        let endpoint =
            evaluate(&kubeconfig(&good_cluster(), &token_user()), strict()).expect("accepted");
        assert_eq!(endpoint.server.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(endpoint.ca_certificates.map(|c| c.len()), Some(1));
        assert!(!endpoint.insecure_skip_tls_verify);
        assert_eq!(
            endpoint.auth.token.map(|t| t.expose_secret().to_string()),
            Some(TOKEN.to_string())
        );
    }

    #[test]
    fn inline_client_certificate_is_accepted() {
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}",
            b64(CA_PEM),
            b64(KEY_PEM)
        );
        let endpoint = evaluate(&kubeconfig(&good_cluster(), &user), strict()).expect("accepted");
        assert!(endpoint.auth.token.is_none());
        assert!(endpoint.auth.client_certificate_data.is_some());
        assert!(endpoint.auth.client_key_data.is_some());
    }

    #[test]
    fn exec_plugins_are_rejected() {
        let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch /tmp/pwned\"]";
        assert_eq!(
            rejected_fields(&kubeconfig(&good_cluster(), user)),
            ["user.exec"]
        );
    }

    #[test]
    fn auth_providers_are_rejected() {
        let user = "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n        cmd-args: -c id";
        assert_eq!(
            rejected_fields(&kubeconfig(&good_cluster(), user)),
            ["user.auth-provider"]
        );
    }

    #[test]
    fn every_path_field_is_rejected() {
        let cluster = "    server: https://127.0.0.1:6443\n    certificate-authority: /etc/ca.crt";
        let user = "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n    client-certificate: /tmp/c.crt\n    client-key: /tmp/c.key";
        assert_eq!(
            rejected_fields(&kubeconfig(cluster, user)),
            [
                "cluster.certificate-authority",
                "user.client-certificate",
                "user.client-key",
                "user.tokenFile"
            ]
        );
    }

    #[test]
    fn a_token_file_is_rejected_even_beside_an_inline_token() {
        let user = format!("{}\n    tokenFile: /etc/token", token_user());
        assert_eq!(
            rejected_fields(&kubeconfig(&good_cluster(), &user)),
            ["user.tokenFile"]
        );
    }

    #[test]
    fn proxies_basic_auth_and_impersonation_are_rejected() {
        let cluster = format!("{}\n    proxy-url: http://proxy:3128", good_cluster());
        let user = format!(
            "{}\n    username: admin\n    password: pw\n    as: system:admin\n    as-uid: \"0\"\n    as-groups: [system:masters]\n    as-user-extra: {{scopes: [all]}}",
            token_user()
        );
        assert_eq!(
            rejected_fields(&kubeconfig(&cluster, &user)),
            [
                "cluster.proxy-url",
                "user.as",
                "user.as-groups",
                "user.as-uid",
                "user.as-user-extra",
                "user.password",
                "user.username"
            ]
        );
    }

    #[test]
    fn unknown_fields_are_rejected_without_naming_them() {
        let user = format!("{}\n    {TOKEN}-like-key: x", token_user());
        let err = evaluate(&kubeconfig(&good_cluster(), &user), strict()).expect_err("rejected");
        assert_eq!(err.reason(), UNSUPPORTED_CREDENTIALS);
        assert!(!err.to_string().contains(TOKEN), "{err}");
        assert!(
            err.to_string().contains("user.<unrecognised fields>"),
            "{err}"
        );
    }

    #[test]
    fn insecure_tls_needs_the_development_flag() {
        let skip = format!("{}\n    insecure-skip-tls-verify: true", good_cluster());
        let plain = "    server: http://127.0.0.1:8080";
        for cluster in [skip.as_str(), plain] {
            let text = kubeconfig(cluster, &token_user());
            match evaluate(&text, strict()) {
                Err(
                    e @ PolicyError::Unsupported {
                        insecure_only: true,
                        ..
                    },
                ) => {
                    assert!(e.to_string().contains("--allow-insecure-member-tls"), "{e}");
                }
                other => panic!("expected an insecure rejection, got {other:?}"),
            }
            let allowed = PolicyOptions {
                allow_insecure_tls: true,
            };
            evaluate(&text, allowed).expect("allowed in development");
        }
    }

    #[test]
    fn the_development_flag_does_not_allow_code_or_files() {
        let cluster = "    server: http://127.0.0.1:8080";
        let user = format!("{}\n    tokenFile: /etc/token", token_user());
        let allowed = PolicyOptions {
            allow_insecure_tls: true,
        };
        match evaluate(&kubeconfig(cluster, &user), allowed) {
            Err(PolicyError::Unsupported {
                fields,
                insecure_only,
            }) => {
                assert_eq!(fields, ["user.tokenFile"]);
                assert!(!insecure_only);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn credentials_in_the_server_url_are_rejected() {
        let cluster = format!(
            "    server: https://admin:{TOKEN}@127.0.0.1:6443\n    certificate-authority-data: {}",
            b64(CA_PEM)
        );
        let err = evaluate(&kubeconfig(&cluster, &token_user()), strict()).expect_err("rejected");
        assert_eq!(err.reason(), UNSUPPORTED_CREDENTIALS);
        assert!(!err.to_string().contains(TOKEN), "{err}");
    }

    #[test]
    fn other_schemes_and_missing_servers_are_invalid() {
        for cluster in [
            "    server: ftp://x",
            "    server: ''",
            "    certificate-authority-data: x",
        ] {
            let err =
                evaluate(&kubeconfig(cluster, &token_user()), strict()).expect_err("rejected");
            assert_eq!(err.reason(), INVALID_KUBECONFIG, "{cluster}: {err}");
        }
    }

    #[test]
    fn missing_or_half_credentials_are_invalid() {
        let half = format!("    client-certificate-data: {}", b64(CA_PEM));
        for user in ["    {}", "    token: ''", half.as_str()] {
            let err = evaluate(&kubeconfig(&good_cluster(), user), strict()).expect_err("rejected");
            assert_eq!(err, PolicyError::NoCredentials, "{user}");
        }
    }

    #[test]
    fn bad_ca_data_is_invalid_and_not_echoed() {
        let cluster = format!(
            "    server: https://127.0.0.1:6443\n    certificate-authority-data: {}",
            b64(TOKEN)
        );
        let err = evaluate(&kubeconfig(&cluster, &token_user()), strict()).expect_err("rejected");
        assert_eq!(
            err,
            PolicyError::BadPem("cluster.certificate-authority-data")
        );
    }

    #[test]
    fn parse_errors_do_not_echo_the_input() {
        for text in [
            format!("{TOKEN}: [unclosed"),
            format!("clusters: {TOKEN}"),
            "users:\n- name: u\n  user:\n    token: [1, 2]\n".to_string(),
        ] {
            let err = evaluate(&text, strict()).expect_err("rejected");
            assert_eq!(err.reason(), INVALID_KUBECONFIG);
            assert!(!err.to_string().contains(TOKEN), "{err}");
        }
    }

    #[test]
    fn references_must_resolve() {
        let no_current =
            kubeconfig(&good_cluster(), &token_user()).replace("current-context: ctx\n", "");
        assert_eq!(
            evaluate(&no_current, strict()).expect_err("rejected"),
            PolicyError::NoCurrentContext
        );
        let dangling =
            kubeconfig(&good_cluster(), &token_user()).replace("cluster: c", "cluster: nope");
        assert_eq!(
            evaluate(&dangling, strict()).expect_err("rejected"),
            PolicyError::DanglingReference
        );
    }

    /// Only the current context counts: another user's exec is never used, so it does not matter.
    #[test]
    fn other_contexts_are_ignored() {
        let text = kubeconfig(&good_cluster(), &token_user()).replace(
            "contexts:",
            "- name: other\n  user:\n    exec:\n      command: /bin/sh\ncontexts:",
        );
        evaluate(&text, strict()).expect("accepted");
    }
}
