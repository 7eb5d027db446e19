//! FederatedIngress on the propagation engine: an Ingress template, and the load-balancer
//! addresses of its copies. Everything else (placement, copies, drift, sweeping) is the engine's.
use kube::Client;
use kube::api::{Api, ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use flotilla_api::FederatedIngress;

use crate::propagation::Propagated;

/// The member resource of every FederatedIngress copy.
pub fn ingress_resource() -> ApiResource {
    ApiResource {
        group: "networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "networking.k8s.io/v1".into(),
        kind: "Ingress".into(),
        plural: "ingresses".into(),
    }
}

impl Propagated for FederatedIngress {
    const KIND: &'static str = flotilla_api::federated_ingress::KIND;
    const CONTROLLER: &'static str = "federatedingress";

    fn host_api(client: Client, namespace: &str) -> Api<Self> {
        Api::namespaced(client, namespace)
    }

    crate::propagation_accessors!();

    fn member_kind(&self) -> Result<GroupVersionKind, String> {
        Ok(GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"))
    }

    fn template(&self) -> Result<Value, String> {
        let template = &self.spec.template;
        let spec = serde_json::to_value(&template.spec)
            .map_err(|e| format!("template.spec cannot be serialized: {e}"))?;
        Ok(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "labels": template.metadata.labels,
                "annotations": template.metadata.annotations,
            },
            "spec": spec,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_an_ingress_with_the_template_metadata() {
        let fi: FederatedIngress = serde_json::from_value(json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"rules": [{"host": "shop.example.com"}]}
                },
                "drift": {"mode": "Enforce"}
            }
        }))
        .expect("valid");
        let t = fi.template().expect("template");
        assert_eq!(t["kind"], "Ingress");
        assert_eq!(t["metadata"]["labels"]["app"], "web");
        assert_eq!(t["spec"]["rules"][0]["host"], "shop.example.com");
        assert_eq!(
            fi.propagation().drift.mode,
            flotilla_api::policies::DriftMode::Enforce
        );
    }
}
