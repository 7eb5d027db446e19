//! The member copy of a FederatedIngress: the template, that cluster's overrides, and the
//! metadata that ties the copy to its host object. Pure: no I/O.
use serde_json::{Map, Value, json};

use flotilla_api::FederatedIngress;
use flotilla_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE, ORIGIN_UID,
};
use flotilla_api::policies::DeletionPolicy;

/// Annotation recording the host object's deletion policy on each copy, so a copy left in a
/// member that was unreachable when its host object was deleted is still handled as the user
/// asked (deleted or released) once the member is back.
pub const DELETION_POLICY_ANNOTATION: &str = "federation.flotilla.dev/deletion-policy";
/// The host object's generation a copy was built from: drift is judged only against the
/// generation the copy was applied from.
pub const ORIGIN_GENERATION_ANNOTATION: &str = "federation.flotilla.dev/origin-generation";
/// The kind recorded in [`ORIGIN_KIND`].
pub const KIND: &str = "FederatedIngress";

/// Why a copy could not be built for one cluster. Other clusters are unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError(pub String);

/// The host object's identity, as recorded on its copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Origin {
    pub fn of(fi: &FederatedIngress) -> Option<Self> {
        Some(Self {
            namespace: fi.metadata.namespace.clone()?,
            name: fi.metadata.name.clone()?,
            uid: fi.metadata.uid.clone().unwrap_or_default(),
        })
    }
}

/// Builds the Ingress to server-side apply in `cluster`.
pub fn desired_copy(
    fi: &FederatedIngress,
    origin: &Origin,
    cluster: &str,
) -> Result<Value, OverrideError> {
    let template = &fi.spec.template;
    let spec = serde_json::to_value(&template.spec)
        .map_err(|e| OverrideError(format!("template.spec cannot be serialized: {e}")))?;
    let mut doc = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": origin.name,
            "namespace": origin.namespace,
            "labels": template.metadata.labels,
            "annotations": template.metadata.annotations,
        },
        "spec": spec,
    });
    for o in fi
        .spec
        .overrides
        .iter()
        .filter(|o| o.cluster_name == cluster)
    {
        for (i, op) in o.patches.iter().enumerate() {
            let mut raw = json!({"op": op.op, "path": op.path});
            if let Some(value) = &op.value {
                raw["value"] = value.clone();
            }
            let operation: json_patch::PatchOperation =
                serde_json::from_value(raw).map_err(|e| {
                    OverrideError(format!("override {i} ({:?} {}): {e}", op.op, op.path))
                })?;
            if touches_identity(&op.path) {
                return Err(OverrideError(format!(
                    "override {i} ({:?} {}): the copy's name and namespace are those of the host object and cannot be overridden",
                    op.op, op.path
                )));
            }
            json_patch::patch(&mut doc, &[operation]).map_err(|e| {
                OverrideError(format!("override {i} ({:?} {}): {e}", op.op, op.path))
            })?;
        }
    }
    stamp_tracking(
        &mut doc,
        origin,
        fi.spec.deletion,
        fi.metadata.generation.unwrap_or_default(),
    )?;
    Ok(doc)
}

fn touches_identity(path: &str) -> bool {
    [
        "/metadata/name",
        "/metadata/namespace",
        "/apiVersion",
        "/kind",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        || path == "/metadata"
        || path.is_empty()
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
    labels.insert(ORIGIN_KIND.into(), KIND.into());
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

/// Whether an existing member object is a Flotilla copy of this host object (possibly of an
/// earlier incarnation with the same namespace and name).
pub fn is_our_copy(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    origin: &Origin,
) -> bool {
    let managed = labels
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
        && labels
            .and_then(|l| l.get(ORIGIN_KIND))
            .is_some_and(|v| v == KIND);
    let same_origin = annotations.is_some_and(|a| {
        a.get(ORIGIN_NAMESPACE) == Some(&origin.namespace)
            && a.get(ORIGIN_NAME) == Some(&origin.name)
    });
    managed && same_origin
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::overrides::{ClusterOverride, PatchOp, PatchOperation};

    fn example() -> FederatedIngress {
        serde_json::from_value(json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"rules": [{"host": "shop.example.com"}]}
                }
            }
        }))
        .expect("valid")
    }

    fn origin() -> Origin {
        Origin::of(&example()).expect("origin")
    }

    fn with_override(
        mut fi: FederatedIngress,
        cluster: &str,
        op: PatchOp,
        path: &str,
        value: Option<Value>,
    ) -> FederatedIngress {
        fi.spec.overrides.push(ClusterOverride {
            cluster_name: cluster.into(),
            patches: vec![PatchOperation {
                op,
                path: path.into(),
                value,
            }],
        });
        fi
    }

    #[test]
    fn copy_carries_template_and_tracking_metadata() {
        let doc = desired_copy(&example(), &origin(), "m1").expect("builds");
        assert_eq!(doc["metadata"]["name"], "web");
        assert_eq!(doc["metadata"]["namespace"], "shop");
        assert_eq!(doc["metadata"]["labels"]["app"], "web");
        assert_eq!(doc["metadata"]["labels"][MANAGED_BY], "flotilla");
        assert_eq!(doc["metadata"]["annotations"][ORIGIN_UID], "u-1");
        assert_eq!(
            doc["metadata"]["annotations"][DELETION_POLICY_ANNOTATION],
            "Delete"
        );
        assert_eq!(doc["spec"]["rules"][0]["host"], "shop.example.com");
    }

    #[test]
    fn overrides_apply_only_to_their_cluster() {
        let fi = with_override(
            example(),
            "m2",
            PatchOp::Replace,
            "/spec/rules/0/host",
            Some(json!("eu.example.com")),
        );
        assert_eq!(
            desired_copy(&fi, &origin(), "m1").expect("m1")["spec"]["rules"][0]["host"],
            "shop.example.com"
        );
        assert_eq!(
            desired_copy(&fi, &origin(), "m2").expect("m2")["spec"]["rules"][0]["host"],
            "eu.example.com"
        );
    }

    #[test]
    fn an_override_on_a_missing_path_is_an_error_for_that_cluster_only() {
        let fi = with_override(
            example(),
            "m2",
            PatchOp::Replace,
            "/spec/rules/5/host",
            Some(json!("x")),
        );
        let err = desired_copy(&fi, &origin(), "m2").expect_err("bad path");
        assert!(
            err.0.contains("override 0") && err.0.contains("/spec/rules/5/host"),
            "{}",
            err.0
        );
        assert!(desired_copy(&fi, &origin(), "m1").is_ok());
    }

    #[test]
    fn overrides_cannot_remove_tracking_or_rename() {
        let fi = with_override(example(), "m1", PatchOp::Remove, "/metadata/labels", None);
        let doc = desired_copy(&fi, &origin(), "m1").expect("labels re-stamped");
        assert_eq!(doc["metadata"]["labels"][MANAGED_BY], "flotilla");
        let fi = with_override(
            example(),
            "m1",
            PatchOp::Replace,
            "/metadata/name",
            Some(json!("other")),
        );
        assert!(desired_copy(&fi, &origin(), "m1").is_err());
    }

    #[test]
    fn ownership_needs_label_and_same_origin() {
        let doc = desired_copy(&example(), &origin(), "m1").expect("builds");
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(doc["metadata"]["labels"].clone()).expect("map");
        let annotations: std::collections::BTreeMap<String, String> =
            serde_json::from_value(doc["metadata"]["annotations"].clone()).expect("map");
        assert!(is_our_copy(Some(&labels), Some(&annotations), &origin()));
        let other = Origin {
            name: "other".into(),
            ..origin()
        };
        assert!(!is_our_copy(Some(&labels), Some(&annotations), &other));
        assert!(!is_our_copy(None, Some(&annotations), &origin()));
    }
}
