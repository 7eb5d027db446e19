//! The committed examples must deserialize into the typed API, so they cannot drift from it.
use std::path::{Path, PathBuf};

use flotilla_api::{
    ClusterFederatedObject, ClusterPropagationPolicy, FederatedIngress, FederatedObject,
    MemberCluster, PropagationPolicy, ScalingPolicy,
};
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples")
}

fn documents() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("manifests/examples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable example");
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
        docs.extend(values.into_iter().map(|v| (path.display().to_string(), v)));
    }
    docs
}

#[test]
fn every_example_deserializes_into_its_kind() {
    let mut seen = std::collections::BTreeSet::new();
    for (file, doc) in documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let result = match kind.as_str() {
            "MemberCluster" => serde_json::from_value::<MemberCluster>(doc).map(|_| ()),
            "FederatedIngress" => serde_json::from_value::<FederatedIngress>(doc).map(|_| ()),
            "ScalingPolicy" => serde_json::from_value::<ScalingPolicy>(doc).map(|_| ()),
            "FederatedObject" => serde_json::from_value::<FederatedObject>(doc).map(|_| ()),
            "ClusterFederatedObject" => {
                serde_json::from_value::<ClusterFederatedObject>(doc).map(|_| ())
            }
            "PropagationPolicy" => serde_json::from_value::<PropagationPolicy>(doc).map(|_| ()),
            "ClusterPropagationPolicy" => {
                serde_json::from_value::<ClusterPropagationPolicy>(doc).map(|_| ())
            }
            "Namespace" => Ok(()),
            other => panic!("{file}: unexpected kind {other:?}"),
        };
        result.unwrap_or_else(|e| panic!("{file}: {kind} does not match the API: {e}"));
        seen.insert(kind);
    }
    for kind in [
        "MemberCluster",
        "FederatedIngress",
        "ScalingPolicy",
        "FederatedObject",
        "ClusterFederatedObject",
        "PropagationPolicy",
        "ClusterPropagationPolicy",
    ] {
        assert!(seen.contains(kind), "no example of {kind}");
    }
}

#[test]
fn defaults_fill_unset_fields() {
    let fi: FederatedIngress = serde_json::from_value(serde_json::json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "FederatedIngress",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"template": {"spec": {}}}
    }))
    .expect("minimal FederatedIngress");
    assert_eq!(
        fi.spec.propagation.drift.mode,
        flotilla_api::policies::DriftMode::ReportOnly
    );
    assert_eq!(
        fi.spec.propagation.adoption,
        flotilla_api::policies::AdoptionPolicy::Never
    );
    assert_eq!(
        fi.spec.propagation.deletion,
        flotilla_api::policies::DeletionPolicy::Delete
    );
    assert_eq!(
        fi.spec.propagation.placement.failback.stabilization_seconds,
        60
    );

    let mc: MemberCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": "m"},
        "spec": {"secretRef": {"name": "s"}}
    }))
    .expect("minimal MemberCluster");
    assert_eq!(mc.spec.secret_ref.key, "kubeconfig");
    assert_eq!(mc.spec.probe.failure_threshold, 4);
}

#[test]
fn integer_quantities_are_accepted() {
    // The schema says int-or-string, so the API server stores `averageValue: 5000` as a number.
    let sp: ScalingPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "maxReplicas": 5,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "lag"},
                "target": {"type": "AverageValue", "averageValue": 5000}}}]
        }
    }))
    .expect("numeric quantity");
    let target = &sp.spec.metrics[0]
        .external
        .as_ref()
        .expect("external")
        .target;
    assert_eq!(
        target.average_value.as_ref().map(|q| q.0.as_str()),
        Some("5000")
    );
}
