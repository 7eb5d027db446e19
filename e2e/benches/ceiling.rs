//! `make bench-ceiling`: what this test bed allows at all, with no operator running: the bound
//! under `scale_*`, `any_kind_*` and `policy_all_copies_s` that no federation operator could
//! beat on the same machine (`e2e/bench.sh ceiling`, on the bed grown to 1 host + 10 members).
//!
//! Each section creates the same host objects as its real benchmark, by the same 4 workers, but
//! nothing on the host reacts to them. Instead the benchmark itself plays a perfect operator: the
//! moment a host create returns, it sends the rendered copy (Flotilla's labels and annotations
//! included) to every member with a plain create, at most 16 in flight per member (the engine's
//! lane width). A perfect operator would need no host watch, no reads, no apply bookkeeping and
//! no status writes; so these figures are a floor for the real ones, measured the same way (per
//! object, the latest over the members of the first sighting of its copy by a watch, minus the
//! client's time just before the host create).
//!
//! - `scale`: 10,000 FederatedIngresses (`BENCH_CEILING_SCALE_OBJECTS`) and their Ingresses on
//!   10 members: `ceiling_scale_distribution_p50_ms`/`_p99_ms`, `ceiling_scale_all_copies_s`.
//! - `anykind`: 1,000 FederatedObjects (`BENCH_CEILING_ANYKIND_OBJECTS`) holding Deployments
//!   (0 replicas): `ceiling_any_kind_distribution_p50_ms`/`_p99_ms`.
//! - `policy`: 1,000 ConfigMaps (`BENCH_CEILING_CONFIGMAPS`): `ceiling_policy_all_copies_s`.
//!
//! Each section ends by deleting its namespace on the host and the members and waiting until the
//! copies are gone, so the next one starts on a quiet bed. `BENCH_CEILING_SECTIONS=policy` runs
//! only some sections.
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_api::labels::{
    FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE,
    ORIGIN_UID,
};
use flotilla_e2e::bench::{
    CpuSnapshot, MemberWatch, bench, burst_latencies, create_all_then, create_namespace,
    drop_namespace, env_usize, federated_ingress, grow, member_names, on_members, summarize,
    wait_all_seen, wait_copies_gone, wait_namespace_gone,
};
use flotilla_e2e::{TestBed, api_resource};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const MEMBERS: usize = 10;
const WORKERS: usize = 4;
/// Creates in flight to one member at once: the engine's `LANE_WIDTH`.
const LANE: usize = 16;

/// How the copies are sent. Only `create`, the cheapest, gives the BENCH lines; the others
/// (`BENCH_CEILING_REQUEST=apply|get-apply`, Flotilla's own requests for a new copy: a server-side
/// apply, after a read for the adoption check) say on stderr what each request costs the bed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Request {
    Create,
    Apply,
    GetApply,
}

impl Request {
    fn from_env() -> Self {
        match std::env::var("BENCH_CEILING_REQUEST").as_deref() {
            Ok("apply") => Request::Apply,
            Ok("get-apply") => Request::GetApply,
            _ => Request::Create,
        }
    }
}

/// A host object and the copy it puts in every member.
type Pair = (Value, Value);

/// One section: the host objects its real benchmark creates, and the copy each puts in a member.
struct Section {
    name: &'static str,
    host_resource: ApiResource,
    copy_resource: ApiResource,
    /// The host object and its member copy, for object `name` in namespace `ns`.
    make: fn(ns: &str, name: &str, members: &[String]) -> Result<Pair>,
}

#[tokio::main]
async fn main() {
    flotilla_e2e::bench::finish("ceiling", run().await);
}

async fn run() -> Result<()> {
    let wanted: Option<HashSet<String>> = std::env::var("BENCH_CEILING_SECTIONS")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let bed = TestBed::get();
    tokio::task::block_in_place(|| bed.federation());
    grow(&bed, MEMBERS, &[])?;
    let members = member_names(MEMBERS);
    let sections = [
        (
            Section {
                name: "scale",
                host_resource: api_resource(
                    "federation.flotilla.dev/v1alpha1",
                    "FederatedIngress",
                    "federatedingresses",
                ),
                copy_resource: api_resource("networking.k8s.io/v1", "Ingress", "ingresses"),
                make: ingress,
            },
            env_usize("BENCH_CEILING_SCALE_OBJECTS", 10_000),
        ),
        (
            Section {
                name: "anykind",
                host_resource: api_resource(
                    "federation.flotilla.dev/v1alpha1",
                    "FederatedObject",
                    "federatedobjects",
                ),
                copy_resource: api_resource("apps/v1", "Deployment", "deployments"),
                make: deployment,
            },
            env_usize("BENCH_CEILING_ANYKIND_OBJECTS", 1_000),
        ),
        (
            Section {
                name: "policy",
                host_resource: api_resource("v1", "ConfigMap", "configmaps"),
                copy_resource: api_resource("v1", "ConfigMap", "configmaps"),
                make: configmap,
            },
            env_usize("BENCH_CEILING_CONFIGMAPS", 1_000),
        ),
    ];
    let mut failed = Vec::new();
    for (section, count) in &sections {
        if wanted.as_ref().is_some_and(|w| !w.contains(section.name)) {
            continue;
        }
        if let Err(e) = run_section(&bed, &members, section, *count).await {
            eprintln!("{}: FAILED: {e:#}", section.name);
            failed.push(section.name);
        }
    }
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}

async fn run_section(
    bed: &TestBed,
    members: &[String],
    section: &Section,
    count: usize,
) -> Result<()> {
    let host = bed.client("host").await;
    let ns = create_namespace(&host, &format!("bench-ceiling-{}", section.name)).await?;
    let mut member_apis = Vec::new();
    let mut watches = Vec::new();
    for member in members {
        let client = bed.client(member).await;
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {ns} in {member}"))?;
        member_apis.push((
            Api::<DynamicObject>::namespaced_with(client, &ns, &section.copy_resource),
            Arc::new(Semaphore::new(LANE)),
        ));
        watches.push(MemberWatch::start_resource(bed, member, &ns, &section.copy_resource).await?);
    }
    let result = measure(
        &host,
        &ns,
        members,
        section,
        count,
        &member_apis,
        &watches,
        bed,
    )
    .await;
    // Clean up whatever happened, and wait for the copies to go: the next section (or benchmark)
    // must start on a quiet bed.
    drop_namespace(bed, &ns).await;
    let emptied = wait_copies_gone(&watches, Duration::from_secs(900)).await;
    let gone = wait_namespace_gone(&host, &ns, Duration::from_secs(300)).await;
    result?;
    emptied.with_context(|| format!("{}: namespace {ns}", section.name))?;
    gone
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    host: &kube::Client,
    ns: &str,
    members: &[String],
    section: &Section,
    count: usize,
    member_apis: &[(Api<DynamicObject>, Arc<Semaphore>)],
    watches: &[MemberWatch],
    bed: &TestBed,
) -> Result<()> {
    let names: Vec<String> = (0..count).map(|i| format!("o{i:05}")).collect();
    let mut hosts = Vec::with_capacity(count);
    let mut copies = Vec::with_capacity(count);
    for name in &names {
        let (h, c) = (section.make)(ns, name, members)?;
        hosts.push(serde_json::from_value::<DynamicObject>(h)?);
        copies.push(serde_json::from_value::<DynamicObject>(c)?);
    }
    let copies = Arc::new(copies);
    let failures = Arc::new(AtomicUsize::new(0));
    let last_failure: Arc<Mutex<Option<String>>> = Arc::default();
    let apis: Arc<Vec<_>> = Arc::new(member_apis.to_vec());
    let request = Request::from_env();
    let send_copies = {
        let (copies, failures, last_failure) =
            (copies.clone(), failures.clone(), last_failure.clone());
        move |i: usize| {
            for (api, lane) in apis.iter() {
                let (api, lane, copies) = (api.clone(), lane.clone(), copies.clone());
                let (failures, last_failure) = (failures.clone(), last_failure.clone());
                tokio::spawn(async move {
                    let Ok(_permit) = lane.acquire().await else {
                        return;
                    };
                    let copy = &copies[i];
                    let sent = match request {
                        Request::Create => api.create(&PostParams::default(), copy).await,
                        Request::Apply | Request::GetApply => {
                            if request == Request::GetApply {
                                let _ = api.get_opt(&copy.name_any()).await;
                            }
                            let params = PatchParams::apply(FIELD_MANAGER);
                            api.patch(&copy.name_any(), &params, &Patch::Apply(copy))
                                .await
                        }
                    };
                    if let Err(e) = sent {
                        failures.fetch_add(1, Ordering::Relaxed);
                        *last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(e.to_string());
                    }
                });
            }
        }
    };
    let host_api = Api::<DynamicObject>::namespaced_with(host.clone(), ns, &section.host_resource);
    let cpu_before = CpuSnapshot::take(bed, std::process::id());
    let creates = create_all_then(&host_api, Arc::new(hosts), WORKERS, send_copies).await?;
    let create_phase = creates.last_returned - creates.phase;
    let timeout = Duration::from_secs(600 + (count * members.len()) as u64 / 20);
    let seen = wait_all_seen(watches, &names, timeout, section.name).await;
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!(
            "{}: {failed} member creates failed, the last with: {}",
            section.name,
            last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default()
        );
    }
    seen?;
    // "operator" in this account is the benchmark itself, which plays it.
    eprintln!(
        "{}: {}",
        section.name,
        CpuSnapshot::take(bed, std::process::id()).describe_since(&cpu_before)
    );
    let (latencies, all_copies) = burst_latencies(watches, &names, &creates)?;
    let all_copies = all_copies.as_secs_f64();
    let s = summarize(latencies)?;
    eprintln!(
        "{}: {count} host objects by {WORKERS} workers ({:.1} s, {:.0}/s), {} copies on {} members: distribution {} (n = {}); every copy {all_copies:.1} s after the first create",
        section.name,
        create_phase.as_secs_f64(),
        count as f64 / create_phase.as_secs_f64().max(0.001),
        count * members.len(),
        members.len(),
        s.describe("ms"),
        s.n
    );
    if request != Request::Create {
        eprintln!(
            "{}: copies sent as {request:?}, so no BENCH line (only plain creates give the ceiling)",
            section.name
        );
        return Ok(());
    }
    match section.name {
        "scale" => {
            bench("ceiling_scale_distribution_p50_ms", s.p50, "ms");
            bench("ceiling_scale_distribution_p99_ms", s.p99, "ms");
            bench("ceiling_scale_all_copies_s", all_copies, "s");
        }
        "anykind" => {
            bench("ceiling_any_kind_distribution_p50_ms", s.p50, "ms");
            bench("ceiling_any_kind_distribution_p99_ms", s.p99, "ms");
        }
        _ => bench("ceiling_policy_all_copies_s", all_copies, "s"),
    }
    Ok(())
}

/// Flotilla's tracking labels and annotations on a copy of `kind` object `name`, as the engine
/// renders them (the uid is a stand-in of a real one's length).
fn tracked(mut copy: Value, kind: &str, ns: &str, name: &str) -> Value {
    let metadata = &mut copy["metadata"];
    metadata["namespace"] = json!(ns);
    metadata["name"] = json!(name);
    metadata["labels"][MANAGED_BY] = json!(MANAGED_BY_VALUE);
    metadata["labels"][ORIGIN_KIND] = json!(kind);
    metadata["annotations"] = json!({
        ORIGIN_NAMESPACE: ns,
        ORIGIN_NAME: name,
        ORIGIN_UID: "00000000-0000-4000-8000-000000000000",
        "federation.flotilla.dev/origin-generation": "1",
        "federation.flotilla.dev/deletion-policy": "Delete",
    });
    copy
}

fn ingress(ns: &str, name: &str, members: &[String]) -> Result<Pair> {
    let host = serde_json::to_value(federated_ingress(ns, name, on_members(members))?)?;
    let mut copy = host["spec"]["template"].clone();
    copy["apiVersion"] = json!("networking.k8s.io/v1");
    copy["kind"] = json!("Ingress");
    Ok((host, tracked(copy, "FederatedIngress", ns, name)))
}

fn deployment(ns: &str, name: &str, members: &[String]) -> Result<Pair> {
    let template = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"labels": {"app": name}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}}});
    let host = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": template, "placement": on_members(members)},
    });
    Ok((host, tracked(template, "FederatedObject", ns, name)))
}

fn configmap(ns: &str, name: &str, _members: &[String]) -> Result<Pair> {
    let host = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"federate": "yes"}},
        "data": {"value": name}});
    let copy = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"labels": {"federate": "yes"}}, "data": {"value": name}});
    Ok((host, tracked(copy, "FederatedObject", ns, name)))
}
