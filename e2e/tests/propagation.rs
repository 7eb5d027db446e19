//! FederatedIngress propagation on real clusters: placement, overrides, moves and pruning,
//! deletion and orphaning, foreign objects, bad overrides, bad credentials.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_api::FederatedIngress;
use flotilla_api::propagation::MemberCopyStatus;
use flotilla_e2e::{Operator, TestBed, eventually};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn ingress(namespace: &str, name: &str, placement: Value, extra: Value) -> String {
    let mut spec = json!({
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        },
        "placement": placement,
    });
    if let (Some(s), Value::Object(more)) = (spec.as_object_mut(), extra) {
        s.extend(more);
    }
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
    .to_string()
}

/// The object's status entry for `cluster`.
fn entry<'a>(fi: &'a FederatedIngress, cluster: &str) -> Option<&'a MemberCopyStatus> {
    fi.status
        .as_ref()?
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
}

async fn copy(bed: &TestBed, member: &str, ns: &str, name: &str) -> Option<Ingress> {
    Api::<Ingress>::namespaced(bed.client(member).await, ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn wait_status<T>(
    bed: &TestBed,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&FederatedIngress) -> Option<T>,
) -> T {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move { Ok(api.get_opt(name).await?.as_ref().and_then(check)) }
    })
    .await
    .unwrap()
}

fn condition<'a>(
    fi: &'a FederatedIngress,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    fi.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The example, applied with kubectl: copies with the right overrides on the two preferred
/// clusters, none on the fallback, and a verdict with a reason for every cluster.
#[tokio::test]
async fn the_example_is_propagated_with_its_overrides() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "example");
    // Start from scratch: an earlier run (or `make demo`) may have left the example placed elsewhere.
    bed.kubectl(
        "host",
        &[
            "delete",
            "-f",
            "manifests/examples/20-federated-ingress.yaml",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=30s",
        ],
    );
    // The delete waited for the finalizer, so no copy may outlive it, although this operator
    // had only just started and had not probed the members yet (the API test leaves the
    // example placed, so there are copies to remove).
    for member in ["member1", "member2"] {
        assert!(
            copy(&bed, member, "payments", "payment-gateway")
                .await
                .is_none(),
            "{member} kept a copy of a deleted object"
        );
    }
    bed.kubectl_ok(
        "host",
        &[
            "apply",
            "-f",
            "manifests/examples/00-namespace.yaml",
            "-f",
            "manifests/examples/20-federated-ingress.yaml",
        ],
    );

    let m1 = bed
        .wait_for_copy("member1", "payments", "payment-gateway")
        .await;
    let m2 = bed
        .wait_for_copy("member2", "payments", "payment-gateway")
        .await;
    assert_eq!(
        m1.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .host
            .as_deref(),
        Some("api.pay.example.com")
    );
    assert_eq!(
        m2.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .host
            .as_deref(),
        Some("api.eu-central.pay.example.com")
    );
    let labels = m1.metadata.labels.unwrap();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("flotilla")
    );
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("payment-gateway")
    );

    let fi = wait_status(&bed, "payments", "payment-gateway", "Ready", |fi| {
        condition(fi, "Ready")
            .filter(|c| c.status == "True")
            .map(|_| fi.clone())
    })
    .await;
    let placement = fi.status.as_ref().unwrap().placement.as_ref().unwrap();
    assert_eq!(placement.selected, vec!["member1", "member2"]);
    let members = Api::<flotilla_api::MemberCluster>::all(bed.client("host").await)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(
        placement.clusters.len(),
        members.items.len(),
        "a verdict for every cluster: {placement:?}"
    );
    let m3 = placement
        .clusters
        .iter()
        .find(|c| c.cluster == "member3")
        .unwrap();
    assert_eq!(format!("{:?}", m3.verdict), "Standby");
    assert!(!m3.reason.is_empty());
    assert!(
        copy(&bed, "member3", "payments", "payment-gateway")
            .await
            .is_none(),
        "the fallback holds no copy"
    );
    let annotations = m1.metadata.annotations.unwrap();
    assert_eq!(
        annotations.get("federation.flotilla.dev/origin-uid"),
        fi.metadata.uid.as_ref()
    );

    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "-f",
            "manifests/examples/20-federated-ingress.yaml",
            "--wait=true",
        ],
    );
    bed.wait_for_no_copy("member1", "payments", "payment-gateway")
        .await;
    bed.wait_for_no_copy("member2", "payments", "payment-gateway")
        .await;
}

/// Changing the placement moves the copy: created where newly placed (namespace included),
/// removed where no longer placed. Deleting removes the rest.
#[tokio::test]
async fn a_placement_change_moves_and_prunes() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "move");
    let ns = bed.create_namespace("move");
    bed.apply(
        "host",
        &ingress(&ns, "web", json!({"clusters": ["member1"]}), json!({})),
    );
    bed.wait_for_copy("member1", &ns, "web").await;

    // member3 carries a NoSchedule taint (manifests/examples/10-member-clusters.yaml): tolerate it.
    let tolerant = json!({"clusters": ["member2", "member3"], "constraints": {"tolerations": [
        {"key": "flotilla.dev/cost-tier", "operator": "Exists", "effect": "NoSchedule"}]}});
    bed.apply("host", &ingress(&ns, "web", tolerant.clone(), json!({})));
    bed.wait_for_copy("member2", &ns, "web").await;
    bed.wait_for_copy("member3", &ns, "web").await;
    bed.wait_for_no_copy("member1", &ns, "web").await;

    // A template change follows to every copy.
    let changed =
        ingress(&ns, "web", tolerant, json!({})).replace("web.example.com", "www.example.com");
    bed.apply("host", &changed);
    for member in ["member2", "member3"] {
        let client = bed.client(member).await;
        eventually("template change propagated", WAIT, || {
            let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
            async move {
                let host = api
                    .get("web")
                    .await?
                    .spec
                    .and_then(|s| s.rules)
                    .and_then(|r| r[0].host.clone());
                Ok((host.as_deref() == Some("www.example.com")).then_some(()))
            }
        })
        .await
        .unwrap();
    }

    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "web",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
    bed.wait_for_no_copy("member2", &ns, "web").await;
    bed.wait_for_no_copy("member3", &ns, "web").await;
}

/// With deletion policy Orphan the copies stay, released from Flotilla's management.
#[tokio::test]
async fn orphan_policy_keeps_the_copies() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "orphan");
    let ns = bed.create_namespace("orphan");
    bed.apply(
        "host",
        &ingress(
            &ns,
            "keep",
            json!({"clusters": ["member1", "member2"]}),
            json!({"deletion": "Orphan"}),
        ),
    );
    bed.wait_for_copy("member1", &ns, "keep").await;
    bed.wait_for_copy("member2", &ns, "keep").await;
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "keep",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
    for member in ["member1", "member2"] {
        let kept = copy(&bed, member, &ns, "keep")
            .await
            .expect("orphaned copy kept");
        let labels = kept.metadata.labels.unwrap_or_default();
        assert!(
            !labels.contains_key("app.kubernetes.io/managed-by"),
            "still marked as managed: {labels:?}"
        );
        assert_eq!(
            labels.get("app").map(String::as_str),
            Some("keep"),
            "the user's labels stay"
        );
    }
}

/// Flotilla's finalizer goes on and comes off beside another controller's without clobbering it,
/// and deleting the object removes the copies while the other finalizer still holds it.
#[tokio::test]
async fn other_finalizers_are_left_alone() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "finalizers");
    let ns = bed.create_namespace("finalizers");
    let mut doc: Value = serde_json::from_str(&ingress(
        &ns,
        "web",
        json!({"clusters": ["member1"]}),
        json!({}),
    ))
    .unwrap();
    doc["metadata"]["finalizers"] = json!(["example.com/keep"]);
    bed.apply("host", &doc.to_string());
    bed.wait_for_copy("member1", &ns, "web").await;
    let finalizers = |fi: &FederatedIngress| fi.metadata.finalizers.clone().unwrap_or_default();
    let both = wait_status(&bed, &ns, "web", "both finalizers", |fi| {
        Some(finalizers(fi)).filter(|f| f.len() == 2)
    })
    .await;
    assert!(
        both.iter().any(|f| f == "example.com/keep")
            && both.iter().any(|f| f == "federation.flotilla.dev/cleanup"),
        "{both:?}"
    );

    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "web",
            "-n",
            &ns,
            "--wait=false",
        ],
    );
    bed.wait_for_no_copy("member1", &ns, "web").await;
    wait_status(&bed, &ns, "web", "only the other finalizer left", |fi| {
        (finalizers(fi) == ["example.com/keep"]).then_some(())
    })
    .await;
    // Let the object go.
    bed.kubectl_ok(
        "host",
        &[
            "patch",
            "federatedingress",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
}

/// An Ingress Flotilla did not create is never overwritten under adoption Never: the conflict is
/// reported, the other clusters still get their copies. With adoption Always it is taken over
/// once its owner annotates it adoptable (the operator runs without --allow-adoption).
#[tokio::test]
async fn a_foreign_ingress_is_not_touched() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "foreign");
    let ns = bed.create_namespace("foreign");
    bed.apply(
        "member1",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    );
    let theirs = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": ns, "labels": {"owner": "someone-else"}},
        "spec": {"rules": [{"host": "theirs.example.com"}]}
    });
    bed.apply("member1", &theirs.to_string());

    bed.apply(
        "host",
        &ingress(
            &ns,
            "shop",
            json!({"clusters": ["member1", "member2"]}),
            json!({}),
        ),
    );
    bed.wait_for_copy("member2", &ns, "shop").await;
    let fi = wait_status(&bed, &ns, "shop", "conflict reported", |fi| {
        let entry = entry(fi, "member1")?;
        (format!("{:?}", entry.state) == "Conflict").then(|| fi.clone())
    })
    .await;
    let ready = condition(&fi, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Conflict")
    );
    let untouched = copy(&bed, "member1", &ns, "shop").await.unwrap();
    assert_eq!(
        untouched.spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("theirs.example.com")
    );
    assert!(
        !untouched
            .metadata
            .labels
            .unwrap()
            .contains_key("app.kubernetes.io/managed-by")
    );

    bed.apply(
        "host",
        &ingress(
            &ns,
            "shop",
            json!({"clusters": ["member1", "member2"]}),
            json!({"adoption": "Always"}),
        ),
    );
    // Adoption is opt-in: without --allow-adoption, only an object annotated adoptable by its
    // own owner is taken over.
    wait_status(&bed, &ns, "shop", "adoption refused without opt-in", |fi| {
        entry(fi, "member1")?
            .message
            .as_deref()?
            .contains("AdoptionNotAllowed")
            .then_some(())
    })
    .await;
    let untouched = copy(&bed, "member1", &ns, "shop").await.unwrap();
    assert_eq!(
        untouched.spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("theirs.example.com")
    );
    bed.kubectl_ok(
        "member1",
        &[
            "annotate",
            "ingress",
            "shop",
            "-n",
            &ns,
            "federation.flotilla.dev/adoptable=true",
        ],
    );
    let client = bed.client("member1").await;
    // The conflict is looked at again with backoff, at most every 30 s.
    eventually("adopted", WAIT * 2, || {
        let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
        async move {
            let i = api.get("shop").await?;
            let host = i.spec.and_then(|s| s.rules).and_then(|r| r[0].host.clone());
            Ok((host.as_deref() == Some("shop.example.com")).then_some(()))
        }
    })
    .await
    .unwrap();
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "shop",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// An override whose path does not exist fails that cluster only, with the reason in status.
#[tokio::test]
async fn an_override_that_does_not_apply_is_reported_per_cluster() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "override");
    let ns = bed.create_namespace("override");
    let overrides = json!({"overrides": [{"clusterName": "member2", "patches": [
        {"op": "replace", "path": "/spec/rules/7/host", "value": "nope.example.com"}]}]});
    bed.apply(
        "host",
        &ingress(
            &ns,
            "api",
            json!({"clusters": ["member1", "member2"]}),
            overrides,
        ),
    );
    bed.wait_for_copy("member1", &ns, "api").await;
    let fi = wait_status(&bed, &ns, "api", "override failure reported", |fi| {
        let entry = entry(fi, "member2")?;
        (format!("{:?}", entry.state) == "Failed").then(|| fi.clone())
    })
    .await;
    let entry = entry(&fi, "member2").unwrap();
    assert!(
        entry
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("/spec/rules/7/host"),
        "{entry:?}"
    );
    assert_eq!(condition(&fi, "Ready").unwrap().reason, "InvalidOverride");
    assert!(copy(&bed, "member2", &ns, "api").await.is_none());
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedingress",
            "api",
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}

/// Bad credentials give the MemberCluster a condition with a clear reason; other members are
/// unaffected.
#[tokio::test]
async fn bad_credentials_are_reported_on_the_member() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "credentials");
    // A previous failed run may have left these behind.
    bed.kubectl(
        "host",
        &[
            "delete",
            "membercluster",
            "broken",
            "--ignore-not-found",
            "--wait=true",
        ],
    );
    bed.kubectl(
        "host",
        &[
            "delete",
            "secret",
            "broken-kubeconfig",
            "-n",
            flotilla_e2e::OPERATOR_NAMESPACE,
            "--ignore-not-found",
        ],
    );
    let member = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": "broken"},
        "spec": {"secretRef": {"name": "broken-kubeconfig"}}
    });
    bed.apply("host", &member.to_string());
    let api: Api<flotilla_api::MemberCluster> = Api::all(bed.client("host").await);
    let reason_of = |api: Api<flotilla_api::MemberCluster>, want: &'static str| async move {
        eventually(&format!("MemberCluster broken: {want}"), WAIT, || {
            let api = api.clone();
            async move {
                let mc = api.get("broken").await?;
                let ready = mc
                    .status
                    .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
                Ok(ready
                    .filter(|c| c.status == "False" && c.reason == want)
                    .map(|c| c.message))
            }
        })
        .await
        .unwrap()
    };
    let message = reason_of(api.clone(), "SecretNotFound").await;
    assert!(message.contains("broken-kubeconfig"), "{message}");

    // The operator reads only Secrets labelled as member credentials, and says how to fix it.
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "broken-kubeconfig", "namespace": flotilla_e2e::OPERATOR_NAMESPACE},
        "stringData": {"kubeconfig": "this is not a kubeconfig"}});
    bed.apply("host", &secret.to_string());
    let message = reason_of(api.clone(), "SecretNotLabelled").await;
    assert!(
        message.contains("federation.flotilla.dev/member-credentials=true"),
        "{message}"
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "broken-kubeconfig", "namespace": flotilla_e2e::OPERATOR_NAMESPACE,
                     "labels": {"federation.flotilla.dev/member-credentials": "true"}},
        "stringData": {"kubeconfig": "this is not a kubeconfig"}});
    bed.apply("host", &secret.to_string());
    reason_of(api.clone(), "InvalidKubeconfig").await;

    // A kubeconfig whose token the member does not accept.
    let good = std::fs::read_to_string(bed.state_dir().join("member1.kubeconfig")).unwrap();
    let token_line = good
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    let bad = good.replace(token_line, "    token: not-a-valid-token");
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "broken-kubeconfig", "namespace": flotilla_e2e::OPERATOR_NAMESPACE,
                     "labels": {"federation.flotilla.dev/member-credentials": "true"}},
        "stringData": {"kubeconfig": bad}});
    bed.apply("host", &secret.to_string());
    reason_of(api.clone(), "Unauthorized").await;

    for name in ["member1", "member2", "member3"] {
        let mc = api.get(name).await.unwrap();
        let ready = mc
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            ready.status, "True",
            "{name} affected by another member's bad credentials"
        );
    }
    bed.kubectl_ok(
        "host",
        &["delete", "membercluster", "broken", "--wait=true"],
    );
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "secret",
            "broken-kubeconfig",
            "-n",
            flotilla_e2e::OPERATOR_NAMESPACE,
        ],
    );
}
