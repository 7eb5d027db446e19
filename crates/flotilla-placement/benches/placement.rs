//! Placement benchmarks.
//!
//! Criterion measures the two scenarios of the tracker issue, then a plain median-of-N timing
//! loop prints them in the form `make bench` collects:
//!
//! ```text
//! BENCH placement_decide_5000_clusters_us <value> us
//! BENCH placement_10000_policies_100_clusters_ms <value> ms
//! ```
//!
//! The inputs are generated deterministically (a fixed-seed xorshift), so runs are comparable.
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use flotilla_placement::{
    ClusterInfo, Decision, DecisionInput, Health, LabelSelector, PlacementSpec, PreviousDecision,
    PriorityGroup, ReplicaPreference, ReplicaRequest, SelectorOperator, SpreadConstraint, Taint,
    TaintEffect, Timestamp, Toleration, TolerationOperator, decide,
};

const REGION: &str = "topology.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGIONS: [&str; 8] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-south",
    "ap-east",
    "sa-east",
    "af-south",
];
const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// A tiny deterministic generator, so the benchmark needs no RNG crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A fleet: 8 regions, 3 zones each, a tier label, 5% unhealthy, 3% tainted, some recently
/// recovered.
fn fleet(n: usize, rng: &mut XorShift) -> Vec<ClusterInfo> {
    (0..n)
        .map(|i| {
            let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
            let zone = format!("{region}-{}", ["a", "b", "c"][rng.below(3) as usize]);
            let tier = ["gold", "silver", "bronze"][rng.below(3) as usize];
            let ready = rng.below(100) >= 5;
            let since_ms = rng.below(3_600_000);
            let mut c = ClusterInfo::new(format!("member-{i:05}"))
                .with_label(REGION, region)
                .with_label(ZONE, zone)
                .with_label("tier", tier)
                .with_health(Health {
                    ready,
                    since: Timestamp::from_unix_millis(NOW.as_unix_millis() - since_ms),
                });
            if rng.below(100) < 3 {
                let effect = if rng.below(2) == 0 {
                    TaintEffect::NoSchedule
                } else {
                    TaintEffect::NoExecute
                };
                c = c.with_taint(Taint::new("flotilla.dev/maintenance", "true", effect));
            }
            c
        })
        .collect()
}

/// A policy exercising every rule: selector, failover groups by selector, max clusters, spread,
/// tolerations. `variant` varies it so that many policies are not all the same.
fn policy(variant: u64) -> PlacementSpec {
    let home = REGIONS[(variant % REGIONS.len() as u64) as usize];
    let backup = REGIONS[((variant + 3) % REGIONS.len() as u64) as usize];
    let mut spec = PlacementSpec {
        cluster_selector: Some(LabelSelector::default().with_expression(
            "tier",
            SelectorOperator::NotIn,
            ["bronze"],
        )),
        failover_priority: vec![
            PriorityGroup::of_selector(LabelSelector::from_labels([(REGION, home)])),
            PriorityGroup::of_selector(LabelSelector::from_labels([(REGION, backup)])),
        ],
        ..PlacementSpec::default()
    };
    match variant % 4 {
        0 => {
            spec.constraints.max_clusters = Some(6);
            spec.constraints.spread = vec![SpreadConstraint::new(REGION, Some(2), Some(3))];
        }
        1 => spec.constraints.max_clusters = Some(3),
        2 => spec.constraints.spread = vec![SpreadConstraint::new(ZONE, Some(1), None)],
        _ => spec.failover_priority.clear(),
    }
    spec.constraints.tolerations = vec![Toleration {
        key: Some("flotilla.dev/maintenance".into()),
        operator: TolerationOperator::Exists,
        effect: Some(TaintEffect::NoSchedule),
        value: None,
    }];
    spec
}

/// The previous decision of a policy: decided once, fed back.
fn settle(
    spec: &PlacementSpec,
    clusters: &[ClusterInfo],
    replicas: Option<&ReplicaRequest>,
) -> PreviousDecision {
    let earlier = Timestamp::from_unix_millis(NOW.as_unix_millis() - 600_000);
    run(
        spec,
        clusters,
        &PreviousDecision::default(),
        earlier,
        replicas,
    )
    .to_previous()
}

fn run(
    spec: &PlacementSpec,
    clusters: &[ClusterInfo],
    previous: &PreviousDecision,
    now: Timestamp,
    replicas: Option<&ReplicaRequest>,
) -> Decision {
    match decide(&DecisionInput {
        spec,
        clusters,
        previous,
        now,
        replicas,
        namespace: None,
    }) {
        Ok(d) => d,
        Err(e) => panic!("benchmark spec is invalid: {e}"),
    }
}

/// Scenario 1: one decision over 5,000 clusters (with replica division).
struct Large {
    clusters: Vec<ClusterInfo>,
    spec: PlacementSpec,
    previous: PreviousDecision,
    replicas: ReplicaRequest,
}

impl Large {
    fn new() -> Self {
        let mut rng = XorShift(0x5eed_0001);
        let clusters = fleet(5_000, &mut rng);
        let spec = policy(0);
        let replicas = ReplicaRequest::new(60).with_preference(
            ReplicaPreference::weighted("member-00001", 3).bounded(Some(2), Some(20)),
        );
        let previous = settle(&spec, &clusters, Some(&replicas));
        Self {
            clusters,
            spec,
            previous,
            replicas,
        }
    }

    fn once(&self) -> Decision {
        run(
            black_box(&self.spec),
            black_box(&self.clusters),
            black_box(&self.previous),
            NOW,
            Some(&self.replicas),
        )
    }
}

/// Scenario 2: 10,000 policies, each decided over the same 100 clusters.
struct Many {
    clusters: Vec<ClusterInfo>,
    policies: Vec<(PlacementSpec, PreviousDecision)>,
}

impl Many {
    fn new() -> Self {
        let mut rng = XorShift(0x5eed_0002);
        let clusters = fleet(100, &mut rng);
        let policies = (0..10_000)
            .map(|i| {
                let spec = policy(i);
                let previous = settle(&spec, &clusters, None);
                (spec, previous)
            })
            .collect();
        Self { clusters, policies }
    }

    fn once(&self) -> usize {
        self.policies
            .iter()
            .map(|(spec, previous)| {
                run(
                    black_box(spec),
                    &self.clusters,
                    black_box(previous),
                    NOW,
                    None,
                )
                .selected
                .len()
            })
            .sum()
    }
}

/// Median wall time of `runs` calls.
fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    let large = Large::new();
    let many = Many::new();

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20)
        .configure_from_args();
    criterion.bench_function("placement_decide_5000_clusters", |b| {
        b.iter(|| large.once())
    });
    criterion.bench_function("placement_10000_policies_100_clusters", |b| {
        b.iter(|| many.once())
    });
    criterion.final_summary();

    // `cargo test --benches` runs this binary without `--bench`: a smoke run is enough there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let decide_5000 = median(1001, || large.once());
    let policies_10000 = median(9, || many.once());
    println!(
        "BENCH placement_decide_5000_clusters_us {:.1} us",
        decide_5000.as_secs_f64() * 1e6
    );
    println!(
        "BENCH placement_10000_policies_100_clusters_ms {:.1} ms",
        policies_10000.as_secs_f64() * 1e3
    );
}
