//! Command-line interface. Every flag of `run` can also be set by environment variable.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "flotilla",
    version,
    about = "Flotilla: a multi-cluster Kubernetes federation operator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the host cluster.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Join a member cluster: create least-privilege credentials in the member, and the Secret and
    /// MemberCluster on the host.
    Join(JoinArgs),
    /// Reverse `join`: remove the MemberCluster, its Secret, and Flotilla's access in the member.
    Unjoin(UnjoinArgs),
    /// Print the placement decision for a FederatedIngress or ScalingPolicy, with the reason for
    /// every cluster, without applying anything.
    Preview(PreviewArgs),
}

/// Which host cluster to talk to (default: in-cluster config, or $KUBECONFIG's current context).
#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    /// A kubeconfig for the host cluster.
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The context of the host cluster in the kubeconfig.
    #[arg(long, env = "FLOTILLA_CONTEXT")]
    pub context: Option<String>,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Namespace holding member credential Secrets and the leader Lease.
    #[arg(long, env = "FLOTILLA_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "FLOTILLA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the admin HTTP server (PUT /log-level). It has no authentication, so it must be
    /// a loopback address: reach it with `kubectl port-forward` or from inside the pod.
    #[arg(long, env = "FLOTILLA_ADMIN_ADDR", default_value = "127.0.0.1:8081", value_parser = parse_loopback_addr)]
    pub admin_addr: SocketAddr,
    /// Elect a leader among replicas through a Lease; only the leader reconciles.
    #[arg(long, env = "FLOTILLA_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "FLOTILLA_LEASE_NAME", default_value = "flotilla-leader")]
    pub lease_name: String,
    /// How long a leader's Lease is valid without renewal; a standby takes over after it lapses.
    #[arg(long, env = "FLOTILLA_LEASE_DURATION_SECONDS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration_seconds: u64,
    /// How many FederatedIngresses are reconciled at once (each applies to all its members in
    /// parallel). Higher drains a burst of changes sooner and puts more load on the members.
    #[arg(long, env = "FLOTILLA_MAX_CONCURRENT_RECONCILES", default_value_t = flotilla_controller::propagation::CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_concurrent_reconciles: u16,
    /// The kinds FederatedObjects and ClusterFederatedObjects may hold, as `Kind.group` (`Kind`
    /// for the core group), comma-separated. Secrets, RBAC kinds and CRDs only when listed.
    /// Members need the same kinds in `flotilla join --kinds`.
    #[arg(long, env = "FLOTILLA_FEDERATED_KINDS", default_value_t = flotilla_controller::allowlist::default_kinds_text(), value_parser = parse_kinds)]
    pub federated_kinds: String,
    /// This replica's identity in the Lease (default: $POD_NAME, else the host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Development only: accept member kubeconfigs with `http://` servers or
    /// `insecure-skip-tls-verify: true`. Commands, files and proxies are refused regardless.
    #[arg(
        long,
        env = "FLOTILLA_ALLOW_INSECURE_MEMBER_TLS",
        default_value_t = false
    )]
    pub allow_insecure_member_tls: bool,
    /// Base URL of the Prometheus HTTP API for ScalingPolicy queries (e.g. http://prometheus:9090).
    #[arg(long, env = "FLOTILLA_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// The series label that names a namespace in Prometheus: every selector of a ScalingPolicy's
    /// query is pinned to the policy's namespace with it, so a policy reads only its namespace's
    /// series. An empty value leaves queries unscoped (any policy author may read any series with
    /// the operator's access: not for shared clusters).
    #[arg(long, env = "FLOTILLA_PROMQL_NAMESPACE_LABEL", default_value = flotilla_controller::scaling::DEFAULT_NAMESPACE_LABEL)]
    pub promql_namespace_label: String,
    /// How often each ScalingPolicy evaluates its Prometheus queries and decides its total, in
    /// milliseconds (the members' metrics APIs are read every 15 s whatever this is). Lower
    /// reacts sooner and costs Prometheus one query per metric per policy per period.
    #[arg(long, env = "FLOTILLA_SCALING_SYNC_PERIOD_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub scaling_sync_period_ms: u64,
    /// When member tokens issued by `flotilla join` are renewed, in percent of their lifetime.
    #[arg(long, env = "FLOTILLA_MEMBER_TOKEN_RENEW_PERCENT", default_value_t = flotilla_controller::members::renewal::DEFAULT_RENEW_PERCENT, value_parser = clap::value_parser!(u8).range(1..=95))]
    pub member_token_renew_percent: u8,
    /// Let `adoption: IfNoDiff` / `Always` take over existing member objects that are not
    /// annotated `federation.flotilla.dev/adoptable=true`. Off: whoever may create a federated
    /// object in a host namespace could otherwise overwrite any object of that name in that
    /// namespace of every member.
    #[arg(long, env = "FLOTILLA_ALLOW_ADOPTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_adoption: bool,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Name of the MemberCluster to create.
    pub name: String,
    #[command(flatten)]
    pub host: HostArgs,
    /// Kubeconfig holding the member's context (default: the host kubeconfig).
    #[arg(long)]
    pub member_kubeconfig: Option<PathBuf>,
    /// Context of the member cluster (not needed with `--rotate`).
    #[arg(long, required_unless_present = "rotate")]
    pub member_context: Option<String>,
    /// The member API server URL as the operator reaches it (default: the context's server).
    #[arg(long)]
    pub member_server: Option<String>,
    /// The name the member's serving certificate is checked against, when the operator reaches
    /// it at an address the certificate does not name (a relay, a tunnel): written as the
    /// Secret's `tls-server-name` (default: the context's `tls-server-name`, if any).
    #[arg(long)]
    pub member_tls_server_name: Option<String>,
    /// The operator's namespace on the host, where the credentials Secret goes.
    #[arg(long, default_value = "flotilla-system")]
    pub namespace: String,
    /// Region of the member (label topology.kubernetes.io/region).
    #[arg(long)]
    pub region: Option<String>,
    /// Zone of the member (label topology.kubernetes.io/zone).
    #[arg(long)]
    pub zone: Option<String>,
    /// Labels for the MemberCluster, as key=value (repeatable).
    #[arg(long = "label", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// The kinds the operator may write in the member, as `Kind.group` (`Kind` for the core
    /// group), comma-separated: the operator's `--federated-kinds`. Ingresses are always granted
    /// (FederatedIngress).
    #[arg(long, default_value_t = flotilla_controller::allowlist::default_kinds_text(), value_parser = parse_kinds)]
    pub kinds: String,
    /// Lifetime of the member token (TokenRequest), e.g. `24h`, `90m`, `600s`; at least 10m. The
    /// operator renews it before it expires.
    #[arg(long, default_value = "24h", value_parser = parse_token_ttl)]
    pub token_ttl: std::time::Duration,
    /// Only rotate the token now: request a new one with the credentials already on the host and
    /// write it to the Secret (no member admin credentials needed while the token is valid).
    #[arg(long, conflicts_with_all = ["member_kubeconfig", "member_server", "member_tls_server_name", "region", "zone", "labels"])]
    pub rotate: bool,
}

#[derive(Args, Debug)]
pub struct UnjoinArgs {
    /// Name of the MemberCluster to remove.
    pub name: String,
    #[command(flatten)]
    pub host: HostArgs,
    /// Kubeconfig holding the member's context (default: the host kubeconfig).
    #[arg(long)]
    pub member_kubeconfig: Option<PathBuf>,
    /// Context of the member cluster.
    #[arg(long)]
    pub member_context: String,
    /// The operator's namespace on the host.
    #[arg(long, default_value = "flotilla-system")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct PreviewArgs {
    /// A YAML file with a FederatedIngress or ScalingPolicy (`-` for standard input). Without it,
    /// `--name` reads the object from the host.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Kind of the object to read from the host: federatedingress, federatedobject,
    /// clusterfederatedobject, propagationpolicy, clusterpropagationpolicy or scalingpolicy (or
    /// their short names).
    #[arg(long, requires = "name")]
    pub kind: Option<String>,
    /// Name of the object to read from the host.
    #[arg(long, requires = "kind")]
    pub name: Option<String>,
    /// Namespace of the object to read from the host.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub host: HostArgs,
    /// Print the decision as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_loopback_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|e| format!("expected an address like 127.0.0.1:8081: {e}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address: the admin endpoint has no authentication and must listen on 127.0.0.1 or [::1]"
        ))
    }
}

/// `24h`, `90m`, `600s` or plain seconds, at least the TokenRequest API's 10 minutes.
fn parse_token_ttl(text: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 24h, 90m or 600s"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    if seconds < 600 {
        return Err(
            "the token lifetime must be at least 10m (the TokenRequest API's minimum)".into(),
        );
    }
    Ok(std::time::Duration::from_secs(seconds))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

fn parse_kinds(text: &str) -> Result<String, String> {
    flotilla_controller::allowlist::Allowlist::parse(text).map(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        let err = Cli::try_parse_from(["flotilla", "run", "--metrics-addr", "nope"])
            .expect_err("bad addr");
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
        let err = Cli::try_parse_from(["flotilla", "run", "--lease-duration-seconds", "1"])
            .expect_err("too short");
        assert!(
            err.to_string().contains("--lease-duration-seconds"),
            "{err}"
        );
        let err = Cli::try_parse_from([
            "flotilla",
            "join",
            "m1",
            "--member-context",
            "c",
            "--label",
            "novalue",
        ])
        .expect_err("bad label");
        assert!(err.to_string().contains("key=value"), "{err}");
    }

    #[test]
    fn the_admin_endpoint_listens_on_loopback_only() {
        let cli = Cli::try_parse_from(["flotilla", "run"]).expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert_eq!(args.admin_addr.to_string(), "127.0.0.1:8081");
        assert!(!args.allow_insecure_member_tls);
        for addr in ["127.0.0.1:9000", "[::1]:9000"] {
            Cli::try_parse_from(["flotilla", "run", "--admin-addr", addr]).expect("loopback");
        }
        for addr in ["0.0.0.0:8081", "10.0.0.1:8081", "[::]:8081"] {
            let err = Cli::try_parse_from(["flotilla", "run", "--admin-addr", addr])
                .expect_err("not loopback");
            assert!(err.to_string().contains("loopback"), "{err}");
        }
    }

    #[test]
    fn leader_election_can_be_turned_off() {
        let cli =
            Cli::try_parse_from(["flotilla", "run", "--leader-elect", "false"]).expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert!(!args.leader_elect);
    }
}
