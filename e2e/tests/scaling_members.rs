//! ScalingPolicy on the members' own metrics APIs, end to end: one Prometheus adapter per member
//! (registered in its aggregator, each serving only that member's series) and federated
//! Deployments on three members. External and Object metrics are summed over the members; a Pods
//! metric pools every member's pods into one pod set with the upstream replica calculator's
//! rules: pods that are not ready never drive the scale on their own.
//!
//! The bed has no kubelet and no scheduler: the Deployments' pods stay Pending unless a test
//! sets their status (Running and Ready) itself, as a kubelet would.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_api::ScalingPolicy;
use flotilla_e2e::metrics_adapter::MetricsAdapters;
use flotilla_e2e::prometheus::{PrometheusStack, Series};
use flotilla_e2e::{Operator, OperatorOptions, TestBed, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const MEMBERS: [&str; 3] = ["member1", "member2", "member3"];
/// The members' metrics APIs are read every 15 s (the HPA's period): a change shows within
/// that, the write, and the adapter's own refresh.
const WAIT: Duration = Duration::from_secs(60);

/// A FederatedObject Deployment `name` on the three members, `total` replicas divided.
fn workload(ns: &str, name: &str, total: i32) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "replicas": total,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {
                            // kept off the bed's nodes: the pods stay Pending until the test
                            // sets their status (a kubelet would report its own)
                            "nodeSelector": {"flotilla.test/no-such-node": "true"},
                            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}
                }
            },
            "replicas": {"mode": "Divided"},
            "placement": {
                "clusters": MEMBERS,
                "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}
            },
        }
    })
    .to_string()
}

/// A ScalingPolicy on Deployment `name` with one metric, reacting at once in both directions.
fn policy(ns: &str, name: &str, metric: Value) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 60,
            "metrics": [metric],
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 60, "periodSeconds": 1}]},
                "scaleDown": {"stabilizationWindowSeconds": 0,
                              "policies": [{"type": "Pods", "value": 60, "periodSeconds": 1}]}
            }
        }
    })
    .to_string()
}

async fn replicas(bed: &TestBed, ns: &str, name: &str) -> Vec<Option<i32>> {
    let mut out = Vec::new();
    for m in MEMBERS {
        let api: Api<Deployment> = Api::namespaced(bed.client(m).await, ns);
        out.push(
            api.get_opt(name)
                .await
                .unwrap()
                .and_then(|d| d.spec)
                .and_then(|s| s.replicas),
        );
    }
    out
}

async fn wait_replicas(bed: &TestBed, ns: &str, name: &str, want: i32) {
    let what = format!("{name}: {want} replicas in every member");
    eventually(&what, WAIT, || async {
        let now = replicas(bed, ns, name).await;
        Ok(now.iter().all(|r| *r == Some(want)).then_some(()))
    })
    .await
    .unwrap();
}

async fn policy_status(bed: &TestBed, ns: &str, name: &str) -> ScalingPolicy {
    Api::<ScalingPolicy>::namespaced(bed.client("host").await, ns)
        .get(name)
        .await
        .unwrap()
}

/// (status, reason, message) of the policy's condition `type_`.
async fn condition(
    bed: &TestBed,
    ns: &str,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    policy_status(bed, ns, name)
        .await
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason, c.message))
}

/// The workload's pods in `member`, as a kubelet would report them: Running and Ready since a
/// while (so their samples count from the start). They are kept off the bed's nodes, whose
/// kubelets would report their own status.
async fn make_ready(bed: &TestBed, member: &str, ns: &str, app: &str) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(bed.client(member).await, ns);
    let pods = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let since = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600)).to_string();
    let mut names = Vec::new();
    for pod in pods.items {
        let name = pod.metadata.name.unwrap();
        let status = json!({"status": {
            "phase": "Running",
            "startTime": since,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        names.push(name);
    }
    names
}

/// A series to push: name, labels, value.
type Owned = (String, Vec<(String, String)>, f64);

fn owned(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[tokio::test]
async fn member_metrics_apis_drive_a_federated_deployment() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _adapters = MetricsAdapters::start(&bed, &prom);
    let _op = Operator::start_with(
        &bed,
        "scaling-members",
        OperatorOptions {
            extra_env: vec![("FLOTILLA_PROMETHEUS_URL".into(), prom.url())],
            ..OperatorOptions::default()
        },
    );
    let ns = bed.namespace_everywhere("sp-apis");
    let ns = ns.name.as_str();
    for name in ["ext", "obj", "pods"] {
        bed.apply("host", &workload(ns, name, 3));
        wait_replicas(&bed, ns, name, 1).await;
    }

    // External: each member's adapter serves its own queue length; the policy sums the three
    // (3 x 30 = 90) and divides by 10 per replica: 9, 3 per member.
    let push = |name: &str, per_member: &[(&str, f64)], extra: &[(&str, &str)]| -> Vec<Owned> {
        per_member
            .iter()
            .map(|(m, v)| {
                let mut labels = vec![owned("namespace", ns), owned("cluster", m)];
                labels.extend(extra.iter().map(|(k, v)| owned(k, v)));
                (name.to_string(), labels, *v)
            })
            .collect()
    };
    let send = |job: &str, series: Vec<Owned>| {
        let series: Vec<Series<'_>> = series
            .iter()
            .map(|(n, l, v)| Series {
                name: n,
                labels: l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                value: *v,
            })
            .collect();
        prom.push_series(job, &series);
    };
    send(
        &format!("{ns}-ext"),
        push(
            "sp_queue_external",
            &[("member1", 30.0), ("member2", 30.0), ("member3", 30.0)],
            &[],
        ),
    );
    bed.apply(
        "host",
        &policy(
            ns,
            "ext",
            json!({"type": "External", "external": {"metric": {"name": "sp_queue_external"},
                "target": {"type": "AverageValue", "averageValue": "10"}}}),
        ),
    );
    wait_replicas(&bed, ns, "ext", 3).await;

    // Object: the Deployment's requests per second in each member (20 each), summed to 60;
    // 10 per replica: 6, 2 per member.
    send(
        &format!("{ns}-obj"),
        push(
            "sp_rps_per_deployment",
            &[("member1", 20.0), ("member2", 20.0), ("member3", 20.0)],
            &[("deployment", "obj")],
        ),
    );
    bed.apply(
        "host",
        &policy(
            ns,
            "obj",
            json!({"type": "Object", "object": {
                "describedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "obj"},
                "metric": {"name": "sp_rps_per_deployment"},
                "target": {"type": "AverageValue", "averageValue": "10"}}}),
        ),
    );
    wait_replicas(&bed, ns, "obj", 2).await;

    // Pods: while the pods are Pending (not ready), their samples never drive the scale: the
    // metric fails with the upstream message and the replicas stay.
    let mut pods_by_member = Vec::new();
    for m in MEMBERS {
        let api: Api<Pod> = Api::namespaced(bed.client(m).await, ns);
        let names: Vec<String> = eventually("the pods exist", WAIT, || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default().labels("app=pods")).await?;
                let names: Vec<String> = list
                    .items
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .collect();
                Ok((names.len() == 1).then_some(names))
            }
        })
        .await
        .unwrap();
        pods_by_member.push((m, names));
    }
    let per_pod = |value: f64| -> Vec<Owned> {
        let mut series = Vec::new();
        for (m, names) in &pods_by_member {
            for pod in names {
                series.push((
                    "sp_load_per_pod".to_string(),
                    vec![
                        owned("namespace", ns),
                        owned("cluster", m),
                        owned("pod", pod),
                    ],
                    value,
                ));
            }
        }
        series
    };
    send(&format!("{ns}-pods"), per_pod(50.0));
    bed.apply(
        "host",
        &policy(
            ns,
            "pods",
            json!({"type": "Pods", "pods": {"metric": {"name": "sp_load_per_pod"},
                "target": {"type": "AverageValue", "averageValue": "10"}}}),
        ),
    );
    let (_, reason, message) =
        eventually("the Pods metric fails on unready pods", WAIT, || async {
            // (The adapter may not serve a new series for a second or two: a failure too, with
            // another message.)
            Ok(condition(&bed, ns, "pods", "ScalingActive")
                .await
                .filter(|(s, r, m)| {
                    s == "False"
                        && r == "FailedGetPodsMetric"
                        && m.contains("pods might be unready")
                }))
        })
        .await
        .unwrap();
    assert!(
        message.contains("did not receive metrics"),
        "{reason}: {message}"
    );
    assert_eq!(
        replicas(&bed, ns, "pods").await,
        [Some(1), Some(1), Some(1)],
        "no scaling on unready pods alone"
    );

    // Ready, each at 50 against 10: 5 x 3 ready pods = 15, 5 per member. The 12 new pods stay
    // Pending: on a scale-up they count as using 0, which brings the ratio back to 1: it holds.
    for m in MEMBERS {
        make_ready(&bed, m, ns, "pods").await;
    }
    wait_replicas(&bed, ns, "pods", 5).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        replicas(&bed, ns, "pods").await,
        [Some(5), Some(5), Some(5)],
        "unready new pods count as 0 on a scale-up: no runaway"
    );
    let status = policy_status(&bed, ns, "pods").await.status.unwrap();
    assert_eq!(status.desired_replicas, Some(15));
}
