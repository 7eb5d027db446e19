//! Resource metrics end to end (issue 13): every cluster of a bed with nodes runs a
//! metrics-server (e2e/testbed/metrics-server.sh) that scrapes its node's kubelet and serves
//! `metrics.k8s.io`; a ScalingPolicy with a Resource metric (CPU utilization) reads the members'
//! metrics-servers for the pods of a federated Deployment whose pods really burn CPU, scales it
//! up to its maximum, and back down to its minimum once the pods are idle. These tests fail,
//! never skip, on a bed without nodes (`NODES=0`: no pod runs, no metrics-server).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_api::ScalingPolicy;
use flotilla_e2e::{Operator, TestBed, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

/// Pods start in seconds, metrics-server has a pod's first CPU rate about 10 to 20 s later (two
/// scrapes, 10 s apart), and the operator reads the members' metrics APIs every 15 s; generous
/// for a busy machine.
const WAIT: Duration = Duration::from_secs(180);
/// The workload image the bed imports into every node (e2e/testbed/images/build.sh).
const BUSYBOX: &str = "flotilla.test/busybox:1";
const GROUP: &str = "federation.flotilla.dev/v1alpha1";
/// A pod that burns CPU up to its limit: 50m against a request of 10m, about 500 % utilization
/// (less on a machine too busy to give it the whole limit; any use above 5m is above 50 %).
const BURN: &str = "while :; do :; done";
const IDLE: &str = "exec sleep 3600";

/// The pod spec of a busybox container running `script`, with a small CPU request and limit.
fn pod_spec(script: &str) -> Value {
    json!({"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "work", "image": BUSYBOX, "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "50m"}}}]})
}

/// A CPU quantity (`50020858n`, `51m`, `1`) in cores.
fn cores(q: &str) -> Option<f64> {
    let (num, scale) = match q.char_indices().last()? {
        (i, 'n') => (&q[..i], 1e-9),
        (i, 'u') => (&q[..i], 1e-6),
        (i, 'm') => (&q[..i], 1e-3),
        _ => (q, 1.0),
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

/// `GET path` on `cluster`'s API server (through its aggregator), as JSON.
fn raw(bed: &TestBed, cluster: &str, path: &str) -> anyhow::Result<Value> {
    let out = bed.kubectl(cluster, &["get", "--raw", path]);
    anyhow::ensure!(
        out.status.success(),
        "GET {path} in {cluster}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Fails at once, with the reason, where the bed runs no metrics-server (rather than after a
/// long wait for metrics that never come).
fn require_metrics_server(bed: &TestBed, contexts: &[String]) {
    for c in contexts {
        if let Err(e) = raw(bed, c, "/apis/metrics.k8s.io/v1beta1") {
            panic!(
                "{c} serves no metrics.k8s.io (a bed brought up with NODES=0, or before metrics-server?): {e:#}"
            );
        }
    }
}

#[tokio::test]
async fn every_cluster_serves_the_cpu_and_memory_of_its_running_pods() {
    let bed = TestBed::get();
    let contexts: Vec<String> = std::iter::once("host".to_string())
        .chain(bed.members())
        .collect();
    require_metrics_server(&bed, &contexts);
    let guard = bed.namespace_everywhere("metrics");
    let ns: &str = &guard;
    for c in &contexts {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "burn", "namespace": ns}, "spec": pod_spec(BURN)});
        bed.apply(c, &pod.to_string());
    }
    for c in &contexts {
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
        let usage = eventually(
            &format!("metrics.k8s.io in {c} has the usage of {ns}/burn"),
            WAIT,
            || async {
                let list = raw(&bed, c, &path)?;
                Ok(list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["metadata"]["name"] == "burn")
                    .map(|p| p["containers"][0]["usage"].clone()))
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\n{}",
                bed.kubectl_ok(c, &["-n", ns, "get", "pods,events", "-o", "wide"])
            )
        });
        // Real figures of a running process: CPU it burns (capped by its 50m limit), memory
        // its shell holds.
        let cpu = usage["cpu"].as_str().and_then(cores).unwrap();
        assert!(cpu > 0.005 && cpu < 0.07, "{c}: cpu {usage}");
        let memory = usage["memory"].as_str().unwrap();
        assert!(
            !memory.is_empty() && !memory.starts_with('0'),
            "{c}: memory {usage}"
        );
        // The node's own usage, and `kubectl top` (which reads the same API)
        let node = raw(
            &bed,
            c,
            &format!("/apis/metrics.k8s.io/v1beta1/nodes/{c}-node"),
        )
        .unwrap();
        assert!(
            node["usage"]["cpu"].as_str().and_then(cores).unwrap() > 0.0,
            "{node}"
        );
        let top = bed.kubectl_ok(c, &["-n", ns, "top", "pod", "burn"]);
        assert!(top.contains("burn"), "{top}");
    }
}

/// A FederatedObject Deployment `burn` on every member, one replica each to begin with,
/// running `script`.
fn workload(ns: &str, members: &[String], script: &str) -> String {
    json!({"apiVersion": GROUP, "kind": "FederatedObject",
        "metadata": {"name": "burn", "namespace": ns},
        "spec": {
            "template": {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"labels": {"app": "burn"}},
                "spec": {"replicas": members.len(),
                    "selector": {"matchLabels": {"app": "burn"}},
                    "template": {"metadata": {"labels": {"app": "burn"}},
                        "spec": pod_spec(script)}}},
            "replicas": {"mode": "Divided"},
            "placement": {"clusters": members,
                "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}}}})
    .to_string()
}

async fn replicas(bed: &TestBed, ns: &str, members: &[String]) -> Vec<Option<i32>> {
    let mut out = Vec::new();
    for m in members {
        let api: Api<Deployment> = Api::namespaced(bed.client(m).await, ns);
        out.push(
            api.get_opt("burn")
                .await
                .ok()
                .flatten()
                .and_then(|d| d.spec)
                .and_then(|s| s.replicas),
        );
    }
    out
}

/// The policy's status once every member runs `per_member` replicas and the policy wants
/// them all: its last CPU utilization and its `ScalingLimited` reason.
async fn settle(bed: &TestBed, ns: &str, members: &[String], per_member: i32) -> (i32, String) {
    let policies: Api<ScalingPolicy> = Api::namespaced(bed.client("host").await, ns);
    let total = per_member * members.len() as i32;
    eventually(
        &format!("{per_member} replicas of {ns}/burn in every member"),
        WAIT,
        || async {
            let now = replicas(bed, ns, members).await;
            let status = policies.get("burn").await?.status.unwrap_or_default();
            if now.iter().any(|r| *r != Some(per_member)) || status.desired_replicas != Some(total)
            {
                return Ok(None);
            }
            let utilization = status
                .current_metrics
                .iter()
                .find(|m| m.name == "cpu")
                .and_then(|m| m.average_utilization);
            let limited = status
                .conditions
                .iter()
                .find(|c| c.type_ == "ScalingLimited")
                .map(|c| c.reason.clone());
            Ok(utilization.zip(limited))
        },
    )
    .await
    .unwrap_or_else(|e| {
        let detail: Vec<String> = std::iter::once("host")
            .chain(members.iter().map(String::as_str))
            .map(|c| {
                let what = if c == "host" {
                    "scalingpolicies"
                } else {
                    "pods"
                };
                bed.kubectl_ok(c, &["-n", ns, "get", what, "-o", "wide"])
            })
            .collect();
        panic!("{e:#}\n{}", detail.join("\n"))
    })
}

#[tokio::test]
async fn a_scaling_policy_scales_a_federated_deployment_on_its_pods_cpu() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "resource-metrics");
    let members = bed.members();
    assert!(!members.is_empty(), "the test bed has no members");
    require_metrics_server(&bed, &members);
    let n = members.len() as i32;
    let guard = bed.namespace_everywhere("sp-cpu");
    let ns: &str = &guard;

    bed.apply("host", &workload(ns, &members, BURN));
    // CPU utilization of the pods of every member, pooled, against 50 % of their request:
    // between one and two replicas per member, reacting at once in both directions.
    let policy = json!({"apiVersion": GROUP, "kind": "ScalingPolicy",
        "metadata": {"name": "burn", "namespace": ns},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
            "minReplicas": n, "maxReplicas": 2 * n,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 60, "periodSeconds": 1}]},
                "scaleDown": {"stabilizationWindowSeconds": 0,
                              "policies": [{"type": "Pods", "value": 60, "periodSeconds": 1}]}}}});
    bed.apply("host", &policy.to_string());

    // Burning pods are far above 50 %: the total goes to the maximum, and no further.
    let (utilization, limited) = settle(&bed, ns, &members, 2).await;
    assert!(utilization > 50, "cpu utilization {utilization} %");
    assert_eq!(limited, "TooManyReplicas");

    // Idle pods (a new template; the policy keeps owning the replicas): back to the minimum.
    bed.apply("host", &workload(ns, &members, IDLE));
    let (utilization, limited) = settle(&bed, ns, &members, 1).await;
    assert!(utilization < 50, "cpu utilization {utilization} %");
    assert_eq!(limited, "TooFewReplicas");
}
