//! Any kind on real clusters: a whole application federated with FederatedObjects and
//! ClusterFederatedObjects (order, replica division, health, drift without false positives,
//! failover and failback, deletion and orphaning), and bad input that becomes conditions.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_e2e::{Operator, OperatorOptions, Outage, TestBed, api_resource, eventually};
use kube::api::ApiResource;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const GROUP: &str = "federation.flotilla.dev/v1alpha1";
/// What the members grant (`flotilla join --kinds`): the defaults, plus what this application
/// also needs. PriorityClass is missing on purpose: the operator allows it, the members do not.
const MEMBER_KINDS: &str = "Deployment.apps,Service,ConfigMap,Ingress.networking.k8s.io,ServiceAccount,Namespace,Secret,ClusterRole.rbac.authorization.k8s.io,CustomResourceDefinition.apiextensions.k8s.io,Widget.demo.flotilla.dev";
const OPERATOR_KINDS: &str = "Deployment.apps,Service,ConfigMap,Ingress.networking.k8s.io,ServiceAccount,Namespace,Secret,ClusterRole.rbac.authorization.k8s.io,CustomResourceDefinition.apiextensions.k8s.io,Widget.demo.flotilla.dev,PriorityClass.scheduling.k8s.io,Gizmo.nowhere.example";

fn federation(bed: &TestBed) {
    bed.federation();
    for (member, region) in [
        ("member1", "eu-west"),
        ("member2", "eu-central"),
        ("member3", "us-east"),
    ] {
        bed.join_with(member, region, &["--kinds", MEMBER_KINDS]);
    }
    bed.kubectl_ok(
        "host",
        &["apply", "-f", "manifests/examples/10-member-clusters.yaml"],
    );
}

fn operator(bed: &TestBed, name: &str) -> Operator {
    Operator::start_with(
        bed,
        name,
        OperatorOptions {
            extra_env: vec![("FLOTILLA_FEDERATED_KINDS".into(), OPERATOR_KINDS.into())],
            ..OperatorOptions::default()
        },
    )
}

fn placement() -> Value {
    json!({
        "clusters": ["member1", "member2", "member3"],
        "constraints": {"maxClusters": 2, "tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]},
        "failoverPriority": [{"name": "primary", "clusters": ["member1", "member2"]}, {"name": "backup", "clusters": ["member3"]}],
        "failback": {"mode": "Automatic", "stabilizationSeconds": 3},
    })
}

fn fobj(ns: &str, name: &str, template: Value, extra: Value) -> Value {
    let mut spec = json!({"template": template, "placement": placement()});
    if let (Some(s), Value::Object(more)) = (spec.as_object_mut(), extra) {
        s.extend(more);
    }
    json!({"apiVersion": GROUP, "kind": "FederatedObject",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn cfobj(name: &str, template: Value) -> Value {
    json!({"apiVersion": GROUP, "kind": "ClusterFederatedObject",
        "metadata": {"name": name}, "spec": {"template": template, "placement": placement()}})
}

async fn host_object(bed: &TestBed, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    let plural = if kind == "FederatedObject" {
        "federatedobjects"
    } else {
        "clusterfederatedobjects"
    };
    bed.object("host", &api_resource(GROUP, kind, plural), ns, name)
        .await
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn entry<'a>(obj: &'a Value, cluster: &str) -> Option<&'a Value> {
    obj.pointer("/status/clusters")?
        .as_array()?
        .iter()
        .find(|c| c["cluster"] == cluster)
}

async fn wait_host(
    bed: &TestBed,
    kind: &str,
    ns: Option<&str>,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    match eventually(what, WAIT, || async {
        Ok(host_object(bed, kind, ns, name).await.filter(|o| check(o)))
    })
    .await
    {
        Ok(o) => o,
        // What it was instead, to tell a slow machine from a status that stopped moving.
        Err(e) => panic!(
            "{e}; {kind} {name} is now: {:#}",
            host_object(bed, kind, ns, name)
                .await
                .and_then(|o| o.get("status").cloned())
                .unwrap_or_default()
        ),
    }
}

/// `kubectl delete ARGS` in `context`, waiting (up to a minute) until the objects are gone.
fn delete_and_wait(bed: &TestBed, context: &str, args: &[&str]) {
    let mut all = vec!["delete"];
    all.extend_from_slice(args);
    all.extend(["--wait=true", "--timeout=60s"]);
    bed.kubectl_ok(context, &all);
}

fn ready(o: &Value) -> bool {
    condition(o, "Ready").is_some_and(|c| c["status"] == "True")
}

fn deployment() -> ApiResource {
    api_resource("apps/v1", "Deployment", "deployments")
}

async fn replicas_in(bed: &TestBed, member: &str, ns: &str) -> Option<i64> {
    bed.object(member, &deployment(), Some(ns), "web")
        .await
        .and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_i64))
}

async fn wait_replicas(bed: &TestBed, ns: &str, expected: &[(&str, Option<i64>)]) {
    eventually(&format!("replicas {expected:?}"), WAIT, || async {
        for (member, want) in expected {
            if replicas_in(bed, member, ns).await != *want {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
    .unwrap();
}

/// The application of the issue, federated object by object.
#[tokio::test]
async fn a_whole_application_is_federated_fails_over_and_is_cleaned_up() {
    let bed = TestBed::get();
    federation(&bed);
    let _op = operator(&bed, "anykind-app");
    let ns = bed.create_namespace("app");
    let crd_name = "widgets.demo.flotilla.dev";

    // The custom resource first: it waits for its CRD, which comes last.
    bed.apply(
        "host",
        &fobj(
            &ns,
            "w1",
            json!({"apiVersion": "demo.flotilla.dev/v1", "kind": "Widget",
        "spec": {"gears": 3}}),
            json!({}),
        )
        .to_string(),
    );
    let waiting = wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "w1",
        "Widget waits for its kind",
        |o| entry(o, "member1").is_some_and(|e| e["state"] == "WaitingForKind"),
    )
    .await;
    assert_eq!(
        condition(&waiting, "Ready").unwrap()["reason"],
        "WaitingForKind"
    );

    let shared_ns = format!("{ns}-shared");
    let role = format!("{ns}-reader");
    for doc in [
        cfobj(
            &shared_ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"labels": {"team": "shop"}}}),
        ),
        cfobj(
            &role,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        ),
        fobj(
            &ns,
            "settings",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "federated"}}),
            json!({}),
        ),
        fobj(
            &ns,
            "creds",
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "stringData": {"token": "s3cret"}}),
            json!({}),
        ),
        fobj(
            &ns,
            "web-sa",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}),
            json!({}),
        ),
        fobj(
            &ns,
            "web",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"labels": {"app": "web"}},
            "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "registry.local/web:1.0",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}),
            json!({"replicas": {"mode": "Divided", "distribution": {"clusters": [
                {"name": "member1", "weight": 2}, {"name": "member2", "maxReplicas": 2}]}},
                "overrides": [{"clusterName": "member2", "patches": [
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.local/web:1.0-eu"}]}]}),
        ),
        fobj(
            &ns,
            "web-svc",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"clusterIP": "10.0.0.99", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({}),
        ),
        fobj(
            &ns,
            "web-ing",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
            json!({}),
        ),
        cfobj(
            crd_name,
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"group": "demo.flotilla.dev", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        ),
    ] {
        bed.apply("host", &doc.to_string());
    }

    // Every copy in both placed members, none in the backup.
    let expect: Vec<(ApiResource, Option<&str>, &str)> = vec![
        (
            api_resource("v1", "Namespace", "namespaces"),
            None,
            &shared_ns,
        ),
        (
            api_resource(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "clusterroles",
            ),
            None,
            &role,
        ),
        (
            api_resource("v1", "ConfigMap", "configmaps"),
            Some(&ns),
            "settings",
        ),
        (api_resource("v1", "Secret", "secrets"), Some(&ns), "creds"),
        (
            api_resource("v1", "ServiceAccount", "serviceaccounts"),
            Some(&ns),
            "web",
        ),
        (deployment(), Some(&ns), "web"),
        (api_resource("v1", "Service", "services"), Some(&ns), "web"),
        (
            api_resource("networking.k8s.io/v1", "Ingress", "ingresses"),
            Some(&ns),
            "web",
        ),
        (
            api_resource(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
            ),
            None,
            crd_name,
        ),
        (
            api_resource("demo.flotilla.dev/v1", "Widget", "widgets"),
            Some(&ns),
            "w1",
        ),
    ];
    for member in ["member1", "member2"] {
        for (r, namespace, name) in &expect {
            eventually(&format!("{} {name} in {member}", r.kind), WAIT, || async {
                Ok(bed.object(member, r, *namespace, name).await)
            })
            .await
            .unwrap();
        }
    }
    for (r, namespace, name) in &expect {
        if r.kind != "Namespace" || *name != shared_ns {
            assert!(
                bed.object("member3", r, *namespace, name).await.is_none(),
                "{} {name} not in member3",
                r.kind
            );
        }
    }
    // The custom resource was applied once its CRD was served.
    let widget = wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "w1",
        "Widget Ready",
        ready,
    )
    .await;
    assert_eq!(entry(&widget, "member1").unwrap()["state"], "Applied");

    // Contents: data as given, server-set fields left out, overrides per cluster, replicas divided.
    let secret = bed
        .object("member1", &expect[3].0, Some(&ns), "creds")
        .await
        .unwrap();
    assert_eq!(
        secret.pointer("/data/token").and_then(Value::as_str),
        Some("czNjcmV0")
    );
    let svc = bed
        .object("member2", &expect[6].0, Some(&ns), "web")
        .await
        .unwrap();
    assert_ne!(
        svc.pointer("/spec/clusterIP").and_then(Value::as_str),
        Some("10.0.0.99")
    );
    let image = |d: &Value| {
        d.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let d1 = bed
        .object("member1", &deployment(), Some(&ns), "web")
        .await
        .unwrap();
    let d2 = bed
        .object("member2", &deployment(), Some(&ns), "web")
        .await
        .unwrap();
    assert_eq!(image(&d1).as_deref(), Some("registry.local/web:1.0"));
    assert_eq!(image(&d2).as_deref(), Some("registry.local/web:1.0-eu"));
    wait_replicas(&bed, &ns, &[("member1", Some(4)), ("member2", Some(2))]).await;

    // Health per kind: the CRD is established, the ConfigMap merely applied, the Deployment
    // progressing, with its replica counts (its pods never run: their image cannot be pulled,
    // the test bed's nodes reach no registry).
    let crd = wait_host(
        &bed,
        "ClusterFederatedObject",
        None,
        crd_name,
        "CRD Healthy",
        |o| condition(o, "Healthy").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    assert_eq!(
        entry(&crd, "member1").unwrap()["health"]["state"],
        "Healthy"
    );
    wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "settings",
        "ConfigMap applied",
        |o| {
            entry(o, "member1").is_some_and(|e| e["health"]["state"] == "Applied")
                && condition(o, "Healthy").is_some_and(|c| c["status"] == "True")
        },
    )
    .await;
    let web = wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "web",
        "Deployment progressing, its replicas counted",
        // (Before the member's Deployment controller has seen the copy, it is Progressing
        // "waiting for the controller to observe the latest spec".)
        |o| {
            ready(o)
                && entry(o, "member1").is_some_and(|e| {
                    e["health"]["state"] == "Progressing"
                        && e["health"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("/4 replicas available"))
                })
        },
    )
    .await;
    assert_eq!(condition(&web, "Healthy").unwrap()["reason"], "Progressing");

    // No false drift from the server's defaults on a Deployment (strategy, revisionHistoryLimit,
    // terminationMessagePath, …): quiet for 5 s after it settled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let web = host_object(&bed, "FederatedObject", Some(&ns), "web")
        .await
        .unwrap();
    assert!(
        condition(&web, "Drifted").is_none_or(|c| c["status"] == "False"),
        "{}",
        web["status"]
    );
    // A hand edit is drift, reported per field with its manager.
    bed.kubectl_ok(
        "member1",
        &[
            "-n",
            &ns,
            "set",
            "image",
            "deployment/web",
            "web=registry.local/web:hotfix",
        ],
    );
    let drifted = wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "web",
        "drift reported",
        |o| condition(o, "Drifted").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    let fields = entry(&drifted, "member1").unwrap()["drift"]["fields"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        fields
            .iter()
            .any(|f| f["path"] == "/spec/template/spec/containers/0/image"),
        "{fields:?}"
    );

    // Failover: member1 goes down, the whole app moves to member3; the shares follow the
    // weights (3:3) within member2's bound (at most 2): 2 and 4. When member1 is back, it all
    // fails back.
    {
        let mut outage = Outage::kill(&bed, "member1");
        wait_replicas(&bed, &ns, &[("member2", Some(2)), ("member3", Some(4))]).await;
        for (r, namespace, name) in &expect {
            eventually(
                &format!("{} {name} failed over to member3", r.kind),
                WAIT,
                || async { Ok(bed.object("member3", r, *namespace, name).await) },
            )
            .await
            .unwrap();
        }
        outage.restore();
    }
    wait_replicas(
        &bed,
        &ns,
        &[
            ("member1", Some(4)),
            ("member2", Some(2)),
            ("member3", None),
        ],
    )
    .await;
    eventually("the app left member3", WAIT, || async {
        for (r, namespace, name) in &expect {
            if bed.object("member3", r, *namespace, name).await.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
    .unwrap();

    // Orphan: the ConfigMap stays, released; Delete: everything else goes.
    bed.kubectl_ok(
        "host",
        &[
            "-n",
            &ns,
            "patch",
            "federatedobject",
            "settings",
            "--type=merge",
            "-p",
            r#"{"spec":{"deletion":"Orphan"}}"#,
        ],
    );
    wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "settings",
        "orphan policy seen",
        |o| o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation"),
    )
    .await;
    delete_and_wait(&bed, "host", &["-n", &ns, "federatedobjects", "--all"]);
    for name in [&shared_ns, &role, &crd_name.to_string()] {
        delete_and_wait(&bed, "host", &["clusterfederatedobject", name]);
    }
    for member in ["member1", "member2"] {
        for (r, namespace, name) in &expect {
            let left = bed.object(member, r, *namespace, name).await;
            if r.kind == "ConfigMap" {
                let labels = left
                    .as_ref()
                    .and_then(|c| c.pointer("/metadata/labels").cloned())
                    .unwrap_or(json!({}));
                assert!(left.is_some(), "the orphaned ConfigMap stays in {member}");
                assert!(
                    labels.get("app.kubernetes.io/managed-by").is_none(),
                    "released: {labels}"
                );
            } else if r.kind == "Namespace" {
                // Deleted namespaces terminate (no namespace controller finalizes instantly).
                assert!(
                    left.is_none_or(|n| n.pointer("/metadata/deletionTimestamp").is_some()),
                    "{name}"
                );
            } else if r.kind != "Widget" {
                // Widgets go with their CRD.
                assert!(left.is_none(), "{} {name} removed from {member}", r.kind);
            }
        }
    }
}

/// Bad input: each a condition with a reason, never a crash; other objects keep working.
#[tokio::test]
async fn bad_templates_become_conditions() {
    let bed = TestBed::get();
    federation(&bed);
    let _op = operator(&bed, "anykind-bad");
    let ns = bed.create_namespace("bad");

    // The schema refuses a template without a kind.
    let refused = bed.kubectl_with_stdin(
        "host",
        &["apply", "-f", "-"],
        Some(&fobj(&ns, "nokind", json!({"apiVersion": "v1"}), json!({})).to_string()),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("kind"));

    let cases = [
        (
            fobj(
                &ns,
                "role",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": []}),
                json!({}),
            ),
            "KindNotAllowed",
        ),
        (
            fobj(
                &ns,
                "elsewhere",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "kube-system"}}),
                json!({}),
            ),
            "InvalidTemplate",
        ),
        (
            fobj(
                &ns,
                "scoped",
                json!({"apiVersion": "v1", "kind": "Namespace"}),
                json!({}),
            ),
            "InvalidTemplate",
        ),
        (
            fobj(
                &ns,
                "gizmo",
                json!({"apiVersion": "nowhere.example/v1", "kind": "Gizmo"}),
                json!({}),
            ),
            "WaitingForKind",
        ),
        (
            fobj(
                &ns,
                "invalid",
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
                json!({}),
            ),
            "PropagationFailed",
        ),
        (
            fobj(
                &ns,
                "divided-cm",
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                json!({"replicas": {"mode": "Divided"}}),
            ),
            "InvalidSpec",
        ),
        (
            cfobj(
                &format!("{ns}-prio"),
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 1000}),
            ),
            "Forbidden",
        ),
    ];
    for (doc, _) in &cases {
        bed.apply("host", &doc.to_string());
    }
    bed.apply(
        "host",
        &fobj(
            &ns,
            "fine",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}),
            json!({}),
        )
        .to_string(),
    );
    for (doc, reason) in &cases {
        let kind = doc["kind"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let namespace = (kind == "FederatedObject").then_some(ns.as_str());
        let o = wait_host(
            &bed,
            kind,
            namespace,
            name,
            &format!("{name}: {reason}"),
            |o| {
                condition(o, "Ready")
                    .is_some_and(|c| c["status"] == "False" && c["reason"] == *reason)
            },
        )
        .await;
        let message = condition(&o, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        match *reason {
            "Forbidden" => assert!(message.contains("priorityclasses"), "{message}"),
            "KindNotAllowed" => assert!(message.contains("--federated-kinds"), "{message}"),
            "PropagationFailed" => assert!(message.contains("selector"), "{message}"),
            _ => {}
        }
    }
    wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "fine",
        "a good object next to them is Ready",
        ready,
    )
    .await;
    delete_and_wait(
        &bed,
        "host",
        &["clusterfederatedobject", &format!("{ns}-prio")],
    );
    delete_and_wait(&bed, "host", &["-n", &ns, "federatedobjects", "--all"]);
}

/// A member whose owner deletes a CRD stops serving its kind: the next apply there is
/// `WaitingForKind` (not a failure retried for ever against a path that is gone), and the copy
/// comes back once the member serves the kind again.
#[tokio::test]
async fn a_member_that_stops_serving_a_kind_waits_for_it() {
    let bed = TestBed::get();
    federation(&bed);
    let _op = operator(&bed, "anykind-kind-gone");
    let ns = bed.create_namespace("gone");
    let crd_name = "widgets.demo.flotilla.dev";
    // The member's own CRD, not Flotilla's.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {"group": "demo.flotilla.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
    .to_string();
    let establish = |bed: &TestBed| {
        bed.apply("member1", &crd);
        bed.kubectl_ok(
            "member1",
            &[
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd_name}"),
                "--timeout=60s",
            ],
        );
    };
    let remove_crd = |bed: &TestBed| {
        delete_and_wait(bed, "member1", &["crd", crd_name, "--ignore-not-found"]);
    };
    establish(&bed);
    let widget = |gears: i64| {
        json!({"apiVersion": GROUP, "kind": "FederatedObject",
            "metadata": {"name": "w", "namespace": ns},
            "spec": {"template": {"apiVersion": "demo.flotilla.dev/v1", "kind": "Widget", "spec": {"gears": gears}},
                "placement": {"clusters": ["member1"]}}})
        .to_string()
    };
    let widgets = api_resource("demo.flotilla.dev/v1", "Widget", "widgets");
    let gears_in_member1 = |gears: i64| {
        let (bed, widgets, ns) = (&bed, &widgets, &ns);
        async move {
            eventually(
                &format!("a widget with {gears} gears in member1"),
                WAIT,
                || async move {
                    Ok(bed
                        .object("member1", widgets, Some(ns), "w")
                        .await
                        .filter(|w| w.pointer("/spec/gears") == Some(&json!(gears)))
                        .map(|_| ()))
                },
            )
            .await
            .unwrap();
        }
    };
    bed.apply("host", &widget(3));
    gears_in_member1(3).await;

    remove_crd(&bed);
    bed.apply("host", &widget(4));
    let waiting = wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "w",
        "member1 waits for the kind",
        |o| {
            o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation")
                && entry(o, "member1").is_some_and(|e| e["state"] == "WaitingForKind")
        },
    )
    .await;
    let message = entry(&waiting, "member1").unwrap()["message"].to_string();
    assert!(message.contains("Widget"), "{message}");
    assert_eq!(
        condition(&waiting, "Ready").unwrap()["reason"],
        "WaitingForKind"
    );

    // Served again: the copy comes back (at the waiting objects' backoff, at most 30 s).
    establish(&bed);
    gears_in_member1(4).await;
    wait_host(
        &bed,
        "FederatedObject",
        Some(&ns),
        "w",
        "member1 applied again",
        |o| entry(o, "member1").is_some_and(|e| e["state"] == "Applied"),
    )
    .await;

    delete_and_wait(&bed, "host", &["-n", &ns, "federatedobject", "w"]);
    // Left as found for the other tests: their CRD is Flotilla's copy.
    remove_crd(&bed);
}
