//! The status syncer on real clusters: drift in a member copy is reported on the host object with
//! the path, both values and who made it; under Enforce it is reverted and counted; a deleted copy
//! is reported or re-created; an edit made while the operator's watch is disconnected is still
//! found when it reconnects; template changes in quick succession are never drift.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_api::FederatedIngress;
use flotilla_api::federated_ingress::DriftStatus;
use flotilla_e2e::{Operator, TestBed, eventually};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn federated_ingress(ns: &str, name: &str, mode: &str) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {"metadata": {"annotations": {"team": "payments"}},
                         "spec": {"rules": [{"host": format!("{name}.example.com")}]}},
            "placement": {"clusters": ["member1", "member2"]},
            "drift": {"mode": mode, "ignorePaths": ["/metadata/annotations/team"]},
        }
    })
    .to_string()
}

async fn host_of(bed: &TestBed, member: &str, ns: &str, name: &str) -> Option<String> {
    let api: Api<Ingress> = Api::namespaced(bed.client(member).await, ns);
    api.get_opt(name)
        .await
        .unwrap()?
        .spec?
        .rules?
        .first()?
        .host
        .clone()
}

async fn wait_host(bed: &TestBed, member: &str, ns: &str, name: &str, want: &str) {
    let client = bed.client(member).await;
    eventually(&format!("{member} copy host {want}"), WAIT, || {
        let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
        async move {
            let host = api
                .get_opt(name)
                .await?
                .and_then(|i| i.spec?.rules?.first()?.host.clone());
            Ok((host.as_deref() == Some(want)).then_some(()))
        }
    })
    .await
    .unwrap();
}

async fn wait_drift<T>(
    bed: &TestBed,
    ns: &str,
    name: &str,
    member: &str,
    what: &str,
    check: impl Fn(Option<&DriftStatus>) -> Option<T>,
) -> T {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move {
            let fi = api.get(name).await?;
            let entry = fi
                .status
                .as_ref()
                .and_then(|s| s.clusters.iter().find(|c| c.cluster == member));
            Ok(check(entry.and_then(|e| e.drift.as_deref())))
        }
    })
    .await
    .unwrap()
}

fn edit_host(bed: &TestBed, member: &str, ns: &str, name: &str, host: &str) {
    bed.kubectl_ok(
        member,
        &[
            "patch",
            "ingress",
            name,
            "-n",
            ns,
            "--type=json",
            "-p",
            &json!([{"op": "replace", "path": "/spec/rules/0/host", "value": host}]).to_string(),
        ],
    );
}

/// Waits for the Drifted condition to turn True; returns its message. The condition is written
/// just after the per-cluster drift entry, so it may trail it by a moment.
async fn wait_drifted_condition(bed: &TestBed, ns: &str, name: &str) -> String {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    eventually("Drifted=True", WAIT, || {
        let api = api.clone();
        async move {
            let fi = api.get(name).await?;
            Ok(fi
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Drifted"))
                .filter(|c| c.status == "True")
                .map(|c| c.message))
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn report_only_reports_the_edit_and_clears_when_reverted() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "drift-report");
    let ns = bed.create_namespace("report");
    bed.apply("host", &federated_ingress(&ns, "web", "ReportOnly"));
    wait_host(&bed, "member1", &ns, "web", "web.example.com").await;
    // Ready first, so the copy counts as applied at this generation.
    wait_drift(&bed, &ns, "web", "member1", "applied", |d| {
        d.is_none().then_some(())
    })
    .await;

    edit_host(&bed, "member1", &ns, "web", "hijacked.example.com");
    let drift = wait_drift(&bed, &ns, "web", "member1", "drift reported", |d| {
        d.filter(|d| !d.fields.is_empty()).cloned()
    })
    .await;
    let field = &drift.fields[0];
    assert_eq!(field.path, "/spec/rules/0/host");
    assert_eq!(field.desired.as_deref(), Some("\"web.example.com\""));
    assert_eq!(field.observed.as_deref(), Some("\"hijacked.example.com\""));
    assert_eq!(field.manager.as_deref(), Some("kubectl-patch"), "{field:?}");
    assert!(field.first_seen.is_some());
    let message = wait_drifted_condition(&bed, &ns, "web").await;
    assert!(
        message.contains("member1") && message.contains("kubectl-patch"),
        "{message}"
    );
    // ReportOnly never touches the copy, even across reconciles.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        host_of(&bed, "member1", &ns, "web").await.as_deref(),
        Some("hijacked.example.com")
    );
    // member2 is unaffected.
    wait_drift(&bed, &ns, "web", "member2", "member2 clean", |d| {
        d.is_none().then_some(())
    })
    .await;
    bed.wait_for_event(&ns, "DriftDetected").await;

    // An ignored path is not drift.
    bed.kubectl_ok(
        "member1",
        &[
            "annotate",
            "ingress",
            "web",
            "-n",
            &ns,
            "team=someone-else",
            "--overwrite",
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drift = wait_drift(&bed, &ns, "web", "member1", "still one field", |d| {
        d.cloned()
    })
    .await;
    assert_eq!(drift.fields.len(), 1, "{drift:?}");

    edit_host(&bed, "member1", &ns, "web", "web.example.com");
    wait_drift(&bed, &ns, "web", "member1", "drift cleared", |d| {
        d.is_none().then_some(())
    })
    .await;
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, &ns);
    eventually("Drifted False", WAIT, || {
        let api = api.clone();
        async move {
            let fi = api.get("web").await?;
            Ok(fi
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Drifted"))
                .filter(|c| c.status == "False"))
        }
    })
    .await
    .unwrap();

    // A deleted copy is reported, not re-created.
    bed.kubectl_ok("member2", &["delete", "ingress", "web", "-n", &ns]);
    wait_drift(&bed, &ns, "web", "member2", "deletion reported", |d| {
        d.filter(|d| d.copy_deleted).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        host_of(&bed, "member2", &ns, "web").await.is_none(),
        "ReportOnly re-created the copy"
    );
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
}

#[tokio::test]
async fn enforce_reverts_and_records_the_correction() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "drift-enforce");
    let ns = bed.create_namespace("enforce");
    bed.apply("host", &federated_ingress(&ns, "web", "Enforce"));
    wait_host(&bed, "member1", &ns, "web", "web.example.com").await;
    wait_drift(&bed, &ns, "web", "member1", "applied", |d| {
        d.is_none().then_some(())
    })
    .await;

    edit_host(&bed, "member1", &ns, "web", "hijacked.example.com");
    wait_host(&bed, "member1", &ns, "web", "web.example.com").await;
    let drift = wait_drift(&bed, &ns, "web", "member1", "correction recorded", |d| {
        d.filter(|d| d.corrections.is_some()).cloned()
    })
    .await;
    assert_eq!(drift.corrections, Some(1));
    assert!(drift.last_correction_time.is_some() && drift.fields.is_empty());
    bed.wait_for_event(&ns, "DriftCorrected").await;

    // A deleted copy is re-created.
    bed.kubectl_ok("member2", &["delete", "ingress", "web", "-n", &ns]);
    wait_host(&bed, "member2", &ns, "web", "web.example.com").await;
    wait_drift(&bed, &ns, "web", "member2", "re-creation recorded", |d| {
        d.filter(|d| d.corrections == Some(1)).map(|_| ())
    })
    .await;
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
}

#[tokio::test]
async fn an_edit_made_while_the_watch_is_down_is_found_after_it_returns() {
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "drift-restart");
    let ns = bed.create_namespace("restart");
    bed.apply("host", &federated_ingress(&ns, "web", "ReportOnly"));
    wait_host(&bed, "member1", &ns, "web", "web.example.com").await;
    wait_drift(&bed, &ns, "web", "member1", "applied", |d| {
        d.is_none().then_some(())
    })
    .await;

    // Restart member1's API server and edit the copy at once, before the operator has probed it
    // Ready again and reconnected its watch.
    bed.testbed(&["stop-apiserver", "member1"]);
    bed.testbed(&["start-apiserver", "member1"]);
    edit_host(&bed, "member1", &ns, "web", "while-away.example.com");
    let drift = wait_drift(
        &bed,
        &ns,
        "web",
        "member1",
        "drift found after reconnect",
        |d| d.filter(|d| !d.fields.is_empty()).cloned(),
    )
    .await;
    assert_eq!(
        drift.fields[0].observed.as_deref(),
        Some("\"while-away.example.com\"")
    );
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
}

/// The engine's own applies of a new template are not drift, however fast they come: the member's
/// watch can show a copy of the new generation before the engine's apply of it has returned, and
/// judged then against the previous generation's baseline, template changes were reported as
/// drift of the fields they changed (86 `DriftDetected` events in one run of `make bench-drift`).
#[tokio::test]
async fn template_changes_in_quick_succession_are_never_drift() {
    const OBJECTS: usize = 10;
    const ROUNDS: usize = 20;
    let bed = TestBed::get();
    bed.federation();
    let _op = Operator::start(&bed, "drift-template-changes");
    let ns = bed.create_namespace("template-changes");
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("web-{i}")).collect();
    for name in &names {
        bed.apply("host", &federated_ingress(&ns, name, "ReportOnly"));
    }
    for name in &names {
        wait_drift(&bed, &ns, name, "member2", "applied", |d| {
            d.is_none().then_some(())
        })
        .await;
    }
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, &ns);
    let host = |name: &str, round: usize| format!("{name}-{round}.example.com");
    for round in 1..=ROUNDS {
        futures::future::join_all(names.iter().map(|name| {
            let patch =
                json!({"spec": {"template": {"spec": {"rules": [{"host": host(name, round)}]}}}});
            let api = api.clone();
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        }))
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for name in &names {
        for member in ["member1", "member2"] {
            wait_host(&bed, member, &ns, name, &host(name, ROUNDS)).await;
        }
    }
    // Status writes trail the copies; give them time to show a drift if one was found.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = bed.events(&ns);
    assert!(
        !events.lines().any(|l| l.starts_with("DriftDetected")),
        "{events}"
    );
    for fi in api.list(&Default::default()).await.unwrap() {
        let status = fi.status.unwrap_or_default();
        let drifted: Vec<_> = status
            .clusters
            .iter()
            .filter(|c| c.drift.is_some())
            .map(|c| format!("{}: {:?}", c.cluster, c.drift))
            .collect();
        assert!(
            drifted.is_empty(),
            "{}: {drifted:?}",
            fi.metadata.name.unwrap_or_default()
        );
        assert!(
            !status
                .conditions
                .iter()
                .any(|c| c.type_ == "Drifted" && c.status == "True"),
            "{:?}",
            status.conditions
        );
    }
}
