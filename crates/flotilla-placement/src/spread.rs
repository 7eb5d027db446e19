//! Running per-value counts for the spread constraints while clusters are selected one by one.
use crate::fasthash::FastMap;
use crate::spec::PlacementSpec;

/// Selected clusters per topology value, one map per spread constraint (in the spec's order).
pub(crate) struct SpreadCounts<'s> {
    counts: Vec<FastMap<&'s str, u32>>,
}

impl<'s> SpreadCounts<'s> {
    pub(crate) fn new(spec: &PlacementSpec) -> Self {
        Self {
            counts: vec![FastMap::default(); spec.constraints.spread.len()],
        }
    }

    /// The index of a constraint whose `maxPerGroup` is already reached for `topology`.
    pub(crate) fn full(&self, spec: &PlacementSpec, topology: &[&'s str]) -> Option<usize> {
        spec.constraints
            .spread
            .iter()
            .zip(&self.counts)
            .zip(topology)
            .position(|((c, counts), value)| {
                c.max_per_group
                    .is_some_and(|max| counts.get(value).copied().unwrap_or(0) >= max)
            })
    }

    /// Whether `topology` adds a value to a constraint still short of its `minGroups`.
    pub(crate) fn covers_new(&self, spec: &PlacementSpec, topology: &[&'s str]) -> bool {
        spec.constraints
            .spread
            .iter()
            .zip(&self.counts)
            .zip(topology)
            .any(|((c, counts), value)| {
                c.min_groups.is_some_and(|min| {
                    usize::try_from(min).unwrap_or(usize::MAX) > counts.len()
                        && !counts.contains_key(value)
                })
            })
    }

    /// Whether every `minGroups` is met (then coverage needs no more clusters).
    pub(crate) fn all_met(&self, spec: &PlacementSpec) -> bool {
        spec.constraints
            .spread
            .iter()
            .zip(&self.counts)
            .all(|(c, counts)| {
                c.min_groups
                    .is_none_or(|min| usize::try_from(min).unwrap_or(usize::MAX) <= counts.len())
            })
    }

    /// Counts one more selected cluster.
    pub(crate) fn add(&mut self, topology: &[&'s str]) {
        for (counts, value) in self.counts.iter_mut().zip(topology) {
            *counts.entry(value).or_insert(0) += 1;
        }
    }

    /// Plain-words complaints for every constraint whose `minGroups` is not met.
    pub(crate) fn unmet(&self, spec: &PlacementSpec) -> Vec<String> {
        spec.constraints
            .spread
            .iter()
            .zip(&self.counts)
            .filter_map(|(c, counts)| {
                let min = c.min_groups?;
                let have = u32::try_from(counts.len()).unwrap_or(u32::MAX);
                (have < min).then(|| {
                    let mut values: Vec<&str> = counts.keys().copied().collect();
                    values.sort_unstable();
                    format!(
                        "spread over {} needs at least {min} distinct values but the selected clusters cover {have} ({})",
                        c.topology_key,
                        values.join(", ")
                    )
                })
            })
            .collect()
    }
}
