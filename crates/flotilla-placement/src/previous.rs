//! The previous decision, fed back in: the memory behind failback hysteresis and stickiness.
//!
//! The engine keeps no state between calls. The controller persists the selected set (in the
//! object's status) and hands it back on the next reconcile, which lets the engine prefer
//! clusters that already hold the object and refuse to fail back before a recovered cluster has
//! proven itself.
use crate::time::Timestamp;

/// What the previous reconcile selected. `Default` means "nothing placed yet".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviousDecision {
    /// The clusters that were selected, each with the time it was first selected. Order does not
    /// matter; names not in the inventory are ignored.
    pub selected: Vec<PreviousSelection>,
    /// When the selected set last changed (carried into [`crate::Decision::last_change`]).
    pub last_change: Option<Timestamp>,
}

/// One previously selected cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousSelection {
    /// The cluster name.
    pub name: String,
    /// When the cluster was first selected (kept while it stays selected).
    pub since: Timestamp,
}

impl PreviousDecision {
    /// A previous decision that selected `names`, all since `since` (what a controller can
    /// rebuild from `status.placement.selected` and `lastChangeTime`).
    pub fn from_names<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
        since: Timestamp,
    ) -> Self {
        Self {
            selected: names
                .into_iter()
                .map(|name| PreviousSelection {
                    name: name.into(),
                    since,
                })
                .collect(),
            last_change: Some(since),
        }
    }
}
