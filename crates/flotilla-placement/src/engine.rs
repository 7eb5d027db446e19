//! `decide`: the one entry point the controllers call on every reconcile.
//!
//! It validates the spec, runs the per-cluster checks ([`crate::classify`]), selects among the
//! eligible clusters ([`crate::select`]), divides replicas when asked ([`crate::replicas`]) and
//! assembles one verdict per cluster. It is a pure function of its input: the inventory order
//! does not matter (clusters are processed by name) and nothing is read from a clock.
use std::borrow::Cow;
use std::time::Duration;

use crate::classify::{Compiled, Standing};
use crate::cluster::ClusterInfo;
use crate::decision::{ClusterVerdict, Decision, Reason, Verdict};
use crate::fasthash::FastMap;
use crate::namespace::ObjectNamespace;
use crate::previous::PreviousDecision;
use crate::replica_request::ReplicaRequest;
use crate::replicas::divide_replicas;
use crate::report::{nothing_selected, unknown_listed};
use crate::select::{Candidate, Outcome, RankContext, select};
use crate::selector::label;
use crate::spec::PlacementSpec;
use crate::taint::Taint;
use crate::time::Timestamp;
use crate::validate::SpecError;

/// Everything a decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct DecisionInput<'a> {
    /// The placement spec (converted from the API object).
    pub spec: &'a PlacementSpec,
    /// The member-cluster inventory. Order does not matter; names are unique keys (a repeated
    /// name is ignored after its first occurrence).
    pub clusters: &'a [ClusterInfo],
    /// What the previous reconcile selected (`PreviousDecision::default()` the first time).
    pub previous: &'a PreviousDecision,
    /// The current time, for stabilization periods and `last_change`.
    pub now: Timestamp,
    /// For a ScalingPolicy: the replicas to divide among the selected clusters.
    pub replicas: Option<&'a ReplicaRequest>,
    /// The object's host namespace, checked against each member's `namespaces`; `None` for a
    /// cluster-scoped object (its authors hold cluster-wide rights on the host).
    pub namespace: Option<ObjectNamespace<'a>>,
}

/// An eligible cluster between the two passes.
struct Eligible<'a> {
    /// Index of its verdict in the output.
    index: usize,
    cluster: &'a ClusterInfo,
    rank: u32,
    selected_since: Option<Timestamp>,
    ready_for: Duration,
    /// An untolerated NoSchedule taint overlooked because the cluster holds the object now.
    kept_despite: Option<&'a Taint>,
}

/// Decides where the object goes. Fails only when the spec is invalid (see
/// [`PlacementSpec::validate`]); never panics.
pub fn decide(input: &DecisionInput<'_>) -> Result<Decision, SpecError> {
    let spec = input.spec;
    spec.validate()?;
    let now = input.now;
    let inventory = by_name(input.clusters);
    let mut previous: FastMap<&str, Timestamp> = FastMap::default();
    previous.reserve(input.previous.selected.len());
    for p in &input.previous.selected {
        previous.entry(p.name.as_str()).or_insert(p.since);
    }

    // Pass 1: the per-cluster checks. A cluster out of the running gets its final verdict now;
    // an eligible one gets a placeholder and becomes a selection candidate. Spread-label values
    // of candidates are kept flat, `per` each: one allocation instead of one per cluster.
    let compiled = Compiled::new(spec);
    let per = spec.constraints.spread.len();
    let mut context = RankContext {
        uses_priority: compiled.uses_priority(),
        primary_rank: None,
        unavailable_rank: None,
    };
    let mut clusters = Vec::with_capacity(inventory.len());
    let mut eligible = Vec::new();
    let mut topology: Vec<&str> = Vec::new();
    for cluster in &inventory {
        let selected_since = previous.get(&*cluster.name).copied();
        let cls = compiled.classify(cluster, input.namespace.as_ref(), selected_since.is_some());
        let min = |r: Option<u32>| Some(r.map_or(cls.rank, |r| r.min(cls.rank)));
        if cls.candidate {
            context.primary_rank = min(context.primary_rank);
        }
        let (verdict, reason, message) = match cls.standing {
            Standing::Out {
                verdict,
                reason,
                message,
            } => {
                if cls.candidate && matches!(verdict, Verdict::Unhealthy | Verdict::Tainted) {
                    context.unavailable_rank = min(context.unavailable_rank);
                }
                (verdict, reason, message)
            }
            Standing::Eligible { kept_despite } => {
                eligible.push(Eligible {
                    index: clusters.len(),
                    cluster,
                    rank: cls.rank,
                    selected_since,
                    ready_for: now.saturating_since(cluster.health.since),
                    kept_despite,
                });
                topology.extend(
                    spec.constraints
                        .spread
                        .iter()
                        .map(|s| label(&cluster.labels, &s.topology_key).unwrap_or("")),
                );
                (
                    Verdict::Standby,
                    Reason::MaxClustersReached,
                    Cow::Borrowed(""),
                )
            }
        };
        clusters.push(ClusterVerdict {
            name: cluster.name.clone(),
            verdict,
            reason,
            message,
            priority: (context.uses_priority && cls.candidate).then_some(cls.rank),
            replicas: None,
            selected_since: None,
        });
    }

    // Selection over the candidates (in name order, as `select` requires).
    let candidates: Vec<Candidate> = eligible
        .iter()
        .enumerate()
        .map(|(n, e)| Candidate {
            rank: e.rank,
            selected_since: e.selected_since,
            ready_for: e.ready_for,
            topology: topology.get(n * per..(n + 1) * per).unwrap_or_default(),
        })
        .collect();
    let selection = select(spec, &candidates, &context);

    // Pass 2: the candidates' verdicts.
    let mut selected: Vec<&Eligible> = Vec::new();
    for (e, outcome) in eligible.iter().zip(selection.outcomes) {
        let (verdict, reason, message) = overlook_no_schedule(outcome, e.kept_despite);
        if let Some(v) = clusters.get_mut(e.index) {
            v.verdict = verdict;
            v.reason = reason;
            v.message = message;
            if verdict == Verdict::Selected {
                v.selected_since = Some(e.selected_since.unwrap_or(now));
                selected.push(e);
            }
        }
    }
    // Candidates are in name order, so a stable sort by rank gives (rank, name).
    selected.sort_by_key(|e| e.rank);

    let mut unsatisfied = unknown_listed(spec, &inventory);
    unsatisfied.extend(selection.unsatisfied);
    if selected.is_empty() {
        unsatisfied.push(nothing_selected(&clusters));
    }
    if let Some(request) = input.replicas {
        unsatisfied.extend(divide(request, &selected, &mut clusters));
    }

    let selected: Vec<String> = selected
        .iter()
        .map(|e| e.cluster.name.to_string())
        .collect();
    let changed = previous.len() != selected.len()
        || selected.iter().any(|n| !previous.contains_key(n.as_str()));
    Ok(Decision {
        clusters,
        selected,
        unsatisfied,
        changed,
        last_change: if changed {
            Some(now)
        } else {
            input.previous.last_change
        },
    })
}

/// The inventory sorted by name, without repeated names (the first occurrence wins).
fn by_name(clusters: &[ClusterInfo]) -> Vec<&ClusterInfo> {
    let mut inventory: Vec<&ClusterInfo> = clusters.iter().collect();
    // Inventories usually arrive sorted (the API server lists by name): then one pass of
    // comparisons replaces the sort and the de-duplication.
    if !inventory.is_sorted_by(|a, b| a.name < b.name) {
        inventory.sort_by(|a, b| a.name.cmp(&b.name));
        inventory.dedup_by(|later, earlier| later.name == earlier.name);
    }
    inventory
}

/// The final verdict of a candidate that holds the object despite an untolerated NoSchedule
/// taint: it stays while selected, but once not selected it is reported as tainted, because it
/// will not be placed on again.
fn overlook_no_schedule(
    outcome: Outcome,
    kept_despite: Option<&Taint>,
) -> (Verdict, Reason, Cow<'static, str>) {
    match (outcome.verdict, kept_despite) {
        (_, None) => (outcome.verdict, outcome.reason, outcome.message),
        (Verdict::Selected, Some(taint)) => (
            Verdict::Selected,
            outcome.reason,
            format!(
                "{}; taint {taint} is not tolerated, but NoSchedule keeps existing placements",
                outcome.message
            )
            .into(),
        ),
        (_, Some(taint)) => (
            Verdict::Tainted,
            Reason::TaintNotTolerated,
            format!(
                "taint {taint} is not tolerated; no longer selected ({}: {}), so it is not placed again",
                outcome.reason, outcome.message
            )
            .into(),
        ),
    }
}

/// Divides the request's replicas among the selected clusters (in priority order) and records
/// them in their verdicts; returns the bounds that could not be met.
fn divide(
    request: &ReplicaRequest,
    selected: &[&Eligible<'_>],
    clusters: &mut [ClusterVerdict],
) -> Vec<String> {
    let prefs = request.preference_index();
    let targets: Vec<_> = selected
        .iter()
        .map(|e| {
            let pref = prefs.get(&*e.cluster.name).copied();
            request.target(e.cluster, pref, e.rank)
        })
        .collect();
    let division = divide_replicas(request.total, &targets);
    for (e, assignment) in selected.iter().zip(&division.assignments) {
        if let Some(v) = clusters.get_mut(e.index) {
            v.replicas = Some(assignment.replicas);
        }
    }
    division.unsatisfied
}
