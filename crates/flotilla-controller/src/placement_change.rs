//! What changed between two placement decisions (pure), shared by the FederatedIngress and
//! ScalingPolicy controllers, which tell it in Events of their own wording.
use std::collections::BTreeSet;

use flotilla_api::placement_status::{PlacementStatus, Verdict};

/// A changed selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementChange {
    /// Nothing was selected before: the object's first placement.
    pub first: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The removed clusters that left because they became unhealthy or tainted, as
    /// "cluster (reason)": a failover.
    pub failed: Vec<String>,
}

impl PlacementChange {
    /// Between `before` and `after`; `None` when the selection is the same.
    pub fn between(before: Option<&PlacementStatus>, after: &PlacementStatus) -> Option<Self> {
        let old: BTreeSet<&String> = before
            .map(|p| p.selected.iter().collect())
            .unwrap_or_default();
        let new: BTreeSet<&String> = after.selected.iter().collect();
        if old == new {
            return None;
        }
        let removed: Vec<String> = old.difference(&new).map(|c| c.to_string()).collect();
        let failed = removed
            .iter()
            .filter_map(|c| after.clusters.iter().find(|v| &v.cluster == c))
            .filter(|v| matches!(v.verdict, Verdict::Unhealthy | Verdict::Tainted))
            .map(|v| format!("{} ({})", v.cluster, v.reason))
            .collect();
        Some(Self {
            first: old.is_empty(),
            added: new.difference(&old).map(|c| c.to_string()).collect(),
            removed,
            failed,
        })
    }

    pub fn is_failover(&self) -> bool {
        !self.failed.is_empty()
    }

    /// "placement changed: added [c], removed [b]".
    pub fn change_note(&self) -> String {
        format!(
            "placement changed: added [{}], removed [{}]",
            self.added.join(", "),
            self.removed.join(", ")
        )
    }
}

/// A placement status for tests: `selected`, and `unhealthy` clusters with verdict Unhealthy.
#[cfg(test)]
pub(crate) fn test_placement(selected: &[&str], unhealthy: &[&str]) -> PlacementStatus {
    use flotilla_api::placement_status::ClusterVerdict;
    PlacementStatus {
        selected: selected.iter().map(|s| s.to_string()).collect(),
        clusters: unhealthy
            .iter()
            .map(|c| ClusterVerdict {
                cluster: c.to_string(),
                verdict: Verdict::Unhealthy,
                reason: "NotReady".into(),
                message: String::new(),
                priority: None,
                replicas: None,
                selected_since: None,
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{PlacementChange, test_placement as placement};

    #[test]
    fn tells_a_first_placement_a_failover_and_a_change_apart() {
        let ab = placement(&["a", "b"], &[]);
        assert_eq!(PlacementChange::between(Some(&ab), &ab), None);
        let first = PlacementChange::between(None, &ab).unwrap_or_else(|| panic!("a change"));
        assert!(first.first && !first.is_failover());
        assert_eq!(first.added, ["a", "b"]);

        let failed = PlacementChange::between(Some(&ab), &placement(&["a"], &["b"]))
            .unwrap_or_else(|| panic!("a change"));
        assert!(failed.is_failover() && !failed.first);
        assert_eq!(failed.failed, ["b (NotReady)"]);

        let moved = PlacementChange::between(Some(&ab), &placement(&["a", "c"], &[]))
            .unwrap_or_else(|| panic!("a change"));
        assert!(!moved.is_failover());
        assert_eq!(
            moved.change_note(),
            "placement changed: added [c], removed [b]"
        );
    }
}
