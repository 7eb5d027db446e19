//! Validation of a placement spec, separate from deciding so that the controller can surface a
//! bad spec as a status condition. [`crate::decide`] runs the same check and refuses to decide
//! on an invalid spec rather than guess what the user meant.
use crate::selector::SelectorError;
use crate::spec::PlacementSpec;
use crate::taint::TolerationOperator;

/// Why a placement spec cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A label selector is invalid; `field` says which one (for example
    /// `failoverPriority[1].clusterSelector`).
    #[error("{field}: {source}")]
    InvalidSelector {
        /// The API field path of the selector.
        field: String,
        /// What is wrong with it.
        source: SelectorError,
    },
    /// `maxClusters: 0` would select nothing; the API requires at least 1.
    #[error("constraints.maxClusters must be at least 1")]
    ZeroMaxClusters,
    /// A spread constraint has an empty topology key.
    #[error("constraints.spread[{index}].topologyKey must not be empty")]
    EmptyTopologyKey {
        /// Index of the constraint.
        index: usize,
    },
    /// `maxPerGroup: 0` would select nothing.
    #[error("constraints.spread[{index}].maxPerGroup must be at least 1")]
    ZeroMaxPerGroup {
        /// Index of the constraint.
        index: usize,
    },
    /// `minGroups: 0` is meaningless.
    #[error("constraints.spread[{index}].minGroups must be at least 1")]
    ZeroMinGroups {
        /// Index of the constraint.
        index: usize,
    },
    /// A toleration with an empty key must use `Exists` (as for pods).
    #[error("constraints.tolerations[{index}]: an empty key requires operator Exists")]
    TolerationEmptyKeyNeedsExists {
        /// Index of the toleration.
        index: usize,
    },
    /// A toleration with `Exists` must not carry a value (as for pods).
    #[error("constraints.tolerations[{index}]: operator Exists takes no value")]
    TolerationExistsWithValue {
        /// Index of the toleration.
        index: usize,
    },
}

impl PlacementSpec {
    /// Checks everything the engine relies on; returns the first problem found.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(selector) = &self.cluster_selector {
            selector
                .validate()
                .map_err(|source| SpecError::InvalidSelector {
                    field: "clusterSelector".to_owned(),
                    source,
                })?;
        }
        for (i, group) in self.failover_priority.iter().enumerate() {
            if let Some(selector) = &group.cluster_selector {
                selector
                    .validate()
                    .map_err(|source| SpecError::InvalidSelector {
                        field: format!("failoverPriority[{i}].clusterSelector"),
                        source,
                    })?;
            }
        }
        if self.constraints.max_clusters == Some(0) {
            return Err(SpecError::ZeroMaxClusters);
        }
        for (index, spread) in self.constraints.spread.iter().enumerate() {
            if spread.topology_key.is_empty() {
                return Err(SpecError::EmptyTopologyKey { index });
            }
            if spread.max_per_group == Some(0) {
                return Err(SpecError::ZeroMaxPerGroup { index });
            }
            if spread.min_groups == Some(0) {
                return Err(SpecError::ZeroMinGroups { index });
            }
        }
        for (index, tol) in self.constraints.tolerations.iter().enumerate() {
            let empty_key = tol.key.as_deref().is_none_or(str::is_empty);
            let has_value = tol.value.as_deref().is_some_and(|v| !v.is_empty());
            match tol.operator {
                TolerationOperator::Equal if empty_key => {
                    return Err(SpecError::TolerationEmptyKeyNeedsExists { index });
                }
                TolerationOperator::Exists if has_value => {
                    return Err(SpecError::TolerationExistsWithValue { index });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{LabelSelector, SelectorOperator};
    use crate::spec::{PriorityGroup, SpreadConstraint};
    use crate::taint::Toleration;

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(PlacementSpec::default().validate(), Ok(()));
    }

    #[test]
    fn reports_which_selector_is_invalid() {
        let bad = LabelSelector::default().with_expression(
            "region",
            SelectorOperator::In,
            Vec::<String>::new(),
        );
        let spec = PlacementSpec {
            failover_priority: vec![
                PriorityGroup::of_clusters(["a"]),
                PriorityGroup::of_selector(bad),
            ],
            ..PlacementSpec::default()
        };
        let err = spec.validate().err();
        assert!(
            matches!(&err, Some(SpecError::InvalidSelector { field, .. }) if field == "failoverPriority[1].clusterSelector"),
            "{err:?}"
        );
        assert!(err.is_some_and(|e| e.to_string().contains("needs at least one value")));
    }

    #[test]
    fn rejects_zero_limits_and_bad_tolerations() {
        let mut spec = PlacementSpec::default();
        spec.constraints.max_clusters = Some(0);
        assert_eq!(spec.validate(), Err(SpecError::ZeroMaxClusters));

        let mut spec = PlacementSpec::default();
        spec.constraints.spread = vec![SpreadConstraint::new("", None, None)];
        assert_eq!(
            spec.validate(),
            Err(SpecError::EmptyTopologyKey { index: 0 })
        );
        spec.constraints.spread = vec![SpreadConstraint::new("r", Some(0), None)];
        assert_eq!(
            spec.validate(),
            Err(SpecError::ZeroMaxPerGroup { index: 0 })
        );
        spec.constraints.spread = vec![SpreadConstraint::new("r", None, Some(0))];
        assert_eq!(spec.validate(), Err(SpecError::ZeroMinGroups { index: 0 }));

        let mut spec = PlacementSpec::default();
        spec.constraints.tolerations = vec![Toleration::default()];
        assert_eq!(
            spec.validate(),
            Err(SpecError::TolerationEmptyKeyNeedsExists { index: 0 })
        );
        spec.constraints.tolerations = vec![Toleration {
            key: Some("k".into()),
            operator: TolerationOperator::Exists,
            value: Some("v".into()),
            effect: None,
        }];
        assert_eq!(
            spec.validate(),
            Err(SpecError::TolerationExistsWithValue { index: 0 })
        );
    }
}
