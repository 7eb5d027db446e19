//! Real nodes (issue 13, part 2): every cluster of the test bed has one node (kubelet,
//! containerd, kube-proxy in a network namespace of its own, e2e/testbed/nodes.sh) that is
//! Ready, runs pods from the images the bed builds (no registry), passes their readiness probes,
//! and lets them reach the API server through the `kubernetes` Service, as the operator will
//! when it runs as a pod. Then a Deployment federated by Flotilla gets Ready pods in every
//! member it is placed in. These tests fail, never skip, on a bed without nodes (`NODES=0`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_e2e::{Operator, TestBed, api_resource, eventually};
use serde_json::{Value, json};

/// Pods start in a few seconds; a busy machine (four nodes, other builds) may take longer.
const WAIT: Duration = Duration::from_secs(120);
/// The workload image the bed imports into every node (e2e/testbed/images/build.sh).
const BUSYBOX: &str = "flotilla.test/busybox:1";
const GROUP: &str = "federation.flotilla.dev/v1alpha1";

fn contexts(bed: &TestBed) -> Vec<String> {
    let members = bed.members();
    assert!(!members.is_empty(), "the test bed has no members");
    std::iter::once("host".to_string()).chain(members).collect()
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// A Deployment of busybox's httpd whose pods are Ready only once it answers on :8080.
fn web_deployment(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "httpd", "image": BUSYBOX, "imagePullPolicy": "Never",
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                        "periodSeconds": 1, "failureThreshold": 3}}]}}}})
}

/// The pods of `selector` in `ns` of `cluster`, as JSON.
async fn pods(bed: &TestBed, cluster: &str, ns: &str, selector: &str) -> Vec<Value> {
    let client = bed.client(cluster).await;
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, ns);
    api.list(&kube::api::ListParams::default().labels(selector))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `cluster` has `want` pods of `app=web` in `ns`, every one Running and Ready on
/// the cluster's node, and the Deployment counts them ready.
async fn wait_web_ready(bed: &TestBed, cluster: &str, ns: &str, want: usize) {
    let deployment = api_resource("apps/v1", "Deployment", "deployments");
    eventually(
        &format!("{want} Ready pods of {ns}/web in {cluster}"),
        WAIT,
        || async {
            let pods = pods(bed, cluster, ns, "app=web").await;
            let ready = pods
                .iter()
                .filter(|p| {
                    p.pointer("/status/phase") == Some(&json!("Running"))
                        && condition_true(p, "Ready")
                        && p.pointer("/spec/nodeName")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n == format!("{cluster}-node"))
                })
                .count();
            let counted = bed
                .object(cluster, &deployment, Some(ns), "web")
                .await
                .and_then(|d| d.pointer("/status/readyReplicas").and_then(Value::as_i64));
            Ok((ready == want && counted == Some(want as i64)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            bed.kubectl_ok(cluster, &["-n", ns, "get", "pods,events", "-o", "wide"])
        )
    });
}

#[tokio::test]
async fn every_cluster_has_a_ready_node_that_runs_probed_pods_which_reach_the_api_server() {
    let bed = TestBed::get();
    let contexts = contexts(&bed);
    let nodes = api_resource("v1", "Node", "nodes");

    // One node per cluster, Ready, named after it.
    for c in &contexts {
        let node = bed.object(c, &nodes, None, &format!("{c}-node")).await;
        let Some(node) = node else {
            panic!(
                "{c} has no node {c}-node (a bed brought up with NODES=0?); nodes: {}",
                bed.kubectl_ok(c, &["get", "nodes", "-o", "wide"])
            );
        };
        assert!(
            condition_true(&node, "Ready"),
            "{c}-node is not Ready: {}",
            node["status"]["conditions"]
        );
    }

    let guard = bed.namespace_everywhere("nodes");
    let ns: &str = &guard;
    // A pod that calls the API server at the `kubernetes` Service's ClusterIP (what the
    // kubelet gives every pod as KUBERNETES_SERVICE_HOST/PORT), with its ServiceAccount token:
    // /api answers 200 to any authenticated caller.
    let api_check = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-check"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "check", "image": BUSYBOX, "imagePullPolicy": "Never",
            "command": ["sh", "-c", concat!(
                "echo \"service $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\"; ",
                "wget -q -O - --no-check-certificate ",
                "--header \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" ",
                "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api")]}]}});
    for c in &contexts {
        let mut web = web_deployment(2);
        web["metadata"]["namespace"] = json!(ns);
        bed.apply(c, &web.to_string());
        let mut check = api_check.clone();
        check["metadata"]["namespace"] = json!(ns);
        bed.apply(c, &check.to_string());
    }

    let pod = api_resource("v1", "Pod", "pods");
    for c in &contexts {
        wait_web_ready(&bed, c, ns, 2).await;
        eventually(&format!("api-check in {c} succeeds"), WAIT, || async {
            let phase = bed
                .object(c, &pod, Some(ns), "api-check")
                .await
                .and_then(|p| p.pointer("/status/phase").cloned());
            match phase.as_ref().and_then(Value::as_str) {
                Some("Failed") => anyhow::bail!(
                    "api-check failed in {c}:\n{}",
                    bed.kubectl_ok(c, &["-n", ns, "logs", "api-check"])
                ),
                Some("Succeeded") => Ok(Some(())),
                _ => Ok(None),
            }
        })
        .await
        .unwrap();
        let log = bed.kubectl_ok(c, &["-n", ns, "logs", "api-check"]);
        assert!(
            log.contains("service 10.96.0.1:443"),
            "api-check in {c} did not use the kubernetes Service's ClusterIP:\n{log}"
        );
        let body: Value = serde_json::from_str(log.lines().skip(1).collect::<String>().trim())
            .unwrap_or_else(|e| panic!("api-check in {c}: no JSON from /api ({e}):\n{log}"));
        assert_eq!(body["kind"], "APIVersions", "api-check in {c}:\n{log}");
    }

    // The readiness probe is real: a pod whose page is gone (httpd answers 404) turns unready
    // and the Deployment counts one pod fewer; back when the page is.
    let c = &contexts[0];
    let victim = pods(&bed, c, ns, "app=web").await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    bed.kubectl_ok(
        c,
        &["-n", ns, "exec", &victim, "--", "rm", "/www/index.html"],
    );
    eventually(&format!("{victim} unready in {c}"), WAIT, || async {
        let p = bed.object(c, &pod, Some(ns), &victim).await;
        let d = bed
            .object(
                c,
                &api_resource("apps/v1", "Deployment", "deployments"),
                Some(ns),
                "web",
            )
            .await;
        Ok((p.is_some_and(|p| !condition_true(&p, "Ready"))
            && d.and_then(|d| d.pointer("/status/readyReplicas").and_then(Value::as_i64))
                == Some(1))
        .then_some(()))
    })
    .await
    .unwrap();
    bed.kubectl_ok(
        c,
        &[
            "-n",
            ns,
            "exec",
            &victim,
            "--",
            "sh",
            "-c",
            "echo back >/www/index.html",
        ],
    );
    wait_web_ready(&bed, c, ns, 2).await;
}

#[tokio::test]
async fn a_federated_deployment_gets_ready_pods_in_every_member() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "nodes");
    let members = bed.members();
    let guard = bed.namespace_everywhere("fednodes");
    let ns: &str = &guard;

    let mut template = web_deployment(2);
    template["metadata"].as_object_mut().unwrap().remove("name");
    let fobj = json!({"apiVersion": GROUP, "kind": "FederatedObject",
        "metadata": {"name": "web", "namespace": *ns},
        "spec": {"template": template,
            "placement": {"clusters": members,
                "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}}}});
    bed.apply("host", &fobj.to_string());

    for m in &members {
        wait_web_ready(&bed, m, ns, 2).await;
    }
    // The operator sees the copies healthy: their pods are available.
    let resource = api_resource(GROUP, "FederatedObject", "federatedobjects");
    let status = eventually(
        "the FederatedObject Healthy in every member",
        WAIT,
        || async {
            Ok(bed
                .object("host", &resource, Some(ns), "web")
                .await
                .filter(|o| {
                    condition_true(o, "Healthy")
                        && members.iter().all(|m| {
                            o.pointer("/status/clusters")
                                .and_then(Value::as_array)
                                .is_some_and(|cs| {
                                    cs.iter().any(|e| {
                                        e["cluster"] == json!(m)
                                            && e["health"]["state"] == "Healthy"
                                    })
                                })
                        })
                }))
        },
    )
    .await
    .unwrap();
    assert!(condition_true(&status, "Ready"), "{}", status["status"]);
    // and no copy landed on the host's node
    assert!(pods(&bed, "host", ns, "app=web").await.is_empty());
}
