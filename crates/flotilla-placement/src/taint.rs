//! Cluster taints and the tolerations that let an object onto a tainted cluster.
//!
//! Matching follows Kubernetes pod tolerations exactly, so that operators who know node taints
//! need to learn nothing new: an unset effect matches every effect, an empty key with `Exists`
//! matches every taint, `Equal` compares values (an unset value equals the empty string).
use std::fmt;

/// What a taint does to objects that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// No new placements; a cluster that currently holds the object keeps it.
    NoSchedule,
    /// No placements at all; the object is moved away from a cluster that holds it.
    NoExecute,
}

/// A taint on a member cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// The taint key, for example `flotilla.dev/maintenance`.
    pub key: String,
    /// The taint value; `None` and `Some("")` are the same.
    pub value: Option<String>,
    /// What the taint does.
    pub effect: TaintEffect,
}

/// How a toleration compares its value with a taint's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TolerationOperator {
    /// Key and value must be equal.
    #[default]
    Equal,
    /// The key must match; the value is ignored.
    Exists,
}

/// Tolerates cluster taints, as a pod toleration does node taints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    /// The taint key to match; `None` or empty with `Exists` matches every key.
    pub key: Option<String>,
    /// How values are compared.
    pub operator: TolerationOperator,
    /// The value to match with `Equal`; must be unset with `Exists`.
    pub value: Option<String>,
    /// The effect to match; `None` matches every effect.
    pub effect: Option<TaintEffect>,
}

impl TaintEffect {
    /// The effect's name as written in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Taint {
    /// A taint with a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>, effect: TaintEffect) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
            effect,
        }
    }
}

impl fmt::Display for Taint {
    /// `key=value:Effect`, as kubectl prints taints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.as_deref() {
            Some(v) if !v.is_empty() => write!(f, "{}={}:{}", self.key, v, self.effect),
            _ => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

impl Toleration {
    /// Tolerates every taint (empty key, `Exists`, any effect).
    pub fn everything() -> Self {
        Self {
            operator: TolerationOperator::Exists,
            ..Self::default()
        }
    }

    /// Whether this toleration matches `taint` (Kubernetes `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        let key = self.key.as_deref().unwrap_or("");
        if !key.is_empty() && key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => {
                self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
        }
    }
}

/// The first taint of `taints` that none of `tolerations` tolerates and that has one of the
/// given effects.
pub(crate) fn first_untolerated<'t>(
    taints: &'t [Taint],
    tolerations: &[Toleration],
    effect: TaintEffect,
) -> Option<&'t Taint> {
    taints
        .iter()
        .filter(|t| t.effect == effect)
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(
        key: Option<&str>,
        op: TolerationOperator,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op,
            value: value.map(Into::into),
            effect,
        }
    }

    #[test]
    fn equal_matches_key_and_value() {
        let taint = Taint::new("maint", "yes", TaintEffect::NoSchedule);
        assert!(tol(Some("maint"), TolerationOperator::Equal, Some("yes"), None).tolerates(&taint));
        assert!(!tol(Some("maint"), TolerationOperator::Equal, Some("no"), None).tolerates(&taint));
        assert!(
            !tol(Some("other"), TolerationOperator::Equal, Some("yes"), None).tolerates(&taint)
        );
    }

    #[test]
    fn unset_value_equals_empty_value() {
        let taint = Taint {
            key: "k".into(),
            value: None,
            effect: TaintEffect::NoExecute,
        };
        assert!(tol(Some("k"), TolerationOperator::Equal, Some(""), None).tolerates(&taint));
        assert!(tol(Some("k"), TolerationOperator::Equal, None, None).tolerates(&taint));
    }

    #[test]
    fn exists_ignores_value_and_empty_key_matches_all() {
        let taint = Taint::new("maint", "yes", TaintEffect::NoExecute);
        assert!(tol(Some("maint"), TolerationOperator::Exists, None, None).tolerates(&taint));
        assert!(Toleration::everything().tolerates(&taint));
        assert!(tol(Some(""), TolerationOperator::Exists, None, None).tolerates(&taint));
    }

    #[test]
    fn effect_must_match_when_set() {
        let taint = Taint::new("maint", "yes", TaintEffect::NoExecute);
        let only_no_schedule = tol(
            Some("maint"),
            TolerationOperator::Exists,
            None,
            Some(TaintEffect::NoSchedule),
        );
        assert!(!only_no_schedule.tolerates(&taint));
        let only_no_execute = tol(
            Some("maint"),
            TolerationOperator::Exists,
            None,
            Some(TaintEffect::NoExecute),
        );
        assert!(only_no_execute.tolerates(&taint));
    }

    #[test]
    fn finds_first_untolerated_taint_of_an_effect() {
        let taints = [
            Taint::new("a", "1", TaintEffect::NoSchedule),
            Taint::new("b", "1", TaintEffect::NoExecute),
        ];
        let tolerate_a = [tol(Some("a"), TolerationOperator::Exists, None, None)];
        assert_eq!(
            first_untolerated(&taints, &tolerate_a, TaintEffect::NoSchedule),
            None
        );
        assert_eq!(
            first_untolerated(&taints, &tolerate_a, TaintEffect::NoExecute),
            Some(&taints[1])
        );
        assert_eq!(taints[1].to_string(), "b=1:NoExecute");
    }
}
