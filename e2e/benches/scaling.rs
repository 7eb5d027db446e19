//! `make bench-scaling`: how fast a ScalingPolicy reacts to a metric. Each round changes the
//! value in the Pushgateway, waits until Prometheus returns it (t0: the change is visible to any
//! query), then polls the Deployment in every member until each has its new share (t1). Prints
//! `BENCH scaling_reaction_p50_ms` and `BENCH scaling_reaction_p99_ms` (nearest rank) over the
//! rounds (`FLOTILLA_BENCH_ROUNDS`, default 50).
//!
//! The policy has no stabilization window and permissive rate limits, so every change is written
//! at the next poll: the reaction is the wait for the operator's next poll (period 1 s; changes
//! land at uniformly spread points of it, see the scrape interval below) plus one Prometheus
//! query and the member writes. Three members, equal weights; every round changes every
//! member's share. t0 is when the benchmark's own query (every 10 ms) first sees the value, so
//! the reaction can be under-measured by up to that poll.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::prometheus::PrometheusStack;
use flotilla_e2e::{Operator, OperatorOptions, TestBed};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;

const METRIC: &str = "bench_load";
/// Totals cycled through: shares (total / 3) 2, 4, 3, 1, 5, so every member changes each round.
const TOTALS: [i32; 5] = [6, 12, 9, 3, 15];

/// A small xorshift generator: random pauses without a dependency.
struct Rng(u64);

impl Rng {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let rounds: usize = std::env::var("FLOTILLA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bed = TestBed::get();
    bed.federation();
    // Prometheus scrapes every 1.37 s, the operator polls every 1 s: incommensurate, so the
    // moments values become visible sweep over the operator's poll phase instead of locking
    // onto one offset (which a 1 s scrape would, making the result depend on start-up luck).
    let prom = PrometheusStack::start_with_scrape_interval("1370ms");
    let _op = Operator::start_with(
        &bed,
        "bench-scaling",
        OperatorOptions {
            extra_env: vec![("FLOTILLA_PROMETHEUS_URL".into(), prom.url())],
            ..OperatorOptions::default()
        },
    );
    let ns = bed.namespace("bench-sp");
    // Three members, whatever the test bed holds (`make bench-drift` grows it to ten).
    let members: Vec<String> = bed.members().into_iter().take(3).collect();
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string();
    bed.apply("host", &namespace);
    for m in &members {
        bed.apply(m, &namespace);
        bed.apply(
            m,
            &json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}
                }
            })
            .to_string(),
        );
    }
    prom.set(&ns, METRIC, 30.0);
    bed.apply(
        "host",
        &json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "placement": {
                    "clusters": members,
                    "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}
                },
                "minReplicas": 1, "maxReplicas": 100,
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": METRIC},
                    "prometheus": {"query": format!(r#"sum({METRIC}{{job="{ns}"}})"#)},
                    "target": {"type": "AverageValue", "averageValue": "10"}
                }}],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [
                        {"type": "Percent", "value": 1000, "periodSeconds": 1}, {"type": "Pods", "value": 100, "periodSeconds": 1}]},
                    "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}
                }
            }
        })
        .to_string(),
    );
    let apis: Vec<Api<Deployment>> = rt.block_on(async {
        let mut apis = Vec::new();
        for m in &members {
            apis.push(Api::namespaced(bed.client(m).await, &ns));
        }
        apis
    });
    let shares = |apis: &[Api<Deployment>]| {
        rt.block_on(async {
            let reads = apis.iter().map(|api| async move {
                api.get("web")
                    .await
                    .ok()
                    .and_then(|d| d.spec)
                    .and_then(|s| s.replicas)
            });
            futures::future::join_all(reads).await
        })
    };
    let wait_shares = |want: i32, limit: Duration| -> Instant {
        let start = Instant::now();
        loop {
            let now = shares(&apis);
            if now.iter().all(|r| *r == Some(want)) {
                return Instant::now();
            }
            assert!(
                start.elapsed() < limit,
                "members never reached {want} each: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let per_member = |total: i32| total / members.len() as i32;
    wait_shares(per_member(3), Duration::from_secs(60));

    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let total = TOTALS[round % TOTALS.len()] * members.len() as i32 / 3;
        std::thread::sleep(Duration::from_millis(rng.next_millis(1000)));
        let visible = prom.set(&ns, METRIC, f64::from(total) * 10.0);
        let written = wait_shares(per_member(total), Duration::from_secs(30));
        let took = written.duration_since(visible);
        eprintln!(
            "round {round}: total {total} written in every member {} ms after it was visible",
            took.as_millis()
        );
        samples.push(took.as_millis());
    }
    bed.kubectl("host", &["delete", "namespace", &ns, "--wait=false"]);
    for m in &members {
        bed.kubectl(m, &["delete", "namespace", &ns, "--wait=false"]);
    }
    samples.sort_unstable();
    let mean = samples.iter().sum::<u128>() / samples.len() as u128;
    eprintln!(
        "scaling reaction over {rounds} changes: min {} ms, mean {mean} ms, max {} ms",
        samples[0],
        samples[samples.len() - 1]
    );
    println!(
        "BENCH scaling_reaction_p50_ms {} ms",
        percentile(&samples, 50.0)
    );
    println!(
        "BENCH scaling_reaction_p99_ms {} ms",
        percentile(&samples, 99.0)
    );
}
