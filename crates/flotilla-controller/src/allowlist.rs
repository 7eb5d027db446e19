//! The kinds Flotilla may federate: the operator's `--federated-kinds`, the chart's
//! `federatedKinds` and `flotilla join --kinds` all read this list, so the RBAC Flotilla asks
//! for in members and the kinds it accepts are the same. Secrets, RBAC kinds and CRDs are
//! federated only when listed explicitly. Pure.
use std::fmt;
use std::str::FromStr;

/// A kind and its API group, written `Kind.group` (`Kind` alone for the core group), as in
/// `Deployment.apps` or `ConfigMap`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindRef {
    pub kind: String,
    pub group: String,
}

impl FromStr for KindRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (kind, group) = s.split_once('.').unwrap_or((s, ""));
        let valid_kind = kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_kind || group.contains(['/', ' ', '*']) {
            return Err(format!(
                "{s:?} is not a kind: write Kind.group (Deployment.apps) or Kind for the core group (ConfigMap)"
            ));
        }
        Ok(Self {
            kind: kind.into(),
            group: group.into(),
        })
    }
}

impl fmt::Display for KindRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// The default allowlist: the common application kinds, with their plurals (for RBAC).
pub const DEFAULT_KINDS: [(&str, &str, &str); 13] = [
    ("Deployment", "apps", "deployments"),
    ("StatefulSet", "apps", "statefulsets"),
    ("DaemonSet", "apps", "daemonsets"),
    ("Job", "batch", "jobs"),
    ("CronJob", "batch", "cronjobs"),
    ("Service", "", "services"),
    ("ConfigMap", "", "configmaps"),
    ("Ingress", "networking.k8s.io", "ingresses"),
    (
        "HorizontalPodAutoscaler",
        "autoscaling",
        "horizontalpodautoscalers",
    ),
    ("PodDisruptionBudget", "policy", "poddisruptionbudgets"),
    ("ServiceAccount", "", "serviceaccounts"),
    ("PersistentVolumeClaim", "", "persistentvolumeclaims"),
    ("Namespace", "", "namespaces"),
];

/// The default as the flag's text.
pub fn default_kinds_text() -> String {
    DEFAULT_KINDS
        .iter()
        .map(|(k, g, _)| {
            KindRef {
                kind: (*k).into(),
                group: (*g).into(),
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The kinds the operator federates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist(Vec<KindRef>);

impl Default for Allowlist {
    fn default() -> Self {
        Self::parse(&default_kinds_text()).unwrap_or(Self(Vec::new()))
    }
}

impl Allowlist {
    /// A comma-separated list of `Kind.group`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut kinds: Vec<KindRef> = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        kinds.sort();
        kinds.dedup();
        Ok(Self(kinds))
    }

    pub fn allows(&self, group: &str, kind: &str) -> bool {
        self.0.iter().any(|k| k.group == group && k.kind == kind)
    }

    pub fn kinds(&self) -> &[KindRef] {
        &self.0
    }

    /// Why `group`/`kind` is refused, naming the flag that would allow it.
    pub fn refusal(&self, group: &str, kind: &str) -> String {
        let k = KindRef {
            kind: kind.into(),
            group: group.into(),
        };
        format!(
            "{k} is not on the operator's allowlist of federated kinds; add it to --federated-kinds (chart value federatedKinds) and to the members' flotilla join --kinds"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_application_kinds_and_not_secrets_rbac_or_crds() {
        let a = Allowlist::default();
        assert!(a.allows("apps", "Deployment"));
        assert!(a.allows("", "ConfigMap"));
        assert!(a.allows("networking.k8s.io", "Ingress"));
        assert!(!a.allows("", "Secret"));
        assert!(!a.allows("rbac.authorization.k8s.io", "ClusterRole"));
        assert!(!a.allows("apiextensions.k8s.io", "CustomResourceDefinition"));
        assert_eq!(a.kinds().len(), DEFAULT_KINDS.len());
    }

    #[test]
    fn kinds_are_parsed_with_their_group_and_bad_text_is_refused() {
        let a = Allowlist::parse("Secret, ClusterRole.rbac.authorization.k8s.io,Secret")
            .expect("valid");
        assert_eq!(a.kinds().len(), 2);
        assert!(a.allows("rbac.authorization.k8s.io", "ClusterRole"));
        assert!(!a.allows("", "ClusterRole"));
        for bad in ["deployments.apps", "*", "apps/v1/Deployment", ".apps"] {
            assert!(Allowlist::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Allowlist::default()
                .refusal("", "Secret")
                .contains("--federated-kinds")
        );
    }
}
