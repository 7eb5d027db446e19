//! Which host namespaces may place objects into a member (`MemberCluster.spec.namespaces`).
//!
//! Rights in one host namespace must not become rights in every member: a member may admit only
//! some host namespaces, by name or by the namespace's labels. Objects of other namespaces are
//! filtered out of it (`NamespaceNotAllowed`), before any other check.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::selector::LabelSelector;

/// What a member admits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NamespaceAccess {
    /// Every host namespace (no `spec.namespaces`).
    #[default]
    All,
    /// Only these. Shared: one rule per member, read by every decision.
    Only(Arc<NamespaceRule>),
}

/// A namespace is admitted when it is listed or its labels match the selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceRule {
    pub names: BTreeSet<String>,
    pub selector: Option<LabelSelector>,
}

/// The host namespace of the object being placed.
#[derive(Clone, Copy, Debug)]
pub struct ObjectNamespace<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl NamespaceAccess {
    /// Whether objects of `namespace` may be placed in the member.
    pub fn admits(&self, namespace: &ObjectNamespace<'_>) -> bool {
        match self {
            Self::All => true,
            Self::Only(rule) => {
                rule.names.contains(namespace.name)
                    || rule
                        .selector
                        .as_ref()
                        .is_some_and(|s| s.matches(namespace.labels))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::LabelSelector;

    fn ns<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> ObjectNamespace<'a> {
        ObjectNamespace { name, labels }
    }

    #[test]
    fn names_and_selectors_admit_and_nothing_else_does() {
        let none = BTreeMap::new();
        let team = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        let rule = NamespaceAccess::Only(Arc::new(NamespaceRule {
            names: BTreeSet::from(["shop".to_string()]),
            selector: Some(LabelSelector::from_labels([("team", "payments")])),
        }));
        assert!(rule.admits(&ns("shop", &none)));
        assert!(rule.admits(&ns("billing", &team)));
        assert!(!rule.admits(&ns("other", &none)));
        assert!(NamespaceAccess::All.admits(&ns("other", &none)));
        // Present but empty: nothing is admitted.
        let nothing = NamespaceAccess::Only(Arc::new(NamespaceRule::default()));
        assert!(!nothing.admits(&ns("shop", &team)));
    }
}
