//! Dividing a ScalingPolicy's replicas among the selected clusters.
//!
//! The autoscaler has already decided the total; this module only splits it. Rules, in order:
//! 1. Unhealthy targets get 0; their share goes to the healthy ones.
//! 2. Bounds are normalised: negative bounds count as 0, and a minimum above the maximum is
//!    lowered to the maximum (reported).
//! 3. If the total does not cover the minimums, the total wins (the policy's bounds are never
//!    exceeded): minimums are filled in priority order until the total runs out, and the
//!    clusters left short are reported.
//! 4. If the maximums cannot hold the total, every cluster gets its maximum and the shortfall is
//!    reported. No cluster ever gets more than its maximum.
//! 5. Otherwise the total is split in proportion to the weights, clamping at bounds and giving
//!    what a clamped cluster cannot take to the others (the CSS flexbox "freeze violators"
//!    resolution, exact in integers). Remainders go one by one by largest fractional part, ties
//!    by priority rank then name. If every remaining cluster has weight 0, they share equally.
//!
//! The sum of the assignments equals the total whenever the bounds allow it.
use std::collections::HashSet;

/// A cluster that can receive replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaTarget {
    /// The cluster name.
    pub name: String,
    /// Failover-priority rank (0 is highest); breaks remainder ties before the name.
    pub rank: u32,
    /// Relative share.
    pub weight: u32,
    /// At least this many replicas, when the total allows.
    pub min_replicas: i32,
    /// Never more than this many; `None` is unbounded.
    pub max_replicas: Option<i32>,
    /// Unhealthy targets get 0.
    pub healthy: bool,
}

/// The result of a division.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaDivision {
    /// Replicas per target, in priority order (rank, then name).
    pub assignments: Vec<ReplicaAssignment>,
    /// Bounds that could not be met, in plain words.
    pub unsatisfied: Vec<String>,
}

/// Replicas for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAssignment {
    /// The cluster name.
    pub name: String,
    /// Its replicas.
    pub replicas: i32,
}

impl ReplicaDivision {
    /// The replicas assigned to `name`, if it was a target.
    pub fn replicas_of(&self, name: &str) -> Option<i32> {
        self.assignments
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.replicas)
    }

    /// The sum of all assignments.
    pub fn total(&self) -> i64 {
        self.assignments.iter().map(|a| i64::from(a.replicas)).sum()
    }
}

/// Normalised bounds of one healthy target.
struct Slot {
    min: i64,
    max: Option<i64>,
    weight: u32,
    assigned: i64,
}

/// Splits `total` replicas among `targets`. Targets are identified by name; a repeated name is
/// ignored after its first occurrence. Never panics.
pub fn divide_replicas(total: i32, targets: &[ReplicaTarget]) -> ReplicaDivision {
    let mut unsatisfied = Vec::new();
    let total = if total < 0 {
        unsatisfied.push(format!(
            "total replicas {total} is negative; dividing 0 instead"
        ));
        0
    } else {
        i64::from(total)
    };

    let mut seen = HashSet::new();
    let mut ordered: Vec<&ReplicaTarget> = targets
        .iter()
        .filter(|t| seen.insert(t.name.as_str()))
        .collect();
    ordered.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.name.cmp(&b.name)));

    let healthy: Vec<&ReplicaTarget> = ordered.iter().copied().filter(|t| t.healthy).collect();
    let mut slots: Vec<Slot> = healthy
        .iter()
        .map(|t| normalise(t, &mut unsatisfied))
        .collect();

    if slots.is_empty() {
        if total > 0 {
            unsatisfied.push(format!(
                "{total} replicas wanted but no healthy cluster is selected to run them"
            ));
        }
    } else {
        let names: Vec<&str> = healthy.iter().map(|t| t.name.as_str()).collect();
        let ranks: Vec<u32> = healthy.iter().map(|t| t.rank).collect();
        assign(total, &mut slots, &ranks, &names, &mut unsatisfied);
    }

    let mut by_name = healthy
        .iter()
        .zip(&slots)
        .map(|(t, s)| (t.name.as_str(), s.assigned))
        .collect::<std::collections::HashMap<_, _>>();
    let assignments = ordered
        .iter()
        .map(|t| ReplicaAssignment {
            name: t.name.clone(),
            replicas: by_name
                .remove(t.name.as_str())
                .and_then(|r| i32::try_from(r).ok())
                .unwrap_or(0),
        })
        .collect();
    ReplicaDivision {
        assignments,
        unsatisfied,
    }
}

fn normalise(t: &ReplicaTarget, unsatisfied: &mut Vec<String>) -> Slot {
    let max = t.max_replicas.map(|m| i64::from(m.max(0)));
    let mut min = i64::from(t.min_replicas.max(0));
    if let Some(max) = max
        && min > max
    {
        unsatisfied.push(format!(
            "cluster {}: minReplicas {min} exceeds its maximum {max}; using {max}",
            t.name
        ));
        min = max;
    }
    Slot {
        min,
        max,
        weight: t.weight,
        assigned: 0,
    }
}

/// Assigns `total` among healthy `slots` (in priority order).
fn assign(
    total: i64,
    slots: &mut [Slot],
    ranks: &[u32],
    names: &[&str],
    unsatisfied: &mut Vec<String>,
) {
    let sum_min: i64 = slots.iter().map(|s| s.min).sum();
    let sum_max: Option<i64> = slots.iter().map(|s| s.max).sum();

    if total <= sum_min {
        let mut left = total;
        let mut short = Vec::new();
        for (slot, name) in slots.iter_mut().zip(names) {
            slot.assigned = slot.min.min(left);
            left -= slot.assigned;
            if slot.assigned < slot.min {
                short.push(format!("{name} ({}/{})", slot.assigned, slot.min));
            }
        }
        if total < sum_min {
            unsatisfied.push(format!(
                "minReplicas add up to {sum_min} but the total is {total}; minimums are filled in priority order, short: {}",
                short.join(", ")
            ));
        }
        return;
    }
    if let Some(sum_max) = sum_max
        && total >= sum_max
    {
        for slot in slots.iter_mut() {
            slot.assigned = slot.max.unwrap_or(slot.min);
        }
        if total > sum_max {
            unsatisfied.push(format!(
                "maxReplicas of the selected clusters add up to {sum_max}, fewer than the total {total}; {} replicas are not placed",
                total - sum_max
            ));
        }
        return;
    }
    proportional(total, slots, ranks, names);
}

/// Weighted split within bounds; requires `sum(min) < total < sum(max)`.
fn proportional(total: i64, slots: &mut [Slot], ranks: &[u32], names: &[&str]) {
    let n = slots.len();
    let mut frozen = vec![false; n];
    loop {
        let free: Vec<usize> = (0..n).filter(|&i| !frozen[i]).collect();
        if free.is_empty() {
            break;
        }
        let (rest, weight_sum, weights) = shares_basis(total, slots, &frozen, &free);
        // violation = sum(clamped - ideal), in units of 1/weight_sum.
        let mut violation: i128 = 0;
        let mut under = Vec::new();
        let mut over = Vec::new();
        for (&i, &w) in free.iter().zip(&weights) {
            let ideal = i128::from(rest) * i128::from(w);
            let lo = i128::from(slots[i].min) * weight_sum;
            if ideal < lo {
                violation += lo - ideal;
                under.push(i);
            } else if let Some(max) = slots[i].max {
                let hi = i128::from(max) * weight_sum;
                if ideal > hi {
                    violation -= ideal - hi;
                    over.push(i);
                }
            }
        }
        if under.is_empty() && over.is_empty() {
            break;
        }
        if violation >= 0 {
            for &i in &under {
                slots[i].assigned = slots[i].min;
                frozen[i] = true;
            }
        }
        if violation <= 0 {
            for &i in &over {
                slots[i].assigned = slots[i].max.unwrap_or(slots[i].min);
                frozen[i] = true;
            }
        }
    }

    let free: Vec<usize> = (0..n).filter(|&i| !frozen[i]).collect();
    if !free.is_empty() {
        let (rest, weight_sum, weights) = shares_basis(total, slots, &frozen, &free);
        let mut remainders = Vec::with_capacity(free.len());
        let mut left = rest;
        for (&i, &w) in free.iter().zip(&weights) {
            let ideal = i128::from(rest) * i128::from(w);
            let floor = i64::try_from(ideal / weight_sum).unwrap_or(0);
            slots[i].assigned = floor;
            left -= floor;
            remainders.push((ideal % weight_sum, i));
        }
        remainders.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| ranks[a.1].cmp(&ranks[b.1]))
                .then_with(|| names[a.1].cmp(names[b.1]))
        });
        for &(_, i) in remainders.iter().take(usize::try_from(left).unwrap_or(0)) {
            slots[i].assigned += 1;
        }
    }
    settle(total, slots);
}

/// What is left for the free slots, and their effective weights (all 1 when they sum to 0).
fn shares_basis(
    total: i64,
    slots: &[Slot],
    frozen: &[bool],
    free: &[usize],
) -> (i64, i128, Vec<u64>) {
    let fixed: i64 = slots
        .iter()
        .zip(frozen)
        .filter(|(_, f)| **f)
        .map(|(s, _)| s.assigned)
        .sum();
    let rest = (total - fixed).max(0);
    let mut weights: Vec<u64> = free.iter().map(|&i| u64::from(slots[i].weight)).collect();
    if weights.iter().all(|&w| w == 0) {
        weights.iter_mut().for_each(|w| *w = 1);
    }
    let weight_sum = weights.iter().map(|&w| i128::from(w)).sum();
    (rest, weight_sum, weights)
}

/// Safety net: brings the sum to `total` within bounds, in priority order, should the
/// proportional pass ever be off. A no-op when it is exact (which the tests assert).
fn settle(total: i64, slots: &mut [Slot]) {
    let mut diff = total - slots.iter().map(|s| s.assigned).sum::<i64>();
    for slot in slots.iter_mut() {
        if diff > 0 {
            let room = slot.max.map_or(diff, |m| (m - slot.assigned).max(0));
            let add = room.min(diff);
            slot.assigned += add;
            diff -= add;
        } else if diff < 0 {
            let spare = (slot.assigned - slot.min).max(0);
            let take = spare.min(-diff);
            slot.assigned -= take;
            diff += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, weight: u32, min: i32, max: Option<i32>) -> ReplicaTarget {
        ReplicaTarget {
            name: name.into(),
            rank: 0,
            weight,
            min_replicas: min,
            max_replicas: max,
            healthy: true,
        }
    }

    fn split(division: &ReplicaDivision) -> Vec<i32> {
        division.assignments.iter().map(|a| a.replicas).collect()
    }

    #[test]
    fn divides_by_weight_with_largest_remainder() {
        let d = divide_replicas(
            10,
            &[
                target("a", 1, 0, None),
                target("b", 1, 0, None),
                target("c", 1, 0, None),
            ],
        );
        // 10/3 = 3.33 each; the single leftover goes to the first by name.
        assert_eq!(split(&d), vec![4, 3, 3]);
        let d = divide_replicas(10, &[target("a", 3, 0, None), target("b", 1, 0, None)]);
        assert_eq!(split(&d), vec![8, 2]); // 7.5 / 2.5: tie on remainder, a first
        assert!(d.unsatisfied.is_empty());
    }

    #[test]
    fn remainder_ties_prefer_priority_rank_over_name() {
        let mut z = target("z", 1, 0, None);
        z.rank = 0;
        let mut a = target("a", 1, 0, None);
        a.rank = 1;
        let d = divide_replicas(3, &[a, z]);
        // z ranks first, so it appears first and wins the tie.
        assert_eq!(d.replicas_of("z"), Some(2));
        assert_eq!(d.replicas_of("a"), Some(1));
    }

    #[test]
    fn max_overflow_is_redistributed() {
        let d = divide_replicas(
            12,
            &[
                target("a", 1, 0, Some(2)),
                target("b", 1, 0, None),
                target("c", 1, 0, None),
            ],
        );
        assert_eq!(split(&d), vec![2, 5, 5]);
    }

    #[test]
    fn minimums_are_honoured_first() {
        let d = divide_replicas(10, &[target("a", 1, 0, None), target("b", 1, 8, None)]);
        assert_eq!(split(&d), vec![2, 8]);
    }

    #[test]
    fn total_below_minimums_honours_total_and_reports() {
        let d = divide_replicas(5, &[target("a", 1, 3, None), target("b", 1, 3, None)]);
        assert_eq!(split(&d), vec![3, 2]);
        assert_eq!(d.unsatisfied.len(), 1);
        assert!(d.unsatisfied[0].contains("b (2/3)"), "{:?}", d.unsatisfied);
    }

    #[test]
    fn total_above_maximums_assigns_maximums_and_reports() {
        let d = divide_replicas(
            10,
            &[target("a", 1, 0, Some(3)), target("b", 1, 0, Some(4))],
        );
        assert_eq!(split(&d), vec![3, 4]);
        assert!(d.unsatisfied[0].contains("3 replicas are not placed"));
    }

    #[test]
    fn unhealthy_targets_get_nothing() {
        let mut b = target("b", 1, 2, None);
        b.healthy = false;
        let d = divide_replicas(6, &[target("a", 1, 0, None), b, target("c", 1, 0, None)]);
        assert_eq!(split(&d), vec![3, 0, 3]);
        assert!(d.unsatisfied.is_empty());
    }

    #[test]
    fn zero_weights_share_only_what_others_cannot_take() {
        let d = divide_replicas(
            10,
            &[
                target("a", 1, 0, Some(4)),
                target("b", 0, 1, None),
                target("c", 0, 0, None),
            ],
        );
        assert_eq!(split(&d), vec![4, 3, 3]);
        let d = divide_replicas(4, &[target("a", 1, 0, None), target("b", 0, 1, None)]);
        assert_eq!(split(&d), vec![3, 1]);
    }

    #[test]
    fn odd_inputs_never_panic() {
        let d = divide_replicas(-3, &[target("a", 1, -1, Some(-5))]);
        assert_eq!(split(&d), vec![0]);
        assert_eq!(d.unsatisfied.len(), 1);
        let d = divide_replicas(5, &[target("a", 1, 4, Some(2))]);
        assert_eq!(split(&d), vec![2]);
        assert_eq!(d.unsatisfied.len(), 2);
        let d = divide_replicas(
            i32::MAX,
            &[
                target("a", u32::MAX, 0, None),
                target("b", u32::MAX, 0, None),
            ],
        );
        assert_eq!(d.total(), i64::from(i32::MAX));
        let d = divide_replicas(3, &[]);
        assert_eq!(d.unsatisfied.len(), 1);
        let d = divide_replicas(3, &[target("a", 1, 0, None), target("a", 5, 0, Some(1))]);
        assert_eq!(split(&d), vec![3]);
    }
}
