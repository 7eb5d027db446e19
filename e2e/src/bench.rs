//! What the end-to-end benchmarks (`e2e/benches/`) share: member watches that time when each copy
//! first appears, the FederatedIngress fixture, percentiles, the operator's memory and metrics,
//! bursts of creates by concurrent workers, waiting for the operator to settle, and clean-up.
//!
//! Every copy is timed by a watch on its member (label `app.kubernetes.io/managed-by=flotilla`,
//! one namespace per section) started before the objects are created; an object's latency is the
//! latest of its copies' first sighting minus the client's time just before its create call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flotilla_api::{FederatedIngress, MemberCluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::{Outage, TestBed, eventually};

/// The label every copy carries.
pub const MANAGED: &str = "app.kubernetes.io/managed-by=flotilla";

/// A benchmark's end: on failure its error on stderr and exit status 1 (bench.sh then shows the
/// end of its log).
pub fn finish(name: &str, result: Result<()>) {
    if let Err(e) = result {
        eprintln!("bench {name} FAILED: {e:#}");
        std::process::exit(1);
    }
}

/// A number from the environment (for scaling a benchmark down in trials), else `default`.
/// Prints a `BENCH <name> <value> <unit>` line at once (stdout is a pipe under bench.sh).
pub fn bench(name: &str, value: f64, unit: &str) {
    use std::io::Write;
    println!("BENCH {name} {value:.1} {unit}");
    let _ = std::io::stdout().flush();
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v} is not a number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// A duration in seconds from the environment, else `default`.
pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(env_usize(name, default as usize) as u64)
}

// ---------------------------------------------------------------------------------------------
// member watches

/// What one member watch has seen of the copies in its namespace.
#[derive(Default)]
pub struct View {
    /// Copies that currently exist.
    pub present: HashSet<String>,
    /// When each copy was first seen (kept if it goes away and comes back).
    pub first_seen: HashMap<String, Instant>,
    /// When each copy was last seen appearing (going from absent to present).
    pub appeared: HashMap<String, Instant>,
    /// Names listed during a relist in progress.
    relisting: Option<HashSet<String>>,
    pub synced: bool,
    /// Copies seen going away.
    pub removed: u64,
    /// Changes of copies already present (a new resourceVersion seen by the watch).
    pub modified: u64,
    /// Every add, change or removal the watch delivered (relists included).
    pub events: u64,
    /// When the watch last delivered an add, change or removal.
    pub last_event: Option<Instant>,
    pub errors: u64,
    pub last_error: Option<String>,
    versions: HashMap<String, String>,
}

impl View {
    fn seen<K: ResourceExt>(&mut self, copy: &K, at: Instant) {
        let name = copy.name_any();
        let version = copy.resource_version().unwrap_or_default();
        let changed = match self.versions.insert(name.clone(), version.clone()) {
            Some(old) => old != version,
            None => true,
        };
        if self.present.insert(name.clone()) {
            self.first_seen.entry(name.clone()).or_insert(at);
            self.appeared.insert(name, at);
        } else if changed {
            self.modified += 1;
        }
        if changed {
            self.events += 1;
            self.last_event = Some(at);
        }
    }

    fn gone(&mut self, name: &str, at: Instant) {
        self.versions.remove(name);
        if self.present.remove(name) {
            self.removed += 1;
            self.events += 1;
            self.last_event = Some(at);
        }
    }
}

/// A watch on a member's copies in one namespace, recording when each copy first appears.
pub struct MemberWatch {
    pub member: String,
    view: Arc<Mutex<View>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemberWatch {
    /// Starts the watch and waits until its initial list is done.
    pub async fn start(bed: &TestBed, member: &str, namespace: &str) -> Result<Self> {
        let api: Api<Ingress> = Api::namespaced(bed.client(member).await, namespace);
        Self::start_on(api, member, namespace).await
    }

    /// The same over every namespace of the member.
    pub async fn start_cluster_wide(bed: &TestBed, member: &str) -> Result<Self> {
        let api: Api<Ingress> = Api::all(bed.client(member).await);
        Self::start_on(api, member, "*").await
    }

    /// A watch on the copies of any resource in one namespace of the member.
    pub async fn start_resource(
        bed: &TestBed,
        member: &str,
        namespace: &str,
        resource: &kube::api::ApiResource,
    ) -> Result<Self> {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(bed.client(member).await, namespace, resource);
        Self::start_on(api, member, namespace).await
    }

    async fn start_on<K>(api: Api<K>, member: &str, namespace: &str) -> Result<Self>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let view = Arc::new(Mutex::new(View::default()));
        let shared = view.clone();
        let task = tokio::spawn(async move {
            let config = watcher::Config::default().labels(MANAGED);
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let mut v = shared.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(watcher::Event::Apply(copy)) => v.seen(&copy, now),
                    Ok(watcher::Event::Delete(copy)) => v.gone(&copy.name_any(), now),
                    Ok(watcher::Event::Init) => v.relisting = Some(HashSet::new()),
                    Ok(watcher::Event::InitApply(copy)) => {
                        if let Some(listed) = v.relisting.as_mut() {
                            listed.insert(copy.name_any());
                        }
                        v.seen(&copy, now);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = v.relisting.take() {
                            let gone: Vec<String> = v
                                .present
                                .iter()
                                .filter(|n| !listed.contains(*n))
                                .cloned()
                                .collect();
                            for name in gone {
                                v.gone(&name, now);
                            }
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

    pub fn with<T>(&self, f: impl FnOnce(&View) -> T) -> T {
        f(&self.view.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for MemberWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One watch per member, each synced before this returns.
pub async fn watch_members<S: AsRef<str>>(
    bed: &TestBed,
    members: &[S],
    namespace: &str,
) -> Result<Vec<MemberWatch>> {
    let mut watches = Vec::new();
    for member in members {
        watches.push(MemberWatch::start(bed, member.as_ref(), namespace).await?);
    }
    Ok(watches)
}

/// Latency of one object: the latest first sighting over `watches` minus `started`; `None`
/// while a member has not seen it.
pub fn object_latency(watches: &[MemberWatch], name: &str, started: Instant) -> Option<Duration> {
    let mut latest = Duration::ZERO;
    for w in watches {
        let seen = w.with(|v| v.first_seen.get(name).copied())?;
        latest = latest.max(seen.saturating_duration_since(started));
    }
    Some(latest)
}

/// Watch events summed over `watches` (for "nothing happened since").
pub fn watch_events(watches: &[MemberWatch]) -> u64 {
    watches.iter().map(|w| w.with(|v| v.events)).sum()
}

// ---------------------------------------------------------------------------------------------
// fixtures

/// A FederatedIngress with one rule (host `<name>.example.com`) and the given placement.
pub fn federated_ingress(
    namespace: &str,
    name: &str,
    placement: Value,
) -> Result<FederatedIngress> {
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

/// Exactly these members, every taint tolerated (member3 is tainted NoSchedule).
pub fn on_members<S: AsRef<str>>(members: &[S]) -> Value {
    let clusters: Vec<&str> = members.iter().map(AsRef::as_ref).collect();
    json!({
        "clusters": clusters,
        "constraints": {"tolerations": [{"operator": "Exists"}]},
    })
}

/// `member1` … `member<n>`.
pub fn member_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("member{i}")).collect()
}

/// A fresh host namespace `<prefix>-<5 hex digits>`.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String> {
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

// ---------------------------------------------------------------------------------------------
// statistics

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of a sorted, non-empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nearest-rank summary of a set of samples.
#[derive(Clone, Debug)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// `n 200: min … / p50 … / p90 … / p99 … / max … ms`, for the human summary on stderr.
    pub fn describe(&self, unit: &str) -> String {
        format!(
            "n {}: min {:.1} / p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} {unit}",
            self.n, self.min, self.p50, self.p90, self.p99, self.max
        )
    }
}

pub fn summarize(mut values: Vec<f64>) -> Result<Summary> {
    if values.is_empty() {
        bail!("no measurements");
    }
    values.sort_by(f64::total_cmp);
    Ok(Summary {
        n: values.len(),
        min: values[0],
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p99: percentile(&values, 99.0),
        max: values[values.len() - 1],
    })
}

// ---------------------------------------------------------------------------------------------
// the operator process

/// (VmHWM, VmRSS) of a process in kB.
pub fn memory_kb(pid: u32) -> Result<(u64, u64)> {
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
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
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

/// Where the CPU went during a phase: the test bed's processes per component (summed over every
/// cluster), the operator, this benchmark process and the whole machine. On a machine that runs
/// every cluster's control plane on the same cores, the operator's own share is the figure that
/// carries over to real clusters; the rest is the bed.
pub struct CpuSnapshot {
    components: std::collections::BTreeMap<String, Duration>,
    operator: Duration,
    bench: Duration,
    machine_busy: Duration,
    at: Instant,
}

impl CpuSnapshot {
    pub fn take(bed: &TestBed, operator_pid: u32) -> Self {
        let mut components = std::collections::BTreeMap::new();
        for cluster in std::fs::read_dir(bed.state_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(cluster.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = file.path();
                if path.extension().is_none_or(|e| e != "pid") {
                    continue;
                }
                let component = path.file_stem().unwrap_or_default().to_string_lossy();
                // Only a process that is still this cluster's (its command line names the
                // cluster's dir), as clusters.sh's comp_pid checks: pids get recycled.
                let ours = |pid: &u32| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                        String::from_utf8_lossy(&c)
                            .contains(&format!("{}/", cluster.path().display()))
                    })
                };
                let used = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .filter(ours)
                    .and_then(|pid| cpu_time(pid).ok())
                    .unwrap_or_default();
                *components.entry(component.into_owned()).or_default() += used;
            }
        }
        Self {
            components,
            operator: cpu_time(operator_pid).unwrap_or_default(),
            bench: cpu_time(std::process::id()).unwrap_or_default(),
            machine_busy: machine_busy().unwrap_or_default(),
            at: Instant::now(),
        }
    }

    /// The operator's CPU time since `earlier`.
    pub fn operator_since(&self, earlier: &Self) -> Duration {
        self.operator.saturating_sub(earlier.operator)
    }

    /// One line: each part's CPU seconds since `earlier` and its share of the machine's busy time.
    pub fn describe_since(&self, earlier: &Self) -> String {
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let part = |name: &str, used: Duration| {
            let share = 100.0 * used.as_secs_f64() / busy.as_secs_f64().max(0.001);
            format!("{name} {:.0} s ({share:.0}%)", used.as_secs_f64())
        };
        let mut parts = vec![part("operator", self.operator_since(earlier))];
        for (component, used) in &self.components {
            let before = earlier.components.get(component).copied();
            parts.push(part(
                component,
                used.saturating_sub(before.unwrap_or_default()),
            ));
        }
        parts.push(part(
            "this benchmark",
            self.bench.saturating_sub(earlier.bench),
        ));
        format!(
            "CPU over {:.0} s: machine busy {:.0} of {:.0} core-s; {}",
            (self.at - earlier.at).as_secs_f64(),
            busy.as_secs_f64(),
            (self.at - earlier.at).as_secs_f64()
                * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            parts.join(", ")
        )
    }
}

/// CPU time the whole machine spent busy (not idle, not waiting for I/O), from /proc/stat.
fn machine_busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …, in clock ticks of 10 ms
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(Duration::from_millis(total.saturating_sub(idle) * 10))
}

/// How many lines of the operator's log contain every one of `needles` (colour codes removed).
pub fn log_lines_with(log: &std::path::Path, needles: &[&str]) -> usize {
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

/// Sums the samples of one metric on the operator's /metrics over the label sets whose labels
/// contain `filter` (`""`: all of them).
pub fn metric_where(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // (an empty f64 sum is -0.0)
        .fold(0.0, |a, b| a + b)
}

/// The operator's heap by jemalloc's account (`flotilla_heap_bytes`), in MB: what its data holds
/// and what the allocator keeps resident; zeros when the operator runs without jemalloc.
pub fn heap_mb(metrics: &str) -> (f64, f64) {
    let mb = |state: &str| {
        metric_where(
            metrics,
            "flotilla_heap_bytes",
            &format!("state=\"{state}\""),
        ) / 1048576.0
    };
    (mb("allocated"), mb("resident"))
}

/// Sums the samples of one metric on the operator's /metrics (all label sets).
pub fn metric(text: &str, name: &str) -> f64 {
    metric_where(text, name, "")
}

/// The label sets and values of one metric, e.g. `writer="syncer" 12`.
pub fn metric_series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series
                .strip_prefix(name)?
                .trim_matches(|c| c == '{' || c == '}');
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// What the operator's metrics say about the interval between two scrapes.
pub fn metrics_delta(before: &str, after: &str) -> String {
    let d = |name: &str| metric(after, name) - metric(before, name);
    let mean_ms = |base: &str| {
        let n = d(&format!("{base}_count"));
        if n > 0.0 {
            d(&format!("{base}_sum")) / n * 1000.0
        } else {
            f64::NAN
        }
    };
    // Status writes by writer (the controller of a kind, the syncer, the policy controller, …).
    let earlier = metric_series(before, "flotilla_status_writes_total");
    let by_writer: Vec<String> = metric_series(after, "flotilla_status_writes_total")
        .into_iter()
        .map(|(labels, now)| {
            let then = earlier
                .iter()
                .find(|(l, _)| *l == labels)
                .map_or(0.0, |(_, v)| *v);
            format!("{labels} {:.0}", now - then)
        })
        .collect();
    format!(
        "{:.0} reconciles ({:.0} failed), mean reconcile {:.0} ms, mean propagation to members {:.0} ms, {:.0} status writes ({}), {:.0} member probes with mean latency {:.0} ms, {:.0} member transitions",
        d("flotilla_reconciles_total"),
        d("flotilla_reconcile_errors_total"),
        mean_ms("flotilla_reconcile_duration_seconds"),
        mean_ms("flotilla_propagation_duration_seconds"),
        d("flotilla_status_writes_total"),
        by_writer.join(", "),
        d("flotilla_member_probe_latency_seconds_count"),
        mean_ms("flotilla_member_probe_latency_seconds"),
        d("flotilla_member_transitions_total"),
    )
}

// ---------------------------------------------------------------------------------------------
// members

/// Whether the MemberCluster's Ready condition has `status` ("True", "False", "Unknown").
pub async fn member_ready_is(host: &Client, member: &str, status: &str) -> Result<bool> {
    let mc = Api::<MemberCluster>::all(host.clone()).get(member).await?;
    let ready = mc
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
    Ok(ready.map(|c| c.status).as_deref() == Some(status))
}

/// Waits until the Ready condition of every one of `members` is True.
pub async fn members_ready<S: AsRef<str>>(host: &Client, members: &[S]) -> Result<()> {
    eventually("members Ready", Duration::from_secs(120), || async move {
        for member in members {
            if !member_ready_is(host, member.as_ref(), "True").await? {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// Restores a member, retrying: the harness panics when clusters.sh fails, and a failed restore
/// must not end the run with the member down. Call it inside `block_in_place`.
pub fn restore(outage: &mut Outage<'_>) -> Result<()> {
    for attempt in 1..=3 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| outage.restore())) {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 3 => {
                eprintln!("restoring the member failed (attempt {attempt}); retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(_) => {}
        }
    }
    bail!("could not restore the member")
}

// ---------------------------------------------------------------------------------------------
// bursts and single objects

/// What [`create_all`] can create.
pub trait Creatable:
    kube::Resource
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Creatable for K where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// When each create of a burst started (the client's time just before the call), and when the
/// whole create phase began and ended.
pub struct Creates {
    pub started: Vec<Instant>,
    pub phase: Instant,
    pub last_returned: Instant,
}

/// Creates `objects` with `workers` concurrent workers on one client, each taking the next
/// object as soon as its create returns.
pub async fn create_all<K>(api: &Api<K>, objects: Arc<Vec<K>>, workers: usize) -> Result<Creates>
where
    K: Creatable,
{
    create_all_then(api, objects, workers, |_| ()).await
}

/// [`create_all`], calling `created(i)` the moment object `i`'s create has returned.
pub async fn create_all_then<K>(
    api: &Api<K>,
    objects: Arc<Vec<K>>,
    workers: usize,
    created: impl Fn(usize) + Clone + Send + 'static,
) -> Result<Creates>
where
    K: Creatable,
{
    let next = Arc::new(AtomicUsize::new(0));
    let phase = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (api, next, objects) = (api.clone(), next.clone(), objects.clone());
        let created = created.clone();
        tasks.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(object) = objects.get(i) else { break };
                let started = Instant::now();
                api.create(&PostParams::default(), object)
                    .await
                    .with_context(|| format!("creating {}", object.name_any()))?;
                created(i);
                timings.push((i, started, Instant::now()));
            }
            anyhow::Ok(timings)
        }));
    }
    let mut started = vec![phase; objects.len()];
    let mut last_returned = phase;
    for task in tasks {
        for (i, start, done) in task.await?? {
            started[i] = start;
            last_returned = last_returned.max(done);
        }
    }
    Ok(Creates {
        started,
        phase,
        last_returned,
    })
}

/// Each object's latency in ms (in the order of `names`, created as `creates` says), and the time
/// from the first create to the last copy seen; an error names an object some watch has not seen.
pub fn burst_latencies(
    watches: &[MemberWatch],
    names: &[String],
    creates: &Creates,
) -> Result<(Vec<f64>, Duration)> {
    let mut latencies = Vec::with_capacity(names.len());
    let mut last_seen = creates.phase;
    for (name, start) in names.iter().zip(&creates.started) {
        let latency = object_latency(watches, name, *start)
            .with_context(|| format!("{name}: copy not seen"))?;
        latencies.push(ms(latency));
        last_seen = last_seen.max(*start + latency);
    }
    Ok((latencies, last_seen - creates.phase))
}

/// Waits until every watch has seen every one of `names` (at some point), or fails after
/// `timeout` with what is missing where.
pub async fn wait_all_seen(
    watches: &[MemberWatch],
    names: &[String],
    timeout: Duration,
    what: &str,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let all = watches.iter().all(|w| {
            w.with(|v| v.first_seen.len() >= names.len())
                && w.with(|v| names.iter().all(|n| v.first_seen.contains_key(n)))
        });
        if all {
            return Ok(());
        }
        if started.elapsed() > timeout {
            let mut report = Vec::new();
            for w in watches {
                let missing: Vec<String> = w.with(|v| {
                    names
                        .iter()
                        .filter(|n| !v.first_seen.contains_key(*n))
                        .cloned()
                        .collect()
                });
                report.push(format!(
                    "{}: {} of {} seen, missing e.g. {:?} (watch errors: {})",
                    w.member,
                    names.len() - missing.len(),
                    names.len(),
                    &missing[..missing.len().min(5)],
                    w.with(|v| v.errors)
                ));
            }
            bail!(
                "{what}: not every copy seen after {timeout:?}:\n  {}",
                report.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates single objects one at a time, `interval` apart (start to start), each waited for on
/// every one of `watches`; returns each object's latency in ms. `make(i)` builds object `i`.
pub async fn singles(
    api: &Api<FederatedIngress>,
    watches: &[MemberWatch],
    count: usize,
    interval: Duration,
    timeout: Duration,
    make: impl Fn(usize) -> Result<FederatedIngress>,
) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(count);
    let schedule = Instant::now();
    for i in 0..count {
        let slot = schedule + interval * i as u32;
        tokio::time::sleep_until(slot.into()).await;
        let object = make(i)?;
        let name = object.name_any();
        let started = Instant::now();
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {name}"))?;
        latencies.push(ms(wait_for_object(watches, &name, started, timeout).await?));
    }
    Ok(latencies)
}

/// Waits until every watch has seen `name`; returns its latency from `started`.
pub async fn wait_for_object(
    watches: &[MemberWatch],
    name: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Duration> {
    loop {
        if let Some(latency) = object_latency(watches, name, started) {
            return Ok(latency);
        }
        if started.elapsed() > timeout {
            let seen: Vec<&str> = watches
                .iter()
                .filter(|w| w.with(|v| v.first_seen.contains_key(name)))
                .map(|w| w.member.as_str())
                .collect();
            bail!("{name} not on every member after {timeout:?}; seen on {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The operator's writes to the host: status writes of every propagated kind, the status
/// syncer and the policies (all writers but MemberCluster health refreshes). Reconciles are not
/// counted: with 10,000 objects the periodic resync (every 300 s per object) alone is ~33 a
/// second, so a settled operator would never look quiet.
pub fn activity(metrics: &str) -> f64 {
    const WRITERS: [&str; 5] = [
        "federatedingress",
        "federatedobject",
        "clusterfederatedobject",
        "syncer",
        "policy",
    ];
    WRITERS
        .iter()
        .map(|w| {
            metric_where(
                metrics,
                "flotilla_status_writes_total",
                &format!("writer=\"{w}\""),
            )
        })
        .sum()
}

/// Waits until `done()` holds and then neither the operator's host writes ([`activity`]) nor the member
/// watches moved for `quiet`; returns how long that took.
pub async fn settle(
    scrape: impl Fn() -> String,
    watches: &[MemberWatch],
    quiet: Duration,
    timeout: Duration,
    done: impl Fn() -> bool,
) -> Result<Duration> {
    let started = Instant::now();
    let mut last = (activity(&scrape()), watch_events(watches));
    let mut still_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (activity(&scrape()), watch_events(watches));
        if now != last || !done() {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!(
                "not settled after {timeout:?} (target reached: {}; last change {:.0} s ago)",
                done(),
                still_since.elapsed().as_secs_f64()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// clean-up

/// Deletes every FederatedIngress in the namespace and waits for the host objects and the
/// member copies to be gone.
pub async fn clean_up(
    host: &Client,
    namespace: &str,
    watches: &[MemberWatch],
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let api: Api<FederatedIngress> = Api::namespaced(host.clone(), namespace);
    // Deleting 10,000 objects in one request can outlast the host's request timeout on a busy
    // bed (the server then closes the connection): asked again, it goes on from where it was.
    let mut attempts = 0;
    while let Err(e) = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
    {
        attempts += 1;
        if attempts == 5 {
            return Err(e).context("deleting the FederatedIngresses (5 attempts)");
        }
        eprintln!("{namespace}: deleting the FederatedIngresses: {e}; asking again");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    loop {
        let left: Vec<(String, usize)> = watches
            .iter()
            .map(|w| (w.member.clone(), w.with(|v| v.present.len())))
            .filter(|(_, n)| *n > 0)
            .collect();
        let host_left = api.list_metadata(&ListParams::default()).await?.items.len();
        if host_left == 0 && left.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!(
                "cleanup of {namespace}: after {timeout:?} {host_left} FederatedIngresses left on the host, copies left: {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Best-effort removal of a bench namespace from the host and every member.
pub async fn drop_namespace(bed: &TestBed, namespace: &str) {
    let mut contexts = vec!["host".to_string()];
    contexts.extend(bed.members());
    for context in contexts {
        let api: Api<Namespace> = Api::all(bed.client(&context).await);
        let _ = api.delete(namespace, &DeleteParams::default()).await;
    }
}

/// Waits until none of `watches` sees a copy any more, or fails after `timeout`.
pub async fn wait_copies_gone(watches: &[MemberWatch], timeout: Duration) -> Result<()> {
    let left = || {
        watches
            .iter()
            .map(|w| w.with(|v| v.present.len()))
            .sum::<usize>()
    };
    let started = Instant::now();
    while left() > 0 {
        if started.elapsed() > timeout {
            bail!("{} copies still in the members after {timeout:?}", left());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Waits until the host namespace is gone (deleted with everything in it: a later phase or
/// benchmark must not share the machine with its deletion), or fails after `timeout`.
pub async fn wait_namespace_gone(host: &Client, namespace: &str, timeout: Duration) -> Result<()> {
    let api = Api::<Namespace>::all(host.clone());
    let started = Instant::now();
    while api.get_opt(namespace).await?.is_some() {
        if started.elapsed() > timeout {
            bail!("namespace {namespace} still on the host after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Removes what an interrupted earlier run left behind: namespaces `bench-*` on the host and
/// the members. Runs before the operator starts, so the finalizers are dropped by hand (the copies
/// go with the members' namespaces).
pub async fn remove_leftovers(bed: &TestBed, host: &Client) -> Result<()> {
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
pub async fn force_remove(bed: &TestBed, host: &Client, namespace: &str) -> Result<()> {
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

/// Grows the test bed to `members` members (when it has fewer) and joins member4.. with `join`'s
/// extra arguments.
pub fn grow(bed: &TestBed, members: usize, join: &[&str]) -> Result<()> {
    tokio::task::block_in_place(|| {
        if bed.members().len() < members {
            eprintln!("growing the test bed to {members} members");
            let out =
                std::process::Command::new(crate::repo_root().join("e2e/testbed/clusters.sh"))
                    .arg("up")
                    .env("MEMBERS", members.to_string())
                    .output()
                    .context("running clusters.sh up")?;
            if !out.status.success() {
                bail!(
                    "growing the test bed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        for i in 4..=members {
            bed.join_with(&format!("member{i}"), "elsewhere", join);
        }
        Ok(())
    })
}
