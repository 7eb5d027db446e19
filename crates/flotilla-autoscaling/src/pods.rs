//! Per-pod samples for Resource and Pods metrics, and the upstream replica calculator's handling
//! of unready pods and pods without metrics (`replica_calculator.go`: `groupPods`,
//! `GetResourceReplicas`, `calcPlainMetricReplicas`).
//!
//! The federated autoscaler treats the pods of all member clusters as one pod set: the caller
//! pools every member's samples into one list, as one HPA would see one cluster's pods.
//!
//! The calculation, with "metrics" the pods that reported a value:
//! 1. Ignored pods (deleted, failed) are dropped. Unready pods and pods without a value are set
//!    aside; with no ready pod left that has a value it fails ("did not receive metrics for
//!    targeted pods (pods might be unready)"): it never scales on the others alone.
//! 2. The usage ratio of the ready pods with values. With no unready pod to rebalance (there are
//!    none, or the ratio does not call for a scale-up) and no missing pod, this is the plain
//!    rule: the current replicas inside the tolerance, else `ceil(ratio * ready pods)`.
//! 3. Otherwise the set-aside pods are put back: on a scale-up (ratio > 1) missing and unready
//!    pods use 0 (their requests count); on a scale-down (ratio < 1) missing pods use the target
//!    (Utilization: 100 % of their request, or the target utilization when it is above 100 %)
//!    and unready pods stay out. The ratio is computed again.
//! 4. The current replicas are kept when the new ratio is inside the tolerance or points the
//!    other way than the first, and when `ceil(new ratio * pods counted)` would move against the
//!    new ratio's direction (e.g. more pods than the current replicas during a rolling update);
//!    else that is the proposal.
//!
//! Utilization is `trunc(100 * sum(usage) / sum(requests))` over the pods counted, as upstream
//! computes it in integer arithmetic. Pass usage and requests in the same unit; upstream works in
//! whole milli-units, so integer milli-values reproduce it exactly (fractions of a core are
//! snapped to the nearest whole percent when float rounding leaves them a hair below it).
//! AverageValue averages are plain `f64` (upstream truncates them to whole milli-units).

use serde::{Deserialize, Serialize};

use crate::spec::Tolerances;

/// How one pod counts for one metric (the caller's version of upstream `groupPods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PodReadiness {
    /// Counted. Without a value it is a "missing" pod.
    Ready,
    /// Left out unless the metric calls for a scale-up, where it counts as using 0.
    ///
    /// Upstream: a `Pending` pod; for `cpu` also a running pod whose sample is not trusted yet
    /// (not ready within the CPU initialization period, or never ready yet after the readiness
    /// delay). For other resources and Pods metrics a running pod counts as ready whatever its
    /// readiness. Upstream looks for a sample before it looks at readiness: a running pod
    /// without a sample is missing, not unready, so classify it `Ready`.
    Unready,
    /// Not counted at all: a pod being deleted or a failed pod.
    Ignored,
}

/// One pod's sample for a Resource or Pods metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSample {
    /// How the pod counts.
    pub readiness: PodReadiness,
    /// The value the pod reported (usage for a Resource metric, the metric for Pods), or `None`
    /// when the metrics API has no sample for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The pod's request for the resource, in the unit of `value`. Required for every pod that
    /// is not ignored when the target is a `Utilization`; not used otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<f64>,
}

impl PodSample {
    /// A ready pod that reported `value`.
    pub fn ready(value: f64) -> Self {
        Self::new(PodReadiness::Ready, Some(value))
    }

    /// A ready pod without a sample.
    pub fn missing() -> Self {
        Self::new(PodReadiness::Ready, None)
    }

    /// An unready pod, with the sample it may have reported.
    pub fn unready(value: Option<f64>) -> Self {
        Self::new(PodReadiness::Unready, value)
    }

    /// A pod that is not counted (deleted or failed).
    pub fn ignored() -> Self {
        Self::new(PodReadiness::Ignored, None)
    }

    /// The same sample with the pod's request.
    pub fn with_request(mut self, request: f64) -> Self {
        self.request = Some(request);
        self
    }

    fn new(readiness: PodReadiness, value: Option<f64>) -> Self {
        Self {
            readiness,
            value,
            request: None,
        }
    }
}

/// The target of a per-pod metric.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PerPodTarget {
    /// Resource `Utilization`, in percent of the requests.
    Utilization(i32),
    /// Resource or Pods `AverageValue`.
    AverageValue(f64),
}

/// The result of the per-pod calculation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PerPodProposal {
    pub replicas: i32,
    /// The ready pods' utilization (Utilization targets): the current value upstream reports.
    pub utilization: Option<i32>,
    /// The ready pods' average value per pod.
    pub average_value: f64,
    /// The ready pods' usage ratio (the first one, before unready and missing pods are put back).
    pub usage_ratio: f64,
}

/// Upstream's message when no ready pod reported a value.
pub(crate) const NO_READY_METRICS: &str =
    "did not receive metrics for targeted pods (pods might be unready)";

/// One pod as it enters a usage computation.
#[derive(Clone, Copy, Debug)]
struct Entry {
    usage: f64,
    /// 0 when the target does not need requests.
    request: f64,
}

/// The pods split as upstream `groupPods` does, as indices into the samples.
#[derive(Debug, Default)]
struct Groups {
    ready: Vec<usize>,
    unready: Vec<usize>,
    missing: Vec<usize>,
}

/// A usage computation over some pods.
#[derive(Clone, Copy, Debug)]
struct Usage {
    ratio: f64,
    utilization: Option<i32>,
    average_value: f64,
}

/// Computes one per-pod metric's proposal. `Err` carries the reason there is none.
pub(crate) fn per_pod_replicas(
    samples: &[PodSample],
    target: PerPodTarget,
    non_negative: bool,
    current: i32,
    tolerances: Tolerances,
) -> Result<PerPodProposal, String> {
    if samples.is_empty() {
        return Err("no pods returned by selector while calculating replica count".to_owned());
    }
    let groups = group_pods(samples, non_negative)?;
    if groups.ready.is_empty() {
        return Err(NO_READY_METRICS.to_owned());
    }
    let requests = pod_requests(samples, target)?;
    let entry = |i: usize, usage: f64| Entry {
        usage,
        request: requests[i],
    };

    let mut counted: Vec<Entry> = groups
        .ready
        .iter()
        .map(|&i| entry(i, samples[i].value.unwrap_or(0.0)))
        .collect();
    let first = usage(&counted, target)?;
    let proposal = |replicas: i32| PerPodProposal {
        replicas,
        utilization: first.utilization,
        average_value: first.average_value,
        usage_ratio: first.ratio,
    };

    // Unready pods only matter when they would dilute a scale-up.
    let scale_up_with_unready = !groups.unready.is_empty() && first.ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(first.ratio) {
            return Ok(proposal(current));
        }
        return replicas_for(first.ratio, counted.len()).map(proposal);
    }

    // Put the missing pods back pessimistically: as idle on a scale-up, at the target on a
    // scale-down, so that they can only dampen the change. At a ratio of exactly 1 they stay
    // out (upstream does the same).
    if first.ratio < 1.0 {
        counted.extend(
            groups
                .missing
                .iter()
                .map(|&i| entry(i, missing_on_scale_down(target, requests[i]))),
        );
    } else if first.ratio > 1.0 {
        counted.extend(groups.missing.iter().map(|&i| entry(i, 0.0)));
    }
    if scale_up_with_unready {
        counted.extend(groups.unready.iter().map(|&i| entry(i, 0.0)));
    }

    let new_ratio = usage(&counted, target)?.ratio;
    if tolerances.is_within(new_ratio) || reverses(first.ratio, new_ratio) {
        return Ok(proposal(current));
    }
    let replicas = replicas_for(new_ratio, counted.len())?;
    // More pods counted than the current replicas (a rolling update's surge) could turn a
    // scale-down into a scale-up, or the other way round.
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

/// Splits the samples (upstream `groupPods`) and rejects values that are not numbers.
fn group_pods(samples: &[PodSample], non_negative: bool) -> Result<Groups, String> {
    let mut groups = Groups::default();
    for (i, sample) in samples.iter().enumerate() {
        if sample.readiness == PodReadiness::Ignored {
            continue;
        }
        if let Some(v) = sample.value {
            if !v.is_finite() {
                return Err(format!(
                    "pod sample {i}: the value {v} is not a finite number"
                ));
            }
            if non_negative && v < 0.0 {
                return Err(format!("pod sample {i}: the usage {v} is negative"));
            }
        }
        match (sample.readiness, sample.value) {
            (PodReadiness::Unready, _) => groups.unready.push(i),
            (_, None) => groups.missing.push(i),
            (_, Some(_)) => groups.ready.push(i),
        }
    }
    Ok(groups)
}

/// Each sample's request, checked, for Utilization targets (0 otherwise, and for ignored pods).
/// Like upstream, every counted pod needs one, the unready and missing ones included: they may be
/// put back into the computation.
fn pod_requests(samples: &[PodSample], target: PerPodTarget) -> Result<Vec<f64>, String> {
    let needs_requests = matches!(target, PerPodTarget::Utilization(_));
    samples
        .iter()
        .enumerate()
        .map(|(i, sample)| {
            if !needs_requests || sample.readiness == PodReadiness::Ignored {
                return Ok(0.0);
            }
            match sample.request {
                None => Err(format!(
                    "missing request in pod sample {i} (a Utilization target needs every pod's request)"
                )),
                Some(r) if !r.is_finite() || r < 0.0 => Err(format!(
                    "pod sample {i}: the request {r} is not a finite, non-negative number"
                )),
                Some(r) => Ok(r),
            }
        })
        .collect()
}

/// What a pod without a sample is assumed to use on a scale-down: exactly the target (upstream:
/// `requests * max(100, targetUtilization) / 100` for Utilization, `targetUsage` otherwise).
fn missing_on_scale_down(target: PerPodTarget, request: f64) -> f64 {
    match target {
        PerPodTarget::Utilization(u) => request * f64::from(u.max(100)) / 100.0,
        PerPodTarget::AverageValue(v) => v,
    }
}

/// The usage ratio of some pods (upstream `GetResourceUtilizationRatio`, `GetMetricUsageRatio`).
/// `entries` is never empty here.
fn usage(entries: &[Entry], target: PerPodTarget) -> Result<Usage, String> {
    let count = entries.len() as f64;
    let usage_total: f64 = entries.iter().map(|e| e.usage).sum();
    let average_value = usage_total / count;
    let (ratio, utilization) = match target {
        PerPodTarget::Utilization(target) => {
            let requests_total: f64 = entries.iter().map(|e| e.request).sum();
            if requests_total <= 0.0 {
                // Upstream: "no metrics returned matched known pods" (a request total of 0).
                return Err("the pods with metrics request none of the resource (total request 0), so their utilization is undefined".to_owned());
            }
            let utilization = utilization_percent(usage_total, requests_total)?;
            (
                f64::from(utilization) / f64::from(target),
                Some(utilization),
            )
        }
        PerPodTarget::AverageValue(target) => (average_value / target, None),
    };
    if ratio.is_nan() {
        return Err("the usage ratio is not a number".to_owned());
    }
    Ok(Usage {
        ratio,
        utilization,
        average_value,
    })
}

/// `int32(usage * 100 / requests)` as upstream computes it on milli-values.
fn utilization_percent(usage_total: f64, requests_total: f64) -> Result<i32, String> {
    let percent = 100.0 * usage_total / requests_total;
    if percent.is_nan() {
        return Err("the utilization is not a number".to_owned());
    }
    // Float rounding can leave an exact percentage a hair below the integer upstream's integer
    // arithmetic gets (100 * 0.3 / 0.6); truncating that would lose a whole percent.
    let nearest = percent.round();
    let snapped = if (percent - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) {
        nearest
    } else {
        percent
    };
    // `as` saturates: a utilization past i32::MAX stays at the rail.
    Ok(snapped.trunc() as i32)
}

/// True when the recomputed ratio points the other way than the first one.
fn reverses(first: f64, new: f64) -> bool {
    (first < 1.0 && new > 1.0) || (first > 1.0 && new < 1.0)
}

/// `ceil(ratio * pods)`, saturating; negative becomes 0.
fn replicas_for(ratio: f64, pods: usize) -> Result<i32, String> {
    let x = (ratio * pods as f64).ceil();
    if x.is_nan() {
        return Err("the replica count is not a number".to_owned());
    }
    // `as` saturates for out-of-range floats, including the infinities.
    Ok((x as i32).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_percent_truncates_like_integer_math() {
        assert_eq!(utilization_percent(990.0, 4000.0), Ok(24));
        assert_eq!(utilization_percent(40000.0, 6000.0), Ok(666));
        // Float noise around exact percentages does not lose one.
        assert_eq!(utilization_percent(0.1 + 0.2, 0.6), Ok(50));
        assert_eq!(utilization_percent(0.1 * 3.0, 0.3), Ok(100));
        assert_eq!(utilization_percent(1e300, 1e-300), Ok(i32::MAX));
        assert!(utilization_percent(f64::INFINITY, f64::INFINITY).is_err());
    }

    #[test]
    fn group_pods_like_upstream() {
        let samples = [
            PodSample::ready(1.0),
            PodSample::unready(Some(1.0)),
            PodSample::unready(None), // pending: unready, sample or not
            PodSample::missing(),
            PodSample::ignored(),
            PodSample {
                readiness: PodReadiness::Ignored,
                value: Some(f64::NAN), // ignored pods are not looked at
                request: None,
            },
        ];
        let g = group_pods(&samples, true).expect("valid samples");
        assert_eq!(g.ready, vec![0]);
        assert_eq!(g.unready, vec![1, 2]);
        assert_eq!(g.missing, vec![3]);
    }

    #[test]
    fn missing_pods_on_scale_down_use_the_target() {
        assert_eq!(
            missing_on_scale_down(PerPodTarget::Utilization(50), 2.0),
            2.0
        );
        assert_eq!(
            missing_on_scale_down(PerPodTarget::Utilization(300), 2.0),
            6.0
        );
        assert_eq!(
            missing_on_scale_down(PerPodTarget::AverageValue(7.0), 2.0),
            7.0
        );
    }
}
