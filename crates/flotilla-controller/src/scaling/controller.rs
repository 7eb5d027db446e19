//! The ScalingPolicy controller: a polling autoscaler for one workload spread over member
//! clusters.
//!
//! Every `sync_period` (1 s by default, fixed rate: measured from the start of the previous
//! poll), for each policy:
//! 1. **dereference**: the member snapshot; the placement (which clusters run the workload);
//!    in each selected member, the target's scale subresource and the member HPAs targeting
//!    it (re-read every `member_resync`, or at once when the member's health or client
//!    changes; a write updates it);
//! 2. **metrics**: each metric read fresh (Prometheus instant queries run alongside the member
//!    reads; member metrics APIs after them); a failed read is never scaled on;
//! 3. **decide** the total with the HPA v2 algorithm (`flotilla-autoscaling`, one
//!    `ScalerState` per policy kept in memory), then divide it across the selected clusters with
//!    the placement engine; clusters Flotilla must not or cannot scale (member HPA conflict,
//!    target missing, unreadable) get no share, so the total lands on the others;
//! 4. **apply**: write each cluster's share through its scale subresource, only where it
//!    differs; a cluster Flotilla scaled before and no longer selects (placement changed) is
//!    scaled to 0 once reachable, its share having moved to the selected ones; a poll that
//!    decides no total (no readable metric, nothing scalable) writes nothing at all;
//! 5. **status** (only when changed; metric values alone at most every
//!    `metrics_status_interval`) and Events on every rescale and redistribution.
//!
//! The autoscaler's "current replicas" is the total Flotilla last decided (in memory, else
//! `status.desiredReplicas`), not the observed sum: a member going away or coming back changes
//! the observed sum without anyone scaling, and its share is moved by the division, not by the
//! autoscaler (which would count it as a scale event and apply the rate limits to it). The first
//! time (no decided total yet) it adopts the observed sum, as the HPA adopts the target's
//! current scale. `status.currentReplicas` reports the observed sum.
//!
//! Deleting a ScalingPolicy leaves the members' replicas as they are (as deleting an HPA does).
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};

use flotilla_api::{FederatedObject, ScalingPolicy};

use super::conflicts;
use super::prometheus::Prometheus;
use super::report::write_invalid_spec;
use super::scale::{Poll, scale};
use super::spec::{self, SpecProblem};
use super::state::{PolicyKey, State};
use super::workload;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::placement_input::{any_unknown, placement_spec};
use crate::scaled_targets::{ScaledTargets, TargetKey};

pub const CONTROLLER: &str = "scalingpolicy";

/// How often each policy's metrics are read and its total decided. The HPA syncs every 15 s
/// because it reads metrics-server, which itself scrapes kubelets every 15 s or so; here the
/// usual source is a Prometheus instant query (one cheap HTTP call), and the point of a
/// federated autoscaler is to react before the load shifts elsewhere. 1 s bounds the reaction
/// time to about a second (see the `scaling` benchmark) at the cost of one query per metric per
/// second per policy; member API servers are not polled at this rate (see
/// [`MEMBER_RESYNC`]).
pub const SYNC_PERIOD: Duration = Duration::from_secs(1);
/// How long readings of the members' metrics APIs (`metrics.k8s.io`, `custom.metrics.k8s.io`,
/// `external.metrics.k8s.io`) are reused: the HPA's own sync period. metrics-server and the
/// Prometheus adapter refresh their values about this often, so reading them every second would
/// cost a request per metric per member per policy every second for the same numbers.
pub const MEMBER_METRICS_PERIOD: Duration = Duration::from_secs(15);
/// How long a member's scale and HPA list are reused before being read again when nothing
/// else (a write, a health or credential change) refreshed them. Drift made by hand in a member,
/// and a member HPA created later, are seen within this period.
pub const MEMBER_RESYNC: Duration = Duration::from_secs(10);
/// The shortest interval between two status writes that change only `currentMetrics`.
pub const METRICS_STATUS_INTERVAL: Duration = Duration::from_secs(15);
const DEFER: Duration = Duration::from_millis(250);
/// The shortest pause between two polls of one policy, when a reconcile took a whole period.
const MIN_REQUEUE: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_secs(2);
/// How often the in-memory state of deleted policies is dropped.
pub(super) const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The label Prometheus's Kubernetes service discovery and kube-state-metrics give a series'
/// namespace.
pub const DEFAULT_NAMESPACE_LABEL: &str = "namespace";

/// Settings of the ScalingPolicy controller.
#[derive(Debug, Clone)]
pub struct ScalingConfig {
    /// Base URL of the Prometheus HTTP API (`--prometheus-url`).
    pub prometheus_url: Option<String>,
    /// The series label PromQL queries are pinned to (`--promql-namespace-label`); `None` only
    /// when the operator is told to leave queries unscoped.
    pub promql_namespace_label: Option<String>,
    pub sync_period: Duration,
    pub member_resync: Duration,
    /// See [`MEMBER_METRICS_PERIOD`].
    pub member_metrics_period: Duration,
    pub metrics_status_interval: Duration,
}

impl ScalingConfig {
    pub fn new(prometheus_url: Option<String>) -> Self {
        Self {
            prometheus_url,
            promql_namespace_label: Some(DEFAULT_NAMESPACE_LABEL.to_owned()),
            sync_period: SYNC_PERIOD,
            member_resync: MEMBER_RESYNC,
            member_metrics_period: MEMBER_METRICS_PERIOD,
            metrics_status_interval: METRICS_STATUS_INTERVAL,
        }
    }
}

/// One poll of one policy: wait for the member snapshot to settle, validate the spec (pure),
/// then run the poll's phases ([`scale`]) with the policy's memory taken out of the state.
async fn reconcile(sp: Arc<ScalingPolicy>, state: Arc<State>) -> Result<Action> {
    let start = Instant::now();
    state.prune();
    let namespace = sp.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let key = PolicyKey {
        namespace: namespace.clone(),
        name: sp.name_any(),
        uid: sp
            .metadata
            .uid
            .clone()
            .ok_or(Error::MissingObjectKey("uid"))?,
    };
    if sp.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // No decision without the Lease: another replica may be deciding already, and this process
    // is about to exit (its in-memory history is not carried into a new term).
    state.ctx.lease.check()?;
    let members = state.ctx.registry.snapshot();
    if !state.ctx.registry.is_synced() || any_unknown(&members) {
        // Just after start-up: unprobed members would count as down and lose their share.
        return Ok(Action::requeue(DEFER));
    }
    let api: Api<ScalingPolicy> = Api::namespaced(state.ctx.host.clone(), &namespace);

    // Validate (pure).
    let scope = spec::QueryScope {
        namespace: &namespace,
        label: state.config.promql_namespace_label.as_deref(),
    };
    let plan = spec::plan(&sp.spec, scope).and_then(|plan| {
        // A workload Flotilla propagates brings its own placement and division.
        let workload = workload::find(&state.workloads, &namespace, &plan.target);
        if let Some(problem) = workload
            .as_ref()
            .and_then(|w| workload::contradiction(&sp.spec, w))
        {
            return Err(problem);
        }
        let placement = workload
            .as_ref()
            .map_or(&sp.spec.placement, |w| &w.placement);
        placement_spec(placement)
            .map(|p| (plan, p, workload))
            .map_err(SpecProblem::placement)
    });
    let (plan, placement, workload) = match plan {
        Ok(p) => p,
        Err(problem) => {
            write_invalid_spec(&state.ctx, &api, &sp, &problem).await?;
            state.ctx.metrics.reconciled(CONTROLLER, start.elapsed());
            return Ok(Action::await_change());
        }
    };
    // One decider per workload: with another policy on the same target, neither scales.
    // Looked at again every poll, so deleting the other lets this one scale.
    let others = conflicts::others(
        state.ctx.scaled.policies_of(&plan.target.key(&namespace)),
        sp.metadata.uid.as_deref(),
        &namespace,
    );
    if !others.is_empty() {
        let problem = SpecProblem {
            condition: "AbleToScale",
            reason: conflicts::REASON,
            message: conflicts::message(&plan.target, &others),
        };
        write_invalid_spec(&state.ctx, &api, &sp, &problem).await?;
        state.ctx.metrics.reconciled(CONTROLLER, start.elapsed());
        return Ok(Action::requeue(state.config.sync_period.max(MIN_REQUEUE)));
    }

    let poll = Poll {
        state: &state,
        api: &api,
        sp: &sp,
        namespace: &namespace,
        plan: &plan,
        placement_spec: &placement,
        workload: workload.as_ref(),
        members: &members,
        now: jiff::Timestamp::now(),
    };
    let mut ps = state.take(&key);
    let result = scale(&poll, &mut ps).await;
    state.put(key, ps);
    result?;
    state.ctx.metrics.reconciled(CONTROLLER, start.elapsed());
    // Fixed rate: the next poll starts one period after this one started, not after it ended.
    Ok(Action::requeue(
        state
            .config
            .sync_period
            .saturating_sub(start.elapsed())
            .max(MIN_REQUEUE),
    ))
}

fn error_policy(sp: Arc<ScalingPolicy>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(namespace = sp.namespace().unwrap_or_default(), name = %sp.name_any(), %error, "scalingpolicy reconcile failed");
    Action::requeue(RETRY.max(state.config.sync_period))
}

/// Reconcile at once only when the spec (generation) changes or the object is replaced or
/// deleted; its own status writes do not retrigger it. The poll (`sync_period`) does the rest.
fn spec_or_lifecycle(sp: &ScalingPolicy) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sp.metadata.generation.hash(&mut h);
    sp.metadata.uid.hash(&mut h);
    sp.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// Runs the controller until `shutdown` resolves.
pub async fn controller(
    ctx: Arc<Context>,
    config: ScalingConfig,
    workloads: crate::propagation::HostObjects<FederatedObject>,
    copies: Arc<crate::propagation::CopyInformers>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ScalingPolicy> = Api::all(ctx.host.clone());
    let (reader, writer) = reflector::store();
    let mut targets = TargetRecorder::new(ctx.scaled.clone());
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| targets.record(event))
        .applied_objects()
        .predicate_filter(spec_or_lifecycle, Default::default());
    // Policies poll every second anyway; a member change only makes them react at once.
    let changes = ctx.registry.event_stream().map(|_| ());
    tracing::info!(
        prometheus = config.prometheus_url.as_deref().unwrap_or("<none>"),
        sync_period = ?config.sync_period,
        "scalingpolicy controller starting"
    );
    let state = Arc::new(State {
        prometheus: Prometheus::new(config.prometheus_url.clone()),
        ctx,
        config,
        store: reader.clone(),
        workloads,
        copies,
        hpas: Default::default(),
        pods: Default::default(),
        lanes: Default::default(),
        policies: Mutex::new(HashMap::new()),
        last_prune: Mutex::new(Instant::now()),
    });
    Controller::for_stream(stream, reader)
        .reconcile_all_on(changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Keeps [`Context::scaled`] in step with the watched policies: a policy scales its target
/// from its creation until its deletion starts.
struct TargetRecorder {
    scaled: ScaledTargets,
    /// The uids listed by a relist in progress: the others are gone.
    relisting: Option<BTreeSet<String>>,
}

impl TargetRecorder {
    fn new(scaled: ScaledTargets) -> Self {
        Self {
            scaled,
            relisting: None,
        }
    }

    fn record(&mut self, event: &watcher::Event<ScalingPolicy>) {
        match event {
            watcher::Event::Init => self.relisting = Some(BTreeSet::new()),
            watcher::Event::InitApply(sp) | watcher::Event::Apply(sp) => {
                let Some(uid) = sp.metadata.uid.clone() else {
                    return;
                };
                if let (Some(listed), watcher::Event::InitApply(_)) = (&mut self.relisting, event) {
                    listed.insert(uid.clone());
                }
                let target = sp
                    .metadata
                    .deletion_timestamp
                    .is_none()
                    .then(|| sp.namespace())
                    .flatten()
                    .map(|ns| {
                        let r = &sp.spec.target_ref;
                        TargetKey::new(&ns, &r.api_version, &r.kind, &r.name)
                    });
                self.scaled.set(&uid, &sp.name_any(), target);
            }
            watcher::Event::Delete(sp) => {
                if let Some(uid) = &sp.metadata.uid {
                    self.scaled.set(uid, &sp.name_any(), None);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.scaled.retain(&listed);
                }
                self.scaled.mark_synced();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use flotilla_api::scaling_policy::ScalingPolicyStatus;

    use super::*;

    #[test]
    fn the_predicate_ignores_status_but_not_spec_or_replacement() {
        let mut sp = ScalingPolicy::new(
            "p",
            serde_json::from_value(serde_json::json!({
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3
            }))
            .expect("spec"),
        );
        sp.metadata.generation = Some(1);
        sp.metadata.uid = Some("u1".into());
        let base = spec_or_lifecycle(&sp);
        sp.status = Some(ScalingPolicyStatus {
            desired_replicas: Some(3),
            ..Default::default()
        });
        assert_eq!(spec_or_lifecycle(&sp), base);
        sp.metadata.uid = Some("u2".into());
        assert_ne!(spec_or_lifecycle(&sp), base);
    }
}
