//! Reading a policy's metrics for one poll, every one fresh: Prometheus instant queries (run
//! alongside the member reads, see [`query_prometheus`]), and the member metrics APIs summed over
//! the selected clusters Flotilla scales. A metric that fails in any of them fails as a whole.
use std::time::Instant;

use kube::Client;

use flotilla_autoscaling as hpa;

use super::member::{self, ScaleView, hpa_time};
use super::member_pods::MemberPods;
use super::prometheus::Prometheus;
use super::scale::Poll;
use super::spec::{MetricPlan, Plan};
use super::state::MemberReadings;
use crate::members::registry::Member;
use crate::propagation::lanes::Lanes;

/// Each metric's Prometheus result, in spec order; `None` for the metrics read from the
/// members.
pub(super) type Queried = Vec<Option<Result<f64, String>>>;

/// Runs the policy's Prometheus queries (they do not depend on the members).
pub(super) async fn query_prometheus(prometheus: &Prometheus, plan: &Plan) -> Queried {
    futures::future::join_all(plan.metrics.iter().map(|m| async move {
        match m {
            MetricPlan::Prometheus { query } => Some(prometheus.query(query).await),
            _ => None,
        }
    }))
    .await
}

/// Reads every metric, in spec order; `queried` holds the Prometheus results already read.
pub(super) async fn read_metrics(
    poll: &Poll<'_>,
    queried: Queried,
    writable: &[(&str, &ScaleView)],
    cache: &mut Option<MemberReadings>,
) -> Vec<hpa::MetricReading> {
    let (plan, members) = (poll.plan, poll.members);
    let period = poll.state.config.member_metrics_period;
    let reader = Reader {
        namespace: poll.namespace,
        lanes: &poll.state.lanes,
        shared_pods: &poll.state.pods,
        now: hpa_time(poll.now),
    };
    let reader = &reader;
    // The members' metrics APIs are read at most once per period for the same clusters; a
    // change of clusters (a failover) reads them again at once. Prometheus is read every poll.
    let clusters: Vec<String> = writable.iter().map(|(c, _)| c.to_string()).collect();
    if let Some(c) = cache.as_ref()
        && c.at.elapsed() < period
        && c.clusters == clusters
        && c.readings.len() == queried.len()
    {
        return queried
            .into_iter()
            .zip(&c.readings)
            .map(|(q, cached)| match (q, cached) {
                (Some(result), _) => result
                    .map(hpa::MetricReading::Value)
                    .unwrap_or_else(hpa::MetricReading::Failed),
                (None, Some(reading)) => reading.clone(),
                (None, None) => hpa::MetricReading::Failed("internal: no reading kept".into()),
            })
            .collect();
    }
    let clients: Vec<MemberRead<'_>> = writable
        .iter()
        .filter_map(|(c, s)| {
            let member = members.iter().find(|m| &m.name == c)?;
            let client = member.ready_client()?.clone();
            Some(MemberRead {
                member,
                client,
                scale: s,
            })
        })
        .collect();
    let clients = &clients;
    let reads = plan.metrics.iter().zip(queried).map(|(m, q)| async move {
        match q {
            Some(result) => result.map(hpa::MetricReading::Value),
            None => read_metric(reader, m, clients).await,
        }
    });
    let readings: Vec<hpa::MetricReading> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(hpa::MetricReading::Failed))
        .collect();
    let from_members = plan
        .metrics
        .iter()
        .zip(&readings)
        .map(|(m, r)| (!matches!(m, MetricPlan::Prometheus { .. })).then(|| r.clone()))
        .collect::<Vec<_>>();
    // Only successful member reads are kept: a failure is retried at the next poll.
    let any_failed = from_members
        .iter()
        .flatten()
        .any(|r| matches!(r, hpa::MetricReading::Failed(_)));
    *cache = (from_members.iter().any(Option::is_some) && !any_failed).then(|| MemberReadings {
        at: Instant::now(),
        clusters,
        readings: from_members,
    });
    readings
}

/// Gathers one result per member; any member failing fails the metric (as the HPA does when it
/// cannot read a metric: no scaling on partial data).
fn per_member<T>(results: Vec<(&str, Result<T, String>)>) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (cluster, r) in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => errors.push(format!("{cluster}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("; "))
    }
}

/// One metric from the members' metrics APIs: an External metric's values summed; a Pods or
/// Resource metric as one sample per pod of the target in every member, pooled, for the replica
/// calculator's rules on unready pods and pods without metrics.
async fn read_metric(
    reader: &Reader<'_>,
    plan: &MetricPlan,
    clients: &[MemberRead<'_>],
) -> Result<hpa::MetricReading, String> {
    let Reader {
        namespace, lanes, ..
    } = *reader;
    match plan {
        MetricPlan::Prometheus { query } => Err(format!(
            "internal: the Prometheus query {query:?} was not run"
        )),
        MetricPlan::External { name, selector } => {
            let results = futures::future::join_all(clients.iter().map(|r| async move {
                let (c, client) = (r.member.name.as_str(), &r.client);
                (
                    c,
                    in_lane(
                        lanes,
                        c,
                        member::external_metric(client, namespace, name, selector.as_deref()),
                    )
                    .await,
                )
            }))
            .await;
            per_member(results).map(|v| hpa::MetricReading::Value(v.into_iter().sum()))
        }
        MetricPlan::Object {
            described,
            name,
            selector,
        } => {
            // The object's copy in each member (a federated Ingress, say): the federated object's
            // value is the sum.
            let results = futures::future::join_all(clients.iter().map(|r| async move {
                let (c, client) = (r.member.name.as_str(), &r.client);
                let read = async {
                    let gvk = kube::api::GroupVersionKind::gvk(
                        &described.group,
                        &described.version,
                        &described.kind,
                    );
                    let (resource, _) =
                        kube::discovery::pinned_kind(client, &gvk)
                            .await
                            .map_err(|e| {
                                format!("{} is not served here: {e}", described.api_version())
                            })?;
                    member::object_metric(
                        client,
                        namespace,
                        &resource,
                        &described.name,
                        name,
                        selector.as_deref(),
                    )
                    .await
                };
                (c, in_lane(lanes, c, read).await)
            }))
            .await;
            per_member(results).map(|v| hpa::MetricReading::Value(v.into_iter().sum()))
        }
        MetricPlan::Pods { name, selector } => {
            let values = PodValues::Pods {
                name,
                selector: selector.as_deref(),
            };
            per_pod(reader, clients, values, false).await
        }
        MetricPlan::Resource { name, utilization } => {
            let values = PodValues::Resource { name };
            per_pod(reader, clients, values, *utilization).await
        }
    }
}

/// Where the per-pod values of a Pods or Resource metric come from.
#[derive(Clone, Copy)]
enum PodValues<'a> {
    /// custom.metrics.k8s.io, by pod.
    Pods {
        name: &'a str,
        selector: Option<&'a str>,
    },
    /// metrics.k8s.io usage of this resource, by pod.
    Resource { name: &'a str },
}

impl PodValues<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Pods { name, .. } | Self::Resource { name } => name,
        }
    }

    /// The resource whose readiness rules and requests apply (`None` for a Pods metric).
    fn resource(&self) -> Option<&str> {
        match self {
            Self::Pods { .. } => None,
            Self::Resource { name } => Some(name),
        }
    }

    async fn read(
        &self,
        client: &Client,
        namespace: &str,
        pods: &str,
    ) -> Result<std::collections::BTreeMap<String, member::PodValue>, String> {
        match *self {
            Self::Pods { name, selector } => {
                member::pods_metric_per_pod(client, namespace, name, pods, selector).await
            }
            Self::Resource { name } => {
                member::resource_usage_per_pod(client, namespace, name, pods).await
            }
        }
    }
}

/// A Pods or Resource metric: in every member, the target's pods (from the shared pod watch when
/// the selector is known as a structure, else listed) and their values, each pod classified;
/// then every member's samples as one pod set.
async fn per_pod(
    reader: &Reader<'_>,
    clients: &[MemberRead<'_>],
    values: PodValues<'_>,
    utilization: bool,
) -> Result<hpa::MetricReading, String> {
    let Reader {
        namespace,
        lanes,
        shared_pods,
        now,
    } = *reader;
    let resource = values.resource();
    let results = futures::future::join_all(clients.iter().map(|r| async move {
        let c = r.member.name.as_str();
        let read = async {
            let selector = r.scale.selector.as_deref().ok_or_else(|| {
                format!("the target's scale subresource in {c} reports no pod selector")
            })?;
            let shared = r
                .scale
                .label_selector
                .as_ref()
                .and_then(|ls| shared_pods.pods(r.member, namespace, ls, resource));
            let listed = async {
                match shared {
                    Some(pods) => Ok(pods),
                    None => member::target_pods(&r.client, namespace, selector, resource).await,
                }
            };
            let (listed, values) =
                futures::future::join(listed, values.read(&r.client, namespace, selector)).await;
            member::samples(&listed?, &values?, resource, utilization, now)
        };
        (c, in_lane(lanes, c, read).await)
    }))
    .await;
    pooled(per_member(results)?, values.name())
}

/// What every member read of one poll shares: the policy's namespace, the member lanes, the
/// shared pod watches and the poll's time.
#[derive(Clone, Copy)]
struct Reader<'a> {
    namespace: &'a str,
    lanes: &'a Lanes,
    shared_pods: &'a MemberPods,
    now: hpa::Timestamp,
}

/// One member to read a metric from: the member, its client, the target's scale there.
struct MemberRead<'a> {
    member: &'a Member,
    client: Client,
    scale: &'a ScaleView,
}

/// Runs one member read in the member's lane (bounded concurrency, a deadline).
async fn in_lane<T>(
    lanes: &Lanes,
    cluster: &str,
    read: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    lanes
        .run(cluster, read)
        .await
        .unwrap_or_else(|lane| Err(lane.to_string()))
}

/// The members' samples as one pod set.
fn pooled(per_member: Vec<Vec<hpa::PodSample>>, name: &str) -> Result<hpa::MetricReading, String> {
    let samples: Vec<hpa::PodSample> = per_member.into_iter().flatten().collect();
    if samples.is_empty() {
        return Err(format!("the target has no pods to read {name} from"));
    }
    Ok(hpa::MetricReading::PerPod(samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_member_failing_fails_the_metric() {
        let ok = per_member(vec![("a", Ok(2.0)), ("b", Ok(4.0))]);
        assert_eq!(ok, Ok(vec![2.0, 4.0]));
        let failed = per_member::<f64>(vec![
            ("a", Ok(2.0)),
            ("b", Err("timeout".into())),
            ("c", Err("forbidden".into())),
        ]);
        assert_eq!(failed, Err("b: timeout; c: forbidden".to_string()));
    }

    #[test]
    fn samples_of_all_members_are_one_pod_set() {
        let reading = pooled(
            vec![
                vec![hpa::PodSample::ready(1.0)],
                vec![hpa::PodSample::missing()],
            ],
            "cpu",
        )
        .expect("samples");
        assert!(matches!(reading, hpa::MetricReading::PerPod(s) if s.len() == 2));
        assert!(pooled(vec![vec![], vec![]], "cpu").is_err());
    }
}
