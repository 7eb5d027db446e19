//! The controller's memory, kept between polls and never written anywhere: per policy, the
//! autoscaler's state, the total last decided, what each member looked like when last read, and
//! which problems were already reported as Events. After a restart it starts empty: the members
//! are read again and the decided total is taken from `status.desiredReplicas`.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kube::core::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};

use flotilla_api::ScalingPolicy;
use flotilla_autoscaling as hpa;

use super::controller::{PRUNE_INTERVAL, ScalingConfig};
use super::member::{ScaleError, ScaleView};
use super::prometheus::Prometheus;
use super::spec::Target;
use crate::context::Context;

/// One policy object. The uid tells a re-created policy from the one it replaces, so a new
/// policy with the same name starts with a fresh autoscaler.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PolicyKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What one member looked like when last read.
#[derive(Debug, Clone)]
pub(super) struct Observation {
    pub at: Instant,
    /// The member's client and health when read: a change of either makes the observation
    /// stale at once.
    pub client_generation: u64,
    pub health_since: jiff::Timestamp,
    pub scale: Result<ScaleView, ScaleError>,
    /// The member HPAs targeting the workload.
    pub hpas: Result<Vec<String>, String>,
}

/// Readings from the members' metrics APIs, and for which clusters they were read.
pub(super) struct MemberReadings {
    pub at: Instant,
    pub clusters: Vec<String>,
    /// One per metric, in spec order; `None` for the metrics read from Prometheus.
    pub readings: Vec<Option<hpa::MetricReading>>,
}

/// The controller's memory of one policy.
#[derive(Default)]
pub(super) struct PolicyState {
    pub scaler: hpa::ScalerState,
    /// The total last decided.
    pub desired_total: Option<i32>,
    /// The target the observations and resolutions are for.
    pub target: Option<Target>,
    /// Each member's resource for the target's kind (resolved once per target).
    pub resolved: BTreeMap<String, ApiResource>,
    pub observed: BTreeMap<String, Observation>,
    pub last_status_write: Option<Instant>,
    /// The last readings of the metrics read from the members' metrics APIs (reused for
    /// `member_metrics_period`).
    pub member_readings: Option<MemberReadings>,
    /// The member HPA conflicts already reported as Events.
    pub reported_conflicts: BTreeSet<String>,
    /// The write failures already reported as Events.
    pub reported_failures: BTreeSet<String>,
}

impl PolicyState {
    /// Forgets what was read for another target: a changed `targetRef` is a different workload,
    /// possibly of another kind.
    pub fn retarget(&mut self, target: &Target) {
        if self.target.as_ref() != Some(target) {
            self.target = Some(target.clone());
            self.resolved.clear();
            self.observed.clear();
        }
    }

    /// Keeps a fresh read of `cluster` (and its resolved resource, when resolving succeeded).
    pub fn remember(&mut self, cluster: String, ar: Option<ApiResource>, observation: Observation) {
        if let Some(ar) = ar {
            self.resolved.insert(cluster.clone(), ar);
        }
        self.observed.insert(cluster, observation);
    }
}

/// Everything the reconciles share: the context, the settings and the memory of all policies.
pub(super) struct State {
    pub ctx: Arc<Context>,
    pub config: ScalingConfig,
    pub prometheus: Prometheus,
    /// The policies as watched, to tell which ones still exist.
    pub store: Store<ScalingPolicy>,
    /// The FederatedObjects, to tell a workload Flotilla propagates (see [`super::workload`]).
    pub workloads: crate::propagation::HostObjects<flotilla_api::FederatedObject>,
    /// The engine's copy watches: the scale of a federated workload's copies.
    pub copies: Arc<crate::propagation::CopyInformers>,
    /// The members' HPAs, one watch per member.
    pub hpas: super::member_hpas::MemberHpas,
    /// The members' pods, one watch per member (once a Pods or Resource metric needs them).
    pub pods: super::member_pods::MemberPods,
    /// Bounded concurrency and a deadline per member for the policies' member requests (lanes
    /// of their own: a burst of propagation never starves autoscaling, nor the reverse).
    pub lanes: crate::propagation::lanes::Lanes,
    pub policies: Mutex<HashMap<PolicyKey, PolicyState>>,
    pub last_prune: Mutex<Instant>,
}

impl State {
    /// Takes a policy's memory out for one reconcile (the controller never reconciles one
    /// object twice at a time); [`State::put`] gives it back.
    pub fn take(&self, key: &PolicyKey) -> PolicyState {
        self.lock().remove(key).unwrap_or_default()
    }

    pub fn put(&self, key: PolicyKey, state: PolicyState) {
        self.lock().insert(key, state);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PolicyKey, PolicyState>> {
        // A poisoned lock means a panic elsewhere while holding it; the map is still usable.
        self.policies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the memory of policies that no longer exist (at most once per PRUNE_INTERVAL).
    pub fn prune(&self) {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < PRUNE_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let members = self.ctx.registry.snapshot();
        self.hpas.retain(&members);
        self.pods.retain(&members);
        let store = &self.store;
        self.lock().retain(|k, _| {
            store
                .get(&ObjectRef::new(&k.name).within(&k.namespace))
                .is_some_and(|p| p.metadata.uid.as_deref() == Some(k.uid.as_str()))
        });
    }
}
