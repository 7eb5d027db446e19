//! Behavior: stabilization windows and rate policies (upstream
//! `normalizeDesiredReplicasWithBehaviors`, `stabilizeRecommendationWithBehaviors`,
//! `convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`,
//! `calculateScaleDownLimitWithBehaviors`).

use crate::decision::{AbleToScaleReason, ScalingLimitedReason};
use crate::spec::{ResolvedBehavior, ResolvedRules, ScalingPolicyType, SelectPolicy};
use crate::state::ScalerState;
use crate::time::Timestamp;

fn clamp_to_i32(x: i64) -> i32 {
    i32::try_from(x).unwrap_or(if x > 0 { i32::MAX } else { i32::MIN })
}

/// Stabilizes `desired` with the recommendations of the last windows and records `desired`:
/// the result is `current` raised to the lowest recommendation of the scale-up window and lowered
/// to the highest recommendation of the scale-down window (both windows include `desired`).
pub(crate) fn stabilize(
    state: &mut ScalerState,
    behavior: &ResolvedBehavior,
    current: i32,
    desired: i32,
    now: Timestamp,
) -> (i32, AbleToScaleReason, &'static str) {
    let up_window = i64::from(behavior.scale_up.stabilization_window_seconds);
    let down_window = i64::from(behavior.scale_down.stabilization_window_seconds);
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    for rec in state.recommendations() {
        if rec.at.is_within_window(now, up_window) {
            up_recommendation = up_recommendation.min(rec.replicas);
        }
        if rec.at.is_within_window(now, down_window) {
            down_recommendation = down_recommendation.max(rec.replicas);
        }
    }
    let mut recommendation = current;
    if recommendation < up_recommendation {
        recommendation = up_recommendation;
    }
    if recommendation > down_recommendation {
        recommendation = down_recommendation;
    }
    state.push_recommendation(desired, now);
    if desired >= current {
        (
            recommendation,
            AbleToScaleReason::ScaleUpStabilized,
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            recommendation,
            AbleToScaleReason::ScaleDownStabilized,
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    }
}

/// The replicas at the start of `period_seconds`: current minus what was added in the period plus
/// what was removed.
fn period_start_replicas(state: &ScalerState, current: i32, period: i32, now: Timestamp) -> i64 {
    let (added, removed) = state.changes_in_period(now, period);
    i64::from(current)
        .saturating_sub(added)
        .saturating_add(removed)
}

/// The highest replica count the scale-up policies allow now (upstream
/// `calculateScaleUpLimitWithScalingRules`): per policy, the replicas at the start of its period
/// plus `value` pods, or times `1 + value/100` rounded up; `Max` takes the most permissive policy,
/// `Min` the least; `Disabled` allows no increase.
pub(crate) fn scale_up_limit(
    state: &ScalerState,
    rules: &ResolvedRules,
    current: i32,
    now: Timestamp,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut result: Option<i64> = None;
    for policy in &rules.policies {
        let start = period_start_replicas(state, current, policy.period_seconds, now);
        let proposed = match policy.policy_type {
            ScalingPolicyType::Pods => start.saturating_add(i64::from(policy.value)),
            ScalingPolicyType::Percent => {
                // Rounded up, or a small Percent policy could never add a replica.
                (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    // No policies cannot happen after resolving; allow nothing rather than everything.
    result.unwrap_or(i64::from(current))
}

/// The lowest replica count the scale-down policies allow now (upstream
/// `calculateScaleDownLimitWithBehaviors`): per policy, the replicas at the start of its period
/// minus `value` pods, or times `1 - value/100` truncated; `Max` takes the most permissive
/// policy (the lowest count), `Min` the least; `Disabled` allows no decrease.
pub(crate) fn scale_down_limit(
    state: &ScalerState,
    rules: &ResolvedRules,
    current: i32,
    now: Timestamp,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let mut result: Option<i64> = None;
    for policy in &rules.policies {
        let start = period_start_replicas(state, current, policy.period_seconds, now);
        let proposed = match policy.policy_type {
            ScalingPolicyType::Pods => start.saturating_sub(i64::from(policy.value)),
            // Go's int32(float) truncates toward zero; so does `as`.
            ScalingPolicyType::Percent => {
                (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    result.unwrap_or(i64::from(current))
}

/// Applies the rate policies and `[min, max]` to a stabilized recommendation (upstream
/// `convertDesiredReplicasWithBehaviorRate`). Assumes `min <= current <= max`.
pub(crate) fn limit_by_rate(
    state: &ScalerState,
    behavior: &ResolvedBehavior,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    now: Timestamp,
) -> (i32, ScalingLimitedReason, &'static str) {
    if desired > current {
        // A limit below the current count means: no scale-up until old events leave the period.
        let limit = clamp_to_i32(
            scale_up_limit(state, &behavior.scale_up, current, now).max(i64::from(current)),
        );
        let (maximum, reason, message) = if max > limit {
            (
                limit,
                ScalingLimitedReason::ScaleUpLimit,
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                ScalingLimitedReason::TooManyReplicas,
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > maximum {
            return (maximum, reason, message);
        }
    } else if desired < current {
        let limit = clamp_to_i32(
            scale_down_limit(state, &behavior.scale_down, current, now).min(i64::from(current)),
        );
        let (minimum, reason, message) = if min < limit {
            (
                limit,
                ScalingLimitedReason::ScaleDownLimit,
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                ScalingLimitedReason::TooFewReplicas,
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < minimum {
            return (minimum, reason, message);
        }
    }
    (
        desired,
        ScalingLimitedReason::DesiredWithinRange,
        "the desired count is within the acceptable range",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ScalingBehavior, ScalingPolicyRule, ScalingRules};

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn rules(select: SelectPolicy, policies: Vec<ScalingPolicyRule>) -> ResolvedRules {
        ResolvedRules {
            stabilization_window_seconds: 0,
            select_policy: select,
            policies,
            tolerance: 0.1,
        }
    }

    #[test]
    fn docs_scale_down_policies_max_and_min() {
        // Pods 4 / 60 s and Percent 10 / 60 s, 80 replicas.
        let policies = vec![
            ScalingPolicyRule::pods(4, 60),
            ScalingPolicyRule::percent(10, 60),
        ];
        let s = ScalerState::new();
        assert_eq!(
            scale_down_limit(&s, &rules(SelectPolicy::Max, policies.clone()), 80, t(0)),
            72
        );
        assert_eq!(
            scale_down_limit(&s, &rules(SelectPolicy::Min, policies.clone()), 80, t(0)),
            76
        );
        assert_eq!(
            scale_down_limit(
                &s,
                &rules(SelectPolicy::Disabled, policies.clone()),
                80,
                t(0)
            ),
            80
        );
        // At 72: 10% is 7.2, the count that stays is truncated: 64 (8 removed).
        assert_eq!(
            scale_down_limit(&s, &rules(SelectPolicy::Max, policies.clone()), 72, t(0)),
            64
        );
        // Under 40 replicas the Pods policy is the more permissive one.
        assert_eq!(
            scale_down_limit(&s, &rules(SelectPolicy::Max, policies), 30, t(0)),
            26
        );
    }

    #[test]
    fn period_start_counts_both_directions() {
        let mut s = ScalerState::new();
        s.record_scale_event(80, 72, t(0));
        let r = rules(SelectPolicy::Max, vec![ScalingPolicyRule::percent(10, 60)]);
        // Still inside the period: the start was 80, so 72 is already the limit.
        assert_eq!(scale_down_limit(&s, &r, 72, t(30)), 72);
        // The event left the period: 10% of 72.
        assert_eq!(scale_down_limit(&s, &r, 72, t(60)), 64);
        // A scale-up limit also accounts for the removed replicas.
        let up = rules(SelectPolicy::Max, vec![ScalingPolicyRule::pods(4, 60)]);
        assert_eq!(scale_up_limit(&s, &up, 72, t(30)), 84);
    }

    #[test]
    fn default_scale_up_limit() {
        let b = ResolvedBehavior::resolve(None);
        let s = ScalerState::new();
        assert_eq!(scale_up_limit(&s, &b.scale_up, 1, t(0)), 5);
        assert_eq!(scale_up_limit(&s, &b.scale_up, 3, t(0)), 7);
        assert_eq!(scale_up_limit(&s, &b.scale_up, 10, t(0)), 20);
        assert_eq!(scale_up_limit(&s, &b.scale_up, 0, t(0)), 4);
    }

    #[test]
    fn percent_up_rounds_up() {
        let s = ScalerState::new();
        let r = rules(SelectPolicy::Max, vec![ScalingPolicyRule::percent(10, 60)]);
        assert_eq!(scale_up_limit(&s, &r, 3, t(0)), 4);
    }

    #[test]
    fn stabilization_picks_min_up_and_max_down() {
        let behavior = ResolvedBehavior::resolve(Some(&ScalingBehavior {
            scale_up: Some(ScalingRules {
                stabilization_window_seconds: Some(60),
                ..Default::default()
            }),
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(120),
                ..Default::default()
            }),
        }));
        let mut s = ScalerState::new();
        s.push_recommendation(8, t(0));
        s.push_recommendation(4, t(50));
        // Scale-up to 10 from 5: the lowest of the up window is 4 (< current) -> stays at 5.
        assert_eq!(stabilize(&mut s, &behavior, 5, 10, t(100)).0, 5);
        // At 115 the 4 is out of the up window (cutoff 55); window holds 10@100 and now 12.
        assert_eq!(stabilize(&mut s, &behavior, 5, 12, t(115)).0, 10);
        // Scale-down to 2 from 12: highest of the down window (cutoff 0: 8@0 is out) is 12.
        let (r, reason, _) = stabilize(&mut s, &behavior, 12, 2, t(120));
        assert_eq!(r, 12);
        assert_eq!(reason, AbleToScaleReason::ScaleDownStabilized);
    }

    #[test]
    fn limits_never_overflow() {
        let mut s = ScalerState::new();
        s.record_scale_event(0, i32::MAX, t(0));
        s.record_scale_event(i32::MAX, 0, t(0));
        let r = rules(
            SelectPolicy::Max,
            vec![
                ScalingPolicyRule::pods(i32::MAX, 1800),
                ScalingPolicyRule::percent(i32::MAX, 1800),
                ScalingPolicyRule::pods(i32::MIN, -1),
                ScalingPolicyRule::percent(i32::MIN, 0),
            ],
        );
        let _ = scale_up_limit(&s, &r, i32::MAX, t(1));
        let _ = scale_down_limit(&s, &r, i32::MAX, t(1));
        let b = ResolvedBehavior {
            scale_up: r.clone(),
            scale_down: r,
        };
        let (d, _, _) = limit_by_rate(&s, &b, i32::MAX - 1, i32::MAX, 0, i32::MAX, t(1));
        assert_eq!(d, i32::MAX);
        let (d, _, _) = limit_by_rate(&s, &b, 1, 0, 0, i32::MAX, t(1));
        assert_eq!(d, 0);
    }
}
