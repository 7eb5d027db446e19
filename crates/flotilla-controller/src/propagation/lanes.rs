//! One lane per member: bounded concurrency and a deadline for every request the engine sends
//! it. A hung member holds at most its lane's permits, each for at most the deadline; work for
//! the other members goes on, and work for the hung member fails fast once its lane is full
//! (and is retried with backoff by its object's reconcile).
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Requests in flight to one member at once.
pub const LANE_WIDTH: usize = 16;
/// How long a request may wait for a free slot in its member's lane.
pub const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// The longest any one operation (which may be a read and a write) may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Why an operation did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneError {
    /// The member's lane stayed full: it is slow or hung.
    Busy,
    /// The operation outlived the deadline.
    Timeout,
    /// This replica no longer holds the leader Lease: nothing is written.
    Fenced,
}

impl std::fmt::Display for LaneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaneError::Busy => write!(
                f,
                "the member is not answering fast enough ({LANE_WIDTH} requests already in flight)"
            ),
            LaneError::Timeout => write!(
                f,
                "the member did not answer within {}s",
                DEADLINE.as_secs()
            ),
            LaneError::Fenced => write!(
                f,
                "not written: this replica no longer holds the leader Lease"
            ),
        }
    }
}

/// The lanes of every member.
#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Lanes {
    fn lane(&self, member: &str) -> Arc<Semaphore> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .entry(member.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(LANE_WIDTH)))
            .clone()
    }

    /// Runs `op` in `member`'s lane.
    pub async fn run<T>(&self, member: &str, op: impl Future<Output = T>) -> Result<T, LaneError> {
        let lane = self.lane(member);
        let _permit = tokio::time::timeout(QUEUE_WAIT, lane.acquire_owned())
            .await
            .map_err(|_| LaneError::Busy)?
            .map_err(|_| LaneError::Busy)?;
        tokio::time::timeout(DEADLINE, op)
            .await
            .map_err(|_| LaneError::Timeout)
    }

    /// Forgets members that were removed (keeps those in `live`).
    pub fn retain_members(&self, live: &std::collections::HashSet<String>) {
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|m, _| live.contains(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_lane_fails_fast_and_other_lanes_are_free() {
        let lanes = Arc::new(Lanes::default());
        for _ in 0..LANE_WIDTH {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                let _ = lanes.run("hung", std::future::pending::<()>()).await;
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(lanes.run("hung", async {}).await, Err(LaneError::Busy));
        assert_eq!(lanes.run("ok", async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_past_the_deadline_times_out() {
        let lanes = Lanes::default();
        let r = lanes.run("m", std::future::pending::<()>()).await;
        assert_eq!(r, Err(LaneError::Timeout));
    }
}
