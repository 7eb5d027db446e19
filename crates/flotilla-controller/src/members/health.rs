//! The member health state machine: probe results in, Ready/NotReady transitions out.
//!
//! A member turns NotReady after `failure_threshold` consecutive failed probes and Ready again
//! after `success_threshold` consecutive successes, so a short blip does not move placements.
//! The very first successful probe makes a new member Ready at once (nothing to debounce yet).

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// `/readyz` answered `ok`.
    Healthy,
    /// The probe failed; `reason` is CamelCase for conditions, `message` says what happened.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// The health a member is in, as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Not probed to a conclusion yet.
    Unknown,
    Ready,
    NotReady,
}

/// A change of [`HealthState`] to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: HealthState,
    pub to: HealthState,
    pub reason: &'static str,
    pub message: String,
}

/// Counts consecutive probe results against the thresholds.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    failure_threshold: u32,
    success_threshold: u32,
    state: HealthState,
    consecutive_failures: u32,
    consecutive_successes: u32,
}

impl HealthTracker {
    pub fn new(failure_threshold: u32, success_threshold: u32) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
            state: HealthState::Unknown,
            consecutive_failures: 0,
            consecutive_successes: 0,
        }
    }

    /// A tracker that continues from a known state (a replaced agent keeps the member's health).
    pub fn starting_at(failure_threshold: u32, success_threshold: u32, state: HealthState) -> Self {
        Self {
            state,
            ..Self::new(failure_threshold, success_threshold)
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Records one probe; returns the transition it causes, if any.
    pub fn record(&mut self, outcome: &ProbeOutcome) -> Option<Transition> {
        let from = self.state;
        match outcome {
            ProbeOutcome::Healthy => {
                self.consecutive_failures = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                let becomes_ready = match self.state {
                    HealthState::Unknown => true,
                    HealthState::NotReady => self.consecutive_successes >= self.success_threshold,
                    HealthState::Ready => false,
                };
                becomes_ready.then(|| {
                    self.state = HealthState::Ready;
                    Transition {
                        from,
                        to: HealthState::Ready,
                        reason: "ProbeSucceeded",
                        message: format!(
                            "readyz answered ok {} time(s) in a row",
                            self.consecutive_successes
                        ),
                    }
                })
            }
            ProbeOutcome::Failed { reason, message } => {
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let becomes_not_ready = self.state != HealthState::NotReady
                    && self.consecutive_failures >= self.failure_threshold;
                becomes_not_ready.then(|| {
                    self.state = HealthState::NotReady;
                    Transition {
                        from,
                        to: HealthState::NotReady,
                        reason,
                        message: format!(
                            "{} consecutive probes failed; last: {message}",
                            self.consecutive_failures
                        ),
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> ProbeOutcome {
        ProbeOutcome::Failed {
            reason: "Unreachable",
            message: "connection refused".into(),
        }
    }

    #[test]
    fn first_success_makes_a_new_member_ready() {
        let mut t = HealthTracker::new(4, 2);
        let tr = t.record(&ProbeOutcome::Healthy).expect("transition");
        assert_eq!((tr.from, tr.to), (HealthState::Unknown, HealthState::Ready));
    }

    #[test]
    fn a_blip_shorter_than_the_failure_threshold_changes_nothing() {
        let mut t = HealthTracker::new(4, 2);
        t.record(&ProbeOutcome::Healthy);
        for _ in 0..3 {
            assert_eq!(t.record(&fail()), None);
        }
        assert_eq!(t.record(&ProbeOutcome::Healthy), None);
        assert_eq!(t.state(), HealthState::Ready);
        // The failure count restarted: three more failures are still not enough.
        for _ in 0..3 {
            assert_eq!(t.record(&fail()), None);
        }
        assert_eq!(t.state(), HealthState::Ready);
    }

    #[test]
    fn threshold_failures_make_it_not_ready_once() {
        let mut t = HealthTracker::new(4, 2);
        t.record(&ProbeOutcome::Healthy);
        let transitions: Vec<_> = (0..10).filter_map(|_| t.record(&fail())).collect();
        assert_eq!(transitions.len(), 1);
        assert_eq!(transitions[0].to, HealthState::NotReady);
        assert_eq!(transitions[0].reason, "Unreachable");
    }

    #[test]
    fn recovery_needs_the_success_threshold() {
        let mut t = HealthTracker::new(2, 3);
        t.record(&ProbeOutcome::Healthy);
        t.record(&fail());
        t.record(&fail());
        assert_eq!(t.state(), HealthState::NotReady);
        assert_eq!(t.record(&ProbeOutcome::Healthy), None);
        assert_eq!(t.record(&ProbeOutcome::Healthy), None);
        let tr = t.record(&ProbeOutcome::Healthy).expect("ready again");
        assert_eq!(tr.to, HealthState::Ready);
    }

    #[test]
    fn a_member_that_never_answers_becomes_not_ready() {
        let mut t = HealthTracker::new(3, 1);
        assert_eq!(t.record(&fail()), None);
        assert_eq!(t.record(&fail()), None);
        assert_eq!(t.record(&fail()).map(|t| t.to), Some(HealthState::NotReady));
    }
}
