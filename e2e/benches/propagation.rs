//! Propagation benchmark on the local test bed: how fast FederatedIngress copies reach the
//! members (a burst of 1,000 and single objects at rest), the operator's peak memory with 1,000
//! objects placed, and how long failover takes when a placed member's API server is killed.
//!
//! Run with the test bed up and the operator built (`cargo build -p flotilla-operator`):
//!
//! ```text
//! FLOTILLA_KUBECONFIG=/tmp/bench-bed/kubeconfig FLOTILLA_STATE=/tmp/bench-bed FLOTILLA_PORT_BASE=39000 \
//!     cargo bench -p flotilla-e2e --bench propagation
//! ```
//!
//! Sections, in this order on one operator: 200 single objects at rest, 1 s apart
//! (`BENCH_SINGLE_OBJECTS`), 30 failovers (kill member1's API server; `BENCH_FAILOVER_ROUNDS`),
//! then a burst of 1,000 objects (with the operator's peak memory) and its cleanup. Prints `BENCH <name> <value> <unit>` lines on stdout (whatever completed, also when a
//! later section fails) and a human summary per section on stderr. Set `BENCH_PROPAGATION_DUMP`
//! to a path to get the burst's per-object timings as CSV.
//! Every copy is timed by a watch on its member (label `app.kubernetes.io/managed-by=flotilla`,
//! one namespace per section) started before the objects are created; an object's latency is the
//! latest of its copies' first sighting minus the client's time just before its create call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flotilla_api::FederatedIngress;
use flotilla_e2e::bench::{
    MemberWatch, Summary, clean_up, cpu_time, create_all, create_namespace, drop_namespace,
    env_usize, federated_ingress, force_remove, log_lines_with, members_ready, memory_kb,
    metrics_delta, ms, object_latency, open_files, remove_leftovers, restore,
    singles as singles_at_rest, summarize, wait_all_seen, wait_for_object, watch_members,
};
use flotilla_e2e::{Operator, OperatorOptions, Outage, TestBed, eventually, repo_root};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const MEMBERS: [&str; 3] = ["member1", "member2", "member3"];
const BURST_OBJECTS: usize = 1000;
const BURST_WORKERS: usize = 4;
const BURST_TIMEOUT: Duration = Duration::from_secs(300);
/// Single objects at rest (`BENCH_SINGLE_OBJECTS`): at least 200, so that the p99 is not the
/// maximum.
const SINGLE_OBJECTS: usize = 200;
const SINGLE_INTERVAL: Duration = Duration::from_secs(1);
const SINGLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Kills of member1 (`BENCH_FAILOVER_ROUNDS`); each sample is a kill and a recovery, so 30 of
/// them give a p50, a p90 and a maximum, not a p99.
const FAILOVER_ROUNDS: usize = 30;
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const FAILBACK_TIMEOUT: Duration = Duration::from_secs(90);
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// helpers

/// All three members; member3's NoSchedule taint is tolerated.
fn three_members() -> Value {
    json!({
        "clusters": MEMBERS,
        "constraints": {"tolerations": [
            {"key": "flotilla.dev/cost-tier", "operator": "Exists", "effect": "NoSchedule"}]},
    })
}

fn active_passive() -> Value {
    json!({
        "clusters": ["member1", "member2"],
        "constraints": {"maxClusters": 1},
        "failoverPriority": [{"name": "primary", "clusters": ["member1"]}, {"name": "backup", "clusters": ["member2"]}],
        "failback": {"mode": "Automatic", "stabilizationSeconds": 2},
    })
}

// ---------------------------------------------------------------------------------------------
// sections

struct Burst {
    latencies: Summary,
    tail: Duration,
    create_phase: Duration,
    placed_at: Duration,
    hwm_kb: u64,
    rss_kb: u64,
    sampled_peak_kb: u64,
    peak_fds: usize,
    operator_cpu: Duration,
    /// The burst's namespace and its watches, for the cleanup.
    namespace: String,
    watches: Vec<MemberWatch>,
}

/// Creates the burst and measures it; the objects stay (see `Burst::namespace`).
async fn burst(bed: &TestBed, host: &Client, operator_pid: u32) -> Result<Burst> {
    let namespace = create_namespace(host, "bench-burst").await?;
    let watches = watch_members(bed, &MEMBERS, &namespace).await?;
    let names: Vec<String> = (0..BURST_OBJECTS).map(|i| format!("fi-{i:04}")).collect();
    let objects = Arc::new(
        names
            .iter()
            .map(|n| federated_ingress(&namespace, n, three_members()))
            .collect::<Result<Vec<_>>>()?,
    );

    // Sample the operator's RSS while the burst runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampled_peak = Arc::new(AtomicU64::new(0));
    let peak_fds = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, sampled_peak, peak_fds) =
            (sampling.clone(), sampled_peak.clone(), peak_fds.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok((_, rss)) = memory_kb(operator_pid) {
                    sampled_peak.fetch_max(rss, Ordering::Relaxed);
                }
                peak_fds.fetch_max(open_files(operator_pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // One client, four workers taking the next object as soon as their create returns.
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), &namespace);
    let cpu_before = cpu_time(operator_pid)?;
    let creates = create_all(&api, objects, BURST_WORKERS).await?;
    let (phase, started, last_create_returned) =
        (creates.phase, creates.started, creates.last_returned);
    let create_phase = last_create_returned - phase;
    eprintln!(
        "burst: {BURST_OBJECTS} creates by {BURST_WORKERS} workers took {:.0} ms ({:.0}/s)",
        ms(create_phase),
        BURST_OBJECTS as f64 / create_phase.as_secs_f64()
    );

    // Wait for every copy on every member.
    if let Err(e) = wait_all_seen(&watches, &names, BURST_TIMEOUT, "burst").await {
        sampling.store(false, Ordering::Relaxed);
        return Err(e);
    }
    let placed_at = phase.elapsed();
    let (hwm_kb, rss_kb) = memory_kb(operator_pid)?;
    let operator_cpu = cpu_time(operator_pid)?.saturating_sub(cpu_before);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;

    let mut latencies = Vec::with_capacity(BURST_OBJECTS);
    let mut last_seen = phase;
    for (name, start) in names.iter().zip(&started) {
        let latency = object_latency(&watches, name, *start)
            .ok_or_else(|| anyhow!("{name}: copy not seen"))?;
        latencies.push(ms(latency));
        for w in &watches {
            if let Some(seen) = w.with(|v| v.first_seen.get(name).copied()) {
                last_seen = last_seen.max(seen);
            }
        }
    }
    let tail = last_seen.saturating_duration_since(last_create_returned);
    let removed: Vec<(String, u64)> = watches
        .iter()
        .map(|w| (w.member.clone(), w.with(|v| v.removed)))
        .collect();
    eprintln!("burst: copies seen removed while the burst ran, per member: {removed:?}");
    if let Some(path) = std::env::var_os("BENCH_PROPAGATION_DUMP") {
        dump(&path, &names, &started, phase, &watches)?;
        eprintln!(
            "burst: per-object timings written to {}",
            path.to_string_lossy()
        );
    }
    Ok(Burst {
        latencies: summarize(latencies)?,
        tail,
        create_phase,
        placed_at,
        hwm_kb,
        rss_kb,
        sampled_peak_kb: sampled_peak.load(Ordering::Relaxed),
        peak_fds: peak_fds.load(Ordering::Relaxed),
        operator_cpu,
        namespace,
        watches,
    })
}

/// Writes one CSV line per object: its create start and each member's first sighting, in ms
/// from the start of the burst.
fn dump(
    path: &std::ffi::OsStr,
    names: &[String],
    started: &[Instant],
    phase: Instant,
    watches: &[MemberWatch],
) -> Result<()> {
    use std::fmt::Write as _;
    let mut csv = String::from("name,create_start_ms");
    for w in watches {
        write!(csv, ",{}_seen_ms", w.member)?;
    }
    csv.push('\n');
    for (name, start) in names.iter().zip(started) {
        write!(csv, "{name},{:.1}", ms(*start - phase))?;
        for w in watches {
            let seen = w.with(|v| v.first_seen.get(name).copied());
            write!(
                csv,
                ",{}",
                seen.map(|t| format!("{:.1}", ms(t - phase)))
                    .unwrap_or_default()
            )?;
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).context("writing the dump")
}

async fn singles(bed: &TestBed, host: &Client) -> Result<(Summary, Duration)> {
    let namespace = create_namespace(host, "bench-single").await?;
    let watches = watch_members(bed, &MEMBERS, &namespace).await?;
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), &namespace);

    // A warm-up object, not measured: the operator creates the namespace in each member with
    // the first copy, a one-time cost that does not belong to a steady-state latency.
    let warmup = federated_ingress(&namespace, "warmup", three_members())?;
    let started = Instant::now();
    api.create(&PostParams::default(), &warmup)
        .await
        .context("creating the warm-up object")?;
    let warmup_latency = wait_for_object(&watches, "warmup", started, SINGLE_TIMEOUT)
        .await
        .context("single")?;
    tokio::time::sleep(SINGLE_INTERVAL).await;

    let count = env_usize("BENCH_SINGLE_OBJECTS", SINGLE_OBJECTS);
    let latencies = singles_at_rest(
        &api,
        &watches,
        count,
        SINGLE_INTERVAL,
        SINGLE_TIMEOUT,
        |i| federated_ingress(&namespace, &format!("single-{i:03}"), three_members()),
    )
    .await
    .context("single")?;
    clean_up(host, &namespace, &watches, CLEANUP_TIMEOUT).await?;
    drop(watches);
    drop_namespace(bed, &namespace).await;
    Ok((summarize(latencies)?, warmup_latency))
}

async fn copy_exists(client: &Client, namespace: &str, name: &str) -> Result<bool> {
    Ok(Api::<Ingress>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .is_some())
}

async fn failover(bed: &TestBed, host: &Client) -> Result<(Summary, Summary)> {
    let namespace = create_namespace(host, "bench-failover").await?;
    let member1 = bed.client("member1").await;
    let member2 = bed.client("member2").await;
    let watch2 = MemberWatch::start(bed, "member2", &namespace).await?;
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), &namespace);
    let name = "app";
    api.create(
        &PostParams::default(),
        &federated_ingress(&namespace, name, active_passive())?,
    )
    .await
    .context("creating the failover object")?;

    let mut failovers = Vec::new();
    let mut failbacks = Vec::new();
    let rounds = env_usize("BENCH_FAILOVER_ROUNDS", FAILOVER_ROUNDS);
    for round in 1..=rounds {
        // The copy on member1 only (as seen by a GET on each and by the member2 watch).
        eventually(
            &format!("round {round}: copy on member1 only"),
            FAILBACK_TIMEOUT,
            || {
                let (member1, member2, watch2) = (&member1, &member2, &watch2);
                let ns = &namespace;
                async move {
                    let on1 = copy_exists(member1, ns, name).await?;
                    let on2 = copy_exists(member2, ns, name).await?
                        || watch2.with(|v| v.present.contains(name));
                    Ok((on1 && !on2).then_some(()))
                }
            },
        )
        .await?;
        members_ready(host, &MEMBERS).await?;

        let t0 = Instant::now();
        let mut outage = tokio::task::block_in_place(|| Outage::kill(bed, "member1"));
        let killed = t0.elapsed();
        let t1 = loop {
            let appeared = watch2.with(|v| v.appeared.get(name).copied().filter(|at| *at > t0));
            if let Some(t1) = appeared {
                break t1;
            }
            if t0.elapsed() > FAILOVER_TIMEOUT {
                let status = api.get(name).await.ok().and_then(|fi| fi.status);
                bail!(
                    "round {round}: no copy on member2 {FAILOVER_TIMEOUT:?} after killing member1; status: {status:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let failover = t1 - t0;
        failovers.push(ms(failover));

        let restoring = Instant::now();
        tokio::task::block_in_place(|| restore(&mut outage))?;
        let restored = restoring.elapsed();
        let back = Instant::now();
        eventually(
            &format!("round {round}: failback to member1"),
            FAILBACK_TIMEOUT,
            || {
                let (member1, member2) = (&member1, &member2);
                let ns = &namespace;
                async move {
                    let on1 = copy_exists(member1, ns, name).await.unwrap_or(false);
                    let on2 = copy_exists(member2, ns, name).await?;
                    Ok((on1 && !on2).then_some(()))
                }
            },
        )
        .await?;
        let failback = back.elapsed();
        failbacks.push(ms(failback));
        eprintln!(
            "failover round {round:2}: {:7.1} ms (kill command {:.0} ms); restore command {:.0} ms, failback {:.0} ms after",
            ms(failover),
            ms(killed),
            ms(restored),
            ms(failback)
        );
    }
    clean_up(
        host,
        &namespace,
        std::slice::from_ref(&watch2),
        CLEANUP_TIMEOUT,
    )
    .await?;
    drop(watch2);
    drop_namespace(bed, &namespace).await;
    Ok((summarize(failovers)?, summarize(failbacks)?))
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    flotilla_e2e::bench::finish("propagation", run().await);
}

async fn run() -> Result<()> {
    let total = Instant::now();
    let bed = TestBed::get();
    std::fs::create_dir_all(repo_root().join("e2e/.state"))?;
    tokio::task::block_in_place(|| bed.federation());
    remove_leftovers(&bed, &bed.client("host").await).await?;
    let operator = tokio::task::block_in_place(|| {
        Operator::start_with(&bed, "bench-propagation", OperatorOptions::default())
    });
    eprintln!(
        "operator pid {} (log {})",
        operator.pid(),
        operator.log.display()
    );
    let host = bed.client("host").await;
    members_ready(&host, &MEMBERS).await?;
    // (position in the output, line): printed in this order at the end, whatever completed.
    let mut lines: Vec<(u8, String)> = Vec::new();

    let mut cleanup_failed = None;
    let mut failed: Vec<&str> = Vec::new();
    let result: Result<()> = async {
        // Single objects first: the operator is fresh and idle. A failed section is reported
        // and the next one runs.
        match singles(&bed, &host).await {
            Ok((single, warmup)) => {
                eprintln!(
                    "single: objects {} ms apart, on 3 members: {} (warm-up object, not counted: {:.1} ms)",
                    SINGLE_INTERVAL.as_millis(), single.describe("ms"), ms(warmup)
                );
                lines.push((4, format!("BENCH distribution_single_p50_ms {:.1} ms", single.p50)));
                lines.push((5, format!("BENCH distribution_single_p99_ms {:.1} ms", single.p99)));
            }
            Err(e) => {
                eprintln!("single: FAILED: {e:#}");
                failed.push("single");
            }
        }

        // Failover next, on the quiet system (before the burst and its aftermath). Each sample
        // is a kill and a recovery: a p50, a p90 and the maximum, no p99.
        tokio::time::sleep(Duration::from_secs(2)).await;
        match failover(&bed, &host).await {
            Ok((fo, fb)) => {
                eprintln!(
                    "failover: kills of member1: {}; failback after restore: {}",
                    fo.describe("ms"), fb.describe("ms")
                );
                lines.push((6, format!("BENCH failover_p50_ms {:.1} ms", fo.p50)));
                lines.push((7, format!("BENCH failover_p90_ms {:.1} ms", fo.p90)));
                lines.push((8, format!("BENCH failover_max_ms {:.1} ms", fo.max)));
            }
            Err(e) => {
                eprintln!("failover: FAILED: {e:#}");
                failed.push("failover");
            }
        }

        tokio::time::sleep(Duration::from_secs(2)).await;
        let (hwm_kb, rss_kb) = memory_kb(operator.pid())?;
        eprintln!(
            "operator memory before the burst: VmHWM {:.1} MB, VmRSS {:.1} MB, {} open files",
            hwm_kb as f64 / 1024.0,
            rss_kb as f64 / 1024.0,
            open_files(operator.pid())
        );

        let flaps = |op: &Operator| log_lines_with(&op.log, &["member health changed", "ready=false"]);
        let conflicts = |op: &Operator| log_lines_with(&op.log, &["reconcile failed", "Conflict"]);
        let bulk = |op: &Operator| log_lines_with(&op.log, &["bulk reconcile requested"]);
        let before = (flaps(&operator), conflicts(&operator), bulk(&operator));
        let scrape = || tokio::task::block_in_place(|| operator.get("/metrics").unwrap_or_default());
        let metrics_before = scrape();
        let b = burst(&bed, &host, operator.pid()).await;
        eprintln!("burst: operator metrics: {}", metrics_delta(&metrics_before, &scrape()));
        eprintln!(
            "burst: operator log until every copy was seen (or the timeout): {} member NotReady transitions, {} reconciles failed on a 409 Conflict, {} log lines from bulk reconciles",
            flaps(&operator) - before.0,
            conflicts(&operator) - before.1,
            bulk(&operator) - before.2
        );
        let b = b?;
        eprintln!(
            "burst: {} objects x 3 members: min {:.1} / p50 {:.1} / p99 {:.1} / max {:.1} ms; tail {:.1} ms; creates {:.0} ms; all placed {:.0} ms after the first create",
            b.latencies.n, b.latencies.min, b.latencies.p50, b.latencies.p99, b.latencies.max, ms(b.tail),
            ms(b.create_phase), ms(b.placed_at)
        );
        eprintln!(
            "burst: operator used {:.1} s of CPU from the first create until every copy was seen",
            b.operator_cpu.as_secs_f64()
        );
        eprintln!(
            "operator memory with {BURST_OBJECTS} objects placed: VmHWM {:.1} MB, VmRSS {:.1} MB, sampled peak RSS {:.1} MB; peak open files (sockets included) {}",
            b.hwm_kb as f64 / 1024.0, b.rss_kb as f64 / 1024.0, b.sampled_peak_kb as f64 / 1024.0, b.peak_fds
        );
        lines.push((0, format!("BENCH distribution_p50_ms {:.1} ms", b.latencies.p50)));
        lines.push((1, format!("BENCH distribution_p99_ms {:.1} ms", b.latencies.p99)));
        lines.push((2, format!("BENCH distribution_burst_tail_ms {:.1} ms", ms(b.tail))));
        lines.push((3, format!("BENCH operator_rss_mb_1000_objects {:.1} MB", b.hwm_kb as f64 / 1024.0)));

        match clean_up(&host, &b.namespace, &b.watches, CLEANUP_TIMEOUT).await {
            Ok(took) => {
                eprintln!("burst: cleanup (delete all, copies gone) took {:.0} ms", ms(took));
                drop_namespace(&bed, &b.namespace).await;
            }
            Err(e) => {
                // Reported at the end; drop what is left so that the test bed is clean.
                eprintln!("burst: {e:#}; removing the rest without the operator");
                cleanup_failed = Some(e);
                force_remove(&bed, &host, &b.namespace).await?;
            }
        }
        drop(b.watches);

        Ok(())
    }
    .await;

    lines.sort();
    for (_, line) in &lines {
        println!("{line}");
    }
    eprintln!(
        "total {:.0} s; operator log {}",
        total.elapsed().as_secs_f64(),
        operator.log.display()
    );
    drop(operator);
    result?;
    if let Some(e) = cleanup_failed {
        return Err(e);
    }
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}
