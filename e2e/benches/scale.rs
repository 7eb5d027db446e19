//! `make bench-scale`: FederatedIngress propagation at scale, isolation from a hung member, the
//! operator's memory and restart time, and what one member's health flip costs, on the test bed
//! grown to 1 host + 10 members (`e2e/bench.sh scale`).
//!
//! Sections, each on its own (a failed one is reported and the next one runs; every BENCH line is
//! printed as soon as its section completes):
//!
//! With only member1..3 joined (MemberClusters member4.. are deleted first), one operator:
//! - `rss3`: 1,000 objects (`BENCH_SCALE_SMALL_OBJECTS`) on member1..3, created by 4 workers;
//!   once settled, `operator_rss_mb_1000_objects_3_members` (VmRSS). Then removed.
//! - `isolation`: 100 background objects on member1..3 (`BENCH_ISOLATION_BACKGROUND`), then 200
//!   single objects (`BENCH_ISOLATION_SAMPLES`) placed on member2 and member3, one every 500 ms
//!   (`BENCH_ISOLATION_INTERVAL_MS`), each timed to its copies on both: first with every member
//!   healthy (`isolation_healthy_p50_ms`/`_p99_ms`), then with member1's API server hung by
//!   SIGSTOP from the moment before the first object (`isolation_p50_ms`/`isolation_p99_ms`).
//!
//! With member1..10 joined (the bed is grown to 10 members like `bench-drift` does), a fresh
//! operator:
//! - `scale`: 10,000 objects (`BENCH_SCALE_OBJECTS`), each placed on all 10 members, created by 4
//!   concurrent workers: `scale_distribution_p50_ms`/`_p99_ms` (per object, the latest over the
//!   members of the first sighting of its copy by a watch, minus the client's time just before its
//!   create) and `scale_all_copies_s` (first create to last copy seen); once settled (every copy
//!   present, no status write or copy change for 10 s, `BENCH_SCALE_QUIET_S`; periodic reconciles that write nothing do not count),
//!   `operator_rss_mb_10k_objects_10_members` (VmRSS, not the peak).
//! - `resync`: SIGKILL the operator and start a new one with every object in place;
//!   `resync_10k_objects_10_members_s` is the time from starting the new process until its
//!   `flotilla_reconciles_total{controller="federatedingress"}` reaches the number of
//!   FederatedIngresses on the host (a reconcile that only defers an object counts too; stderr
//!   says when every member's health was known). Member writes during it are reported on stderr
//!   (expected: 0), and so is the time until it settles.
//! - `flip`: 9 in 10 objects are moved off member1 (placement member2..10), so that 1 in 10 could
//!   be placed on it; after settling, member1's API server is killed until its MemberCluster is
//!   NotReady, then started until it is Ready, and everything settles again.
//!   `health_flip_host_writes` = FederatedIngress status writes (`flotilla_status_writes_total`,
//!   every writer but `membercluster`, whose periodic health refreshes are reported apart) plus
//!   FederatedIngress metadata writes (finalizers, labels, annotations) seen by a host watch.
//!
//! Then everything is deleted and MemberClusters member4..10 are removed again.
//!
//! Trials: `BENCH_SCALE_OBJECTS=300 BENCH_SCALE_SMALL_OBJECTS=100 BENCH_ISOLATION_SAMPLES=20`;
//! `BENCH_SCALE_SECTIONS=scale,resync` runs only some sections. The BENCH names keep their 10k/1000
//! in any case; the object counts are printed on stderr with every figure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flotilla_api::{FederatedIngress, MemberCluster};
use flotilla_e2e::bench::{
    CpuSnapshot, MemberWatch, bench, burst_latencies, clean_up, create_all, create_namespace,
    drop_namespace, env_secs, env_usize, federated_ingress, force_remove, heap_mb, member_names,
    member_ready_is, members_ready, memory_kb, metric_series, metric_where, metrics_delta, ms,
    on_members, remove_leftovers, restore, settle, singles, summarize, wait_all_seen,
    wait_for_object, watch_events, watch_members,
};
use flotilla_e2e::{Operator, OperatorOptions, Outage, TestBed, eventually};
use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const WORKERS: usize = 4;
const SCALE_MEMBERS: usize = 10;
const RECONCILES: &str = "flotilla_reconciles_total";
const FI_CONTROLLER: &str = "controller=\"federatedingress\"";

struct Config {
    objects: usize,
    small_objects: usize,
    isolation_samples: usize,
    isolation_background: usize,
    isolation_interval: Duration,
    quiet: Duration,
    sections: Option<HashSet<String>>,
}

impl Config {
    fn from_env() -> Self {
        let sections = std::env::var("BENCH_SCALE_SECTIONS").ok().map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        });
        Self {
            objects: env_usize("BENCH_SCALE_OBJECTS", 10_000),
            small_objects: env_usize("BENCH_SCALE_SMALL_OBJECTS", 1_000),
            isolation_samples: env_usize("BENCH_ISOLATION_SAMPLES", 200),
            isolation_background: env_usize("BENCH_ISOLATION_BACKGROUND", 100),
            isolation_interval: Duration::from_millis(
                env_usize("BENCH_ISOLATION_INTERVAL_MS", 500) as u64,
            ),
            quiet: env_secs("BENCH_SCALE_QUIET_S", 10),
            sections,
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.as_ref().is_none_or(|s| s.contains(section))
    }

    /// How long to wait for `copies` copies to appear or go (generous: the bed shares two cores).
    fn copies_timeout(copies: usize) -> Duration {
        Duration::from_secs(300 + copies as u64 / 20)
    }
}

fn scrape(op: &Operator) -> String {
    tokio::task::block_in_place(|| op.get("/metrics").unwrap_or_default())
}

#[tokio::main]
async fn main() {
    flotilla_e2e::bench::finish("scale", run().await);
}

async fn run() -> Result<()> {
    let total = Instant::now();
    let cfg = Config::from_env();
    let bed = TestBed::get();
    tokio::task::block_in_place(|| bed.federation());
    let host = bed.client("host").await;
    remove_leftovers(&bed, &host).await?;
    let mut failed: Vec<String> = Vec::new();

    if (cfg.wants("rss3") || cfg.wants("isolation"))
        && let Err(e) = three_members(&bed, &host, &cfg, &mut failed).await
    {
        eprintln!("three-member phase FAILED: {e:#}");
        failed.push("three-member phase".into());
    }
    if (cfg.wants("scale") || cfg.wants("resync") || cfg.wants("flip"))
        && let Err(e) = ten_members(&bed, &host, &cfg, &mut failed).await
    {
        eprintln!("ten-member phase FAILED: {e:#}");
        failed.push("ten-member phase".into());
    }
    eprintln!("total {:.0} s", total.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// member1..3

async fn three_members(
    bed: &TestBed,
    host: &Client,
    cfg: &Config,
    failed: &mut Vec<String>,
) -> Result<()> {
    let operator = tokio::task::block_in_place(|| {
        Operator::start_with(bed, "bench-scale-3", OperatorOptions::default())
    });
    eprintln!(
        "operator pid {} (log {})",
        operator.pid(),
        operator.log.display()
    );
    // Only member1..3 (the MemberCluster finalizer needs the operator running).
    remove_member_clusters(bed, host, 3).await?;
    let three = member_names(3);
    members_ready(host, &three).await?;

    if cfg.wants("rss3") {
        match rss_three(bed, host, &operator, cfg).await {
            Ok(rss_mb) => bench("operator_rss_mb_1000_objects_3_members", rss_mb, "MB"),
            Err(e) => {
                eprintln!("rss3: FAILED: {e:#}");
                failed.push("rss3".into());
            }
        }
    }
    if cfg.wants("isolation") {
        match isolation(bed, host, &operator, cfg).await {
            Ok(()) => {}
            Err(e) => {
                eprintln!("isolation: FAILED: {e:#}");
                failed.push("isolation".into());
            }
        }
    }
    Ok(())
}

/// Deletes the MemberClusters beyond member`keep` and waits until they are gone.
async fn remove_member_clusters(bed: &TestBed, host: &Client, keep: usize) -> Result<()> {
    let api: Api<MemberCluster> = Api::all(host.clone());
    let keep = member_names(keep);
    for mc in api.list_metadata(&ListParams::default()).await?.items {
        let name = mc.metadata.name.unwrap_or_default();
        if keep.contains(&name) {
            continue;
        }
        let out = tokio::task::block_in_place(|| {
            bed.kubectl(
                "host",
                &[
                    "delete",
                    "membercluster",
                    &name,
                    "--ignore-not-found",
                    "--timeout=120s",
                ],
            )
        });
        if !out.status.success() {
            bail!(
                "deleting MemberCluster {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

struct Burst {
    latencies: Vec<f64>,
    all_copies: Duration,
    create_phase: Duration,
}

/// Creates `count` objects named `<prefix>-<i>` with `placement(i)` by [`WORKERS`] workers and
/// waits until every watch has seen every copy.
async fn burst(
    host: &Client,
    namespace: &str,
    watches: &[MemberWatch],
    count: usize,
    prefix: &str,
    placement: impl Fn(usize) -> serde_json::Value,
) -> Result<Burst> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:05}")).collect();
    let objects = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| federated_ingress(namespace, n, placement(i)))
            .collect::<Result<Vec<_>>>()?,
    );
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    let creates = create_all(&api, objects, WORKERS).await?;
    let create_phase = creates.last_returned - creates.phase;
    eprintln!(
        "{prefix}: {count} creates by {WORKERS} workers took {:.1} s ({:.0}/s)",
        create_phase.as_secs_f64(),
        count as f64 / create_phase.as_secs_f64().max(0.001)
    );
    let copies = count * watches.len();
    wait_all_seen(watches, &names, Config::copies_timeout(copies), prefix).await?;
    let (latencies, all_copies) = burst_latencies(watches, &names, &creates)?;
    Ok(Burst {
        latencies,
        all_copies,
        create_phase,
    })
}

async fn rss_three(bed: &TestBed, host: &Client, op: &Operator, cfg: &Config) -> Result<f64> {
    let three = member_names(3);
    let count = cfg.small_objects;
    let namespace = create_namespace(host, "bench-rss3").await?;
    let watches = watch_members(bed, &three, &namespace).await?;
    let result = async {
        let b = burst(host, &namespace, &watches, count, "rss3", |_| {
            on_members(&three)
        })
        .await?;
        let s = summarize(b.latencies)?;
        eprintln!(
            "rss3: {count} objects x 3 members, distribution {}; all copies {:.1} s",
            s.describe("ms"),
            b.all_copies.as_secs_f64()
        );
        let took = settle(
            || scrape(op),
            &watches,
            cfg.quiet,
            Duration::from_secs(600),
            || watches.iter().all(|w| w.with(|v| v.present.len() == count)),
        )
        .await?;
        let (hwm, rss) = memory_kb(op.pid())?;
        let (allocated, resident) = heap_mb(&scrape(op));
        eprintln!("rss3: heap {allocated:.1} MB allocated, {resident:.1} MB resident in the allocator");
        eprintln!(
            "rss3: settled {:.0} s after the last copy; operator VmRSS {:.1} MB (VmHWM {:.1} MB) with {count} objects on 3 members",
            took.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        anyhow::Ok(rss as f64 / 1024.0)
    }
    .await;
    remove(bed, host, &namespace, &watches, count * 3).await;
    result
}

/// Deletes the namespace's objects and waits for their copies to go; falls back to removing
/// them without the operator.
async fn remove(
    bed: &TestBed,
    host: &Client,
    namespace: &str,
    watches: &[MemberWatch],
    copies: usize,
) {
    match clean_up(host, namespace, watches, Config::copies_timeout(copies)).await {
        Ok(took) => eprintln!(
            "{namespace}: cleanup (delete all, copies gone) took {:.1} s",
            took.as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{namespace}: {e:#}; removing the rest without the operator");
            let _ = force_remove(bed, host, namespace).await;
        }
    }
    drop_namespace(bed, namespace).await;
}

async fn isolation(bed: &TestBed, host: &Client, op: &Operator, cfg: &Config) -> Result<()> {
    let three = member_names(3);
    let namespace = create_namespace(host, "bench-isolation").await?;
    let watches = watch_members(bed, &three, &namespace).await?;
    let result = isolation_in(bed, host, op, cfg, &namespace, &watches).await;
    members_ready(host, &three).await?;
    remove(
        bed,
        host,
        &namespace,
        &watches,
        (cfg.isolation_background + 2 * cfg.isolation_samples + 1) * 3,
    )
    .await;
    result
}

async fn isolation_in(
    bed: &TestBed,
    host: &Client,
    op: &Operator,
    cfg: &Config,
    namespace: &str,
    watches: &[MemberWatch],
) -> Result<()> {
    let three = member_names(3);
    let healthy_members = &three[1..];
    let timeout = Duration::from_secs(60);
    // Background objects on every member, member1 included: the hang concerns them.
    if cfg.isolation_background > 0 {
        burst(
            host,
            namespace,
            watches,
            cfg.isolation_background,
            "background",
            |_| on_members(&three),
        )
        .await?;
    }
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    // Warm-up (not measured): the first copy creates the namespace in the members.
    let warmup = federated_ingress(namespace, "warmup", on_members(healthy_members))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &warmup).await?;
    wait_for_object(&watches[1..], "warmup", started, timeout).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let n = cfg.isolation_samples;
    let healthy = singles(
        &api,
        &watches[1..],
        n,
        cfg.isolation_interval,
        timeout,
        |i| {
            federated_ingress(
                namespace,
                &format!("healthy-{i:04}"),
                on_members(healthy_members),
            )
        },
    )
    .await
    .context("healthy")?;
    let healthy = summarize(healthy)?;
    eprintln!(
        "isolation: every member healthy, objects on member2+member3 {} ms apart: {}",
        cfg.isolation_interval.as_millis(),
        healthy.describe("ms")
    );
    bench("isolation_healthy_p50_ms", healthy.p50, "ms");
    bench("isolation_healthy_p99_ms", healthy.p99, "ms");

    let before = scrape(op);
    let mut outage = tokio::task::block_in_place(|| Outage::hang(bed, "member1"));
    let hung_at = Instant::now();
    let hung = singles(
        &api,
        &watches[1..],
        n,
        cfg.isolation_interval,
        timeout,
        |i| {
            federated_ingress(
                namespace,
                &format!("hung-{i:04}"),
                on_members(healthy_members),
            )
        },
    )
    .await;
    let hung_for = hung_at.elapsed();
    let not_ready = member_ready_is(host, "member1", "False")
        .await
        .unwrap_or(false);
    eprintln!(
        "isolation: operator metrics while member1 was hung ({:.0} s; member1 NotReady at the end: {not_ready}): {}",
        hung_for.as_secs_f64(),
        metrics_delta(&before, &scrape(op))
    );
    tokio::task::block_in_place(|| restore(&mut outage))?;
    let hung = summarize(hung.context("member1 hung")?)?;
    eprintln!(
        "isolation: member1 hung (SIGSTOP), objects on member2+member3: {}; p99 {:.2} x the healthy p99",
        hung.describe("ms"),
        hung.p99 / healthy.p99
    );
    bench("isolation_p50_ms", hung.p50, "ms");
    bench("isolation_p99_ms", hung.p99, "ms");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// member1..10

async fn ten_members(
    bed: &TestBed,
    host: &Client,
    cfg: &Config,
    failed: &mut Vec<String>,
) -> Result<()> {
    flotilla_e2e::bench::grow(bed, SCALE_MEMBERS, &[])?;
    let members = member_names(SCALE_MEMBERS);
    let mut operator = tokio::task::block_in_place(|| {
        Operator::start_with(bed, "bench-scale-10", OperatorOptions::default())
    });
    eprintln!(
        "operator pid {} (log {})",
        operator.pid(),
        operator.log.display()
    );
    members_ready(host, &members).await?;
    let namespace = create_namespace(host, "bench-scale").await?;
    let watches = watch_members(bed, &members, &namespace).await?;
    let n = cfg.objects;

    let placed = scale(bed, host, &operator, cfg, &namespace, &watches, failed).await;
    if placed && cfg.wants("resync") {
        match resync(bed, host, &mut operator, cfg, &watches).await {
            Ok(took) => bench("resync_10k_objects_10_members_s", took.as_secs_f64(), "s"),
            Err(e) => {
                eprintln!("resync: FAILED: {e:#}");
                failed.push("resync".into());
            }
        }
    }
    if placed && cfg.wants("flip") {
        match flip(bed, host, &operator, cfg, &namespace, &watches).await {
            Ok(writes) => bench("health_flip_host_writes", writes, "writes"),
            Err(e) => {
                eprintln!("flip: FAILED: {e:#}");
                failed.push("flip".into());
            }
        }
    }
    remove(bed, host, &namespace, &watches, n * SCALE_MEMBERS).await;
    drop(watches);
    // Leave the federation as the other benchmarks expect it: member1..3.
    remove_member_clusters(bed, host, 3).await?;
    drop(operator);
    Ok(())
}

/// Grows the bed to [`SCALE_MEMBERS`] members (as bench-drift does) and joins the new ones.
/// The burst; returns whether every copy got placed (the later sections need them).
async fn scale(
    bed: &TestBed,
    host: &Client,
    op: &Operator,
    cfg: &Config,
    namespace: &str,
    watches: &[MemberWatch],
    failed: &mut Vec<String>,
) -> bool {
    let n = cfg.objects;
    let members = member_names(SCALE_MEMBERS);
    let before = scrape(op);
    let cpu_before = CpuSnapshot::take(bed, op.pid());
    let b = match burst(host, namespace, watches, n, "scale", |_| {
        on_members(&members)
    })
    .await
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("scale: FAILED: {e:#}");
            failed.push("scale".into());
            return false;
        }
    };
    eprintln!(
        "scale: operator metrics until every copy was seen: {}",
        metrics_delta(&before, &scrape(op))
    );
    let cpu_after = CpuSnapshot::take(bed, op.pid());
    eprintln!("scale: {}", cpu_after.describe_since(&cpu_before));
    if cfg.wants("scale") {
        match summarize(b.latencies) {
            Ok(s) => {
                eprintln!(
                    "scale: {n} objects x {SCALE_MEMBERS} members ({} copies): distribution {}; all copies {:.1} s after the first create (creates took {:.1} s)",
                    n * SCALE_MEMBERS,
                    s.describe("ms"),
                    b.all_copies.as_secs_f64(),
                    b.create_phase.as_secs_f64()
                );
                eprintln!("scale: p50 and p99 over n = {} objects", s.n);
                bench("scale_distribution_p50_ms", s.p50, "ms");
                bench("scale_distribution_p99_ms", s.p99, "ms");
                bench("scale_all_copies_s", b.all_copies.as_secs_f64(), "s");
                // What the operator itself spent per copy: the part of the burst that does not
                // depend on how many control planes share this machine's cores.
                bench(
                    "scale_operator_cpu_ms_per_copy",
                    ms(cpu_after.operator_since(&cpu_before)) / (n * SCALE_MEMBERS) as f64,
                    "ms",
                );
            }
            Err(e) => {
                eprintln!("scale: {e:#}");
                failed.push("scale".into());
            }
        }
    }
    match settle(
        || scrape(op),
        watches,
        cfg.quiet,
        Duration::from_secs(900),
        || watches.iter().all(|w| w.with(|v| v.present.len() == n)),
    )
    .await
    {
        Ok(took) => {
            if let Ok((hwm, rss)) = memory_kb(op.pid()) {
                eprintln!(
                    "scale: settled {:.0} s after the last copy; operator VmRSS {:.1} MB (VmHWM {:.1} MB) with {n} objects on {SCALE_MEMBERS} members",
                    took.as_secs_f64(),
                    rss as f64 / 1024.0,
                    hwm as f64 / 1024.0
                );
                let (allocated, resident) = heap_mb(&scrape(op));
                eprintln!(
                    "scale: heap {allocated:.1} MB allocated, {resident:.1} MB resident in the allocator"
                );
                if cfg.wants("scale") {
                    bench(
                        "operator_rss_mb_10k_objects_10_members",
                        rss as f64 / 1024.0,
                        "MB",
                    );
                    bench(
                        "operator_heap_allocated_mb_10k_objects_10_members",
                        allocated,
                        "MB",
                    );
                }
            }
            true
        }
        Err(e) => {
            eprintln!("scale: did not settle: {e:#}");
            failed.push("scale settle".into());
            // The copies are there; resync and flip can still run.
            true
        }
    }
}

async fn resync(
    bed: &TestBed,
    host: &Client,
    operator: &mut Operator,
    cfg: &Config,
    watches: &[MemberWatch],
) -> Result<Duration> {
    let all: Api<FederatedIngress> = Api::all(host.clone());
    let target = all.list_metadata(&ListParams::default()).await?.items.len();
    let events_before = watch_events(watches);
    let modified_before: u64 = watches.iter().map(|w| w.with(|v| v.modified)).sum();
    let removed_before: u64 = watches.iter().map(|w| w.with(|v| v.removed)).sum();
    operator.kill();
    let t0 = Instant::now();
    *operator = tokio::task::block_in_place(|| {
        Operator::start_with(bed, "bench-scale-resync", OperatorOptions::default())
    });
    let ready = t0.elapsed();
    let timeout = Config::copies_timeout(cfg.objects * SCALE_MEMBERS);
    // Counted from the start: reconciles that only defer an object (a member's health not known
    // yet) would count too; the time until the new operator knows every member's health
    // (`flotilla_member_ready` for all) and the reconciles by then are printed on stderr.
    let members = member_names(SCALE_MEMBERS);
    let mut known: Option<(f64, Duration)> = None;
    let took = loop {
        let metrics = scrape(operator);
        let reconciles = metric_where(&metrics, RECONCILES, FI_CONTROLLER);
        if known.is_none() {
            let gauges = metric_series(&metrics, "flotilla_member_ready");
            if members.iter().all(|m| {
                gauges
                    .iter()
                    .any(|(labels, _)| labels == &format!("cluster=\"{m}\""))
            }) {
                known = Some((reconciles, t0.elapsed()));
            }
        }
        if reconciles >= target as f64 {
            break t0.elapsed();
        }
        if t0.elapsed() > timeout {
            bail!("{reconciles} FederatedIngress reconciles of {target} objects after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match known {
        Some((reconciles, at)) => eprintln!(
            "resync: every member's health known {:.1} s after start, after {reconciles:.0} reconciles",
            at.as_secs_f64()
        ),
        None => eprintln!("resync: not every member's health known when the target was reached"),
    }
    let at_target = (watch_events(watches) - events_before, scrape(operator));
    let settled = settle(
        || scrape(operator),
        watches,
        cfg.quiet,
        Duration::from_secs(600),
        || true,
    )
    .await;
    let modified: u64 =
        watches.iter().map(|w| w.with(|v| v.modified)).sum::<u64>() - modified_before;
    let removed: u64 = watches.iter().map(|w| w.with(|v| v.removed)).sum::<u64>() - removed_before;
    eprintln!(
        "resync: {target} FederatedIngresses on the host; new operator ready (/readyz) {:.1} s after start, {target} reconciles counted after {:.1} s; member copy changes seen until then: {}; status writes until then: {:.0}",
        ready.as_secs_f64(),
        took.as_secs_f64(),
        at_target.0,
        metric_where(&at_target.1, "flotilla_status_writes_total", "")
    );
    let after = scrape(operator);
    eprintln!(
        "resync: {} (quiet for {} s): {:.0} reconciles, {:.0} status writes; member copies changed {modified}, removed {removed}",
        match &settled {
            Ok(t) => format!("settled {:.0} s after the target", t.as_secs_f64()),
            Err(e) => format!("did not settle: {e:#}"),
        },
        cfg.quiet.as_secs(),
        metric_where(&after, RECONCILES, FI_CONTROLLER),
        metric_where(&after, "flotilla_status_writes_total", ""),
    );
    Ok(took)
}

/// Counts writes to the FederatedIngresses of one namespace, as a host watch sees them.
struct HostWatch {
    counts: Arc<Mutex<(u64, u64)>>,
    task: tokio::task::JoinHandle<()>,
}

impl HostWatch {
    async fn start(host: &Client, namespace: &str) -> Result<Self> {
        let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
        let counts = Arc::new(Mutex::new((0u64, 0u64)));
        let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, done) = (counts.clone(), synced.clone());
        let task = tokio::spawn(async move {
            // name → (resourceVersion, metadata Flotilla may write)
            let mut known: HashMap<String, (String, String)> = HashMap::new();
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitApply(fi)) => {
                        known.insert(fi.name_any(), identity(&fi));
                    }
                    Ok(watcher::Event::InitDone) => {
                        done.store(true, std::sync::atomic::Ordering::Relaxed)
                    }
                    Ok(watcher::Event::Apply(fi)) => {
                        let (version, meta) = identity(&fi);
                        let old = known.insert(fi.name_any(), (version.clone(), meta.clone()));
                        let mut c = shared.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some((old_version, old_meta)) = old
                            && old_version != version
                        {
                            c.0 += 1;
                            if old_meta != meta {
                                c.1 += 1;
                            }
                        }
                    }
                    Ok(watcher::Event::Delete(fi)) => {
                        known.remove(&fi.name_any());
                    }
                    _ => {}
                }
            }
        });
        eventually("host watch synced", Duration::from_secs(60), || {
            let synced = synced.clone();
            async move {
                Ok(synced
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .then_some(()))
            }
        })
        .await?;
        Ok(Self { counts, task })
    }

    /// (updates, of which metadata changes) so far.
    fn counts(&self) -> (u64, u64) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for HostWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn identity(fi: &FederatedIngress) -> (String, String) {
    let meta = json!({
        "finalizers": fi.metadata.finalizers,
        "labels": fi.metadata.labels,
        "annotations": fi.metadata.annotations,
    });
    (fi.resource_version().unwrap_or_default(), meta.to_string())
}

/// Sums the status writes of every writer but `membercluster`.
fn object_status_writes(metrics: &str) -> f64 {
    metric_series(metrics, "flotilla_status_writes_total")
        .into_iter()
        .filter(|(labels, _)| !labels.contains("membercluster"))
        .map(|(_, v)| v)
        .sum()
}

async fn flip(
    bed: &TestBed,
    host: &Client,
    op: &Operator,
    cfg: &Config,
    namespace: &str,
    watches: &[MemberWatch],
) -> Result<f64> {
    let n = cfg.objects;
    let members = member_names(SCALE_MEMBERS);
    let others = &members[1..];
    let on_member1 = (0..n).filter(|i| i % 10 == 0).count();

    // 9 in 10 objects off member1, by 4 workers.
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    let moved: Vec<String> = (0..n)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("scale-{i:05}"))
        .collect();
    let patch = json!({"spec": {"placement": {"clusters": others}}});
    let moving = Instant::now();
    futures::stream::iter(moved.iter())
        .map(|name| {
            let (api, patch) = (&api, &patch);
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .with_context(|| format!("moving {name} off member1"))
            }
        })
        .buffer_unordered(WORKERS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    settle(
        || scrape(op),
        watches,
        cfg.quiet,
        Config::copies_timeout(moved.len()),
        || watches[0].with(|v| v.present.len() == on_member1),
    )
    .await
    .context("after moving objects off member1")?;
    eprintln!(
        "flip: {} objects moved off member1 and settled in {:.0} s; {on_member1} of {n} objects can be placed on member1",
        moved.len(),
        moving.elapsed().as_secs_f64()
    );

    let host_watch = HostWatch::start(host, namespace).await?;
    let before = scrape(op);
    let t0 = Instant::now();
    let mut outage = tokio::task::block_in_place(|| Outage::kill(bed, "member1"));
    let down = eventually(
        "member1 NotReady",
        Duration::from_secs(180),
        || async move {
            Ok(member_ready_is(host, "member1", "False")
                .await?
                .then_some(()))
        },
    )
    .await;
    let not_ready_after = t0.elapsed();
    tokio::task::block_in_place(|| restore(&mut outage))?;
    down?;
    let t1 = Instant::now();
    eventually("member1 Ready", Duration::from_secs(180), || async move {
        Ok(member_ready_is(host, "member1", "True")
            .await?
            .then_some(()))
    })
    .await?;
    let ready_after = t1.elapsed();
    let settled = settle(
        || scrape(op),
        watches,
        cfg.quiet,
        Duration::from_secs(900),
        || watches[0].with(|v| v.present.len() == on_member1),
    )
    .await;
    let after = scrape(op);
    let (updates, metadata_updates) = host_watch.counts();
    let status_writes = object_status_writes(&after) - object_status_writes(&before);
    let per_writer: Vec<String> = metric_series(&after, "flotilla_status_writes_total")
        .into_iter()
        .map(|(labels, v)| {
            let was = metric_series(&before, "flotilla_status_writes_total")
                .into_iter()
                .find(|(l, _)| *l == labels)
                .map(|(_, v)| v)
                .unwrap_or(0.0);
            format!("{labels}: {:.0}", v - was)
        })
        .collect();
    eprintln!(
        "flip: member1 NotReady {:.1} s after its API server was killed, Ready {:.1} s after it was started; {}",
        not_ready_after.as_secs_f64(),
        ready_after.as_secs_f64(),
        match &settled {
            Ok(t) => format!("settled {:.0} s later", t.as_secs_f64()),
            Err(e) => format!("did not settle: {e:#}"),
        }
    );
    eprintln!(
        "flip: with {n} objects, {on_member1} of them placeable on member1: status writes per writer [{}]; FederatedIngress updates seen by a host watch {updates} (metadata {metadata_updates}); operator metrics: {}",
        per_writer.join(", "),
        metrics_delta(&before, &after)
    );
    settled?;
    Ok(status_writes + metadata_updates as f64)
}
