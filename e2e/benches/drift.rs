//! `make bench-drift`: the status syncer on the test bed.
//! - drift_detect_p50_ms / p99: a member edit → the host status shows it (ReportOnly), 50 edits;
//! - drift_correct_p50_ms / p99: a member edit → the copy is back (Enforce), 50 edits;
//! - status_patch_bytes_per_drift_event: bytes of the status writes one drift in one cluster
//!   causes, with 3 and with 10 placed clusters (the test bed is grown to 10 members for it);
//! - steady_state_status_writes_per_min: FederatedIngress status writes per minute with 1,000
//!   objects placed and nothing changing.
//!
//! Bytes and writes are the operator's own counters of what it sent (flotilla_status_write_*).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_api::FederatedIngress;
use flotilla_e2e::{Operator, TestBed, eventually, repo_root};
use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const EDITS: usize = 50;
const WAIT: Duration = Duration::from_secs(60);

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
    samples[rank.min(samples.len()) - 1]
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
    for i in 0..EDITS {
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

/// Member edit → the copy is back to the desired value.
async fn correct(bed: &TestBed, ns: &str) -> Vec<f64> {
    let members = vec!["member1".to_string()];
    place(
        bed,
        ns,
        &federated_ingress(ns, "correct", "Enforce", &members),
        1,
    )
    .await;
    let member: Api<Ingress> = Api::namespaced(bed.client("member1").await, ns);
    let mut watch = watcher(
        member.clone(),
        watcher::Config::default().fields("metadata.name=correct"),
    )
    .applied_objects()
    .boxed();
    let mut samples = Vec::new();
    for i in 0..EDITS {
        let start = Instant::now();
        let edited_rv = edit(&member, "correct", &format!("edit-{i}.example.com")).await;
        loop {
            let copy = tokio::time::timeout(WAIT, watch.next())
                .await
                .expect("copy update")
                .unwrap()
                .unwrap();
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
            if host.as_deref() == Some("correct.example.com")
                && later > edited_rv.parse().unwrap_or(0)
            {
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

#[tokio::main]
async fn main() {
    let bed = TestBed::get();
    bed.federation();
    let op = Operator::start(&bed, "bench-drift");
    let ns = bed.create_namespace("bench-drift");

    let mut d = detect(&bed, &ns).await;
    eprintln!(
        "detect: {} edits, min {:.1} ms, max {:.1} ms",
        d.len(),
        d.iter().cloned().fold(f64::MAX, f64::min),
        d.iter().cloned().fold(0.0, f64::max)
    );
    let mut c = correct(&bed, &ns).await;
    eprintln!(
        "correct: {} edits, min {:.1} ms, max {:.1} ms",
        c.len(),
        c.iter().cloned().fold(f64::MAX, f64::min),
        c.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "BENCH drift_detect_p50_ms {:.1} ms",
        percentile(&mut d, 50.0)
    );
    println!(
        "BENCH drift_detect_p99_ms {:.1} ms",
        percentile(&mut d, 99.0)
    );
    println!(
        "BENCH drift_correct_p50_ms {:.1} ms",
        percentile(&mut c, 50.0)
    );
    println!(
        "BENCH drift_correct_p99_ms {:.1} ms",
        percentile(&mut c, 99.0)
    );

    let three: Vec<String> = (1..=3).map(|i| format!("member{i}")).collect();
    let bytes3 = bytes_per_drift(&bed, &op, &ns, &three).await;
    println!("BENCH status_patch_bytes_per_drift_event_3_clusters {bytes3} bytes");
    if bed.members().len() < 10 {
        let out = std::process::Command::new(repo_root().join("e2e/testbed/clusters.sh"))
            .arg("up")
            .env("MEMBERS", "10")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "growing the test bed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 4..=10 {
        bed.join(&format!("member{i}"), "elsewhere");
    }
    let ten: Vec<String> = (1..=10).map(|i| format!("member{i}")).collect();
    let bytes10 = bytes_per_drift(&bed, &op, &ns, &ten).await;
    println!("BENCH status_patch_bytes_per_drift_event_10_clusters {bytes10} bytes");

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
