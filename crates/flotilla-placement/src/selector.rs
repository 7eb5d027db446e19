//! Label selectors over member-cluster labels, with Kubernetes `metav1.LabelSelector` semantics.
//!
//! The engine keeps its own copy of the type so that it does not depend on k8s-openapi; the
//! controller converts. Operators arrive as strings from the API, so parsing an operator and
//! checking an operator/values combination are fallible and report a [`SelectorError`] that the
//! controller can turn into a status condition, instead of panicking or silently matching.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Selects clusters by their labels. Every `match_labels` entry and every expression must hold.
/// An empty selector (no labels, no expressions) matches every cluster, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Each key must be present with exactly this value.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelectorRequirement {
    /// The label key the requirement applies to.
    pub key: String,
    /// How the key's value relates to `values`.
    pub operator: SelectorOperator,
    /// Values for `In` and `NotIn` (must be non-empty); must be empty for `Exists` and
    /// `DoesNotExist`.
    pub values: Vec<String>,
}

/// A set-based selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or present with a value not in `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// Why a label selector is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator string is not one of `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[error("unknown label selector operator {0:?} (expected In, NotIn, Exists or DoesNotExist)")]
    UnknownOperator(String),
    /// A requirement or `matchLabels` entry has an empty key.
    #[error("label selector has an empty key")]
    EmptyKey,
    /// `In` or `NotIn` without values can never be meaningful.
    #[error("label selector requirement on {key:?}: operator {operator} needs at least one value")]
    MissingValues {
        /// The requirement's key.
        key: String,
        /// The requirement's operator.
        operator: SelectorOperator,
    },
    /// `Exists` or `DoesNotExist` with values is ambiguous.
    #[error("label selector requirement on {key:?}: operator {operator} takes no values")]
    UnexpectedValues {
        /// The requirement's key.
        key: String,
        /// The requirement's operator.
        operator: SelectorOperator,
    },
}

impl SelectorOperator {
    /// The operator's name as written in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }
}

impl fmt::Display for SelectorOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SelectorOperator {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "In" => Ok(Self::In),
            "NotIn" => Ok(Self::NotIn),
            "Exists" => Ok(Self::Exists),
            "DoesNotExist" => Ok(Self::DoesNotExist),
            other => Err(SelectorError::UnknownOperator(other.to_owned())),
        }
    }
}

/// The value of label `key`. Clusters carry a handful of labels, and for so few a linear scan
/// that compares lengths before bytes beats the B-tree's ordered comparisons, which showed as
/// the top cost of a 5,000-cluster decision; larger maps use the B-tree.
pub(crate) fn label<'l>(labels: &'l BTreeMap<String, String>, key: &str) -> Option<&'l str> {
    const SCAN_UP_TO: usize = 16;
    if labels.len() <= SCAN_UP_TO {
        labels
            .iter()
            .find(|(k, _)| same(k, key))
            .map(|(_, v)| v.as_str())
    } else {
        labels.get(key).map(String::as_str)
    }
}

/// String equality for short label keys and values, inline and eight bytes at a time: a call
/// to the C library's `memcmp` per comparison was a fifth of a 5,000-cluster decision.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(<[u8; 8]>::try_from(c).unwrap_or_default());
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if word(p) != word(q) {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

impl LabelSelectorRequirement {
    /// Checks the operator/values combination.
    pub fn validate(&self) -> Result<(), SelectorError> {
        if self.key.is_empty() {
            return Err(SelectorError::EmptyKey);
        }
        match self.operator {
            SelectorOperator::In | SelectorOperator::NotIn if self.values.is_empty() => {
                Err(SelectorError::MissingValues {
                    key: self.key.clone(),
                    operator: self.operator,
                })
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist
                if !self.values.is_empty() =>
            {
                Err(SelectorError::UnexpectedValues {
                    key: self.key.clone(),
                    operator: self.operator,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether `labels` satisfy this requirement. Assumes a validated requirement; an invalid
    /// one still evaluates without panicking (`In` with no values matches nothing).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = label(labels, &self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|x| same(x, v))),
            SelectorOperator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| same(x, v)))
            }
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// A selector requiring exactly these labels.
    pub fn from_labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            match_labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Adds a set-based requirement (builder style, for tests and the controller's conversion).
    pub fn with_expression(
        mut self,
        key: impl Into<String>,
        operator: SelectorOperator,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.match_expressions.push(LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Checks every requirement; returns the first problem found.
    pub fn validate(&self) -> Result<(), SelectorError> {
        if self.match_labels.keys().any(String::is_empty) {
            return Err(SelectorError::EmptyKey);
        }
        self.match_expressions
            .iter()
            .try_for_each(LabelSelectorRequirement::validate)
    }

    /// Whether `labels` satisfy every `match_labels` entry and every expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| label(labels, k).is_some_and(|found| same(found, v)))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_require_exact_values() {
        let s = LabelSelector::from_labels([("region", "eu")]);
        assert!(s.matches(&labels(&[("region", "eu"), ("zone", "a")])));
        assert!(!s.matches(&labels(&[("region", "us")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn each_operator_follows_kubernetes_semantics() {
        let eu = labels(&[("region", "eu")]);
        let us = labels(&[("region", "us")]);
        let none = labels(&[]);
        let in_ = LabelSelector::default().with_expression("region", SelectorOperator::In, ["eu"]);
        let not_in =
            LabelSelector::default().with_expression("region", SelectorOperator::NotIn, ["eu"]);
        let exists = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::Exists,
            Vec::<String>::new(),
        );
        let absent = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::DoesNotExist,
            Vec::<String>::new(),
        );
        assert_eq!(
            [in_.matches(&eu), in_.matches(&us), in_.matches(&none)],
            [true, false, false]
        );
        assert_eq!(
            [
                not_in.matches(&eu),
                not_in.matches(&us),
                not_in.matches(&none)
            ],
            [false, true, true]
        );
        assert_eq!(
            [
                exists.matches(&eu),
                exists.matches(&us),
                exists.matches(&none)
            ],
            [true, true, false]
        );
        assert_eq!(
            [
                absent.matches(&eu),
                absent.matches(&us),
                absent.matches(&none)
            ],
            [false, false, true]
        );
    }

    #[test]
    fn invalid_combinations_are_errors() {
        let no_values = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::In,
            Vec::<String>::new(),
        );
        assert!(matches!(
            no_values.validate(),
            Err(SelectorError::MissingValues { .. })
        ));
        let not_in_no_values = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::NotIn,
            Vec::<String>::new(),
        );
        assert!(not_in_no_values.validate().is_err());
        let exists_values =
            LabelSelector::default().with_expression("region", SelectorOperator::Exists, ["eu"]);
        assert!(matches!(
            exists_values.validate(),
            Err(SelectorError::UnexpectedValues { .. })
        ));
        let absent_values = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::DoesNotExist,
            ["eu"],
        );
        assert!(absent_values.validate().is_err());
        let empty_key = LabelSelector::from_labels([("", "x")]);
        assert_eq!(empty_key.validate(), Err(SelectorError::EmptyKey));
        // Evaluating an invalid selector must not panic.
        assert!(!no_values.matches(&labels(&[("region", "eu")])));
    }

    #[test]
    fn same_compares_whole_strings() {
        let long = "topology.kubernetes.io/region";
        let copy = String::from(long);
        assert!(same(long, copy.as_str()));
        assert!(!same(long, "topology.kubernetes.io/regioN"));
        assert!(!same(long, "Topology.kubernetes.io/region"));
        assert!(!same("abc", "abcd"));
        assert!(same("", ""));
        assert!(!same("eu-west1", "eu-west2"));
    }

    #[test]
    fn operators_parse_from_api_strings() {
        assert_eq!("NotIn".parse(), Ok(SelectorOperator::NotIn));
        assert_eq!(
            "Gt".parse::<SelectorOperator>(),
            Err(SelectorError::UnknownOperator("Gt".into()))
        );
    }
}
