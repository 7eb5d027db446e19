//! Harness for end-to-end tests on the local test bed (`make clusters-up`): one host and several
//! member clusters, each a real kube-apiserver with its own etcd.
//!
//! Tests use `kubectl` for what a user does and typed kube clients to check the result. They fail
//! loudly when the test bed is not up: an end-to-end test that silently passes without clusters
//! would prove nothing.
#![allow(clippy::unwrap_used)] // test harness: a failed precondition should stop the test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::networking::v1::Ingress;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

pub mod audit;
pub mod bench;
pub mod metrics_adapter;
pub mod pods;
pub mod prometheus;
pub mod proxy;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The running test bed, found through `FLOTILLA_KUBECONFIG` or `e2e/.state/kubeconfig`.
pub struct TestBed {
    kubeconfig: PathBuf,
}

impl TestBed {
    /// Finds the test bed, or panics with how to start it.
    pub fn get() -> Self {
        let kubeconfig = std::env::var_os("FLOTILLA_KUBECONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("e2e/.state/kubeconfig"));
        assert!(
            kubeconfig.exists(),
            "no test bed: {} does not exist. Start one with `make clusters-up` (or run `make e2e`).",
            kubeconfig.display()
        );
        Self { kubeconfig }
    }

    /// The path of the combined kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The test bed's state directory (where its kubeconfig is): operator logs go there, so two
    /// test beds (`FLOTILLA_STATE`) never share them and `down` takes them along.
    pub fn state_dir(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| repo_root().join("e2e/.state"))
    }

    /// The names of the member contexts (`member1`, `member2`, …).
    pub fn members(&self) -> Vec<String> {
        let config = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let mut members: Vec<String> = config
            .contexts
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| n.starts_with("member"))
            .collect();
        members.sort();
        members
    }

    /// A client for one context (`host`, `member1`, …).
    pub async fn client(&self, context: &str) -> Client {
        let config = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(config, &options)
            .await
            .unwrap_or_else(|e| panic!("context {context}: {e}"));
        Client::try_from(config).unwrap()
    }

    /// The host API server's loopback address.
    pub fn host_address(&self) -> std::net::SocketAddr {
        let config = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let server = host_cluster(&config)
            .and_then(|c| c.server.clone())
            .expect("the host cluster has a server");
        let port = server.rsplit(':').next().unwrap().trim_end_matches('/');
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    /// A copy of the kubeconfig whose `host` cluster is reached through 127.0.0.1:`port` (a
    /// proxy); written to the state directory as `name`. The TLS name is unchanged (127.0.0.1).
    pub fn kubeconfig_via(&self, port: u16, name: &str) -> PathBuf {
        let mut config = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let host = config
            .contexts
            .iter()
            .find(|c| c.name == "host")
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .unwrap();
        for cluster in &mut config.clusters {
            if cluster.name == host
                && let Some(c) = cluster.cluster.as_mut()
            {
                c.server = Some(format!("https://127.0.0.1:{port}"));
            }
        }
        let path = self.state_dir().join(name);
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        path
    }

    /// The Kubernetes minor version of `context`'s API server, from its `/version`.
    pub fn server_minor(&self, context: &str) -> u32 {
        let out = self.kubectl_ok(context, &["get", "--raw", "/version"]);
        let version: serde_json::Value = serde_json::from_str(&out).expect("/version is JSON");
        version["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap_or_else(|| panic!("no minor version in {out}"))
    }

    /// Whether `context`'s API server runs the CRDs' CEL rules at admission: 1.28 and later
    /// (`x-kubernetes-validations` with `fieldPath` and `reason`).
    pub fn admission_runs_cel(&self, context: &str) -> bool {
        self.server_minor(context) >= 28
    }

    /// Applies CRD files (`crds/` or one of its files) to the host as the README tells users:
    /// as they are on a server that runs CEL rules; with `--validate=false` on an older one,
    /// whose OpenAPI does not know `x-kubernetes-validations` (kubectl would refuse the file),
    /// and which drops the rules silently (the controller's checks hold there).
    /// Panics if kubectl fails or warns: the CRDs apply cleanly on every supported version.
    pub fn apply_crds(&self, path: &str) {
        let args: &[&str] = if self.admission_runs_cel("host") {
            &["apply", "-f", path]
        } else {
            &["apply", "--validate=false", "-f", path]
        };
        let out = self.kubectl("host", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kubectl's own note on a CRD Helm created first (no last-applied annotation) is about
        // how it was created, not about the CRD: any other line is a warning about the CRD.
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains("kubectl.kubernetes.io/last-applied-configuration")
                    && !l.contains("will be patched automatically")
            })
            .collect();
        assert!(
            out.status.success() && warnings.is_empty(),
            "kubectl {} failed or warned:\n{stderr}",
            args.join(" ")
        );
    }

    /// Whether the host's CRD `name` carries CEL rules (`x-kubernetes-validations`) in its
    /// schema as stored (not in kubectl's last-applied annotation, which keeps what was sent).
    pub fn crd_has_cel_rules(&self, name: &str) -> bool {
        let crd: serde_json::Value =
            serde_json::from_str(&self.kubectl_ok("host", &["get", "crd", name, "-o", "json"]))
                .expect("a CRD as JSON");
        crd["spec"]["versions"]
            .to_string()
            .contains("x-kubernetes-validations")
    }

    /// Stores `document` on the host past the CEL rules of CRD `crd` (the file
    /// `crds/<crd>.yaml`), as an object stored on an older server, or before its CRD had the
    /// rules, would be: the rules are taken out of the stored CRD (a JSON patch, so the CRD's
    /// metadata stays as `kubectl apply` left it), the object applied, and the CRD applied again
    /// from `crds/`. For proving the controller's own checks on any server.
    pub fn store_past_cel_rules(&self, crd: &str, document: &str) {
        fn rule_paths(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
            let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
            match v {
                serde_json::Value::Object(m) => {
                    for (k, child) in m {
                        let path = format!("{at}/{}", escape(k));
                        if k == "x-kubernetes-validations" {
                            out.push(path);
                        } else {
                            rule_paths(child, &path, out);
                        }
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, child) in a.iter().enumerate() {
                        rule_paths(child, &format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
        let stored: serde_json::Value =
            serde_json::from_str(&self.kubectl_ok("host", &["get", "crd", crd, "-o", "json"]))
                .expect("a CRD as JSON");
        let mut paths = Vec::new();
        rule_paths(&stored["spec"], "/spec", &mut paths);
        let patch: Vec<_> = paths
            .iter()
            .map(|p| serde_json::json!({"op": "remove", "path": p}))
            .collect();
        if !patch.is_empty() {
            let patch = serde_json::Value::from(patch).to_string();
            self.kubectl_ok("host", &["patch", "crd", crd, "--type=json", "-p", &patch]);
        }
        // The API server takes the new schema in a moment: retry until the object is stored.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl_with_stdin("host", &["apply", "-f", "-"], Some(document));
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the object was not stored past the rules:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        self.apply_crds(&format!("crds/{crd}.yaml"));
    }

    /// Runs `kubectl --context <context> <args>` from the repository root.
    pub fn kubectl(&self, context: &str, args: &[&str]) -> Output {
        self.kubectl_with_stdin(context, args, None)
    }

    /// Runs kubectl with `stdin` as its standard input (for `-f -`).
    pub fn kubectl_with_stdin(&self, context: &str, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(context)
            .args(args)
            .current_dir(repo_root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().expect("kubectl on PATH");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and fails the test with its output unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, context: &str, args: &[&str]) -> String {
        let out = self.kubectl(context, args);
        assert!(
            out.status.success(),
            "kubectl --context {context} {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The cluster the `host` context names.
fn host_cluster(config: &Kubeconfig) -> Option<&kube::config::Cluster> {
    let name = &config
        .contexts
        .iter()
        .find(|c| c.name == "host")?
        .context
        .as_ref()?
        .cluster;
    config
        .clusters
        .iter()
        .find(|c| &c.name == name)?
        .cluster
        .as_ref()
}

/// Polls `check` until it returns `Ok(Some(_))` or `timeout` passes; the last error explains a timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() > timeout {
            bail!("{what}: not true after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a multi-document YAML file into JSON values.
pub fn read_yaml_documents(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_saphyr::from_multiple(&text).with_context(|| format!("{}: invalid YAML", path.display()))
}

/// The flotilla binary under test (`FLOTILLA_BIN`, else target/debug/flotilla; `make e2e` builds it).
pub fn flotilla_bin() -> PathBuf {
    std::env::var_os("FLOTILLA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/flotilla"))
}

/// The operator's namespace on the host in these tests.
pub const OPERATOR_NAMESPACE: &str = "flotilla-system";

static FEDERATION: std::sync::Once = std::sync::Once::new();

/// The region a member is joined with (the examples' MemberClusters agree).
pub fn region_of(member: &str) -> &'static str {
    match member {
        "member1" => "eu-west",
        "member2" => "eu-central",
        "member3" => "us-east",
        _ => "elsewhere",
    }
}

/// The timestamps of the lines of an operator's log (text format: the time first) that contain
/// `needle`.
pub fn log_times(log: &Path, needle: &str) -> Vec<jiff::Timestamp> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

impl TestBed {
    /// Runs a test-bed command (`stop-apiserver member1`, …).
    pub fn testbed(&self, args: &[&str]) {
        let out = Command::new(repo_root().join("e2e/testbed/clusters.sh"))
            .args(args)
            .output()
            .expect("clusters.sh runs");
        assert!(
            out.status.success(),
            "clusters.sh {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The federation as a user sets it up, once per test binary: CRDs applied with kubectl,
    /// every member joined with `flotilla join` (least-privilege credentials), then the example
    /// MemberClusters applied for their labels and taints.
    pub fn federation(&self) {
        FEDERATION.call_once(|| {
            self.apply_crds("crds/");
            self.kubectl_ok(
                "host",
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/memberclusters.federation.flotilla.dev",
                ],
            );
            for member in self.members() {
                self.join(&member, region_of(&member));
            }
            self.kubectl_ok(
                "host",
                &["apply", "-f", "manifests/examples/10-member-clusters.yaml"],
            );
        });
    }

    /// Runs the `flotilla` CLI against the host; panics with its output if it fails.
    pub fn flotilla(&self, args: &[&str]) -> String {
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let out = Command::new(flotilla_bin())
            .args(args)
            .args(["--kubeconfig", &kubeconfig, "--context", "host"])
            .output()
            .expect("flotilla binary built (make e2e builds it)");
        assert!(
            out.status.success(),
            "flotilla {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `flotilla join <member>`.
    pub fn join(&self, member: &str, region: &str) {
        self.join_with(member, region, &[]);
    }

    /// `flotilla join <member>` with more arguments (`--kinds …`).
    pub fn join_with(&self, member: &str, region: &str, extra: &[&str]) {
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let out = Command::new(flotilla_bin())
            .args([
                "join",
                member,
                "--kubeconfig",
                &kubeconfig,
                "--context",
                "host",
                "--member-context",
                member,
            ])
            .args([
                "--namespace",
                OPERATOR_NAMESPACE,
                "--region",
                region,
                "--label",
                "env=prod",
            ])
            .args(extra)
            .output()
            .expect("flotilla binary built (make e2e builds it)");
        assert!(
            out.status.success(),
            "flotilla join {member} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh namespace name for one test.
    pub fn namespace(&self, prefix: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{prefix}-{:x}", nanos % 0xfffff)
    }

    /// A fresh namespace `<prefix>-<suffix>` in the host and every member, deleted everywhere
    /// (without waiting) when the guard is dropped, so what a test leaves in it stops being
    /// reconciled by the operators of later tests.
    pub fn namespace_everywhere(&self, prefix: &str) -> BedNamespace<'_> {
        let name = self.namespace(prefix);
        let doc = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            .to_string();
        for context in std::iter::once("host".to_string()).chain(self.members()) {
            self.apply(&context, &doc);
        }
        BedNamespace { bed: self, name }
    }

    /// Applies a JSON or YAML document with kubectl (the user's side).
    pub fn apply(&self, context: &str, document: &str) {
        let out = self.kubectl_with_stdin(context, &["apply", "-f", "-"], Some(document));
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            document
        );
    }
}

/// A running operator process; killed when dropped.
pub struct Operator {
    child: std::process::Child,
    pub metrics_port: u16,
    /// The admin port (PUT /log-level), on loopback.
    pub admin_port: u16,
    pub log: PathBuf,
}

/// How to start an operator.
pub struct OperatorOptions {
    pub leader_elect: bool,
    pub identity: String,
    /// A kubeconfig for the host (default: the test bed's admin kubeconfig, context `host`).
    pub kubeconfig: Option<(PathBuf, String)>,
    pub extra_env: Vec<(String, String)>,
    /// `--lease-duration-seconds` (the operator's default is 8).
    pub lease_duration_seconds: u64,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            leader_elect: false,
            identity: "e2e".into(),
            kubeconfig: None,
            extra_env: Vec::new(),
            lease_duration_seconds: 8,
        }
    }
}

/// `N` distinct free ports on 127.0.0.1. Every listener is held until all are bound: taken one
/// at a time, the kernel may hand out the same port twice (it did: an operator was given one
/// port for both its metrics and its admin address, and could not start).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound address").port())
}

impl Operator {
    /// Starts `flotilla run` against the host and waits until it serves /readyz.
    pub fn start(bed: &TestBed, name: &str) -> Self {
        Self::start_with(bed, name, OperatorOptions::default())
    }

    pub fn start_with(bed: &TestBed, name: &str, options: OperatorOptions) -> Self {
        let mut op = Self::spawn_with(bed, name, options);
        let start = Instant::now();
        while op.get("/readyz").as_deref() != Some("ok") {
            if let Ok(Some(status)) = op.child.try_wait() {
                panic!(
                    "operator exited ({status}); log {}:\n{}",
                    op.log.display(),
                    op.log_tail()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "operator not ready; log:\n{}",
                op.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        op
    }

    /// Starts `flotilla run` without waiting for it to be ready (e.g. while the host is down).
    pub fn spawn_with(bed: &TestBed, name: &str, options: OperatorOptions) -> Self {
        let [metrics_port, admin_port] = free_ports();
        let log = bed.state_dir().join(format!("operator-{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let (kubeconfig, context) = options
            .kubeconfig
            .clone()
            .unwrap_or_else(|| (bed.kubeconfig.clone(), "host".to_string()));
        let mut cmd = Command::new(flotilla_bin());
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--context", &context, "--namespace", OPERATOR_NAMESPACE])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
            .args([
                "--leader-elect",
                if options.leader_elect {
                    "true"
                } else {
                    "false"
                },
            ])
            .args(["--identity", &options.identity])
            .args([
                "--lease-duration-seconds",
                &options.lease_duration_seconds.to_string(),
            ])
            .env(
                "RUST_LOG",
                std::env::var("FLOTILLA_E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(
                options
                    .extra_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        let child = cmd
            .spawn()
            .expect("flotilla binary built (make e2e builds it)");
        Self {
            child,
            metrics_port,
            admin_port,
            log,
        }
    }

    /// GET on the operator's HTTP port; `None` when it does not answer.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    }

    /// PUT on the operator's admin port; returns the status code and body.
    pub fn put(&self, path: &str, body: &str) -> Option<(u16, String)> {
        self.put_on(self.admin_port, path, body)
    }

    /// PUT on one of the operator's ports; returns the status code and body.
    pub fn put_on(&self, port: u16, path: &str, body: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "PUT {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((code, body))
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for it to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill on PATH");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of an unlabelled gauge or counter in a Prometheus exposition, if present.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The helm binary: on PATH, or the one `make tools` caches.
pub fn helm_bin() -> PathBuf {
    let cached = std::env::var_os("FLOTILLA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/flotilla")))
        .map(|c| c.join("bin/helm"));
    match cached {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("helm"),
    }
}

/// A member whose API server is down (or hung) for the guard's lifetime: restored when dropped,
/// also when the test fails.
pub struct Outage<'a> {
    bed: &'a TestBed,
    member: String,
    hung: bool,
    restored: bool,
}

impl<'a> Outage<'a> {
    /// SIGKILLs the member's API server.
    pub fn kill(bed: &'a TestBed, member: &str) -> Self {
        bed.testbed(&["stop-apiserver", member]);
        Self {
            bed,
            member: member.into(),
            hung: false,
            restored: false,
        }
    }

    /// SIGSTOPs the member's API server.
    pub fn hang(bed: &'a TestBed, member: &str) -> Self {
        bed.testbed(&["hang-apiserver", member]);
        Self {
            bed,
            member: member.into(),
            hung: true,
            restored: false,
        }
    }

    /// Brings the member back.
    pub fn restore(&mut self) {
        if !self.restored {
            let cmd = if self.hung {
                "resume-apiserver"
            } else {
                "start-apiserver"
            };
            self.bed.testbed(&[cmd, &self.member]);
            self.restored = true;
        }
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        self.restore();
    }
}

impl TestBed {
    /// Deletes a test's host namespace and waits until it is gone. Call it while an operator
    /// still runs: the finalizers of the namespace's federated objects are the operator's to
    /// remove, and a backlog of them left for the next test's operator delays that test.
    pub fn delete_namespace_and_wait(&self, ns: &str) {
        self.kubectl_ok(
            "host",
            &["delete", "namespace", ns, "--wait=true", "--timeout=300s"],
        );
    }

    /// Creates a fresh namespace on the host for one test; returns its name.
    pub fn create_namespace(&self, prefix: &str) -> String {
        let ns = self.namespace(prefix);
        self.apply(
            "host",
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                .to_string(),
        );
        ns
    }

    /// The Events of the host namespace `ns`, one "reason: message" line each.
    pub fn events(&self, ns: &str) -> String {
        self.kubectl_ok(
            "host",
            &[
                "get",
                "events",
                "-n",
                ns,
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
        )
    }

    /// Waits until an Event with `reason` is recorded in the host namespace `ns` (events are
    /// published beside status writes, not necessarily before them).
    pub async fn wait_for_event(&self, ns: &str, reason: &str) {
        eventually(&format!("a {reason} event in {ns}"), COPY_WAIT, || {
            let events = self.events(ns);
            async move {
                Ok(events
                    .lines()
                    .any(|line| line.split(": ").next() == Some(reason))
                    .then_some(()))
            }
        })
        .await
        .unwrap();
    }

    /// Waits until the member holds a copy `ns/name`; returns it.
    pub async fn wait_for_copy(&self, member: &str, ns: &str, name: &str) -> Ingress {
        let client = self.client(member).await;
        eventually(
            &format!("copy of {ns}/{name} in {member}"),
            COPY_WAIT,
            || {
                let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
                async move { Ok(api.get_opt(name).await?) }
            },
        )
        .await
        .unwrap()
    }

    /// Waits until the member holds no object `ns/name`.
    pub async fn wait_for_no_copy(&self, member: &str, ns: &str, name: &str) {
        let client = self.client(member).await;
        eventually(
            &format!("no copy of {ns}/{name} in {member}"),
            COPY_WAIT,
            || {
                let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
                async move { Ok(api.get_opt(name).await?.is_none().then_some(())) }
            },
        )
        .await
        .unwrap()
    }
}

/// How long tests wait for a copy to appear or go.
pub const COPY_WAIT: Duration = Duration::from_secs(30);

impl Operator {
    /// An operator replica with leader election, named by its identity.
    pub fn replica(bed: &TestBed, identity: &str) -> Self {
        Self::start_with(
            bed,
            &format!("leader-{identity}"),
            OperatorOptions {
                leader_elect: true,
                identity: identity.into(),
                ..OperatorOptions::default()
            },
        )
    }

    /// A replica with leader election whose host connection goes through `kubeconfig`'s `host`
    /// context, logging every lease guard decision (target `flotilla::writes`).
    pub fn replica_with(bed: &TestBed, identity: &str, kubeconfig: Option<PathBuf>) -> Self {
        Self::start_with(
            bed,
            &format!("leader-{identity}"),
            Self::fenced_options(identity, kubeconfig),
        )
    }

    /// The options of [`Self::replica_with`].
    pub fn fenced_options(identity: &str, kubeconfig: Option<PathBuf>) -> OperatorOptions {
        OperatorOptions {
            leader_elect: true,
            identity: identity.into(),
            kubeconfig: kubeconfig.map(|k| (k, "host".to_string())),
            extra_env: vec![("RUST_LOG".into(), "info,flotilla::writes=debug".into())],
            ..OperatorOptions::default()
        }
    }

    /// The timestamps of this operator's log lines that contain `needle`.
    pub fn logged(&self, needle: &str) -> Vec<jiff::Timestamp> {
        log_times(&self.log, needle)
    }

    /// When the lease guard permitted a write (logged by a [`Self::replica_with`]).
    pub fn permitted_writes(&self) -> Vec<jiff::Timestamp> {
        self.logged("write permitted by the lease guard")
    }

    /// When this replica started leading, by its own log.
    pub fn led_since(&self) -> Option<jiff::Timestamp> {
        self.logged("leading: starting controllers")
            .first()
            .copied()
    }

    /// Writes this (old) leader made at or after `since`, e.g. while another replica led.
    pub fn writes_since(&self, since: jiff::Timestamp) -> Vec<jiff::Timestamp> {
        self.permitted_writes()
            .into_iter()
            .filter(|t| *t >= since)
            .collect()
    }

    /// Whether this replica reports that it holds the leader Lease.
    pub fn leading(&self) -> bool {
        self.get("/metrics")
            .and_then(|m| metric_value(&m, "flotilla_leader"))
            == Some(1.0)
    }
}

impl TestBed {
    /// `helm <args>` against the host, from the repository root; its stdout.
    pub fn helm(&self, args: &[&str]) -> String {
        let out = Command::new(helm_bin())
            .args(args)
            .args([
                "--kubeconfig",
                &self.kubeconfig().to_string_lossy(),
                "--kube-context",
                "host",
            ])
            .current_dir(repo_root())
            .output()
            .expect("helm runs (make tools installs it)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "helm {} failed:\n{}{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
        );
        // The API server's warnings (e.g. on a CRD field it does not know) are Helm's stderr.
        assert!(
            !stderr.contains("Warning") && !stderr.contains("warning:"),
            "helm {} warned:\n{stderr}",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `helm upgrade --install` of the chart as release `flotilla` in the operator's namespace,
    /// taking over the CRDs the tests applied with kubectl, not waiting; `values` are more
    /// arguments (`--set …`).
    pub fn helm_install_chart(&self, values: &[&str]) -> String {
        let mut args = vec![
            "upgrade",
            "--install",
            "flotilla",
            "charts/flotilla",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--take-ownership",
            "--wait=false",
        ];
        args.extend_from_slice(values);
        self.helm(&args)
    }

    /// An object of any resource in `cluster` (`namespace` `None` for a cluster-scoped one), as
    /// JSON; `None` when it does not exist (or cannot be read).
    pub async fn object(
        &self,
        cluster: &str,
        resource: &kube::api::ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<serde_json::Value> {
        let client = self.client(cluster).await;
        let api: kube::Api<kube::api::DynamicObject> = match namespace {
            Some(ns) => kube::Api::namespaced_with(client, ns, resource),
            None => kube::Api::all_with(client, resource),
        };
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|o| serde_json::to_value(o).ok())
    }
}

/// The resource of `kind` at `api_version` (`v1`, `apps/v1`) with its `plural`.
pub fn api_resource(api_version: &str, kind: &str, plural: &str) -> kube::api::ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    )
}

impl TestBed {
    /// Deletes the leader Lease, so replicas started next do not wait for one an earlier run
    /// left behind to expire.
    pub fn delete_lease(&self) {
        self.kubectl(
            "host",
            &[
                "delete",
                "lease",
                "flotilla-leader",
                "-n",
                OPERATOR_NAMESPACE,
                "--ignore-not-found",
            ],
        );
    }
}

/// `kubectl auth can-i --list` output as `"<resource> <resource names>"` → verbs, e.g.
/// `"leases.coordination.k8s.io [flotilla-leader]"` → `"get update"`. Non-resource URLs and the
/// self-review kinds every identity has are left out.
pub fn can_i_matrix(list: &str) -> std::collections::BTreeMap<String, String> {
    let mut granted = std::collections::BTreeMap::new();
    for line in list.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Resource rows: resource, [] (non-resource URLs), [names...], [verbs...].
        let Some((resource, rest)) = fields.split_first() else {
            continue;
        };
        if resource.starts_with('[') || resource.starts_with("self") {
            continue;
        }
        let text = rest.join(" ");
        let Some(after_urls) = text.strip_prefix("[] ") else {
            continue;
        };
        let names_end = after_urls.find(']').map_or(after_urls.len(), |i| i + 1);
        let (names, verbs) = after_urls.split_at(names_end);
        let verbs = verbs.trim().trim_start_matches('[').trim_end_matches(']');
        granted.insert(format!("{resource} {}", names.trim()), verbs.to_string());
    }
    granted
}

/// An expected matrix written as `(resource, names, verbs)` rows, in [`can_i_matrix`]'s shape.
pub fn matrix(rows: &[(&str, &str, &str)]) -> std::collections::BTreeMap<String, String> {
    rows.iter()
        .map(|(r, n, v)| (format!("{r} {n}"), (*v).to_string()))
        .collect()
}

/// A namespace in the host and every member of the bed; see [`TestBed::namespace_everywhere`].
pub struct BedNamespace<'a> {
    bed: &'a TestBed,
    pub name: String,
}

impl std::ops::Deref for BedNamespace<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for BedNamespace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for BedNamespace<'_> {
    fn drop(&mut self) {
        for context in std::iter::once("host".to_string()).chain(self.bed.members()) {
            self.bed.kubectl(
                &context,
                &["delete", "namespace", &self.name, "--wait=false"],
            );
        }
    }
}

/// The text with every list index in a field path (`[0]`, `[12]`) removed: current API servers
/// name fields with indices (`spec.overrides[0].patches[0].path`), 1.20 without.
pub fn without_list_indices(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(']') {
            rest = &after[digits + 1..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
