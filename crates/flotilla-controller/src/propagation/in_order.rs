//! Writes that go one at a time and in order per key, the latest winning. Each write states
//! everything its field manager owns of an object (server-side apply), so of the writes asked for
//! while one is in flight only the newest matters: it replaces any other waiting. A failed write is
//! tried again with exponential backoff and jitter, unless a newer one is waiting (sent instead at
//! once). Pure: the caller sends, and tells when a write finished.
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};

/// The first retry of a failed write, and the longest wait between retries.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub struct InOrder<K, V> {
    busy: HashMap<K, Slot<V>>,
}

/// A key with a write in flight.
struct Slot<V> {
    sent: Sent<V>,
    waiting: Option<Sent<V>>,
    retries: Option<ExponentialBackoff>,
}

struct Sent<V> {
    digest: u64,
    value: V,
}

/// What to do once a key's write finished.
#[derive(Debug, PartialEq)]
pub enum Next<V> {
    /// Nothing more for this key: the write that finished was its last word.
    Idle,
    /// Send this now (a newer write that waited).
    Send(V),
    /// The write failed and nothing newer waits: send it again after the delay.
    Retry(V, Duration),
}

impl<K, V> Default for InOrder<K, V> {
    fn default() -> Self {
        Self {
            busy: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> InOrder<K, V> {
    /// A write of `value` (whose content `digest` identifies) for `key`: `Some` to send it now;
    /// `None` when it waits for the one in flight, or says what that one says already.
    pub fn offer(&mut self, key: K, digest: u64, value: V) -> Option<V> {
        match self.busy.get_mut(&key) {
            Some(slot) => {
                slot.waiting = (slot.sent.digest != digest).then_some(Sent { digest, value });
                None
            }
            None => {
                let sent = Sent {
                    digest,
                    value: value.clone(),
                };
                self.busy.insert(
                    key,
                    Slot {
                        sent,
                        waiting: None,
                        retries: None,
                    },
                );
                Some(value)
            }
        }
    }

    /// The write in flight for `key` finished (`ok`: it landed).
    pub fn finished(&mut self, key: &K, ok: bool) -> Next<V> {
        let Some(slot) = self.busy.get_mut(key) else {
            return Next::Idle;
        };
        if let Some(newer) = slot.waiting.take() {
            let value = newer.value.clone();
            slot.sent = newer;
            return Next::Send(value);
        }
        if ok {
            self.busy.remove(key);
            return Next::Idle;
        }
        let delays = slot.retries.get_or_insert_with(|| {
            ExponentialBuilder::default()
                .with_min_delay(RETRY_FIRST)
                .with_max_delay(RETRY_MAX)
                .with_jitter()
                .without_max_times()
                .build()
        });
        Next::Retry(slot.sent.value.clone(), delays.next().unwrap_or(RETRY_MAX))
    }

    /// Drops `key` (its object is gone): what is in flight finishes as [`Next::Idle`].
    pub fn forget(&mut self, key: &K) {
        self.busy.remove(key);
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.busy.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_nothing_in_flight_is_sent_at_once() {
        let mut q = InOrder::default();
        assert_eq!(q.offer("a", 1, "one"), Some("one"));
        assert_eq!(q.offer("b", 1, "one"), Some("one"));
        assert_eq!(q.finished(&"a", true), Next::Idle);
        // Nothing in flight for "a" any more: the next write goes at once; "b" still waits.
        assert_eq!(q.offer("a", 2, "two"), Some("two"));
        assert_eq!(q.offer("b", 2, "two"), None);
    }

    #[test]
    fn writes_asked_for_while_one_is_in_flight_wait_and_only_the_newest_is_sent() {
        let mut q = InOrder::default();
        assert_eq!(q.offer("a", 1, "one"), Some("one"));
        assert_eq!(q.offer("a", 2, "two"), None);
        assert_eq!(q.offer("a", 3, "three"), None);
        assert_eq!(q.finished(&"a", true), Next::Send("three"));
        assert_eq!(q.finished(&"a", true), Next::Idle);
    }

    #[test]
    fn a_write_saying_what_the_one_in_flight_says_is_not_sent_again() {
        let mut q = InOrder::default();
        q.offer("a", 1, "one");
        assert_eq!(q.offer("a", 2, "two"), None);
        // Back to what is in flight: the waiting "two" is stale, nothing more is sent.
        assert_eq!(q.offer("a", 1, "one"), None);
        assert_eq!(q.finished(&"a", true), Next::Idle);
    }

    #[test]
    fn a_failed_write_is_retried_with_growing_delays_until_it_lands() {
        let mut q = InOrder::default();
        q.offer("a", 1, "one");
        let Next::Retry(v, first) = q.finished(&"a", false) else {
            panic!("a failed write is retried");
        };
        assert_eq!(v, "one");
        let mut last = first;
        for _ in 0..12 {
            let Next::Retry(_, d) = q.finished(&"a", false) else {
                panic!("retried until it lands");
            };
            last = d;
        }
        assert!(last > first, "{last:?} after {first:?}");
        assert!(
            last <= RETRY_MAX * 2,
            "capped (jitter at most doubles): {last:?}"
        );
        assert_eq!(q.finished(&"a", true), Next::Idle);
    }

    #[test]
    fn a_newer_write_replaces_the_retry_of_a_failed_one() {
        let mut q = InOrder::default();
        q.offer("a", 1, "one");
        assert_eq!(q.offer("a", 2, "two"), None);
        assert_eq!(q.finished(&"a", false), Next::Send("two"));
        assert_eq!(q.finished(&"a", true), Next::Idle);
    }

    #[test]
    fn a_forgotten_key_finishes_idle() {
        let mut q = InOrder::default();
        q.offer("a", 1, "one");
        q.offer("a", 2, "two");
        q.forget(&"a");
        assert_eq!(q.finished(&"a", false), Next::Idle);
        assert_eq!(q.offer("a", 2, "two"), Some("two"));
        q.retain(|k| *k != "a");
        assert_eq!(
            q.offer("a", 3, "three"),
            Some("three"),
            "retained out: not in flight"
        );
    }
}
