//! `make bench-scaling-cost`: what ScalingPolicies cost the members at rest, on the test bed
//! grown to 1 host + 10 members (`e2e/bench.sh scaling_cost`).
//!
//! 500 FederatedObjects (`BENCH_SCALING_POLICIES`), each a Deployment on all 10 members, each
//! autoscaled by its own ScalingPolicy from a Prometheus query whose value does not change (the
//! policies decide 0 replicas, so the members' controllers create no pods). Once every policy
//! reports its decision and the copies exist, the members' audit logs are read over a window
//! (`BENCH_SCALING_WINDOW_S`, 60 s): every request the operator's member ServiceAccounts sent
//! (reads included: the bed's audit policy records them for that group).
//!
//! - `scaling_member_requests_per_s`: requests to all members per second over the window, at
//!   rest (`n` = the requests counted; the breakdown by resource and verb goes to stderr). It
//!   must not grow with policies × members.
//! - `scaling_member_requests_per_policy_member_per_hour`: the same, per policy and member.
//! - `operator_rss_mb_scaling`: VmRSS of the operator holding the policies and the copies.
//!
//! The members' health probes (`/readyz`, one per member per second whatever the policies) are
//! counted apart and left out of the first figure.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flotilla_api::{FederatedObject, ScalingPolicy};
use flotilla_e2e::bench::{
    bench, create_all, create_namespace, env_secs, env_usize, grow, member_names, members_ready,
    memory_kb, on_members,
};
use flotilla_e2e::prometheus::PrometheusStack;
use flotilla_e2e::{Operator, OperatorOptions, TestBed};
use kube::api::Api;
use serde_json::json;

const MEMBERS: usize = 10;
const WORKERS: usize = 4;
const METRIC: &str = "bench_queue";
const IDENTITY: &str = "bench-scaling-cost";

#[tokio::main]
async fn main() {
    flotilla_e2e::bench::finish("scaling_cost", run().await);
}

async fn run() -> Result<()> {
    let policies = env_usize("BENCH_SCALING_POLICIES", 500);
    let window = env_secs("BENCH_SCALING_WINDOW_S", 60);
    let bed = TestBed::get();
    tokio::task::block_in_place(|| bed.federation());
    grow(&bed, MEMBERS, &[])?;
    let host = bed.client("host").await;
    let members = member_names(MEMBERS);
    let prom = tokio::task::block_in_place(PrometheusStack::start);
    let op = Operator::start_with(
        &bed,
        "bench-scaling-cost",
        OperatorOptions {
            identity: IDENTITY.into(),
            extra_env: vec![("FLOTILLA_PROMETHEUS_URL".into(), prom.url())],
            ..OperatorOptions::default()
        },
    );
    members_ready(&host, &members).await?;
    let ns = create_namespace(&host, "bench-spc").await?;
    tokio::task::block_in_place(|| prom.set(&ns, METRIC, 0.0));

    let names: Vec<String> = (0..policies).map(|i| format!("w{i}")).collect();
    let workloads: Vec<FederatedObject> = names
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
                    "replicas": {"mode": "Divided"},
                    "placement": on_members(&members),
                }
            }))
            .context("FederatedObject document")
        })
        .collect::<Result<_>>()?;
    let scaling: Vec<ScalingPolicy> = names
        .iter()
        .map(|name| {
            serde_json::from_value(json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "ScalingPolicy",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 0, "maxReplicas": 100,
                    "metrics": [{"type": "External", "external": {
                        "metric": {"name": METRIC},
                        "prometheus": {"query": format!(r#"sum({METRIC}{{job="{ns}"}})"#)},
                        "target": {"type": "AverageValue", "averageValue": "10"}}}]
                }
            }))
            .context("ScalingPolicy document")
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    create_all(
        &Api::<FederatedObject>::namespaced(host.clone(), &ns),
        Arc::new(workloads),
        WORKERS,
    )
    .await?;
    let sp_api = Api::<ScalingPolicy>::namespaced(host.clone(), &ns);
    create_all(&sp_api, Arc::new(scaling), WORKERS).await?;

    // Settled: every policy has decided (0) and scales its workload in every member.
    let timeout = Duration::from_secs(900);
    loop {
        let list = sp_api.list(&Default::default()).await?;
        let settled = list
            .items
            .iter()
            .filter(|sp| {
                sp.status.as_ref().is_some_and(|s| {
                    s.desired_replicas == Some(0)
                        && s.clusters.len() == MEMBERS
                        && s.clusters.iter().all(|c| c.state == "Scaled")
                })
            })
            .count();
        if settled == policies {
            break;
        }
        if started.elapsed() > timeout {
            bail!("only {settled} of {policies} policies settled after {timeout:?}");
        }
        eprintln!(
            "{settled}/{policies} policies settled after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!(
        "all {policies} policies settled after {:?}",
        started.elapsed()
    );
    // Let the last status writes and member re-reads pass.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let from = jiff::Timestamp::now();
    tokio::time::sleep(window).await;
    let to = jiff::Timestamp::now();
    let requests: Vec<_> = tokio::task::block_in_place(|| bed.audited(IDENTITY))
        .into_iter()
        .filter(|r| r.cluster != "host" && r.at >= from && r.at < to)
        .collect();
    let probes = requests
        .iter()
        .filter(|r| r.uri.starts_with("/readyz"))
        .count();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| !r.uri.starts_with("/readyz")) {
        *by_kind
            .entry(format!("{} {}", r.verb, r.resource))
            .or_default() += 1;
    }
    let counted: usize = by_kind.values().sum();
    let secs = window.as_secs_f64();
    eprintln!(
        "{policies} policies x {MEMBERS} members at rest, {secs:.0} s: {counted} member requests \
         (n), by verb and resource {by_kind:?}; health probes apart: {probes}"
    );
    bench(
        "scaling_member_requests_per_s",
        counted as f64 / secs,
        "req/s",
    );
    bench(
        "scaling_member_requests_per_policy_member_per_hour",
        counted as f64 / secs * 3600.0 / (policies * MEMBERS) as f64,
        "req",
    );
    let (rss, _) = memory_kb(op.pid())?;
    bench("operator_rss_mb_scaling", rss as f64 / 1024.0, "MB");

    // The namespace goes, and the engine removes the copies.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(host.clone())
        .delete(&ns, &Default::default())
        .await?;
    Ok(())
}
