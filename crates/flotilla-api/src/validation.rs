//! CEL validation rules (`x-kubernetes-validations`) in the CRDs: the semantic checks the API
//! server runs at admission (Kubernetes 1.28 and later: the rules carry `fieldPath` and
//! `reason`), so `kubectl apply` refuses a bad object with a message naming the field. Older API
//! servers do not know them (the chart leaves them out there); the controllers make the same
//! checks on every version and report a failure as a status condition.
//!
//! Every rule that iterates a list or compares strings sits under a `maxItems`/`maxLength`, so
//! the API server's cost estimate stays within its budget.
use serde_json::{Map, Value, json};

/// The `reason` of a rule: how the API server classifies the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `FieldValueInvalid` (the API server's default).
    Invalid,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "FieldValueInvalid",
            Reason::Forbidden => "FieldValueForbidden",
            Reason::Required => "FieldValueRequired",
            Reason::Duplicate => "FieldValueDuplicate",
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
