//! From the policies and the host objects to the status records that should exist: which policy
//! propagates each object (priority, then specificity), what each record says, and what every
//! policy reports. Pure: the runtime lists, this decides, the runtime applies the difference.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use flotilla_api::federated_object::{CLUSTER_KIND, KIND as OBJECT_KIND};
use flotilla_api::propagation_policy::{OverriddenObject, PolicySpec, ResourceSelector};

use super::dependencies;
use crate::allowlist::Allowlist;
use crate::propagation::server_fields;

/// Label on every record a policy generated (how the runtime finds them).
pub const GENERATED_BY: &str = "federation.flotilla.dev/generated-by";
pub const GENERATED_BY_VALUE: &str = "policy";
/// Annotation naming the policy that propagates a record's object.
pub const POLICY_ANNOTATION: &str = "federation.flotilla.dev/policy";
/// Annotation naming the object a record was generated from.
pub const SOURCE_ANNOTATION: &str = "federation.flotilla.dev/source";
/// Label on records of dependencies (propagated because another object needs them).
pub const DEPENDENCY_LABEL: &str = "federation.flotilla.dev/dependency";
/// Annotation on a record listing the dependencies propagated with its object
/// (`Kind name, …`), and those it references that do not exist on the host (`missing: …`).
pub const DEPENDENCIES_ANNOTATION: &str = "federation.flotilla.dev/dependencies";

/// A policy as the plan reads it.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// `PropagationPolicy` or `ClusterPropagationPolicy`.
    pub kind: &'static str,
    /// The namespace of a PropagationPolicy.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub spec: &'a PolicySpec,
}

impl Policy<'_> {
    pub fn id(&self) -> String {
        match self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
    fn namespaced(&self) -> bool {
        self.namespace.is_some()
    }
}

/// A host object of a selected kind.
#[derive(Debug, Clone)]
pub struct HostObject<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub value: &'a Value,
}

impl HostObject<'_> {
    fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
    fn text(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }
    fn name(&self) -> &str {
        self.text("/metadata/name").unwrap_or_default()
    }
    fn namespace(&self) -> Option<&str> {
        self.text("/metadata/namespace").filter(|n| !n.is_empty())
    }
    fn labels(&self) -> BTreeMap<String, String> {
        self.value
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default()
    }
    fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {} {ns}/{}", self.api_version, self.kind, self.name()),
            None => format!("{} {} {}", self.api_version, self.kind, self.name()),
        }
    }
}

/// One record that should exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `FederatedObject` or `ClusterFederatedObject`.
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    /// The whole record, ready to apply.
    pub object: Value,
    /// The policy that propagates it ([`Policy::id`]).
    pub policy: String,
}

/// What one policy reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub matched: i64,
    pub overridden: Vec<OverriddenObject>,
    /// (reason, message) when the policy is invalid; it then propagates nothing.
    pub invalid: Option<(&'static str, String)>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub records: Vec<Record>,
    /// By [`Policy::id`].
    pub outcomes: HashMap<String, Outcome>,
}

/// At most this many overridden objects are listed in a policy's status.
const OVERRIDDEN_MAX: usize = 20;

/// Why a policy is invalid, if it is.
pub fn validate(policy: &Policy, allow: &Allowlist) -> Option<(&'static str, String)> {
    if policy.spec.resource_selectors.is_empty() {
        return Some(("InvalidSelector", "resourceSelectors is empty".into()));
    }
    for (i, s) in policy.spec.resource_selectors.iter().enumerate() {
        let group = s.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if s.api_version.matches('/').count() > 1 || s.api_version.ends_with('/') {
            return Some((
                "InvalidSelector",
                format!(
                    "resourceSelectors[{i}].apiVersion {:?} is not group/version or version",
                    s.api_version
                ),
            ));
        }
        if group == flotilla_api::GROUP {
            return Some((
                "InvalidSelector",
                format!(
                    "resourceSelectors[{i}]: Flotilla's own kinds are not propagated by policies"
                ),
            ));
        }
        if !allow.allows(group, &s.kind) {
            return Some((
                "KindNotAllowed",
                format!("resourceSelectors[{i}]: {}", allow.refusal(group, &s.kind)),
            ));
        }
        if let (Some(own), Some(ns)) = (policy.namespace, s.namespace.as_deref())
            && own != ns
        {
            return Some((
                "InvalidSelector",
                format!(
                    "resourceSelectors[{i}].namespace {ns:?}: a PropagationPolicy selects in its own namespace ({own:?}) only"
                ),
            ));
        }
        if let Some(sel) = &s.label_selector
            && let Err(e) = crate::placement_input::selector(
                &format!("resourceSelectors[{i}].labelSelector"),
                sel,
            )
        {
            return Some(("InvalidSelector", e));
        }
    }
    None
}

/// How specifically `s` matches `obj` (2: by name, 1: by labels, 0: by kind), or `None`.
fn specificity(policy: &Policy, s: &ResourceSelector, obj: &HostObject) -> Option<u8> {
    let group = s.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if group != obj.group() || s.kind != obj.kind {
        return None;
    }
    match (policy.namespace, obj.namespace()) {
        // A PropagationPolicy selects in its own namespace only, never cluster-scoped objects.
        (Some(own), Some(ns)) if own != ns => return None,
        (Some(_), None) => return None,
        _ => {}
    }
    if let Some(ns) = s.namespace.as_deref()
        && obj.namespace() != Some(ns)
    {
        return None;
    }
    if let Some(name) = s.name.as_deref()
        && name != obj.name()
    {
        return None;
    }
    if let Some(sel) = &s.label_selector {
        let sel = crate::placement_input::selector("labelSelector", sel).ok()?;
        if !sel.matches(&obj.labels()) {
            return None;
        }
    }
    Some(if s.name.is_some() {
        2
    } else if s.label_selector.is_some() {
        1
    } else {
        0
    })
}

/// The rank of a policy's claim: higher wins.
type Rank = (i32, u8, bool, std::cmp::Reverse<String>);

fn rank(policy: &Policy, specificity: u8) -> Rank {
    (
        policy.spec.priority,
        specificity,
        policy.namespaced(),
        std::cmp::Reverse(policy.id()),
    )
}

fn why(winner: &Rank, loser: &Rank) -> String {
    if winner.0 != loser.0 {
        format!("higher priority ({} over {})", winner.0, loser.0)
    } else if winner.1 != loser.1 {
        "a more specific selector".into()
    } else if winner.2 != loser.2 {
        "a PropagationPolicy is preferred to a ClusterPropagationPolicy".into()
    } else {
        "equal priority and specificity: the first by name".into()
    }
}

/// The records that should exist, and what each policy reports.
pub fn plan(policies: &[Policy], objects: &[HostObject], allow: &Allowlist) -> Plan {
    let mut plan = Plan::default();
    let valid: Vec<&Policy> = policies
        .iter()
        .filter(|p| {
            let invalid = validate(p, allow);
            let ok = invalid.is_none();
            plan.outcomes.insert(
                p.id(),
                Outcome {
                    invalid,
                    ..Outcome::default()
                },
            );
            ok
        })
        .collect();

    // Direct claims.
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut winners: Vec<(usize, &Policy)> = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        let mut claims: Vec<(Rank, &Policy)> = valid
            .iter()
            .filter_map(|p| {
                let best = p
                    .spec
                    .resource_selectors
                    .iter()
                    .filter_map(|s| specificity(p, s, obj))
                    .max()?;
                Some((rank(p, best), *p))
            })
            .collect();
        claims.sort_by(|a, b| b.0.cmp(&a.0));
        let Some((top, winner)) = claims.first() else {
            continue;
        };
        for (r, loser) in &claims[1..] {
            let outcome = plan.outcomes.entry(loser.id()).or_default();
            if outcome.overridden.len() < OVERRIDDEN_MAX {
                outcome.overridden.push(OverriddenObject {
                    api_version: obj.api_version.to_string(),
                    kind: obj.kind.to_string(),
                    namespace: obj.namespace().map(str::to_string),
                    name: obj.name().to_string(),
                    claimed_by: winner.id(),
                    reason: why(top, r),
                });
            }
        }
        claimed.insert(i);
        winners.push((i, winner));
    }

    // Dependencies, for the best-ranked policy that needs each and is not already claimed.
    // Looked up by key: every pass plans every object, so no scan per reference.
    let index: HashMap<_, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (key(o), i))
        .collect();
    let mut dependencies: BTreeMap<usize, &Policy> = BTreeMap::new();
    let mut needs: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, policy) in &winners {
        if !policy.spec.propagate_dependencies {
            continue;
        }
        let obj = &objects[*i];
        for dep in dependencies::of(obj.kind, obj.value) {
            let k = (
                dependencies::api_version(dep.kind).to_string(),
                dep.kind.to_string(),
                obj.namespace().map(str::to_string),
                dep.name.clone(),
            );
            let found = index.get(&k).copied();
            needs.entry(*i).or_default().push(match found {
                Some(_) => format!("{} {}", dep.kind, dep.name),
                None => format!("missing: {} {}", dep.kind, dep.name),
            });
            let Some(j) = found else {
                continue;
            };
            if claimed.contains(&j) {
                continue;
            }
            let better = dependencies
                .get(&j)
                .is_none_or(|other| rank(policy, 0) > rank(other, 0));
            if better {
                dependencies.insert(j, policy);
            }
        }
    }

    for (i, policy) in winners {
        let mut r = record(&objects[i], policy, false);
        if let Some(list) = needs.get(&i) {
            r.object["metadata"]["annotations"][DEPENDENCIES_ANNOTATION] = list.join(", ").into();
        }
        plan.records.push(r);
    }
    for (j, policy) in dependencies {
        plan.records.push(record(&objects[j], policy, true));
    }
    for r in &plan.records {
        plan.outcomes.entry(r.policy.clone()).or_default().matched += 1;
    }
    plan
}

fn key(obj: &HostObject) -> (String, String, Option<String>, String) {
    (
        obj.api_version.to_string(),
        obj.kind.to_string(),
        obj.namespace().map(str::to_string),
        obj.name().to_string(),
    )
}

/// The record's name: the object's name and kind, which stays unique when a Deployment and a
/// Service share a name. Kept to 253 characters.
pub fn record_name(name: &str, kind: &str) -> String {
    let full = format!("{name}-{}", kind.to_ascii_lowercase());
    if full.len() <= 253 {
        return full;
    }
    let hash = full.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}-{hash:016x}", &full[..236])
}

fn record(obj: &HostObject, policy: &Policy, dependency: bool) -> Record {
    let mut template = obj.value.clone();
    if let Some(t) = template.as_object_mut() {
        t.insert("apiVersion".into(), obj.api_version.into());
        t.insert("kind".into(), obj.kind.into());
        let mut metadata = Map::new();
        metadata.insert("name".into(), obj.name().into());
        for k in ["labels", "annotations"] {
            if let Some(v) = obj.value.pointer(&format!("/metadata/{k}")) {
                metadata.insert(k.into(), v.clone());
            }
        }
        t.insert("metadata".into(), Value::Object(metadata));
    }
    server_fields::strip(&mut template);
    let mut spec = serde_json::to_value(&policy.spec.propagation).unwrap_or_else(|_| json!({}));
    spec["template"] = template;
    if !dependency && let Some(r) = &policy.spec.replicas {
        spec["replicas"] = serde_json::to_value(r).unwrap_or(Value::Null);
    }
    let namespace = obj.namespace().map(str::to_string);
    let kind = if namespace.is_some() {
        OBJECT_KIND
    } else {
        CLUSTER_KIND
    };
    let name = record_name(obj.name(), obj.kind);
    let mut labels = json!({GENERATED_BY: GENERATED_BY_VALUE});
    if dependency {
        labels[DEPENDENCY_LABEL] = "true".into();
    }
    let mut metadata = json!({
        "name": name,
        "labels": labels,
        "annotations": {POLICY_ANNOTATION: policy.id(), SOURCE_ANNOTATION: obj.describe()},
        "ownerReferences": [{
            "apiVersion": obj.api_version, "kind": obj.kind, "name": obj.name(),
            "uid": obj.text("/metadata/uid").unwrap_or_default(),
            "controller": false, "blockOwnerDeletion": false,
        }],
        // Born with the engine's finalizer: the engine would add it anyway as it applies the
        // first copies, one more host write per record (about a fifth of a policy burst's host
        // writes). The engine removes it by value when the copies are cleaned up, whoever set it.
        "finalizers": [crate::finalizer::FINALIZER],
    });
    if let Some(ns) = &namespace {
        metadata["namespace"] = ns.clone().into();
    }
    Record {
        kind,
        namespace,
        name,
        object: json!({
            "apiVersion": format!("{}/{}", flotilla_api::GROUP, flotilla_api::VERSION),
            "kind": kind,
            "metadata": metadata,
            "spec": spec,
        }),
        policy: policy.id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> PolicySpec {
        serde_json::from_value(v).expect("valid policy spec")
    }

    fn obj(api_version: &str, kind: &str, ns: Option<&str>, name: &str, labels: Value) -> Value {
        let mut metadata = json!({"name": name, "uid": format!("uid-{name}"), "labels": labels,
            "resourceVersion": "5", "managedFields": [{}]});
        if let Some(ns) = ns {
            metadata["namespace"] = ns.into();
        }
        json!({"metadata": metadata, "spec": {"x": 1}, "status": {"y": 2}, "apiVersion": api_version, "kind": kind})
    }

    fn host<'a>(values: &'a [Value]) -> Vec<HostObject<'a>> {
        values
            .iter()
            .map(|v| HostObject {
                api_version: v["apiVersion"].as_str().unwrap_or_default(),
                kind: v["kind"].as_str().unwrap_or_default(),
                value: v,
            })
            .collect()
    }

    fn allow() -> Allowlist {
        Allowlist::default()
    }

    #[test]
    fn a_matching_object_gets_a_record_owned_by_it_without_server_fields() {
        let s = spec(
            json!({"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "placement": {"clusters": ["member1"]}, "replicas": {"mode": "Divided"}}),
        );
        let p = Policy {
            kind: "PropagationPolicy",
            namespace: Some("shop"),
            name: "web",
            spec: &s,
        };
        let values = [
            obj(
                "apps/v1",
                "Deployment",
                Some("shop"),
                "web",
                json!({"app": "web"}),
            ),
            obj(
                "apps/v1",
                "Deployment",
                Some("other"),
                "elsewhere",
                json!({}),
            ),
            obj("v1", "ConfigMap", Some("shop"), "conf", json!({})),
        ];
        let plan = plan(&[p], &host(&values), &allow());
        assert_eq!(plan.records.len(), 1);
        let r = &plan.records[0];
        assert_eq!(
            (r.kind, r.name.as_str(), r.namespace.as_deref()),
            ("FederatedObject", "web-deployment", Some("shop"))
        );
        assert_eq!(r.object["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(
            r.object["metadata"]["finalizers"],
            json!([crate::finalizer::FINALIZER])
        );
        assert_eq!(r.object["metadata"]["labels"][GENERATED_BY], "policy");
        assert_eq!(
            r.object["spec"]["template"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"x": 1}})
        );
        assert_eq!(
            r.object["spec"]["placement"]["clusters"],
            json!(["member1"])
        );
        assert_eq!(r.object["spec"]["replicas"]["mode"], "Divided");
        assert_eq!(plan.outcomes["PropagationPolicy shop/web"].matched, 1);
    }

    #[test]
    fn the_higher_priority_then_the_more_specific_selector_wins_and_the_loser_says_why() {
        let broad = spec(
            json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}], "priority": 5}),
        );
        let named = spec(
            json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "conf"}]}),
        );
        let cluster = spec(
            json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "conf"}]}),
        );
        let policies = [
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "broad",
                spec: &broad,
            },
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "named",
                spec: &named,
            },
            Policy {
                kind: "ClusterPropagationPolicy",
                namespace: None,
                name: "all",
                spec: &cluster,
            },
        ];
        let values = [obj("v1", "ConfigMap", Some("shop"), "conf", json!({}))];
        let plan = plan(&policies, &host(&values), &allow());
        assert_eq!(plan.records[0].policy, "PropagationPolicy shop/broad");
        let named = &plan.outcomes["PropagationPolicy shop/named"];
        assert_eq!(named.matched, 0);
        assert_eq!(
            named.overridden[0].claimed_by,
            "PropagationPolicy shop/broad"
        );
        assert_eq!(named.overridden[0].reason, "higher priority (5 over 0)");

        // Equal priority: the name selector beats the kind selector; a PP beats a CPP.
        let broad0 =
            spec(json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}]}));
        let policies = [
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "broad",
                spec: &broad0,
            },
            Policy {
                kind: "ClusterPropagationPolicy",
                namespace: None,
                name: "all",
                spec: &cluster,
            },
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "named",
                spec: &named_spec(),
            },
        ];
        let plan = super::plan(&policies, &host(&values), &allow());
        assert_eq!(plan.records[0].policy, "PropagationPolicy shop/named");
        assert_eq!(
            plan.outcomes["PropagationPolicy shop/broad"].overridden[0].reason,
            "a more specific selector"
        );
        assert_eq!(
            plan.outcomes["ClusterPropagationPolicy all"].overridden[0].reason,
            "a PropagationPolicy is preferred to a ClusterPropagationPolicy"
        );
    }

    fn named_spec() -> PolicySpec {
        spec(
            json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "conf"}]}),
        )
    }

    #[test]
    fn labels_and_namespaces_narrow_a_cluster_policy_and_cluster_scoped_objects_get_cluster_records()
     {
        let s = spec(json!({"resourceSelectors": [
            {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "labelSelector": {"matchLabels": {"tier": "web"}}},
            {"apiVersion": "v1", "kind": "Namespace", "name": "shop"}]}));
        let p = Policy {
            kind: "ClusterPropagationPolicy",
            namespace: None,
            name: "c",
            spec: &s,
        };
        let values = [
            obj(
                "v1",
                "ConfigMap",
                Some("shop"),
                "yes",
                json!({"tier": "web"}),
            ),
            obj("v1", "ConfigMap", Some("shop"), "no", json!({"tier": "db"})),
            obj(
                "v1",
                "ConfigMap",
                Some("other"),
                "elsewhere",
                json!({"tier": "web"}),
            ),
            obj("v1", "Namespace", None, "shop", json!({})),
        ];
        let plan = plan(&[p], &host(&values), &allow());
        let names: Vec<_> = plan
            .records
            .iter()
            .map(|r| (r.kind, r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("FederatedObject", "yes-configmap"),
                ("ClusterFederatedObject", "shop-namespace")
            ]
        );
        assert!(
            plan.records[1].object["metadata"]
                .get("namespace")
                .is_none()
        );
    }

    #[test]
    fn dependencies_follow_their_dependant_unless_a_policy_claims_them() {
        let s = spec(
            json!({"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "propagateDependencies": true, "replicas": {"mode": "Divided"}}),
        );
        let own = spec(
            json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "Secret", "name": "keys"}]}),
        );
        let policies = [
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "app",
                spec: &s,
            },
            Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "secrets",
                spec: &own,
            },
        ];
        let mut d = obj("apps/v1", "Deployment", Some("shop"), "web", json!({}));
        d["spec"] = json!({"template": {"spec": {"containers": [{"envFrom": [
            {"configMapRef": {"name": "conf"}}, {"secretRef": {"name": "keys"}}, {"configMapRef": {"name": "missing"}}]}]}}});
        let values = [
            d,
            obj("v1", "ConfigMap", Some("shop"), "conf", json!({})),
            obj("v1", "Secret", Some("shop"), "keys", json!({})),
        ];
        let allow = Allowlist::parse(&format!(
            "{},Secret",
            crate::allowlist::default_kinds_text()
        ))
        .expect("valid");
        let plan = plan(&policies, &host(&values), &allow);
        let mut records: Vec<_> = plan
            .records
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.policy.as_str(),
                    r.object["metadata"]["labels"]
                        .get(DEPENDENCY_LABEL)
                        .is_some(),
                )
            })
            .collect();
        records.sort();
        assert_eq!(
            records,
            [
                ("conf-configmap", "PropagationPolicy shop/app", true),
                ("keys-secret", "PropagationPolicy shop/secrets", false),
                ("web-deployment", "PropagationPolicy shop/app", false),
            ]
        );
        let conf = plan
            .records
            .iter()
            .find(|r| r.name == "conf-configmap")
            .expect("record");
        assert!(
            conf.object["spec"].get("replicas").is_none(),
            "a ConfigMap is never divided"
        );
        let web = plan
            .records
            .iter()
            .find(|r| r.name == "web-deployment")
            .expect("record");
        assert_eq!(
            web.object["metadata"]["annotations"][DEPENDENCIES_ANNOTATION],
            "ConfigMap conf, missing: ConfigMap missing, Secret keys"
        );
    }

    #[test]
    fn invalid_policies_propagate_nothing_and_say_why() {
        let cases = [
            (json!({"resourceSelectors": []}), "InvalidSelector"),
            (
                json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "Secret"}]}),
                "KindNotAllowed",
            ),
            (
                json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "other"}]}),
                "InvalidSelector",
            ),
            (
                json!({"resourceSelectors": [{"apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedObject"}]}),
                "InvalidSelector",
            ),
            (
                json!({"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap",
                "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]}),
                "InvalidSelector",
            ),
        ];
        let values = [
            obj("v1", "ConfigMap", Some("shop"), "conf", json!({})),
            obj("v1", "Secret", Some("shop"), "s", json!({})),
        ];
        for (s, reason) in cases {
            let s = spec(s);
            let p = Policy {
                kind: "PropagationPolicy",
                namespace: Some("shop"),
                name: "p",
                spec: &s,
            };
            let plan = plan(&[p], &host(&values), &allow());
            assert!(plan.records.is_empty());
            assert_eq!(
                plan.outcomes["PropagationPolicy shop/p"]
                    .invalid
                    .as_ref()
                    .map(|i| i.0),
                Some(reason)
            );
        }
    }

    #[test]
    fn long_record_names_stay_valid_and_distinct() {
        let a = record_name(&"a".repeat(250), "Deployment");
        let b = record_name(&format!("{}b", "a".repeat(249)), "Deployment");
        assert!(a.len() <= 253 && b.len() <= 253);
        assert_ne!(a, b);
        assert_eq!(record_name("web", "Service"), "web-service");
    }
}
