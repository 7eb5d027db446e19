//! Native objects propagated by a PropagationPolicy, on real clusters: a Helm chart installed
//! into the host unchanged reaches the members with its dependencies, `helm upgrade` follows,
//! a second policy that loses says why, and uninstalling cleans the members up.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use flotilla_e2e::{Operator, OperatorOptions, TestBed, api_resource, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const KINDS: &str =
    "Deployment.apps,Service,ConfigMap,Ingress.networking.k8s.io,ServiceAccount,Namespace,Secret";

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
    bed.helm(&["install", "shop", "e2e/charts/shop", "--namespace", &ns]);

    let objects = [
        (api_resource("apps/v1", "Deployment", "deployments"), "shop"),
        (
            api_resource("networking.k8s.io/v1", "Ingress", "ingresses"),
            "shop",
        ),
        (api_resource("v1", "ConfigMap", "configmaps"), "shop-config"),
        (api_resource("v1", "Secret", "secrets"), "shop-credentials"),
        (
            api_resource("v1", "ServiceAccount", "serviceaccounts"),
            "shop",
        ),
        (api_resource("v1", "Service", "services"), "shop"),
    ];
    for member in ["member1", "member2"] {
        for (r, name) in &objects {
            eventually(&format!("{} {name} in {member}", r.kind), WAIT, || async {
                Ok(bed.object(member, r, Some(&ns), name).await)
            })
            .await
            .unwrap();
        }
    }
    for (r, name) in &objects {
        assert!(
            bed.object("member3", r, Some(&ns), name).await.is_none(),
            "{} {name} not in member3",
            r.kind
        );
    }
    let d = bed
        .object("member1", &objects[0].0, Some(&ns), "shop")
        .await
        .unwrap();
    assert_eq!(image(&d).as_deref(), Some("registry.local/shop:1.0"));
    assert_eq!(
        d.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
            .and_then(Value::as_str),
        Some("flotilla")
    );

    // Status records users can get: one per object, Ready, dependencies marked.
    let record = api_resource(
        "federation.flotilla.dev/v1alpha1",
        "FederatedObject",
        "federatedobjects",
    );
    let deployment_record = eventually("the Deployment's record is Ready", WAIT, || async {
        Ok(bed
            .object("host", &record, Some(&ns), "shop-deployment")
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
    let config_record = bed
        .object("host", &record, Some(&ns), "shop-config-configmap")
        .await
        .unwrap();
    assert_eq!(
        config_record
            .pointer("/metadata/labels/federation.flotilla.dev~1dependency")
            .and_then(Value::as_str),
        Some("true")
    );
    let policy = api_resource(
        "federation.flotilla.dev/v1alpha1",
        "PropagationPolicy",
        "propagationpolicies",
    );
    eventually("the policy counts 6 objects", WAIT, || async {
        Ok(bed
            .object("host", &policy, Some(&ns), "shop")
            .await
            .filter(|p| p.pointer("/status/matched") == Some(&json!(6))))
    })
    .await
    .unwrap();
    let fallback = eventually("the losing policy says why", WAIT, || async {
        Ok(bed
            .object("host", &policy, Some(&ns), "fallback")
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
    bed.helm(&[
        "upgrade",
        "shop",
        "e2e/charts/shop",
        "--namespace",
        &ns,
        "--set",
        "image.tag=2.0",
    ]);
    for member in ["member1", "member2"] {
        eventually(&format!("the new image in {member}"), WAIT, || async {
            Ok(bed
                .object(member, &objects[0].0, Some(&ns), "shop")
                .await
                .filter(|d| image(d).as_deref() == Some("registry.local/shop:2.0")))
        })
        .await
        .unwrap();
    }

    // Uninstalled: the records go with their objects, and the copies with the records.
    bed.helm(&["uninstall", "shop", "--namespace", &ns, "--wait"]);
    for member in ["member1", "member2"] {
        eventually(&format!("the app left {member}"), WAIT, || async {
            for (r, name) in &objects {
                if bed.object(member, r, Some(&ns), name).await.is_some() {
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
