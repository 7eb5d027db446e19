//! The lease guard: whether this replica may write at all.
//!
//! Every host and member write asks the guard first ([`LeaseGuard::check`]) or runs under it
//! ([`LeaseGuard::fence`]). The guard is valid until `start of the last successful Lease renewal
//! + renew deadline`, measured on the monotonic clock. Validity is judged at the moment of each
//! check, so it does not depend on any task having run: a replica resumed after SIGSTOP, or one
//! whose renewal request hangs, finds the guard lapsed on its very first check. Once lapsed, a
//! guard never becomes valid again; leading again is a new term with a new guard (the operator
//! exits and starts over, see `flotilla-operator/src/run.rs`).
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::time::Instant;

/// Why a write was not made: this replica's leader Lease lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not written: this replica no longer holds the leader Lease (fenced)")]
pub struct Fenced;

/// How long the guard is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    /// No leader election (`--leader-elect false`): the one replica always writes.
    Unbounded,
    /// Valid strictly before this instant.
    Until(Instant),
    /// Lapsed for good.
    Lapsed,
}

impl Validity {
    fn valid_at(self, now: Instant) -> bool {
        match self {
            Validity::Unbounded => true,
            Validity::Until(deadline) => now < deadline,
            Validity::Lapsed => false,
        }
    }

    /// After a successful renewal whose request started at `renewed + renew deadline = deadline`,
    /// judged at `now`. A guard that already lapsed stays lapsed even if a late renewal succeeds:
    /// a standby may have led in the gap, so decisions made before it must not be reused. The
    /// deadline never moves back (an older renewal answering late).
    fn extended(self, deadline: Instant, now: Instant) -> Validity {
        match self {
            Validity::Unbounded => Validity::Unbounded,
            Validity::Lapsed => Validity::Lapsed,
            Validity::Until(current) if now >= current => Validity::Lapsed,
            Validity::Until(current) => Validity::Until(current.max(deadline)),
        }
    }
}

/// Shared by every writer of one process; cheap to clone.
#[derive(Clone)]
pub struct LeaseGuard {
    inner: Arc<Inner>,
}

struct Inner {
    validity: watch::Sender<Validity>,
    permitted: AtomicU64,
    refused: AtomicU64,
}

impl LeaseGuard {
    fn with(validity: Validity) -> Self {
        Self {
            inner: Arc::new(Inner {
                validity: watch::Sender::new(validity),
                permitted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// A guard that never lapses, for a single replica run without leader election.
    pub fn unbounded() -> Self {
        Self::with(Validity::Unbounded)
    }

    /// A guard valid until `deadline` (a new term: the Lease was just acquired).
    pub fn until(deadline: Instant) -> Self {
        Self::with(Validity::Until(deadline))
    }

    /// Records a successful renewal: valid until `deadline` now, unless it lapsed already.
    pub fn extend(&self, deadline: Instant) {
        let now = Instant::now();
        self.inner
            .validity
            .send_if_modified(|v| replace_if_changed(v, v.extended(deadline, now)));
    }

    /// Ends the term at once (the Lease is lost, released, or the process stops).
    pub fn lapse(&self) {
        self.inner
            .validity
            .send_if_modified(|v| replace_if_changed(v, Validity::Lapsed));
    }

    /// The instant the guard lapses unless renewed; `None` without leader election.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.inner.validity.borrow() {
            Validity::Until(deadline) => Some(deadline),
            Validity::Lapsed => Some(Instant::now()),
            Validity::Unbounded => None,
        }
    }

    /// Whether a write would be permitted now (not counted, not logged).
    pub fn is_valid(&self) -> bool {
        self.inner.validity.borrow().valid_at(Instant::now())
    }

    /// Whether a write may start now. Counts the answer, and logs every refusal (a refused write
    /// is an incident: the process is about to exit).
    pub fn check(&self) -> Result<(), Fenced> {
        let now = Instant::now();
        let validity = *self.inner.validity.borrow();
        if validity.valid_at(now) {
            self.inner.permitted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "flotilla::writes", "write permitted by the lease guard");
            return Ok(());
        }
        if validity != Validity::Lapsed {
            // Past the deadline but no timer has fired yet (e.g. just resumed from SIGSTOP).
            self.lapse();
        }
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "flotilla::writes", "write refused: the leader Lease lapsed");
        Err(Fenced)
    }

    /// Resolves when the guard lapses: at its deadline by a timer of its own (it does not wait
    /// for a renewal call to return), or at once when [`Self::lapse`] is called.
    pub async fn lapsed(&self) {
        let mut rx = self.inner.validity.subscribe();
        loop {
            let validity = *rx.borrow_and_update();
            match validity {
                Validity::Lapsed => return,
                Validity::Until(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {
                            // Re-read: a renewal may have moved the deadline meanwhile.
                            if !rx.borrow().valid_at(Instant::now()) {
                                self.lapse();
                                return;
                            }
                        }
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
                Validity::Unbounded => {
                    if rx.changed().await.is_err() {
                        // Cannot happen while `self` holds the sender; never lapse then.
                        futures::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// Runs one write under the guard: refused when the guard has lapsed, and abandoned (the
    /// request dropped mid-flight) as soon as it lapses.
    pub async fn fence<F: Future>(&self, write: F) -> Result<F::Output, Fenced> {
        self.check()?;
        tokio::select! {
            biased;
            () = self.lapsed() => {
                tracing::warn!(target: "flotilla::writes", "write abandoned: the leader Lease lapsed while it was in flight");
                Err(Fenced)
            }
            out = write => Ok(out),
        }
    }

    /// Writes permitted and refused so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.permitted.load(Ordering::Relaxed),
            self.inner.refused.load(Ordering::Relaxed),
        )
    }
}

fn replace_if_changed(slot: &mut Validity, new: Validity) -> bool {
    let changed = *slot != new;
    *slot = new;
    changed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn validity_ends_at_the_deadline() {
        let t0 = Instant::now();
        let v = Validity::Until(t0 + Duration::from_secs(5));
        assert!(v.valid_at(t0));
        assert!(v.valid_at(t0 + Duration::from_millis(4999)));
        assert!(!v.valid_at(t0 + Duration::from_secs(5)));
        assert!(!Validity::Lapsed.valid_at(t0));
        assert!(Validity::Unbounded.valid_at(t0 + Duration::from_secs(1 << 30)));
    }

    #[test]
    fn a_renewal_extends_only_a_guard_that_is_still_valid() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let v = Validity::Until(t0 + s(5));
        assert_eq!(v.extended(t0 + s(7), t0 + s(2)), Validity::Until(t0 + s(7)));
        // A late renewal after the deadline does not revive the term.
        assert_eq!(v.extended(t0 + s(40), t0 + s(30)), Validity::Lapsed);
        assert_eq!(Validity::Lapsed.extended(t0 + s(9), t0), Validity::Lapsed);
        // An older renewal answering late never moves the deadline back.
        assert_eq!(v.extended(t0 + s(3), t0 + s(1)), Validity::Until(t0 + s(5)));
        assert_eq!(
            Validity::Unbounded.extended(t0, t0 + s(1)),
            Validity::Unbounded
        );
    }

    #[test]
    fn a_check_past_the_deadline_lapses_the_guard_without_any_timer() {
        let guard = LeaseGuard::until(Instant::now());
        assert_eq!(guard.check(), Err(Fenced));
        // Renewing cannot bring it back.
        guard.extend(Instant::now() + Duration::from_secs(60));
        assert_eq!(guard.check(), Err(Fenced));
        assert_eq!(guard.counts(), (0, 2));
        assert!(LeaseGuard::unbounded().check().is_ok());
    }

    #[tokio::test]
    async fn the_deadline_timer_fires_without_a_renewal_returning() {
        let guard = LeaseGuard::until(Instant::now() + Duration::from_millis(50));
        assert!(guard.check().is_ok());
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), guard.lapsed())
            .await
            .expect("lapsed at the deadline");
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(guard.check(), Err(Fenced));
    }

    #[tokio::test]
    async fn an_in_flight_write_is_abandoned_when_the_guard_lapses() {
        let guard = LeaseGuard::until(Instant::now() + Duration::from_millis(50));
        let hung = futures::future::pending::<()>();
        let result = tokio::time::timeout(Duration::from_secs(5), guard.fence(hung)).await;
        assert_eq!(result, Ok(Err(Fenced)));
        let quick = guard.fence(async { 1 }).await;
        assert_eq!(quick, Err(Fenced));
    }

    #[tokio::test]
    async fn renewals_move_the_timer() {
        let guard = LeaseGuard::until(Instant::now() + Duration::from_millis(50));
        guard.extend(Instant::now() + Duration::from_millis(300));
        let started = Instant::now();
        guard.lapsed().await;
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
