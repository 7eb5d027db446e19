//! Translation between the API's placement types and the placement engine's own, and back into
//! status. The engine stays free of Kubernetes types; this is the only place that knows both.
use jiff::Timestamp as JiffTimestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as ApiSelector, Time};

use flotilla_api::placement as api;
use flotilla_api::placement_status::{self as status_api, PlacementStatus};
use flotilla_api::validation::{DUPLICATE_CLUSTER, first_duplicate};
use flotilla_placement as engine;

use crate::members::health::HealthState;
use crate::members::registry::Member;

/// Converts an API label selector; an unknown operator is a spec error naming the field.
pub fn selector(field: &str, s: &ApiSelector) -> Result<engine::LabelSelector, String> {
    let mut out = engine::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: Vec::new(),
    };
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let operator = match e.operator.as_str() {
            "In" => engine::SelectorOperator::In,
            "NotIn" => engine::SelectorOperator::NotIn,
            "Exists" => engine::SelectorOperator::Exists,
            "DoesNotExist" => engine::SelectorOperator::DoesNotExist,
            other => {
                return Err(format!(
                    "{field}.matchExpressions[{i}].operator: unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)"
                ));
            }
        };
        out.match_expressions
            .push(engine::LabelSelectorRequirement {
                key: e.key.clone(),
                operator,
                values: e.values.clone().unwrap_or_default(),
            });
    }
    Ok(out)
}

fn effect(e: api::TaintEffect) -> engine::TaintEffect {
    match e {
        api::TaintEffect::NoSchedule => engine::TaintEffect::NoSchedule,
        api::TaintEffect::NoExecute => engine::TaintEffect::NoExecute,
    }
}

/// Converts a placement spec. Errors are user mistakes, reported as a status condition.
pub fn placement_spec(p: &api::Placement) -> Result<engine::PlacementSpec, String> {
    // What the CRD's rules refuse at admission on current API servers, checked here for the
    // servers that do not run them (before 1.28) and for objects stored before the rules.
    let duplicate =
        |field: &str, names: &[String]| match first_duplicate(names.iter().map(String::as_str)) {
            Some(name) => Err(format!("{field}: {DUPLICATE_CLUSTER} ({name:?})")),
            None => Ok(()),
        };
    duplicate("placement.clusters", &p.clusters)?;
    for (i, g) in p.failover_priority.iter().enumerate() {
        duplicate(
            &format!("placement.failoverPriority[{i}].clusters"),
            &g.clusters,
        )?;
    }
    if p.failback.stabilization_seconds > api::MAX_FAILBACK_STABILIZATION_SECONDS {
        return Err(format!(
            "placement.failback.stabilizationSeconds: must be at most {} (one week), got {}",
            api::MAX_FAILBACK_STABILIZATION_SECONDS,
            p.failback.stabilization_seconds
        ));
    }
    let cluster_selector = p
        .cluster_selector
        .as_ref()
        .map(|s| selector("placement.clusterSelector", s))
        .transpose()?;
    let mut failover_priority = Vec::with_capacity(p.failover_priority.len());
    for (i, g) in p.failover_priority.iter().enumerate() {
        failover_priority.push(engine::PriorityGroup {
            name: g.name.clone(),
            clusters: g.clusters.clone(),
            cluster_selector: g
                .cluster_selector
                .as_ref()
                .map(|s| {
                    selector(
                        &format!("placement.failoverPriority[{i}].clusterSelector"),
                        s,
                    )
                })
                .transpose()?,
        });
    }
    let spec = engine::PlacementSpec {
        clusters: p.clusters.clone(),
        cluster_selector,
        constraints: engine::Constraints {
            max_clusters: p.constraints.max_clusters,
            spread: p
                .constraints
                .spread
                .iter()
                .map(|s| {
                    engine::SpreadConstraint::new(
                        s.topology_key.clone(),
                        s.max_per_group,
                        s.min_groups,
                    )
                })
                .collect(),
            tolerations: p
                .constraints
                .tolerations
                .iter()
                .map(|t| engine::Toleration {
                    key: t.key.clone(),
                    operator: match t.operator {
                        api::TolerationOperator::Equal => engine::TolerationOperator::Equal,
                        api::TolerationOperator::Exists => engine::TolerationOperator::Exists,
                    },
                    value: t.value.clone(),
                    effect: t.effect.map(effect),
                })
                .collect(),
        },
        failover_priority,
        failback: engine::Failback {
            mode: match p.failback.mode {
                api::FailbackMode::Automatic => engine::FailbackMode::Automatic,
                api::FailbackMode::Never => engine::FailbackMode::Never,
            },
            stabilization_seconds: p.failback.stabilization_seconds,
        },
    };
    spec.validate().map_err(|e| format!("placement: {e}"))?;
    Ok(spec)
}

pub fn timestamp(t: JiffTimestamp) -> engine::Timestamp {
    engine::Timestamp::from_unix_millis(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

pub fn time(t: engine::Timestamp) -> Time {
    let millis = i64::try_from(t.as_unix_millis()).unwrap_or(i64::MAX);
    Time(JiffTimestamp::from_millisecond(millis).unwrap_or(JiffTimestamp::UNIX_EPOCH))
}

/// The inventory as the engine sees it. Unknown health counts as not ready; callers defer
/// decisions while any member is Unknown (see [`any_unknown`]).
pub fn inventory(members: &[Member]) -> Vec<engine::ClusterInfo> {
    members
        .iter()
        .map(|m| engine::ClusterInfo {
            name: m.name.as_str().into(),
            labels: m.labels.clone(),
            taints: m
                .taints
                .iter()
                .map(|t| engine::Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: effect(t.effect),
                })
                .collect(),
            health: engine::Health {
                ready: m.health == HealthState::Ready,
                since: timestamp(m.health_since),
            },
            capacity_replicas: None,
            namespaces: m.namespaces.clone(),
        })
        .collect()
}

/// What `MemberCluster.spec.namespaces` admits. A selector that does not convert admits nothing
/// by itself (fail closed); the names still count.
pub fn namespace_access(
    spec: Option<&flotilla_api::member_cluster::NamespaceAccess>,
) -> (engine::NamespaceAccess, Option<String>) {
    let Some(spec) = spec else {
        return (engine::NamespaceAccess::All, None);
    };
    let (selector, problem) = match spec
        .selector
        .as_ref()
        .map(|s| selector("spec.namespaces.selector", s))
        .transpose()
    {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e)),
    };
    let rule = engine::NamespaceRule {
        names: spec.names.iter().cloned().collect(),
        selector,
    };
    (
        engine::NamespaceAccess::Only(std::sync::Arc::new(rule)),
        problem,
    )
}

/// Whether some member's health is not known yet (just after start-up). Deciding then would
/// treat it as down and move or prune copies that are fine.
pub fn any_unknown(members: &[Member]) -> bool {
    members.iter().any(Member::awaiting_first_probe)
}

/// What is wrong with a replica distribution (`field` is where it sits, e.g.
/// `replicas.distribution`), if anything: a cluster with two entries, or per-cluster bounds
/// with `minReplicas` above `maxReplicas` (the CRD's rules, checked on every server).
pub fn distribution_problem(
    field: &str,
    distribution: &flotilla_api::scaling_policy::Distribution,
) -> Option<String> {
    if let Some(name) = first_duplicate(distribution.clusters.iter().map(|c| c.name.as_str())) {
        return Some(format!(
            "{field}.clusters: must not have two entries for one cluster ({name:?})"
        ));
    }
    distribution.clusters.iter().enumerate().find_map(|(i, c)| {
        match (c.min_replicas, c.max_replicas) {
            (Some(min), Some(max)) if min > max => Some(format!(
                "{field}.clusters[{i}].minReplicas: minReplicas must not exceed maxReplicas ({min} > {max})"
            )),
            _ => None,
        }
    })
}

/// The replica division request of a ScalingPolicy for `total` replicas.
pub fn replica_request(
    distribution: &flotilla_api::scaling_policy::Distribution,
    total: i32,
) -> engine::ReplicaRequest {
    engine::ReplicaRequest {
        total,
        default_weight: distribution.default_weight,
        preferences: distribution
            .clusters
            .iter()
            .map(|c| engine::ReplicaPreference {
                name: c.name.clone(),
                weight: c.weight,
                min_replicas: c.min_replicas,
                max_replicas: c.max_replicas,
            })
            .collect(),
    }
}

/// A member as the host objects describe it (Ready condition included), for decisions made
/// outside the running operator, such as `flotilla preview`.
pub fn member_from_object(mc: &flotilla_api::MemberCluster) -> Member {
    let ready = mc
        .status
        .as_ref()
        .and_then(|s| crate::conditions::find(&s.conditions, "Ready"));
    let health = match ready.map(|c| c.status.as_str()) {
        Some("True") => HealthState::Ready,
        Some("False") => HealthState::NotReady,
        _ => HealthState::Unknown,
    };
    Member {
        name: mc.metadata.name.clone().unwrap_or_default(),
        labels: crate::members::controller::placement_labels(mc),
        taints: mc.spec.taints.clone(),
        health,
        health_since: ready
            .map(|c| c.last_transition_time.0)
            .unwrap_or(JiffTimestamp::UNIX_EPOCH),
        client: None,
        watch_client: None,
        cluster_uid: None,
        duplicate_of: None,
        client_generation: 0,
        created: None,
        namespaces: namespace_access(mc.spec.namespaces.as_ref()).0,
    }
}

/// The previous decision, read back from status.
pub fn previous(status: Option<&PlacementStatus>) -> engine::PreviousDecision {
    let Some(status) = status else {
        return engine::PreviousDecision::default();
    };
    let last_change = status.last_change_time.as_ref().map(|t| timestamp(t.0));
    let since_of = |name: &str| {
        status
            .clusters
            .iter()
            .find(|c| c.cluster == name)
            .and_then(|c| c.selected_since.as_ref())
            .map(|t| timestamp(t.0))
            .or(last_change)
            .unwrap_or_default()
    };
    engine::PreviousDecision {
        selected: status
            .selected
            .iter()
            .map(|name| engine::PreviousSelection {
                name: name.clone(),
                since: since_of(name),
            })
            .collect(),
        last_change,
    }
}

/// The decision as recorded in status.
pub fn to_status(decision: &engine::Decision) -> PlacementStatus {
    PlacementStatus {
        selected: decision.selected.clone(),
        clusters: decision
            .clusters
            .iter()
            .map(|c| status_api::ClusterVerdict {
                cluster: c.name.to_string(),
                verdict: match c.verdict {
                    engine::Verdict::Selected => status_api::Verdict::Selected,
                    engine::Verdict::Standby => status_api::Verdict::Standby,
                    engine::Verdict::Filtered => status_api::Verdict::Filtered,
                    engine::Verdict::Unhealthy => status_api::Verdict::Unhealthy,
                    engine::Verdict::Tainted => status_api::Verdict::Tainted,
                },
                reason: c.reason.as_str().to_string(),
                message: c.message.to_string(),
                priority: c.priority,
                replicas: c.replicas,
                selected_since: c.selected_since.map(time),
            })
            .collect(),
        unsatisfied: decision.unsatisfied.clone(),
        last_change_time: decision.last_change.map(time),
    }
}

/// When a pending failback becomes due, if any: the controller requeues for that moment.
pub fn next_failback(
    decision: &engine::Decision,
    inventory: &[engine::ClusterInfo],
    failback: &api::Failback,
) -> Option<engine::Timestamp> {
    decision
        .clusters
        .iter()
        .filter(|c| c.reason == engine::Reason::FailbackPending)
        .filter_map(|c| inventory.iter().find(|i| i.name == c.name))
        .map(|i| {
            i.health
                .since
                .saturating_add(std::time::Duration::from_secs(u64::from(
                    failback.stabilization_seconds,
                )))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    /// The CRD's rules on placement, held by the controller on every server.
    #[test]
    fn a_cluster_named_twice_or_a_failback_window_too_long_is_refused() {
        let p = api::Placement {
            clusters: vec!["m1".into(), "m2".into(), "m1".into()],
            ..Default::default()
        };
        let err = placement_spec(&p).expect_err("m1 twice");
        assert!(
            err.contains("placement.clusters") && err.contains(DUPLICATE_CLUSTER),
            "{err}"
        );
        let p = api::Placement {
            failover_priority: vec![
                api::PriorityGroup {
                    clusters: vec!["m1".into()],
                    ..Default::default()
                },
                api::PriorityGroup {
                    clusters: vec!["m2".into(), "m2".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let err = placement_spec(&p).expect_err("m2 twice");
        assert!(
            err.contains("placement.failoverPriority[1].clusters"),
            "{err}"
        );
        let mut p = api::Placement::default();
        p.failback.stabilization_seconds = api::MAX_FAILBACK_STABILIZATION_SECONDS;
        assert!(placement_spec(&p).is_ok());
        p.failback.stabilization_seconds += 1;
        let err = placement_spec(&p).expect_err("over a week");
        assert!(err.contains("stabilizationSeconds"), "{err}");
    }

    #[test]
    fn unknown_selector_operator_names_the_field() {
        let s = ApiSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Matches".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let p = api::Placement {
            cluster_selector: Some(s),
            ..Default::default()
        };
        let err = placement_spec(&p).expect_err("invalid operator");
        assert!(
            err.contains("placement.clusterSelector.matchExpressions[0].operator"),
            "{err}"
        );
    }

    #[test]
    fn in_without_values_is_rejected_by_validation() {
        let s = ApiSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let p = api::Placement {
            cluster_selector: Some(s),
            ..Default::default()
        };
        assert!(placement_spec(&p).is_err());
    }

    #[test]
    fn time_round_trips_through_the_engine_at_millisecond_precision() {
        let t = JiffTimestamp::from_millisecond(1_700_000_000_123).expect("valid");
        assert_eq!(time(timestamp(t)).0, t);
    }
}
