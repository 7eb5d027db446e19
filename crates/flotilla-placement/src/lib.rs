//! Flotilla's placement engine: for one FederatedIngress or ScalingPolicy, which member clusters
//! it goes to and, for a ScalingPolicy, how many replicas each gets.
//!
//! The engine is pure: no Kubernetes client, no I/O, no clock. Time is an input
//! ([`Timestamp`], milliseconds since the Unix epoch), as is the previous decision, so the same
//! input always gives the same [`Decision`]. Controllers call [`decide`] on every reconcile and
//! map the result 1:1 onto `PlacementStatus`. The engine has its own copies of the API types
//! (the controller converts), so it depends on neither kube nor k8s-openapi.
//!
//! ```
//! use flotilla_placement::{
//!     ClusterInfo, DecisionInput, PlacementSpec, PreviousDecision, PriorityGroup, Timestamp,
//!     decide,
//! };
//!
//! let spec = PlacementSpec {
//!     failover_priority: vec![
//!         PriorityGroup::of_clusters(["eu-1"]),
//!         PriorityGroup::of_clusters(["us-1"]),
//!     ],
//!     ..PlacementSpec::default()
//! };
//! let clusters = [ClusterInfo::new("eu-1"), ClusterInfo::new("us-1")];
//! let previous = PreviousDecision::default(); // from status on later reconciles
//! let decision = decide(&DecisionInput {
//!     spec: &spec,
//!     clusters: &clusters,
//!     previous: &previous,
//!     now: Timestamp::from_unix_millis(1_700_000_000_000),
//!     replicas: None,
//!     namespace: None,
//! })?;
//! assert_eq!(decision.selected, ["eu-1"]);
//! assert_eq!(
//!     decision.to_string(),
//!     "eu-1  Selected  priority 0  PrimaryHealthy: priority 0, the best rank\n\
//!      us-1  Standby   priority 1  LowerPriority: a better-ranked failover group supplies the selection\n"
//! );
//! # Ok::<(), flotilla_placement::SpecError>(())
//! ```
//!
//! # Semantics
//! - **Candidates.** A cluster listed in `clusters` (when non-empty) AND matching
//!   `clusterSelector` (when set). With neither, every member cluster is a candidate (as in
//!   KubeFed, where an empty placement selects every cluster). An empty selector matches every
//!   cluster, as in Kubernetes. Listed names that are not member clusters are reported in
//!   `unsatisfied`.
//! - **Per-cluster checks**, first failure wins: not listed / selector mismatch → `Filtered`;
//!   missing a spread `topologyKey` label → `Filtered`; an untolerated `NoExecute` taint →
//!   `Tainted` (moved away); an untolerated `NoSchedule` taint → `Tainted` unless the cluster
//!   holds the object now (it keeps it while it stays selected, but once it is not selected it
//!   is reported `Tainted` and never selected anew); not ready → `Unhealthy` (failed over from
//!   at once: the prober has already debounced). Tolerations match as pod tolerations do.
//! - **Ranks.** A cluster's rank is the index of the first `failoverPriority` group containing
//!   it (by name or selector); clusters in no group rank after every group. Without
//!   `failoverPriority` every rank is 0.
//! - **Order** among eligible clusters: rank; then currently selected clusters, longest
//!   selected first (stickiness: adding or removing an unrelated cluster never reshuffles the
//!   selection); then clusters ready for at least `failback.stabilizationSeconds` (a proven
//!   cluster is preferred to one that just came back); then name.
//! - **Selection**, walking that order: first, clusters that cover a new topology value for a
//!   spread `minGroups` not yet met; then, with `maxClusters`, the first `maxClusters`; without
//!   it but with `failoverPriority`, every cluster of the best rank present (lower ranks are
//!   `Standby`); with neither, all of them. Spread `maxPerGroup` filters a cluster whose value
//!   is full. An unmet `minGroups` is reported in `unsatisfied`.
//! - **Failback and hysteresis.** A cluster that would displace a currently selected cluster of
//!   worse rank waits until it has been ready for `failback.stabilizationSeconds`
//!   (`FailbackPending`), and never does with failback `Never` (`FailbackDisabled`). A health
//!   flap shorter than the period restarts the wait, so it never changes the decision. Every
//!   decision is a fixed point: fed back as the previous decision with the same inventory and
//!   time, it reproduces itself.
//! - **Replicas** ([`divide_replicas`]): by weight within per-cluster min/max (and the cluster's
//!   capacity hint), remainders by largest fraction then rank then name; the total is never
//!   exceeded (when minimums add up to more than the total, they are filled in priority order
//!   and the shortfall is reported) and no cluster's maximum is exceeded (when maximums add up
//!   to less than the total, each gets its maximum and the rest is reported).
//!
//! Messages are `Cow<'static, str>`: the common fixed texts are not allocated per cluster,
//! which matters at thousands of clusters.
mod classify;
mod cluster;
mod decision;
mod engine;
mod explain;
mod fasthash;
mod fill;
mod gate;
mod labels;
mod namespace;
mod previous;
mod replica_request;
mod replicas;
mod report;
mod select;
mod selector;
mod spec;
mod spread;
mod taint;
mod time;
mod validate;

pub use cluster::{ClusterInfo, Health};
pub use decision::{ClusterVerdict, Decision, Reason, Verdict};
pub use engine::{DecisionInput, decide};
pub use namespace::{NamespaceAccess, NamespaceRule, ObjectNamespace};
pub use previous::{PreviousDecision, PreviousSelection};
pub use replica_request::{DEFAULT_WEIGHT, ReplicaPreference, ReplicaRequest};
pub use replicas::{ReplicaAssignment, ReplicaDivision, ReplicaTarget, divide_replicas};
pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorError, SelectorOperator};
pub use spec::{
    Constraints, DEFAULT_STABILIZATION_SECONDS, Failback, FailbackMode, PlacementSpec,
    PriorityGroup, SpreadConstraint,
};
pub use taint::{Taint, TaintEffect, Toleration, TolerationOperator};
pub use time::Timestamp;
pub use validate::SpecError;
