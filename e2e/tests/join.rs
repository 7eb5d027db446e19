//! `flotilla join` / `unjoin` on real clusters: least-privilege credentials in the member (checked
//! with `kubectl auth can-i`), a MemberCluster that becomes Ready with them, and an unjoin that
//! removes exactly what join created.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use flotilla_api::MemberCluster;
use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, TestBed, eventually, flotilla_bin};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Api;

const NAME: &str = "member3-second";
const SA: &str = "system:serviceaccount:flotilla-system:flotilla-member3-second";

fn flotilla(bed: &TestBed, args: &[&str]) {
    let out = Command::new(flotilla_bin())
        .args(args)
        .args([
            "--kubeconfig",
            &bed.kubeconfig().to_string_lossy(),
            "--context",
            "host",
            "--member-context",
            "member3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flotilla {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A SubjectAccessReview for the joined ServiceAccount. `kubectl auth can-i` cannot ask about a
/// resource the server does not serve (a metric name without an adapter installed).
async fn access_review(bed: &TestBed, verb: &str, group: &str, resource: &str) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": SA,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:flotilla-system"],
            "resourceAttributes": {"namespace": "default", "verb": verb, "group": group, "resource": resource}
        }
    }))
    .unwrap();
    Api::<SubjectAccessReview>::all(bed.client("member3").await)
        .create(&Default::default(), &review)
        .await
        .unwrap()
        .status
        .is_some_and(|s| s.allowed)
}

fn can_i(bed: &TestBed, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--as", SA]);
    String::from_utf8_lossy(&bed.kubectl("member3", &all).stdout).trim() == "yes"
}

#[tokio::test]
async fn join_grants_only_what_flotilla_manages_and_unjoin_removes_it() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "join");
    // A copy in member3 of an object not placed on the second name: it must survive the alias.
    let ns = bed.create_namespace("alias");
    bed.apply(
        "host",
        &serde_json::json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
            "metadata": {"name": "kept", "namespace": ns},
            "spec": {"template": {"spec": {"rules": [{"host": "kept.example.com"}]}},
                     "placement": {"clusters": ["member3"],
                                   // member3 of the examples carries a NoSchedule taint.
                                   "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}}},
        })
        .to_string(),
    );
    bed.wait_for_copy("member3", &ns, "kept").await;
    flotilla(
        &bed,
        &[
            "join",
            NAME,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--region",
            "us-east",
            "--label",
            "tier=second",
        ],
    );

    for (verb, resource) in [
        ("create", "ingresses.networking.k8s.io"),
        ("delete", "ingresses.networking.k8s.io"),
        ("list", "horizontalpodautoscalers.autoscaling"),
        ("list", "pods"),
    ] {
        assert!(
            can_i(&bed, &[verb, resource, "-n", "default"]),
            "member credentials cannot {verb} {resource}"
        );
    }
    assert!(
        can_i(
            &bed,
            &[
                "patch",
                "deployments.apps",
                "--subresource=scale",
                "-n",
                "default"
            ]
        ),
        "cannot scale deployments"
    );
    // The default federated kinds are writable (FederatedObjects and policies hold them) ...
    for (verb, resource) in [
        ("patch", "deployments.apps"),
        ("delete", "configmaps"),
        ("create", "services"),
        ("create", "persistentvolumeclaims"),
        ("delete", "poddisruptionbudgets.policy"),
    ] {
        assert!(
            can_i(&bed, &[verb, resource, "-n", "default"]),
            "member credentials cannot {verb} {resource} (a default federated kind)"
        );
    }
    // ... nothing else is: Secrets, RBAC and CRDs only when listed in --kinds.
    for (verb, resource) in [
        ("list", "secrets"),
        ("create", "pods"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "replicasets.apps"),
        ("patch", "nodes"),
    ] {
        assert!(
            !can_i(&bed, &[verb, resource, "-n", "default"]),
            "member credentials may {verb} {resource}: wider than needed"
        );
    }

    // `kubectl auth can-i --list`: the resources it may create are exactly the federated kinds,
    // Ingresses and namespaces.
    let list = bed.kubectl_ok("member3", &["auth", "can-i", "--list", "--as", SA]);
    let mut creatable: Vec<String> = list
        .lines()
        .filter(|l| l.contains("create"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|r| !r.starts_with("selfsubject") && !r.ends_with("reviews.authorization.k8s.io"))
        .collect();
    creatable.sort();
    let mut expected: Vec<String> = [
        "configmaps",
        "cronjobs.batch",
        "daemonsets.apps",
        "deployments.apps",
        "horizontalpodautoscalers.autoscaling",
        "ingresses.networking.k8s.io",
        "jobs.batch",
        "namespaces",
        "persistentvolumeclaims",
        "poddisruptionbudgets.policy",
        "serviceaccounts",
        "services",
        "statefulsets.apps",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    assert_eq!(creatable, expected, "{list}");

    // Joined again with a narrower --kinds: ConfigMaps only (and Ingresses, always).
    flotilla(
        &bed,
        &[
            "join",
            NAME,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--region",
            "us-east",
            "--label",
            "tier=second",
            "--kinds",
            "ConfigMap",
        ],
    );
    assert!(can_i(&bed, &["create", "configmaps", "-n", "default"]));
    assert!(can_i(
        &bed,
        &["create", "ingresses.networking.k8s.io", "-n", "default"]
    ));
    assert!(!can_i(
        &bed,
        &["create", "deployments.apps", "-n", "default"]
    ));
    assert!(can_i(
        &bed,
        &[
            "patch",
            "deployments.apps",
            "--subresource=scale",
            "-n",
            "default"
        ]
    ));

    // Metrics (no adapter or metrics server on the test bed): pods' resource usage, and metrics
    // addressed by name, readable whatever the name, never writable.
    for (verb, group, resource, allowed) in [
        ("list", "metrics.k8s.io", "pods", true),
        ("get", "external.metrics.k8s.io", "queue_depth", true),
        ("list", "custom.metrics.k8s.io", "pods", true),
        ("create", "external.metrics.k8s.io", "queue_depth", false),
        ("list", "metrics.k8s.io", "nodes", false),
    ] {
        assert_eq!(
            access_review(&bed, verb, group, resource).await,
            allowed,
            "{verb} {resource}.{group}"
        );
    }

    // The second name reaches member3's cluster: refused as a duplicate, never used.
    let api: Api<MemberCluster> = Api::all(bed.client("host").await);
    let mc = eventually(
        "second name refused as DuplicateCluster",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let mc = api.get(NAME).await?;
                let refused = mc
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| {
                        c.status == "False"
                            && c.reason == "DuplicateCluster"
                            && c.message.contains("member3")
                    });
                Ok(refused.then_some(mc))
            }
        },
    )
    .await
    .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until {
        let copy = bed.kubectl("member3", &["get", "ingress", "kept", "-n", &ns]);
        assert!(
            copy.status.success(),
            "member3's copy was pruned through the alias"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(mc.spec.region.as_deref(), Some("us-east"));
    // The operator reads only Secrets labelled as member credentials: join labels its Secret.
    let label = bed.kubectl_ok(
        "host",
        &[
            "get",
            "secret",
            &format!("{NAME}-kubeconfig"),
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.metadata.labels.federation\\.flotilla\\.dev/member-credentials}",
        ],
    );
    assert_eq!(label, "true");
    assert_eq!(
        mc.metadata.labels.unwrap().get("tier").map(String::as_str),
        Some("second")
    );

    flotilla(&bed, &["unjoin", NAME, "--namespace", OPERATOR_NAMESPACE]);
    eventually("MemberCluster removed", Duration::from_secs(30), || {
        let api = api.clone();
        async move { Ok(api.get_opt(NAME).await?.is_none().then_some(())) }
    })
    .await
    .unwrap();
    let secret = bed.kubectl(
        "host",
        &[
            "get",
            "secret",
            &format!("{NAME}-kubeconfig"),
            "-n",
            OPERATOR_NAMESPACE,
        ],
    );
    assert!(
        !secret.status.success(),
        "the credentials Secret is still on the host"
    );
    assert!(
        !bed.kubectl(
            "member3",
            &[
                "get",
                "serviceaccount",
                "flotilla-member3-second",
                "-n",
                "flotilla-system"
            ]
        )
        .status
        .success()
    );
    assert!(
        !bed.kubectl(
            "member3",
            &["get", "clusterrole", "flotilla:member:member3-second"]
        )
        .status
        .success()
    );
    // The original registration of the same member is untouched.
    assert!(
        bed.kubectl(
            "member3",
            &[
                "get",
                "serviceaccount",
                "flotilla-member3",
                "-n",
                "flotilla-system"
            ]
        )
        .status
        .success()
    );
    let original = api.get("member3").await.unwrap();
    let ready = original
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}
