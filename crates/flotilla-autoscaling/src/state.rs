//! The memory the HPA keeps between reconciliations: recent recommendations (for stabilization)
//! and recent scale events (for rate policies). Upstream keeps these in the controller's memory,
//! keyed by HPA; here the caller keeps one [`ScalerState`] per ScalingPolicy.

use serde::{Deserialize, Serialize};

use crate::spec::ResolvedBehavior;
use crate::time::Timestamp;

/// At most this many entries are kept in each history. Only reached when `decide` is called more
/// than this many times within the longest window (e.g. more than ~2.7 calls a second with a
/// 3600 s window); the oldest entries are dropped first.
pub const MAX_HISTORY: usize = 10_000;

/// One unstabilized recommendation (upstream `timestampedRecommendation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedRecommendation {
    /// When it was made.
    pub at: Timestamp,
    /// The replicas the metrics proposed.
    pub replicas: i32,
}

/// One change of the total replicas made by the autoscaler (upstream `timestampedScaleEvent`,
/// with the scale-up and scale-down lists merged: the sign tells the direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    /// When the change was decided.
    pub at: Timestamp,
    /// Positive for a scale-up, negative for a scale-down, never 0.
    pub replica_change: i32,
}

/// What the autoscaler remembers between calls for one policy. Keep it in memory (or serialize
/// it) and pass the same value to every [`crate::decide`] call for that policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerState {
    /// Whether the initial recommendation (the current replicas at the first call) was recorded.
    #[serde(default)]
    initialized: bool,
    #[serde(default)]
    recommendations: Vec<TimestampedRecommendation>,
    #[serde(default)]
    scale_events: Vec<ScaleEvent>,
}

impl ScalerState {
    /// An empty state, as for a policy seen for the first time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorded recommendations, oldest first.
    pub fn recommendations(&self) -> &[TimestampedRecommendation] {
        &self.recommendations
    }

    /// The recorded scale events, oldest first.
    pub fn scale_events(&self) -> &[ScaleEvent] {
        &self.scale_events
    }

    /// The time of the latest scale event still remembered (for `status.lastScaleTime`; events
    /// are forgotten once older than the longest policy period).
    pub fn last_scale_time(&self) -> Option<Timestamp> {
        self.scale_events.iter().map(|e| e.at).max()
    }

    /// Upstream `recordInitialRecommendation`: the first time a policy is seen, the current
    /// replicas count as a recommendation, so a fresh controller does not scale down before a
    /// full scale-down window of real recommendations.
    pub(crate) fn record_initial_recommendation(&mut self, current: i32, now: Timestamp) {
        if !self.initialized {
            self.initialized = true;
            self.push_recommendation(current, now);
        }
    }

    pub(crate) fn push_recommendation(&mut self, replicas: i32, now: Timestamp) {
        self.recommendations
            .push(TimestampedRecommendation { at: now, replicas });
        if self.recommendations.len() > MAX_HISTORY {
            let excess = self.recommendations.len() - MAX_HISTORY;
            self.recommendations.drain(..excess);
        }
    }

    /// Records a change from `from` to `to` replicas (nothing when equal).
    pub(crate) fn record_scale_event(&mut self, from: i32, to: i32, now: Timestamp) {
        let change = i64::from(to) - i64::from(from);
        if change == 0 {
            return;
        }
        let change = i32::try_from(change).unwrap_or(if change > 0 { i32::MAX } else { -i32::MAX });
        self.scale_events.push(ScaleEvent {
            at: now,
            replica_change: change,
        });
        if self.scale_events.len() > MAX_HISTORY {
            let excess = self.scale_events.len() - MAX_HISTORY;
            self.scale_events.drain(..excess);
        }
    }

    /// Forgets what no window or period of `behavior` can see any more at `now` (upstream reuses
    /// such slots instead). Scale events are kept for the longest period of either direction,
    /// because both directions' limits look at both kinds of events.
    pub(crate) fn prune(&mut self, now: Timestamp, behavior: &ResolvedBehavior) {
        let window = i64::from(behavior.longest_window_seconds());
        self.recommendations
            .retain(|r| r.at.is_within_window(now, window));
        let period = i64::from(behavior.longest_period_seconds());
        self.scale_events
            .retain(|e| e.at.is_within_window(now, period));
    }

    /// Replicas added and removed by the events inside the period ending at `now` (upstream
    /// `getReplicasChangePerPeriod` over the scale-up and the scale-down events).
    pub(crate) fn changes_in_period(&self, now: Timestamp, period_seconds: i32) -> (i64, i64) {
        let period = i64::from(period_seconds.max(0));
        self.scale_events
            .iter()
            .filter(|e| e.at.is_within_window(now, period))
            .fold((0i64, 0i64), |(added, removed), e| {
                let c = i64::from(e.replica_change);
                if c > 0 {
                    (added.saturating_add(c), removed)
                } else {
                    (added, removed.saturating_add(-c))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    #[test]
    fn initial_recommendation_is_recorded_once() {
        let mut s = ScalerState::new();
        s.record_initial_recommendation(5, t(10));
        s.record_initial_recommendation(7, t(20));
        assert_eq!(
            s.recommendations(),
            &[TimestampedRecommendation {
                at: t(10),
                replicas: 5
            }]
        );
        // Pruning everything does not make it record a fake initial recommendation again.
        s.prune(t(10_000), &ResolvedBehavior::resolve(None));
        assert!(s.recommendations().is_empty());
        s.record_initial_recommendation(7, t(10_000));
        assert!(s.recommendations().is_empty());
    }

    #[test]
    fn events_are_split_by_direction_and_period() {
        let mut s = ScalerState::new();
        s.record_scale_event(10, 14, t(100));
        s.record_scale_event(14, 12, t(110));
        s.record_scale_event(12, 12, t(111));
        assert_eq!(s.scale_events().len(), 2);
        assert_eq!(s.changes_in_period(t(112), 15), (4, 2));
        assert_eq!(s.changes_in_period(t(115), 15), (0, 2));
        assert_eq!(s.changes_in_period(t(125), 15), (0, 0));
        assert_eq!(s.last_scale_time(), Some(t(110)));
        s.prune(t(125), &ResolvedBehavior::resolve(None));
        assert!(s.scale_events().is_empty());
    }

    #[test]
    fn extreme_changes_do_not_overflow() {
        let mut s = ScalerState::new();
        s.record_scale_event(i32::MIN, i32::MAX, t(1));
        s.record_scale_event(i32::MAX, i32::MIN, t(1));
        s.record_scale_event(0, i32::MAX, t(1));
        s.record_scale_event(0, i32::MAX, t(1));
        let (added, removed) = s.changes_in_period(t(1), 15);
        assert_eq!(added, 3 * i64::from(i32::MAX));
        assert_eq!(removed, i64::from(i32::MAX));
    }

    #[test]
    fn histories_are_capped() {
        let mut s = ScalerState::new();
        for i in 0..(MAX_HISTORY + 5) {
            s.push_recommendation(i32::try_from(i).unwrap_or(0), t(1));
            s.record_scale_event(0, 1, t(1));
        }
        assert_eq!(s.recommendations().len(), MAX_HISTORY);
        assert_eq!(s.scale_events().len(), MAX_HISTORY);
        assert_eq!(s.recommendations()[0].replicas, 5);
    }

    #[test]
    fn serde_round_trip() {
        let mut s = ScalerState::new();
        s.record_initial_recommendation(3, t(1));
        s.record_scale_event(3, 6, t(2));
        let json = serde_json::to_string(&s).unwrap_or_default();
        let back: ScalerState = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, s);
        let empty: ScalerState = serde_json::from_str("{}").unwrap_or_else(|_| s.clone());
        assert_eq!(empty, ScalerState::new());
    }
}
