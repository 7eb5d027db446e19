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
//! Sections, in this order on one operator: 20 single objects at rest, 10 failovers (kill
//! member1's API server), then a burst of 1,000 objects (with the operator's peak memory) and its
//! cleanup. Prints `BENCH <name> <value> <unit>` lines on stdout (whatever completed, also when a
//! later section fails) and a human summary per section on stderr. Set `BENCH_PROPAGATION_DUMP`
//! to a path to get the burst's per-object timings as CSV.
//! Every copy is timed by a watch on its member (label `app.kubernetes.io/managed-by=flotilla`,
//! one namespace per section) started before the objects are created; an object's latency is the
//! latest of its copies' first sighting minus the client's time just before its create call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flotilla_api::{FederatedIngress, MemberCluster};
use flotilla_e2e::{Operator, OperatorOptions, Outage, TestBed, eventually, repo_root};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const MEMBERS: [&str; 3] = ["member1", "member2", "member3"];
const MANAGED: &str = "app.kubernetes.io/managed-by=flotilla";
const BURST_OBJECTS: usize = 1000;
const BURST_WORKERS: usize = 4;
const BURST_TIMEOUT: Duration = Duration::from_secs(300);
const SINGLE_OBJECTS: usize = 20;
const SINGLE_INTERVAL: Duration = Duration::from_secs(2);
const SINGLE_TIMEOUT: Duration = Duration::from_secs(30);
const FAILOVER_ROUNDS: usize = 10;
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const FAILBACK_TIMEOUT: Duration = Duration::from_secs(90);
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// member watches

/// What one member watch has seen of the copies in its namespace.
#[derive(Default)]
struct View {
    /// Copies that currently exist.
    present: HashSet<String>,
    /// When each copy was first seen (kept if it goes away and comes back).
    first_seen: HashMap<String, Instant>,
    /// When each copy was last seen appearing (going from absent to present).
    appeared: HashMap<String, Instant>,
    /// Names listed during a relist in progress.
    relisting: Option<HashSet<String>>,
    synced: bool,
    /// Copies seen going away.
    removed: u64,
    errors: u64,
    last_error: Option<String>,
}

impl View {
    fn seen(&mut self, name: String, at: Instant) {
        if self.present.insert(name.clone()) {
            self.first_seen.entry(name.clone()).or_insert(at);
            self.appeared.insert(name, at);
        }
    }
}

/// A watch on a member's copies in one namespace, recording when each copy first appears.
struct MemberWatch {
    member: String,
    view: Arc<Mutex<View>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemberWatch {
    /// Starts the watch and waits until its initial list is done.
    async fn start(bed: &TestBed, member: &str, namespace: &str) -> Result<Self> {
        let api: Api<Ingress> = Api::namespaced(bed.client(member).await, namespace);
        let view = Arc::new(Mutex::new(View::default()));
        let shared = view.clone();
        let task = tokio::spawn(async move {
            let config = watcher::Config::default().labels(MANAGED);
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let mut v = shared.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(watcher::Event::Apply(copy)) => v.seen(copy.name_any(), now),
                    Ok(watcher::Event::Delete(copy)) => {
                        if v.present.remove(&copy.name_any()) {
                            v.removed += 1;
                        }
                    }
                    Ok(watcher::Event::Init) => v.relisting = Some(HashSet::new()),
                    Ok(watcher::Event::InitApply(copy)) => {
                        let name = copy.name_any();
                        if let Some(listed) = v.relisting.as_mut() {
                            listed.insert(name.clone());
                        }
                        v.seen(name, now);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = v.relisting.take() {
                            let before = v.present.len();
                            v.present.retain(|n| listed.contains(n));
                            v.removed += (before - v.present.len()) as u64;
                        }
                        v.synced = true;
                    }
                    Err(e) => {
                        v.errors += 1;
                        v.last_error = Some(e.to_string());
                    }
                }
            }
        });
        let watch = Self {
            member: member.to_string(),
            view,
            task,
        };
        let started = Instant::now();
        while !watch.with(|v| v.synced) {
            if started.elapsed() > Duration::from_secs(30) {
                let err = watch.with(|v| v.last_error.clone());
                bail!(
                    "watch on {member}/{namespace} not established after 30 s (last error: {err:?})"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(watch)
    }

    fn with<T>(&self, f: impl FnOnce(&View) -> T) -> T {
        f(&self.view.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for MemberWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_members(
    bed: &TestBed,
    members: &[&str],
    namespace: &str,
) -> Result<Vec<MemberWatch>> {
    let mut watches = Vec::new();
    for member in members {
        watches.push(MemberWatch::start(bed, member, namespace).await?);
    }
    Ok(watches)
}

// ---------------------------------------------------------------------------------------------
// helpers

fn federated_ingress(namespace: &str, name: &str, placement: Value) -> Result<FederatedIngress> {
    let doc = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
            },
            "placement": placement,
        }
    });
    serde_json::from_value(doc).context("FederatedIngress document")
}

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

async fn create_namespace(client: &Client, prefix: &str) -> Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let name = format!("{prefix}-{:05x}", nanos % 0xfffff);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name} on the host"))?;
    Ok(name)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    n: usize,
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn summarize(mut values: Vec<f64>) -> Result<Summary> {
    if values.is_empty() {
        bail!("no measurements");
    }
    values.sort_by(f64::total_cmp);
    Ok(Summary {
        n: values.len(),
        min: values[0],
        p50: percentile(&values, 50.0),
        p99: percentile(&values, 99.0),
        max: values[values.len() - 1],
    })
}

/// (VmHWM, VmRSS) of a process in kB.
fn memory_kb(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc/<pid>/status")?;
    let field = |key: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or_else(|| anyhow!("{key} missing from /proc/{pid}/status"))?;
        Ok(line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// How many files (sockets included) a process has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    // utime and stime (fields 14 and 15 of stat, counting from 1), in clock ticks of 10 ms.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// How many lines of the operator's log contain every one of `needles` (colour codes removed).
fn log_lines_with(log: &std::path::Path, needles: &[&str]) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut plain = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    // Skip an escape sequence: ESC [ ... m
                    for c in chars.by_ref() {
                        if c == 'm' {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            plain
        })
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .count()
}

/// Waits until every member Ready condition is True.
async fn members_ready(host: &Client) -> Result<()> {
    let api: Api<MemberCluster> = Api::all(host.clone());
    eventually("members Ready", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            for member in MEMBERS {
                let mc = api.get(member).await?;
                let ready = mc
                    .status
                    .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
                if ready.map(|c| c.status) != Some("True".to_string()) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
    })
    .await
}

/// Latency of one object: the latest first sighting over `watches` minus `started`; `None`
/// while a member has not seen it.
fn object_latency(watches: &[MemberWatch], name: &str, started: Instant) -> Option<Duration> {
    let mut latest = Duration::ZERO;
    for w in watches {
        let seen = w.with(|v| v.first_seen.get(name).copied())?;
        latest = latest.max(seen.saturating_duration_since(started));
    }
    Some(latest)
}

/// Deletes every FederatedIngress in the namespace and waits for the host objects and the
/// member copies to be gone.
async fn clean_up(host: &Client, namespace: &str, watches: &[MemberWatch]) -> Result<Duration> {
    let started = Instant::now();
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .context("deleting the FederatedIngresses")?;
    loop {
        let left: Vec<(String, usize)> = watches
            .iter()
            .map(|w| (w.member.clone(), w.with(|v| v.present.len())))
            .collect();
        let host_left = api.list_metadata(&ListParams::default()).await?.items.len();
        if host_left == 0 && left.iter().all(|(_, n)| *n == 0) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > CLEANUP_TIMEOUT {
            bail!(
                "cleanup of {namespace}: after {CLEANUP_TIMEOUT:?} {host_left} FederatedIngresses left on the host, copies left: {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Best-effort removal of a bench namespace from the host and the members.
async fn drop_namespace(bed: &TestBed, namespace: &str) {
    for context in ["host", "member1", "member2", "member3"] {
        let api: Api<Namespace> = Api::all(bed.client(context).await);
        let _ = api.delete(namespace, &DeleteParams::default()).await;
    }
}

/// Removes what an interrupted earlier run left behind: namespaces `bench-*` on the host and
/// the members. Runs before the operator starts, so the finalizers are dropped by hand (the copies
/// go with the members' namespaces).
async fn remove_leftovers(bed: &TestBed, host: &Client) -> Result<()> {
    let namespaces = Api::<Namespace>::all(host.clone())
        .list_metadata(&ListParams::default())
        .await?;
    for ns in namespaces.items {
        let name = ns.metadata.name.unwrap_or_default();
        if !name.starts_with("bench-") {
            continue;
        }
        eprintln!("removing namespace {name}, left behind by an earlier run");
        force_remove(bed, host, &name).await?;
    }
    Ok(())
}

/// Deletes the namespace's FederatedIngresses without waiting for the operator (their
/// finalizers are dropped by hand), then the namespace on the host and the members (with any
/// copies left there).
async fn force_remove(bed: &TestBed, host: &Client, namespace: &str) -> Result<()> {
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    let left = api.list_metadata(&ListParams::default()).await?.items;
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let unfinalize = json!({"metadata": {"finalizers": null}});
    for fi in left {
        let name = fi.metadata.name.unwrap_or_default();
        let _ = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
            .await;
    }
    drop_namespace(bed, namespace).await;
    Ok(())
}

/// Sums the samples of one metric on the operator's /metrics (all label sets).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the operator's metrics say about the interval between two scrapes.
fn metrics_delta(before: &str, after: &str) -> String {
    let d = |name: &str| metric(after, name) - metric(before, name);
    let mean_ms = |base: &str| {
        let n = d(&format!("{base}_count"));
        if n > 0.0 {
            d(&format!("{base}_sum")) / n * 1000.0
        } else {
            f64::NAN
        }
    };
    format!(
        "{:.0} reconciles ({:.0} failed), mean reconcile {:.0} ms, mean propagation to members {:.0} ms, {:.0} status writes, {:.0} member probes with mean latency {:.0} ms, {:.0} member transitions",
        d("flotilla_reconciles_total"),
        d("flotilla_reconcile_errors_total"),
        mean_ms("flotilla_reconcile_duration_seconds"),
        mean_ms("flotilla_propagation_duration_seconds"),
        d("flotilla_status_writes_total"),
        d("flotilla_member_probe_latency_seconds_count"),
        mean_ms("flotilla_member_probe_latency_seconds"),
        d("flotilla_member_transitions_total"),
    )
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
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_time(operator_pid)?;
    let phase = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..BURST_WORKERS {
        let (api, next, objects) = (api.clone(), next.clone(), objects.clone());
        workers.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(object) = objects.get(i) else { break };
                let started = Instant::now();
                api.create(&PostParams::default(), object)
                    .await
                    .with_context(|| format!("creating FederatedIngress {}", object.name_any()))?;
                timings.push((i, started, Instant::now()));
            }
            anyhow::Ok(timings)
        }));
    }
    let mut started = vec![phase; BURST_OBJECTS];
    let mut last_create_returned = phase;
    for worker in workers {
        for (i, start, done) in worker.await?? {
            started[i] = start;
            last_create_returned = last_create_returned.max(done);
        }
    }
    let create_phase = last_create_returned - phase;
    eprintln!(
        "burst: {BURST_OBJECTS} creates by {BURST_WORKERS} workers took {:.0} ms ({:.0}/s)",
        ms(create_phase),
        BURST_OBJECTS as f64 / create_phase.as_secs_f64()
    );

    // Wait for every copy on every member.
    loop {
        let counts: Vec<usize> = watches
            .iter()
            .map(|w| w.with(|v| v.first_seen.len()))
            .collect();
        if counts.iter().all(|&c| c >= BURST_OBJECTS) {
            break;
        }
        if last_create_returned.elapsed() > BURST_TIMEOUT {
            let mut report = Vec::new();
            for w in &watches {
                let missing: Vec<String> = w.with(|v| {
                    names
                        .iter()
                        .filter(|n| !v.first_seen.contains_key(*n))
                        .cloned()
                        .collect()
                });
                report.push(format!(
                    "{}: {} of {BURST_OBJECTS} seen, missing e.g. {:?} (watch errors: {})",
                    w.member,
                    BURST_OBJECTS - missing.len(),
                    &missing[..missing.len().min(5)],
                    w.with(|v| v.errors)
                ));
            }
            sampling.store(false, Ordering::Relaxed);
            bail!(
                "burst: not every copy seen {BURST_TIMEOUT:?} after the last create returned:\n  {}",
                report.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

    let wait_for = |name: String, started: Instant| {
        let watches = &watches;
        async move {
            loop {
                if let Some(latency) = object_latency(watches, &name, started) {
                    return Ok(latency);
                }
                if started.elapsed() > SINGLE_TIMEOUT {
                    let seen: Vec<&str> = watches
                        .iter()
                        .filter(|w| w.with(|v| v.first_seen.contains_key(&name)))
                        .map(|w| w.member.as_str())
                        .collect();
                    bail!(
                        "single: {name} not on every member after {SINGLE_TIMEOUT:?}; seen on {seen:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // A warm-up object, not measured: the operator creates the namespace in each member with
    // the first copy, a one-time cost that does not belong to a steady-state latency.
    let warmup = federated_ingress(&namespace, "warmup", three_members())?;
    let started = Instant::now();
    api.create(&PostParams::default(), &warmup)
        .await
        .context("creating the warm-up object")?;
    let warmup_latency = wait_for("warmup".to_string(), started).await?;
    tokio::time::sleep(SINGLE_INTERVAL).await;

    let mut latencies = Vec::new();
    let schedule = Instant::now();
    for i in 0..SINGLE_OBJECTS {
        let slot = schedule + SINGLE_INTERVAL * i as u32;
        tokio::time::sleep_until(slot.into()).await;
        let name = format!("single-{i:02}");
        let object = federated_ingress(&namespace, &name, three_members())?;
        let started = Instant::now();
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {name}"))?;
        latencies.push(ms(wait_for(name, started).await?));
    }
    clean_up(host, &namespace, &watches).await?;
    drop(watches);
    drop_namespace(bed, &namespace).await;
    Ok((summarize(latencies)?, warmup_latency))
}

/// Restores the member, retrying once: the harness panics when clusters.sh fails, and a failed
/// restore must not end the run with the member down.
fn restore(outage: &mut Outage<'_>) -> Result<()> {
    for attempt in 1..=3 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| outage.restore())) {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 3 => {
                eprintln!("restoring member1 failed (attempt {attempt}); retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(_) => {}
        }
    }
    bail!("could not restore member1")
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
    for round in 1..=FAILOVER_ROUNDS {
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
        members_ready(host).await?;

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
    clean_up(host, &namespace, std::slice::from_ref(&watch2)).await?;
    drop(watch2);
    drop_namespace(bed, &namespace).await;
    Ok((summarize(failovers)?, summarize(failbacks)?))
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench propagation FAILED: {e:#}");
        std::process::exit(1);
    }
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
    members_ready(&host).await?;
    // (position in the output, line): printed in this order at the end, whatever completed.
    let mut lines: Vec<(u8, String)> = Vec::new();

    let mut cleanup_failed = None;
    let result: Result<()> = async {
        // Single objects first: the operator is fresh and idle.
        let (single, warmup) = singles(&bed, &host).await?;
        eprintln!(
            "single: {} objects, {} s apart, on 3 members: min {:.1} / p50 {:.1} / p99 {:.1} / max {:.1} ms (warm-up object, not counted: {:.1} ms)",
            single.n, SINGLE_INTERVAL.as_secs(), single.min, single.p50, single.p99, single.max, ms(warmup)
        );
        lines.push((4, format!("BENCH distribution_single_p50_ms {:.1} ms", single.p50)));
        lines.push((5, format!("BENCH distribution_single_p99_ms {:.1} ms", single.p99)));

        // Failover next, on the quiet system (before the burst and its aftermath).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (fo, fb) = failover(&bed, &host).await?;
        eprintln!(
            "failover: {} kills of member1: min {:.0} / p50 {:.0} / p99 {:.0} / max {:.0} ms; failback after restore: min {:.0} / max {:.0} ms",
            fo.n, fo.min, fo.p50, fo.p99, fo.max, fb.min, fb.max
        );
        lines.push((6, format!("BENCH failover_p50_ms {:.1} ms", fo.p50)));
        lines.push((7, format!("BENCH failover_p99_ms {:.1} ms", fo.p99)));

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

        match clean_up(&host, &b.namespace, &b.watches).await {
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
    match cleanup_failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
