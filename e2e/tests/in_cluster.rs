//! The operator as users run it (1.34 beds with nodes; it fails, never skips, on a bed without
//! them): its image built without Docker and imported into the host's node, `helm install` with
//! `image.pullPolicy=Never`. Two replicas run as pods with the chart's ServiceAccount, pass their
//! probes, one leads, and they propagate to the members through the bed's relays; Prometheus
//! scrapes the metrics Service (a NodePort of the host's node). `helm upgrade` to another tag
//! rolls the pods while objects keep changing, and the pods' own logs show that no write the new
//! leader's lease guard permitted comes before the last one the old leader's permitted.
//! `helm uninstall` leaves the CRDs, the federated objects and the member copies.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flotilla_e2e::pods::{IMAGE_REPOSITORY, PodLog};
use flotilla_e2e::prometheus::PrometheusStack;
use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, TestBed, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

const TAG_A: &str = "e2e-a";
const TAG_B: &str = "e2e-b";
const MEMBERS: [&str; 2] = ["member1", "member2"];
/// How long pods may take to be scheduled, start and pass their probes (generous: a busy
/// 2-core machine).
const POD_WAIT: Duration = Duration::from_secs(240);

/// `helm upgrade --install` of the chart with the bed's image under `tag`.
fn install(bed: &TestBed, tag: &str) {
    // (the CRDs were applied with kubectl by `federation()`: taken over)
    bed.helm_install_chart(&[
        "--set",
        &format!("image.repository={IMAGE_REPOSITORY}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "image.pullPolicy=Never",
        // Prometheus runs on this machine's loopback: it reaches the Service at the node's address
        "--set",
        "service.type=NodePort",
        // every lease guard decision in the pods' logs (target flotilla::writes)
        "--set-json",
        r#"logLevel="info,flotilla::writes=debug""#,
    ]);
}

/// The operator pods that are not being deleted.
async fn live_pods(bed: &TestBed) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    api.list(&ListParams::default().labels("app.kubernetes.io/instance=flotilla"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Waits until exactly two operator pods run `tag`, both Running and Ready (their readiness
/// probes pass), with the chart's ServiceAccount, and no other operator pod is left; their names.
async fn two_ready_pods(bed: &TestBed, tag: &str) -> Vec<String> {
    let image = format!("{IMAGE_REPOSITORY}:{tag}");
    let result = eventually(
        &format!("two Ready operator pods of {image}, and no other"),
        POD_WAIT,
        || {
            let image = image.clone();
            async move {
                let api: Api<Pod> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
                let all = api
                    .list(&ListParams::default().labels("app.kubernetes.io/instance=flotilla"))
                    .await?
                    .items;
                let done = all.len() == 2
                    && all.iter().all(|p| {
                        ready(p)
                            && p.metadata.deletion_timestamp.is_none()
                            && image_of(p) == image
                            && p.spec.as_ref().unwrap().service_account_name.as_deref()
                                == Some("flotilla")
                    });
                let mut names: Vec<String> =
                    all.iter().filter_map(|p| p.metadata.name.clone()).collect();
                names.sort();
                Ok(done.then_some(names))
            }
        },
    )
    .await;
    result.unwrap_or_else(|e| {
        let pods = bed.kubectl("host", &["-n", OPERATOR_NAMESPACE, "describe", "pods"]);
        panic!("{e}\n{}", String::from_utf8_lossy(&pods.stdout))
    })
}

/// Container restarts of the live operator pods: a restarted container's earlier log is not in
/// `kubectl logs`, so the overlap check needs none.
async fn restarts(bed: &TestBed) -> i32 {
    live_pods(bed)
        .await
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

async fn lease_holder(bed: &TestBed) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    api.get_opt("flotilla-leader")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// Waits until the Lease names one of `pods` and that pod, and no other, logged that it leads.
async fn one_leader(bed: &TestBed, pods: &[String]) -> String {
    eventually("one of the pods leads", POD_WAIT, || async move {
        let Some(holder) = lease_holder(bed).await else {
            return Ok(None);
        };
        let leading: Vec<&String> = pods
            .iter()
            .filter(|p| PodLog::snapshot(bed, p).led_since().is_some())
            .collect();
        Ok((pods.contains(&holder) && leading == vec![&holder]).then_some(holder))
    })
    .await
    .unwrap()
}

fn federated_ingress(ns: &str, name: &str, host: &str) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": {"rules": [{"host": host}]}},
                 "placement": {"clusters": MEMBERS}}
    })
    .to_string()
}

/// Waits until every member has the copy `name` with rule host `host`.
async fn copies_with_host(bed: &TestBed, ns: &str, name: &str, host: &str) {
    for member in MEMBERS {
        let api: Api<Ingress> = Api::namespaced(bed.client(member).await, ns);
        eventually(
            &format!("copy {name} in {member} with host {host}"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move {
                    let copy = api.get_opt(name).await?;
                    let seen = copy
                        .and_then(|i| i.spec?.rules?.first()?.host.clone())
                        .unwrap_or_default();
                    Ok((seen == host).then_some(()))
                }
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn the_operator_runs_as_pods_from_its_image_and_helm_upgrades_and_uninstalls_it() {
    let bed = TestBed::get();
    bed.federation();
    // Members joined again with credentials pods reach (the bed's relays in the host's node).
    bed.join_for_pods();
    let node = bed.host_node_address();
    let secrets: Api<Secret> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    for member in MEMBERS {
        let secret = secrets.get(&format!("{member}-kubeconfig")).await.unwrap();
        let text = String::from_utf8(secret.data.unwrap()["kubeconfig"].0.clone()).unwrap();
        assert!(
            text.contains(&format!("server: https://{node}:"))
                && text.contains("tls-server-name: localhost"),
            "{member}'s Secret does not name the relay in the host's node:\n{}",
            text.lines()
                .filter(|l| !l.contains("token") && !l.contains("-data"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let started = Instant::now();
    bed.load_operator_image(&[TAG_A, TAG_B]);
    eprintln!(
        "image built and imported in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    bed.delete_lease();

    // --- install ---------------------------------------------------------------------------
    let started = Instant::now();
    install(&bed, TAG_A);
    let first = two_ready_pods(&bed, TAG_A).await;
    let old_leader = one_leader(&bed, &first).await;
    eprintln!(
        "helm install to two Ready pods and a leader ({old_leader}): {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let ns = bed.namespace("in-cluster");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    );
    bed.apply(
        "host",
        &federated_ingress(&ns, "installed", "installed.example.com"),
    );
    copies_with_host(&bed, &ns, "installed", "installed.example.com").await;

    // Prometheus scrapes the chart's metrics Service at the host node's NodePort.
    let services: Api<Service> = Api::namespaced(bed.client("host").await, OPERATOR_NAMESPACE);
    let service = services.get("flotilla-metrics").await.unwrap();
    let node_port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    let prometheus = PrometheusStack::start();
    prometheus.scrape("flotilla", &format!("{node}:{node_port}"));
    eventually(
        "Prometheus scrapes the operator through its Service",
        Duration::from_secs(60),
        || {
            let up = prometheus.query(r#"up{job="flotilla"}"#);
            let leader = prometheus.query(r#"count(flotilla_leader{job="flotilla"})"#);
            async move { Ok((up? == Some(1.0) && leader?.is_some()).then_some(())) }
        },
    )
    .await
    .unwrap();

    // --- upgrade, while objects keep changing ----------------------------------------------
    bed.apply("host", &federated_ingress(&ns, "rolling", "r0.example.com"));
    copies_with_host(&bed, &ns, "rolling", "r0.example.com").await;
    assert_eq!(restarts(&bed).await, 0, "an operator container restarted");
    let mut old_logs: Vec<PodLog> = first.iter().map(|p| PodLog::follow(&bed, p)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU32::new(0));
    let writer = {
        let (stop, last) = (stop.clone(), last.clone());
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            bed.client("host").await,
            &ns,
            &flotilla_e2e::api_resource(
                "federation.flotilla.dev/v1alpha1",
                "FederatedIngress",
                "federatedingresses",
            ),
        );
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let patch = json!({"spec": {"template": {"spec": {"rules": [{"host": format!("r{i}.example.com")}]}}}});
                if api
                    .patch("rolling", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_ok()
                {
                    last.store(i, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    install(&bed, TAG_B);
    let second = two_ready_pods(&bed, TAG_B).await;
    eprintln!(
        "helm upgrade to two Ready pods of the new tag: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let new_leader = eventually("a new pod leads", POD_WAIT, || {
        let second = second.clone();
        let bed = &bed;
        async move { Ok(lease_holder(bed).await.filter(|h| second.contains(h))) }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let last_host = format!("r{}.example.com", last.load(Ordering::SeqCst));
    // Propagation after the upgrade: the last change made during the rollout, and a new object.
    copies_with_host(&bed, &ns, "rolling", &last_host).await;
    bed.apply(
        "host",
        &federated_ingress(&ns, "upgraded", "upgraded.example.com"),
    );
    copies_with_host(&bed, &ns, "upgraded", "upgraded.example.com").await;

    // No overlap: for any two pods that led one after the other, the earlier one's lease guard
    // permitted nothing at or after the moment the later one started leading. The pods share
    // the host node's clock.
    for log in &mut old_logs {
        assert!(
            log.wait_ended(Duration::from_secs(60)),
            "the log of old pod {} did not end",
            log.pod
        );
    }
    assert_eq!(
        restarts(&bed).await,
        0,
        "a new operator container restarted: its earlier log is gone"
    );
    let mut logs = old_logs;
    logs.extend(second.iter().map(|p| PodLog::snapshot(&bed, p)));
    let mut leaders: Vec<&PodLog> = logs.iter().filter(|l| l.led_since().is_some()).collect();
    leaders.sort_by_key(|l| l.led_since());
    let summary: Vec<String> = leaders
        .iter()
        .map(|l| {
            let writes = l.permitted_writes();
            format!(
                "{} led from {} ({} permitted writes, last {:?})",
                l.pod,
                l.led_since().unwrap(),
                writes.len(),
                writes.last()
            )
        })
        .collect();
    eprintln!("leaders in order:\n  {}", summary.join("\n  "));
    let old = logs.iter().find(|l| l.pod == old_leader).unwrap();
    assert!(
        !old.permitted_writes().is_empty(),
        "the first leader logged no permitted write: nothing was measured\n{}",
        old.tail()
    );
    let new = logs.iter().find(|l| l.pod == new_leader).unwrap();
    assert!(
        !new.permitted_writes().is_empty(),
        "the new leader logged no permitted write: nothing was measured\n{}",
        new.tail()
    );
    for (i, earlier) in leaders.iter().enumerate() {
        for later in &leaders[i + 1..] {
            let since = later.led_since().unwrap();
            let overlap = earlier.writes_since(since);
            assert!(
                overlap.is_empty(),
                "{} permitted {} writes after {} started leading at {since}: {overlap:?}",
                earlier.pod,
                overlap.len(),
                later.pod
            );
        }
    }
    let last_old = leaders
        .iter()
        .filter(|l| first.contains(&l.pod))
        .filter_map(|l| l.permitted_writes().last().copied())
        .max()
        .unwrap();
    let first_new = leaders
        .iter()
        .filter(|l| second.contains(&l.pod))
        .filter_map(|l| l.permitted_writes().first().copied())
        .min()
        .unwrap();
    assert!(first_new > last_old, "{first_new} <= {last_old}");
    eprintln!(
        "last write permitted to an old pod {last_old}, first to a new one {first_new}: {:.0} ms apart",
        (first_new - last_old)
            .total(jiff::Unit::Millisecond)
            .unwrap()
    );

    // --- uninstall ---------------------------------------------------------------------------
    bed.helm(&["uninstall", "flotilla", "--namespace", OPERATOR_NAMESPACE]);
    eventually("the operator pods gone", POD_WAIT, || async {
        Ok(live_pods(&bed).await.is_empty().then_some(()))
    })
    .await
    .unwrap();
    // As documented (README, crds.keep): the CRDs stay, and with them the objects; with no
    // operator left, nothing removes the member copies either.
    for crd in [
        "memberclusters.federation.flotilla.dev",
        "federatedingresses.federation.flotilla.dev",
        "federatedobjects.federation.flotilla.dev",
        "scalingpolicies.federation.flotilla.dev",
    ] {
        bed.kubectl_ok("host", &["get", "crd", crd]);
    }
    for name in ["installed", "rolling", "upgraded"] {
        bed.kubectl_ok("host", &["-n", &ns, "get", "federatedingress", name]);
        for member in MEMBERS {
            bed.kubectl_ok(member, &["-n", &ns, "get", "ingress", name]);
        }
    }

    // An operator started afterwards takes the objects over: deleting them removes the copies.
    let mut op = Operator::start(&bed, "after-uninstall");
    bed.delete_namespace_and_wait(&ns);
    for member in MEMBERS {
        for name in ["installed", "rolling", "upgraded"] {
            bed.wait_for_no_copy(member, &ns, name).await;
        }
    }
    op.terminate();
}
