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
        ("watch", "pods"),
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

    // The whole matrix (`kubectl auth can-i --list`, in the ServiceAccount's own namespace):
    // exactly the documented rules for `--kinds ConfigMap` (README, "Join a member").
    let list = bed.kubectl_ok(
        "member3",
        &[
            "auth",
            "can-i",
            "--list",
            "--as",
            SA,
            "-n",
            "flotilla-system",
        ],
    );
    let full = "get list watch create update patch delete";
    let expected = flotilla_e2e::matrix(&[
        ("configmaps", "[]", full),
        ("ingresses.networking.k8s.io", "[]", full),
        ("namespaces", "[]", "get create"),
        (
            "horizontalpodautoscalers.autoscaling",
            "[]",
            "get list watch",
        ),
        ("deployments.apps/scale", "[]", "get update patch"),
        ("statefulsets.apps/scale", "[]", "get update patch"),
        ("replicasets.apps/scale", "[]", "get update patch"),
        ("pods.metrics.k8s.io", "[]", "get list"),
        ("*.custom.metrics.k8s.io", "[]", "get list"),
        ("*.external.metrics.k8s.io", "[]", "get list"),
        ("pods", "[]", "list watch"),
        (
            "serviceaccounts/token",
            "[flotilla-member3-second]",
            "create",
        ),
    ]);
    let granted = flotilla_e2e::can_i_matrix(&list);
    assert_eq!(granted, expected, "{list}");

    // Metrics, by SubjectAccessReview (whether a metrics API is served does not matter): pods'
    // resource usage, and metrics addressed by name, readable whatever the name, never writable.
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
    // The refused name is down, not "being probed": an object that could be placed on every
    // member (the alias included) is placed on the others at once.
    bed.apply(
        "host",
        &serde_json::json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
            "metadata": {"name": "everywhere", "namespace": ns},
            "spec": {"template": {"spec": {"rules": [{"host": "everywhere.example.com"}]}},
                     "placement": {"constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}}},
        })
        .to_string(),
    );
    for member in ["member1", "member2", "member3"] {
        bed.wait_for_copy(member, &ns, "everywhere").await;
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

/// The kubeconfig in a host credentials Secret.
fn kubeconfig_text(bed: &TestBed, secret: &str) -> String {
    let kubeconfig = bed.kubectl_ok(
        "host",
        &[
            "get",
            "secret",
            secret,
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.data.kubeconfig}",
        ],
    );
    String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            kubeconfig.trim(),
        )
        .unwrap(),
    )
    .unwrap()
}

/// The claims of a Secret's token: (issued at, expires at), in seconds.
fn token_times(bed: &TestBed, secret: &str) -> (String, i64, i64) {
    let text = kubeconfig_text(bed, secret);
    // Parsed, not grepped: the operator writes the renewed kubeconfig back in its own layout.
    let kubeconfig: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let token = kubeconfig["users"][0]["user"]["token"]
        .as_str()
        .expect("a token in the kubeconfig")
        .to_string();
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    (
        token,
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    )
}

async fn ready_reason(api: &Api<MemberCluster>, name: &str) -> (String, String, String) {
    let mc = api.get(name).await.unwrap();
    mc.status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status, c.reason, c.message))
        .unwrap_or_default()
}

/// Puts member2's long-lived credentials back, however the test ends.
struct Rejoin<'a>(&'a TestBed);

impl Drop for Rejoin<'_> {
    fn drop(&mut self) {
        self.0.join("member2", "eu-central");
        self.0.kubectl_ok(
            "host",
            &["apply", "-f", "manifests/examples/10-member-clusters.yaml"],
        );
    }
}

#[tokio::test]
async fn member_tokens_expire_and_are_renewed_before_they_do_without_interrupting_propagation() {
    let bed = TestBed::get();
    bed.federation();
    let _rejoin = Rejoin(&bed);
    // The shortest lifetime the TokenRequest API grants; the operator renews at 5 % of it (30 s)
    // instead of 80 %, so the renewal happens within the test.
    bed.join_with("member2", "eu-central", &["--token-ttl", "10m"]);
    let secret = "member2-kubeconfig";
    let (first, iat, exp) = token_times(&bed, secret);
    assert_eq!(exp - iat, 600, "join asked for a 10-minute token");
    // The member role lets the operator request tokens for its own ServiceAccount only.
    let own = "system:serviceaccount:flotilla-system:flotilla-member2";
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--as", own]);
        String::from_utf8_lossy(&bed.kubectl("member2", &all).stdout).trim() == "yes"
    };
    for (account, namespace, allowed) in [
        ("flotilla-member2", "flotilla-system", true),
        ("default", "flotilla-system", false),
        ("default", "default", false),
    ] {
        let resource = format!("serviceaccounts/{account}");
        let args = ["create", &resource, "--subresource=token", "-n", namespace];
        assert_eq!(can(&args), allowed, "a token for {namespace}/{account}");
    }

    let op = Operator::start_with(
        &bed,
        "token-renewal",
        flotilla_e2e::OperatorOptions {
            extra_env: vec![("FLOTILLA_MEMBER_TOKEN_RENEW_PERCENT".into(), "5".into())],
            ..Default::default()
        },
    );
    let api: Api<MemberCluster> = Api::all(bed.client("host").await);
    let ns = bed.create_namespace("renewal");
    // Objects keep arriving while the token is renewed: every one reaches member2, and member2
    // stays Ready throughout.
    let started = std::time::Instant::now();
    let mut renewed = None;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(100) {
        let name = format!("during-{i}");
        bed.apply(
            "host",
            &serde_json::json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"template": {"spec": {"rules": [{"host": "renewal.example.com"}]}},
                         "placement": {"clusters": ["member2"]}},
            })
            .to_string(),
        );
        bed.wait_for_copy("member2", &ns, &name).await;
        let (status, reason, message) = ready_reason(&api, "member2").await;
        assert_eq!(
            status,
            "True",
            "member2 not Ready during renewal: {reason}: {message}\n{}",
            op.log_tail()
        );
        let (token, new_iat, new_exp) = token_times(&bed, secret);
        if token != first {
            renewed = Some((new_iat, new_exp));
            if i >= 5 {
                break;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (new_iat, new_exp) = renewed
        .unwrap_or_else(|| panic!("the token was not renewed within 100 s:\n{}", op.log_tail()));
    println!(
        "renewed {}s after the first token was issued",
        new_iat - iat
    );
    assert!(new_iat >= iat + 25, "renewed too early: {}", new_iat - iat);
    assert!(new_exp > exp, "the new token must outlive the old one");
    assert_eq!(new_exp - new_iat, 600, "renewed with the same lifetime");
    let events = bed.kubectl_ok(
        "host",
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=TokenRenewed",
        ],
    );
    assert!(
        events.contains("member2"),
        "no TokenRenewed event: {events}"
    );

    // `flotilla join --rotate`: a new token at once, with the credentials on the host.
    let (before, _, _) = token_times(&bed, secret);
    bed.flotilla(&[
        "join",
        "member2",
        "--rotate",
        "--namespace",
        OPERATOR_NAMESPACE,
    ]);
    let (after, _, _) = token_times(&bed, secret);
    assert_ne!(before, after, "--rotate did not change the token");
    bed.wait_for_copy("member2", &ns, "during-0").await;

    // A token the member no longer accepts (its ServiceAccount deleted) is Unauthorized, with
    // how to fix it. On a registration of its own: member2 stays Ready for everything else.
    let sa = ["serviceaccount", "doomed", "-n", "flotilla-system"];
    bed.kubectl_ok("member2", &[&["create"], &sa[..]].concat());
    let revoked = bed.kubectl_ok(
        "member2",
        &[
            "create",
            "token",
            "doomed",
            "-n",
            "flotilla-system",
            "--duration",
            "10m",
        ],
    );
    bed.kubectl_ok("member2", &[&["delete"], &sa[..]].concat());
    let mut kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&kubeconfig_text(&bed, secret)).unwrap();
    kubeconfig["users"][0]["user"]["token"] = serde_json::json!(revoked.trim());
    bed.apply(
        "host",
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "revoked-kubeconfig", "namespace": OPERATOR_NAMESPACE,
                          "labels": {"federation.flotilla.dev/member-credentials": "true"}},
             "stringData": {"kubeconfig": kubeconfig.to_string()}},
            {"apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
             "metadata": {"name": "revoked"},
             "spec": {"secretRef": {"name": "revoked-kubeconfig"}}}
        ]})
        .to_string(),
    );
    let message = eventually("revoked Unauthorized", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let (status, reason, message) = ready_reason(&api, "revoked").await;
            Ok((status == "False" && reason == "Unauthorized").then_some(message))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", op.log_tail()));
    assert!(message.contains("flotilla join"), "{message}");
    bed.kubectl_ok(
        "host",
        &["delete", "membercluster", "revoked", "--wait=true"],
    );
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "secret",
            "revoked-kubeconfig",
            "-n",
            OPERATOR_NAMESPACE,
        ],
    );
    bed.kubectl_ok("host", &["delete", "namespace", &ns, "--wait=false"]);
}
