//! CEL validation rules (`x-kubernetes-validations`) in the CRDs: the semantic checks the API
//! server runs at admission (Kubernetes 1.28 and later: the rules carry `fieldPath` and
//! `reason`), so `kubectl apply` refuses a bad object with a message naming the field. Older API
//! servers do not know them (the chart leaves them out there); the controllers make the same
//! checks on every version and report a failure as a status condition.
//!
//! Every rule that iterates a list or compares strings sits under a `maxItems`/`maxLength`, so
//! the API server's cost estimate stays within its budget.
use serde_json::{Map, Value, json};

/// The `reason` of a rule: how the API server classifies the failure. (Not
/// `FieldValueDuplicate`: the API server then prints `Duplicate value: "array"` and drops the
/// rule's message; a duplicate is reported as the default `FieldValueInvalid`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `FieldValueInvalid` (the API server's default).
    Invalid,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueRequired`.
    Required,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "FieldValueInvalid",
            Reason::Forbidden => "FieldValueForbidden",
            Reason::Required => "FieldValueRequired",
        }
    }
}

/// One rule, built with [`rule`].
#[derive(Clone, Debug)]
pub struct Rule(Map<String, Value>);

/// A rule with the message shown when it fails.
pub fn rule(cel: &str, message: &str) -> Rule {
    let mut map = Map::new();
    map.insert("rule".into(), cel.into());
    map.insert("message".into(), message.into());
    Rule(map)
}

impl Rule {
    /// The field the failure is reported on, relative to where the rule sits (`.minReplicas`).
    pub fn field(mut self, path: &str) -> Self {
        self.0.insert("fieldPath".into(), path.into());
        self
    }

    /// How the failure is classified.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.0.insert("reason".into(), reason.as_str().into());
        self
    }

    /// The rule as it appears in the CRD.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

/// The message of the rules that refuse a cluster named twice in one list.
pub const DUPLICATE_CLUSTER: &str = "must not name a cluster twice";

/// The first name that appears twice in `names`, if any (the controller's side of the rules
/// that names be unique).
pub fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

/// Appends `rules` to the schema's `x-kubernetes-validations`.
pub fn add_rules(schema: &mut schemars::Schema, rules: impl IntoIterator<Item = Rule>) {
    let object = schema.ensure_object();
    let list = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    if let Value::Array(list) = list {
        list.extend(rules.into_iter().map(|r| r.to_value()));
    }
}

/// Every rule in a schema: (where, the rule), `where` a JSON pointer into the schema.
pub fn rules_in(schema: &Value) -> Vec<(String, Value)> {
    fn walk(value: &Value, at: &str, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "x-kubernetes-validations"
                        && let Value::Array(rules) = child
                    {
                        out.extend(rules.iter().map(|r| (at.to_string(), r.clone())));
                    } else {
                        walk(child, &format!("{at}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the CRD for `kind`: (where in its schema, the rule).
    fn rules_of(kind: &str) -> Vec<(String, Value)> {
        let file = crate::crd_files()
            .into_iter()
            .find(|f| f.crd.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        let crd = serde_json::to_value(&file.crd).expect("CRD as JSON");
        let schema = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema")
            .expect("a schema");
        rules_in(schema)
    }

    /// The rule at `at` whose CEL contains `cel`.
    fn find<'a>(rules: &'a [(String, Value)], at: &str, cel: &str) -> &'a Value {
        rules
            .iter()
            .find(|(where_, r)| where_ == at && r["rule"].as_str().is_some_and(|s| s.contains(cel)))
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no rule containing {cel:?} at {at}; rules: {rules:#?}"))
    }

    const SPEC: &str = "/properties/spec/properties";

    #[test]
    fn propagated_kinds_carry_the_placement_and_override_rules() {
        for kind in [
            "FederatedObject",
            "ClusterFederatedObject",
            "FederatedIngress",
        ] {
            let rules = rules_of(kind);
            let clusters = find(
                &rules,
                &format!("{SPEC}/placement/properties/clusters"),
                "exists_one(y, y == x)",
            );
            assert_eq!(clusters["message"], DUPLICATE_CLUSTER);
            // The default reason, FieldValueInvalid: with FieldValueDuplicate the API server
            // would drop the message.
            assert!(clusters.get("reason").is_none(), "{clusters}");
            find(
                &rules,
                &format!("{SPEC}/placement/properties/failoverPriority/items/properties/clusters"),
                "exists_one(y, y == x)",
            );
            let overrides = find(
                &rules,
                &format!("{SPEC}/overrides"),
                "y.clusterName == x.clusterName",
            );
            assert!(
                overrides["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("one cluster")
            );
            let path = find(
                &rules,
                &format!("{SPEC}/overrides/items/properties/patches/items"),
                "self.path.startsWith(p)",
            );
            assert_eq!(path["fieldPath"], ".path");
            assert_eq!(path["reason"], "FieldValueForbidden");
            for forbidden in crate::overrides::FORBIDDEN_PATHS
                .iter()
                .chain(&crate::overrides::FORBIDDEN_EXACT_PATHS)
            {
                assert!(
                    path["rule"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&format!("'{forbidden}'")),
                    "{forbidden} is not in the rule"
                );
            }
            let tolerations =
                format!("{SPEC}/placement/properties/constraints/properties/tolerations/items");
            find(&rules, &tolerations, "self.operator == 'Exists' ||");
            find(&rules, &tolerations, "self.operator != 'Exists' ||");
        }
        // A FederatedObject's replica distribution, as a ScalingPolicy's.
        let rules = rules_of("FederatedObject");
        let distribution = format!("{SPEC}/replicas/properties/distribution/properties/clusters");
        find(&rules, &distribution, "y.name == x.name");
        find(
            &rules,
            &format!("{distribution}/items"),
            "self.minReplicas <= self.maxReplicas",
        );
    }

    #[test]
    fn scaling_policy_carries_bounds_metric_and_distribution_rules() {
        let rules = rules_of("ScalingPolicy");
        let bounds = find(
            &rules,
            "/properties/spec",
            "self.minReplicas <= self.maxReplicas",
        );
        assert_eq!(bounds["fieldPath"], ".minReplicas");
        assert_eq!(bounds["message"], "minReplicas must not exceed maxReplicas");
        find(&rules, "/properties/spec", "size(self.metrics) > 0");
        let metric = format!("{SPEC}/metrics/items");
        let exclusive = find(&rules, &metric, "(has(self.resource) ? 1 : 0)");
        assert!(
            exclusive["message"]
                .as_str()
                .unwrap_or_default()
                .contains("mutually exclusive")
        );
        for source in ["resource", "pods", "external", "object"] {
            find(&rules, &metric, &format!("has(self.{source})"));
        }
        find(
            &rules,
            &format!("{SPEC}/distribution/properties/clusters"),
            "y.name == x.name",
        );
        find(
            &rules,
            &format!("{SPEC}/distribution/properties/clusters/items"),
            "self.minReplicas <= self.maxReplicas",
        );
        find(
            &rules,
            &format!("{SPEC}/targetRef"),
            "self.apiVersion.matches(",
        );
        find(
            &rules,
            &format!("{SPEC}/placement/properties/clusters"),
            "exists_one(y, y == x)",
        );
    }

    #[test]
    fn policies_refuse_flotillas_own_kinds() {
        for kind in ["PropagationPolicy", "ClusterPropagationPolicy"] {
            let rules = rules_of(kind);
            let own = find(
                &rules,
                &format!("{SPEC}/resourceSelectors/items"),
                "federation.flotilla.dev/",
            );
            assert_eq!(own["fieldPath"], ".apiVersion");
            assert!(
                own["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(crate::GROUP)
            );
        }
    }

    /// Each rule has a message (no multi-line CEL, no "failed rule: ..." default), its
    /// `fieldPath` is relative, and a rule that walks a list or a string sits where the schema
    /// bounds it: the API server refuses a CRD whose estimated cost is over budget.
    #[test]
    fn every_rule_has_a_message_and_a_bounded_cost() {
        for file in crate::crd_files() {
            let crd = serde_json::to_value(&file.crd).expect("CRD as JSON");
            let schema = crd
                .pointer("/spec/versions/0/schema/openAPIV3Schema")
                .expect("a schema");
            for (at, rule) in rules_in(schema) {
                let cel = rule["rule"].as_str().expect("a rule");
                let message = rule["message"].as_str().unwrap_or_default();
                assert!(
                    !message.is_empty() && !message.contains('\n'),
                    "{at}: {rule}"
                );
                if let Some(path) = rule.get("fieldPath") {
                    assert!(
                        path.as_str().is_some_and(|p| p.starts_with('.')),
                        "{at}: {rule}"
                    );
                }
                let here = schema.pointer(&at).expect("the rule's schema");
                if cel.contains("self.all(") {
                    assert!(
                        here.get("maxItems").is_some(),
                        "{at}: a list rule without maxItems"
                    );
                    let items = &here["items"];
                    if items["type"] == "string" {
                        assert!(
                            items.get("maxLength").is_some(),
                            "{at}: items without maxLength"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn first_duplicate_finds_the_repeated_name() {
        assert_eq!(first_duplicate(["a", "b", "a"]), Some("a"));
        assert_eq!(first_duplicate(["a", "b"]), None);
        assert_eq!(first_duplicate([]), None);
    }
}
