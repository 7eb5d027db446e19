//! What the ScalingPolicy controller reads and writes in one member: the target's scale
//! subresource, member HPAs on the same workload, and the member-side metrics APIs
//! (`metrics.k8s.io`, `custom.metrics.k8s.io`, `external.metrics.k8s.io`). Every failure is a
//! message, never a panic; the controller turns them into cluster states and conditions.
use k8s_openapi::api::autoscaling::v1::{HorizontalPodAutoscaler, Scale};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use std::collections::BTreeMap;

use flotilla_autoscaling as hpa;
use serde_json::json;

use crate::scaled_targets::SCALING_FIELD_MANAGER;

use super::quantity;
use super::spec::Target;
use crate::lease_guard::LeaseGuard;

/// The scale subresource as Flotilla uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScaleView {
    /// `spec.replicas` (what the workload is asked to run).
    pub replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.selector`: the target's pods, for Pods and Resource metrics.
    pub selector: Option<String>,
    /// The same selector as a structure, when known (a federated workload's, from its copy):
    /// its pods then come from the shared pod watch.
    pub label_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// Why the target's scale could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleError {
    /// The workload (or its kind) does not exist in this member.
    Missing(String),
    /// Anything else: forbidden, timeout, server error.
    Failed(String),
}

/// The resource (plural) of the target's kind. The common `apps/v1` kinds and
/// ReplicationController are mapped statically; anything else is looked up through discovery
/// in the member, which also checks that the kind has a scale subresource.
pub async fn resolve(client: &Client, target: &Target) -> Result<ApiResource, ScaleError> {
    let gvk = GroupVersionKind::gvk(&target.group, &target.version, &target.kind);
    if let Some(plural) = static_plural(target) {
        return Ok(ApiResource::from_gvk_with_plural(&gvk, plural));
    }
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => {
            if caps
                .subresources
                .iter()
                .any(|(sub, _)| sub.plural == "scale")
            {
                Ok(ar)
            } else {
                Err(ScaleError::Failed(format!(
                    "{} {} has no scale subresource; it cannot be autoscaled",
                    target.api_version(),
                    target.kind
                )))
            }
        }
        Err(e) if is_not_found(&e) || matches!(e, kube::Error::Discovery(_)) => {
            Err(ScaleError::Missing(format!(
                "the kind {} {} is not served by this member",
                target.api_version(),
                target.kind
            )))
        }
        Err(e) => Err(ScaleError::Failed(format!(
            "discovery of {} {} failed: {e}",
            target.api_version(),
            target.kind
        ))),
    }
}

fn static_plural(target: &Target) -> Option<&'static str> {
    match (
        target.group.as_str(),
        target.version.as_str(),
        target.kind.as_str(),
    ) {
        ("apps", "v1", "Deployment") => Some("deployments"),
        ("apps", "v1", "StatefulSet") => Some("statefulsets"),
        ("apps", "v1", "ReplicaSet") => Some("replicasets"),
        ("", "v1", "ReplicationController") => Some("replicationcontrollers"),
        _ => None,
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_forbidden())
}

/// Reads the target's scale subresource.
pub async fn get_scale(
    client: &Client,
    namespace: &str,
    ar: &ApiResource,
    name: &str,
) -> Result<ScaleView, ScaleError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    api.get_scale(name)
        .await
        .map(|scale| ScaleView::of(scale, 0))
        .map_err(|e| scale_error(e, "reading", "get", ar, namespace, name))
}

/// Sets `spec.replicas` through the scale subresource (a merge patch, as `kubectl scale` does;
/// the workload's other fields are not touched, and no field manager conflict arises with the
/// workload's owner). Not written without the leader Lease.
pub async fn set_replicas(
    guard: &LeaseGuard,
    client: &Client,
    namespace: &str,
    ar: &ApiResource,
    name: &str,
    replicas: i32,
) -> Result<ScaleView, ScaleError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    // A field manager of its own: the propagation engine tells by it that a ScalingPolicy owns
    // a copy's replicas, and lets go of them.
    let params = PatchParams {
        field_manager: Some(SCALING_FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = json!({"spec": {"replicas": replicas}});
    guard
        .fence(api.patch_scale(name, &params, &Patch::Merge(&patch)))
        .await
        .map_err(|f| ScaleError::Failed(f.to_string()))?
        .map(|scale| ScaleView::of(scale, replicas))
        .map_err(|e| scale_error(e, "updating", "patch", ar, namespace, name))
}

impl ScaleView {
    /// What a scale subresource says; `spec_default` when it carries no `spec.replicas`.
    fn of(scale: Scale, spec_default: i32) -> Self {
        Self {
            replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(spec_default),
            status_replicas: scale.status.as_ref().map(|s| s.replicas).unwrap_or(0),
            selector: scale
                .status
                .and_then(|s| s.selector)
                .filter(|s| !s.is_empty()),
            label_selector: None,
        }
    }
}

/// A failed read or write of the scale subresource, as a message naming the workload (and, when
/// forbidden, the permission the member's role lacks).
fn scale_error(
    e: kube::Error,
    doing: &str,
    verb: &str,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
) -> ScaleError {
    let kind = &ar.kind;
    if is_not_found(&e) {
        ScaleError::Missing(format!("{kind} {namespace}/{name} does not exist"))
    } else if is_forbidden(&e) {
        ScaleError::Failed(format!(
            "{doing} the scale of {kind} {namespace}/{name} is forbidden; the member's Flotilla role needs {verb} on {}/scale",
            ar.plural
        ))
    } else {
        ScaleError::Failed(format!(
            "{doing} the scale of {kind} {namespace}/{name} failed: {e}"
        ))
    }
}

/// The member HPAs (`autoscaling/v1`, served by every supported Kubernetes) whose
/// `scaleTargetRef` is the target, as `namespace/name`.
pub async fn conflicting_hpas(
    client: &Client,
    namespace: &str,
    target: &Target,
) -> Result<Vec<String>, String> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing HorizontalPodAutoscalers in {namespace} failed: {e}"))?;
    Ok(list
        .items
        .iter()
        .filter(|hpa| {
            hpa.spec
                .as_ref()
                .is_some_and(|s| targets(&s.scale_target_ref, target))
        })
        .map(|hpa| format!("{namespace}/{}", hpa.name_any()))
        .collect())
}

pub(super) fn targets(
    r: &k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference,
    target: &Target,
) -> bool {
    let group_matches = match r.api_version.as_deref() {
        // Versions may differ (apps/v1 vs apps/v1beta2 in older HPAs): compare groups.
        Some(av) => av.split_once('/').map_or("", |(g, _)| g) == target.group,
        None => true,
    };
    r.kind == target.kind && r.name == target.name && group_matches
}

// ---------------------------------------------------------------------------------------------
// Member-side metrics APIs.

/// Metric names go into a URL path: allow what metric names are made of.
fn checked_name(name: &str) -> Result<&str, String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
    {
        Ok(name)
    } else {
        Err(format!(
            "the metric name {name:?} contains characters a metrics API path cannot carry"
        ))
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    group: &str,
) -> Result<T, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| format!("cannot build the request for {path}: {e}"))?;
    client.request::<T>(request).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.is_not_found() => {
            format!("{group} is not served here or has no such metric (is a metrics adapter installed?): {}", s.message)
        }
        kube::Error::Api(s) if s.is_forbidden() => {
            format!("reading {group} is forbidden for Flotilla's member role: {}", s.message)
        }
        _ => format!("reading {group} failed: {e}"),
    })
}

#[derive(Deserialize)]
struct ValueList {
    #[serde(default)]
    items: Vec<ValueItem>,
}

#[derive(Deserialize)]
struct ValueItem {
    value: k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    /// The pod a custom.metrics.k8s.io value describes.
    #[serde(default, rename = "describedObject")]
    described_object: Option<DescribedObject>,
}

#[derive(Deserialize)]
struct DescribedObject {
    #[serde(default)]
    name: String,
}

fn sum_values(items: &[ValueItem], what: &str) -> Result<(f64, usize), String> {
    let mut total = 0.0;
    for item in items {
        total += quantity::parse(&item.value).ok_or_else(|| {
            format!(
                "{what} returned the value {:?}, not a quantity",
                item.value.0
            )
        })?;
    }
    Ok((total, items.len()))
}

/// `external.metrics.k8s.io`: the sum of the metric's values in this member.
pub async fn external_metric(
    client: &Client,
    namespace: &str,
    name: &str,
    selector: Option<&str>,
) -> Result<f64, String> {
    let name = checked_name(name)?;
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{name}{}",
        query(&[("labelSelector", selector.unwrap_or(""))])
    );
    let list: ValueList = get_json(client, &path, "external.metrics.k8s.io").await?;
    if list.items.is_empty() {
        return Err(format!(
            "external.metrics.k8s.io returned no values for {name}"
        ));
    }
    sum_values(&list.items, "external.metrics.k8s.io").map(|(total, _)| total)
}

/// `custom.metrics.k8s.io`: the metric of one object (`resource`: the object's kind as served
/// in this member) in this member.
pub async fn object_metric(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    object: &str,
    name: &str,
    metric_selector: Option<&str>,
) -> Result<f64, String> {
    let name = checked_name(name)?;
    let object = checked_name(object)?;
    let kind = if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    };
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/{kind}/{object}/{name}{}",
        query(&[("metricLabelSelector", metric_selector.unwrap_or(""))])
    );
    let list: ValueList = get_json(client, &path, "custom.metrics.k8s.io").await?;
    if list.items.is_empty() {
        return Err(format!(
            "custom.metrics.k8s.io returned no value of {name} for {} {object}",
            resource.kind
        ));
    }
    sum_values(&list.items, "custom.metrics.k8s.io").map(|(total, _)| total)
}

/// `custom.metrics.k8s.io`: the metric of each of the target's pods in this member, by pod name.
pub async fn pods_metric_per_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    pod_selector: &str,
    metric_selector: Option<&str>,
) -> Result<BTreeMap<String, PodValue>, String> {
    let name = checked_name(name)?;
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{name}{}",
        query(&[
            ("labelSelector", pod_selector),
            ("metricLabelSelector", metric_selector.unwrap_or(""))
        ])
    );
    let list: ValueList = get_json(client, &path, "custom.metrics.k8s.io").await?;
    let mut out = BTreeMap::new();
    for item in &list.items {
        let value = quantity::parse(&item.value).ok_or_else(|| {
            format!(
                "custom.metrics.k8s.io returned the value {:?}, not a quantity",
                item.value.0
            )
        })?;
        let pod = item
            .described_object
            .as_ref()
            .map(|o| o.name.clone())
            .unwrap_or_default();
        out.insert(
            pod,
            PodValue {
                value,
                sample: None,
            },
        );
    }
    Ok(out)
}

/// One pod's sample: its value, and for metrics.k8s.io the sample's time and window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodValue {
    pub value: f64,
    pub sample: Option<(hpa::Timestamp, u64)>,
}

/// metrics.k8s.io usage of `resource` of each of the target's pods (summed over its containers).
pub async fn resource_usage_per_pod(
    client: &Client,
    namespace: &str,
    resource: &str,
    pod_selector: &str,
) -> Result<BTreeMap<String, PodValue>, String> {
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods{}",
        query(&[("labelSelector", pod_selector)])
    );
    let list: PodMetricsList = get_json(client, &path, "metrics.k8s.io").await?;
    let mut out = BTreeMap::new();
    for pod in &list.items {
        let mut sum = 0.0;
        for c in &pod.containers {
            let q = c.usage.get(resource).ok_or_else(|| {
                format!(
                    "missing {resource} usage for container {} of pod {}",
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or("?")
                )
            })?;
            sum +=
                quantity::parse(q).ok_or_else(|| format!("usage {:?} is not a quantity", q.0))?;
        }
        let sample = pod.timestamp.as_ref().map(|t| {
            let window = pod
                .window
                .as_deref()
                .and_then(|w| w.parse::<jiff::SignedDuration>().ok())
                .map_or(0, |d| d.as_secs().max(0) as u64);
            (hpa_time(t.0), window)
        });
        out.insert(
            pod.metadata.name.clone().unwrap_or_default(),
            PodValue { value: sum, sample },
        );
    }
    Ok(out)
}

/// One of the target's pods as the replica calculator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPod {
    pub name: String,
    pub facts: hpa::PodFacts,
    /// The pod's summed container requests of the metric's resource; `None` when a container
    /// has none.
    pub request: Option<f64>,
}

/// The target's pods in one member (`pods` `list`, by the scale subresource's selector), with
/// their requests of `resource` when given.
pub async fn target_pods(
    client: &Client,
    namespace: &str,
    pod_selector: &str,
    resource: Option<&str>,
) -> Result<Vec<TargetPod>, String> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(pod_selector))
        .await
        .map_err(|e| format!("listing the target's pods failed: {e}"))?;
    Ok(list.items.iter().map(|p| target_pod(p, resource)).collect())
}

pub(super) fn target_pod(
    pod: &k8s_openapi::api::core::v1::Pod,
    resource: Option<&str>,
) -> TargetPod {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| hpa::ReadyCondition {
            status_false: c.status == "False",
            last_transition: c
                .last_transition_time
                .as_ref()
                .map_or(hpa::Timestamp::default(), |t| hpa_time(t.0)),
        });
    let request = resource.and_then(|r| {
        pod.spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                c.resources
                    .as_ref()
                    .and_then(|res| res.requests.as_ref())
                    .and_then(|req| req.get(r))
                    .and_then(quantity::parse)
            })
            .sum::<Option<f64>>()
    });
    TargetPod {
        name: pod.name_any(),
        facts: hpa::PodFacts {
            deleting: pod.metadata.deletion_timestamp.is_some(),
            phase: hpa::PodPhase::parse(status.and_then(|s| s.phase.as_deref())),
            ready,
            start_time: status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| hpa_time(t.0)),
            sample: None,
        },
        request,
    }
}

/// A time as the autoscaler takes it.
pub(super) fn hpa_time(t: jiff::Timestamp) -> hpa::Timestamp {
    hpa::Timestamp::from_unix_millis(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

/// The samples of one member's pods for the replica calculator: each pod classified
/// (`resource`: `Some("cpu")` etc. for a Resource metric, `None` for a Pods metric), with its
/// value if the metrics API reported one, and its request when `utilization`.
pub fn samples(
    pods: &[TargetPod],
    values: &BTreeMap<String, PodValue>,
    resource: Option<&str>,
    utilization: bool,
    now: hpa::Timestamp,
) -> Result<Vec<hpa::PodSample>, String> {
    pods.iter()
        .map(|pod| {
            let value = values.get(&pod.name);
            let mut facts = pod.facts;
            facts.sample = value.map(|v| v.sample.unwrap_or((now, 0)));
            let readiness = hpa::classify(&facts, resource, now);
            let mut sample = hpa::PodSample {
                readiness,
                value: value.map(|v| v.value),
                request: None,
            };
            if utilization && readiness != hpa::PodReadiness::Ignored {
                let request = pod.request.ok_or_else(|| {
                    format!(
                        "missing request for {} in a container of pod {}",
                        resource.unwrap_or("the resource"),
                        pod.name
                    )
                })?;
                sample = sample.with_request(request);
            }
            Ok(sample)
        })
        .collect()
}

#[derive(Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[derive(Deserialize)]
struct PodMetrics {
    metadata: kube::core::ObjectMeta,
    #[serde(default)]
    timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// A duration such as `30s` (or `30.5s`).
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Deserialize)]
struct ContainerMetrics {
    name: String,
    #[serde(default)]
    usage:
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::spec::test_target as target;
    use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;

    #[test]
    fn hpa_target_matching_compares_group_kind_and_name() {
        let r = |av: Option<&str>, kind: &str, name: &str| CrossVersionObjectReference {
            api_version: av.map(str::to_string),
            kind: kind.into(),
            name: name.into(),
        };
        assert!(targets(&r(Some("apps/v1"), "Deployment", "web"), &target()));
        assert!(targets(
            &r(Some("apps/v1beta2"), "Deployment", "web"),
            &target()
        ));
        assert!(targets(&r(None, "Deployment", "web"), &target()));
        assert!(!targets(
            &r(Some("apps/v1"), "Deployment", "api"),
            &target()
        ));
        assert!(!targets(
            &r(Some("apps/v1"), "StatefulSet", "web"),
            &target()
        ));
        assert!(!targets(
            &r(Some("extensions/v1beta1"), "Deployment", "web"),
            &target()
        ));
    }

    #[test]
    fn common_kinds_resolve_without_discovery() {
        assert_eq!(static_plural(&target()), Some("deployments"));
        let mut sts = target();
        sts.kind = "StatefulSet".into();
        assert_eq!(static_plural(&sts), Some("statefulsets"));
        let mut custom = target();
        custom.group = "example.com".into();
        assert_eq!(static_plural(&custom), None);
    }

    #[test]
    fn query_strings_are_encoded_and_empty_pairs_dropped() {
        assert_eq!(
            query(&[("labelSelector", "app=web,tier in (a,b)")]),
            "?labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29"
        );
        assert_eq!(query(&[("labelSelector", "")]), "");
        assert!(checked_name("kafka_lag:sum").is_ok());
        assert!(checked_name("../secrets").is_err());
        assert!(checked_name("").is_err());
    }

    #[test]
    fn values_are_summed_and_bad_values_rejected() {
        let items: ValueList =
            serde_json::from_value(json!({"items": [{"value": "1500m"}, {"value": "2"}]}))
                .expect("list");
        assert_eq!(sum_values(&items.items, "x"), Ok((3.5, 2)));
        let bad: ValueList =
            serde_json::from_value(json!({"items": [{"value": "lots"}]})).expect("list");
        assert!(sum_values(&bad.items, "x").is_err());
    }
}
