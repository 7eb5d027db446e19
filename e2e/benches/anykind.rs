//! `make bench-anykind`: any kind at scale on the test bed grown to 1 host + 10 members
//! (`e2e/bench.sh anykind`).
//!
//! - `objects`: 1,000 FederatedObjects (`BENCH_ANYKIND_OBJECTS`) each holding a Deployment
//!   (0 replicas: the members' controllers create no pods) placed on all 10 members, created by
//!   4 concurrent workers: `any_kind_distribution_p50_ms` / `_p99_ms` (per object, the latest over
//!   the members of the first sighting of its Deployment by a watch, minus the client's time just
//!   before its create; n = the object count).
//! - `policy`: one PropagationPolicy selecting every ConfigMap of a namespace onto all 10
//!   members, then 1,000 ConfigMaps (`BENCH_ANYKIND_CONFIGMAPS`) created in it by 4 workers:
//!   `policy_all_copies_s` (first create to the last of the 10,000 copies seen).
//! - once both have settled (every copy present; no status write or copy change for
//!   10 s), `operator_rss_mb_any_kind` (VmRSS of the operator holding both sets, not the peak).
//!
//! Then both namespaces are deleted (the engine removes the copies) and MemberClusters stay.
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_api::FederatedObject;
use flotilla_e2e::bench::{
    CpuSnapshot, MemberWatch, bench, burst_latencies, create_all, create_namespace, drop_namespace,
    env_secs, env_usize, grow, heap_mb, member_names, members_ready, memory_kb, metrics_delta,
    on_members, settle, summarize, wait_all_seen, wait_copies_gone, wait_namespace_gone,
};
use flotilla_e2e::{Operator, TestBed, api_resource};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource};
use serde_json::json;

const MEMBERS: usize = 10;
const WORKERS: usize = 4;

async fn watches(
    bed: &TestBed,
    members: &[String],
    ns: &str,
    r: &ApiResource,
) -> Result<Vec<MemberWatch>> {
    let mut out = Vec::new();
    for m in members {
        out.push(MemberWatch::start_resource(bed, m, ns, r).await?);
    }
    Ok(out)
}

#[tokio::main]
async fn main() {
    flotilla_e2e::bench::finish("anykind", run().await);
}

async fn run() -> Result<()> {
    let objects = env_usize("BENCH_ANYKIND_OBJECTS", 1_000);
    let configmaps = env_usize("BENCH_ANYKIND_CONFIGMAPS", 1_000);
    let quiet = env_secs("BENCH_ANYKIND_QUIET_S", 10);
    let bed = TestBed::get();
    tokio::task::block_in_place(|| bed.federation());
    grow(&bed, MEMBERS, &[])?;
    let host = bed.client("host").await;
    let members = member_names(MEMBERS);
    let op = Operator::start(&bed, "bench-anykind");
    members_ready(&host, &members).await?;
    let scrape = || tokio::task::block_in_place(|| op.get("/metrics").unwrap_or_default());
    let timeout = Duration::from_secs(600);

    // FederatedObjects holding Deployments.
    let ns = create_namespace(&host, "bench-any").await?;
    let deployments = watches(
        &bed,
        &members,
        &ns,
        &api_resource("apps/v1", "Deployment", "deployments"),
    )
    .await?;
    let names: Vec<String> = (0..objects).map(|i| format!("d{i}")).collect();
    let docs: Vec<FederatedObject> = names
        .iter()
        .map(|name| {
            serde_json::from_value(json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedObject",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "template": {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"labels": {"app": name}},
                        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}}},
                    "placement": on_members(&members),
                }
            }))
            .context("FederatedObject document")
        })
        .collect::<Result<_>>()?;
    let api: Api<FederatedObject> = Api::namespaced(host.clone(), &ns);
    let cpu_before = CpuSnapshot::take(&bed, op.pid());
    let metrics_before = scrape();
    let creates = create_all(&api, Arc::new(docs), WORKERS).await?;
    wait_all_seen(&deployments, &names, timeout, "Deployments").await?;
    eprintln!(
        "any kind: operator metrics until every copy was seen: {}",
        metrics_delta(&metrics_before, &scrape())
    );
    eprintln!(
        "any kind: {}",
        CpuSnapshot::take(&bed, op.pid()).describe_since(&cpu_before)
    );
    let (latencies, _) = burst_latencies(&deployments, &names, &creates)?;
    let s = summarize(latencies)?;
    eprintln!(
        "any kind: {objects} FederatedObjects (Deployments) x {MEMBERS} members: {}; the creates themselves took {:.1} s",
        s.describe("ms"),
        (creates.last_returned - creates.phase).as_secs_f64()
    );
    bench("any_kind_distribution_p50_ms", s.p50, "ms");
    bench("any_kind_distribution_p99_ms", s.p99, "ms");

    // ConfigMaps by one PropagationPolicy.
    let ns2 = create_namespace(&host, "bench-policy").await?;
    let policies: Api<kube::api::DynamicObject> = Api::namespaced_with(
        host.clone(),
        &ns2,
        &api_resource(
            "federation.flotilla.dev/v1alpha1",
            "PropagationPolicy",
            "propagationpolicies",
        ),
    );
    let policy: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": "all-configmaps", "namespace": ns2},
        "spec": {"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap",
            "labelSelector": {"matchLabels": {"federate": "yes"}}}],
            "placement": on_members(&members)}
    }))?;
    policies.create(&Default::default(), &policy).await?;
    let copies = watches(
        &bed,
        &members,
        &ns2,
        &api_resource("v1", "ConfigMap", "configmaps"),
    )
    .await?;
    let cm_names: Vec<String> = (0..configmaps).map(|i| format!("c{i}")).collect();
    let cms: Vec<ConfigMap> = cm_names
        .iter()
        .map(|n| {
            serde_json::from_value(
                json!({"metadata": {"name": n, "namespace": ns2, "labels": {"federate": "yes"}},
            "data": {"value": n}}),
            )
        })
        .collect::<Result<_, _>>()?;
    let cm_api: Api<ConfigMap> = Api::namespaced(host.clone(), &ns2);
    let cpu_before = CpuSnapshot::take(&bed, op.pid());
    let metrics_before = scrape();
    let cm_creates = create_all(&cm_api, Arc::new(cms), WORKERS).await?;
    wait_all_seen(&copies, &cm_names, timeout, "ConfigMaps").await?;
    // From the first create to the last copy's sighting, as bench-ceiling measures it.
    let (_, all) = burst_latencies(&copies, &cm_names, &cm_creates)?;
    eprintln!(
        "policy: the {configmaps} ConfigMap creates themselves took {:.1} s",
        (cm_creates.last_returned - cm_creates.phase).as_secs_f64()
    );
    eprintln!(
        "policy: {}",
        CpuSnapshot::take(&bed, op.pid()).describe_since(&cpu_before)
    );
    eprintln!(
        "policy: {configmaps} ConfigMaps x {MEMBERS} members, every copy after {:.1} s",
        all.as_secs_f64()
    );
    eprintln!(
        "policy: operator metrics until every copy was seen: {}",
        metrics_delta(&metrics_before, &scrape())
    );
    bench("policy_all_copies_s", all.as_secs_f64(), "s");

    let mut all_watches = deployments;
    all_watches.extend(copies);
    // Not settling is reported after the cleanup: a failed run must not leave 20,000 copies.
    let settled = settle(scrape, &all_watches, quiet, timeout, || true).await;
    match &settled {
        Ok(took) => {
            // VmRSS once settled, not VmHWM (the burst's peak).
            let (_, rss) = memory_kb(op.pid())?;
            let (allocated, resident) = heap_mb(&scrape());
            eprintln!(
                "settled after {:.0} s; RSS {} kB; heap {allocated:.1} MB allocated, {resident:.1} MB resident in the allocator",
                took.as_secs_f64(),
                rss
            );
            bench("operator_rss_mb_any_kind", rss as f64 / 1024.0, "MB");
            bench("operator_heap_allocated_mb_any_kind", allocated, "MB");
        }
        Err(e) => {
            let rss = memory_kb(op.pid())
                .map(|(_, rss)| rss / 1024)
                .unwrap_or_default();
            eprintln!("not settled ({e:#}); VmRSS {rss} MB meanwhile; cleaning up");
        }
    }
    drop_namespace(&bed, &ns).await;
    drop_namespace(&bed, &ns2).await;
    wait_copies_gone(&all_watches, timeout)
        .await
        .context("after the namespaces were deleted")?;
    // The host goes on deleting the records and ConfigMaps after the copies are gone: the next
    // benchmark (or run) must not start while it does.
    for namespace in [&ns, &ns2] {
        wait_namespace_gone(&host, namespace, timeout).await?;
    }
    settled.map(|_| ())
}
