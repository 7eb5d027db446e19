//! `make bench-leader`: two operator replicas against the host; SIGKILL the leader and time how
//! long until the standby leads. Prints `BENCH leader_failover_ms <median> ms` over several rounds
//! with the default Lease duration (8 s).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::{OPERATOR_NAMESPACE, Operator, TestBed};

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
        bed.kubectl(
            "host",
            &[
                "delete",
                "lease",
                "flotilla-leader",
                "-n",
                OPERATOR_NAMESPACE,
                "--ignore-not-found",
            ],
        );
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
}
