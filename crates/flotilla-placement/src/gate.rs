//! The failback gate: hysteresis against moving back to a recovered higher-priority cluster too
//! early. Failing over is never delayed (the prober has debounced health already); only a move
//! that would displace a currently selected cluster of worse rank has to wait until the
//! newcomer has been ready for the stabilization period, and never happens with failback
//! `Never`. A flap shorter than the period restarts the wait, so it cannot change the decision.
use std::time::Duration;

use crate::decision::{Reason, Verdict};
use crate::labels::group_label;
use crate::select::{Candidate, Outcome};
use crate::spec::{FailbackMode, PlacementSpec};
use crate::time::human;

/// The standby outcome for `c` when the gate holds it back, `None` when it may compete.
/// `gate` is the worst rank among currently selected clusters (see [`crate::select::select`]).
pub(crate) fn hold(
    spec: &PlacementSpec,
    c: &Candidate<'_>,
    gate: Option<u32>,
    stabilization: Duration,
) -> Option<Outcome> {
    let displaces = !c.sticky() && gate.is_some_and(|worst| c.rank < worst);
    if !displaces {
        return None;
    }
    let (reason, message) = if spec.failback.mode == FailbackMode::Never {
        (
            Reason::FailbackDisabled,
            format!(
                "{} ranks above the current selection, but failback mode is Never",
                group_label(spec, c.rank)
            ),
        )
    } else if c.ready_for < stabilization {
        (
            Reason::FailbackPending,
            format!(
                "{} ranks above the current selection; ready for {} of the {} stabilization period",
                group_label(spec, c.rank),
                human(c.ready_for),
                human(stabilization)
            ),
        )
    } else {
        return None;
    };
    Some(Outcome {
        verdict: Verdict::Standby,
        reason,
        message: message.into(),
    })
}
