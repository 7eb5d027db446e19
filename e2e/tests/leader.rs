//! Two operator replicas against one host: only the leader reconciles and writes; when it is
//! killed the other takes over in under 15 s; a leader that loses its Lease stops at once.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, TestBed, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::json;

fn reconciles(op: &Operator) -> f64 {
    op.get("/metrics")
        .map(|m| {
            m.lines()
                .filter(|l| l.starts_with("flotilla_reconciles_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0)
}

async fn lease_holder(bed: &TestBed) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    api.get_opt("flotilla-leader")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

async fn place(bed: &TestBed, ns: &str, name: &str) {
    bed.apply(
        "host",
        &json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"rules": [{"host": "leader.example.com"}]}},
                     "placement": {"clusters": ["member1"]}}
        })
        .to_string(),
    );
    let client = bed.client("member1").await;
    eventually(&format!("copy of {name}"), Duration::from_secs(30), || {
        let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
        async move { Ok(api.get_opt(name).await?) }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn one_leader_writes_and_a_standby_takes_over_when_it_is_killed() {
    let bed = TestBed::get();
    bed.federation();
    // A Lease left by an earlier run would make the first replica wait for it to expire.
    bed.delete_lease();
    let mut a = Operator::replica(&bed, "replica-a");
    eventually("replica-a leads", Duration::from_secs(20), || async {
        Ok(a.leading().then_some(()))
    })
    .await
    .unwrap();
    let mut b = Operator::replica(&bed, "replica-b");
    let ns = bed.namespace("leader");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    );
    place(&bed, &ns, "first").await;

    assert!(a.leading() && !b.leading(), "exactly one leader");
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("replica-a"));
    assert!(reconciles(&a) > 0.0, "the leader reconciles");
    assert_eq!(
        reconciles(&b),
        0.0,
        "the standby reconciled: it must not write"
    );

    let killed = Instant::now();
    a.kill();
    eventually("replica-b takes over", Duration::from_secs(15), || async {
        Ok(b.leading().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nreplica-b log:\n{}", b.log_tail()));
    let took = killed.elapsed();
    println!("takeover after SIGKILL of the leader: {took:?}");
    assert!(took < Duration::from_secs(15));
    assert_eq!(lease_holder(&bed).await.as_deref(), Some("replica-b"));
    place(&bed, &ns, "second").await;

    // The log level changes at run time; a bad filter is refused with the reason.
    let (code, _) = b
        .put("/log-level", "debug")
        .expect("PUT /log-level answers");
    assert_eq!(code, 200);
    let (code, body) = b.put("/log-level", "[[[").expect("PUT /log-level answers");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter"), "{body}");
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log.contains("log level changed"),
        "no record of the change:\n{}",
        b.log_tail()
    );

    // Graceful stop releases the Lease at once.
    let status = b.terminate().expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert_eq!(lease_holder(&bed).await, None, "the Lease was not released");
    bed.kubectl_ok("host", &["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_writing() {
    let bed = TestBed::get();
    bed.federation();
    bed.delete_lease();
    let mut a = Operator::replica(&bed, "replica-c");
    eventually("replica-c leads", Duration::from_secs(20), || async {
        Ok(a.leading().then_some(()))
    })
    .await
    .unwrap();
    // Someone else takes the Lease (as a partitioned leader would find on its next renewal).
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    bed.kubectl_ok(
        "host",
        &[
            "patch",
            "lease",
            "flotilla-leader",
            "-n",
            OPERATOR_NAMESPACE,
            "--type=merge",
            "-p",
            &json!({"spec": {"holderIdentity": "usurper", "renewTime": now}}).to_string(),
        ],
    );
    let start = Instant::now();
    while a.is_running() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the deposed leader kept running:\n{}",
            a.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("deposed leader exited after {:?}", start.elapsed());
    assert!(
        std::fs::read_to_string(&a.log)
            .unwrap()
            .contains("lost the leader Lease")
    );
    bed.delete_lease();
}
