//! Validation and conversion of a ScalingPolicy spec (pure): the autoscaler's input
//! ([`flotilla_autoscaling::ScalingSpec`]), how each metric is read ([`MetricPlan`]), and the
//! target's group/version/kind. Every mistake is a [`SpecProblem`] naming the field; nothing
//! panics.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use flotilla_api::scaling_policy as api;
use flotilla_autoscaling as hpa;

use super::quantity;

/// A spec mistake, reported as a condition until the spec changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// `AbleToScale` for target and placement mistakes, `ScalingActive` for metric mistakes.
    pub condition: &'static str,
    /// The condition reason.
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

impl SpecProblem {
    fn target(message: String) -> Self {
        Self {
            condition: "AbleToScale",
            reason: "InvalidTargetRef",
            message,
        }
    }

    fn metric(message: String) -> Self {
        Self {
            condition: "ScalingActive",
            reason: "InvalidMetricSourceType",
            message,
        }
    }

    /// A placement mistake (from `placement_input::placement_spec`).
    pub fn placement(message: String) -> Self {
        Self {
            condition: "AbleToScale",
            reason: "InvalidPlacement",
            message,
        }
    }
}

/// The workload to scale, as group/version/kind/name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
}

impl Target {
    /// The workload as the index of scaled targets keys it.
    pub fn key(&self, namespace: &str) -> crate::scaled_targets::TargetKey {
        crate::scaled_targets::TargetKey {
            namespace: namespace.to_string(),
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
        }
    }

    /// `apps/v1`-style.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// `apps/v1` Deployment `web`, for tests.
#[cfg(test)]
pub(super) fn test_target() -> Target {
    Target {
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// How one metric is read.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricPlan {
    /// An instant PromQL query through the operator's Prometheus.
    Prometheus { query: String },
    /// `external.metrics.k8s.io` in each member holding the target, summed.
    External {
        name: String,
        selector: Option<String>,
    },
    /// `custom.metrics.k8s.io` per-pod values of the target's pods, averaged over all members.
    Pods {
        name: String,
        selector: Option<String>,
    },
    /// `metrics.k8s.io` usage of the target's pods; `utilization` divides by the pods' requests.
    Resource { name: String, utilization: bool },
    /// `custom.metrics.k8s.io` metric of one object in each member holding the target, summed.
    Object {
        /// The object (`name` is the object's name).
        described: Target,
        name: String,
        selector: Option<String>,
    },
}

/// Everything a reconcile needs from the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub target: Target,
    pub scaling: hpa::ScalingSpec,
    /// One per `scaling.metrics` entry, same order.
    pub metrics: Vec<MetricPlan>,
}

/// How PromQL queries are confined to the policy's namespace (`--promql-namespace-label`).
#[derive(Debug, Clone, Copy)]
pub struct QueryScope<'a> {
    /// The policy's namespace.
    pub namespace: &'a str,
    /// The series label that names a namespace; `None` leaves queries as written.
    pub label: Option<&'a str>,
}

/// Validates and converts the spec (placement aside: `placement_input::placement_spec`).
pub fn plan(spec: &api::ScalingPolicySpec, scope: QueryScope<'_>) -> Result<Plan, SpecProblem> {
    let target = target(&spec.target_ref)?;
    if spec.max_replicas < 1 {
        return Err(SpecProblem {
            condition: "AbleToScale",
            reason: "InvalidReplicaBounds",
            message: format!("maxReplicas must be at least 1, got {}", spec.max_replicas),
        });
    }
    if spec.min_replicas < 0 || spec.min_replicas > spec.max_replicas {
        return Err(SpecProblem {
            condition: "AbleToScale",
            reason: "InvalidReplicaBounds",
            message: format!(
                "minReplicas must be between 0 and maxReplicas ({}), got {}",
                spec.max_replicas, spec.min_replicas
            ),
        });
    }
    if let Some(message) =
        crate::placement_input::distribution_problem("distribution", &spec.distribution)
    {
        return Err(SpecProblem {
            condition: "AbleToScale",
            reason: "InvalidReplicaBounds",
            message,
        });
    }
    let mut metrics = Vec::with_capacity(spec.metrics.len());
    let mut plans = Vec::with_capacity(spec.metrics.len());
    for (i, m) in spec.metrics.iter().enumerate() {
        let (metric, plan) = metric(i, m, scope)?;
        metrics.push(metric);
        plans.push(plan);
    }
    if metrics.is_empty() {
        return Err(SpecProblem::metric(
            "metrics: at least one metric is required".to_string(),
        ));
    }
    Ok(Plan {
        target,
        scaling: hpa::ScalingSpec {
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            metrics,
            behavior: spec.behavior.as_ref().map(behavior).transpose()?,
        },
        metrics: plans,
    })
}

fn target(r: &api::ScaleTargetReference) -> Result<Target, SpecProblem> {
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version.as_str()),
    };
    if version.is_empty()
        || version.contains('/')
        || (r.api_version.contains('/') && group.is_empty())
    {
        return Err(SpecProblem::target(format!(
            "targetRef.apiVersion: {:?} is not a group/version (e.g. apps/v1)",
            r.api_version
        )));
    }
    if r.kind.is_empty() || r.name.is_empty() {
        return Err(SpecProblem::target(
            "targetRef.kind and targetRef.name are required".to_string(),
        ));
    }
    Ok(Target {
        group: group.to_string(),
        version: version.to_string(),
        kind: r.kind.clone(),
        name: r.name.clone(),
    })
}

fn metric(
    i: usize,
    m: &api::MetricSpec,
    scope: QueryScope<'_>,
) -> Result<(hpa::MetricSpec, MetricPlan), SpecProblem> {
    let field = |what: &str| format!("metrics[{i}].{what}");
    let missing = |what: &str, type_: &str| {
        SpecProblem::metric(format!(
            "{} is required for a metric of type {type_}",
            field(what)
        ))
    };
    let sources = [
        m.resource.is_some(),
        m.pods.is_some(),
        m.external.is_some(),
        m.object.is_some(),
    ];
    if sources.into_iter().filter(|set| *set).count() > 1 {
        return Err(SpecProblem::metric(format!(
            "metrics[{i}]: resource, pods, external and object are mutually exclusive: set only the one type names"
        )));
    }
    match m.type_ {
        api::MetricSourceType::Resource => {
            let r = m
                .resource
                .as_ref()
                .ok_or_else(|| missing("resource", "Resource"))?;
            let target = target_value(&field("resource.target"), &r.target)?;
            let utilization = matches!(target, hpa::MetricTarget::Utilization(_));
            Ok((
                hpa::MetricSpec {
                    source: hpa::MetricSource::Resource {
                        name: r.name.clone(),
                    },
                    target,
                },
                MetricPlan::Resource {
                    name: r.name.clone(),
                    utilization,
                },
            ))
        }
        api::MetricSourceType::Pods => {
            let p = m.pods.as_ref().ok_or_else(|| missing("pods", "Pods"))?;
            let target = target_value(&field("pods.target"), &p.target)?;
            let selector = p
                .metric
                .selector
                .as_ref()
                .map(|s| selector_string(&field("pods.metric.selector"), s))
                .transpose()?;
            Ok((
                hpa::MetricSpec {
                    source: hpa::MetricSource::Pods {
                        name: p.metric.name.clone(),
                    },
                    target,
                },
                MetricPlan::Pods {
                    name: p.metric.name.clone(),
                    selector,
                },
            ))
        }
        api::MetricSourceType::Object => {
            let o = m
                .object
                .as_ref()
                .ok_or_else(|| missing("object", "Object"))?;
            object_metric(&field, o)
        }
        api::MetricSourceType::External => {
            let e = m
                .external
                .as_ref()
                .ok_or_else(|| missing("external", "External"))?;
            let target = target_value(&field("external.target"), &e.target)?;
            let plan = match &e.prometheus {
                Some(p) if p.query.trim().is_empty() => {
                    return Err(SpecProblem::metric(format!(
                        "{} must not be empty",
                        field("external.prometheus.query")
                    )));
                }
                Some(p) => MetricPlan::Prometheus {
                    query: scoped_query(&field("external.prometheus.query"), &p.query, scope)?,
                },
                None => MetricPlan::External {
                    name: e.metric.name.clone(),
                    selector: e
                        .metric
                        .selector
                        .as_ref()
                        .map(|s| selector_string(&field("external.metric.selector"), s))
                        .transpose()?,
                },
            };
            Ok((
                hpa::MetricSpec {
                    source: hpa::MetricSource::External {
                        name: e.metric.name.clone(),
                    },
                    target,
                },
                plan,
            ))
        }
    }
}

fn object_metric(
    field: &dyn Fn(&str) -> String,
    o: &api::ObjectMetricSource,
) -> Result<(hpa::MetricSpec, MetricPlan), SpecProblem> {
    let target = target_value(&field("object.target"), &o.target)?;
    let r = &o.described_object;
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), r.api_version.clone()),
    };
    if version.is_empty() || r.kind.is_empty() || r.name.is_empty() {
        return Err(SpecProblem::metric(format!(
            "{} needs apiVersion, kind and name",
            field("object.describedObject")
        )));
    }
    let selector = o
        .metric
        .selector
        .as_ref()
        .map(|s| selector_string(&field("object.metric.selector"), s))
        .transpose()?;
    Ok((
        hpa::MetricSpec {
            source: hpa::MetricSource::Object {
                name: o.metric.name.clone(),
            },
            target,
        },
        MetricPlan::Object {
            described: Target {
                group,
                version,
                kind: r.kind.clone(),
                name: r.name.clone(),
            },
            name: o.metric.name.clone(),
            selector,
        },
    ))
}

/// The query with every series selector pinned to the policy's namespace: a policy reads only
/// series of its own namespace, whatever it may write in the query.
fn scoped_query(field: &str, query: &str, scope: QueryScope<'_>) -> Result<String, SpecProblem> {
    let Some(label) = scope.label else {
        return Ok(query.to_owned());
    };
    flotilla_promql::scope_to_namespace(query, label, scope.namespace).map_err(|e| SpecProblem {
        condition: "ScalingActive",
        reason: e.reason(),
        message: format!("{field}: {e}"),
    })
}

/// The target as the autoscaler takes it. Whether the type fits the source is left to the
/// autoscaler, which reports `InvalidMetricSourceType` as the HPA does.
fn target_value(field: &str, t: &api::MetricTarget) -> Result<hpa::MetricTarget, SpecProblem> {
    let quantity_of =
        |name: &str, q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
            let q = q.ok_or_else(|| {
                SpecProblem::metric(format!("{field}.{name} is required for type {:?}", t.type_))
            })?;
            quantity::parse(q).ok_or_else(|| {
                SpecProblem::metric(format!("{field}.{name}: {:?} is not a quantity", q.0))
            })
        };
    Ok(match t.type_ {
        api::MetricTargetType::Utilization => {
            hpa::MetricTarget::Utilization(t.average_utilization.ok_or_else(|| {
                SpecProblem::metric(format!(
                    "{field}.averageUtilization is required for type Utilization"
                ))
            })?)
        }
        api::MetricTargetType::Value => {
            hpa::MetricTarget::Value(quantity_of("value", t.value.as_ref())?)
        }
        api::MetricTargetType::AverageValue => {
            hpa::MetricTarget::AverageValue(quantity_of("averageValue", t.average_value.as_ref())?)
        }
    })
}

fn behavior(b: &api::ScalingBehavior) -> Result<hpa::ScalingBehavior, SpecProblem> {
    Ok(hpa::ScalingBehavior {
        scale_up: b
            .scale_up
            .as_ref()
            .map(|r| rules("behavior.scaleUp", r))
            .transpose()?,
        scale_down: b
            .scale_down
            .as_ref()
            .map(|r| rules("behavior.scaleDown", r))
            .transpose()?,
    })
}

fn rules(field: &str, r: &api::ScalingRules) -> Result<hpa::ScalingRules, SpecProblem> {
    let tolerance = r
        .tolerance
        .as_ref()
        .map(|q| {
            quantity::parse(q).ok_or_else(|| SpecProblem {
                condition: "AbleToScale",
                reason: "InvalidBehavior",
                message: format!("{field}.tolerance: {:?} is not a quantity", q.0),
            })
        })
        .transpose()?;
    Ok(hpa::ScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy: r.select_policy.map(|p| match p {
            api::SelectPolicy::Max => hpa::SelectPolicy::Max,
            api::SelectPolicy::Min => hpa::SelectPolicy::Min,
            api::SelectPolicy::Disabled => hpa::SelectPolicy::Disabled,
        }),
        policies: r
            .policies
            .iter()
            .map(|p| hpa::ScalingPolicyRule {
                policy_type: match p.type_ {
                    api::ScalingPolicyType::Pods => hpa::ScalingPolicyType::Pods,
                    api::ScalingPolicyType::Percent => hpa::ScalingPolicyType::Percent,
                },
                value: p.value,
                period_seconds: p.period_seconds,
            })
            .collect(),
        tolerance,
    })
}

/// A label selector in the string form of `?labelSelector=` (`a=b,c in (d,e),!f`).
pub fn selector_string(field: &str, s: &LabelSelector) -> Result<String, SpecProblem> {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let values = e.values.clone().unwrap_or_default();
        let bad = |why: &str| SpecProblem::metric(format!("{field}.matchExpressions[{i}]: {why}"));
        parts.push(match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => return Err(bad("In and NotIn need values")),
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(bad(&format!("unknown operator {other:?}"))),
        });
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec(json: serde_json::Value) -> api::ScalingPolicySpec {
        serde_json::from_value(json).expect("valid spec json")
    }

    const SHOP: QueryScope<'static> = QueryScope {
        namespace: "shop",
        label: Some("namespace"),
    };

    fn plan_in_tests(spec: &api::ScalingPolicySpec) -> Result<Plan, SpecProblem> {
        plan(spec, SHOP)
    }

    #[test]
    fn prometheus_queries_read_only_the_policys_namespace() {
        let p = plan_in_tests(&spec(base())).expect("valid");
        assert_eq!(
            p.metrics,
            vec![MetricPlan::Prometheus {
                query: r#"sum(lag{namespace="shop"})"#.into()
            }]
        );
        let mut j = base();
        j["metrics"][0]["external"]["prometheus"]["query"] =
            serde_json::json!(r#"sum(lag{namespace="payments"})"#);
        let e = plan_in_tests(&spec(j.clone())).expect_err("another namespace");
        assert_eq!(
            (e.condition, e.reason),
            ("ScalingActive", "QueryNotScopable")
        );
        assert!(
            e.message.contains("external.prometheus.query"),
            "{}",
            e.message
        );
        j["metrics"][0]["external"]["prometheus"]["query"] = serde_json::json!("sum(lag");
        let e = plan_in_tests(&spec(j.clone())).expect_err("unparsable");
        assert_eq!(e.reason, "QueryParseError");
        // Unscoped only when the operator is told so.
        let p = plan(
            &spec(j),
            QueryScope {
                namespace: "shop",
                label: None,
            },
        )
        .expect("unscoped: the query is not parsed");
        assert_eq!(
            p.metrics,
            vec![MetricPlan::Prometheus {
                query: "sum(lag".into()
            }]
        );
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{
                "type": "External",
                "external": {
                    "metric": {"name": "lag"},
                    "prometheus": {"query": "sum(lag)"},
                    "target": {"type": "AverageValue", "averageValue": "500m"}
                }
            }],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5, "tolerance": "50m",
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 10}]}}
        })
    }

    /// What the CRD's rules refuse at admission on current servers, the controller refuses on
    /// every server, with a message naming the field.
    #[test]
    fn the_crd_rules_hold_without_admission() {
        let mut j = base();
        j["minReplicas"] = serde_json::json!(11);
        let e = plan_in_tests(&spec(j)).expect_err("min above max");
        assert_eq!(e.reason, "InvalidReplicaBounds");

        let mut j = base();
        j["metrics"][0]["resource"] = serde_json::json!({"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}});
        let e = plan_in_tests(&spec(j)).expect_err("two sources");
        assert_eq!(e.reason, "InvalidMetricSourceType");
        assert!(
            e.message.contains("metrics[0]") && e.message.contains("mutually exclusive"),
            "{}",
            e.message
        );

        let mut j = base();
        j["distribution"] = serde_json::json!({"clusters": [{"name": "m1"}, {"name": "m1"}]});
        let e = plan_in_tests(&spec(j)).expect_err("a cluster twice");
        assert_eq!(
            (e.condition, e.reason),
            ("AbleToScale", "InvalidReplicaBounds")
        );
        assert!(
            e.message.contains("distribution.clusters") && e.message.contains("\"m1\""),
            "{}",
            e.message
        );

        let mut j = base();
        j["distribution"] =
            serde_json::json!({"clusters": [{"name": "m1", "minReplicas": 3, "maxReplicas": 2}]});
        let e = plan_in_tests(&spec(j)).expect_err("cluster min above max");
        assert!(
            e.message.contains("distribution.clusters[0].minReplicas")
                && e.message.contains("must not exceed maxReplicas"),
            "{}",
            e.message
        );
    }

    #[test]
    fn converts_a_prometheus_policy() {
        let p = plan_in_tests(&spec(base())).expect("valid");
        assert_eq!(p.target.api_version(), "apps/v1");
        assert_eq!(p.target.group, "apps");
        assert_eq!(p.scaling.min_replicas, 2);
        assert_eq!(
            p.scaling.metrics,
            vec![hpa::MetricSpec::external_average_value("lag", 0.5)]
        );
        assert_eq!(
            p.metrics,
            vec![MetricPlan::Prometheus {
                query: r#"sum(lag{namespace="shop"})"#.into()
            }]
        );
        let down = p
            .scaling
            .behavior
            .and_then(|b| b.scale_down)
            .expect("scale down");
        assert_eq!(down.stabilization_window_seconds, Some(5));
        assert_eq!(down.tolerance, Some(0.05));
        assert_eq!(down.policies, vec![hpa::ScalingPolicyRule::percent(50, 10)]);
    }

    #[test]
    fn core_group_targets_have_no_group() {
        let mut j = base();
        j["targetRef"] =
            serde_json::json!({"apiVersion": "v1", "kind": "ReplicationController", "name": "rc"});
        let p = plan_in_tests(&spec(j)).expect("valid");
        assert_eq!(p.target.group, "");
        assert_eq!(p.target.api_version(), "v1");
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            (
                serde_json::json!({"apiVersion": "apps/", "kind": "Deployment", "name": "web"}),
                "targetRef.apiVersion",
            ),
            (
                serde_json::json!({"apiVersion": "/v1", "kind": "Deployment", "name": "web"}),
                "targetRef.apiVersion",
            ),
            (
                serde_json::json!({"apiVersion": "a/b/c", "kind": "Deployment", "name": "web"}),
                "targetRef.apiVersion",
            ),
            (
                serde_json::json!({"apiVersion": "apps/v1", "kind": "", "name": "web"}),
                "targetRef.kind",
            ),
        ];
        for (target, needle) in cases {
            let mut j = base();
            j["targetRef"] = target;
            let e = plan_in_tests(&spec(j)).expect_err("invalid");
            assert_eq!(e.condition, "AbleToScale");
            assert!(e.message.contains(needle), "{e:?}");
        }

        let mut j = base();
        j["metrics"][0]["external"]["target"] = serde_json::json!({"type": "Value"});
        let e = plan_in_tests(&spec(j)).expect_err("missing value");
        assert_eq!(
            (e.condition, e.reason),
            ("ScalingActive", "InvalidMetricSourceType")
        );
        assert!(
            e.message.contains("metrics[0].external.target.value"),
            "{e:?}"
        );

        let mut j = base();
        j["metrics"][0]["external"]["target"]["averageValue"] = serde_json::json!("lots");
        let e = plan_in_tests(&spec(j)).expect_err("bad quantity");
        assert!(e.message.contains("not a quantity"), "{e:?}");

        let mut j = base();
        j["metrics"][0] = serde_json::json!({"type": "Pods"});
        let e = plan_in_tests(&spec(j)).expect_err("missing source");
        assert!(e.message.contains("metrics[0].pods is required"), "{e:?}");

        let mut j = base();
        j["metrics"] = serde_json::json!([]);
        assert!(plan_in_tests(&spec(j)).is_err());

        let mut j = base();
        j["minReplicas"] = serde_json::json!(11);
        assert_eq!(
            plan_in_tests(&spec(j)).expect_err("min > max").reason,
            "InvalidReplicaBounds"
        );

        let mut j = base();
        j["metrics"][0]["external"]["prometheus"]["query"] = serde_json::json!("  ");
        assert!(plan_in_tests(&spec(j)).is_err());
    }

    #[test]
    fn a_wrong_target_type_is_left_to_the_autoscaler() {
        let mut j = base();
        j["metrics"][0]["external"]["target"] =
            serde_json::json!({"type": "Utilization", "averageUtilization": 50});
        let p = plan_in_tests(&spec(j)).expect("converted");
        assert_eq!(
            p.scaling.metrics[0].target,
            hpa::MetricTarget::Utilization(50)
        );
    }

    #[test]
    fn member_metrics_plans() {
        let mut j = base();
        j["metrics"] = serde_json::json!([
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps", "selector": {"matchLabels": {"a": "b"}}},
                "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "100"}}},
            {"type": "Object", "object": {"describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
                "metric": {"name": "requests_per_second"}, "target": {"type": "AverageValue", "averageValue": "50"}}}
        ]);
        let p = plan_in_tests(&spec(j)).expect("valid");
        assert_eq!(
            p.metrics[3],
            MetricPlan::Object {
                described: Target {
                    group: "networking.k8s.io".into(),
                    version: "v1".into(),
                    kind: "Ingress".into(),
                    name: "web".into()
                },
                name: "requests_per_second".into(),
                selector: None
            }
        );
        assert_eq!(
            p.scaling.metrics[3].target,
            hpa::MetricTarget::AverageValue(50.0)
        );
        let p = {
            let mut p = p;
            p.metrics.truncate(3);
            p
        };
        assert_eq!(
            p.metrics,
            vec![
                MetricPlan::Resource {
                    name: "cpu".into(),
                    utilization: true
                },
                MetricPlan::Pods {
                    name: "rps".into(),
                    selector: Some("a=b".into())
                },
                MetricPlan::External {
                    name: "queue".into(),
                    selector: None
                },
            ]
        );
        assert_eq!(p.scaling.metrics[2].target, hpa::MetricTarget::Value(100.0));
    }

    #[test]
    fn an_object_metric_needs_its_object() {
        let mut j = base();
        j["metrics"] = serde_json::json!([{"type": "Object"}]);
        let e = plan_in_tests(&spec(j)).expect_err("no object");
        assert!(
            e.message.contains("metrics[0].object is required"),
            "{}",
            e.message
        );
    }

    #[test]
    fn selectors_render_like_kubectl() {
        let s = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "y".into(),
                    operator: "Exists".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string("s", &s).expect("valid"),
            "app=web,tier in (a,b),!x,y"
        );
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(selector_string("s", &bad).is_err());
        let _ = Quantity("1".into());
    }
}
