//! The set half of a decision: which eligible clusters to select, given ranks, the previous
//! selection, the count and spread limits.
//!
//! Rules, in order:
//! 1. Failback gate ([`crate::gate`]). Let `worst` be the worst rank among currently selected
//!    clusters (lowered to the worst rank of the new selection, see [`select`]). A cluster that
//!    is not currently selected and ranks better than `worst` would displace a current one: it
//!    is held on standby while failback mode is `Never` (`FailbackDisabled`) or until it has
//!    been ready for the stabilization period (`FailbackPending`). With nothing currently
//!    selected, or without `failoverPriority` (all ranks equal), nothing is gated: failing over
//!    and first placements happen at once.
//! 2. Order. The rest are ordered by rank, then: currently selected clusters first, longest
//!    selected first (stickiness: a new or removed unrelated cluster cannot reshuffle them);
//!    then clusters ready for at least the stabilization period (a proven cluster is preferred
//!    to one that just came back); then by name.
//! 3. Spread `minGroups` and fill ([`crate::fill`]), walking that order.
use std::borrow::Cow;
use std::time::Duration;

use crate::decision::{Reason, Verdict};
use crate::fill::fill;
use crate::gate::hold;
use crate::spec::PlacementSpec;
use crate::time::Timestamp;

/// An eligible cluster as selection sees it. Candidates are given in name order.
pub(crate) struct Candidate<'a> {
    pub rank: u32,
    /// When the previous decision first selected it; `None` if it is not currently selected.
    pub selected_since: Option<Timestamp>,
    /// How long the cluster has been ready.
    pub ready_for: Duration,
    /// The cluster's value for each spread constraint, in the spec's order.
    pub topology: &'a [&'a str],
}

impl Candidate<'_> {
    /// Currently selected.
    pub(crate) fn sticky(&self) -> bool {
        self.selected_since.is_some()
    }
}

/// What selection decided for one candidate.
pub(crate) struct Outcome {
    pub verdict: Verdict,
    pub reason: Reason,
    pub message: Cow<'static, str>,
}

/// Context from the per-cluster pass that only affects reasons.
pub(crate) struct RankContext {
    /// Whether `failoverPriority` is in use.
    pub uses_priority: bool,
    /// The best rank among all candidates, available or not.
    pub primary_rank: Option<u32>,
    /// The best rank among candidates that are unhealthy or tainted (or, once gated, held
    /// back by the failback gate).
    pub unavailable_rank: Option<u32>,
}

/// Outcomes, parallel to the candidates, and unmet spread requirements.
pub(crate) struct Selection {
    pub outcomes: Vec<Outcome>,
    pub unsatisfied: Vec<String>,
}

/// Selects among `candidates` (see the module documentation for the rules).
///
/// The failback gate protects current clusters from being displaced, but the worst-ranked
/// current clusters may be displaced anyway (by a stable better-ranked cluster). Then the gate
/// was too strict: it held back clusters that rank no better than the new selection, which the
/// next reconcile would add without any input changing. So the selection is redone with the
/// gate lowered to the worst rank actually selected, until that no longer changes; the gate only
/// ever moves down, so this ends after at most one pass per distinct rank. A held cluster that
/// ranks better than the worst selected one stays held: it would still displace it.
/// With the order above this makes every decision a fixed point: fed back as the previous
/// decision, it reproduces itself.
pub(crate) fn select(
    spec: &PlacementSpec,
    candidates: &[Candidate<'_>],
    context: &RankContext,
) -> Selection {
    let stabilization = Duration::from_secs(u64::from(spec.failback.stabilization_seconds));
    // Candidates arrive sorted by name, so a stable sort on the rest of the key finishes the
    // order without comparing names (which dominated at 5,000 clusters).
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| {
        let c = &candidates[i];
        (
            c.rank,
            !c.sticky(),
            c.selected_since,
            c.ready_for < stabilization,
        )
    });

    let mut gate = candidates
        .iter()
        .filter(|c| c.sticky())
        .map(|c| c.rank)
        .max();
    loop {
        let selection = pass(spec, candidates, context, &order, gate, stabilization);
        let worst_selected = candidates
            .iter()
            .zip(&selection.outcomes)
            .filter(|(_, o)| o.verdict == Verdict::Selected)
            .map(|(c, _)| c.rank)
            .max();
        // `None` (nothing selected: no gate) orders below every `Some`.
        if worst_selected >= gate {
            return selection;
        }
        gate = worst_selected;
    }
}

/// One selection with the failback gate at `gate`.
fn pass(
    spec: &PlacementSpec,
    candidates: &[Candidate<'_>],
    context: &RankContext,
    order: &[usize],
    gate: Option<u32>,
    stabilization: Duration,
) -> Selection {
    let mut outcomes: Vec<Option<Outcome>> = candidates.iter().map(|_| None).collect();
    let mut unavailable_rank = context.unavailable_rank;
    let mut open = Vec::with_capacity(order.len());
    for &i in order {
        let Some(c) = candidates.get(i) else { continue };
        match hold(spec, c, gate, stabilization) {
            Some(outcome) => {
                unavailable_rank = Some(unavailable_rank.map_or(c.rank, |u| u.min(c.rank)));
                outcomes[i] = Some(outcome);
            }
            None => open.push(i),
        }
    }
    let context = RankContext {
        unavailable_rank,
        ..*context
    };
    let unsatisfied = fill(spec, candidates, &context, &open, &mut outcomes);
    Selection {
        outcomes: outcomes
            .into_iter()
            .map(|o| {
                // `fill` decides every open candidate; this is only a never-panic fallback.
                o.unwrap_or(Outcome {
                    verdict: Verdict::Standby,
                    reason: Reason::MaxClustersReached,
                    message: Cow::Borrowed(""),
                })
            })
            .collect(),
        unsatisfied,
    }
}
