//! Semantic validation where users expect it. On an API server that runs the CRDs' CEL rules
//! (`x-kubernetes-validations`, Kubernetes 1.28 and later) `kubectl apply` refuses each bad object
//! below with a message naming the field; on an older one (the 1.20 floor) the server stores it
//! and the controller reports the same mistake as a status condition with a reason. The test
//! reads the host's `/version` and asserts what that version must do: it never skips.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_e2e::{Operator, TestBed, api_resource, eventually, without_list_indices};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const GROUP: &str = "federation.flotilla.dev/v1alpha1";

/// One bad object, what admission says about it, and what the controller says instead.
struct Case {
    what: &'static str,
    object: Value,
    /// Fragments of `kubectl apply`'s error on a server that runs the rules (list indices
    /// removed: `spec.overrides.patches.path`).
    admission: &'static [&'static str],
    /// (condition type, reason, a fragment of its message) from the controller elsewhere.
    condition: (&'static str, &'static str, &'static str),
}

fn federated_object(ns: &str, name: &str, spec: Value) -> Value {
    let mut full = json!({
        "template": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}},
        "placement": {"clusters": ["member1", "member2"]},
    });
    if let (Some(s), Value::Object(more)) = (full.as_object_mut(), spec) {
        s.extend(more);
    }
    json!({"apiVersion": GROUP, "kind": "FederatedObject",
        "metadata": {"name": name, "namespace": ns}, "spec": full})
}

fn scaling_policy(ns: &str, name: &str, spec: Value) -> Value {
    let mut full = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "placement": {"clusters": ["member1"]},
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [{"type": "External", "external": {
            "metric": {"name": "lag"},
            "prometheus": {"query": "sum(lag)"},
            "target": {"type": "AverageValue", "averageValue": "10"}}}],
    });
    if let (Some(s), Value::Object(more)) = (full.as_object_mut(), spec) {
        s.extend(more);
    }
    json!({"apiVersion": GROUP, "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": full})
}

fn cases(ns: &str) -> Vec<Case> {
    vec![
        Case {
            what: "a cluster named twice in placement.clusters",
            object: federated_object(
                ns,
                "twice",
                json!({"placement": {"clusters": ["member1", "member1"]}}),
            ),
            admission: &["spec.placement.clusters", "must not name a cluster twice"],
            condition: (
                "Ready",
                "InvalidSpec",
                "placement.clusters: must not name a cluster twice",
            ),
        },
        Case {
            what: "a cluster named twice in a failover group",
            object: federated_object(
                ns,
                "group-twice",
                json!({"placement": {"failoverPriority": [
                    {"name": "primary", "clusters": ["member1"]},
                    {"name": "backup", "clusters": ["member2", "member2"]}]}}),
            ),
            admission: &[
                "spec.placement.failoverPriority.clusters",
                "must not name a cluster twice",
            ],
            condition: (
                "Ready",
                "InvalidSpec",
                "placement.failoverPriority[1].clusters: must not name a cluster twice",
            ),
        },
        Case {
            what: "two override entries for one cluster",
            object: federated_object(
                ns,
                "two-overrides",
                json!({"overrides": [
                    {"clusterName": "member1", "patches": [{"op": "add", "path": "/data/x", "value": "1"}]},
                    {"clusterName": "member1", "patches": [{"op": "add", "path": "/data/y", "value": "2"}]}]}),
            ),
            admission: &[
                "spec.overrides",
                "must not have two entries for one cluster",
            ],
            condition: (
                "Ready",
                "InvalidSpec",
                "overrides: must not have two entries for one cluster",
            ),
        },
        Case {
            what: "an override of the copy's name",
            object: federated_object(
                ns,
                "rename",
                json!({"overrides": [{"clusterName": "member1",
                    "patches": [{"op": "replace", "path": "/metadata/name", "value": "other"}]}]}),
            ),
            admission: &["spec.overrides.patches.path", "which overrides cannot set"],
            condition: ("Ready", "InvalidOverride", "which overrides cannot set"),
        },
        Case {
            what: "a toleration with operator Exists and a value",
            object: federated_object(
                ns,
                "exists-value",
                json!({"placement": {"clusters": ["member1"], "constraints": {"tolerations": [
                    {"key": "flotilla.dev/cost-tier", "operator": "Exists", "value": "spot"}]}}}),
            ),
            admission: &[
                "spec.placement.constraints.tolerations.value",
                "operator Exists takes no value",
            ],
            condition: ("Ready", "InvalidSpec", "operator Exists takes no value"),
        },
        Case {
            what: "a per-cluster minimum above its maximum",
            object: federated_object(
                ns,
                "cluster-bounds",
                json!({"template": {"apiVersion": "apps/v1", "kind": "Deployment",
                        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "w"}},
                            "template": {"metadata": {"labels": {"app": "w"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
                    "replicas": {"mode": "Divided", "distribution": {"clusters": [
                        {"name": "member1", "minReplicas": 3, "maxReplicas": 2}]}}}),
            ),
            admission: &[
                "spec.replicas.distribution.clusters.minReplicas",
                "minReplicas must not exceed maxReplicas",
            ],
            condition: (
                "Ready",
                "InvalidSpec",
                "replicas.distribution.clusters[0].minReplicas: minReplicas must not exceed maxReplicas",
            ),
        },
        Case {
            what: "minReplicas above maxReplicas",
            object: scaling_policy(ns, "min-max", json!({"minReplicas": 5, "maxReplicas": 2})),
            admission: &[
                "spec.minReplicas",
                "minReplicas must not exceed maxReplicas",
            ],
            condition: ("AbleToScale", "InvalidReplicaBounds", "minReplicas"),
        },
        Case {
            what: "two sources in one metric",
            object: scaling_policy(
                ns,
                "two-sources",
                json!({"metrics": [{"type": "External",
                    "external": {"metric": {"name": "lag"}, "prometheus": {"query": "sum(lag)"},
                        "target": {"type": "AverageValue", "averageValue": "10"}},
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}),
            ),
            admission: &["spec.metrics", "mutually exclusive"],
            condition: (
                "ScalingActive",
                "InvalidMetricSourceType",
                "metrics[0]: resource, pods, external and object are mutually exclusive",
            ),
        },
        Case {
            what: "a policy selecting Flotilla's own kinds",
            object: json!({"apiVersion": GROUP, "kind": "PropagationPolicy",
                "metadata": {"name": "own-kinds", "namespace": ns},
                "spec": {"resourceSelectors": [{"apiVersion": GROUP, "kind": "FederatedObject"}],
                    "placement": {"clusters": ["member1"]}}}),
            admission: &[
                "spec.resourceSelectors.apiVersion",
                "Flotilla's own kinds are not propagated by policies",
            ],
            condition: (
                "Ready",
                "InvalidSelector",
                "Flotilla's own kinds are not propagated by policies",
            ),
        },
    ]
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "FederatedObject" => "federatedobjects",
        "ScalingPolicy" => "scalingpolicies",
        "PropagationPolicy" => "propagationpolicies",
        other => panic!("no plural for {other}"),
    }
}

/// (type, reason, message) of the object's condition `type_`.
fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = obj
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Each bad object is refused at admission with a clear message where the server runs the
/// CRDs' CEL rules, and accepted then reported by the controller as a condition where it does not.
#[tokio::test]
async fn semantic_mistakes_are_refused_at_admission_or_reported_as_conditions() {
    let bed = TestBed::get();
    bed.federation();
    let minor = bed.server_minor("host");
    let admission = bed.admission_runs_cel("host");
    eprintln!("host API server 1.{minor}: CEL rules at admission: {admission}");
    let ns = bed.namespace_everywhere("validation");
    let cases = cases(&ns.name);

    if admission {
        for case in &cases {
            let out = bed.kubectl_with_stdin(
                "host",
                &["apply", "-f", "-"],
                Some(&case.object.to_string()),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{}: the API server accepted it:\n{}",
                case.what,
                case.object
            );
            let unindexed = without_list_indices(&stderr);
            for fragment in case.admission {
                assert!(
                    unindexed.contains(fragment),
                    "{}: the refusal lacks {fragment:?}:\n{stderr}",
                    case.what
                );
            }
            eprintln!("{}: refused: {}", case.what, stderr.trim());
        }
        // Nothing was stored.
        for kind in ["federatedobjects", "scalingpolicies", "propagationpolicies"] {
            let listed = bed.kubectl_ok("host", &["-n", &ns.name, "get", kind, "-o", "name"]);
            assert!(listed.trim().is_empty(), "{kind} stored: {listed}");
        }
        return;
    }

    // An older server stores every one of them; the controller refuses them.
    for case in &cases {
        bed.apply("host", &case.object.to_string());
    }
    let _op = Operator::start(&bed, "validation");
    for case in &cases {
        let kind = case.object["kind"].as_str().unwrap();
        let name = case.object["metadata"]["name"].as_str().unwrap();
        let (type_, reason, fragment) = case.condition;
        let resource = api_resource(GROUP, kind, plural(kind));
        let (_, _, message) = eventually(
            &format!("{}: {type_}=False ({reason})", case.what),
            WAIT,
            || async {
                Ok(bed
                    .object("host", &resource, Some(&ns.name), name)
                    .await
                    .and_then(|o| condition(&o, type_))
                    .filter(|(s, r, _)| s == "False" && r == reason))
            },
        )
        .await
        .unwrap();
        assert!(
            message.contains(fragment),
            "{}: the condition's message lacks {fragment:?}: {message}",
            case.what
        );
        eprintln!("{}: {type_}=False {reason}: {message}", case.what);
    }
    // Nothing reached a member: the copies of the refused objects are not made.
    for member in ["member1", "member2"] {
        let listed = bed.kubectl_ok(
            member,
            &[
                "-n",
                &ns.name,
                "get",
                "configmaps,deployments",
                "-o",
                "name",
            ],
        );
        assert!(
            !listed
                .lines()
                .any(|l| l.ends_with("/twice") || l.ends_with("/two-overrides")),
            "{member}: {listed}"
        );
    }
}
