//! Fencing: a leader that cannot renew its Lease writes nothing after its lease deadline, and
//! exits; the standby takes over. Writes are measured from the operators' own side: every
//! replica logs each write its lease guard permits or refuses (target `flotilla::writes`, with a
//! wall-clock timestamp) and counts them in `flotilla_lease_guard_checks_total`. Both replicas
//! run on this machine, so their log timestamps share one clock.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::proxy::BlackHoleProxy;
use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, TestBed, eventually};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

/// The operator's default Lease duration, which the replicas use, and its renew deadline.
const LEASE: Duration = Duration::from_secs(8);
const RENEW_DEADLINE: Duration = Duration::from_millis(8000 * 2 / 3);

fn delete_lease(bed: &TestBed) {
    bed.kubectl(
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

async fn lease_holder(bed: &TestBed) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    api.get_opt("flotilla-leader")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

fn federated_ingress(bed: &TestBed, ns: &str, name: &str, host: &str) {
    bed.apply(
        "host",
        &json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"rules": [{"host": host}]}},
                     "placement": {"clusters": ["member1"]}}
        })
        .to_string(),
    );
}

/// The timestamps of the log lines that contain `needle`.
fn logged(op: &Operator, needle: &str) -> Vec<Timestamp> {
    std::fs::read_to_string(&op.log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn permitted_writes(op: &Operator) -> Vec<Timestamp> {
    logged(op, "write permitted by the lease guard")
}

/// When the replica started leading, by its own log.
fn led_since(op: &Operator) -> Timestamp {
    *logged(op, "leading: starting controllers")
        .first()
        .unwrap_or_else(|| panic!("never led:\n{}", op.log_tail()))
}

/// Writes the old leader made at or after `since`: while the other replica led, the overlap.
fn overlap(old: &Operator, since: Timestamp) -> Vec<Timestamp> {
    permitted_writes(old)
        .into_iter()
        .filter(|t| *t >= since)
        .collect()
}

async fn two_replicas(
    bed: &TestBed,
    leader: &str,
    standby: &str,
    via: Option<std::path::PathBuf>,
) -> (Operator, Operator) {
    bed.federation();
    delete_lease(bed);
    let a = Operator::replica_with(bed, leader, via);
    eventually(
        &format!("{leader} leads"),
        Duration::from_secs(20),
        || async { Ok(a.leading().then_some(())) },
    )
    .await
    .unwrap();
    let b = Operator::replica_with(bed, standby, None);
    (a, b)
}

#[tokio::test]
async fn a_paused_leader_writes_nothing_after_its_lease_deadline_and_exits() {
    let bed = TestBed::get();
    let (mut a, b) = two_replicas(&bed, "paused-a", "paused-b", None).await;
    let ns = bed.create_namespace("fence-pause");
    federated_ingress(&bed, &ns, "before", "before.example.com");
    bed.wait_for_copy("member1", &ns, "before").await;
    assert!(
        !permitted_writes(&a).is_empty(),
        "the leader logged no write"
    );

    a.signal("STOP");
    let stopped = Timestamp::now();
    let stopped_at = Instant::now();
    // Work the paused leader will find waiting when it resumes: a new object and a changed one.
    federated_ingress(&bed, &ns, "during", "during.example.com");
    federated_ingress(&bed, &ns, "before", "changed.example.com");
    eventually(
        "the standby takes over",
        Duration::from_secs(20),
        || async { Ok(b.leading().then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log_tail()));
    bed.wait_for_copy("member1", &ns, "during").await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped_at.elapsed())).await;

    a.signal("CONT");
    let status = a
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the resumed leader kept running:\n{}", a.log_tail()));
    assert!(!status.success(), "exit status {status}");
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(log.contains("lost the leader Lease"), "{}", a.log_tail());
    // Its deadline passed while it was stopped: nothing it permitted is later than the stop.
    let late: Vec<_> = permitted_writes(&a)
        .into_iter()
        .filter(|t| *t >= stopped)
        .collect();
    assert!(
        late.is_empty(),
        "writes after SIGSTOP: {late:?}\n{}",
        a.log_tail()
    );
    let overlap = overlap(&a, led_since(&b));
    println!("overlapping writes: {}", overlap.len());
    assert!(
        overlap.is_empty(),
        "the old leader wrote while the standby led: {overlap:?}"
    );
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("paused-b"));
    bed.kubectl_ok("host", &["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test]
async fn a_leader_cut_off_from_the_host_stops_writing_to_members_within_the_renew_deadline() {
    let bed = TestBed::get();
    let proxy = BlackHoleProxy::start(bed.host_address());
    let via = bed.kubeconfig_via(proxy.port, "kubeconfig-cut-leader");
    let (mut a, b) = two_replicas(&bed, "cut-a", "cut-b", Some(via)).await;
    let ns = bed.create_namespace("fence-cut");
    federated_ingress(&bed, &ns, "before", "before.example.com");
    bed.wait_for_copy("member1", &ns, "before").await;

    // Only the leader's host connection is cut; it still reaches the members directly.
    proxy.cut();
    let cut = Timestamp::now();
    let cut_at = Instant::now();
    let status = a
        .wait_exit(RENEW_DEADLINE + Duration::from_secs(3))
        .unwrap_or_else(|| panic!("the cut-off leader kept running:\n{}", a.log_tail()));
    let exited = cut_at.elapsed();
    println!("cut-off leader exited {exited:?} after the cut");
    assert!(!status.success(), "exit status {status}");
    // Its last renewal started before the cut, so its deadline is before cut + renew deadline.
    let deadline = cut.checked_add(RENEW_DEADLINE).unwrap();
    let late: Vec<_> = permitted_writes(&a)
        .into_iter()
        .filter(|t| *t >= deadline)
        .collect();
    assert!(late.is_empty(), "writes after the lease deadline: {late:?}");

    eventually("the standby takes over", LEASE * 2, || async {
        Ok(b.leading().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log_tail()));
    let took = cut_at.elapsed();
    println!("standby leads {took:?} after the cut");
    let overlap = overlap(&a, led_since(&b));
    assert!(
        overlap.is_empty(),
        "the old leader wrote while the standby led: {overlap:?}"
    );
    federated_ingress(&bed, &ns, "after", "after.example.com");
    bed.wait_for_copy("member1", &ns, "after").await;
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("cut-b"));
    bed.kubectl_ok("host", &["delete", "namespace", &ns, "--wait=false"]);
}
