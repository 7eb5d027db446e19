//! Member failures: failover by priority when a placed member's API server is killed or hung,
//! failback after the stabilization period, copies kept while a member is unreachable and cleaned
//! up when it returns, and deletion that does not wait for an unreachable member.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_api::FederatedIngress;
use flotilla_e2e::{Operator, Outage, TestBed, eventually};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn federated_ingress(ns: &str, name: &str, placement: Value) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {"spec": {"rules": [{"host": format!("{name}.example.com")}]}},
            "placement": placement,
        }
    })
    .to_string()
}

fn active_passive(stabilization: u32) -> Value {
    json!({
        "clusters": ["member1", "member2"],
        "constraints": {"maxClusters": 1},
        "failoverPriority": [{"name": "primary", "clusters": ["member1"]}, {"name": "backup", "clusters": ["member2"]}],
        "failback": {"mode": "Automatic", "stabilizationSeconds": stabilization},
    })
}

async fn selected(bed: &TestBed, ns: &str, name: &str) -> Vec<String> {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    api.get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.placement)
        .map(|p| p.selected)
        .unwrap_or_default()
}

/// Waits until the status records `expected` as the selection. The copy lands in the member
/// before the operator writes status, so a test that has just seen the copy must wait for it.
async fn wait_selected(bed: &TestBed, ns: &str, name: &str, expected: &[&str]) {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    eventually(&format!("{ns}/{name} selects {expected:?}"), WAIT, || {
        let api = api.clone();
        async move {
            let fi = api.get(name).await?;
            let selected = fi
                .status
                .and_then(|s| s.placement)
                .map(|p| p.selected)
                .unwrap_or_default();
            Ok((selected == expected).then_some(()))
        }
    })
    .await
    .unwrap();
}

async fn failover_and_failback(bed: &TestBed, hang: bool) {
    bed.federation();
    let _op = Operator::start(
        bed,
        if hang {
            "failover-hang"
        } else {
            "failover-kill"
        },
    );
    let ns = bed.create_namespace(if hang { "hang" } else { "kill" });
    bed.apply("host", &federated_ingress(&ns, "app", active_passive(5)));
    bed.wait_for_copy("member1", &ns, "app").await;
    bed.wait_for_no_copy("member2", &ns, "app").await;

    let started = Instant::now();
    let mut outage = if hang {
        Outage::hang(bed, "member1")
    } else {
        Outage::kill(bed, "member1")
    };
    bed.wait_for_copy("member2", &ns, "app").await;
    let failover = started.elapsed();
    println!(
        "failover ({}) took {failover:?}",
        if hang { "SIGSTOP" } else { "kill" }
    );
    wait_selected(bed, &ns, "app", &["member2"]).await;
    bed.wait_for_event(&ns, "FailedOver").await;

    outage.restore();
    let back = Instant::now();
    wait_selected(bed, &ns, "app", &["member1"]).await;
    let failback = back.elapsed();
    println!("failback took {failback:?} after the member returned");
    assert!(
        failback >= Duration::from_secs(4),
        "failed back after {failback:?}, before the 5 s stabilization period"
    );
    bed.wait_for_copy("member1", &ns, "app").await;
    bed.wait_for_no_copy("member2", &ns, "app").await;
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "app",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// Kill the primary's API server: the copy moves to the backup; restart it: it moves back after
/// the stabilization period, and the backup's copy is pruned.
#[tokio::test]
async fn failover_on_kill_and_failback() {
    failover_and_failback(&TestBed::get(), false).await;
}

/// The same with the API server hung (SIGSTOP): probes time out instead of being refused.
#[tokio::test]
async fn failover_on_hang_and_failback() {
    failover_and_failback(&TestBed::get(), true).await;
}

/// With failback mode Never, the object stays where it failed over to.
#[tokio::test]
async fn failback_never_stays_put() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "failback-never");
    let ns = bed.create_namespace("never");
    let mut placement = active_passive(1);
    placement["failback"]["mode"] = json!("Never");
    bed.apply("host", &federated_ingress(&ns, "app", placement));
    bed.wait_for_copy("member1", &ns, "app").await;
    let mut outage = Outage::kill(&bed, "member1");
    bed.wait_for_copy("member2", &ns, "app").await;
    outage.restore();
    // Well past the (1 s) stabilization period and the member's return.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(selected(&bed, &ns, "app").await, vec!["member2"]);
    bed.wait_for_no_copy("member1", &ns, "app").await;
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "app",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// A member that is unreachable keeps its copy; when it is back and the object is no longer
/// placed there, the copy is removed.
#[tokio::test]
async fn an_unreachable_member_keeps_its_copy_until_it_returns() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "unreachable");
    let ns = bed.create_namespace("away");
    bed.apply(
        "host",
        &federated_ingress(&ns, "app", json!({"clusters": ["member1"]})),
    );
    bed.wait_for_copy("member1", &ns, "app").await;
    let uid_before = Api::<Ingress>::namespaced(bed.client("member1").await, &ns)
        .get("app")
        .await
        .unwrap()
        .metadata
        .uid;

    let mut outage = Outage::kill(&bed, "member1");
    bed.apply(
        "host",
        &federated_ingress(&ns, "app", json!({"clusters": ["member2"]})),
    );
    bed.wait_for_copy("member2", &ns, "app").await;
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, &ns);
    let entry = eventually("member1 reported unreachable", WAIT, || {
        let api = api.clone();
        async move {
            let fi = api.get("app").await?;
            Ok(fi
                .status
                .and_then(|s| s.clusters.into_iter().find(|c| c.cluster == "member1"))
                .filter(|c| format!("{:?}", c.state) == "Unreachable"))
        }
    })
    .await
    .unwrap();
    assert!(
        entry
            .message
            .unwrap_or_default()
            .contains("removed when the member is back")
    );

    // Bring the API server back without the operator noticing yet: the copy is still there.
    outage.restore();
    let copy = Api::<Ingress>::namespaced(bed.client("member1").await, &ns)
        .get_opt("app")
        .await
        .unwrap();
    if let Some(copy) = copy {
        assert_eq!(
            copy.metadata.uid, uid_before,
            "the copy was replaced, not kept"
        );
    }
    bed.wait_for_no_copy("member1", &ns, "app").await;
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "app",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// Deleting the host object does not wait for an unreachable member; its copy is removed when
/// the member returns.
#[tokio::test]
async fn deletion_does_not_wait_for_an_unreachable_member() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "delete-unreachable");
    let ns = bed.create_namespace("gone");
    bed.apply(
        "host",
        &federated_ingress(&ns, "app", json!({"clusters": ["member1", "member2"]})),
    );
    bed.wait_for_copy("member1", &ns, "app").await;
    bed.wait_for_copy("member2", &ns, "app").await;

    let mut outage = Outage::kill(&bed, "member1");
    // Wait until the operator has seen member1 go NotReady.
    let members: Api<flotilla_api::MemberCluster> = Api::all(bed.client("host").await);
    eventually("member1 NotReady", WAIT, || {
        let members = members.clone();
        async move {
            let mc = members.get("member1").await?;
            let ready = mc
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
            Ok(ready.filter(|c| c.status == "False").map(|_| ()))
        }
    })
    .await
    .unwrap();
    let start = Instant::now();
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "app",
            "-n",
            &ns,
            "--timeout=20s",
        ],
    );
    println!("deleted in {:?} with member1 down", start.elapsed());
    bed.wait_for_no_copy("member2", &ns, "app").await;

    outage.restore();
    bed.wait_for_no_copy("member1", &ns, "app").await;
}
