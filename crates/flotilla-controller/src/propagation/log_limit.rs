//! Member failures are logged once per member and cause, then at most once a minute: a member
//! that refuses every request (or is down) must not fill the operator's log.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_secs(60);
/// How much of a cause tells causes apart (messages differ in object names after that).
const CAUSE_PREFIX: usize = 80;

#[derive(Default)]
pub struct LogLimit {
    last: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl LogLimit {
    /// `Some(n)` when this failure should be logged now, with `n` identical ones suppressed
    /// since the last line.
    pub fn admit(&self, member: &str, cause: &str) -> Option<u64> {
        let cause: String = cause.chars().take(CAUSE_PREFIX).collect();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match last.get_mut(&(member.to_string(), cause.clone())) {
            Some((at, suppressed)) if now.duration_since(*at) < QUIET => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                if last.len() > 10_000 {
                    last.clear();
                }
                last.insert((member.to_string(), cause), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_is_logged_once_a_minute_and_others_at_once() {
        let limit = LogLimit::default();
        assert_eq!(limit.admit("m1", "connection refused"), Some(0));
        assert_eq!(limit.admit("m1", "connection refused"), None);
        assert_eq!(limit.admit("m2", "connection refused"), Some(0));
        assert_eq!(limit.admit("m1", "forbidden"), Some(0));
    }
}
