//! The propagation engine under member faults: its own prunes are never drift, a hung member
//! holds up no other, idle watches stay up, copies are matched by their host object's uid,
//! released copies are clean, and overrides cannot break ownership.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_api::FederatedIngress;
use flotilla_e2e::{Operator, Outage, TestBed, eventually, metric_value};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn federated_ingress(ns: &str, name: &str, spec: Value) -> String {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"rules": [{"host": format!("{name}.example.com")}]}});
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
    .to_string()
}

async fn get(bed: &TestBed, ns: &str, name: &str) -> FederatedIngress {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    api.get(name).await.unwrap()
}

/// The clusters of the status entries, and whether Drifted is True.
async fn entries_and_drift(bed: &TestBed, ns: &str, name: &str) -> (Vec<String>, bool) {
    let status = get(bed, ns, name).await.status.unwrap_or_default();
    let clusters = status.clusters.iter().map(|c| c.cluster.clone()).collect();
    let drifted = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Drifted" && c.status == "True");
    (clusters, drifted)
}

async fn wait_entries(bed: &TestBed, ns: &str, name: &str, expected: &[&str]) {
    eventually(
        &format!("{ns}/{name} status entries {expected:?}"),
        WAIT,
        || async {
            let (clusters, _) = entries_and_drift(bed, ns, name).await;
            Ok((clusters == expected).then_some(()))
        },
    )
    .await
    .unwrap();
}

async fn ingress(bed: &TestBed, member: &str, ns: &str, name: &str) -> Option<Ingress> {
    let api: Api<Ingress> = Api::namespaced(bed.client(member).await, ns);
    api.get_opt(name).await.unwrap()
}

fn edit_host(bed: &TestBed, member: &str, ns: &str, name: &str, host: &str) {
    let patch = json!([{"op": "replace", "path": "/spec/rules/0/host", "value": host}]).to_string();
    bed.kubectl_ok(
        member,
        &[
            "patch",
            "ingress",
            name,
            "-n",
            ns,
            "--type=json",
            "-p",
            &patch,
        ],
    );
}

async fn wait_drifted(bed: &TestBed, ns: &str, name: &str) {
    eventually(&format!("{ns}/{name} Drifted"), WAIT, || async {
        Ok(entries_and_drift(bed, ns, name).await.1.then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_engines_own_prunes_are_not_drift() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "engine-prunes");
    let ns = bed.create_namespace("prunes");
    let placement = json!({
        "clusters": ["member1", "member2"],
        "constraints": {"maxClusters": 1},
        "failoverPriority": [{"name": "primary", "clusters": ["member1"]}, {"name": "backup", "clusters": ["member2"]}],
        "failback": {"mode": "Automatic", "stabilizationSeconds": 3},
    });
    for (name, mode) in [("enforced", "Enforce"), ("reported", "ReportOnly")] {
        bed.apply(
            "host",
            &federated_ingress(
                &ns,
                name,
                json!({"placement": placement, "drift": {"mode": mode}}),
            ),
        );
        bed.wait_for_copy("member1", &ns, name).await;
        wait_entries(&bed, &ns, name, &["member1"]).await;
    }

    // Fail over to member2 and back: the copies leave member2 by the engine's own hand.
    let mut outage = Outage::kill(&bed, "member1");
    for name in ["enforced", "reported"] {
        bed.wait_for_copy("member2", &ns, name).await;
    }
    outage.restore();
    for name in ["enforced", "reported"] {
        bed.wait_for_no_copy("member2", &ns, name).await;
        wait_entries(&bed, &ns, name, &["member1"]).await;
    }

    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        for name in ["enforced", "reported"] {
            assert!(
                ingress(&bed, "member2", &ns, name).await.is_none(),
                "{name} came back to member2"
            );
            let (clusters, drifted) = entries_and_drift(&bed, &ns, name).await;
            assert_eq!(
                clusters,
                vec!["member1".to_string()],
                "{name}: ghost entries"
            );
            assert!(
                !drifted,
                "{name}: the engine's own prune was reported as drift"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = bed.events(&ns);
    assert!(
        !events.contains("DriftDetected") && !events.contains("DriftCorrected"),
        "drift events for the engine's own moves:\n{events}"
    );
}

#[tokio::test]
async fn a_hung_member_does_not_hold_up_the_others() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "engine-hung");
    let ns = bed.create_namespace("hung");
    // Objects on member1 keep its lane busy while it hangs.
    for i in 0..20 {
        bed.apply(
            "host",
            &federated_ingress(
                &ns,
                &format!("busy-{i}"),
                json!({"placement": {"clusters": ["member1", "member2"]}}),
            ),
        );
    }
    bed.apply(
        "host",
        &federated_ingress(
            &ns,
            "watched",
            json!({"placement": {"clusters": ["member2"]}}),
        ),
    );
    bed.wait_for_copy("member2", &ns, "watched").await;
    for i in 0..20 {
        bed.wait_for_copy("member1", &ns, &format!("busy-{i}"))
            .await;
    }

    let _outage = Outage::hang(&bed, "member1");
    // Updates that member1 cannot take, and a new object that does not need it.
    for i in 0..20 {
        let patch =
            json!({"spec": {"template": {"metadata": {"labels": {"round": "2"}}}}}).to_string();
        bed.kubectl_ok(
            "host",
            &[
                "patch",
                "federatedingress",
                &format!("busy-{i}"),
                "-n",
                &ns,
                "--type=merge",
                "-p",
                &patch,
            ],
        );
    }
    bed.apply(
        "host",
        &federated_ingress(
            &ns,
            "elsewhere",
            json!({"placement": {
                "clusters": ["member2", "member3"],
                // member3 of the examples carries a NoSchedule taint.
                "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]},
            }}),
        ),
    );
    bed.wait_for_copy("member2", &ns, "elsewhere").await;
    bed.wait_for_copy("member3", &ns, "elsewhere").await;
    // The syncer keeps working for the healthy members.
    edit_host(&bed, "member2", &ns, "watched", "changed.example.com");
    wait_drifted(&bed, &ns, "watched").await;
}

#[tokio::test]
async fn idle_watches_stay_up_and_copy_identity_holds() {
    let bed = TestBed::get();
    bed.federation();
    let op = Operator::start(&bed, "engine-idle");
    let ns = bed.create_namespace("idle");
    let other = bed.create_namespace("spoof");
    bed.apply(
        "host",
        &federated_ingress(&ns, "web", json!({"placement": {"clusters": ["member1"]}})),
    );
    let copy = bed.wait_for_copy("member1", &ns, "web").await;
    wait_entries(&bed, &ns, "web", &["member1"]).await;

    // An Ingress elsewhere in member1 that carries web's labels and annotations (uid included).
    let mut spoof = serde_json::to_value(&copy).unwrap();
    spoof["metadata"] = json!({
        "name": "web", "namespace": other,
        "labels": copy.metadata.labels, "annotations": copy.metadata.annotations,
    });
    spoof["spec"]["rules"][0]["host"] = json!("spoof.example.com");
    spoof["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.66"}]}});
    bed.kubectl_ok("member1", &["create", "namespace", &other]);
    bed.apply("member1", &spoof.to_string());

    // Quiet for longer than any client timeout, and longer than a sweep period.
    tokio::time::sleep(Duration::from_secs(65)).await;
    let metrics = op.get("/metrics").unwrap_or_default();
    let failures = metric_value(
        &metrics,
        "flotilla_member_watch_failures_total{cluster=\"member1\"}",
    );
    assert!(
        failures.unwrap_or(0.0) == 0.0,
        "the idle watch failed {failures:?} times"
    );
    assert!(
        ingress(&bed, "member1", &other, "web").await.is_some(),
        "the spoof was swept"
    );
    let status = get(&bed, &ns, "web").await.status.unwrap();
    assert!(
        status
            .clusters
            .iter()
            .all(|c| c.drift.is_none() && c.load_balancer.is_empty()),
        "the spoof reached web's status: {:?}",
        status.clusters
    );

    edit_host(&bed, "member1", &ns, "web", "edited.example.com");
    eventually(
        "drift after a quiet minute",
        Duration::from_secs(10),
        || async { Ok(entries_and_drift(&bed, &ns, "web").await.1.then_some(())) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn orphan_release_leaves_a_clean_object() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "engine-orphan");
    let ns = bed.create_namespace("release");
    bed.apply(
        "host",
        &federated_ingress(
            &ns,
            "web",
            json!({"placement": {"clusters": ["member1"]}, "deletion": "Orphan"}),
        ),
    );
    bed.wait_for_copy("member1", &ns, "web").await;
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "web",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
    let released = eventually("a released copy", WAIT, || async {
        let copy = ingress(&bed, "member1", &ns, "web").await;
        Ok(copy.filter(|c| {
            !c.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .contains_key("app.kubernetes.io/managed-by")
        }))
    })
    .await
    .unwrap();
    let keys: Vec<String> = released
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_keys()
        .chain(
            released
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_keys(),
        )
        .collect();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with("federation.flotilla.dev/")),
        "tracking keys left: {keys:?}"
    );
    let managers: Vec<String> = released
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        !managers.iter().any(|m| m == "flotilla"),
        "Flotilla still owns fields: {managers:?}"
    );

    // A new object of that name does not adopt it silently.
    bed.apply(
        "host",
        &federated_ingress(&ns, "web", json!({"placement": {"clusters": ["member1"]}})),
    );
    eventually("Conflict for the released object", WAIT, || async {
        let status = get(&bed, &ns, "web").await.status.unwrap_or_default();
        Ok(status
            .clusters
            .iter()
            .any(|c| c.cluster == "member1" && format!("{:?}", c.state) == "Conflict")
            .then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        ingress(&bed, "member1", &ns, "web")
            .await
            .unwrap()
            .metadata
            .uid,
        released.metadata.uid
    );
}

#[tokio::test]
async fn overrides_cannot_break_ownership() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "engine-overrides");
    let ns = bed.create_namespace("ownership");
    let owner = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "00000000-0000-0000-0000-000000000001"}]);
    let web = federated_ingress(
        &ns,
        "web",
        json!({
            "placement": {"clusters": ["member1", "member2"]},
            "drift": {"mode": "Enforce"},
            "overrides": [{"clusterName": "member1", "patches": [{"op": "add", "path": "/metadata/ownerReferences", "value": owner}]}],
        }),
    );
    // Where the API server runs the CRD's rules, it refuses the object at admission.
    if bed.admission_runs_cel("host") {
        let out = bed.kubectl_with_stdin("host", &["apply", "-f", "-"], Some(&web));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("spec.overrides[0].patches[0].path: Forbidden"),
            "not refused at admission:\n{stderr}"
        );
    }
    // The controller's own check, for such an object stored where no rule ran (an older
    // server, or before the CRD had the rule): the other members still get their copies.
    bed.store_past_cel_rules("federatedingresses.federation.flotilla.dev", &web);
    bed.wait_for_copy("member2", &ns, "web").await;
    eventually("InvalidOverride for member1", WAIT, || async {
        let status = get(&bed, &ns, "web").await.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned();
        Ok(
            ready
                .filter(|c| c.reason == "InvalidOverride" && c.message.contains("ownerReferences")),
        )
    })
    .await
    .unwrap();
    assert!(
        ingress(&bed, "member1", &ns, "web").await.is_none(),
        "a copy went to member1"
    );
}

#[tokio::test]
async fn an_undecodable_object_is_reported_and_the_others_keep_working() {
    let bed = TestBed::get();
    bed.federation();
    let ns = bed.create_namespace("undecodable");
    // A CRD of an older release, without the bound, lets a value through that the type cannot
    // hold; the object is stored before the operator starts, so its first list meets it.
    let crd = "federatedingresses.federation.flotilla.dev";
    let bound = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/placement/properties/constraints/properties/maxClusters/maximum";
    let loosen = json!([{"op": "remove", "path": bound}]).to_string();
    bed.kubectl_ok("host", &["patch", "crd", crd, "--type=json", "-p", &loosen]);
    let bad = federated_ingress(
        &ns,
        "bad",
        json!({"placement": {"constraints": {"maxClusters": 4294967296u64}}}),
    );
    let stored = eventually("the out-of-range object stored", WAIT, || async {
        Ok(bed
            .kubectl_with_stdin("host", &["apply", "-f", "-"], Some(&bad))
            .status
            .success()
            .then_some(()))
    })
    .await;
    bed.apply_crds(&format!("crds/{crd}.yaml"));
    stored.unwrap();

    let _op = Operator::start(&bed, "engine-undecodable");
    bed.apply(
        "host",
        &federated_ingress(&ns, "good", json!({"placement": {"clusters": ["member1"]}})),
    );
    bed.wait_for_copy("member1", &ns, "good").await;
    bed.wait_for_event(&ns, "InvalidObject").await;
    let events = bed.events(&ns);
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("InvalidObject") && l.contains("maxClusters")),
        "the event does not name the field:\n{events}"
    );
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "bad",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// A MemberCluster whose first verdict is minutes away (its server accepts connections and never
/// answers; one probe a minute, four failures to conclude).
struct Probing<'a> {
    bed: &'a TestBed,
    _listener: std::net::TcpListener,
}

impl<'a> Probing<'a> {
    fn register(bed: &'a TestBed) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = kube::config::Kubeconfig::read_from(bed.kubeconfig()).unwrap();
        let ca = config
            .clusters
            .into_iter()
            .find(|c| c.name == "member1")
            .and_then(|c| c.cluster)
            .and_then(|c| c.certificate_authority_data)
            .unwrap();
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": format!("https://127.0.0.1:{port}"), "certificate-authority-data": ca}}],
            "users": [{"name": "u", "user": {"token": "unused"}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "ctx"
        })
        .to_string();
        bed.apply(
            "host",
            &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "probing-kubeconfig", "namespace": flotilla_e2e::OPERATOR_NAMESPACE,
                             "labels": {"federation.flotilla.dev/member-credentials": "true"}},
                "stringData": {"kubeconfig": kubeconfig}})
            .to_string(),
        );
        bed.apply(
            "host",
            &json!({"apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
                "metadata": {"name": "probing"},
                "spec": {"secretRef": {"name": "probing-kubeconfig"},
                         "probe": {"periodMilliseconds": 60000, "timeoutMilliseconds": 500, "failureThreshold": 4}}})
            .to_string(),
        );
        Self {
            bed,
            _listener: listener,
        }
    }
}

impl Drop for Probing<'_> {
    fn drop(&mut self) {
        self.bed.kubectl(
            "host",
            &[
                "delete",
                "membercluster",
                "probing",
                "--ignore-not-found",
                "--wait=true",
            ],
        );
        self.bed.kubectl(
            "host",
            &[
                "delete",
                "secret",
                "probing-kubeconfig",
                "-n",
                flotilla_e2e::OPERATOR_NAMESPACE,
                "--ignore-not-found",
            ],
        );
    }
}

#[tokio::test]
async fn a_member_still_being_probed_holds_back_only_what_could_go_there() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "engine-probing");
    let ns = bed.create_namespace("probing");
    let _probing = Probing::register(&bed);
    bed.apply(
        "host",
        &federated_ingress(
            &ns,
            "pinned",
            json!({"placement": {"clusters": ["member1"]}}),
        ),
    );
    bed.apply("host", &federated_ingress(&ns, "anywhere", json!({})));
    // Not placeable on the member being probed: propagates, with no entry for it.
    bed.wait_for_copy("member1", &ns, "pinned").await;
    wait_entries(&bed, &ns, "pinned", &["member1"]).await;
    // Placeable there: waits, and says why.
    eventually("anywhere waits for the probe", WAIT, || async {
        let status = get(&bed, &ns, "anywhere").await.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .filter(|c| {
                c.status == "Unknown"
                    && c.reason == "MemberBeingProbed"
                    && c.message.contains("probing")
            })
            .map(|_| ()))
    })
    .await
    .unwrap();
    let (clusters, _) = entries_and_drift(&bed, &ns, "pinned").await;
    assert_eq!(
        clusters,
        vec!["member1".to_string()],
        "a ghost entry for the member being probed"
    );
}
