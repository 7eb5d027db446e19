//! Dereferencing the members: in each considered cluster, the target's scale subresource and the
//! member HPAs targeting it. An observation is reused for `member_resync` unless the member's
//! client or health changed since; only stale ones are read again, all clusters at once.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::Client;
use kube::core::ApiResource;

use super::member::{self, ScaleError, ScaleView};
use super::read_metrics::{Queried, query_prometheus};
use super::scale::Poll;
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

/// Reads the considered clusters that are Ready. What the operator already watches costs no
/// request and is read every poll: a federated workload's scale from the engine's copy watch,
/// member HPAs from the shared HPA watch. Anything else (the scale of a workload Flotilla does not
/// propagate, HPAs before their watch has listed) is read from the member when the observation is
/// stale.
async fn read_stale(
    poll: &Poll<'_>,
    consider: &BTreeSet<String>,
    ps: &PolicyState,
) -> Vec<(String, Option<ApiResource>, Observation)> {
    let resync = poll.state.config.member_resync;
    let target = &poll.plan.target;
    futures::future::join_all(consider.iter().filter_map(|cluster| {
        let member = poll.member(cluster)?;
        let client = member.ready_client()?.clone();
        let resolved = ps.resolved.get(cluster).cloned();
        let watched = Watched {
            scale: resolved
                .as_ref()
                .and_then(|ar| watched_scale(poll, cluster, ar)),
            hpas: poll.state.hpas.targeting(member, poll.namespace, target),
        };
        if let Watched {
            scale: Some(scale),
            hpas: Some(hpas),
        } = watched
        {
            let observed = observation(member, scale, Ok(hpas));
            return Some(futures::future::Either::Left(std::future::ready((
                cluster.clone(),
                resolved,
                observed,
            ))));
        }
        if ps
            .observed
            .get(cluster)
            .is_some_and(|o| is_fresh(o, member, resync))
        {
            return None;
        }
        Some(futures::future::Either::Right(async move {
            match poll
                .state
                .lanes
                .run(
                    cluster,
                    read_member(poll, &client, member, resolved.clone(), watched),
                )
                .await
            {
                Ok((ar, observation)) => (cluster.clone(), ar, observation),
                Err(lane) => (
                    cluster.clone(),
                    resolved,
                    observation(
                        member,
                        Err(ScaleError::Failed(lane.to_string())),
                        Ok(Vec::new()),
                    ),
                ),
            }
        }))
    }))
    .await
}

/// What the shared watches already told of one member (`None`: read it from the member).
struct Watched {
    scale: Option<Result<ScaleView, ScaleError>>,
    hpas: Option<Vec<String>>,
}

/// A federated workload's scale in `cluster`, from the engine's watch of its copies; `None` when
/// the policy's workload is not federated or the watch has not listed yet.
fn watched_scale(
    poll: &Poll<'_>,
    cluster: &str,
    ar: &ApiResource,
) -> Option<Result<ScaleView, ScaleError>> {
    let origin = poll.workload?.origin.as_ref()?;
    let copies = &poll.state.copies;
    if !copies.is_listed(cluster, ar) {
        return None;
    }
    let Some(copy) = copies.copy(cluster, ar, origin) else {
        return Some(Err(ScaleError::Missing(format!(
            "{} {} has no copy in {cluster} (yet)",
            ar.kind, origin.copy_name
        ))));
    };
    let scale = copy.scale?;
    Some(Ok(ScaleView {
        replicas: scale.replicas,
        status_replicas: scale.status_replicas,
        selector: scale
            .selector
            .as_ref()
            .and_then(|s| super::spec::selector_string("spec.selector", s).ok())
            .filter(|s| !s.is_empty()),
        label_selector: scale.selector.clone(),
    }))
}

/// Whether `o` can be reused: read less than `resync` ago, with the member's current client,
/// and since its last change of health.
fn is_fresh(o: &Observation, member: &Member, resync: Duration) -> bool {
    o.at.elapsed() < resync
        && o.client_generation == member.client_generation
        && o.health_since == member.health_since
}

fn observation(
    member: &Member,
    scale: Result<ScaleView, ScaleError>,
    hpas: Result<Vec<String>, String>,
) -> Observation {
    Observation {
        at: Instant::now(),
        client_generation: member.client_generation,
        health_since: member.health_since,
        scale,
        hpas,
    }
}

/// Reads from the member what the shared watches could not tell: the scale (resolving the kind
/// first if needed) and the member HPAs.
async fn read_member(
    poll: &Poll<'_>,
    client: &Client,
    member: &Member,
    resolved: Option<ApiResource>,
    watched: Watched,
) -> (Option<ApiResource>, Observation) {
    let (namespace, target) = (poll.namespace, &poll.plan.target);
    let ar = match resolved {
        Some(ar) => ar,
        None => match member::resolve(client, target).await {
            Ok(ar) => ar,
            Err(e) => return (None, observation(member, Err(e), Ok(Vec::new()))),
        },
    };
    // Kind just resolved: the copy watch may know the scale now.
    let known_scale = watched
        .scale
        .or_else(|| watched_scale(poll, &member.name, &ar));
    let scale = async {
        match known_scale {
            Some(scale) => scale,
            None => member::get_scale(client, namespace, &ar, &target.name).await,
        }
    };
    let hpas = async {
        match watched.hpas {
            Some(hpas) => Ok(hpas),
            None => member::conflicting_hpas(client, namespace, target).await,
        }
    };
    let (scale, hpas) = futures::join!(scale, hpas);
    (Some(ar), observation(member, scale, hpas))
}
