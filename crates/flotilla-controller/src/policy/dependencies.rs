//! What a propagated object needs from its namespace to work in a member: the ConfigMaps,
//! Secrets, ServiceAccount and PersistentVolumeClaims its pod template references, the Services
//! and TLS Secrets an Ingress references. Pure.
use std::collections::BTreeSet;

use serde_json::Value;

/// An object a propagated object refers to, in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub kind: &'static str,
    pub name: String,
}

/// Where each workload kind keeps its pod spec.
fn pod_spec<'a>(kind: &str, obj: &'a Value) -> Option<&'a Value> {
    let pointer = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "Pod" => "/spec",
        _ => return None,
    };
    obj.pointer(pointer)
}

/// The dependencies of `obj`, a host object of `kind`, sorted, without repeats.
pub fn of(kind: &str, obj: &Value) -> Vec<Dependency> {
    let mut out = BTreeSet::new();
    let mut add = |kind: &'static str, name: Option<&Value>| {
        if let Some(name) = name.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.insert(Dependency {
                kind,
                name: name.to_string(),
            });
        }
    };
    if let Some(spec) = pod_spec(kind, obj) {
        let sa = spec
            .get("serviceAccountName")
            .or_else(|| spec.get("serviceAccount"));
        if sa.and_then(Value::as_str) != Some("default") {
            add("ServiceAccount", sa);
        }
        for volume in items(spec.get("volumes")) {
            add("ConfigMap", volume.pointer("/configMap/name"));
            add("Secret", volume.pointer("/secret/secretName"));
            add(
                "PersistentVolumeClaim",
                volume.pointer("/persistentVolumeClaim/claimName"),
            );
            for source in items(volume.pointer("/projected/sources")) {
                add("ConfigMap", source.pointer("/configMap/name"));
                add("Secret", source.pointer("/secret/name"));
            }
        }
        for secret in items(spec.get("imagePullSecrets")) {
            add("Secret", secret.get("name"));
        }
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            for container in items(spec.get(list)) {
                for from in items(container.get("envFrom")) {
                    add("ConfigMap", from.pointer("/configMapRef/name"));
                    add("Secret", from.pointer("/secretRef/name"));
                }
                for env in items(container.get("env")) {
                    add("ConfigMap", env.pointer("/valueFrom/configMapKeyRef/name"));
                    add("Secret", env.pointer("/valueFrom/secretKeyRef/name"));
                }
            }
        }
    }
    if kind == "Ingress" {
        add("Service", obj.pointer("/spec/defaultBackend/service/name"));
        for rule in items(obj.pointer("/spec/rules")) {
            for path in items(rule.pointer("/http/paths")) {
                add("Service", path.pointer("/backend/service/name"));
            }
        }
        for tls in items(obj.pointer("/spec/tls")) {
            add("Secret", tls.get("secretName"));
        }
    }
    out.into_iter().collect()
}

fn items(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// The apiVersion of a dependency kind.
pub fn api_version(kind: &str) -> &'static str {
    match kind {
        "ConfigMap" | "Secret" | "ServiceAccount" | "PersistentVolumeClaim" | "Service" => "v1",
        _ => "",
    }
}

/// Every kind a dependency can be (the host watches them when a policy propagates dependencies).
pub const KINDS: [&str; 5] = [
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Service",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(deps: &[Dependency]) -> Vec<String> {
        deps.iter()
            .map(|d| format!("{} {}", d.kind, d.name))
            .collect()
    }

    #[test]
    fn a_pod_template_needs_its_config_secrets_account_and_claims() {
        let d = json!({"spec": {"template": {"spec": {
            "serviceAccountName": "web",
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [{"configMap": {"name": "conf"}}, {"secret": {"secretName": "certs"}},
                {"persistentVolumeClaim": {"claimName": "data"}},
                {"projected": {"sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "token"}}]}}],
            "initContainers": [{"envFrom": [{"configMapRef": {"name": "init-env"}}]}],
            "containers": [{"envFrom": [{"secretRef": {"name": "env"}}],
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "a"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "b"}}},
                        {"name": "C", "value": "plain"}]}]}}}});
        assert_eq!(
            names(&of("Deployment", &d)),
            [
                "ConfigMap conf",
                "ConfigMap extra",
                "ConfigMap init-env",
                "PersistentVolumeClaim data",
                "Secret certs",
                "Secret env",
                "Secret keys",
                "Secret registry",
                "Secret token",
                "ServiceAccount web"
            ]
        );
    }

    #[test]
    fn cronjobs_reach_their_pod_template_and_the_default_account_is_no_dependency() {
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "serviceAccountName": "default", "containers": [{"envFrom": [{"configMapRef": {"name": "c"}}]}]}}}}}});
        assert_eq!(names(&of("CronJob", &cj)), ["ConfigMap c"]);
    }

    #[test]
    fn an_ingress_needs_its_services_and_tls_secrets() {
        let ing = json!({"spec": {"defaultBackend": {"service": {"name": "fallback"}},
            "rules": [{"http": {"paths": [{"backend": {"service": {"name": "web"}}}, {"backend": {"service": {"name": "web"}}}]}}],
            "tls": [{"secretName": "web-tls"}]}});
        assert_eq!(
            names(&of("Ingress", &ing)),
            ["Secret web-tls", "Service fallback", "Service web"]
        );
    }

    #[test]
    fn other_kinds_need_nothing() {
        assert!(of("ConfigMap", &json!({"data": {"volumes": []}})).is_empty());
    }
}
