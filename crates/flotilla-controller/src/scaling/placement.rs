//! Where the workload runs and how the decided total is divided: both by the placement engine,
//! first without replicas (the selection), then with the total (the division), in which the
//! clusters Flotilla cannot or must not scale get no share. Pure but for the clock.
use std::collections::{BTreeMap, BTreeSet};

use flotilla_api::scaling_policy::{Distribution, ScalingPolicyStatus};
use flotilla_placement::{
    ClusterInfo, Decision, DecisionInput, ObjectNamespace, PreviousDecision, ReplicaPreference,
    ReplicaRequest, decide,
};

use super::scale::Poll;
use crate::error::{Error, Result};
use crate::placement_input::{inventory, previous, replica_request, timestamp};

/// The placement engine's selection for this poll, and its inputs (the division reuses them).
pub(super) struct Placement {
    pub inventory: Vec<ClusterInfo>,
    pub previous: PreviousDecision,
    /// The policy's host namespace labels, as the selection saw them.
    pub namespace_labels: BTreeMap<String, String>,
    pub selection: Decision,
    /// The clusters to look at: the selected ones, and those Flotilla scaled before and no
    /// longer selects (their replicas go to 0 once reachable, their share having moved).
    pub consider: BTreeSet<String>,
}

impl Placement {
    pub fn selected(&self) -> BTreeSet<&str> {
        self.selection.selected.iter().map(String::as_str).collect()
    }
}

/// Selects the clusters the workload runs on.
pub(super) fn place(poll: &Poll<'_>) -> Result<Placement> {
    let previous_status = poll.previous_status();
    let inventory = inventory(poll.members);
    let previous = previous(poll.placement_before());
    let namespace_labels = poll.state.ctx.namespace_labels(poll.namespace);
    let selection = decide(&DecisionInput {
        spec: poll.placement_spec,
        clusters: &inventory,
        previous: &previous,
        now: timestamp(poll.now),
        replicas: None,
        namespace: Some(ObjectNamespace {
            name: poll.namespace,
            labels: &namespace_labels,
        }),
    })
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let mut consider: BTreeSet<String> = selection.selected.iter().cloned().collect();
    consider.extend(managed_before(previous_status));
    Ok(Placement {
        inventory,
        previous,
        namespace_labels,
        selection,
        consider,
    })
}

/// The clusters the previous status reports Flotilla as scaling (or trying to): every entry
/// but those it left alone (member HPA conflict) or found no target in.
fn managed_before(previous: Option<&ScalingPolicyStatus>) -> BTreeSet<String> {
    previous
        .iter()
        .flat_map(|s| s.clusters.iter())
        .filter(|c| c.state != "Conflict" && c.state != "TargetMissing")
        .map(|c| c.cluster.clone())
        .collect()
}

/// Divides `total` across the selected clusters, none of it to the `unscalable` ones. Without a
/// decided total there is nothing to divide: the selection is reported as is.
pub(super) fn divide<'a>(
    poll: &Poll<'_>,
    placement: &Placement,
    decided: bool,
    total: i32,
    unscalable: impl Iterator<Item = &'a str>,
) -> Result<Decision> {
    if !decided {
        return Ok(placement.selection.clone());
    }
    let request = share_request(poll.distribution(), total, unscalable);
    decide(&DecisionInput {
        spec: poll.placement_spec,
        clusters: &placement.inventory,
        previous: &placement.previous,
        now: timestamp(poll.now),
        replicas: Some(&request),
        namespace: Some(ObjectNamespace {
            name: poll.namespace,
            labels: &placement.namespace_labels,
        }),
    })
    .map_err(|e| Error::InvalidSpec(e.to_string()))
}

/// The division request for `total`: the policy's distribution, with no share (maximum 0, no
/// minimum) for the clusters Flotilla cannot or must not scale, so the placement engine gives
/// their share to the others instead of leaving it unwritten.
fn share_request<'a>(
    distribution: &Distribution,
    total: i32,
    unscalable: impl Iterator<Item = &'a str>,
) -> ReplicaRequest {
    let mut request = replica_request(distribution, total);
    for cluster in unscalable {
        match request.preferences.iter_mut().find(|p| p.name == cluster) {
            Some(p) => {
                p.max_replicas = Some(0);
                p.min_replicas = None;
            }
            None => request.preferences.insert(
                0,
                ReplicaPreference {
                    name: cluster.to_string(),
                    weight: None,
                    min_replicas: None,
                    max_replicas: Some(0),
                },
            ),
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use flotilla_api::scaling_policy::ClusterReplicaPreference;

    use super::*;

    #[test]
    fn unscalable_clusters_get_no_share_and_the_others_take_it() {
        let distribution = Distribution {
            default_weight: 1,
            clusters: vec![ClusterReplicaPreference {
                name: "b".into(),
                weight: Some(5),
                min_replicas: Some(2),
                max_replicas: None,
            }],
        };
        let request = share_request(&distribution, 9, ["b", "c"].into_iter());
        let cluster = |name: &str| ClusterInfo {
            name: name.into(),
            labels: Default::default(),
            taints: vec![],
            health: flotilla_placement::Health {
                ready: true,
                since: flotilla_placement::Timestamp::from_unix_millis(0),
            },
            capacity_replicas: None,
            namespaces: Default::default(),
        };
        let inventory = [cluster("a"), cluster("b"), cluster("c"), cluster("d")];
        let decision = decide(&DecisionInput {
            spec: &flotilla_placement::PlacementSpec::default(),
            clusters: &inventory,
            previous: &Default::default(),
            now: flotilla_placement::Timestamp::from_unix_millis(1),
            replicas: Some(&request),
            namespace: None,
        })
        .expect("valid");
        let shares: BTreeMap<&str, i32> = decision.replicas().into_iter().collect();
        assert_eq!(
            shares,
            BTreeMap::from([("a", 5), ("b", 0), ("c", 0), ("d", 4)])
        );
        assert!(
            decision.unsatisfied.is_empty(),
            "{:?}",
            decision.unsatisfied
        );
    }
}
