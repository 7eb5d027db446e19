//! A member copy's health, judged from its own status by kind (Karmada's and Argo CD's rules
//! where they agree). The result is a state and one short message: no member status is copied
//! up. Pure.
use serde_json::Value;

use flotilla_api::propagation::{CopyHealth, HealthState};

/// The health of `copy`, a member object.
pub fn of(copy: &Value) -> CopyHealth {
    let kind = copy.get("kind").and_then(Value::as_str).unwrap_or_default();
    let int = |p: &str| copy.pointer(p).and_then(Value::as_i64);
    // A workload controller that has not seen the latest spec says nothing about it yet.
    let generation = int("/metadata/generation");
    let observed = int("/status/observedGeneration");
    let behind = matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
        && generation.is_some()
        && observed < generation;
    if behind {
        return health(
            HealthState::Progressing,
            "waiting for the controller to observe the latest spec",
        );
    }
    match kind {
        "Deployment" => {
            if condition(copy, "Progressing").is_some_and(|c| {
                c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            }) {
                return health(HealthState::Unhealthy, "progress deadline exceeded");
            }
            replicas(
                int("/spec/replicas").unwrap_or(1),
                int("/status/updatedReplicas").unwrap_or(0),
                int("/status/availableReplicas").unwrap_or(0),
                "available",
            )
        }
        "StatefulSet" => replicas(
            int("/spec/replicas").unwrap_or(1),
            int("/status/updatedReplicas").unwrap_or(0),
            int("/status/readyReplicas").unwrap_or(0),
            "ready",
        ),
        "DaemonSet" => replicas(
            int("/status/desiredNumberScheduled").unwrap_or(0),
            int("/status/updatedNumberScheduled").unwrap_or(0),
            int("/status/numberAvailable").unwrap_or(0),
            "available",
        ),
        "Job" => {
            if is_true(copy, "Complete") {
                health(HealthState::Healthy, "complete")
            } else if is_true(copy, "Failed") {
                health(HealthState::Unhealthy, &reason_of(copy, "Failed", "failed"))
            } else {
                health(HealthState::Progressing, "running")
            }
        }
        "Service" => {
            if copy.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
                return health(HealthState::Healthy, "no load balancer to wait for");
            }
            load_balancer(copy)
        }
        "Ingress" => load_balancer(copy),
        "PersistentVolumeClaim" => match copy.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => health(HealthState::Healthy, "bound"),
            Some("Lost") => health(HealthState::Unhealthy, "its volume is lost"),
            _ => health(HealthState::Progressing, "waiting to be bound"),
        },
        "CustomResourceDefinition" => {
            if is_true(copy, "Established") {
                health(HealthState::Healthy, "established")
            } else if condition(copy, "NamesAccepted")
                .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("False"))
            {
                health(
                    HealthState::Unhealthy,
                    &reason_of(copy, "NamesAccepted", "names not accepted"),
                )
            } else {
                health(HealthState::Progressing, "not established yet")
            }
        }
        _ => generic(copy),
    }
}

/// Anything else: a `Ready` or `Available` condition when it has one, otherwise applied.
fn generic(copy: &Value) -> CopyHealth {
    for type_ in ["Ready", "Available"] {
        if let Some(c) = condition(copy, type_) {
            return match c.get("status").and_then(Value::as_str) {
                Some("True") => health(HealthState::Healthy, type_),
                Some("False") => health(
                    HealthState::Unhealthy,
                    &reason_of(copy, type_, &format!("not {type_}")),
                ),
                _ => health(HealthState::Progressing, &format!("{type_} unknown")),
            };
        }
    }
    CopyHealth {
        state: HealthState::Applied,
        message: None,
    }
}

fn replicas(desired: i64, updated: i64, ready: i64, word: &str) -> CopyHealth {
    let message = format!("{ready}/{desired} replicas {word}, {updated} updated");
    if updated >= desired && ready >= desired {
        health(HealthState::Healthy, &message)
    } else {
        health(HealthState::Progressing, &message)
    }
}

fn load_balancer(copy: &Value) -> CopyHealth {
    let points = copy
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if points > 0 {
        health(HealthState::Healthy, "load balancer ready")
    } else {
        health(HealthState::Progressing, "waiting for a load balancer")
    }
}

fn condition<'a>(copy: &'a Value, type_: &str) -> Option<&'a Value> {
    copy.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn is_true(copy: &Value, type_: &str) -> bool {
    condition(copy, type_).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// The condition's reason (and message), or `fallback`.
fn reason_of(copy: &Value, type_: &str, fallback: &str) -> String {
    let c = condition(copy, type_);
    let text = |k: &str| c.and_then(|c| c.get(k)).and_then(Value::as_str);
    match (text("reason"), text("message")) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => fallback.to_string(),
    }
}

fn health(state: HealthState, message: &str) -> CopyHealth {
    CopyHealth {
        state,
        message: Some(super::truncate::truncate(message, 256)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(v: Value) -> HealthState {
        of(&v).state
    }

    #[test]
    fn a_deployment_is_healthy_when_every_replica_is_updated_and_available() {
        let d = |generation: i64, observed: i64, updated: i64, available: i64| {
            json!({"kind": "Deployment", "metadata": {"generation": generation}, "spec": {"replicas": 3},
                "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available}})
        };
        assert_eq!(state(d(2, 2, 3, 3)), HealthState::Healthy);
        assert_eq!(
            of(&d(2, 2, 3, 3)).message.as_deref(),
            Some("3/3 replicas available, 3 updated")
        );
        assert_eq!(state(d(2, 2, 3, 2)), HealthState::Progressing);
        assert_eq!(state(d(3, 2, 3, 3)), HealthState::Progressing);
        let stuck = json!({"kind": "Deployment", "spec": {"replicas": 1}, "status": {"conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}});
        assert_eq!(state(stuck), HealthState::Unhealthy);
    }

    #[test]
    fn statefulsets_and_daemonsets_count_their_own_fields() {
        assert_eq!(
            state(
                json!({"kind": "StatefulSet", "spec": {"replicas": 2}, "status": {"updatedReplicas": 2, "readyReplicas": 2}})
            ),
            HealthState::Healthy
        );
        assert_eq!(
            state(
                json!({"kind": "DaemonSet", "status": {"desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 3}})
            ),
            HealthState::Progressing
        );
    }

    #[test]
    fn jobs_pvcs_crds_and_load_balancers() {
        let job = |t: &str| json!({"kind": "Job", "status": {"conditions": [{"type": t, "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(state(job("Complete")), HealthState::Healthy);
        assert_eq!(state(job("Failed")), HealthState::Unhealthy);
        assert_eq!(
            of(&job("Failed")).message.as_deref(),
            Some("BackoffLimitExceeded")
        );
        assert_eq!(state(json!({"kind": "Job"})), HealthState::Progressing);
        assert_eq!(
            state(json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}})),
            HealthState::Healthy
        );
        assert_eq!(
            state(json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})),
            HealthState::Progressing
        );
        assert_eq!(
            state(
                json!({"kind": "CustomResourceDefinition", "status": {"conditions": [{"type": "Established", "status": "True"}]}})
            ),
            HealthState::Healthy
        );
        assert_eq!(
            state(json!({"kind": "Service", "spec": {"type": "ClusterIP"}})),
            HealthState::Healthy
        );
        assert_eq!(
            state(json!({"kind": "Service", "spec": {"type": "LoadBalancer"}})),
            HealthState::Progressing
        );
        assert_eq!(
            state(
                json!({"kind": "Ingress", "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}})
            ),
            HealthState::Healthy
        );
    }

    #[test]
    fn other_kinds_use_ready_or_available_else_applied() {
        assert_eq!(
            state(
                json!({"kind": "Widget", "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NoGears"}]}})
            ),
            HealthState::Unhealthy
        );
        assert_eq!(
            state(json!({"kind": "ConfigMap", "data": {}})),
            HealthState::Applied
        );
        assert_eq!(of(&json!({"kind": "ConfigMap"})).message, None);
    }
}
