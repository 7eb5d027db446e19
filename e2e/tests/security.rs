//! The member kubeconfig Secret is data, not code (issue #12, part 2), and the admin endpoint is
//! off the metrics port (part 5), on the real test bed with the real binary.
//!
//! Each credentials case is a MemberCluster whose labelled Secret holds a kubeconfig that an
//! attacker with write access to Secrets in the operator's namespace might store. kube's
//! kubeconfig loader (what the operator used before) runs `exec` plugins and `auth-provider`
//! commands, and reads `tokenFile`: these tests fail against such a binary.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use flotilla_api::MemberCluster;
use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, OperatorOptions, TestBed, eventually};
use kube::Api;
use kube::config::Kubeconfig;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
/// How long a command or file read would have had to happen.
const GRACE: Duration = Duration::from_secs(10);
const LABEL: &str = "federation.flotilla.dev/member-credentials";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// member1's server URL and CA data, as the test bed's kubeconfig has them.
fn member1_cluster(bed: &TestBed) -> (String, String) {
    let config = Kubeconfig::read_from(bed.kubeconfig()).unwrap();
    let cluster = config
        .clusters
        .into_iter()
        .find(|c| c.name == "member1")
        .and_then(|c| c.cluster)
        .unwrap();
    (
        cluster.server.unwrap(),
        cluster.certificate_authority_data.unwrap(),
    )
}

/// A kubeconfig (JSON is YAML) with one context of `cluster` and `user`.
fn kubeconfig(cluster: Value, user: Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx"
    })
    .to_string()
}

/// member1's cluster entry (https, inline CA): only the user part is under test.
fn member1_entry(bed: &TestBed) -> Value {
    let (server, ca) = member1_cluster(bed);
    json!({"server": server, "certificate-authority-data": ca})
}

/// A scratch directory for one test, emptied first.
fn scratch(bed: &TestBed, name: &str) -> PathBuf {
    let dir = bed.state_dir().join(format!("security-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executable script that creates `marker` and prints a credential, as a plugin would.
fn marker_script(dir: &Path, marker: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"from-plugin\"}}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn delete_member(bed: &TestBed, name: &str) {
    bed.kubectl(
        "host",
        &[
            "delete",
            "membercluster",
            name,
            "--ignore-not-found",
            "--wait=true",
        ],
    );
    bed.kubectl(
        "host",
        &[
            "delete",
            "secret",
            &format!("{name}-kubeconfig"),
            "-n",
            OPERATOR_NAMESPACE,
            "--ignore-not-found",
        ],
    );
}

/// Stores `kubeconfig` in a labelled Secret and registers MemberCluster `name` on it.
fn register(bed: &TestBed, name: &str, kubeconfig: &str) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-kubeconfig"), "namespace": OPERATOR_NAMESPACE,
                     "labels": {LABEL: "true"}},
        "stringData": {"kubeconfig": kubeconfig}});
    bed.apply("host", &secret.to_string());
    let member = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {"secretRef": {"name": format!("{name}-kubeconfig")}}
    });
    bed.apply("host", &member.to_string());
}

/// Waits until the member's Ready condition is False with `reason`; returns its message.
async fn wait_for_reason(bed: &TestBed, name: &str, reason: &str) -> String {
    let api: Api<MemberCluster> = Api::all(bed.client("host").await);
    eventually(&format!("MemberCluster {name}: {reason}"), WAIT, || {
        let api = api.clone();
        async move {
            let mc = api.get(name).await?;
            let ready = mc
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
            Ok(ready
                .filter(|c| c.status == "False" && c.reason == reason)
                .map(|c| c.message))
        }
    })
    .await
    .unwrap()
}

/// A loopback TCP server that records every byte sent to it and answers 500.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (received.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                *c.lock().unwrap() += 1;
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buffer = [0u8; 4096];
                let mut request = Vec::new();
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if request.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                r.lock().unwrap().extend_from_slice(&request);
                let _ = stream.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self {
            port,
            received,
            connections,
        }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

/// A token no test bed output contains by chance.
fn unique_token(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-never-echo-{nanos:x}-q7Zk")
}

/// Every form in which `token` might leak: raw, and base64 at each of the three byte alignments
/// (inside a longer base64 blob, such as a Secret's data, it may start at any of them).
fn leak_forms(token: &str) -> Vec<String> {
    let mut forms = vec![token.to_string()];
    for pad in 0..3 {
        let mut bytes = vec![b'x'; pad];
        bytes.extend_from_slice(token.as_bytes());
        let encoded = b64(&bytes);
        // Drop the characters that mix in the padding bytes or the end.
        let start = (pad * 4).div_ceil(3);
        let core = &encoded[start..encoded.len().saturating_sub(4)];
        forms.push(core.to_string());
    }
    forms
}

/// The places a token must never show up: MemberCluster conditions, host events, the operator's log.
fn assert_never_echoed(bed: &TestBed, op: &Operator, token: &str) {
    let places = [
        (
            "MemberCluster statuses",
            bed.kubectl_ok("host", &["get", "memberclusters", "-o", "json"]),
        ),
        (
            "events",
            bed.kubectl_ok("host", &["get", "events", "-A", "-o", "json"]),
        ),
        (
            "the operator log",
            std::fs::read_to_string(&op.log).unwrap(),
        ),
    ];
    for form in leak_forms(token) {
        for (place, text) in &places {
            assert!(
                !text.contains(&form),
                "{place} contains the token (as {form:?})"
            );
        }
    }
}

/// (1) An exec plugin that would create a marker file never runs.
#[tokio::test]
async fn exec_plugins_never_run() {
    let bed = TestBed::get();
    bed.federation();
    let name = "sec-exec";
    delete_member(&bed, name);
    let dir = scratch(&bed, "exec");
    let marker = dir.join("marker");
    let script = marker_script(&dir, &marker);
    let op = Operator::start(&bed, "security-exec");
    let user = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "/bin/sh",
        "args": ["-c", format!("'{}'", script.display())],
        "interactiveMode": "Never"
    }});
    register(&bed, name, &kubeconfig(member1_entry(&bed), user));
    let message = wait_for_reason(&bed, name, "UnsupportedCredentials").await;
    assert!(message.contains("user.exec"), "{message}");
    assert!(
        !message.contains("plugin.sh"),
        "the message echoes the Secret: {message}"
    );
    std::thread::sleep(GRACE);
    assert!(
        !marker.exists(),
        "the exec plugin ran as the operator's user; log:\n{}",
        op.log_tail()
    );
    delete_member(&bed, name);
}

/// (2) An auth-provider's `cmd-path` never runs.
#[tokio::test]
async fn auth_provider_commands_never_run() {
    let bed = TestBed::get();
    bed.federation();
    let name = "sec-authprovider";
    delete_member(&bed, name);
    let dir = scratch(&bed, "authprovider");
    let marker = dir.join("marker");
    let script = marker_script(&dir, &marker);
    let op = Operator::start(&bed, "security-authprovider");
    let user = json!({"auth-provider": {"name": "gcp", "config": {
        "cmd-path": script.display().to_string(),
        "cmd-args": "token",
        "token-key": "{.status.token}"
    }}});
    register(&bed, name, &kubeconfig(member1_entry(&bed), user));
    let message = wait_for_reason(&bed, name, "UnsupportedCredentials").await;
    assert!(message.contains("user.auth-provider"), "{message}");
    std::thread::sleep(GRACE);
    assert!(
        !marker.exists(),
        "the auth-provider command ran as the operator's user; log:\n{}",
        op.log_tail()
    );
    delete_member(&bed, name);
}

/// (3) A `tokenFile` is never read, and its content never sent, even to a server the Secret names
/// over plain HTTP with the development flag on (so that the file is the only thing refused).
/// The same recorder then receives an inline token, which shows it would have seen the file's.
#[tokio::test]
async fn token_files_are_never_read_or_sent() {
    let bed = TestBed::get();
    bed.federation();
    let name = "sec-tokenfile";
    delete_member(&bed, name);
    let dir = scratch(&bed, "tokenfile");
    let token = unique_token("file");
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token).unwrap();
    let recorder = Recorder::start();
    let op = Operator::start_with(
        &bed,
        "security-tokenfile",
        OperatorOptions {
            extra_env: vec![("FLOTILLA_ALLOW_INSECURE_MEMBER_TLS".into(), "true".into())],
            ..OperatorOptions::default()
        },
    );
    let cluster = json!({"server": format!("http://127.0.0.1:{}", recorder.port)});
    let user = json!({"tokenFile": token_file.display().to_string()});
    register(&bed, name, &kubeconfig(cluster.clone(), user));
    let message = wait_for_reason(&bed, name, "UnsupportedCredentials").await;
    assert!(message.contains("user.tokenFile"), "{message}");
    assert!(
        !message.contains("http://"),
        "with the development flag only the file is refused: {message}"
    );
    std::thread::sleep(GRACE);
    assert!(
        !recorder.received().contains(&token),
        "the token file's content was sent to the server named in the Secret"
    );
    assert_eq!(
        recorder.connections(),
        0,
        "refused credentials still connected to the server"
    );
    assert_never_echoed(&bed, &op, &token);

    // Control: an inline token reaches the recorder, so it would have seen the file's token.
    let inline = unique_token("inline");
    register(
        &bed,
        name,
        &kubeconfig(cluster, json!({"token": inline.clone()})),
    );
    eventually("the recorder sees the inline token", WAIT, || {
        let seen = recorder.received().contains(&format!("Bearer {inline}"));
        async move { Ok(seen.then_some(())) }
    })
    .await
    .unwrap();
    delete_member(&bed, name);
}

/// (4) No condition, event or operator log line carries any form of a token from a Secret,
/// whatever is wrong with the Secret: refused fields, a parse error, plain HTTP without the
/// development flag, or a token the member rejects.
#[tokio::test]
async fn tokens_never_reach_conditions_events_or_logs() {
    let bed = TestBed::get();
    bed.federation();
    let token = unique_token("inline");
    let op = Operator::start(&bed, "security-noecho");
    let (server, ca) = member1_cluster(&bed);
    let cases = [
        (
            "sec-echo-exec",
            kubeconfig(
                json!({"server": server, "certificate-authority-data": ca}),
                json!({"token": token, "exec": {"command": "/bin/true",
                       "apiVersion": "client.authentication.k8s.io/v1beta1"}}),
            ),
            "UnsupportedCredentials",
        ),
        (
            "sec-echo-parse",
            format!("clusters: [{{name: {token}, cluster: {{server: [\n"),
            "InvalidKubeconfig",
        ),
        (
            "sec-echo-type",
            format!("users:\n- name: u\n  user:\n    token: [{token}]\n"),
            "InvalidKubeconfig",
        ),
        (
            "sec-echo-http",
            kubeconfig(
                json!({"server": format!("http://{token}.invalid:80")}),
                json!({"token": token}),
            ),
            "UnsupportedCredentials",
        ),
        (
            "sec-echo-rejected",
            kubeconfig(
                json!({"server": server, "certificate-authority-data": ca}),
                json!({"token": token}),
            ),
            "Unauthorized",
        ),
    ];
    for (name, _, _) in &cases {
        delete_member(&bed, name);
    }
    for (name, text, _) in &cases {
        register(&bed, name, text);
    }
    for (name, _, reason) in &cases {
        wait_for_reason(&bed, name, reason).await;
    }
    // Events are published beside status writes; give them a moment.
    std::thread::sleep(Duration::from_secs(3));
    assert_never_echoed(&bed, &op, &token);
    for (name, _, _) in &cases {
        delete_member(&bed, name);
    }
}

/// (5) PUT /log-level is served only on the admin port (loopback), not on the metrics port.
#[tokio::test]
async fn log_level_is_not_on_the_metrics_port() {
    let bed = TestBed::get();
    bed.federation();
    let op = Operator::start(&bed, "security-admin");
    let (code, _) = op
        .put_on(op.metrics_port, "/log-level", "debug")
        .expect("the metrics port answers");
    assert_eq!(code, 404, "the metrics port still changes the log level");
    let (code, body) = op
        .put("/log-level", "info")
        .expect("the admin port answers");
    assert_eq!(code, 200, "{body}");
    assert_eq!(op.get("/readyz").as_deref(), Some("ok"));
}

/// A Secret without the credentials label is never read: the member says how to fix it, and
/// labelling the Secret is enough.
#[tokio::test]
async fn unlabelled_secrets_are_not_read() {
    let bed = TestBed::get();
    bed.federation();
    let name = "sec-unlabelled";
    delete_member(&bed, name);
    let _op = Operator::start(&bed, "security-unlabelled");
    let good = std::fs::read_to_string(bed.state_dir().join("member1.kubeconfig")).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-kubeconfig"), "namespace": OPERATOR_NAMESPACE},
        "stringData": {"kubeconfig": good}});
    bed.apply("host", &secret.to_string());
    let member = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {"secretRef": {"name": format!("{name}-kubeconfig")}}
    });
    bed.apply("host", &member.to_string());
    let message = wait_for_reason(&bed, name, "SecretNotLabelled").await;
    assert!(message.contains(&format!("{LABEL}=true")), "{message}");
    bed.kubectl_ok(
        "host",
        &[
            "label",
            "secret",
            &format!("{name}-kubeconfig"),
            "-n",
            OPERATOR_NAMESPACE,
            &format!("{LABEL}=true"),
        ],
    );
    let api: Api<MemberCluster> = Api::all(bed.client("host").await);
    // Once labelled, the Secret is read: the credentials load, and the member is probed. (It
    // reaches member1's cluster, which member1 holds, so it is a DuplicateCluster, never Ready.)
    eventually("labelled credentials are read", WAIT, || {
        let api = api.clone();
        async move {
            let conditions = api
                .get(name)
                .await?
                .status
                .map(|s| s.conditions)
                .unwrap_or_default();
            let loaded = conditions
                .iter()
                .any(|c| c.type_ == "CredentialsValid" && c.status == "True");
            let probed = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "DuplicateCluster");
            Ok((loaded && probed).then_some(()))
        }
    })
    .await
    .unwrap();
    delete_member(&bed, name);
}
