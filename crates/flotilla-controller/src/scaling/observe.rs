//! Dereferencing the members: in each considered cluster, the target's scale subresource and the
//! member HPAs targeting it. An observation is reused for `member_resync` unless the member's
//! client or health changed since; only stale ones are read again, all clusters at once.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::Client;
use kube::core::ApiResource;

use super::member;
use super::read_metrics::{Queried, query_prometheus};
use super::scale::Poll;
use super::spec::Target;
use super::state::{Observation, PolicyState};
use crate::members::registry::Member;

/// Refreshes the stale observations of the `consider`ed clusters in `ps`, and runs the policy's
/// Prometheus queries meanwhile: they do not depend on the members, so a member resync does not
/// delay the reaction to a metric. Returns the Prometheus results.
pub(super) async fn observe_members(
    poll: &Poll<'_>,
    consider: &BTreeSet<String>,
    ps: &mut PolicyState,
) -> Queried {
    let (queried, refreshed) = futures::join!(
        query_prometheus(&poll.state.prometheus, poll.plan),
        read_stale(poll, consider, ps)
    );
    for (cluster, ar, observation) in refreshed {
        ps.remember(cluster, ar, observation);
    }
    queried
}

/// Reads the considered clusters that are Ready and whose observation is stale.
async fn read_stale(
    poll: &Poll<'_>,
    consider: &BTreeSet<String>,
    ps: &PolicyState,
) -> Vec<(String, Option<ApiResource>, Observation)> {
    let resync = poll.state.config.member_resync;
    futures::future::join_all(consider.iter().filter_map(|cluster| {
        let member = poll.member(cluster)?;
        let client = member.ready_client()?.clone();
        if ps
            .observed
            .get(cluster)
            .is_some_and(|o| is_fresh(o, member, resync))
        {
            return None;
        }
        let resolved = ps.resolved.get(cluster).cloned();
        Some(async move {
            let (ar, observation) =
                read_member(&client, member, poll.namespace, &poll.plan.target, resolved).await;
            (cluster.clone(), ar, observation)
        })
    }))
    .await
}

/// Whether `o` can be reused: read less than `resync` ago, with the member's current client,
/// and since its last change of health.
fn is_fresh(o: &Observation, member: &Member, resync: Duration) -> bool {
    o.at.elapsed() < resync
        && o.client_generation == member.client_generation
        && o.health_since == member.health_since
}

/// Reads the scale and the member HPAs of one cluster (resolving the kind first if needed).
async fn read_member(
    client: &Client,
    member: &Member,
    namespace: &str,
    target: &Target,
    resolved: Option<ApiResource>,
) -> (Option<ApiResource>, Observation) {
    let observation = |scale, hpas| Observation {
        at: Instant::now(),
        client_generation: member.client_generation,
        health_since: member.health_since,
        scale,
        hpas,
    };
    let ar = match resolved {
        Some(ar) => ar,
        None => match member::resolve(client, target).await {
            Ok(ar) => ar,
            Err(e) => return (None, observation(Err(e), Ok(Vec::new()))),
        },
    };
    let (scale, hpas) = futures::join!(
        member::get_scale(client, namespace, &ar, &target.name),
        member::conflicting_hpas(client, namespace, target)
    );
    (Some(ar), observation(scale, hpas))
}
