//! What the engine needs of a host kind: its propagation settings and status, and the template
//! of its member copies. A kind is one implementation of [`Propagated`]; nothing else in the
//! engine knows which kind it propagates.
use std::fmt::Debug;

use kube::api::{Api, GroupVersionKind};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use flotilla_api::federated_object::ReplicaSpread;
use flotilla_api::propagation::{LoadBalancerAddress, PropagationSpec, PropagationStatus};

/// A host kind whose objects the engine propagates to members.
pub trait Propagated:
    Resource<DynamicType = ()>
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

    /// Whether the copies report their health (see [`super::health`]). A kind whose copies
    /// report something narrower of their own (FederatedIngress: load-balancer addresses)
    /// leaves it off, saving a status write per copy.
    const REPORTS_HEALTH: bool = false;

    /// The host API of this kind in `namespace` (ignored for a cluster-scoped kind).
    fn host_api(client: Client, namespace: &str) -> Api<Self>;

    fn propagation(&self) -> &PropagationSpec;
    /// Takes the status out of the object. Stored objects carry none: the engine keeps it
    /// beside the store and reads it there ([`super::statuses::Statuses`]).
    fn take_propagation_status(&mut self) -> Option<PropagationStatus>;

    /// The kind of its member copies; the engine finds its resource in each member.
    fn member_kind(&self) -> Result<GroupVersionKind, String>;

    /// The name of its member copies: by default the host object's own.
    fn copy_name(&self) -> String {
        self.name_any()
    }

    /// How `spec.replicas` reaches the members; `None`: as the template says, everywhere.
    fn replica_spread(&self) -> Option<&ReplicaSpread> {
        None
    }

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

/// The accessors every host kind shares, for a kind whose spec flattens a `PropagationSpec` into
/// `spec.propagation` and whose status is a `PropagationStatus`: expands, inside an
/// `impl Propagated for …`, to `propagation` and `take_propagation_status`.
#[macro_export]
macro_rules! propagation_accessors {
    () => {
        fn propagation(&self) -> &flotilla_api::propagation::PropagationSpec {
            &self.spec.propagation
        }
        fn take_propagation_status(
            &mut self,
        ) -> Option<flotilla_api::propagation::PropagationStatus> {
            self.status.take()
        }
    };
}
