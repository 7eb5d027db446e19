//! The host object a copy comes from, and the tracking metadata that ties a member object to it.
//!
//! A member object counts as a copy of a host object only when its own namespace is the host
//! object's, its name is the one that object gives its copies, and its origin annotations name
//! that object, with the same uid. Anything
//! else carrying Flotilla's labels (an object in another namespace, a copy of an earlier object
//! of the same name) is never reported on, adopted silently, or deleted as that object's copy.
use std::sync::Arc;

use compact_str::CompactString;
use serde_json::Value;

use flotilla_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, ORIGIN_KIND, ORIGIN_NAME, ORIGIN_NAMESPACE, ORIGIN_UID,
};
use flotilla_api::policies::DeletionPolicy;

use super::uid::Uid;

/// Annotation recording the host object's deletion policy on each copy, so a copy left in a
/// member that was unreachable when its host object was deleted is still handled as the user
/// asked (deleted or released) once the member is back.
pub const DELETION_POLICY_ANNOTATION: &str = "federation.flotilla.dev/deletion-policy";
/// The host object's generation a copy was built from.
pub const ORIGIN_GENERATION_ANNOTATION: &str = "federation.flotilla.dev/origin-generation";

/// Every tracking label, removed when a copy is released.
pub const TRACKING_LABELS: [&str; 2] = [MANAGED_BY, ORIGIN_KIND];
/// Every tracking annotation, removed when a copy is released.
pub const TRACKING_ANNOTATIONS: [&str; 5] = [
    ORIGIN_NAMESPACE,
    ORIGIN_NAME,
    ORIGIN_UID,
    ORIGIN_GENERATION_ANNOTATION,
    DELETION_POLICY_ANNOTATION,
];

/// The host object's identity, as recorded on its copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub kind: &'static str,
    /// The host object's namespace, which is its copies' too; empty for cluster-scoped kinds.
    pub namespace: String,
    /// The host object's name.
    pub name: String,
    pub uid: String,
    /// The name of its copies (usually `name`; see [`super::Propagated::copy_name`]).
    pub copy_name: String,
}

impl Origin {
    pub fn of<K: super::Propagated>(obj: &K) -> Option<Self> {
        Some(Self {
            kind: K::KIND,
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone()?,
            uid: obj.meta().uid.clone()?,
            copy_name: obj.copy_name(),
        })
    }

    /// Where the host object is in a reflector store.
    pub fn host_ref<K: kube::Resource<DynamicType = ()>>(
        &self,
    ) -> kube::runtime::reflector::ObjectRef<K> {
        let r = kube::runtime::reflector::ObjectRef::new(&self.name);
        if self.namespace.is_empty() {
            r
        } else {
            r.within(&self.namespace)
        }
    }
}

/// What a member object says about where it comes from: the small projection the copy caches
/// keep instead of whole objects. One is kept per copy in every member (100,000 at 10,000
/// objects on 10 members), so it is compact: the API group and kind are one pointer shared with
/// the watch that saw it, the origin's kind is one of the engine's own, its namespace and name
/// are kept only where they are not the copy's, and names of up to 24 bytes are stored inline.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyMeta {
    /// The member object's API group and kind (shared with the watch that saw it).
    pub type_: Arc<CopyType>,
    pub namespace: CompactString,
    pub name: CompactString,
    /// The member object's own uid.
    pub uid: Uid,
    /// Its `origin-kind` label, when that names a kind the engine propagates: a member object
    /// labelled with any other is no copy of Flotilla's.
    pub origin_kind: Option<&'static str>,
    /// Its origin's namespace and name, when they are not its own (a copy named apart from its
    /// host object, or a mislabelled object).
    origin_elsewhere: Option<Box<(CompactString, CompactString)>>,
    pub origin_uid: Uid,
    pub origin_generation: Option<i64>,
    pub deletion: DeletionPolicy,
    /// For a workload (an object with `spec.replicas`): what its scale subresource would say,
    /// and who owns the count. Boxed: most copies are not workloads.
    pub scale: Option<Box<CopyScale>>,
}

/// A member object's API group and kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyType {
    pub group: String,
    pub kind: String,
}

/// A workload copy's scale, as its watch sees it: the engine leaves a scaled workload's replicas
/// to its ScalingPolicy, and the ScalingPolicy controller reads the scale from here instead of
/// asking each member for it.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyScale {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `spec.selector`: the workload's pods.
    pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Whether the ScalingPolicy controller's writes own `spec.replicas`.
    pub by_scaler: bool,
}

impl CopyScale {
    fn of(object: &Value) -> Option<Box<Self>> {
        let count = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
        };
        Some(Box::new(Self {
            replicas: count("/spec/replicas")?,
            status_replicas: count("/status/replicas").unwrap_or(0),
            selector: object
                .pointer("/spec/selector")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok()),
            by_scaler: crate::scaled_targets::replicas_owned_by(
                object,
                crate::scaled_targets::SCALING_FIELD_MANAGER,
            ),
        }))
    }
}

/// The host object's generation a member object says it was built from.
pub fn origin_generation(object: &Value) -> Option<i64> {
    object
        .pointer("/metadata/annotations")?
        .get(ORIGIN_GENERATION_ANNOTATION)?
        .as_str()?
        .parse()
        .ok()
}

impl CopyType {
    /// The type an object names (`apiVersion`, `kind`).
    fn of(object: &Value) -> Arc<Self> {
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
        Arc::new(Self {
            group: text("apiVersion")
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default()
                .into(),
            kind: text("kind").into(),
        })
    }
}

impl CopyMeta {
    /// The projection of a member object that carries Flotilla's label; `None` otherwise.
    pub fn of(object: &Value) -> Option<Self> {
        Self::with_type(object, || CopyType::of(object))
    }

    /// [`Self::of`] for a watch that knows the type (list items carry none): its shared one.
    pub fn with_type(object: &Value, type_: impl FnOnce() -> Arc<CopyType>) -> Option<Self> {
        let meta = object.get("metadata")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(CompactString::from);
        let labels = meta.get("labels");
        let annotations = meta.get("annotations");
        let label = |k: &str| text(labels.and_then(|l| l.get(k)));
        let annotation = |k: &str| text(annotations.and_then(|a| a.get(k)));
        if label(MANAGED_BY).as_deref() != Some(MANAGED_BY_VALUE) {
            return None;
        }
        let namespace = text(meta.get("namespace")).unwrap_or_default();
        let name = text(meta.get("name"))?;
        let origin_namespace = annotation(ORIGIN_NAMESPACE).unwrap_or_default();
        let origin_name = annotation(ORIGIN_NAME).unwrap_or_default();
        let origin_elsewhere = (origin_namespace != namespace || origin_name != name)
            .then(|| Box::new((origin_namespace, origin_name)));
        Some(Self {
            type_: type_(),
            namespace,
            name,
            uid: Uid::new(meta.get("uid").and_then(Value::as_str).unwrap_or_default()),
            origin_kind: label(ORIGIN_KIND).as_deref().and_then(known_kind),
            origin_elsewhere,
            origin_uid: Uid::new(
                annotations
                    .and_then(|a| a.get(ORIGIN_UID))
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            origin_generation: origin_generation(object),
            deletion: match annotation(DELETION_POLICY_ANNOTATION).as_deref() {
                Some("Orphan") => DeletionPolicy::Orphan,
                _ => DeletionPolicy::Delete,
            },
            scale: CopyScale::of(object),
        })
    }

    /// Whether this object stands where `origin`'s copy stands and claims to be one of that
    /// kind (of `origin` itself or of an earlier object of the same name).
    pub fn in_place_of(&self, origin: &Origin) -> bool {
        self.origin_kind == Some(origin.kind)
            && self.namespace == origin.namespace
            && self.name == origin.copy_name
            && self.origin_namespace() == origin.namespace
            && self.origin_name() == origin.name
    }

    /// The namespace its origin annotation names.
    pub fn origin_namespace(&self) -> &str {
        self.origin_elsewhere
            .as_deref()
            .map_or(&self.namespace, |(namespace, _)| namespace)
    }

    /// The name its origin annotation names.
    pub fn origin_name(&self) -> &str {
        self.origin_elsewhere
            .as_deref()
            .map_or(&self.name, |(_, name)| name)
    }

    /// Whether this object is `origin`'s copy: in its place, and with its uid.
    pub fn is_copy_of(&self, origin: &Origin) -> bool {
        self.in_place_of(origin) && self.origin_uid == origin.uid
    }

    /// The host object this copy names, when it stands in that object's namespace; `None` for a
    /// mislabelled object. The caller checks the host object still names its copies so.
    pub fn claimed_origin(&self) -> Option<Origin> {
        let origin = Origin {
            kind: self.origin_kind?,
            namespace: self.origin_namespace().to_string(),
            name: self.origin_name().to_string(),
            uid: self.origin_uid.to_string(),
            copy_name: self.name.to_string(),
        };
        self.is_copy_of(&origin).then_some(origin)
    }
}

/// The kinds the engine propagates, as `&'static str` (the label value is only trusted when it
/// names one of them).
fn known_kind(kind: &str) -> Option<&'static str> {
    super::KINDS.iter().copied().find(|k| *k == kind)
}

/// The origin the engine's unit tests share: FederatedIngress shop/web, uid u-1.
#[cfg(test)]
pub fn test_origin() -> Origin {
    Origin {
        kind: "FederatedIngress",
        namespace: "shop".into(),
        name: "web".into(),
        uid: "u-1".into(),
        copy_name: "web".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        test_origin()
    }

    fn copy(namespace: &str, name: &str, uid: &str) -> Value {
        json!({"metadata": {
            "namespace": namespace, "name": name, "uid": "m-1",
            "labels": {MANAGED_BY: MANAGED_BY_VALUE, ORIGIN_KIND: "FederatedIngress"},
            "annotations": {ORIGIN_NAMESPACE: "shop", ORIGIN_NAME: "web", ORIGIN_UID: uid,
                            ORIGIN_GENERATION_ANNOTATION: "3", DELETION_POLICY_ANNOTATION: "Orphan"},
        }})
    }

    #[test]
    fn a_copy_matches_its_origin_by_place_and_uid() {
        let meta = CopyMeta::of(&copy("shop", "web", "u-1")).expect("tracked");
        assert!(meta.is_copy_of(&origin()));
        assert_eq!(meta.origin_generation, Some(3));
        assert_eq!(meta.deletion, DeletionPolicy::Orphan);
        assert_eq!(meta.claimed_origin(), Some(origin()));
    }

    #[test]
    fn an_object_elsewhere_with_copied_annotations_is_not_a_copy() {
        let meta = CopyMeta::of(&copy("other", "web", "u-1")).expect("tracked");
        assert!(!meta.is_copy_of(&origin()));
        assert!(!meta.in_place_of(&origin()));
        assert_eq!(meta.claimed_origin(), None);
    }

    #[test]
    fn a_copy_of_an_earlier_object_of_the_same_name_is_stale_not_ours() {
        let meta = CopyMeta::of(&copy("shop", "web", "u-0")).expect("tracked");
        assert!(meta.in_place_of(&origin()));
        assert!(!meta.is_copy_of(&origin()));
    }

    #[test]
    fn a_copy_named_apart_from_its_origin_keeps_the_origin_name() {
        let mut object = copy("shop", "web-copy", "u-1");
        object["metadata"]["labels"][ORIGIN_KIND] = json!("FederatedObject");
        let meta = CopyMeta::of(&object).expect("tracked");
        assert_eq!(
            (meta.origin_namespace(), meta.origin_name()),
            ("shop", "web")
        );
        let origin = Origin {
            kind: "FederatedObject",
            copy_name: "web-copy".into(),
            ..origin()
        };
        assert_eq!(meta.claimed_origin(), Some(origin));
    }

    #[test]
    fn an_unknown_origin_kind_is_no_copy() {
        let mut object = copy("shop", "web", "u-1");
        object["metadata"]["labels"][ORIGIN_KIND] = json!("Deployment");
        let meta = CopyMeta::of(&object).expect("tracked");
        assert_eq!(meta.origin_kind, None);
        assert!(!meta.in_place_of(&origin()));
        assert_eq!(meta.claimed_origin(), None);
    }

    /// One is kept per copy: 100,000 at 10,000 objects on 10 members. 160 bytes now; with its
    /// type and its origin's place as strings of its own it was 232 (by arithmetic).
    #[test]
    fn a_projection_stays_small() {
        assert!(
            std::mem::size_of::<CopyMeta>() <= 160,
            "{}",
            std::mem::size_of::<CopyMeta>()
        );
    }

    #[test]
    fn an_unlabelled_object_is_not_tracked() {
        assert_eq!(CopyMeta::of(&json!({"metadata": {"name": "x"}})), None);
    }
}
