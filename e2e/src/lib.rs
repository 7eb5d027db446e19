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
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

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
