//! The drift entry of one member copy, as reported in the host object's status.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use serde_json::Value;

use flotilla_api::federated_ingress::{DriftStatus, DriftedField};

use crate::diff::diff_owned_fields;
use crate::managers::manager_of;

/// What the drift of one copy is computed from.
pub struct DriftInput<'a> {
    /// The copy as Flotilla applies it (template plus the cluster's overrides).
    pub desired: &'a Value,
    /// The copy as found in the member, or `None` when it was deleted.
    pub observed: Option<&'a Value>,
    /// The copy's managedFields (who wrote what).
    pub managed_fields: &'a [ManagedFieldsEntry],
    /// JSON pointers never reported.
    pub ignore: &'a [String],
    /// Flotilla's field manager.
    pub field_manager: &'a str,
    /// The entry reported before, to keep each field's first-seen time.
    pub previous: Option<&'a DriftStatus>,
    pub now: Time,
}

/// The fields that drifted, with both values, who changed them and since when; `None` when the
/// copy matches. Corrections counters are carried over from `previous`.
pub fn drift_status(input: &DriftInput<'_>) -> Option<DriftStatus> {
    let carried = |d: DriftStatus| DriftStatus {
        corrections: input.previous.and_then(|p| p.corrections),
        last_correction_time: input.previous.and_then(|p| p.last_correction_time.clone()),
        ..d
    };
    let Some(observed) = input.observed else {
        return Some(carried(DriftStatus {
            copy_deleted: true,
            ..DriftStatus::default()
        }));
    };
    let diffs = diff_owned_fields(input.desired, observed, input.ignore);
    if diffs.is_empty() {
        // Nothing drifted now; corrections made earlier stay on record.
        let corrected = input.previous.is_some_and(|p| p.corrections.is_some());
        return corrected.then(|| carried(DriftStatus::default()));
    }
    let fields = diffs
        .into_iter()
        .map(|d| {
            let first_seen = input
                .previous
                .and_then(|p| p.fields.iter().find(|f| f.path == d.path))
                .and_then(|f| f.first_seen.clone())
                .unwrap_or_else(|| input.now.clone());
            DriftedField {
                manager: manager_of(input.managed_fields, &d.path, input.field_manager),
                desired: Some(d.desired.to_string()),
                observed: d.observed.as_ref().map(Value::to_string),
                first_seen: Some(first_seen),
                path: d.path,
            }
        })
        .collect();
    Some(carried(DriftStatus {
        fields,
        ..DriftStatus::default()
    }))
}

/// The same drift, ignoring when it was seen (to decide whether anything new must be written).
pub fn same_drift(a: Option<&DriftStatus>, b: Option<&DriftStatus>) -> bool {
    let key = |d: Option<&DriftStatus>| {
        d.map(|d| {
            (
                d.copy_deleted,
                d.corrections,
                d.fields
                    .iter()
                    .map(|f| (f.path.clone(), f.observed.clone(), f.manager.clone()))
                    .collect::<Vec<_>>(),
            )
        })
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).expect("time"))
    }

    fn input<'a>(
        desired: &'a Value,
        observed: Option<&'a Value>,
        previous: Option<&'a DriftStatus>,
        now: Time,
    ) -> DriftInput<'a> {
        DriftInput {
            desired,
            observed,
            managed_fields: &[],
            ignore: &[],
            field_manager: "flotilla",
            previous,
            now,
        }
    }

    #[test]
    fn a_matching_copy_has_no_drift() {
        let d = json!({"spec": {"rules": [{"host": "a"}]}});
        let o = json!({"spec": {"rules": [{"host": "a", "http": {}}]}, "status": {}});
        assert_eq!(drift_status(&input(&d, Some(&o), None, at(1))), None);
    }

    #[test]
    fn drift_keeps_its_first_seen_time() {
        let d = json!({"spec": {"rules": [{"host": "a"}]}});
        let o = json!({"spec": {"rules": [{"host": "b"}]}});
        let first = drift_status(&input(&d, Some(&o), None, at(10))).expect("drift");
        assert_eq!(first.fields[0].desired.as_deref(), Some("\"a\""));
        assert_eq!(first.fields[0].observed.as_deref(), Some("\"b\""));
        let again = drift_status(&input(&d, Some(&o), Some(&first), at(99))).expect("drift");
        assert_eq!(again.fields[0].first_seen, Some(at(10)));
        assert!(same_drift(Some(&first), Some(&again)));
    }

    #[test]
    fn corrections_stay_on_record_once_the_copy_matches_again() {
        let d = json!({"spec": {"rules": [{"host": "a"}]}});
        let previous = DriftStatus {
            corrections: Some(2),
            last_correction_time: Some(at(5)),
            ..DriftStatus::default()
        };
        let s = drift_status(&input(&d, Some(&d), Some(&previous), at(9))).expect("counters kept");
        assert!(s.fields.is_empty() && !s.copy_deleted);
        assert_eq!(
            (s.corrections, s.last_correction_time),
            (Some(2), Some(at(5)))
        );
    }

    #[test]
    fn a_deleted_copy_is_drift_and_counters_carry_over() {
        let d = json!({"spec": {}});
        let previous = DriftStatus {
            corrections: Some(3),
            ..DriftStatus::default()
        };
        let s = drift_status(&input(&d, None, Some(&previous), at(1))).expect("deleted");
        assert!(s.copy_deleted);
        assert_eq!(s.corrections, Some(3));
    }
}
