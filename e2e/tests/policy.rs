//! Native objects propagated by a PropagationPolicy, on real clusters: a Helm chart installed
//! into the host unchanged reaches the members with its dependencies, `helm upgrade` follows,
//! a second policy that loses says why, and uninstalling cleans the members up.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use flotilla_e2e::{Operator, OperatorOptions, TestBed, eventually, helm_bin, repo_root};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const KINDS: &str =
    "Deployment.apps,Service,ConfigMap,Ingress.networking.k8s.io,ServiceAccount,Namespace,Secret";

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

async fn get(bed: &TestBed, cluster: &str, r: &ApiResource, ns: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client(cluster).await, ns, r);
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .map(|o| serde_json::to_value(o).unwrap())
}

fn helm(bed: &TestBed, args: &[&str]) {
    let kubeconfig = bed.kubeconfig().to_string_lossy().into_owned();
    let out = Command::new(helm_bin())
        .current_dir(repo_root())
        .args(args)
        .args(["--kubeconfig", &kubeconfig, "--kube-context", "host"])
        .output()
        .expect("helm runs (make tools installs it)");
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn image(d: &Value) -> Option<String> {
    d.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test]
async fn a_helm_chart_on_the_host_is_propagated_by_one_policy_with_its_dependencies() {
    let bed = TestBed::get();
    bed.federation();
    for (member, region) in [
        ("member1", "eu-west"),
        ("member2", "eu-central"),
        ("member3", "us-east"),
    ] {
        bed.join_with(member, region, &["--kinds", KINDS]);
    }
    let _op = Operator::start_with(
        &bed,
        "policy",
        OperatorOptions {
            extra_env: vec![("FLOTILLA_FEDERATED_KINDS".into(), KINDS.into())],
            ..OperatorOptions::default()
        },
    );
    let ns = bed.create_namespace("shop");

    // The platform team's policy first, then the application, as it is, with Helm.
    bed.apply(
        "host",
        &json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {
            "resourceSelectors": [
                {"apiVersion": "apps/v1", "kind": "Deployment"},
                {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}],
            "propagateDependencies": true,
            "placement": {"clusters": ["member1", "member2"]},
        }})
        .to_string(),
    );
    // A broader policy with a lower priority: it loses the Deployment, and says so.
    bed.apply(
        "host",
        &json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": "fallback", "namespace": ns},
        "spec": {
            "priority": -1,
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "placement": {"clusters": ["member2"]},
        }})
        .to_string(),
    );
    helm(
        &bed,
        &["install", "shop", "e2e/charts/shop", "--namespace", &ns],
    );

    let objects = [
        (resource("apps/v1", "Deployment", "deployments"), "shop"),
        (
            resource("networking.k8s.io/v1", "Ingress", "ingresses"),
            "shop",
        ),
        (resource("v1", "ConfigMap", "configmaps"), "shop-config"),
        (resource("v1", "Secret", "secrets"), "shop-credentials"),
        (resource("v1", "ServiceAccount", "serviceaccounts"), "shop"),
        (resource("v1", "Service", "services"), "shop"),
    ];
    for member in ["member1", "member2"] {
        for (r, name) in &objects {
            eventually(&format!("{} {name} in {member}", r.kind), WAIT, || async {
                Ok(get(&bed, member, r, &ns, name).await)
            })
            .await
            .unwrap();
        }
    }
    for (r, name) in &objects {
        assert!(
            get(&bed, "member3", r, &ns, name).await.is_none(),
            "{} {name} not in member3",
            r.kind
        );
    }
    let d = get(&bed, "member1", &objects[0].0, &ns, "shop")
        .await
        .unwrap();
    assert_eq!(image(&d).as_deref(), Some("registry.local/shop:1.0"));
    assert_eq!(
        d.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
            .and_then(Value::as_str),
        Some("flotilla")
    );

    // Status records users can get: one per object, Ready, dependencies marked.
    let record = resource(
        "federation.flotilla.dev/v1alpha1",
        "FederatedObject",
        "federatedobjects",
    );
    let deployment_record = eventually("the Deployment's record is Ready", WAIT, || async {
        Ok(get(&bed, "host", &record, &ns, "shop-deployment")
            .await
            .filter(|o| {
                o.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            }))
    })
    .await
    .unwrap();
    assert_eq!(
        deployment_record
            .pointer("/metadata/ownerReferences/0/kind")
            .and_then(Value::as_str),
        Some("Deployment")
    );
    assert_eq!(
        deployment_record
            .pointer("/metadata/annotations/federation.flotilla.dev~1dependencies")
            .and_then(Value::as_str),
        Some("ConfigMap shop-config, Secret shop-credentials, ServiceAccount shop"),
        "the Deployment's record lists what went with it"
    );
    let config_record = get(&bed, "host", &record, &ns, "shop-config-configmap")
        .await
        .unwrap();
    assert_eq!(
        config_record
            .pointer("/metadata/labels/federation.flotilla.dev~1dependency")
            .and_then(Value::as_str),
        Some("true")
    );
    let policy = resource(
        "federation.flotilla.dev/v1alpha1",
        "PropagationPolicy",
        "propagationpolicies",
    );
    eventually("the policy counts 6 objects", WAIT, || async {
        Ok(get(&bed, "host", &policy, &ns, "shop")
            .await
            .filter(|p| p.pointer("/status/matched") == Some(&json!(6))))
    })
    .await
    .unwrap();
    let fallback = eventually("the losing policy says why", WAIT, || async {
        Ok(get(&bed, "host", &policy, &ns, "fallback")
            .await
            .filter(|p| p.pointer("/status/overridden/0").is_some()))
    })
    .await
    .unwrap();
    assert_eq!(
        fallback
            .pointer("/status/overridden/0/claimedBy")
            .and_then(Value::as_str),
        Some(format!("PropagationPolicy {ns}/shop").as_str())
    );
    assert_eq!(
        fallback
            .pointer("/status/overridden/0/reason")
            .and_then(Value::as_str),
        Some("higher priority (0 over -1)")
    );

    // `flotilla preview` lists what the policy propagates, and where.
    let kubeconfig = bed.kubeconfig().to_string_lossy().into_owned();
    let out = Command::new(flotilla_e2e::flotilla_bin())
        .args([
            "preview",
            "--kind",
            "pp",
            "--name",
            "shop",
            "--namespace",
            &ns,
            "--kubeconfig",
            &kubeconfig,
            "--context",
            "host",
        ])
        .env("FLOTILLA_FEDERATED_KINDS", KINDS)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("selected [member1, member2]"), "{text}");
    assert!(text.contains("would propagate 6 host object(s)"), "{text}");
    assert!(
        text.contains(&format!("v1 Secret {ns}/shop-credentials (dependency)")),
        "{text}"
    );

    // helm upgrade with a new tag reaches every member.
    helm(
        &bed,
        &[
            "upgrade",
            "shop",
            "e2e/charts/shop",
            "--namespace",
            &ns,
            "--set",
            "image.tag=2.0",
        ],
    );
    for member in ["member1", "member2"] {
        eventually(&format!("the new image in {member}"), WAIT, || async {
            Ok(get(&bed, member, &objects[0].0, &ns, "shop")
                .await
                .filter(|d| image(d).as_deref() == Some("registry.local/shop:2.0")))
        })
        .await
        .unwrap();
    }

    // Uninstalled: the records go with their objects, and the copies with the records.
    helm(&bed, &["uninstall", "shop", "--namespace", &ns, "--wait"]);
    for member in ["member1", "member2"] {
        eventually(&format!("the app left {member}"), WAIT, || async {
            for (r, name) in &objects {
                if get(&bed, member, r, &ns, name).await.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
        .unwrap();
    }
    bed.kubectl_ok(
        "host",
        &["-n", &ns, "delete", "propagationpolicies", "--all"],
    );
}
