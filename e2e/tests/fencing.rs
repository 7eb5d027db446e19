//! Fencing: a leader that cannot renew its Lease writes nothing after its lease deadline, and
//! exits; the standby takes over. Writes are measured from the operators' own side: every
//! replica logs each write its lease guard permits or refuses (target `flotilla::writes`, with a
//! wall-clock timestamp) and counts them in `flotilla_lease_guard_checks_total`. Both replicas
//! run on this machine, so their log timestamps share one clock.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::proxy::BlackHoleProxy;
use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, Outage, TestBed, eventually};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

/// The operator's default Lease duration, which the replicas use, and its renew deadline.
const LEASE: Duration = Duration::from_secs(8);
const RENEW_DEADLINE: Duration = Duration::from_millis(8000 * 2 / 3);

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

/// When the replica started leading, by its own log.
fn led_since(op: &Operator) -> Timestamp {
    op.led_since()
        .unwrap_or_else(|| panic!("never led:\n{}", op.log_tail()))
}

async fn two_replicas(
    bed: &TestBed,
    leader: &str,
    standby: &str,
    via: Option<std::path::PathBuf>,
) -> (Operator, Operator) {
    bed.federation();
    bed.delete_lease();
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
        !a.permitted_writes().is_empty(),
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
    let late = a.writes_since(stopped);
    assert!(
        late.is_empty(),
        "writes after SIGSTOP: {late:?}\n{}",
        a.log_tail()
    );
    let overlap = a.writes_since(led_since(&b));
    println!("overlapping writes: {}", overlap.len());
    assert!(
        overlap.is_empty(),
        "the old leader wrote while the standby led: {overlap:?}"
    );
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("paused-b"));

    // The API servers' own record (audit logs, by user agent): the paused leader's last accepted
    // write reached a server before its lease deadline (at the latest the stop plus the renew
    // deadline), and before the standby's first.
    let (a_writes, b_writes) = (
        bed.audited_writes("paused-a"),
        bed.audited_writes("paused-b"),
    );
    let deadline = stopped + RENEW_DEADLINE;
    let b_first = b_writes
        .iter()
        .find(|w| w.succeeded() && w.resource != "leases")
        .map(|w| w.at)
        .expect("the standby's writes are in the audit logs");
    let accepted: Vec<_> = a_writes.iter().filter(|w| w.succeeded()).collect();
    println!(
        "audit: paused-a {} accepted writes (last {:?}), paused-b's first at {b_first}, deadline {deadline}",
        accepted.len(),
        accepted.last().map(|w| w.at)
    );
    assert!(
        !accepted.is_empty(),
        "no write of paused-a in the audit logs"
    );
    let late: Vec<_> = a_writes.iter().filter(|w| w.at >= deadline).collect();
    assert!(
        late.is_empty(),
        "the API servers received writes from paused-a after its lease deadline: {late:?}"
    );
    let overlap: Vec<_> = accepted.iter().filter(|w| w.at >= b_first).collect();
    assert!(overlap.is_empty(), "audited overlap: {overlap:?}");
    bed.delete_namespace_and_wait(&ns);
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
    let late = a.writes_since(deadline);
    assert!(late.is_empty(), "writes after the lease deadline: {late:?}");

    eventually("the standby takes over", LEASE * 2, || async {
        Ok(b.leading().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log_tail()));
    let took = cut_at.elapsed();
    println!("standby leads {took:?} after the cut");
    let overlap = a.writes_since(led_since(&b));
    assert!(
        overlap.is_empty(),
        "the old leader wrote while the standby led: {overlap:?}"
    );
    federated_ingress(&bed, &ns, "after", "after.example.com");
    bed.wait_for_copy("member1", &ns, "after").await;
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("cut-b"));
    bed.delete_namespace_and_wait(&ns);
}

#[tokio::test]
async fn a_host_outage_ends_the_leader_and_a_replica_leads_within_one_lease_after_it_no_crash_loop()
{
    let bed = TestBed::get();
    let (mut a, mut b) = two_replicas(&bed, "outage-a", "outage-b", None).await;
    let ns = bed.create_namespace("fence-outage");
    federated_ingress(&bed, &ns, "before", "before.example.com");
    bed.wait_for_copy("member1", &ns, "before").await;

    let mut outage = Outage::kill(&bed, "host");
    let down = Instant::now();
    // The leader cannot renew: it exits at its renew deadline (it cannot know whether it still
    // leads, so it may not write to members either).
    let status = a
        .wait_exit(RENEW_DEADLINE + Duration::from_secs(3))
        .unwrap_or_else(|| {
            panic!(
                "the leader kept running without its host:\n{}",
                a.log_tail()
            )
        });
    assert!(!status.success(), "exit status {status}");
    println!("leader exited {:?} into the host outage", down.elapsed());
    // Its replacement, started while the host is still down (as a supervisor restarts it), waits
    // for the host instead of exiting; the standby keeps campaigning.
    let mut a2 = Operator::spawn_with(
        &bed,
        "leader-outage-a2",
        Operator::fenced_options("outage-a2", None),
    );
    tokio::time::sleep((LEASE * 2).saturating_sub(down.elapsed())).await;
    assert!(
        a2.is_running(),
        "restarted during the outage, it exited:\n{}",
        a2.log_tail()
    );
    assert!(
        b.is_running(),
        "the standby exited during the outage:\n{}",
        b.log_tail()
    );

    outage.restore();
    let back = Instant::now();
    eventually("a replica leads again", LEASE, || async {
        Ok((b.leading() || a2.leading()).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.log_tail(), a2.log_tail()));
    println!(
        "a replica leads {:?} after the host is back",
        back.elapsed()
    );
    assert!(!(b.leading() && a2.leading()), "two leaders");
    federated_ingress(&bed, &ns, "after", "after.example.com");
    bed.wait_for_copy("member1", &ns, "after").await;
    assert!(a2.is_running() && b.is_running());
    bed.delete_namespace_and_wait(&ns);
}

/// 1,000 objects being reconciled while the leader is rolled twice. (Renewals once shared the
/// controllers' runtime and host client and missed their deadline under this load; they run on
/// a thread and connection of their own now.)
#[tokio::test]
async fn a_rolling_restart_of_the_leader_under_load_never_has_two_replicas_writing() {
    const OBJECTS: usize = 1000;
    let bed = TestBed::get();
    let (mut a, mut b) = two_replicas(&bed, "roll-a", "roll-b", None).await;
    let ns = bed.create_namespace("fence-roll");
    let items: Vec<_> = (0..OBJECTS)
        .map(|i| {
            json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
                "metadata": {"name": format!("roll-{i}"), "namespace": ns},
                "spec": {"template": {"spec": {"rules": [{"host": "roll.example.com"}]}},
                         "placement": {"clusters": ["member1", "member2"]}}
            })
        })
        .collect();
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    );
    // Roll while the objects are being reconciled: SIGTERM the leader, let the standby take
    // over, start a replacement, SIGTERM the new leader.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Under load on a small machine a leader may miss its renew deadline and exit with status 1
    // before or during the drain: that is fencing at work, not a failure of this test.
    let status = a.terminate().expect("stops on SIGTERM");
    println!("roll-a: {status}");
    eventually("roll-b leads", LEASE * 2, || async {
        Ok(b.leading().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log_tail()));
    let c = Operator::replica_with(&bed, "roll-c", None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = b.terminate().expect("stops on SIGTERM");
    println!("roll-b: {status}");
    eventually("roll-c leads", LEASE * 2, || async {
        Ok(c.leading().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (a_writes, b_writes) = (a.permitted_writes().len(), b.permitted_writes().len());
    println!("writes: roll-a {a_writes}, roll-b {b_writes}");
    assert!(
        a_writes > 0 && b_writes > 0,
        "the roll did not happen under load"
    );
    let overlap_ab = a.writes_since(led_since(&b));
    let overlap_bc = b.writes_since(led_since(&c));
    println!(
        "overlapping writes: {} + {}",
        overlap_ab.len(),
        overlap_bc.len()
    );
    assert!(
        overlap_ab.is_empty(),
        "roll-a wrote while roll-b led: {overlap_ab:?}"
    );
    assert!(
        overlap_bc.is_empty(),
        "roll-b wrote while roll-c led: {overlap_bc:?}"
    );
    // The same from the API servers' audit logs: every write of the old leader was received
    // before the new leader's first.
    let audited = |id: &str| -> Vec<_> {
        bed.audited_writes(id)
            .into_iter()
            .filter(|w| w.succeeded() && w.resource != "leases")
            .collect()
    };
    let (a_audit, b_audit, c_audit) = (audited("roll-a"), audited("roll-b"), audited("roll-c"));
    println!(
        "audited writes: roll-a {}, roll-b {}, roll-c {}",
        a_audit.len(),
        b_audit.len(),
        c_audit.len()
    );
    assert!(
        !a_audit.is_empty() && !b_audit.is_empty(),
        "no audited writes"
    );
    for (old, new, names) in [
        (&a_audit, &b_audit, "roll-a/roll-b"),
        (&b_audit, &c_audit, "roll-b/roll-c"),
    ] {
        if let (Some(last), Some(first)) = (old.last(), new.first()) {
            assert!(
                last.at < first.at,
                "{names}: the old leader's write {last:?} reached a server after the new leader's first {first:?}"
            );
        }
    }
    bed.delete_namespace_and_wait(&ns);
}
