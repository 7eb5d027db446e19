//! What the engine needs of a host kind: its propagation settings and status, and the template
//! of its member copies. A kind is one implementation of [`Propagated`]; nothing else in the
//! engine knows which kind it propagates.
use std::fmt::Debug;

use kube::api::ApiResource;
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use flotilla_api::propagation::{LoadBalancerAddress, PropagationSpec, PropagationStatus};

/// A host kind whose objects the engine propagates to members.
pub trait Propagated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + ResourceExt
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind recorded on copies (label `origin-kind`), e.g. `FederatedIngress`.
    const KIND: &'static str;
    /// A short lower-case name for metrics, logs and field managers, e.g. `federatedingress`.
    const CONTROLLER: &'static str;

    fn propagation(&self) -> &PropagationSpec;
    fn propagation_status(&self) -> Option<&PropagationStatus>;
    fn set_propagation_status(&mut self, status: PropagationStatus);

    /// The member resource its copies are (group, version, kind, plural).
    fn member_resource(&self) -> ApiResource;

    /// The copy before overrides and tracking: `apiVersion`, `kind`, `metadata.labels` and
    /// `metadata.annotations`, and the body (`spec`, `data`, …). Name and namespace are set by
    /// the engine.
    fn template(&self) -> Result<Value, String>;

    /// What of a member copy's status the host object reports (load-balancer addresses).
    fn copy_status(copy: &Value) -> Vec<LoadBalancerAddress> {
        load_balancer_of(copy)
    }
}

/// `status.loadBalancer.ingress` of an Ingress or a Service, capped: a member cannot flood the
/// host's status with addresses.
pub fn load_balancer_of(copy: &Value) -> Vec<LoadBalancerAddress> {
    const MAX_ADDRESSES: usize = 16;
    const MAX_LEN: usize = 256;
    let cap = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| super::truncate::truncate(s, MAX_LEN))
    };
    copy.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|points| {
            points
                .iter()
                .take(MAX_ADDRESSES)
                .map(|p| LoadBalancerAddress {
                    ip: cap(p.get("ip")),
                    hostname: cap(p.get("hostname")),
                })
                .collect()
        })
        .unwrap_or_default()
}
