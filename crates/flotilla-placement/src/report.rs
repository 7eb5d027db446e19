//! Decision-level findings for `unsatisfied`, beyond the spread and replica ones.
use crate::cluster::ClusterInfo;
use crate::decision::{ClusterVerdict, Verdict};
use crate::fasthash::FastSet;
use crate::spec::PlacementSpec;

/// Names in `placement.clusters` that are not member clusters: worth telling the user, since a
/// typo there silently shrinks the placement. `inventory` is sorted by name.
pub(crate) fn unknown_listed(spec: &PlacementSpec, inventory: &[&ClusterInfo]) -> Vec<String> {
    let mut seen = FastSet::default();
    spec.clusters
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .filter(|name| {
            inventory
                .binary_search_by(|c| (*c.name).cmp(name.as_str()))
                .is_err()
        })
        .map(|name| {
            format!("cluster {name} is listed in placement.clusters but is not a member cluster")
        })
        .collect()
}

/// Why nothing is selected, in counts per verdict.
pub(crate) fn nothing_selected(clusters: &[ClusterVerdict]) -> String {
    let count = |v: Verdict| clusters.iter().filter(|c| c.verdict == v).count();
    format!(
        "no cluster is selected ({} member clusters: {} filtered, {} tainted, {} unhealthy, {} standby)",
        clusters.len(),
        count(Verdict::Filtered),
        count(Verdict::Tainted),
        count(Verdict::Unhealthy),
        count(Verdict::Standby)
    )
}
