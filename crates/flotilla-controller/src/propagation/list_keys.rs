//! Keys of associative lists the API server needs in a server-side apply. A Service port and a
//! container port are keyed by their number and `protocol`; older API servers (1.20 among them)
//! refuse an applied list item without the key ("associative list with keys has an element that
//! omits key field protocol") instead of defaulting it. Flotilla sets `protocol: TCP` where it is
//! missing, the value the server would default it to, so the copy and the drift baseline are
//! unchanged on servers that default it themselves. Pure.
use serde_json::Value;

/// Where each kind keeps its pod spec (for container ports).
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "Pod" => "/spec",
        _ => return None,
    })
}

/// Sets `protocol: TCP` on every port item of `copy` that has none.
pub fn fill(copy: &mut Value) {
    let kind = copy
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == "Service" {
        default_protocol(copy.pointer_mut("/spec/ports"));
    }
    if let Some(pointer) = pod_spec_pointer(&kind)
        && let Some(spec) = copy.pointer_mut(pointer)
    {
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers {
                    default_protocol(c.get_mut("ports"));
                }
            }
        }
    }
}

fn default_protocol(ports: Option<&mut Value>) {
    for port in ports.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = port.as_object_mut() {
            p.entry("protocol").or_insert_with(|| "TCP".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_and_container_ports_get_a_protocol_and_given_ones_are_kept() {
        let mut svc = json!({"kind": "Service", "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        fill(&mut svc);
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        let mut d = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "a", "ports": [{"containerPort": 8080}]}],
            "initContainers": [{"name": "i", "ports": [{"containerPort": 9000, "protocol": "SCTP"}]}]}}}});
        fill(&mut d);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["initContainers"][0]["ports"][0]["protocol"],
            "SCTP"
        );
        let mut cj = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"ports": [{"containerPort": 1}]}]}}}}}});
        fill(&mut cj);
        assert_eq!(
            cj.pointer("/spec/jobTemplate/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
    }

    #[test]
    fn other_kinds_and_shapes_are_left_alone() {
        let mut cm = json!({"kind": "ConfigMap", "data": {"ports": "x"}});
        fill(&mut cm);
        assert_eq!(cm, json!({"kind": "ConfigMap", "data": {"ports": "x"}}));
        let mut odd = json!({"kind": "Service", "spec": {"ports": "not a list"}});
        fill(&mut odd);
        assert_eq!(odd["spec"]["ports"], "not a list");
    }
}
