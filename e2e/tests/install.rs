//! Install as users do: `helm install` the chart into the host, then run the operator with the
//! chart's ServiceAccount token as its only credentials (the host has no kubelet to run the pod),
//! and drive a FederatedIngress through it. `kubectl auth can-i` shows the RBAC is no wider than
//! needed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, OperatorOptions, TestBed, eventually};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::json;

const SA: &str = "system:serviceaccount:flotilla-system:flotilla";

/// A kubeconfig for the host that authenticates with the chart's ServiceAccount token only.
///
/// The token comes from a Secret of type `kubernetes.io/service-account-token` created here for
/// the ServiceAccount (as `flotilla join` does on members): up to 1.23 kube-controller-manager
/// also made one by itself, since 1.24 it only fills in the ones that are asked for.
async fn service_account_kubeconfig(bed: &TestBed) -> std::path::PathBuf {
    let host = bed.client("host").await;
    let secrets = Api::<Secret>::namespaced(host.clone(), OPERATOR_NAMESPACE);
    let token_secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "flotilla-e2e-token",
            "namespace": OPERATOR_NAMESPACE,
            "annotations": {"kubernetes.io/service-account.name": "flotilla"},
        },
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    // One left by an earlier run may belong to an earlier ServiceAccount of the same name.
    match secrets
        .delete("flotilla-e2e-token", &Default::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("delete the old ServiceAccount token Secret: {e}"),
    }
    eventually("old token Secret gone", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move {
            Ok(secrets
                .get_opt("flotilla-e2e-token")
                .await?
                .is_none()
                .then_some(()))
        }
    })
    .await
    .unwrap();
    secrets
        .create(&Default::default(), &token_secret)
        .await
        .expect("create the ServiceAccount token Secret");
    // kube-controller-manager's token controller fills the Secret in shortly after.
    let secret = eventually(
        "ServiceAccount token issued",
        Duration::from_secs(30),
        || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get("flotilla-e2e-token").await?;
                let has_token = secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key("token"));
                Ok(has_token.then_some(secret))
            }
        },
    )
    .await
    .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    // The admin kubeconfig of the host, with its user swapped for the token.
    let admin = std::fs::read_to_string(bed.state_dir().join("host.kubeconfig")).unwrap();
    let line = admin
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    let indent = &line[..line.len() - line.trim_start().len()];
    let text = admin.replace(line, &format!("{indent}token: {token}"));
    let path = bed.state_dir().join("host-flotilla-sa.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

fn can_i(bed: &TestBed, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--as", SA]);
    let out = bed.kubectl("host", &all);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[tokio::test]
async fn chart_installs_and_its_service_account_is_enough_and_no_more() {
    let bed = TestBed::get();
    bed.federation();
    // The CRDs were applied with kubectl by the other tests; helm takes them over.
    bed.helm_install_chart(&[]);
    // The chart keeps the CRDs' CEL rules only where the API server runs them (1.28 and later);
    // older servers get the CRDs without them, and the controller's checks.
    assert_eq!(
        bed.crd_has_cel_rules("federatedobjects.federation.flotilla.dev"),
        bed.admission_runs_cel("host"),
        "the chart's CRDs carry CEL rules on a server that does not run them, or lack them on one that does"
    );
    let rendered = bed.helm(&[
        "get",
        "manifest",
        "flotilla",
        "--namespace",
        OPERATOR_NAMESPACE,
    ]);
    for kind in [
        "kind: Deployment",
        "kind: ServiceAccount",
        "kind: ClusterRole",
        "kind: Role",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "kind: CustomResourceDefinition",
        "kind: NetworkPolicy",
    ] {
        assert!(rendered.contains(kind), "the release lacks {kind}");
    }
    // PUT /log-level listens on the pod's loopback only, and the NetworkPolicy admits ingress on
    // the metrics port alone.
    assert!(
        rendered.contains("--admin-addr=127.0.0.1:8081"),
        "the admin endpoint is not bound to loopback"
    );
    let policy: serde_json::Value = serde_json::from_str(&bed.kubectl_ok(
        "host",
        &[
            "get",
            "networkpolicy",
            "flotilla",
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": 8080, "protocol": "TCP"}]}]),
        "ingress beyond the metrics port"
    );

    // The whole matrix in the operator's namespace, with the chart's default values: exactly
    // the documented list (README, "Security").
    let list = bed.kubectl_ok(
        "host",
        &[
            "auth",
            "can-i",
            "--list",
            "--as",
            SA,
            "-n",
            OPERATOR_NAMESPACE,
        ],
    );
    let flotilla = [
        "clusterfederatedobjects",
        "clusterpropagationpolicies",
        "federatedingresses",
        "federatedobjects",
        "memberclusters",
        "propagationpolicies",
        "scalingpolicies",
    ];
    let mut rows: Vec<(String, &str, &str)> = Vec::new();
    for kind in flotilla {
        rows.push((
            format!("{kind}.federation.flotilla.dev"),
            "[]",
            "get list watch patch update",
        ));
        rows.push((
            format!("{kind}.federation.flotilla.dev/status"),
            "[]",
            "patch update",
        ));
        if !kind.ends_with("propagationpolicies") {
            rows.push((
                format!("{kind}.federation.flotilla.dev/finalizers"),
                "[]",
                "update",
            ));
        }
    }
    // The default federated kinds, read-only (propagation policies select them on the host).
    for resource in [
        "configmaps",
        "namespaces",
        "persistentvolumeclaims",
        "serviceaccounts",
        "services",
        "daemonsets.apps",
        "deployments.apps",
        "statefulsets.apps",
        "horizontalpodautoscalers.autoscaling",
        "cronjobs.batch",
        "jobs.batch",
        "ingresses.networking.k8s.io",
        "poddisruptionbudgets.policy",
    ] {
        rows.push((resource.to_string(), "[]", "get list watch"));
    }
    for (resource, names, verbs) in [
        ("events", "[]", "create patch"),
        ("events.events.k8s.io", "[]", "create patch"),
        ("secrets", "[]", "get list watch patch"),
        ("leases.coordination.k8s.io", "[]", "create"),
        (
            "leases.coordination.k8s.io",
            "[flotilla-leader]",
            "get update",
        ),
    ] {
        rows.push((resource.to_string(), names, verbs));
    }
    let rows: Vec<(&str, &str, &str)> = rows.iter().map(|(r, n, v)| (r.as_str(), *n, *v)).collect();
    assert_eq!(
        flotilla_e2e::can_i_matrix(&list),
        flotilla_e2e::matrix(&rows),
        "{list}"
    );

    // Enough: everything the operator does, it may do.
    for (verb, resource, ns) in [
        ("list", "memberclusters.federation.flotilla.dev", None),
        ("watch", "federatedingresses.federation.flotilla.dev", None),
        (
            "patch",
            "federatedingresses.federation.flotilla.dev/status",
            Some("default"),
        ),
        (
            "update",
            "federatedingresses.federation.flotilla.dev/finalizers",
            Some("default"),
        ),
        (
            "patch",
            "scalingpolicies.federation.flotilla.dev/status",
            Some("default"),
        ),
        ("list", "secrets", Some(OPERATOR_NAMESPACE)),
        // Namespace labels, for MemberCluster spec.namespaces selectors.
        ("watch", "namespaces", None),
        // Renewed member tokens are written back into their Secrets.
        ("patch", "secrets", Some(OPERATOR_NAMESPACE)),
        ("create", "events.events.k8s.io", Some("default")),
        (
            "create",
            "leases.coordination.k8s.io",
            Some(OPERATOR_NAMESPACE),
        ),
    ] {
        let mut args = vec![verb, resource];
        if let Some(ns) = ns {
            args.extend_from_slice(&["-n", ns]);
        }
        assert!(
            can_i(&bed, &args),
            "the chart's ServiceAccount cannot {verb} {resource} ({ns:?})"
        );
    }
    // No more: nothing outside what it manages.
    for (verb, resource, ns) in [
        ("get", "secrets", Some("kube-system")),
        ("list", "secrets", Some("default")),
        ("patch", "secrets", Some("default")),
        ("create", "secrets", Some(OPERATOR_NAMESPACE)),
        ("delete", "secrets", Some(OPERATOR_NAMESPACE)),
        ("create", "deployments.apps", Some("default")),
        ("delete", "namespaces", None),
        ("create", "ingresses.networking.k8s.io", Some("default")),
        ("create", "memberclusters.federation.flotilla.dev", None),
        (
            "delete",
            "federatedingresses.federation.flotilla.dev",
            Some("default"),
        ),
        ("update", "leases.coordination.k8s.io", Some("kube-system")),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
    ] {
        let mut args = vec![verb, resource];
        if let Some(ns) = ns {
            args.extend_from_slice(&["-n", ns]);
        }
        assert!(
            !can_i(&bed, &args),
            "the chart's ServiceAccount may {verb} {resource} ({ns:?}): wider than needed"
        );
    }

    // Sufficient in practice: run the operator with only that token, with leader election (the
    // Lease rules are exercised too), and propagate an object through it.
    let kubeconfig = service_account_kubeconfig(&bed).await;
    let mut op = Operator::start_with(
        &bed,
        "chart-sa",
        OperatorOptions {
            leader_elect: true,
            kubeconfig: Some((kubeconfig, "host".into())),
            ..OperatorOptions::default()
        },
    );
    let ns = bed.namespace("chart");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    );
    bed.apply(
        "host",
        &json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
            "metadata": {"name": "through-chart", "namespace": ns},
            "spec": {"template": {"spec": {"rules": [{"host": "chart.example.com"}]}},
                     "placement": {"clusters": ["member1", "member2"]}}
        })
        .to_string(),
    );
    for member in ["member1", "member2"] {
        let client = bed.client(member).await;
        eventually(
            &format!("copy in {member}"),
            Duration::from_secs(30),
            || {
                let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
                async move { Ok(api.get_opt("through-chart").await?) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\noperator log:\n{}", op.log_tail()));
    }
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "through-chart",
            "-n",
            &ns,
            "--wait=true",
            "--timeout=30s",
        ],
    );
    assert!(op.is_running(), "the operator stopped:\n{}", op.log_tail());
    let log = std::fs::read_to_string(&op.log).unwrap();
    assert!(
        !log.contains("forbidden"),
        "the operator hit a permission error:\n{}",
        op.log_tail()
    );
    op.terminate();
    bed.helm(&["uninstall", "flotilla", "--namespace", OPERATOR_NAMESPACE]);
}
