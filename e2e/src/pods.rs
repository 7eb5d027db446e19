//! The operator as users run it: pods of the host cluster, from its own image, installed by
//! Helm (1.34 beds with nodes). The image is built from `FLOTILLA_BIN` by
//! `e2e/testbed/images/operator.sh` and imported into the host's node (no registry); the members
//! are joined with credentials that pods can use (`<member>.internal.kubeconfig`, the bed's relays
//! in the host's node); the pods' logs are read with `kubectl logs`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::{OPERATOR_NAMESPACE, TestBed, flotilla_bin, log_times, repo_root};

/// The repository of the operator's image on the bed (`flotilla.test/*` is never pulled).
pub const IMAGE_REPOSITORY: &str = "flotilla.test/flotilla";

impl TestBed {
    /// Builds the operator's image from `FLOTILLA_BIN`, named `IMAGE_REPOSITORY:<tag>` for every
    /// tag (one image, several names), and imports it into the host's node.
    pub fn load_operator_image(&self, tags: &[&str]) {
        let archive = self.state_dir().join("operator-image.tar");
        let names: Vec<String> = tags
            .iter()
            .map(|t| format!("{IMAGE_REPOSITORY}:{t}"))
            .collect();
        let out = Command::new(repo_root().join("e2e/testbed/images/operator.sh"))
            .arg(flotilla_bin())
            .arg(&archive)
            .args(&names)
            .output()
            .expect("operator.sh runs");
        assert!(
            out.status.success(),
            "operator.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.testbed(&["load-image", "host", &archive.to_string_lossy()]);
        // ~80 MB the node now holds in its containerd
        let _ = std::fs::remove_file(&archive);
    }

    /// Joins every member again (`flotilla join`, after [`Self::federation`]) through its
    /// `<member>.internal.kubeconfig`: the Secrets then name an address that pods of the host's
    /// node reach (the bed's relay in that node; processes of this machine reach it too), with
    /// `tls-server-name: localhost`, a name the members' serving certificates carry.
    pub fn join_for_pods(&self) {
        for member in self.members() {
            let internal = self
                .state_dir()
                .join(format!("{member}.internal.kubeconfig"));
            assert!(
                internal.exists(),
                "{} is missing: this bed has no relays for pods (a 1.34 bed with nodes writes it)",
                internal.display()
            );
            self.join_with(
                &member,
                crate::region_of(&member),
                &["--member-kubeconfig", &internal.to_string_lossy()],
            );
        }
    }

    /// The address of the host's node (its InternalIP), where its NodePorts and relays listen.
    pub fn host_node_address(&self) -> String {
        let address = self.kubectl_ok(
            "host",
            &[
                "get",
                "node",
                "host-node",
                "-o",
                "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
            ],
        );
        assert!(
            !address.trim().is_empty(),
            "the host's node has no InternalIP (a bed without nodes?)"
        );
        address.trim().to_string()
    }
}

/// The log of one operator pod, copied to `<state>/pod-<name>.log` by `kubectl logs`.
pub struct PodLog {
    pub pod: String,
    pub path: PathBuf,
    follower: Option<Child>,
}

impl PodLog {
    /// Follows the pod's log (`kubectl logs -f`) until its container ends: for a pod that is
    /// about to be deleted, whose log goes with it.
    pub fn follow(bed: &TestBed, pod: &str) -> Self {
        let path = bed.state_dir().join(format!("pod-{pod}.log"));
        let file = std::fs::File::create(&path).expect("log file");
        let follower = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(bed.kubeconfig())
            .args([
                "--context",
                "host",
                "-n",
                OPERATOR_NAMESPACE,
                "logs",
                "-f",
                pod,
            ])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl on PATH");
        Self {
            pod: pod.into(),
            path,
            follower: Some(follower),
        }
    }

    /// The pod's log as it is now (`kubectl logs`).
    pub fn snapshot(bed: &TestBed, pod: &str) -> Self {
        let text = bed.kubectl_ok("host", &["-n", OPERATOR_NAMESPACE, "logs", pod]);
        let path = bed.state_dir().join(format!("pod-{pod}.log"));
        std::fs::write(&path, text).expect("log file");
        Self {
            pod: pod.into(),
            path,
            follower: None,
        }
    }

    /// Waits (up to `limit`) for a followed log to end, i.e. for the container to stop; whether
    /// it ended.
    pub fn wait_ended(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while let Some(child) = self.follower.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.follower = None;
                break;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    }

    /// When its lease guard permitted a write (`RUST_LOG` with `flotilla::writes=debug`).
    pub fn permitted_writes(&self) -> Vec<Timestamp> {
        log_times(&self.path, "write permitted by the lease guard")
    }

    /// When it started leading, by its own log.
    pub fn led_since(&self) -> Option<Timestamp> {
        log_times(&self.path, "leading: starting controllers")
            .first()
            .copied()
    }

    /// Writes its lease guard permitted at or after `since`.
    pub fn writes_since(&self, since: Timestamp) -> Vec<Timestamp> {
        self.permitted_writes()
            .into_iter()
            .filter(|t| *t >= since)
            .collect()
    }

    /// The last lines, for failure messages.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PodLog {
    fn drop(&mut self) {
        if let Some(mut child) = self.follower.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
