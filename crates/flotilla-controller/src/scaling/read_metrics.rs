//! Reading a policy's metrics for one poll, every one fresh: Prometheus instant queries (run
//! alongside the member reads, see [`query_prometheus`]), and the member metrics APIs summed over
//! the selected clusters Flotilla scales. A metric that fails in any of them fails as a whole.
use kube::Client;

use flotilla_autoscaling as hpa;

use super::member::{self, ScaleView};
use super::prometheus::Prometheus;
use super::spec::{MetricPlan, Plan};
use crate::members::registry::Member;

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
    namespace: &str,
    plan: &Plan,
    queried: Queried,
    members: &[Member],
    writable: &[(&str, &ScaleView)],
) -> Vec<hpa::MetricReading> {
    let clients: Vec<(&str, Client, &ScaleView)> = writable
        .iter()
        .filter_map(|(c, s)| {
            let client = members
                .iter()
                .find(|m| &m.name == c)?
                .ready_client()?
                .clone();
            Some((*c, client, *s))
        })
        .collect();
    let clients = &clients;
    let reads = plan.metrics.iter().zip(queried).map(|(m, q)| async move {
        match q {
            Some(result) => result,
            None => read_metric(namespace, m, clients).await,
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(v) => hpa::MetricReading::Value(v),
            Err(m) => hpa::MetricReading::Failed(m),
        })
        .collect()
}

/// Per-member partial sums of a metric: (value sum, requests sum, pods).
type Partial = (f64, f64, usize);

/// Adds up the members' partial sums; any member failing fails the metric (as the HPA does
/// when it cannot read a metric: no scaling on partial data).
fn per_member(results: Vec<(&str, Result<Partial, String>)>) -> Result<Partial, String> {
    let mut sum = (0.0, 0.0, 0usize);
    let mut errors = Vec::new();
    for (cluster, r) in results {
        match r {
            Ok((a, b, n)) => {
                sum.0 += a;
                sum.1 += b;
                sum.2 += n;
            }
            Err(e) => errors.push(format!("{cluster}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(sum)
    } else {
        Err(errors.join("; "))
    }
}

/// One metric from the members' metrics APIs: an External metric's values summed; a Pods
/// metric averaged over all the target's pods; a Resource metric as utilization of the summed
/// requests, or averaged over the pods.
async fn read_metric(
    namespace: &str,
    plan: &MetricPlan,
    clients: &[(&str, Client, &ScaleView)],
) -> Result<f64, String> {
    let selector_of = |c: &str, s: &ScaleView| {
        s.selector
            .clone()
            .ok_or_else(|| format!("the target's scale subresource in {c} reports no pod selector"))
    };
    match plan {
        MetricPlan::Prometheus { query } => Err(format!(
            "internal: the Prometheus query {query:?} was not run"
        )),
        MetricPlan::External { name, selector } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, _)| async move {
                    (
                        *c,
                        member::external_metric(client, namespace, name, selector.as_deref())
                            .await
                            .map(|v| (v, 0.0, 1)),
                    )
                }))
                .await;
            per_member(results).map(|(total, _, _)| total)
        }
        MetricPlan::Pods { name, selector } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, scale)| async move {
                    let r = match selector_of(c, scale) {
                        Ok(pods) => {
                            member::pods_metric(client, namespace, name, &pods, selector.as_deref())
                                .await
                                .map(|(sum, n)| (sum, 0.0, n))
                        }
                        Err(e) => Err(e),
                    };
                    (*c, r)
                }))
                .await;
            let (sum, _, pods) = per_member(results)?;
            if pods == 0 {
                return Err(format!("no pods of the target report the metric {name}"));
            }
            Ok(sum / pods as f64)
        }
        MetricPlan::Resource { name, utilization } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, scale)| async move {
                    let r = match selector_of(c, scale) {
                        Ok(pods) => {
                            member::resource_usage(client, namespace, name, &pods, *utilization)
                                .await
                                .map(|u| (u.usage, u.requests, u.pods))
                        }
                        Err(e) => Err(e),
                    };
                    (*c, r)
                }))
                .await;
            let (usage, requests, pods) = per_member(results)?;
            if pods == 0 {
                return Err(format!(
                    "no metrics returned for the target's pods ({name})"
                ));
            }
            if *utilization {
                if requests <= 0.0 {
                    return Err(format!("the target's pods request no {name}"));
                }
                Ok(100.0 * usage / requests)
            } else {
                Ok(usage / pods as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sums_add_up_and_any_failure_fails_the_metric() {
        let ok = per_member(vec![("a", Ok((2.0, 1.0, 3))), ("b", Ok((4.0, 2.0, 1)))]);
        assert_eq!(ok, Ok((6.0, 3.0, 4)));
        let failed = per_member(vec![
            ("a", Ok((2.0, 1.0, 3))),
            ("b", Err("timeout".into())),
            ("c", Err("forbidden".into())),
        ]);
        assert_eq!(failed, Err("b: timeout; c: forbidden".to_string()));
    }
}
