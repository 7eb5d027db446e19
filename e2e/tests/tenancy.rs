//! Host namespace rights do not become member-wide rights. A tenant with RBAC only in one host
//! namespace places objects only into members that admit that namespace
//! (`MemberCluster.spec.namespaces`, by name or by the namespace's labels), and cannot take over
//! a member's own object of the same name (adoption needs the operator's `--allow-adoption` or
//! the object's own `federation.flotilla.dev/adoptable=true`).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_api::FederatedIngress;
use flotilla_e2e::{Operator, TestBed, eventually};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Takes member1's namespace rule away, however the test ends.
struct Unrestrict<'a>(&'a TestBed);

impl Drop for Unrestrict<'_> {
    fn drop(&mut self) {
        self.0.kubectl(
            "host",
            &[
                "patch",
                "membercluster",
                "member1",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/spec/namespaces"}]"#,
            ],
        );
    }
}

fn restrict_member1(bed: &TestBed, namespaces: serde_json::Value) {
    bed.kubectl_ok(
        "host",
        &[
            "patch",
            "membercluster",
            "member1",
            "--type=merge",
            "-p",
            &json!({"spec": {"namespaces": namespaces}}).to_string(),
        ],
    );
}

/// A user who may manage FederatedIngresses in `ns` alone.
fn tenant_of(bed: &TestBed, ns: &str) -> String {
    let user = format!("tenant-of-{ns}");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "federation-author", "namespace": ns},
             "rules": [{"apiGroups": ["federation.flotilla.dev"], "resources": ["federatedingresses"],
                        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "federation-author", "namespace": ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "federation-author"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
        ]})
        .to_string(),
    );
    user
}

fn apply_as(bed: &TestBed, user: &str, doc: &serde_json::Value) {
    let out = bed.kubectl_with_stdin(
        "host",
        &["apply", "--as", user, "-f", "-"],
        Some(&doc.to_string()),
    );
    assert!(
        out.status.success(),
        "{user} could not apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingress(ns: &str, name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "template": {"spec": {"rules": [{"host": format!("{name}.example.com")}]}},
        "placement": {"clusters": ["member1", "member2"]},
    });
    if let (Some(s), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(more.clone());
    }
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

/// The verdict and reason of `cluster` in the object's placement status.
async fn verdict(bed: &TestBed, ns: &str, name: &str, cluster: &str) -> Option<(String, String)> {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    let fi = api.get_opt(name).await.ok()??;
    let placement = fi.status?.placement?;
    placement
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .map(|c| (format!("{:?}", c.verdict), c.reason.clone()))
}

async fn assert_no_copy_for(bed: &TestBed, member: &str, ns: &str, name: &str, quiet: Duration) {
    let until = Instant::now() + quiet;
    while Instant::now() < until {
        let copy = bed.kubectl(member, &["get", "ingress", name, "-n", ns]);
        assert!(!copy.status.success(), "{member} got a copy of {ns}/{name}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_tenant_places_only_into_members_that_admit_its_namespace() {
    let bed = TestBed::get();
    bed.federation();
    let _unrestrict = Unrestrict(&bed);
    let _op = Operator::start(&bed, "tenancy");
    let tenant_ns = bed.create_namespace("tenant");
    let admitted_ns = bed.create_namespace("admitted");
    let tenant = tenant_of(&bed, &tenant_ns);
    // member1 admits one namespace by name; member2 admits every namespace.
    restrict_member1(&bed, json!({"names": [admitted_ns]}));

    apply_as(&bed, &tenant, &ingress(&tenant_ns, "web", json!({})));
    bed.wait_for_copy("member2", &tenant_ns, "web").await;
    eventually("member1 filtered", WAIT, || async {
        Ok(verdict(&bed, &tenant_ns, "web", "member1")
            .await
            .filter(|v| v.0 == "Filtered" && v.1 == "NamespaceNotAllowed"))
    })
    .await
    .unwrap();
    assert_no_copy_for(&bed, "member1", &tenant_ns, "web", Duration::from_secs(5)).await;
    // The tenant may not write where member1 admits objects.
    let denied = bed.kubectl_with_stdin(
        "host",
        &["apply", "--as", &tenant, "-f", "-"],
        Some(&ingress(&admitted_ns, "web", json!({})).to_string()),
    );
    assert!(
        !denied.status.success(),
        "the tenant wrote outside its namespace"
    );
    // The admitted namespace's objects do reach member1.
    bed.apply("host", &ingress(&admitted_ns, "web", json!({})).to_string());
    bed.wait_for_copy("member1", &admitted_ns, "web").await;

    // By label: member1 admits namespaces labelled team=payments; labelling the tenant's
    // namespace (a host admin's act, not the tenant's) lets its object in.
    bed.kubectl_ok("host", &["label", "namespace", &tenant_ns, "team=payments"]);
    restrict_member1(
        &bed,
        json!({"names": [admitted_ns], "selector": {"matchLabels": {"team": "payments"}}}),
    );
    bed.wait_for_copy("member1", &tenant_ns, "web").await;
    // Taking the admission away prunes the copy, and says why.
    restrict_member1(&bed, json!({"names": [admitted_ns], "selector": null}));
    bed.wait_for_no_copy("member1", &tenant_ns, "web").await;
    eventually("member1 filtered again", WAIT, || async {
        Ok(verdict(&bed, &tenant_ns, "web", "member1")
            .await
            .filter(|v| v.1 == "NamespaceNotAllowed"))
    })
    .await
    .unwrap();
    assert!(
        bed.kubectl("member2", &["get", "ingress", "web", "-n", &tenant_ns])
            .status
            .success()
    );
}

#[tokio::test]
async fn a_tenant_cannot_adopt_a_members_own_object_without_its_opt_in() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "tenancy-adoption");
    let ns = bed.create_namespace("tenant-adopt");
    let tenant = tenant_of(&bed, &ns);
    // member2's own Ingress of the same name, in the same namespace.
    bed.apply(
        "member2",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    );
    bed.apply(
        "member2",
        &json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "payments", "namespace": ns},
            "spec": {"rules": [{"host": "theirs.example.com"}]}
        })
        .to_string(),
    );
    apply_as(
        &bed,
        &tenant,
        &ingress(&ns, "payments", json!({"adoption": "Always"})),
    );
    bed.wait_for_copy("member1", &ns, "payments").await;
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, &ns);
    let message = eventually("adoption refused", WAIT, || {
        let api = api.clone();
        async move {
            let fi = api.get("payments").await?;
            Ok(fi
                .status
                .and_then(|s| s.clusters.into_iter().find(|c| c.cluster == "member2"))
                .and_then(|c| c.message)
                .filter(|m| m.contains("AdoptionNotAllowed")))
        }
    })
    .await
    .unwrap();
    assert!(message.contains("--allow-adoption"), "{message}");
    let host = bed.kubectl_ok(
        "member2",
        &[
            "get",
            "ingress",
            "payments",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.rules[0].host}",
        ],
    );
    assert_eq!(
        host, "theirs.example.com",
        "the member's own object was overwritten"
    );
}
