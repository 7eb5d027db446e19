//! Filling the selection, walking the candidates in order (see [`crate::select`]).
//!
//! 1. Spread `minGroups` first: a cluster that covers a topology value not yet covered, for a
//!    constraint still short of its `minGroups`, is selected (within `maxClusters` and
//!    `maxPerGroup`). Walking in order keeps this deterministic and prefers better ranks.
//! 2. Then the fill: with `maxClusters`, clusters are selected up to the count
//!    (`MaxClustersReached` after); without it but with `failoverPriority`, every cluster of the
//!    best rank present is selected and lower ranks are standby (`LowerPriority`); with neither,
//!    all are selected. A cluster whose topology value already has `maxPerGroup` selected
//!    clusters is filtered (`SpreadMaxPerGroup`).
//!
//! A cluster passed over never changes the running counts, so removing it from the input, or
//! visiting it later, changes nothing else: the basis of the no-reshuffle guarantee.
use std::borrow::Cow;

use crate::decision::{Reason, Verdict};
use crate::labels::group_label;
use crate::select::{Candidate, Outcome, RankContext};
use crate::spec::PlacementSpec;
use crate::spread::SpreadCounts;

/// Decides every candidate in `open` (indices into `candidates`, in order) and returns unmet
/// spread requirements.
pub(crate) fn fill(
    spec: &PlacementSpec,
    candidates: &[Candidate<'_>],
    context: &RankContext,
    open: &[usize],
    outcomes: &mut [Option<Outcome>],
) -> Vec<String> {
    let limit = spec
        .constraints
        .max_clusters
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let best = open
        .first()
        .and_then(|&i| candidates.get(i))
        .map(|c| c.rank);
    let whole_best_group = spec.constraints.max_clusters.is_none() && context.uses_priority;
    let in_scope = |rank: u32| !whole_best_group || Some(rank) == best;

    let mut spread = SpreadCounts::new(spec);
    let mut chosen = 0usize;
    let wants_groups = spec
        .constraints
        .spread
        .iter()
        .any(|s| s.min_groups.is_some());
    if wants_groups {
        for &i in open {
            if chosen >= limit || spread.all_met(spec) {
                break;
            }
            let Some(c) = candidates.get(i) else { continue };
            if spread.full(spec, c.topology).is_none() && spread.covers_new(spec, c.topology) {
                spread.add(c.topology);
                chosen += 1;
                outcomes[i] = Some(selected(spec, c, context, in_scope(c.rank), true));
            }
        }
    }

    for &i in open {
        let Some(c) = candidates.get(i) else { continue };
        if outcomes[i].is_some() {
            continue;
        }
        // Thousands of clusters can get LowerPriority or MaxClustersReached: their texts are fixed
        // (the priority column shows the rank) so that they cost no allocation.
        // Spread before maxClusters: once the count is reached the group counts are final, so a
        // cluster's verdict depends on the final selection only, not on whether it was looked at
        // before or after the count filled (which stickiness reorders from one reconcile to the
        // next).
        let outcome = if !in_scope(c.rank) {
            Outcome {
                verdict: Verdict::Standby,
                reason: Reason::LowerPriority,
                message: Cow::Borrowed("a better-ranked failover group supplies the selection"),
            }
        } else if let Some(k) = spread.full(spec, c.topology) {
            let constraint = spec.constraints.spread.get(k);
            Outcome {
                verdict: Verdict::Filtered,
                reason: Reason::SpreadMaxPerGroup,
                message: format!(
                    "{}={} already has maxPerGroup {} selected clusters",
                    constraint.map_or("", |s| s.topology_key.as_str()),
                    c.topology.get(k).copied().unwrap_or(""),
                    constraint.and_then(|s| s.max_per_group).unwrap_or(0)
                )
                .into(),
            }
        } else if chosen >= limit {
            Outcome {
                verdict: Verdict::Standby,
                reason: Reason::MaxClustersReached,
                message: Cow::Borrowed(
                    "maxClusters is reached by clusters ranked or already placed ahead",
                ),
            }
        } else {
            spread.add(c.topology);
            chosen += 1;
            selected(spec, c, context, true, false)
        };
        outcomes[i] = Some(outcome);
    }
    spread.unmet(spec)
}

/// The outcome for a selected cluster, with the reason that best explains it.
fn selected(
    spec: &PlacementSpec,
    c: &Candidate<'_>,
    context: &RankContext,
    in_scope: bool,
    for_spread: bool,
) -> Outcome {
    // Whether the cluster held the copy already is left out on purpose: it flips once for every
    // object (from "newly" to "already" placed at its next reconcile) and so cost every object a
    // second status write with nothing else changed. Where stickiness decides, the Standby
    // cluster it displaced says so ("ranked or already placed ahead").
    let (reason, mut message) = if for_spread && !in_scope {
        (Reason::SpreadCoverage, group_label(spec, c.rank))
    } else if !context.uses_priority {
        (Reason::Matched, "matches the placement".to_owned())
    } else if Some(c.rank) == context.primary_rank {
        (
            Reason::PrimaryHealthy,
            format!("{}, the best rank", group_label(spec, c.rank)),
        )
    } else if context.unavailable_rank.is_some_and(|u| u < c.rank) {
        (
            Reason::FailedOver,
            format!(
                "{}; a higher-priority cluster is unavailable",
                group_label(spec, c.rank)
            ),
        )
    } else {
        (
            Reason::LowerPriorityNeeded,
            format!(
                "{}; needed to reach the cluster count or spread",
                group_label(spec, c.rank)
            ),
        )
    };
    if for_spread {
        let covered: Vec<String> = spec
            .constraints
            .spread
            .iter()
            .zip(c.topology)
            .filter(|(s, _)| s.min_groups.is_some())
            .map(|(s, v)| format!("{}={v}", s.topology_key))
            .collect();
        message.push_str("; covers ");
        message.push_str(&covered.join(", "));
        message.push_str(" for spread minGroups");
    }
    Outcome {
        verdict: Verdict::Selected,
        reason,
        message: message.into(),
    }
}
