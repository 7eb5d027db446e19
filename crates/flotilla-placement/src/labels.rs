//! Wording shared by explanations: how a failover rank is named.
use crate::spec::PlacementSpec;

/// `priority 1`, `priority 1 (backup)` for a named group, or `priority 3 (in no failover
/// group)` for clusters ranked after every group.
pub(crate) fn group_label(spec: &PlacementSpec, rank: u32) -> String {
    let group = usize::try_from(rank)
        .ok()
        .and_then(|r| spec.failover_priority.get(r));
    match group {
        Some(g) => match &g.name {
            Some(name) => format!("priority {rank} ({name})"),
            None => format!("priority {rank}"),
        },
        None => format!("priority {rank} (in no failover group)"),
    }
}
