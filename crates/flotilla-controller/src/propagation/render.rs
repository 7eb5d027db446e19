//! The desired member copy of a host object: its template, that cluster's overrides, then the
//! tracking metadata that ties the copy to its host object. Pure: no I/O.
use serde_json::{Map, Value, json};

use flotilla_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE, ORIGIN_UID,
};
use flotilla_api::overrides::ClusterOverride;
use flotilla_api::policies::DeletionPolicy;

use super::origin::{DELETION_POLICY_ANNOTATION, ORIGIN_GENERATION_ANNOTATION, Origin};

/// Why a copy could not be built for one cluster. Other clusters are unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError(pub String);

// The paths no override may touch are the API's: its CRD rule refuses them at admission on
// current API servers; this check holds on every server.
pub use flotilla_api::overrides::{FORBIDDEN_PATHS, forbidden_path};

/// What is wrong with the overrides as a whole, if anything: two entries for one cluster (the
/// CRD's rule, checked on every server). Each operation is checked as it is applied.
pub fn overrides_problem(overrides: &[ClusterOverride]) -> Option<String> {
    flotilla_api::validation::first_duplicate(overrides.iter().map(|o| o.cluster_name.as_str()))
        .map(|name| {
            format!(
                "overrides: must not have two entries for one cluster ({name:?}): put all of a cluster's patches in its one entry"
            )
        })
}

/// Builds the object to server-side apply in `cluster` from `template` (see
/// [`super::Propagated::template`]).
pub fn desired_copy(
    template: &Value,
    overrides: &[ClusterOverride],
    origin: &Origin,
    deletion: DeletionPolicy,
    generation: i64,
    cluster: &str,
) -> Result<Value, OverrideError> {
    let mut doc = template.clone();
    let metadata = doc
        .as_object_mut()
        .ok_or_else(|| OverrideError("the template is not an object".into()))?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let metadata = metadata
        .as_object_mut()
        .ok_or_else(|| OverrideError("the template's metadata is not an object".into()))?;
    metadata.insert("name".into(), origin.copy_name.clone().into());
    if origin.namespace.is_empty() {
        metadata.remove("namespace");
    } else {
        metadata.insert("namespace".into(), origin.namespace.clone().into());
    }
    for o in overrides.iter().filter(|o| o.cluster_name == cluster) {
        for (i, op) in o.patches.iter().enumerate() {
            let what = || format!("override {i} ({:?} {})", op.op, op.path);
            if forbidden_path(&op.path) {
                return Err(OverrideError(format!(
                    "{}: {}",
                    what(),
                    flotilla_api::overrides::FORBIDDEN_PATH_MESSAGE
                )));
            }
            if flotilla_api::overrides::op_needs_value(op.op) && op.value.is_none() {
                return Err(OverrideError(format!(
                    "{}: value is required for op add, replace and test",
                    what()
                )));
            }
            let mut raw = json!({"op": op.op, "path": op.path});
            if let Some(value) = &op.value {
                raw["value"] = value.clone();
            }
            let operation: json_patch::PatchOperation = serde_json::from_value(raw)
                .map_err(|e| OverrideError(format!("{}: {e}", what())))?;
            json_patch::patch(&mut doc, &[operation])
                .map_err(|e| OverrideError(format!("{}: {e}", what())))?;
        }
    }
    super::list_keys::fill(&mut doc);
    stamp_tracking(&mut doc, origin, deletion, generation)?;
    Ok(doc)
}

/// Adds Flotilla's labels and annotations after the overrides, so no override can remove them.
fn stamp_tracking(
    doc: &mut Value,
    origin: &Origin,
    deletion: DeletionPolicy,
    generation: i64,
) -> Result<(), OverrideError> {
    let metadata = doc
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| OverrideError("metadata is not an object after overrides".into()))?;
    let labels = object_entry(metadata, "labels")?;
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(ORIGIN_KIND.into(), origin.kind.into());
    let annotations = object_entry(metadata, "annotations")?;
    annotations.insert(ORIGIN_NAMESPACE.into(), origin.namespace.clone().into());
    annotations.insert(ORIGIN_NAME.into(), origin.name.clone().into());
    annotations.insert(ORIGIN_UID.into(), origin.uid.clone().into());
    annotations.insert(
        ORIGIN_GENERATION_ANNOTATION.into(),
        generation.to_string().into(),
    );
    annotations.insert(
        DELETION_POLICY_ANNOTATION.into(),
        match deletion {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Orphan => "Orphan",
        }
        .into(),
    );
    Ok(())
}

fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, OverrideError> {
    let entry = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| OverrideError(format!("metadata.{key} is not an object after overrides")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::overrides::{PatchOp, PatchOperation};

    fn template() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"labels": {"app": "web"}},
            "spec": {"rules": [{"host": "shop.example.com"}]}
        })
    }

    fn origin() -> Origin {
        super::super::origin::test_origin()
    }

    fn overriding(
        cluster: &str,
        op: PatchOp,
        path: &str,
        value: Option<Value>,
    ) -> Vec<ClusterOverride> {
        vec![ClusterOverride {
            cluster_name: cluster.into(),
            patches: vec![PatchOperation {
                op,
                path: path.into(),
                value,
            }],
        }]
    }

    fn render(overrides: &[ClusterOverride], cluster: &str) -> Result<Value, OverrideError> {
        desired_copy(
            &template(),
            overrides,
            &origin(),
            DeletionPolicy::Delete,
            4,
            cluster,
        )
    }

    #[test]
    fn copy_carries_template_identity_and_tracking_metadata() {
        let doc = render(&[], "m1").expect("builds");
        assert_eq!(doc["metadata"]["name"], "web");
        assert_eq!(doc["metadata"]["namespace"], "shop");
        assert_eq!(doc["metadata"]["labels"]["app"], "web");
        assert_eq!(doc["metadata"]["labels"][MANAGED_BY], "flotilla");
        assert_eq!(doc["metadata"]["labels"][ORIGIN_KIND], "FederatedIngress");
        assert_eq!(doc["metadata"]["annotations"][ORIGIN_UID], "u-1");
        assert_eq!(
            doc["metadata"]["annotations"][ORIGIN_GENERATION_ANNOTATION],
            "4"
        );
        assert_eq!(
            doc["metadata"]["annotations"][DELETION_POLICY_ANNOTATION],
            "Delete"
        );
        assert_eq!(doc["spec"]["rules"][0]["host"], "shop.example.com");
    }

    #[test]
    fn overrides_apply_only_to_their_cluster() {
        let o = overriding(
            "m2",
            PatchOp::Replace,
            "/spec/rules/0/host",
            Some(json!("eu.example.com")),
        );
        assert_eq!(
            render(&o, "m1").expect("m1")["spec"]["rules"][0]["host"],
            "shop.example.com"
        );
        assert_eq!(
            render(&o, "m2").expect("m2")["spec"]["rules"][0]["host"],
            "eu.example.com"
        );
    }

    #[test]
    fn an_override_on_a_missing_path_is_an_error_for_that_cluster_only() {
        let o = overriding(
            "m2",
            PatchOp::Replace,
            "/spec/rules/5/host",
            Some(json!("x")),
        );
        let err = render(&o, "m2").expect_err("bad path");
        assert!(
            err.0.contains("override 0") && err.0.contains("/spec/rules/5/host"),
            "{}",
            err.0
        );
        assert!(render(&o, "m1").is_ok());
    }

    #[test]
    fn overrides_cannot_remove_tracking() {
        let o = overriding("m1", PatchOp::Remove, "/metadata/labels", None);
        let doc = render(&o, "m1").expect("labels re-stamped");
        assert_eq!(doc["metadata"]["labels"][MANAGED_BY], "flotilla");
    }

    #[test]
    fn add_replace_and_test_need_a_value() {
        for op in [PatchOp::Add, PatchOp::Replace, PatchOp::Test] {
            let o = overriding("m1", op, "/metadata/labels/x", None);
            let err = render(&o, "m1").expect_err("no value");
            assert!(err.0.contains("value is required"), "{}", err.0);
        }
        let o = overriding("m1", PatchOp::Remove, "/metadata/labels/app", None);
        assert!(render(&o, "m1").is_ok());
    }

    #[test]
    fn one_override_entry_per_cluster() {
        let mut o = overriding("m1", PatchOp::Add, "/metadata/labels/x", Some(json!("1")));
        assert_eq!(overrides_problem(&o), None);
        o.extend(overriding(
            "m2",
            PatchOp::Add,
            "/metadata/labels/x",
            Some(json!("2")),
        ));
        assert_eq!(overrides_problem(&o), None);
        o.extend(overriding(
            "m1",
            PatchOp::Add,
            "/metadata/labels/y",
            Some(json!("3")),
        ));
        let problem = overrides_problem(&o).expect("m1 twice");
        assert!(
            problem.contains("overrides") && problem.contains("\"m1\""),
            "{problem}"
        );
    }

    #[test]
    fn overrides_cannot_touch_identity_ownership_or_status() {
        for path in [
            "/metadata/name",
            "/metadata/namespace",
            "/kind",
            "/apiVersion",
            "/metadata",
            "/metadata/ownerReferences",
            "/metadata/ownerReferences/0",
            "/metadata/finalizers/0",
            "/metadata/resourceVersion",
            "/metadata/uid",
            "/metadata/generation",
            "/metadata/managedFields",
            "/metadata/creationTimestamp",
            "/metadata/deletionTimestamp",
            "/status",
            "/status/loadBalancer",
        ] {
            let o = overriding("m1", PatchOp::Add, path, Some(json!([{"x": 1}])));
            let err = render(&o, "m1").expect_err(path);
            assert!(err.0.contains(path), "{path}: {}", err.0);
        }
        assert!(!forbidden_path("/metadata/labels/x"));
        assert!(!forbidden_path("/spec/statusCode"));
        assert!(!forbidden_path("/statuses"));
    }
}
