//! ScalingPolicy: one autoscaler for a workload that runs in several member clusters.
//! Shaped like `autoscaling/v2` HorizontalPodAutoscaler (and Karmada's FederatedHPA), plus a
//! placement and a per-cluster distribution.
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::placement::Placement;
use crate::placement_status::PlacementStatus;

/// Scales a workload across member clusters as a whole: metrics decide the total replicas with
/// the HPA v2 algorithm, and the placement divides them across clusters.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "ScalingPolicy",
    plural = "scalingpolicies",
    shortname = "sp",
    category = "flotilla",
    namespaced,
    status = "ScalingPolicyStatus",
    doc = "Federated autoscaling of a workload across member clusters.",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetRef.name"),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.currentReplicas"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ScalingActive")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must not exceed maxReplicas",
        "fieldPath": ".minReplicas",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "has(self.metrics) && size(self.metrics) > 0",
        "message": "at least one metric is required",
        "fieldPath": ".metrics",
        "reason": "FieldValueRequired"
    }
]))]
pub struct ScalingPolicySpec {
    /// The workload to scale in each placed member: any kind with a scale subresource, in the
    /// same namespace as this policy.
    pub target_ref: ScaleTargetReference,

    /// Which member clusters run the workload. Leave it out for a workload a FederatedObject
    /// propagates: the FederatedObject's placement applies (setting it is refused as
    /// ContradictorySettings).
    #[serde(default)]
    pub placement: Placement,

    /// The smallest total number of replicas across all clusters (at most `maxReplicas`).
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: i32,

    /// The largest total number of replicas across all clusters.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,

    /// How the total is divided across the selected clusters. Leave it out for a workload a
    /// FederatedObject propagates: its `replicas.distribution` applies.
    #[serde(default)]
    pub distribution: Distribution,

    /// The metrics that drive scaling (at least one). With several, the largest proposal wins,
    /// as in the HPA. At most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub metrics: Vec<MetricSpec>,

    /// Scale-up and scale-down behaviour: stabilization windows and rate policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<ScalingBehavior>,

    /// What to do in a member where an HPA already targets the same workload.
    #[serde(default)]
    pub member_autoscaler_conflict: ConflictPolicy,
}

fn default_min_replicas() -> i32 {
    1
}

/// The workload to scale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.apiVersion.matches('^([^/]+/)?[^/]+$')",
    "message": "must be a group/version (e.g. apps/v1) or a core version (v1)",
    "fieldPath": ".apiVersion",
    "reason": "FieldValueInvalid"
}]))]
pub struct ScaleTargetReference {
    /// API version of the workload, e.g. `apps/v1`.
    #[schemars(length(min = 1, max = 320))]
    pub api_version: String,
    /// Kind of the workload, e.g. `Deployment`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the workload.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Division of the total replicas across clusters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Weight of a selected cluster that has no entry in `clusters`.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0))]
    pub default_weight: u32,
    /// Per-cluster weights and bounds: one entry per cluster, at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, y.name == x.name))",
        "message": "must not have two entries for one cluster"
    }]))]
    pub clusters: Vec<ClusterReplicaPreference>,
}

fn default_weight() -> u32 {
    1
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            default_weight: default_weight(),
            clusters: Vec::new(),
        }
    }
}

/// Weight and bounds for one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not exceed maxReplicas",
    "fieldPath": ".minReplicas",
    "reason": "FieldValueInvalid"
}]))]
pub struct ClusterReplicaPreference {
    /// The MemberCluster name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Relative share of the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub weight: Option<u32>,
    /// This cluster gets at least this many replicas while it is selected and healthy (at most
    /// `maxReplicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas: Option<i32>,
    /// This cluster never gets more than this many replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<i32>,
}

/// What to do when a member already autoscales the workload with its own HPA.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConflictPolicy {
    /// Leave that member alone and report a conflict.
    #[default]
    Respect,
    /// Write replicas anyway (the member HPA should be removed by its owner).
    TakeOver,
}

/// One metric, as in `autoscaling/v2` MetricSpec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'Resource' || has(self.resource)",
        "message": "resource is required for a metric of type Resource",
        "fieldPath": ".resource",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'Pods' || has(self.pods)",
        "message": "pods is required for a metric of type Pods",
        "fieldPath": ".pods",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'External' || has(self.external)",
        "message": "external is required for a metric of type External",
        "fieldPath": ".external",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'Object' || has(self.object)",
        "message": "object is required for a metric of type Object",
        "fieldPath": ".object",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "(has(self.resource) ? 1 : 0) + (has(self.pods) ? 1 : 0) + (has(self.external) ? 1 : 0) + (has(self.object) ? 1 : 0) <= 1",
        "message": "resource, pods, external and object are mutually exclusive: set only the one type names",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct MetricSpec {
    /// Which source below is set (only that one).
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// A resource metric (CPU, memory) of the target's pods, from `metrics.k8s.io` in the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    /// A per-pod custom metric, from `custom.metrics.k8s.io` in the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    /// A metric not tied to a Kubernetes object: a Prometheus query, or `external.metrics.k8s.io`
    /// in the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
    /// A metric describing one object in the policy's namespace (an Ingress's requests per
    /// second, say), from `custom.metrics.k8s.io` in the members, summed over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
}

/// The type of a metric source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricSourceType {
    /// `resource` is set.
    Resource,
    /// `pods` is set.
    Pods,
    /// `external` is set.
    External,
    /// `object` is set.
    Object,
}

/// A resource metric of the target's pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    /// `cpu` or `memory`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The target value.
    pub target: MetricTarget,
}

/// A custom per-pod metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    /// The metric.
    pub metric: MetricIdentifier,
    /// The target value (`AverageValue`).
    pub target: MetricTarget,
}

/// An external metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    /// The metric. Its name labels the value in status; without `prometheus` it is looked up in
    /// `external.metrics.k8s.io` of the members and summed.
    pub metric: MetricIdentifier,
    /// Evaluate a PromQL query through the Prometheus HTTP API the operator is configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusQuery>,
    /// The target value (`Value` or `AverageValue`).
    pub target: MetricTarget,
}

/// A metric of one object, as in `autoscaling/v2` ObjectMetricSource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSource {
    /// The object the metric describes, in the policy's namespace.
    pub described_object: CrossVersionObjectReference,
    /// The metric.
    pub metric: MetricIdentifier,
    /// The target value (`Value` or `AverageValue`).
    pub target: MetricTarget,
}

/// Refers to an object by API version, kind and name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    /// API version of the object, e.g. `networking.k8s.io/v1`.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// Kind of the object, e.g. `Ingress`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the object.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A PromQL query whose result is one number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.query.trim() != ''",
    "message": "must not be empty",
    "fieldPath": ".query",
    "reason": "FieldValueRequired"
}]))]
pub struct PrometheusQuery {
    /// An instant query returning a single sample, e.g. `sum(kafka_consumergroup_lag{topic="orders"})`.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
}

/// Names a metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricIdentifier {
    /// The metric name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Narrows the metric by its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// The value a metric should have.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'Utilization' || has(self.averageUtilization)",
        "message": "averageUtilization is required for type Utilization",
        "fieldPath": ".averageUtilization",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'Value' || has(self.value)",
        "message": "value is required for type Value",
        "fieldPath": ".value",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.type != 'AverageValue' || has(self.averageValue)",
        "message": "averageValue is required for type AverageValue",
        "fieldPath": ".averageValue",
        "reason": "FieldValueRequired"
    }
]))]
pub struct MetricTarget {
    /// `Utilization`, `Value` or `AverageValue`.
    #[serde(rename = "type")]
    pub type_: MetricTargetType,
    /// Target total value (type `Value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Target value per replica (type `AverageValue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Target percentage of the pods' resource requests (type `Utilization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub average_utilization: Option<i32>,
}

/// How a metric target is expressed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricTargetType {
    /// Percentage of resource requests.
    Utilization,
    /// A total value.
    Value,
    /// A value per replica.
    AverageValue,
}

/// Scale-up and scale-down behaviour, as in `autoscaling/v2`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingBehavior {
    /// Rules for scaling up. Default: no stabilization; double or add 4 pods per 15 s, whichever is more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// Rules for scaling down. Default: 300 s stabilization; remove up to 100% per 15 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// Rules for one direction of scaling.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Past recommendations considered when scaling, in seconds (0 to 3600): the highest of the
    /// window when scaling down, the lowest when scaling up, so short spikes do not flap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: Option<i32>,
    /// Which policy's limit applies: `Max` (default), `Min`, or `Disabled` (no scaling this way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<ScalingPolicyRule>,
    /// Relative change in the metric ratio below which no scaling happens (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Quantity>,
}

/// Which policy wins when several apply.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A rate limit on scaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyRule {
    /// `Pods` (absolute) or `Percent` (of the current replicas).
    #[serde(rename = "type")]
    pub type_: ScalingPolicyType,
    /// The amount of change allowed within `periodSeconds`.
    #[schemars(range(min = 1))]
    pub value: i32,
    /// The window the limit applies to, in seconds (1 to 1800).
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: i32,
}

/// The unit of a scaling rate limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScalingPolicyType {
    /// An absolute number of replicas.
    Pods,
    /// A percentage of the current replicas.
    Percent,
}

/// What Flotilla observed and decided for a ScalingPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Total replicas observed across the placed clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Total replicas Flotilla wants across the placed clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// When the total was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// The last value read for each metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_metrics: Vec<MetricValueStatus>,
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited`, `MemberConflict`, with reasons, as an HPA's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The placement decision, with the replicas of each cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,
    /// Replicas per member cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
    pub clusters: Vec<ClusterReplicaStatus>,
}

/// The last value of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueStatus {
    /// The metric's name (the resource name for Resource metrics).
    pub name: String,
    /// The metric's source type.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// The total value, when the target is `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// The value per replica, when the target is `AverageValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// The utilization percentage, when the target is `Utilization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// Replicas in one member cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReplicaStatus {
    /// The MemberCluster name.
    pub cluster: String,
    /// Replicas Flotilla wants here.
    pub desired_replicas: i32,
    /// Replicas the member's scale subresource reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// `Scaled`, `Unreachable`, `Conflict` (a member HPA owns the workload), `TargetMissing`, `Failed`.
    pub state: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
