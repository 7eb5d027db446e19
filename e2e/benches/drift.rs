//! `make bench-drift`: the status syncer on the test bed.
//! - drift_detect_p50_ms / p99: a member edit → the host status shows it (ReportOnly), 200 edits
//!   back to back on one copy (`BENCH_DRIFT_EDITS`);
//! - drift_correct_p50_ms / p99: a member edit → the copy is back (Enforce), 200 edits likewise;
//! - drift_correct_under_load_p50_ms / p99: the same 200 corrections on another copy while 50
//!   other objects on member1..3 get ~18 template updates per second (`BENCH_DRIFT_LOAD_OBJECTS`,
//!   `BENCH_DRIFT_LOAD_PER_S`);
//! - drift_detect_idle_p50_ms / p99 (also printed as drift_detect_after_idle_p99_ms): detection
//!   of edits made after at least 60 s (`BENCH_DRIFT_IDLE_QUIET_S`) in which no copy on any member
//!   changed (the bench watches every member's copies cluster-wide): in each round, once the
//!   members have been quiet that long, one copy per member (10 members) is edited at the same
//!   moment; 20 rounds, 200 edits (`BENCH_DRIFT_IDLE_SAMPLES`), each copy edited once;
//! - status_patch_bytes_per_drift_event: bytes of the status writes one drift in one cluster
//!   causes, with 3 and with 10 placed clusters (the test bed is grown to 10 members for it);
//! - steady_state_status_writes_per_min: FederatedIngress status writes per minute with 1,000
//!   objects placed and nothing changing.
//!
//! Bytes and writes are the operator's own counters of what it sent (flotilla_status_write_*).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_api::FederatedIngress;
use flotilla_e2e::bench::{
    MemberWatch, Summary, env_secs, env_usize, member_names, ms, summarize, watch_events,
};
use flotilla_e2e::{Operator, TestBed, eventually};
use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

/// Edits per figure (`BENCH_DRIFT_EDITS`): at least 200, so that the p99 is not the maximum.
const EDITS: usize = 200;
const WAIT: Duration = Duration::from_secs(60);

fn edits() -> usize {
    env_usize("BENCH_DRIFT_EDITS", EDITS)
}

fn summary(what: &str, samples: Vec<f64>) -> Summary {
    let s = summarize(samples).unwrap();
    eprintln!("{what}: {}", s.describe("ms"));
    s
}

fn federated_ingress(ns: &str, name: &str, mode: &str, clusters: &[String]) -> FederatedIngress {
    serde_json::from_value(json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {"spec": {"rules": [{"host": format!("{name}.example.com")}]}},
            "placement": {"clusters": clusters, "constraints": {"tolerations": [{"operator": "Exists"}]}},
            "drift": {"mode": mode},
        }
    }))
    .unwrap()
}

/// Sum of a counter over the label sets whose labels contain `filter`.
fn counter(op: &Operator, name: &str, filter: &str) -> f64 {
    let text = op.get("/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn place(bed: &TestBed, ns: &str, fi: &FederatedIngress, clusters: usize) {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    api.create(&PostParams::default(), fi).await.unwrap();
    let name = fi.metadata.name.clone().unwrap();
    eventually("copies applied", WAIT, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let fi = api.get(&name).await?;
            let applied = fi
                .status
                .map(|s| {
                    s.clusters
                        .iter()
                        .filter(|c| format!("{:?}", c.state) == "Applied")
                        .count()
                })
                .unwrap_or(0);
            Ok((applied == clusters).then_some(()))
        }
    })
    .await
    .unwrap();
}

async fn edit(member: &Api<Ingress>, name: &str, host: &str) -> String {
    let patch = json!({"spec": {"rules": [{"host": host}]}});
    let out = member
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    out.metadata.resource_version.unwrap_or_default()
}

/// Member edit → host status shows the observed value.
async fn detect(bed: &TestBed, ns: &str) -> Vec<f64> {
    let members = vec!["member1".to_string()];
    place(
        bed,
        ns,
        &federated_ingress(ns, "detect", "ReportOnly", &members),
        1,
    )
    .await;
    let host: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    let member: Api<Ingress> = Api::namespaced(bed.client("member1").await, ns);
    let mut watch = watcher(
        host,
        watcher::Config::default().fields("metadata.name=detect"),
    )
    .applied_objects()
    .boxed();
    let mut samples = Vec::new();
    for i in 0..edits() {
        let value = format!("\"edit-{i}.example.com\"");
        let start = Instant::now();
        edit(&member, "detect", value.trim_matches('"')).await;
        loop {
            let fi = tokio::time::timeout(WAIT, watch.next())
                .await
                .expect("status update")
                .unwrap()
                .unwrap();
            let seen = fi
                .status
                .iter()
                .flat_map(|s| s.clusters.iter())
                .filter_map(|c| c.drift.as_ref())
                .flat_map(|d| d.fields.iter())
                .any(|f| f.observed.as_deref() == Some(value.as_str()));
            if seen {
                break;
            }
        }
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    samples
}

/// Member edit → the copy `name` is back to the desired value.
async fn correct(bed: &TestBed, ns: &str, name: &str) -> Vec<f64> {
    let members = vec!["member1".to_string()];
    place(
        bed,
        ns,
        &federated_ingress(ns, name, "Enforce", &members),
        1,
    )
    .await;
    let member: Api<Ingress> = Api::namespaced(bed.client("member1").await, ns);
    let mut watch = watcher(
        member.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .applied_objects()
    .boxed();
    let desired = format!("{name}.example.com");
    let mut samples = Vec::new();
    'edits: for i in 0..edits() {
        let start = Instant::now();
        let edited_rv = edit(&member, name, &format!("edit-{i}.example.com")).await;
        loop {
            let Ok(next) =
                tokio::time::timeout(WAIT.saturating_sub(start.elapsed()), watch.next()).await
            else {
                // A missed correction: counted as WAIT (a lower bound), the run goes on.
                eprintln!(
                    "{name}: edit {i} NOT corrected within {WAIT:?}; counted as {} ms",
                    WAIT.as_millis()
                );
                samples.push(ms(WAIT));
                continue 'edits;
            };
            let copy = next.unwrap().unwrap();
            let host = copy
                .spec
                .as_ref()
                .and_then(|s| s.rules.as_ref())
                .and_then(|r| r[0].host.clone());
            let later: u64 = copy
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            if host.as_deref() == Some(desired.as_str()) && later > edited_rv.parse().unwrap_or(0) {
                break;
            }
        }
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        // Let the correction's status write land before the next edit.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples
}

/// Bytes of the status writes caused by one drift in member1 of an object placed on `clusters`.
async fn bytes_per_drift(bed: &TestBed, op: &Operator, ns: &str, clusters: &[String]) -> f64 {
    let name = format!("bytes-{}", clusters.len());
    place(
        bed,
        ns,
        &federated_ingress(ns, &name, "ReportOnly", clusters),
        clusters.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (bytes, writes) = (
        counter(op, "flotilla_status_write_bytes_total", "syncer"),
        counter(op, "flotilla_status_writes_total", "syncer"),
    );
    let member: Api<Ingress> = Api::namespaced(bed.client("member1").await, ns);
    edit(&member, &name, "bytes.example.com").await;
    let host: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    eventually("drift shown", WAIT, || {
        let host = host.clone();
        let name = name.clone();
        async move {
            let fi = host.get(&name).await?;
            Ok(fi
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Drifted"))
                .filter(|c| c.status == "True"))
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = counter(op, "flotilla_status_write_bytes_total", "syncer") - bytes;
    let count = counter(op, "flotilla_status_writes_total", "syncer") - writes;
    eprintln!(
        "{} placed clusters: one drift caused {count} status write(s), {sent} bytes",
        clusters.len()
    );
    sent
}

async fn steady_state(bed: &TestBed, op: &Operator, ns: &str) -> f64 {
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    let members = vec!["member1".to_string()];
    let start = Instant::now();
    for i in 0..1000 {
        api.create(
            &PostParams::default(),
            &federated_ingress(ns, &format!("s{i:04}"), "ReportOnly", &members),
        )
        .await
        .unwrap();
    }
    eventually("1,000 objects Ready", Duration::from_secs(300), || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|f| {
                    f.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            Ok((ready >= 1000).then_some(()))
        }
    })
    .await
    .unwrap();
    eprintln!("1,000 objects placed and Ready in {:?}", start.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writers = ["federatedingress", "syncer"];
    let before: f64 = writers
        .iter()
        .map(|w| counter(op, "flotilla_status_writes_total", w))
        .sum();
    let members_before = counter(op, "flotilla_status_writes_total", "membercluster");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after: f64 = writers
        .iter()
        .map(|w| counter(op, "flotilla_status_writes_total", w))
        .sum();
    let members_after = counter(op, "flotilla_status_writes_total", "membercluster");
    eprintln!(
        "steady state: {} FederatedIngress status writes and {} MemberCluster status refreshes in 60 s",
        after - before,
        members_after - members_before
    );
    after - before
}

/// Corrections (Enforce) of the copy `correct-load` while other objects get template updates at
/// a steady rate; returns the samples and the update rate achieved.
async fn correct_under_load(bed: &TestBed, ns: &str) -> (Vec<f64>, f64) {
    let three = member_names(3);
    let objects = env_usize("BENCH_DRIFT_LOAD_OBJECTS", 50).max(1);
    let per_s = env_usize("BENCH_DRIFT_LOAD_PER_S", 18).max(1);
    for i in 0..objects {
        place(
            bed,
            ns,
            &federated_ingress(ns, &format!("load-{i:03}"), "ReportOnly", &three),
            3,
        )
        .await;
    }
    let api: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = Instant::now();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (api, done) = (api.clone(), done.clone());
                let name = format!("load-{:03}", k % objects);
                let patch = json!({"spec": {"template": {"spec": {"rules": [
                    {"host": format!("load-{k}.example.com")}]}}}});
                tokio::spawn(async move {
                    if api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
                k += 1;
            }
            started.elapsed()
        })
    };
    // Let the load reach its pace before the first edit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = correct(bed, ns, "correct-load").await;
    stop.store(true, Ordering::Relaxed);
    let ran = load.await.unwrap();
    let rate = done.load(Ordering::Relaxed) as f64 / ran.as_secs_f64();
    eprintln!(
        "correct under load: {objects} objects on member1..3 got {rate:.1} template updates/s (target {per_s}/s) during the corrections"
    );
    (samples, rate)
}

/// Detection (ReportOnly) of edits made after the members' copies have been quiet for a while:
/// one object per member and round, each edited once; before every round the benchmark waits
/// until no copy on any of `members` changed for the quiet period.
async fn detect_after_idle(bed: &TestBed, ns: &str, members: &[String]) -> Vec<f64> {
    let samples = env_usize("BENCH_DRIFT_IDLE_SAMPLES", 200);
    let quiet = env_secs("BENCH_DRIFT_IDLE_QUIET_S", 60);
    let rounds = samples.div_ceil(members.len());
    let host: Api<FederatedIngress> = Api::namespaced(bed.client("host").await, ns);
    let name = |member: &str, round: usize| format!("idle-{member}-{round:03}");
    for round in 0..rounds {
        for member in members {
            host.create(
                &PostParams::default(),
                &federated_ingress(
                    ns,
                    &name(member, round),
                    "ReportOnly",
                    std::slice::from_ref(member),
                ),
            )
            .await
            .unwrap();
        }
    }
    let total = rounds * members.len();
    eventually("idle objects applied", Duration::from_secs(300), || {
        let host = host.clone();
        async move {
            let applied = host
                .list(&Default::default())
                .await?
                .items
                .iter()
                .filter(|fi| {
                    fi.status.as_ref().is_some_and(|s| {
                        s.clusters
                            .iter()
                            .any(|c| format!("{:?}", c.state) == "Applied")
                    })
                })
                .count();
            Ok((applied >= total).then_some(()))
        }
    })
    .await
    .unwrap();

    // (object, observed value) → when the host status first showed it.
    let seen: Arc<Mutex<HashMap<(String, String), Instant>>> = Arc::default();
    let recorder = {
        let (seen, host) = (seen.clone(), host.clone());
        tokio::spawn(async move {
            let mut events = watcher(host, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(fi)) = events.next().await {
                let now = Instant::now();
                let name = fi.name_any();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                for observed in fi
                    .status
                    .iter()
                    .flat_map(|s| s.clusters.iter())
                    .filter_map(|c| c.drift.as_ref())
                    .flat_map(|d| d.fields.iter())
                    .filter_map(|f| f.observed.clone())
                {
                    seen.entry((name.clone(), observed)).or_insert(now);
                }
            }
        })
    };
    let mut watches = Vec::new();
    for member in members {
        watches.push(MemberWatch::start_cluster_wide(bed, member).await.unwrap());
    }
    let mut member_apis = Vec::new();
    for member in members {
        member_apis.push(Api::<Ingress>::namespaced(bed.client(member).await, ns));
    }

    let mut latencies = Vec::new();
    for round in 0..rounds {
        // Quiet: no copy changed on any member for `quiet`.
        let mut last = watch_events(&watches);
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = watch_events(&watches);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        let edits =
            futures::future::join_all(members.iter().zip(&member_apis).map(|(member, api)| {
                let object = name(member, round);
                async move {
                    let value = format!("idle-{round}.example.com");
                    let start = Instant::now();
                    edit(api, &object, &value).await;
                    (object, format!("\"{value}\""), start)
                }
            }))
            .await;
        for (object, observed, start) in edits {
            let key = (object.clone(), observed);
            let at = eventually(&format!("drift of {object} shown"), WAIT, || {
                let at = seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .copied();
                async move { Ok(at) }
            })
            .await
            .unwrap();
            latencies.push(ms(at.saturating_duration_since(start)));
        }
        eprintln!(
            "idle round {}/{rounds}: {} edits after {} s quiet, slowest so far {:.1} ms",
            round + 1,
            members.len(),
            quiet.as_secs(),
            latencies.iter().cloned().fold(0.0, f64::max)
        );
    }
    recorder.abort();
    latencies
}

#[tokio::main]
async fn main() {
    let bed = TestBed::get();
    bed.federation();
    let op = Operator::start(&bed, "bench-drift");
    let ns = bed.create_namespace("bench-drift");

    let d = summary("detect", detect(&bed, &ns).await);
    println!("BENCH drift_detect_p50_ms {:.1} ms", d.p50);
    println!("BENCH drift_detect_p99_ms {:.1} ms", d.p99);
    let c = summary("correct", correct(&bed, &ns, "correct").await);
    println!("BENCH drift_correct_p50_ms {:.1} ms", c.p50);
    println!("BENCH drift_correct_p99_ms {:.1} ms", c.p99);
    let (samples, _) = correct_under_load(&bed, &ns).await;
    let l = summary("correct under load", samples);
    println!("BENCH drift_correct_under_load_p50_ms {:.1} ms", l.p50);
    println!("BENCH drift_correct_under_load_p99_ms {:.1} ms", l.p99);

    let three: Vec<String> = (1..=3).map(|i| format!("member{i}")).collect();
    let bytes3 = bytes_per_drift(&bed, &op, &ns, &three).await;
    println!("BENCH status_patch_bytes_per_drift_event_3_clusters {bytes3} bytes");
    flotilla_e2e::bench::grow(&bed, 10, &[]).unwrap();
    let ten: Vec<String> = (1..=10).map(|i| format!("member{i}")).collect();
    let bytes10 = bytes_per_drift(&bed, &op, &ns, &ten).await;
    println!("BENCH status_patch_bytes_per_drift_event_10_clusters {bytes10} bytes");

    let idle_ns = bed.create_namespace("bench-idle");
    let i = summary(
        "detect after idle",
        detect_after_idle(&bed, &idle_ns, &ten).await,
    );
    println!("BENCH drift_detect_idle_p50_ms {:.1} ms", i.p50);
    println!("BENCH drift_detect_idle_p99_ms {:.1} ms", i.p99);
    println!("BENCH drift_detect_after_idle_p99_ms {:.1} ms", i.p99);

    let steady_ns = bed.create_namespace("bench-steady");
    let writes = steady_state(&bed, &op, &steady_ns).await;
    println!("BENCH steady_state_status_writes_per_min {writes} writes/min");

    bed.kubectl(
        "host",
        &[
            "delete",
            "federatedingress",
            "--all",
            "-n",
            &steady_ns,
            "--wait=true",
            "--timeout=300s",
        ],
    );
    bed.kubectl(
        "host",
        &[
            "delete",
            "federatedingress",
            "--all",
            "-n",
            &ns,
            "--wait=true",
            "--timeout=120s",
        ],
    );
    bed.kubectl(
        "host",
        &[
            "delete",
            "federatedingress",
            "--all",
            "-n",
            &idle_ns,
            "--wait=true",
            "--timeout=120s",
        ],
    );
    for i in 4..=10 {
        bed.kubectl(
            "host",
            &[
                "delete",
                "membercluster",
                &format!("member{i}"),
                "--ignore-not-found",
            ],
        );
    }
}
