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
//!    scaled to 0 once reachable, its share having moved to the selected ones;
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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use flotilla_api::ScalingPolicy;
use flotilla_api::labels::FIELD_MANAGER;
use flotilla_api::placement_status::{PlacementStatus, Verdict};
use flotilla_api::scaling_policy::{ClusterReplicaStatus, ConflictPolicy, ScalingPolicyStatus};
use flotilla_autoscaling as hpa;
use flotilla_placement::{DecisionInput, decide};

use super::events;
use super::member::{self, ScaleError, ScaleView};
use super::prometheus::Prometheus;
use super::spec::{self, MetricPlan, Plan, SpecProblem, Target};
use super::status::{self, Cond, Report};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::members::registry::Member;
use crate::placement_input::{
    any_unknown, inventory, placement_spec, previous, replica_request, timestamp, to_status,
};

pub const CONTROLLER: &str = "scalingpolicy";

/// How often each policy's metrics are read and its total decided. The HPA syncs every 15 s
/// because it reads metrics-server, which itself scrapes kubelets every 15 s or so; here the
/// usual source is a Prometheus instant query (one cheap HTTP call), and the point of a
/// federated autoscaler is to react before the load shifts elsewhere. 1 s bounds the reaction
/// time to about a second (see the `scaling` benchmark) at the cost of one query per metric per
/// second per policy; member API servers are not polled at this rate (see
/// [`MEMBER_RESYNC`]).
pub const SYNC_PERIOD: Duration = Duration::from_secs(1);
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
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of the ScalingPolicy controller.
#[derive(Debug, Clone)]
pub struct ScalingConfig {
    /// Base URL of the Prometheus HTTP API (`--prometheus-url`).
    pub prometheus_url: Option<String>,
    pub sync_period: Duration,
    pub member_resync: Duration,
    pub metrics_status_interval: Duration,
}

impl ScalingConfig {
    pub fn new(prometheus_url: Option<String>) -> Self {
        Self {
            prometheus_url,
            sync_period: SYNC_PERIOD,
            member_resync: MEMBER_RESYNC,
            metrics_status_interval: METRICS_STATUS_INTERVAL,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PolicyKey {
    namespace: String,
    name: String,
    uid: String,
}

/// What one member looked like when last read.
#[derive(Debug, Clone)]
struct Observation {
    at: Instant,
    client_generation: u64,
    health_since: jiff::Timestamp,
    scale: Result<ScaleView, ScaleError>,
    hpas: Result<Vec<String>, String>,
}

/// The controller's memory of one policy.
#[derive(Default)]
struct PolicyState {
    scaler: hpa::ScalerState,
    /// The total last decided.
    desired_total: Option<i32>,
    /// The target the observations and resolutions are for.
    target: Option<Target>,
    resolved: BTreeMap<String, ApiResource>,
    observed: BTreeMap<String, Observation>,
    last_status_write: Option<Instant>,
    reported_conflicts: BTreeSet<String>,
    reported_failures: BTreeSet<String>,
}

struct State {
    ctx: Arc<Context>,
    config: ScalingConfig,
    prometheus: Prometheus,
    store: Store<ScalingPolicy>,
    policies: Mutex<HashMap<PolicyKey, PolicyState>>,
    last_prune: Mutex<Instant>,
}

impl State {
    fn take(&self, key: &PolicyKey) -> PolicyState {
        self.lock().remove(key).unwrap_or_default()
    }

    fn put(&self, key: PolicyKey, state: PolicyState) {
        self.lock().insert(key, state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PolicyKey, PolicyState>> {
        // A poisoned lock means a panic elsewhere while holding it; the map is still usable.
        self.policies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the memory of policies that no longer exist (at most once per PRUNE_INTERVAL).
    fn prune(&self) {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < PRUNE_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let store = &self.store;
        self.lock().retain(|k, _| {
            store
                .get(&ObjectRef::new(&k.name).within(&k.namespace))
                .is_some_and(|p| p.metadata.uid.as_deref() == Some(k.uid.as_str()))
        });
    }
}

/// How Flotilla stands with one cluster in this reconcile.
#[derive(Debug, Clone)]
enum Standing {
    /// Flotilla scales the target here.
    Writable {
        ar: ApiResource,
        scale: ScaleView,
        hpas: Vec<String>,
    },
    /// A member HPA targets the workload and the policy respects it.
    Conflict {
        scale: ScaleView,
        hpas: Vec<String>,
    },
    TargetMissing(String),
    Unreachable,
    Failed(String),
}

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
    let members = state.ctx.registry.snapshot();
    if !state.ctx.registry.is_synced() || any_unknown(&members) {
        // Just after start-up: unprobed members would count as down and lose their share.
        return Ok(Action::requeue(DEFER));
    }
    let api: Api<ScalingPolicy> = Api::namespaced(state.ctx.host.clone(), &namespace);

    // Validate (pure).
    let plan = spec::plan(&sp.spec).and_then(|plan| {
        placement_spec(&sp.spec.placement)
            .map(|p| (plan, p))
            .map_err(SpecProblem::placement)
    });
    let (plan, placement) = match plan {
        Ok(p) => p,
        Err(problem) => {
            write_invalid_spec(&api, &sp, &problem).await?;
            state.ctx.metrics.reconciled(CONTROLLER, start.elapsed());
            return Ok(Action::await_change());
        }
    };

    let mut ps = state.take(&key);
    let result = scale(
        &state, &api, &sp, &namespace, &plan, &placement, &members, &mut ps,
    )
    .await;
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

#[allow(clippy::too_many_arguments)]
async fn scale(
    state: &State,
    api: &Api<ScalingPolicy>,
    sp: &ScalingPolicy,
    namespace: &str,
    plan: &Plan,
    placement: &flotilla_placement::PlacementSpec,
    members: &[Member],
    ps: &mut PolicyState,
) -> Result<()> {
    let ctx = &state.ctx;
    let previous_status = sp.status.as_ref();
    let now = jiff::Timestamp::now();
    let target = &plan.target;
    if ps.target.as_ref() != Some(target) {
        ps.target = Some(target.clone());
        ps.resolved.clear();
        ps.observed.clear();
    }

    // Where the workload runs.
    let inventory = inventory(members);
    let previous_placement = previous(previous_status.and_then(|s| s.placement.as_ref()));
    let selection = decide(&DecisionInput {
        spec: placement,
        clusters: &inventory,
        previous: &previous_placement,
        now: timestamp(now),
        replicas: None,
    })
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let selected: BTreeSet<&str> = selection.selected.iter().map(String::as_str).collect();

    // Clusters Flotilla scaled before and no longer selects: their replicas go to 0 once
    // reachable (their share moved elsewhere).
    let managed_before: BTreeSet<String> = previous_status
        .iter()
        .flat_map(|s| s.clusters.iter())
        .filter(|c| c.state != "Conflict" && c.state != "TargetMissing")
        .map(|c| c.cluster.clone())
        .collect();
    let mut consider: BTreeSet<String> = selection.selected.iter().cloned().collect();
    consider.extend(managed_before.iter().cloned());
    ps.observed.retain(|c, _| consider.contains(c));

    // Dereference the members (in parallel; stale observations only).
    // Prometheus queries do not depend on the members: they run alongside the member reads,
    // so a resync does not delay the reaction to a metric.
    let queries = futures::future::join_all(plan.metrics.iter().map(|m| async move {
        match m {
            MetricPlan::Prometheus { query } => Some(state.prometheus.query(query).await),
            _ => None,
        }
    }));
    let refresh = futures::future::join_all(consider.iter().filter_map(|cluster| {
        let member = members.iter().find(|m| &m.name == cluster)?;
        let client = member.ready_client()?.clone();
        let fresh = ps.observed.get(cluster).is_some_and(|o| {
            o.at.elapsed() < state.config.member_resync
                && o.client_generation == member.client_generation
                && o.health_since == member.health_since
        });
        if fresh {
            return None;
        }
        let resolved = ps.resolved.get(cluster).cloned();
        Some(async move {
            let (ar, observation) = observe(&client, member, namespace, target, resolved).await;
            (cluster.clone(), ar, observation)
        })
    }));
    let (queried, refreshed) = futures::join!(queries, refresh);
    for (cluster, ar, observation) in refreshed {
        if let Some(ar) = ar {
            ps.resolved.insert(cluster.clone(), ar);
        }
        ps.observed.insert(cluster, observation);
    }
    let takeover = sp.spec.member_autoscaler_conflict == ConflictPolicy::TakeOver;
    let standings: BTreeMap<String, Standing> = consider
        .iter()
        .filter_map(|cluster| {
            let member = members.iter().find(|m| &m.name == cluster)?;
            Some((cluster.clone(), standing(member, ps, takeover)))
        })
        .collect();

    let writable: Vec<(&str, &ScaleView)> = standings
        .iter()
        .filter(|(c, _)| selected.contains(c.as_str()))
        .filter_map(|(c, s)| match s {
            Standing::Writable { scale, .. } => Some((c.as_str(), scale)),
            _ => None,
        })
        .collect();
    let observed_sum: i32 = writable
        .iter()
        .map(|(_, s)| s.replicas.max(0))
        .fold(0i32, i32::saturating_add);

    let mut report = Report {
        generation: sp.metadata.generation,
        member_conflict: Some(conflict_condition(&standings, &selected, target, takeover)),
        ..Report::default()
    };

    // Decide the total.
    let decision = if selection.selected.is_empty() {
        let why: Vec<String> = selection
            .clusters
            .iter()
            .map(|c| format!("{}: {}", c.name, c.reason))
            .collect();
        report.able_to_scale = Some(Cond::new(
            false,
            "NoClusterSelected",
            format!(
                "no member cluster is eligible for the workload ({})",
                if why.is_empty() {
                    "there are no member clusters".to_string()
                } else {
                    why.join(", ")
                }
            ),
        ));
        None
    } else if writable.is_empty() {
        let why: Vec<String> = selection
            .selected
            .iter()
            .map(|c| {
                format!(
                    "{c}: {}",
                    standings
                        .get(c)
                        .map(describe)
                        .unwrap_or_else(|| "unknown".into())
                )
            })
            .collect();
        report.able_to_scale = Some(Cond::new(
            false,
            "FailedGetScale",
            format!(
                "the target {target} cannot be scaled in any selected cluster ({})",
                why.join("; ")
            ),
        ));
        None
    } else {
        let readings = read_metrics(namespace, plan, queried, members, &writable).await;
        let current = ps
            .desired_total
            .or(previous_status.and_then(|s| s.desired_replicas))
            .filter(|d| *d > 0)
            .unwrap_or(observed_sum);
        let d = hpa::decide(
            &plan.scaling,
            &hpa::ScaleInput {
                current_replicas: current,
                metrics: readings,
            },
            &mut ps.scaler,
            hpa_time(now),
        );
        report.able_to_scale = Some(Cond::from_hpa(&d.able_to_scale));
        report.scaling_active = Some(Cond::from_hpa(&d.scaling_active));
        report.scaling_limited = d.scaling_limited.as_ref().map(Cond::from_hpa);
        report.metrics = Some(status::metric_values(&d.metrics));
        Some(d)
    };

    // Divide the total: clusters Flotilla does not scale get no share.
    let total = decision
        .as_ref()
        .map(|d| d.desired_replicas)
        .or(ps.desired_total)
        .or(previous_status.and_then(|s| s.desired_replicas))
        .unwrap_or(0);
    let request = share_request(
        &sp.spec.distribution,
        total,
        standings
            .iter()
            .filter(|(_, s)| !matches!(s, Standing::Writable { .. }))
            .map(|(c, _)| c.as_str()),
    );
    // Without a decided total there is nothing to divide: the placement is reported as is.
    let division = if decision.is_some() {
        decide(&DecisionInput {
            spec: placement,
            clusters: &inventory,
            previous: &previous_placement,
            now: timestamp(now),
            replicas: Some(&request),
        })
        .map_err(|e| Error::InvalidSpec(e.to_string()))?
    } else {
        selection.clone()
    };
    let shares: BTreeMap<&str, i32> = division.replicas().into_iter().collect();

    // Apply: each writable cluster's share (only where it differs), and 0 where Flotilla no
    // longer places the workload.
    let can_write = decision.is_some();
    let writes = standings.iter().filter_map(|(cluster, standing)| {
        let Standing::Writable { ar, scale, .. } = standing else {
            return None;
        };
        let want = if selected.contains(cluster.as_str()) {
            if !can_write {
                return None;
            }
            shares.get(cluster.as_str()).copied().unwrap_or(0)
        } else {
            0
        };
        if scale.replicas == want {
            return None;
        }
        let client = members
            .iter()
            .find(|m| &m.name == cluster)?
            .ready_client()?
            .clone();
        let ar = ar.clone();
        let name = target.name.clone();
        let before = scale.replicas;
        Some(async move {
            let result = member::set_replicas(&client, namespace, &ar, &name, want).await;
            (cluster.clone(), before, want, result)
        })
    });
    let written = futures::future::join_all(writes).await;
    let mut write_failures = Vec::new();
    let mut changes = Vec::new();
    let mut failed_clusters: BTreeMap<String, String> = BTreeMap::new();
    for (cluster, before, want, result) in written {
        match result {
            Ok(view) => {
                changes.push(format!("{cluster} {before}→{want}"));
                if let Some(o) = ps.observed.get_mut(&cluster) {
                    o.scale = Ok(view);
                }
            }
            Err(e) => {
                let message = match &e {
                    ScaleError::Missing(m) | ScaleError::Failed(m) => m.clone(),
                };
                tracing::warn!(cluster, policy = %sp.name_any(), error = %message, "scaling in member failed");
                write_failures.push(format!("{cluster}: {message}"));
                failed_clusters.insert(cluster.clone(), message);
                // Read it again next time.
                ps.observed.remove(&cluster);
            }
        }
    }
    if !write_failures.is_empty() {
        report.able_to_scale = Some(Cond::new(
            false,
            "FailedUpdateScale",
            format!(
                "the HPA controller was unable to update the target scale: {}",
                write_failures.join("; ")
            ),
        ));
    }

    // Report.
    let clusters = cluster_statuses(
        &standings,
        &selected,
        &shares,
        &failed_clusters,
        ps,
        previous_status,
    );
    let current_sum: i32 = clusters
        .iter()
        .filter(|c| selected.contains(c.cluster.as_str()) && c.state == "Scaled")
        .filter_map(|c| c.current_replicas)
        .fold(0i32, i32::saturating_add);
    report.current_replicas = Some(current_sum);
    report.desired_replicas = Some(total);
    let rescaled = decision.as_ref().is_some_and(|d| d.rescale);
    report.rescaled = rescaled;
    report.placement = Some(to_status(&division));
    report.clusters = clusters;
    if decision.is_some() {
        ps.desired_total = Some(total);
    }

    let reference = sp.object_ref(&());
    let split = division
        .replicas()
        .iter()
        .map(|(c, r)| format!("{c}={r}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(d) = decision.as_ref().filter(|d| d.rescale) {
        let note = format!(
            "New size: {}; reason: {}; split: {split}",
            d.desired_replicas,
            d.rescale_reason.as_deref().unwrap_or("rescale")
        );
        events::publish(
            &ctx.host,
            &reference,
            false,
            "SuccessfulRescale",
            "Scale",
            note,
        )
        .await;
    } else if !changes.is_empty() && write_failures.is_empty() {
        let note = format!(
            "total {total} redistributed: {} (split: {split})",
            changes.join(", ")
        );
        events::publish(
            &ctx.host,
            &reference,
            false,
            "ReplicasRedistributed",
            "Scale",
            note,
        )
        .await;
    }
    // One event per distinct failure, not one per poll while it lasts.
    let failures: BTreeSet<String> = write_failures.iter().cloned().collect();
    if !failures.is_empty() && failures != ps.reported_failures {
        events::publish(
            &ctx.host,
            &reference,
            true,
            "FailedRescale",
            "Scale",
            write_failures.join("; "),
        )
        .await;
    }
    ps.reported_failures = failures;
    report_conflicts(ctx, &reference, &standings, &selected, takeover, ps).await;
    report_placement_change(
        ctx,
        &reference,
        previous_status.and_then(|s| s.placement.as_ref()),
        report.placement.as_ref(),
    )
    .await;

    let new_status = status::build(previous_status, report, Time(now));
    let now_instant = Instant::now();
    if status::should_write(
        previous_status,
        &new_status,
        ps.last_status_write,
        now_instant,
        state.config.metrics_status_interval,
    ) {
        write_status(api, &sp.name_any(), &new_status).await?;
        ps.last_status_write = Some(now_instant);
    }
    Ok(())
}

/// The division request for `total`: the policy's distribution, with no share (maximum 0, no
/// minimum) for the clusters Flotilla cannot or must not scale, so the placement engine gives
/// their share to the others instead of leaving it unwritten.
fn share_request<'a>(
    distribution: &flotilla_api::scaling_policy::Distribution,
    total: i32,
    unscalable: impl Iterator<Item = &'a str>,
) -> flotilla_placement::ReplicaRequest {
    let mut request = replica_request(distribution, total);
    for cluster in unscalable {
        match request.preferences.iter_mut().find(|p| p.name == cluster) {
            Some(p) => {
                p.max_replicas = Some(0);
                p.min_replicas = None;
            }
            None => request.preferences.insert(
                0,
                flotilla_placement::ReplicaPreference {
                    name: cluster.to_string(),
                    weight: None,
                    min_replicas: None,
                    max_replicas: Some(0),
                },
            ),
        }
    }
    request
}

/// Reads the scale and the member HPAs of one cluster (resolving the kind first if needed).
async fn observe(
    client: &Client,
    member: &Member,
    namespace: &str,
    target: &Target,
    resolved: Option<ApiResource>,
) -> (Option<ApiResource>, Observation) {
    let observation = |scale, hpas| Observation {
        at: Instant::now(),
        client_generation: member.client_generation,
        health_since: member.health_since,
        scale,
        hpas,
    };
    let ar = match resolved {
        Some(ar) => ar,
        None => match member::resolve(client, target).await {
            Ok(ar) => ar,
            Err(e) => return (None, observation(Err(e), Ok(Vec::new()))),
        },
    };
    let (scale, hpas) = futures::join!(
        member::get_scale(client, namespace, &ar, &target.name),
        member::conflicting_hpas(client, namespace, target)
    );
    (Some(ar), observation(scale, hpas))
}

fn standing(member: &Member, ps: &PolicyState, takeover: bool) -> Standing {
    if member.ready_client().is_none() {
        return Standing::Unreachable;
    }
    let Some(o) = ps.observed.get(&member.name) else {
        return Standing::Unreachable;
    };
    let ar = ps.resolved.get(&member.name).cloned();
    match (&o.scale, &o.hpas, ar) {
        (Err(ScaleError::Missing(m)), _, _) => Standing::TargetMissing(m.clone()),
        (Err(ScaleError::Failed(m)), _, _) => Standing::Failed(m.clone()),
        (Ok(_), Err(m), _) if !takeover => Standing::Failed(format!(
            "cannot tell whether a member HorizontalPodAutoscaler manages the workload: {m}"
        )),
        (Ok(scale), Ok(hpas), _) if !hpas.is_empty() && !takeover => Standing::Conflict {
            scale: scale.clone(),
            hpas: hpas.clone(),
        },
        (Ok(scale), hpas, Some(ar)) => Standing::Writable {
            ar,
            scale: scale.clone(),
            hpas: hpas.clone().unwrap_or_default(),
        },
        (Ok(_), _, None) => Standing::Failed("the target's resource is not resolved".to_string()),
    }
}

fn describe(s: &Standing) -> String {
    match s {
        Standing::Writable { .. } => "scalable".into(),
        Standing::Conflict { hpas, .. } => format!(
            "member HorizontalPodAutoscaler {} manages it",
            hpas.join(", ")
        ),
        Standing::TargetMissing(m) | Standing::Failed(m) => m.clone(),
        Standing::Unreachable => "member is not Ready".into(),
    }
}

fn conflict_condition(
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    target: &Target,
    takeover: bool,
) -> Cond {
    let conflicts: Vec<String> = standings
        .iter()
        .filter(|(c, _)| selected.contains(c.as_str()))
        .filter_map(|(c, s)| match s {
            Standing::Conflict { hpas, .. } => Some(format!("{c}: {}", hpas.join(", "))),
            Standing::Writable { hpas, .. } if !hpas.is_empty() => {
                Some(format!("{c}: {}", hpas.join(", ")))
            }
            _ => None,
        })
        .collect();
    if conflicts.is_empty() {
        Cond::new(
            false,
            "NoConflict",
            format!("no member HorizontalPodAutoscaler targets {target}"),
        )
    } else if takeover {
        Cond::new(
            true,
            "MemberAutoscalerTakenOver",
            format!(
                "member HorizontalPodAutoscalers target {target} ({}); Flotilla writes the replicas anyway (memberAutoscalerConflict: TakeOver), remove them",
                conflicts.join("; ")
            ),
        )
    } else {
        Cond::new(
            true,
            "MemberAutoscalerConflict",
            format!(
                "member HorizontalPodAutoscalers target {target} ({}); Flotilla leaves those clusters' replicas alone and gives them no share (memberAutoscalerConflict: Respect)",
                conflicts.join("; ")
            ),
        )
    }
}

fn cluster_statuses(
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    shares: &BTreeMap<&str, i32>,
    failed: &BTreeMap<String, String>,
    ps: &PolicyState,
    previous: Option<&ScalingPolicyStatus>,
) -> Vec<ClusterReplicaStatus> {
    let previous_current = |c: &str| {
        previous
            .and_then(|p| p.clusters.iter().find(|e| e.cluster == c))
            .and_then(|e| e.current_replicas)
    };
    let observed = |c: &str| {
        ps.observed
            .get(c)
            .and_then(|o| o.scale.as_ref().ok())
            .map(|s| s.replicas)
    };
    standings
        .iter()
        .filter_map(|(cluster, standing)| {
            let is_selected = selected.contains(cluster.as_str());
            let share = if is_selected { shares.get(cluster.as_str()).copied().unwrap_or(0) } else { 0 };
            let entry = |state: &str, current: Option<i32>, message: Option<String>| ClusterReplicaStatus {
                cluster: cluster.clone(),
                desired_replicas: share,
                current_replicas: current,
                state: state.to_string(),
                message,
            };
            if let Some(m) = failed.get(cluster) {
                return Some(entry("Failed", observed(cluster).or(previous_current(cluster)), Some(m.clone())));
            }
            Some(match standing {
                Standing::Writable { .. } if !is_selected => {
                    // Scaled to 0 (or already there): no longer Flotilla's to report.
                    return None;
                }
                Standing::Writable { .. } => entry("Scaled", observed(cluster), None),
                Standing::Conflict { scale, hpas } => entry(
                    "Conflict",
                    Some(scale.replicas),
                    Some(format!(
                        "member HorizontalPodAutoscaler {} manages this workload; Flotilla leaves its replicas alone",
                        hpas.join(", ")
                    )),
                ),
                Standing::TargetMissing(m) => entry("TargetMissing", None, Some(m.clone())),
                Standing::Failed(m) => entry("Failed", observed(cluster).or(previous_current(cluster)), Some(m.clone())),
                Standing::Unreachable => entry(
                    "Unreachable",
                    previous_current(cluster),
                    Some(if is_selected {
                        "member is not Ready; its replicas are left as they are until it is back".to_string()
                    } else {
                        "member is not Ready; its share moved to the other clusters, and its replicas go to 0 when it is back unless it is selected again".to_string()
                    }),
                ),
            })
        })
        .collect()
}

/// Reads every metric, in spec order; `queried` holds the Prometheus results already read.
async fn read_metrics(
    namespace: &str,
    plan: &Plan,
    queried: Vec<Option<Result<f64, String>>>,
    members: &[Member],
    writable: &[(&str, &ScaleView)],
) -> Vec<hpa::MetricReading> {
    let clients: Vec<(&str, Client, &ScaleView)> = writable
        .iter()
        .filter_map(|(c, s)| {
            let client = members
                .iter()
                .find(|m| &m.name == c)?
                .ready_client()?
                .clone();
            Some((*c, client, *s))
        })
        .collect();
    let clients = &clients;
    let reads = plan.metrics.iter().zip(queried).map(|(m, q)| async move {
        match q {
            Some(result) => result,
            None => read_metric(namespace, m, clients).await,
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(v) => hpa::MetricReading::Value(v),
            Err(m) => hpa::MetricReading::Failed(m),
        })
        .collect()
}

/// Per-member partial sums of a metric: (value sum, requests sum, pods).
type Partial = (f64, f64, usize);

/// Adds up the members' partial sums; any member failing fails the metric (as the HPA does
/// when it cannot read a metric: no scaling on partial data).
fn per_member(results: Vec<(&str, Result<Partial, String>)>) -> Result<Partial, String> {
    let mut sum = (0.0, 0.0, 0usize);
    let mut errors = Vec::new();
    for (cluster, r) in results {
        match r {
            Ok((a, b, n)) => {
                sum.0 += a;
                sum.1 += b;
                sum.2 += n;
            }
            Err(e) => errors.push(format!("{cluster}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(sum)
    } else {
        Err(errors.join("; "))
    }
}

async fn read_metric(
    namespace: &str,
    plan: &MetricPlan,
    clients: &[(&str, Client, &ScaleView)],
) -> Result<f64, String> {
    let selector_of = |c: &str, s: &ScaleView| {
        s.selector
            .clone()
            .ok_or_else(|| format!("the target's scale subresource in {c} reports no pod selector"))
    };
    match plan {
        MetricPlan::Prometheus { query } => Err(format!(
            "internal: the Prometheus query {query:?} was not run"
        )),
        MetricPlan::External { name, selector } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, _)| async move {
                    (
                        *c,
                        member::external_metric(client, namespace, name, selector.as_deref())
                            .await
                            .map(|v| (v, 0.0, 1)),
                    )
                }))
                .await;
            per_member(results).map(|(total, _, _)| total)
        }
        MetricPlan::Pods { name, selector } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, scale)| async move {
                    let r = match selector_of(c, scale) {
                        Ok(pods) => {
                            member::pods_metric(client, namespace, name, &pods, selector.as_deref())
                                .await
                                .map(|(sum, n)| (sum, 0.0, n))
                        }
                        Err(e) => Err(e),
                    };
                    (*c, r)
                }))
                .await;
            let (sum, _, pods) = per_member(results)?;
            if pods == 0 {
                return Err(format!("no pods of the target report the metric {name}"));
            }
            Ok(sum / pods as f64)
        }
        MetricPlan::Resource { name, utilization } => {
            let results =
                futures::future::join_all(clients.iter().map(|(c, client, scale)| async move {
                    let r = match selector_of(c, scale) {
                        Ok(pods) => {
                            member::resource_usage(client, namespace, name, &pods, *utilization)
                                .await
                                .map(|u| (u.usage, u.requests, u.pods))
                        }
                        Err(e) => Err(e),
                    };
                    (*c, r)
                }))
                .await;
            let (usage, requests, pods) = per_member(results)?;
            if pods == 0 {
                return Err(format!(
                    "no metrics returned for the target's pods ({name})"
                ));
            }
            if *utilization {
                if requests <= 0.0 {
                    return Err(format!("the target's pods request no {name}"));
                }
                Ok(100.0 * usage / requests)
            } else {
                Ok(usage / pods as f64)
            }
        }
    }
}

fn hpa_time(t: jiff::Timestamp) -> hpa::Timestamp {
    hpa::Timestamp::from_unix_millis(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

async fn report_conflicts(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    standings: &BTreeMap<String, Standing>,
    selected: &BTreeSet<&str>,
    takeover: bool,
    ps: &mut PolicyState,
) {
    let now: BTreeSet<String> = standings
        .iter()
        .filter(|(c, _)| selected.contains(c.as_str()))
        .filter_map(|(c, s)| match s {
            Standing::Conflict { hpas, .. } => Some(format!("{c} ({})", hpas.join(", "))),
            Standing::Writable { hpas, .. } if !hpas.is_empty() => {
                Some(format!("{c} ({})", hpas.join(", ")))
            }
            _ => None,
        })
        .collect();
    let new: Vec<&String> = now.difference(&ps.reported_conflicts).collect();
    if !new.is_empty() {
        let list = new
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let note = if takeover {
            format!(
                "member HorizontalPodAutoscalers target the workload in {list}; taking over (memberAutoscalerConflict: TakeOver)"
            )
        } else {
            format!(
                "member HorizontalPodAutoscalers target the workload in {list}; leaving those clusters alone"
            )
        };
        events::publish(
            &ctx.host,
            reference,
            true,
            "MemberAutoscalerConflict",
            "Scale",
            note,
        )
        .await;
    }
    ps.reported_conflicts = now;
}

/// Events for a changed selection; a cluster dropped because it became unhealthy is a failover.
async fn report_placement_change(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    before: Option<&PlacementStatus>,
    after: Option<&PlacementStatus>,
) {
    let Some(after) = after else { return };
    let old: BTreeSet<&String> = before
        .map(|p| p.selected.iter().collect())
        .unwrap_or_default();
    let new: BTreeSet<&String> = after.selected.iter().collect();
    if old == new {
        return;
    }
    ctx.metrics.placement_changed(CONTROLLER);
    let removed: Vec<&String> = old.difference(&new).copied().collect();
    let added: Vec<&String> = new.difference(&old).copied().collect();
    let failed: Vec<String> = removed
        .iter()
        .filter_map(|c| after.clusters.iter().find(|v| &&v.cluster == c))
        .filter(|v| matches!(v.verdict, Verdict::Unhealthy | Verdict::Tainted))
        .map(|v| format!("{} ({})", v.cluster, v.reason))
        .collect();
    let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if !failed.is_empty() {
        ctx.metrics.failed_over(CONTROLLER);
        let note = format!(
            "failed over from {}; the remaining clusters take its share",
            failed.join(", ")
        );
        events::publish(&ctx.host, reference, true, "FailedOver", "Place", note).await;
    } else if old.is_empty() {
        events::publish(
            &ctx.host,
            reference,
            false,
            "Placed",
            "Place",
            format!("placed on {}", list(&added)),
        )
        .await;
    } else {
        let note = format!(
            "placement changed: added [{}], removed [{}]",
            list(&added),
            list(&removed)
        );
        events::publish(
            &ctx.host,
            reference,
            false,
            "PlacementChanged",
            "Place",
            note,
        )
        .await;
    }
}

async fn write_status(
    api: &Api<ScalingPolicy>,
    name: &str,
    status: &ScalingPolicyStatus,
) -> Result<()> {
    let patch = json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::HostApi)?;
    Ok(())
}

async fn write_invalid_spec(
    api: &Api<ScalingPolicy>,
    sp: &ScalingPolicy,
    problem: &SpecProblem,
) -> Result<()> {
    let previous = sp.status.as_ref();
    let mut report = Report {
        generation: sp.metadata.generation,
        ..Report::default()
    };
    let cond = Some(Cond::new(false, problem.reason, problem.message.clone()));
    if problem.condition == "ScalingActive" {
        report.scaling_active = cond;
    } else {
        report.able_to_scale = cond;
    }
    let mut status = status::build(previous, report, Time(jiff::Timestamp::now()));
    // Keep the last cluster entries: nothing was done to them.
    status.clusters = previous.map(|p| p.clusters.clone()).unwrap_or_default();
    if previous != Some(&status) {
        write_status(api, &sp.name_any(), &status).await?;
    }
    Ok(())
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
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ScalingPolicy> = Api::all(ctx.host.clone());
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_lifecycle, Default::default());
    let changes = ctx.registry.change_stream();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn view(replicas: i32) -> ScaleView {
        ScaleView {
            replicas,
            status_replicas: 0,
            selector: None,
        }
    }

    fn writable(replicas: i32, hpas: &[&str]) -> Standing {
        Standing::Writable {
            ar: ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
            scale: view(replicas),
            hpas: hpas.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn conflicts_are_reported_per_policy() {
        let standings = BTreeMap::from([
            ("member1".to_string(), writable(3, &[])),
            (
                "member2".to_string(),
                Standing::Conflict {
                    scale: view(7),
                    hpas: vec!["ns/web".into()],
                },
            ),
        ]);
        let selected = BTreeSet::from(["member1", "member2"]);
        let c = conflict_condition(&standings, &selected, &target(), false);
        assert!(c.status);
        assert_eq!(c.reason, "MemberAutoscalerConflict");
        assert!(c.message.contains("member2: ns/web"), "{}", c.message);

        let taken = BTreeMap::from([("member2".to_string(), writable(7, &["ns/web"]))]);
        let c = conflict_condition(&taken, &selected, &target(), true);
        assert_eq!(c.reason, "MemberAutoscalerTakenOver");

        let none = BTreeMap::from([("member1".to_string(), writable(3, &[]))]);
        assert!(!conflict_condition(&none, &selected, &target(), false).status);
    }

    #[test]
    fn cluster_entries_explain_each_state() {
        let standings = BTreeMap::from([
            ("a".to_string(), writable(3, &[])),
            (
                "b".to_string(),
                Standing::Conflict {
                    scale: view(7),
                    hpas: vec!["ns/web".into()],
                },
            ),
            (
                "c".to_string(),
                Standing::TargetMissing("Deployment ns/web does not exist".into()),
            ),
            ("d".to_string(), Standing::Unreachable),
            ("e".to_string(), writable(0, &[])),
        ]);
        let selected = BTreeSet::from(["a", "b", "c"]);
        let shares = BTreeMap::from([("a", 5), ("b", 0), ("c", 0)]);
        let mut ps = PolicyState::default();
        ps.observed.insert(
            "a".into(),
            Observation {
                at: Instant::now(),
                client_generation: 0,
                health_since: jiff::Timestamp::UNIX_EPOCH,
                scale: Ok(view(5)),
                hpas: Ok(vec![]),
            },
        );
        let entries = cluster_statuses(&standings, &selected, &shares, &BTreeMap::new(), &ps, None);
        let states: Vec<(&str, &str, i32)> = entries
            .iter()
            .map(|e| (e.cluster.as_str(), e.state.as_str(), e.desired_replicas))
            .collect();
        assert_eq!(
            states,
            vec![
                ("a", "Scaled", 5),
                ("b", "Conflict", 0),
                ("c", "TargetMissing", 0),
                ("d", "Unreachable", 0)
            ]
        );
        assert_eq!(entries[0].current_replicas, Some(5));
        assert_eq!(entries[1].current_replicas, Some(7));
        let failed = BTreeMap::from([("a".to_string(), "forbidden".to_string())]);
        let entries = cluster_statuses(&standings, &selected, &shares, &failed, &ps, None);
        assert_eq!(entries[0].state, "Failed");
    }

    #[test]
    fn unscalable_clusters_get_no_share_and_the_others_take_it() {
        use flotilla_api::scaling_policy::{ClusterReplicaPreference, Distribution};
        let distribution = Distribution {
            default_weight: 1,
            clusters: vec![ClusterReplicaPreference {
                name: "b".into(),
                weight: Some(5),
                min_replicas: Some(2),
                max_replicas: None,
            }],
        };
        let request = share_request(&distribution, 9, ["b", "c"].into_iter());
        let cluster = |name: &str| flotilla_placement::ClusterInfo {
            name: name.into(),
            labels: Default::default(),
            taints: vec![],
            health: flotilla_placement::Health {
                ready: true,
                since: flotilla_placement::Timestamp::from_unix_millis(0),
            },
            capacity_replicas: None,
        };
        let inventory = [cluster("a"), cluster("b"), cluster("c"), cluster("d")];
        let decision = decide(&DecisionInput {
            spec: &flotilla_placement::PlacementSpec::default(),
            clusters: &inventory,
            previous: &Default::default(),
            now: flotilla_placement::Timestamp::from_unix_millis(1),
            replicas: Some(&request),
        })
        .expect("valid");
        let shares: BTreeMap<&str, i32> = decision.replicas().into_iter().collect();
        assert_eq!(
            shares,
            BTreeMap::from([("a", 5), ("b", 0), ("c", 0), ("d", 4)])
        );
        assert!(
            decision.unsatisfied.is_empty(),
            "{:?}",
            decision.unsatisfied
        );
    }

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
