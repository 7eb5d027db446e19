//! `make bench-leader`: two operator replicas against the host; SIGKILL the leader and time how
//! long until the standby leads. Prints `BENCH leader_failover_ms <median> ms` over several rounds
//! with the default Lease duration (8 s).
//!
//! Then one SIGSTOP round: the leader is paused past its Lease while new work arrives, the
//! standby takes over, and the old leader is resumed. Prints `BENCH leader_overlap_writes <n>`:
//! the writes the old leader's lease guard permitted at or after the moment the new leader
//! started leading, from both replicas' own logs (one machine, one clock). It must be 0.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::{Operator, TestBed};
use serde_json::json;

const ROUNDS: usize = 3;

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let bed = TestBed::get();
    bed.federation();
    let mut samples = Vec::new();
    for round in 0..ROUNDS {
        bed.delete_lease();
        let mut leader = Operator::replica(&bed, &format!("a{round}"));
        wait_until("first replica leads", Duration::from_secs(20), || {
            leader.leading()
        });
        let standby = Operator::replica(&bed, &format!("b{round}"));
        // Let the standby observe a few renewals, as it would in steady state.
        std::thread::sleep(Duration::from_secs(3));
        let killed = Instant::now();
        leader.kill();
        wait_until("standby takes over", Duration::from_secs(30), || {
            standby.leading()
        });
        let took = killed.elapsed();
        eprintln!("round {round}: takeover after {took:?}");
        samples.push(took.as_millis());
        drop(standby);
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    eprintln!(
        "leader failover over {ROUNDS} rounds: min {} ms, max {} ms",
        samples[0],
        samples[samples.len() - 1]
    );
    println!("BENCH leader_failover_ms {median} ms");
    println!(
        "BENCH leader_overlap_writes {} writes",
        overlap_writes(&bed)
    );
}

/// One SIGSTOP round; the old leader's writes while the new one led.
fn overlap_writes(bed: &TestBed) -> usize {
    bed.delete_lease();
    let mut leader = Operator::replica_with(bed, "overlap-a", None);
    wait_until("first replica leads", Duration::from_secs(20), || {
        leader.leading()
    });
    let standby = Operator::replica_with(bed, "overlap-b", None);
    let ns = bed.create_namespace("bench-overlap");
    std::thread::sleep(Duration::from_secs(3));
    leader.signal("STOP");
    // Work that waits for the paused leader when it resumes.
    for i in 0..20 {
        bed.apply(
            "host",
            &json!({
                "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedIngress",
                "metadata": {"name": format!("overlap-{i}"), "namespace": ns},
                "spec": {"template": {"spec": {"rules": [{"host": "overlap.example.com"}]}},
                         "placement": {"clusters": ["member1"]}}
            })
            .to_string(),
        );
    }
    wait_until("standby takes over", Duration::from_secs(30), || {
        standby.leading()
    });
    std::thread::sleep(Duration::from_secs(2));
    leader.signal("CONT");
    let exited = leader.wait_exit(Duration::from_secs(10));
    assert!(exited.is_some(), "the resumed leader kept running");
    let since = standby.led_since().expect("the standby logged its start");
    let overlap = leader.writes_since(since).len();
    bed.kubectl("host", &["delete", "namespace", &ns, "--wait=false"]);
    overlap
}
