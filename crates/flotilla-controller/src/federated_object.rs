//! FederatedObject and ClusterFederatedObject on the propagation engine: a template of any kind,
//! checked and cleaned of server-set fields. Everything else is the engine's.
use kube::api::{Api, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::Value;

use flotilla_api::federated_object::{
    CLUSTER_KIND, ClusterFederatedObject, FederatedObject, KIND, ReplicaSpread,
};

use crate::propagation::{Propagated, server_fields};

impl Propagated for FederatedObject {
    const KIND: &'static str = KIND;
    const CONTROLLER: &'static str = "federatedobject";
    const REPORTS_HEALTH: bool = true;

    fn host_api(client: Client, namespace: &str) -> Api<Self> {
        Api::namespaced(client, namespace)
    }
    crate::propagation_accessors!();
    fn member_kind(&self) -> Result<GroupVersionKind, String> {
        kind_of(&self.spec.template)
    }
    fn copy_name(&self) -> String {
        name_of(&self.spec.template).unwrap_or_else(|| self.name_any())
    }
    fn template(&self) -> Result<Value, String> {
        wrapped(&self.spec.template, self.namespace().as_deref())
    }
    fn replica_spread(&self) -> Option<&ReplicaSpread> {
        self.spec.replicas.as_ref()
    }
}

impl Propagated for ClusterFederatedObject {
    const KIND: &'static str = CLUSTER_KIND;
    const CONTROLLER: &'static str = "clusterfederatedobject";
    const REPORTS_HEALTH: bool = true;

    fn host_api(client: Client, _: &str) -> Api<Self> {
        Api::all(client)
    }
    crate::propagation_accessors!();
    fn member_kind(&self) -> Result<GroupVersionKind, String> {
        kind_of(&self.spec.template)
    }
    fn copy_name(&self) -> String {
        name_of(&self.spec.template).unwrap_or_else(|| self.name_any())
    }
    fn template(&self) -> Result<Value, String> {
        wrapped(&self.spec.template, None)
    }
}

/// The template's `apiVersion` and `kind`.
pub fn kind_of(template: &Value) -> Result<GroupVersionKind, String> {
    let text = |k: &str| {
        template
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err("the template needs an apiVersion and a kind".into());
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if version.is_empty() || api_version.matches('/').count() > 1 {
        return Err(format!(
            "the template's apiVersion {api_version:?} is not group/version or version"
        ));
    }
    Ok(GroupVersionKind::gvk(group, version, kind))
}

fn name_of(template: &Value) -> Option<String> {
    template
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The template as the engine renders it: checked, without server-set fields, and without the
/// name and namespace (the engine sets them). `namespace` is the host object's, `None` for a
/// cluster-scoped one.
pub fn wrapped(template: &Value, namespace: Option<&str>) -> Result<Value, String> {
    kind_of(template)?;
    let mut t = template.clone();
    let metadata = t.get_mut("metadata").map(|m| m.as_object_mut());
    if let Some(None) = metadata {
        return Err("the template's metadata is not an object".into());
    }
    if let Some(Some(m)) = metadata {
        let ns = m
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        match (ns, namespace) {
            (Some(ns), Some(own)) if ns != own => {
                return Err(format!(
                    "the template's namespace {ns:?} differs from this object's ({own:?}): copies are created in this object's namespace"
                ));
            }
            (Some(ns), None) if !ns.is_empty() => {
                return Err(format!(
                    "the template has namespace {ns:?}, but a ClusterFederatedObject holds cluster-scoped objects"
                ));
            }
            _ => {}
        }
        if let Some(name) = m.get("name").and_then(Value::as_str)
            && !valid_name(name)
        {
            return Err(format!(
                "the template's metadata.name {name:?} is not a valid object name"
            ));
        }
        m.remove("namespace");
        m.remove("name");
    }
    server_fields::strip(&mut t);
    Ok(t)
}

/// A DNS subdomain (RFC 1123), as Kubernetes names most objects.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kind_comes_from_apiversion_and_kind() {
        let gvk = kind_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect("valid");
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()),
            ("apps", "v1", "Deployment")
        );
        let core = kind_of(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).expect("valid");
        assert_eq!(core.group, "");
        for bad in [
            json!({"kind": "ConfigMap"}),
            json!({"apiVersion": "v1"}),
            json!({"apiVersion": "a/b/c", "kind": "X"}),
            json!({"apiVersion": "", "kind": "X"}),
        ] {
            assert!(kind_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_template_keeps_its_body_and_loses_server_fields_and_identity() {
        let t = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "x", "labels": {"app": "web"}},
            "spec": {"clusterIP": "10.1.2.3", "ports": [{"port": 80}]}, "status": {}});
        let w = wrapped(&t, Some("shop")).expect("valid");
        assert_eq!(
            w,
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"labels": {"app": "web"}}, "spec": {"ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn a_namespace_that_is_not_the_objects_is_refused() {
        let t =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "other"}});
        assert!(
            wrapped(&t, Some("shop"))
                .expect_err("refused")
                .contains("differs")
        );
        let t = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"namespace": "shop"}});
        assert!(
            wrapped(&t, None)
                .expect_err("refused")
                .contains("cluster-scoped")
        );
        let t = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}});
        assert!(wrapped(&t, Some("shop")).is_err());
        let t = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"});
        assert!(wrapped(&t, Some("shop")).is_err());
    }
}
