//! `flotilla join` / `flotilla unjoin`: give the operator least-privilege access to a member
//! cluster, and register it on the host.
//!
//! In the member: a ServiceAccount `flotilla-<name>` in namespace `flotilla-system`, a
//! ClusterRole `flotilla:member:<name>` granting only what Flotilla manages there (the kinds of
//! `--kinds` and Ingresses, namespaces to hold them, workload scale subresources, reading HPAs
//! and metrics) — no wildcard
//! group or verb, and a wildcard resource only to read the metrics APIs addressed by name — and
//! a Role letting that ServiceAccount request tokens for itself alone. Names carry the
//! MemberCluster name, so unjoining one registration of a member never removes another's access.
//! The token is a bound ServiceAccount token from the TokenRequest API with an expiry
//! (`--token-ttl`, default 24 h), never a legacy token Secret that lives forever; the operator
//! renews it before it expires, and `flotilla join NAME --rotate` renews it at once.
//! On the host: a Secret `<name>-kubeconfig` with a kubeconfig using that token, and the
//! MemberCluster `<name>`.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use flotilla_api::MemberCluster;
use flotilla_api::labels::{
    FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE, MEMBER_CREDENTIALS, MEMBER_CREDENTIALS_VALUE,
};

use flotilla_controller::allowlist::{Allowlist, DEFAULT_KINDS};
use flotilla_controller::members::credentials::{ClientTimeouts, clients_from_secret, renewal_of};
use flotilla_controller::members::kubeconfig_policy::PolicyOptions;
use flotilla_controller::members::renewal::{RenewalFailure, renewed_secret_patch};

use crate::cli::{HostArgs, JoinArgs, UnjoinArgs};
use crate::run::host_client;

const MEMBER_NAMESPACE: &str = "flotilla-system";

/// Names of what `join` creates in the member for MemberCluster `name`.
struct MemberNames {
    service_account: String,
    cluster_role: String,
    /// Role and RoleBinding: `create serviceaccounts/token` for its own ServiceAccount only.
    token_role: String,
    /// What joins before TokenRequest tokens created: removed by unjoin.
    legacy_token_secret: String,
}

impl MemberNames {
    fn of(name: &str) -> Self {
        Self {
            service_account: format!("flotilla-{name}"),
            cluster_role: format!("flotilla:member:{name}"),
            token_role: format!("flotilla:member:{name}:token"),
            legacy_token_secret: format!("flotilla-{name}-token"),
        }
    }
}

/// A kind Flotilla may federate into the member: its group and resource (plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedResource {
    pub group: String,
    pub plural: String,
}

/// The member resources of `kinds`: the default kinds by their known plurals, any other kind
/// from the member's discovery.
async fn federated_resources(
    member: &Client,
    kinds: &Allowlist,
) -> anyhow::Result<Vec<FederatedResource>> {
    let mut out = Vec::new();
    for k in kinds.kinds() {
        let known = DEFAULT_KINDS
            .iter()
            .find(|(kind, group, _)| *kind == k.kind && *group == k.group);
        let plural = match known {
            Some((_, _, plural)) => (*plural).to_string(),
            None => {
                let served = kube::discovery::group(member, &k.group)
                    .await
                    .ok()
                    .and_then(|g| g.recommended_kind(&k.kind))
                    .map(|(resource, _)| resource.plural);
                served.unwrap_or_else(|| {
                    // Not served yet: a custom resource whose CRD Flotilla will federate. Its
                    // plural is the conventional one; a CRD with another plural needs a re-join
                    // once it is served.
                    let plural = ApiResource::from_gvk(&GroupVersionKind::gvk(&k.group, "v1", &k.kind)).plural;
                    eprintln!("note: the member does not serve {k} yet; granting resource {plural:?} (re-run join once it is served if its plural differs)");
                    plural
                })
            }
        };
        out.push(FederatedResource {
            group: k.group.clone(),
            plural,
        });
    }
    // Ingresses: FederatedIngress copies, whatever the list.
    if !out.iter().any(|r| r.plural == "ingresses") {
        out.push(FederatedResource {
            group: "networking.k8s.io".into(),
            plural: "ingresses".into(),
        });
    }
    Ok(out)
}

/// What the operator may do in a member cluster: write the federated kinds, create the
/// namespaces copies go into, and read what ScalingPolicies need. No wildcard group or verb.
pub fn member_rules(federated: &[FederatedResource]) -> Value {
    const WRITE: [&str; 7] = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let mut rules: Vec<Value> = federated
        .iter()
        .map(|r| json!({"apiGroups": [r.group], "resources": [r.plural], "verbs": WRITE}))
        .collect();
    if !federated
        .iter()
        .any(|r| r.group.is_empty() && r.plural == "namespaces")
    {
        // get: the cluster's identity (kube-system's uid) and whether a namespace exists;
        // create: a copy's namespace when missing. Never patch or delete a member's namespace.
        rules.push(
            json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]}),
        );
    }
    rules.extend(scaling_rules().as_array().cloned().unwrap_or_default());
    Value::Array(rules)
}

/// What ScalingPolicies read and scale in members.
fn scaling_rules() -> Value {
    // The workloads themselves are never read: only their scale subresource.
    json!([
        {"apiGroups": ["apps"], "resources": ["deployments/scale", "statefulsets/scale", "replicasets/scale"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get", "list"]},
        // Pods and Resource metrics count the target's pods by phase and readiness, and divide
        // usage by their requests, read from the pods (as the HPA does), through one watch per
        // member shared by every policy.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
        // Custom and External metrics are addressed by metric name (the RBAC resource is the
        // name), which no fixed list can cover: read-only access to these two aggregated APIs,
        // which serve numbers, not objects.
        {"apiGroups": METRICS_BY_NAME_GROUPS, "resources": ["*"], "verbs": ["get", "list"]}
    ])
}

/// The metrics APIs whose resources are metric names chosen by the user.
const METRICS_BY_NAME_GROUPS: [&str; 2] = ["custom.metrics.k8s.io", "external.metrics.k8s.io"];

pub async fn join(args: JoinArgs) -> anyhow::Result<()> {
    if args.rotate {
        return rotate(&args).await;
    }
    let context = args
        .member_context
        .as_deref()
        .context("--member-context is required")?;
    let (member, member_config, server) =
        member_client(&args.host, args.member_kubeconfig.as_deref(), context).await?;
    let server = args.member_server.clone().unwrap_or(server);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let labels = json!({MANAGED_BY: MANAGED_BY_VALUE});
    let names = MemberNames::of(&args.name);
    let kinds = Allowlist::parse(&args.kinds).map_err(anyhow::Error::msg)?;
    let federated = federated_resources(&member, &kinds).await?;
    let (sa, role, token_role) = (
        names.service_account.as_str(),
        names.cluster_role.as_str(),
        names.token_role.as_str(),
    );

    // In the member.
    apply(
        &member,
        "v1",
        "Namespace",
        None,
        MEMBER_NAMESPACE,
        json!({"metadata": {"labels": labels}}),
        &params,
    )
    .await?;
    apply(
        &member,
        "v1",
        "ServiceAccount",
        Some(MEMBER_NAMESPACE),
        sa,
        json!({"metadata": {"labels": labels}}),
        &params,
    )
    .await?;
    apply(
        &member,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        None,
        role,
        json!({"metadata": {"labels": labels}, "rules": member_rules(&federated)}),
        &params,
    )
    .await?;
    apply(
        &member,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        None,
        role,
        binding(&labels, "ClusterRole", role, sa),
        &params,
    )
    .await?;
    // The operator renews its token itself: it may request tokens for its own ServiceAccount,
    // and for no other.
    apply(
        &member,
        "rbac.authorization.k8s.io/v1",
        "Role",
        Some(MEMBER_NAMESPACE),
        token_role,
        json!({
            "metadata": {"labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                       "resourceNames": [sa], "verbs": ["create"]}]
        }),
        &params,
    )
    .await?;
    apply(
        &member,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Some(MEMBER_NAMESPACE),
        token_role,
        binding(&labels, "Role", token_role, sa),
        &params,
    )
    .await?;
    let token = issue_token(&member, sa, args.token_ttl).await?;
    let ca = match cluster_ca(&member_config) {
        Some(ca) => ca,
        None => published_root_ca(&member).await?,
    };
    let tls_server_name = args
        .member_tls_server_name
        .clone()
        .or_else(|| cluster_tls_server_name(&member_config));
    let kubeconfig =
        service_account_kubeconfig(&args.name, &server, tls_server_name.as_deref(), &ca, &token)?;

    // On the host.
    let host = host_client(&args.host).await?;
    apply(
        &host,
        "v1",
        "Namespace",
        None,
        &args.namespace,
        json!({}),
        &params,
    )
    .await?;
    let secret_name = format!("{}-kubeconfig", args.name);
    apply(
        &host,
        "v1",
        "Secret",
        Some(&args.namespace),
        &secret_name,
        json!({
            // The operator reads only Secrets carrying the credentials label.
            "metadata": {"labels": {
                MANAGED_BY: MANAGED_BY_VALUE,
                "federation.flotilla.dev/member": args.name,
                MEMBER_CREDENTIALS: MEMBER_CREDENTIALS_VALUE,
            }},
            "type": "Opaque",
            "stringData": {"kubeconfig": kubeconfig}
        }),
        &params,
    )
    .await?;
    let mut spec = json!({"secretRef": {"name": secret_name, "key": "kubeconfig"}});
    if let Some(region) = &args.region {
        spec["region"] = json!(region);
    }
    if let Some(zone) = &args.zone {
        spec["zone"] = json!(zone);
    }
    let member_labels: BTreeMap<_, _> = args.labels.iter().cloned().collect();
    let mc = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": args.name, "labels": member_labels},
        "spec": spec
    });
    Api::<MemberCluster>::all(host)
        .patch(&args.name, &params, &Patch::Apply(&mc))
        .await
        .context("creating the MemberCluster on the host (are the CRDs installed?)")?;
    println!(
        "joined {context} ({server}): MemberCluster {} with credentials in Secret {}/{secret_name} (token valid for {}s, renewed by the operator)",
        args.name,
        args.namespace,
        args.token_ttl.as_secs()
    );
    Ok(())
}

pub async fn unjoin(args: UnjoinArgs) -> anyhow::Result<()> {
    let host = host_client(&args.host).await?;
    delete(
        &host,
        "federation.flotilla.dev/v1alpha1",
        "MemberCluster",
        None,
        &args.name,
    )
    .await?;
    delete(
        &host,
        "v1",
        "Secret",
        Some(&args.namespace),
        &format!("{}-kubeconfig", args.name),
    )
    .await?;
    let (member, _, _) = member_client(
        &args.host,
        args.member_kubeconfig.as_deref(),
        &args.member_context,
    )
    .await?;
    let names = MemberNames::of(&args.name);
    delete(
        &member,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        None,
        &names.cluster_role,
    )
    .await?;
    delete(
        &member,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        None,
        &names.cluster_role,
    )
    .await?;
    delete(
        &member,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Some(MEMBER_NAMESPACE),
        &names.token_role,
    )
    .await?;
    delete(
        &member,
        "rbac.authorization.k8s.io/v1",
        "Role",
        Some(MEMBER_NAMESPACE),
        &names.token_role,
    )
    .await?;
    delete(
        &member,
        "v1",
        "Secret",
        Some(MEMBER_NAMESPACE),
        &names.legacy_token_secret,
    )
    .await?;
    delete(
        &member,
        "v1",
        "ServiceAccount",
        Some(MEMBER_NAMESPACE),
        &names.service_account,
    )
    .await?;
    // The namespace may hold copies Flotilla placed there; it is left for the member's owner.
    println!(
        "unjoined {}: MemberCluster, its Secret, and Flotilla's access in the member removed",
        args.name
    );
    Ok(())
}

async fn member_client(
    host: &HostArgs,
    kubeconfig: Option<&std::path::Path>,
    context: &str,
) -> anyhow::Result<(Client, Kubeconfig, String)> {
    let path = kubeconfig
        .map(std::path::Path::to_path_buf)
        .or_else(|| host.kubeconfig.clone());
    let config = match &path {
        Some(p) => Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?,
        None => Kubeconfig::read().context("reading $KUBECONFIG")?,
    };
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let client_config = kube::Config::from_custom_kubeconfig(config.clone(), &options)
        .await
        .with_context(|| format!("context {context:?}"))?;
    let server = client_config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let client = Client::try_from(client_config)?;
    let named = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.clone());
    let cluster_name = named.map(|c| c.cluster).unwrap_or_default();
    let only_cluster = Kubeconfig {
        clusters: config
            .clusters
            .into_iter()
            .filter(|c| c.name == cluster_name)
            .collect(),
        ..Kubeconfig::default()
    };
    Ok((client, only_cluster, server))
}

/// The context's `tls-server-name`: the member is reached at an address its certificate does not
/// name (the test bed's relay for pods, a tunnel), and the operator must check the same name.
fn cluster_tls_server_name(config: &Kubeconfig) -> Option<String> {
    config
        .clusters
        .first()?
        .cluster
        .as_ref()?
        .tls_server_name
        .clone()
}

fn cluster_ca(config: &Kubeconfig) -> Option<Vec<u8>> {
    let cluster = config.clusters.first()?.cluster.as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        return decode_base64(data);
    }
    cluster
        .certificate_authority
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
}

/// A (Cluster)RoleBinding of `role` to the operator's ServiceAccount `sa` in the member.
fn binding(labels: &Value, role_kind: &str, role: &str, sa: &str) -> Value {
    json!({
        "metadata": {"labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": MEMBER_NAMESPACE}]
    })
}

/// A bound token for the ServiceAccount, valid for `ttl` (TokenRequest API).
async fn issue_token(
    member: &Client,
    service_account: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(member.clone(), MEMBER_NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .with_context(|| {
            format!("requesting a token for ServiceAccount {MEMBER_NAMESPACE}/{service_account}")
        })?;
    let status = issued
        .status
        .context("the member answered the TokenRequest without a token")?;
    let granted = Timestamp::now().duration_until(status.expiration_timestamp.0);
    if granted.as_secs() + 60 < i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX) {
        eprintln!(
            "note: the member granted the token for {}s only (its API server caps token lifetimes)",
            granted.as_secs()
        );
    }
    Ok(status.token)
}

/// The member's root CA as its controller manager publishes it in every namespace (ConfigMap
/// `kube-root-ca.crt`), for member contexts whose kubeconfig has no inline CA.
async fn published_root_ca(member: &Client) -> anyhow::Result<Vec<u8>> {
    let api: Api<ConfigMap> = Api::namespaced(member.clone(), MEMBER_NAMESPACE);
    let start = Instant::now();
    loop {
        if let Some(ca) = api
            .get_opt("kube-root-ca.crt")
            .await?
            .and_then(|cm| cm.data?.remove("ca.crt"))
        {
            return Ok(ca.into_bytes());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "no CA for the member: its kubeconfig has no inline CA and ConfigMap {MEMBER_NAMESPACE}/kube-root-ca.crt did not appear within 60s"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `flotilla join NAME --rotate`: a new token requested with the credentials on the host (as the
/// operator renews it), written to the host Secret.
async fn rotate(args: &JoinArgs) -> anyhow::Result<()> {
    let host = host_client(&args.host).await?;
    let member: MemberCluster = Api::all(host.clone())
        .get(&args.name)
        .await
        .with_context(|| format!("reading MemberCluster {}", args.name))?;
    let secret_ref = &member.spec.secret_ref;
    let secrets: Api<Secret> = Api::namespaced(host.clone(), &args.namespace);
    let secret = secrets
        .get(&secret_ref.name)
        .await
        .with_context(|| format!("reading Secret {}/{}", args.namespace, secret_ref.name))?;
    let renewal = renewal_of(&secret, secret_ref).with_context(|| {
        format!(
            "Secret {}/{} does not hold a ServiceAccount token that expires; re-run `flotilla join {}` with the member's admin credentials",
            args.namespace, secret_ref.name, args.name
        )
    })?;
    let (clients, _) = clients_from_secret(
        &secret,
        secret_ref,
        ClientTimeouts::default(),
        PolicyOptions::default(),
    )
    .map_err(|p| anyhow::anyhow!("{}: {}", p.reason, p.message))?;
    let patch = match renewed_secret_patch(&clients.work, &renewal).await {
        Ok(patch) => patch,
        Err(RenewalFailure::Refused(e)) => {
            return Err(anyhow::Error::new(e).context(format!(
                "the member refused a new token (if the current one expired, re-run `flotilla join {}` with the member's admin credentials)",
                args.name
            )));
        }
        Err(RenewalFailure::Unwritable(message)) => bail!(message),
    };
    secrets
        .patch(
            &secret_ref.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context("writing the new token to the Secret")?;
    println!(
        "rotated the token of member {} in Secret {}/{}",
        args.name, args.namespace, secret_ref.name
    );
    Ok(())
}

/// The member Secret's kubeconfig: one cluster (server, CA, and the TLS name to check when the
/// server's address is not in its certificate), the ServiceAccount's token, one context.
fn service_account_kubeconfig(
    name: &str,
    server: &str,
    tls_server_name: Option<&str>,
    ca: &[u8],
    token: &str,
) -> anyhow::Result<String> {
    use kube::config::{AuthInfo, Cluster, Context, NamedAuthInfo, NamedCluster, NamedContext};
    const USER: &str = "flotilla";
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: name.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                tls_server_name: tls_server_name.map(Into::into),
                certificate_authority_data: Some(encode_base64(ca)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: USER.into(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_owned().into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: name.into(),
            context: Some(Context {
                cluster: name.into(),
                user: Some(USER.into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(name.into()),
        ..Kubeconfig::default()
    };
    serde_saphyr::to_string(&config).context("writing the member kubeconfig")
}

async fn apply(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    body: Value,
    params: &PatchParams,
) -> anyhow::Result<()> {
    let (api, mut object) = dynamic(client, api_version, kind, namespace);
    if let (Value::Object(target), Value::Object(extra)) = (&mut object, body) {
        for (k, v) in extra {
            if k == "metadata" {
                if let (Some(Value::Object(meta)), Value::Object(more)) =
                    (target.get_mut("metadata"), v)
                {
                    meta.extend(more);
                }
            } else {
                target.insert(k, v);
            }
        }
    }
    object["metadata"]["name"] = json!(name);
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    api.patch(name, params, &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
    Ok(())
}

async fn delete(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> anyhow::Result<()> {
    let (api, _) = dynamic(client, api_version, kind, namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting {kind} {name}")),
    }
}

fn dynamic(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> (Api<DynamicObject>, Value) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    (
        api,
        json!({"apiVersion": api_version, "kind": kind, "metadata": {}}),
    )
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let value = u32::try_from(BASE64.iter().position(|&b| b == c)?).ok()?;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"-----BEGIN CERTIFICATE-----\n",
        ] {
            assert_eq!(decode_base64(&encode_base64(input)).as_deref(), Some(input));
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
    }

    /// The Secret's kubeconfig passes the operator's policy, with and without a TLS name, and
    /// keeps the name it was given.
    #[test]
    fn member_kubeconfig_carries_the_tls_server_name() {
        use flotilla_controller::members::kubeconfig_policy::evaluate;
        const CA_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQ2dQ8xGz1eV2G8F3Xk7f0nX6p1gwCgYIKoZIzj0EAwIw\nETEPMA0GA1UEAwwGdGVzdGNhMB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAwMDAw\nMFowETEPMA0GA1UEAwwGdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END CERTIFICATE-----\n";
        for name in [None, Some("localhost")] {
            let text = service_account_kubeconfig(
                "member1",
                "https://10.220.0.2:26010",
                name,
                CA_PEM,
                "tok",
            )
            .expect("a kubeconfig");
            let endpoint = evaluate(&text, PolicyOptions::default())
                .unwrap_or_else(|e| panic!("refused ({}):\n{text}", e.reason()));
            assert_eq!(endpoint.tls_server_name.as_deref(), name, "{text}");
            let config = Kubeconfig::from_yaml(&text).expect("a kubeconfig");
            assert_eq!(cluster_tls_server_name(&config).as_deref(), name);
            let token = config.auth_infos[0]
                .auth_info
                .as_ref()
                .and_then(|a| a.token.as_ref());
            assert_eq!(
                token.map(secrecy::ExposeSecret::expose_secret),
                Some("tok"),
                "{text}"
            );
        }
    }

    /// No wildcard group or verb anywhere; a wildcard resource only for reading the metrics
    /// APIs addressed by metric name.
    #[test]
    fn member_rules_have_no_wildcards_but_metric_names() {
        let federated: Vec<FederatedResource> = DEFAULT_KINDS
            .iter()
            .map(|(_, g, p)| FederatedResource {
                group: (*g).into(),
                plural: (*p).into(),
            })
            .collect();
        let rules = member_rules(&federated);
        assert!(rules.to_string().contains("\"persistentvolumeclaims\""));
        for rule in rules.as_array().into_iter().flatten() {
            let text = |key: &str| rule[key].to_string();
            assert!(!text("apiGroups").contains('*'), "{rule}");
            assert!(!text("verbs").contains('*'), "{rule}");
            if text("resources").contains('*') {
                assert_eq!(rule["apiGroups"], json!(METRICS_BY_NAME_GROUPS), "{rule}");
                assert_eq!(rule["verbs"], json!(["get", "list"]), "{rule}");
            }
        }
        let text = rules.to_string();
        assert_eq!(text.matches('*').count(), 1, "{text}");
    }
}
