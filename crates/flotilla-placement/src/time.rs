//! Time as an input.
//!
//! The engine has no clock: every instant it reasons about (when a cluster's health last changed,
//! when a cluster was selected, "now") is passed in by the caller. That keeps decisions
//! reproducible and lets tests and benchmarks control time exactly. Instants are plain
//! milliseconds since the Unix epoch, which converts losslessly from `SystemTime` and from the
//! Kubernetes `metav1.Time` the controllers read.
use std::time::{Duration, SystemTime};

/// An instant, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// Converts a `SystemTime`. Instants before the epoch clamp to the epoch, and instants too
    /// far in the future clamp to the largest representable one, so conversion never fails.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since_epoch) => Self(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)),
            Err(_) => Self(0),
        }
    }

    /// How long after `earlier` this instant is; zero when `earlier` is later (clock skew
    /// between the prober and the controller must not produce a negative age).
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This instant moved forward by `offset`, saturating at the largest representable instant.
    pub fn saturating_add(self, offset: Duration) -> Self {
        let millis = u64::try_from(offset.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }
}

/// RFC 3339 to the second, in UTC (`2026-12-06T09:15:54Z`), as Kubernetes shows times.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = i64::try_from(self.0 / 1_000).unwrap_or(i64::MAX);
        match jiff::Timestamp::from_second(seconds) {
            Ok(t) => write!(f, "{t}"),
            // Past the year 9999: no calendar date to show.
            Err(_) => write!(f, "{} ms after the Unix epoch", self.0),
        }
    }
}

/// A short human rendering of a duration for explanations: `45s`, `3m20s`, `2h5m`, `3d4h`.
pub(crate) fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_never_goes_negative() {
        let earlier = Timestamp::from_unix_millis(5_000);
        let later = Timestamp::from_unix_millis(7_500);
        assert_eq!(
            later.saturating_since(earlier),
            Duration::from_millis(2_500)
        );
        assert_eq!(earlier.saturating_since(later), Duration::ZERO);
    }

    #[test]
    fn shows_as_rfc3339_to_the_second() {
        assert_eq!(
            Timestamp::from_unix_millis(1_796_548_554_999).to_string(),
            "2026-12-06T09:15:54Z"
        );
        assert_eq!(Timestamp::default().to_string(), "1970-01-01T00:00:00Z");
        assert!(
            Timestamp::from_unix_millis(u64::MAX)
                .to_string()
                .contains("ms after")
        );
    }

    #[test]
    fn humanises_durations() {
        assert_eq!(human(Duration::from_millis(999)), "0s");
        assert_eq!(human(Duration::from_secs(200)), "3m20s");
        assert_eq!(human(Duration::from_secs(7_500)), "2h5m");
        assert_eq!(human(Duration::from_secs(86_400 * 3 + 3_600 * 4)), "3d4h");
    }

    #[test]
    fn system_time_round_trips_and_clamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_234);
        assert_eq!(Timestamp::from_system_time(t).as_unix_millis(), 1_234);
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Timestamp::from_system_time(before).as_unix_millis(), 0);
        assert_eq!(
            Timestamp::from_unix_millis(u64::MAX).saturating_add(Duration::from_secs(1)),
            Timestamp::from_unix_millis(u64::MAX)
        );
    }
}
