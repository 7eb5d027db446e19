//! How a pod counts for one metric, from what the member reports of it: upstream
//! `replica_calculator.go` `groupPods`, with its two periods (`--horizontal-pod-autoscaler-cpu-
//! initialization-period`, 5 min, and `--horizontal-pod-autoscaler-initial-readiness-delay`, 30 s,
//! the kube-controller-manager defaults). Pure: the caller reads the pods and passes the time.
use crate::pods::PodReadiness;
use crate::time::Timestamp;

/// Upstream default of `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const CPU_INITIALIZATION_PERIOD_SECS: u64 = 300;
/// Upstream default of `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const INITIAL_READINESS_DELAY_SECS: u64 = 30;

/// A pod's phase, as far as the calculation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// From `status.phase` (an absent or unknown phase is `Unknown`).
    pub fn parse(phase: Option<&str>) -> Self {
        match phase {
            Some("Pending") => Self::Pending,
            Some("Running") => Self::Running,
            Some("Succeeded") => Self::Succeeded,
            Some("Failed") => Self::Failed,
            _ => Self::Unknown,
        }
    }
}

/// The pod's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyCondition {
    /// `status == "False"` (upstream tests for False: an Unknown status does not make a pod
    /// unready).
    pub status_false: bool,
    pub last_transition: Timestamp,
}

/// What the member reports of one pod, and of its sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodFacts {
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    pub phase: PodPhase,
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`.
    pub start_time: Option<Timestamp>,
    /// The sample's timestamp and window (metrics.k8s.io), when the pod has one.
    pub sample: Option<(Timestamp, u64)>,
}

/// How the pod counts for a metric of `resource` (`Some("cpu")` for CPU; `None` for a Pods
/// metric) at `now`. A pod without a sample is `Ready` (upstream treats it as missing, before
/// it looks at readiness), unless it is deleted, failed or pending.
pub fn classify(pod: &PodFacts, resource: Option<&str>, now: Timestamp) -> PodReadiness {
    if pod.deleting || pod.phase == PodPhase::Failed {
        return PodReadiness::Ignored;
    }
    if pod.phase == PodPhase::Pending {
        return PodReadiness::Unready;
    }
    let Some((sample_time, window_secs)) = pod.sample else {
        return PodReadiness::Ready;
    };
    if resource != Some("cpu") {
        return PodReadiness::Ready;
    }
    let (Some(condition), Some(start)) = (pod.ready, pod.start_time) else {
        return PodReadiness::Unready;
    };
    let unready = if start.saturating_add_secs(CPU_INITIALIZATION_PERIOD_SECS) > now {
        // Still within the initialization period: the sample is not trusted while the pod is
        // unready, or when it was not taken a whole window after the last readiness change.
        condition.status_false
            || sample_time < condition.last_transition.saturating_add_secs(window_secs)
    } else {
        // Afterwards only a pod that has never been ready is left out.
        condition.status_false
            && start.saturating_add_secs(INITIAL_READINESS_DELAY_SECS) > condition.last_transition
    };
    if unready {
        PodReadiness::Unready
    } else {
        PodReadiness::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000;

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn running(started_ago: u64, ready: bool, transition_ago: u64) -> PodFacts {
        PodFacts {
            deleting: false,
            phase: PodPhase::Running,
            ready: Some(ReadyCondition {
                status_false: !ready,
                last_transition: t(NOW - transition_ago),
            }),
            start_time: Some(t(NOW - started_ago)),
            sample: Some((t(NOW - 10), 30)),
        }
    }

    #[test]
    fn deleted_and_failed_pods_are_ignored_and_pending_ones_unready() {
        let mut p = running(600, true, 600);
        p.deleting = true;
        assert_eq!(classify(&p, Some("cpu"), t(NOW)), PodReadiness::Ignored);
        let mut p = running(600, true, 600);
        p.phase = PodPhase::Failed;
        assert_eq!(classify(&p, None, t(NOW)), PodReadiness::Ignored);
        let mut p = running(600, true, 600);
        p.phase = PodPhase::Pending;
        assert_eq!(classify(&p, None, t(NOW)), PodReadiness::Unready);
    }

    #[test]
    fn a_pod_without_a_sample_is_missing_not_unready() {
        let mut p = running(10, false, 5);
        p.sample = None;
        assert_eq!(classify(&p, Some("cpu"), t(NOW)), PodReadiness::Ready);
    }

    #[test]
    fn readiness_matters_only_for_cpu() {
        let p = running(10, false, 5);
        assert_eq!(classify(&p, Some("memory"), t(NOW)), PodReadiness::Ready);
        assert_eq!(classify(&p, None, t(NOW)), PodReadiness::Ready);
        assert_eq!(classify(&p, Some("cpu"), t(NOW)), PodReadiness::Unready);
    }

    #[test]
    fn within_the_cpu_initialization_period_a_sample_needs_a_window_after_readiness() {
        // Ready 100 s ago, sample 10 s ago with a 30 s window: trusted.
        assert_eq!(
            classify(&running(200, true, 100), Some("cpu"), t(NOW)),
            PodReadiness::Ready
        );
        // Ready 20 s ago: the sample (10 s ago) is within a window of the change.
        assert_eq!(
            classify(&running(200, true, 20), Some("cpu"), t(NOW)),
            PodReadiness::Unready
        );
    }

    #[test]
    fn after_the_initialization_period_only_a_never_ready_pod_is_left_out() {
        // Unready now, but it was ready once (its last change came long after the start).
        assert_eq!(
            classify(&running(1000, false, 100), Some("cpu"), t(NOW)),
            PodReadiness::Ready
        );
        // Unready since within 30 s of its start: never ready.
        assert_eq!(
            classify(&running(1000, false, 990), Some("cpu"), t(NOW)),
            PodReadiness::Unready
        );
    }

    #[test]
    fn a_cpu_sample_without_start_time_or_condition_is_unready() {
        let mut p = running(1000, true, 900);
        p.ready = None;
        assert_eq!(classify(&p, Some("cpu"), t(NOW)), PodReadiness::Unready);
        let mut p = running(1000, true, 900);
        p.start_time = None;
        assert_eq!(classify(&p, Some("cpu"), t(NOW)), PodReadiness::Unready);
    }
}
