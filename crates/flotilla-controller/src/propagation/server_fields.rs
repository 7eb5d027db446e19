//! Fields a cluster sets on its own objects, which a copy must never carry into another
//! cluster: identity and bookkeeping metadata, status, and per-kind fields the member's API
//! server or controllers allocate (a Service's cluster IP, a Job's generated selector). One
//! table, applied to every template before it is rendered. Pure.
use serde_json::Value;

/// When an entry does not apply although the field is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unless {
    Never,
    /// The field holds this string: chosen by the user, not allocated (a headless Service's
    /// `clusterIP: None`).
    ValueIs(&'static str),
    /// A sibling field at this pointer is `true` (a Job whose selector the user set by hand).
    FlagSet(&'static str),
}

/// (kind, or `*` for every kind; JSON pointer; exception).
pub const SERVER_FIELDS: [(&str, &str, Unless); 26] = [
    ("*", "/metadata/uid", Unless::Never),
    ("*", "/metadata/resourceVersion", Unless::Never),
    ("*", "/metadata/generation", Unless::Never),
    ("*", "/metadata/creationTimestamp", Unless::Never),
    ("*", "/metadata/deletionTimestamp", Unless::Never),
    ("*", "/metadata/deletionGracePeriodSeconds", Unless::Never),
    ("*", "/metadata/managedFields", Unless::Never),
    ("*", "/metadata/ownerReferences", Unless::Never),
    ("*", "/metadata/finalizers", Unless::Never),
    ("*", "/metadata/selfLink", Unless::Never),
    ("*", "/metadata/generateName", Unless::Never),
    (
        "*",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        Unless::Never,
    ),
    ("*", "/status", Unless::Never),
    (
        "Deployment",
        "/metadata/annotations/deployment.kubernetes.io~1revision",
        Unless::Never,
    ),
    ("Service", "/spec/clusterIP", Unless::ValueIs("None")),
    ("Service", "/spec/clusterIPs", Unless::Never),
    ("Service", "/spec/healthCheckNodePort", Unless::Never),
    (
        "Job",
        "/spec/selector",
        Unless::FlagSet("/spec/manualSelector"),
    ),
    (
        "Job",
        "/spec/template/metadata/labels/controller-uid",
        Unless::FlagSet("/spec/manualSelector"),
    ),
    (
        "Job",
        "/spec/template/metadata/labels/batch.kubernetes.io~1controller-uid",
        Unless::FlagSet("/spec/manualSelector"),
    ),
    (
        "Job",
        "/spec/template/metadata/labels/job-name",
        Unless::FlagSet("/spec/manualSelector"),
    ),
    (
        "Job",
        "/spec/template/metadata/labels/batch.kubernetes.io~1job-name",
        Unless::FlagSet("/spec/manualSelector"),
    ),
    ("PersistentVolumeClaim", "/spec/volumeName", Unless::Never),
    (
        "PersistentVolumeClaim",
        "/metadata/annotations/pv.kubernetes.io~1bind-completed",
        Unless::Never,
    ),
    ("ServiceAccount", "/secrets", Unless::Never),
    ("Pod", "/spec/nodeName", Unless::Never),
];

/// Removes every server-set field of `object`'s kind from it.
pub fn strip(object: &mut Value) {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (k, pointer, unless) in SERVER_FIELDS {
        if k != "*" && k != kind {
            continue;
        }
        let keep = match unless {
            Unless::Never => false,
            Unless::ValueIs(v) => object.pointer(pointer).and_then(Value::as_str) == Some(v),
            Unless::FlagSet(flag) => object.pointer(flag).and_then(Value::as_bool) == Some(true),
        };
        if !keep {
            remove(object, pointer);
        }
    }
    // Metadata left empty by the above is dropped with it.
    for map in ["/metadata/annotations", "/metadata/labels"] {
        if object
            .pointer(map)
            .and_then(Value::as_object)
            .is_some_and(|m| m.is_empty())
        {
            remove(object, map);
        }
    }
}

fn remove(object: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(map) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_and_status_set_by_the_server_are_removed_from_any_kind() {
        let mut cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{}],
                "ownerReferences": [{}], "finalizers": ["x"],
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"k": "v"}, "status": {"x": 1}
        });
        strip(&mut cm);
        assert_eq!(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn a_services_allocated_ips_go_but_a_headless_service_stays_headless() {
        let mut svc = json!({"kind": "Service", "spec": {"clusterIP": "10.0.0.7",
            "clusterIPs": ["10.0.0.7"], "healthCheckNodePort": 31000, "ports": [{"port": 80}]}});
        strip(&mut svc);
        assert_eq!(
            svc,
            json!({"kind": "Service", "spec": {"ports": [{"port": 80}]}})
        );
        let mut headless =
            json!({"kind": "Service", "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        strip(&mut headless);
        assert_eq!(
            headless,
            json!({"kind": "Service", "spec": {"clusterIP": "None"}})
        );
    }

    #[test]
    fn a_jobs_generated_selector_goes_unless_the_user_set_it() {
        let job = |manual: bool| {
            json!({"kind": "Job", "spec": {"manualSelector": manual,
                "selector": {"matchLabels": {"controller-uid": "abc"}},
                "template": {"metadata": {"labels": {"controller-uid": "abc",
                    "batch.kubernetes.io/controller-uid": "abc", "job-name": "j",
                    "batch.kubernetes.io/job-name": "j", "app": "batch"}}}}})
        };
        let mut generated = job(false);
        strip(&mut generated);
        assert_eq!(generated["spec"].get("selector"), None);
        assert_eq!(
            generated["spec"]["template"]["metadata"]["labels"],
            json!({"app": "batch"})
        );
        let mut manual = job(true);
        strip(&mut manual);
        assert_eq!(manual, job(true));
    }

    #[test]
    fn per_kind_fields_apply_to_their_kind_only() {
        let mut pvc = json!({"kind": "PersistentVolumeClaim", "spec": {"volumeName": "pv-1", "resources": {}}});
        strip(&mut pvc);
        assert_eq!(
            pvc,
            json!({"kind": "PersistentVolumeClaim", "spec": {"resources": {}}})
        );
        let mut sa = json!({"kind": "ServiceAccount", "secrets": [{"name": "t"}], "imagePullSecrets": [{"name": "r"}]});
        strip(&mut sa);
        assert_eq!(
            sa,
            json!({"kind": "ServiceAccount", "imagePullSecrets": [{"name": "r"}]})
        );
        let mut pod = json!({"kind": "Pod", "spec": {"nodeName": "n1"}});
        strip(&mut pod);
        assert_eq!(pod, json!({"kind": "Pod", "spec": {}}));
        // Not a Service: its clusterIP is whatever the kind means by it.
        let mut other =
            json!({"kind": "Other", "spec": {"clusterIP": "1.2.3.4", "volumeName": "v"}});
        strip(&mut other);
        assert_eq!(other["spec"]["clusterIP"], "1.2.3.4");
        assert_eq!(other["spec"]["volumeName"], "v");
    }
}
