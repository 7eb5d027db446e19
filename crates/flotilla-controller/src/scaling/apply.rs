//! Applying the division: each writable cluster's share through its scale subresource, only
//! where it differs, and 0 where Flotilla no longer places the workload. Which writes to make is
//! pure ([`planned_writes`]); the writes run at once in all clusters.
use std::collections::{BTreeMap, BTreeSet};

use kube::core::ApiResource;

use super::member::{self, ScaleError};
use super::scale::Poll;
use super::standing::Standing;
use super::state::PolicyState;
use super::status::Cond;

/// One cluster's replicas to change.
#[derive(Debug, PartialEq, Eq)]
struct Write<'a> {
    cluster: &'a str,
    ar: &'a ApiResource,
    before: i32,
    want: i32,
}

/// What the writes did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// "cluster before→after", for each write that succeeded.
    pub changes: Vec<String>,
    /// "cluster: message", for each write that failed.
    pub failures: Vec<String>,
    /// The failed writes' messages by cluster, for the cluster entries.
    pub failed_clusters: BTreeMap<String, String>,
}

impl Applied {
    /// `AbleToScale` when a write failed.
    pub fn condition(&self) -> Option<Cond> {
        (!self.failures.is_empty()).then(|| {
            Cond::new(
                false,
                "FailedUpdateScale",
                format!(
                    "the HPA controller was unable to update the target scale: {}",
                    self.failures.join("; ")
                ),
            )
        })
    }
}

/// Writes the shares and keeps what the members returned in `ps` (a failed cluster is read
/// again next time). `decided`: whether a total was decided in this poll; without one every
/// cluster is left as it is.
pub(super) async fn apply(
    poll: &Poll<'_>,
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    shares: &BTreeMap<&str, i32>,
    decided: bool,
    ps: &mut PolicyState,
) -> Applied {
    let writes = planned_writes(standings, selected, shares, decided)
        .into_iter()
        .filter_map(|w| {
            let client = poll.member(w.cluster)?.ready_client()?.clone();
            let name = &poll.plan.target.name;
            Some(async move {
                let guard = &poll.state.ctx.lease;
                let write =
                    member::set_replicas(guard, &client, poll.namespace, w.ar, name, w.want);
                let result = poll
                    .state
                    .lanes
                    .run(w.cluster, write)
                    .await
                    .unwrap_or_else(|lane| Err(member::ScaleError::Failed(lane.to_string())));
                (w, result)
            })
        });
    let mut applied = Applied::default();
    for (w, result) in futures::future::join_all(writes).await {
        let cluster = w.cluster.to_string();
        match result {
            Ok(view) => {
                applied
                    .changes
                    .push(format!("{cluster} {}→{}", w.before, w.want));
                if let Some(o) = ps.observed.get_mut(&cluster) {
                    o.scale = Ok(view);
                }
            }
            Err(e) => {
                let message = match &e {
                    ScaleError::Missing(m) | ScaleError::Failed(m) => m.clone(),
                };
                tracing::warn!(cluster, policy = %poll.name(), error = %message, "scaling in member failed");
                applied.failures.push(format!("{cluster}: {message}"));
                applied.failed_clusters.insert(cluster.clone(), message);
                // Read it again next time.
                ps.observed.remove(&cluster);
            }
        }
    }
    applied
}

/// The writes the division calls for: a selected writable cluster gets its share (only when a
/// total was decided), one no longer selected gets 0; a cluster already there is left alone.
fn planned_writes<'a>(
    standings: &'a BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    shares: &BTreeMap<&str, i32>,
    decided: bool,
) -> Vec<Write<'a>> {
    standings
        .iter()
        .filter_map(|(cluster, standing)| {
            let Standing::Writable { ar, scale, .. } = standing else {
                return None;
            };
            // Without a decided total nothing is written, not even the 0 of a cluster the
            // workload left: its replicas would have nowhere to go (the new clusters may be
            // unscalable), and scaling down on missing data is what the HPA never does.
            if !decided {
                return None;
            }
            let want = if selected.contains(cluster.as_str()) {
                shares.get(cluster.as_str()).copied().unwrap_or(0)
            } else {
                0
            };
            (scale.replicas != want).then_some(Write {
                cluster,
                ar,
                before: scale.replicas,
                want,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::member::ScaleView;

    fn writable(replicas: i32) -> Standing {
        Standing::Writable {
            ar: ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
            scale: ScaleView {
                replicas,
                ..ScaleView::default()
            },
            hpas: vec![],
        }
    }

    fn plan(decided: bool) -> Vec<(String, i32, i32)> {
        let standings = BTreeMap::from([
            ("a".to_string(), writable(3)),
            ("b".to_string(), writable(2)),
            ("c".to_string(), writable(4)),
            ("d".to_string(), Standing::Unreachable),
            ("e".to_string(), writable(0)),
        ]);
        let selected = BTreeSet::from(["a", "b", "d"]);
        let shares = BTreeMap::from([("a", 5), ("b", 2), ("d", 0)]);
        planned_writes(&standings, &selected, &shares, decided)
            .into_iter()
            .map(|w| (w.cluster.to_string(), w.before, w.want))
            .collect()
    }

    #[test]
    fn only_differing_shares_are_written_and_unselected_clusters_go_to_zero() {
        assert_eq!(
            plan(true),
            vec![("a".to_string(), 3, 5), ("c".to_string(), 4, 0)]
        );
        // Without a decided total nothing is written: not even the cluster the workload left.
        assert_eq!(plan(false), vec![]);
    }
}
