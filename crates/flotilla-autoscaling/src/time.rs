//! Time as an input: the caller passes "now" to every call, so the library has no clock.

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch.
///
/// The library only compares timestamps and subtracts windows from them; it never reads a clock.
/// Any monotonic-enough millisecond counter works, as long as the same one is used for every call
/// on one [`crate::ScalerState`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// The timestamp `secs` seconds after the epoch (saturating).
    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// This timestamp plus `secs` seconds (saturating).
    pub const fn saturating_add_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// This timestamp plus `millis` milliseconds (saturating).
    pub const fn saturating_add_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// Whether `self` is strictly after `now - window_secs` (Go's `t.After(now.Add(-window))`,
    /// which is how the HPA decides that a sample is inside a window). Computed without
    /// underflow: a window longer than `now` reaches back before the epoch.
    pub(crate) fn is_within_window(self, now: Timestamp, window_secs: i64) -> bool {
        let cutoff = i128::from(now.0) - i128::from(window_secs.max(0)) * 1000;
        i128::from(self.0) > cutoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_strict_and_never_underflows() {
        let now = Timestamp::from_unix_secs(100);
        assert!(Timestamp::from_unix_secs(100).is_within_window(now, 15));
        assert!(Timestamp::from_unix_millis(85_001).is_within_window(now, 15));
        // Exactly at the cutoff is outside, as with Go's After.
        assert!(!Timestamp::from_unix_secs(85).is_within_window(now, 15));
        // A window longer than "now" includes the epoch.
        assert!(Timestamp::from_unix_millis(0).is_within_window(now, 3600));
        // A zero window includes only samples from the future.
        assert!(!now.is_within_window(now, 0));
        assert!(now.saturating_add_millis(1).is_within_window(now, 0));
        // Negative windows behave as zero.
        assert!(!now.is_within_window(now, -5));
        assert_eq!(
            Timestamp::from_unix_secs(u64::MAX),
            Timestamp::from_unix_millis(u64::MAX)
        );
        assert_eq!(
            Timestamp::from_unix_millis(u64::MAX - 1).saturating_add_secs(10),
            Timestamp::from_unix_millis(u64::MAX)
        );
    }
}
