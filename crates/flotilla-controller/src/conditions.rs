//! Status conditions: set one by type, keeping `lastTransitionTime` unless the status flips.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition to set; `observed_generation` is the spec generation it describes.
pub struct NewCondition<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// Inserts or updates the condition of `new.type_`. The transition time moves only when the
/// status changes, so repeated reconciles do not rewrite it.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: NewCondition<'_>, now: Time) {
    // Kubernetes 1.20's server-side apply turns an empty string into null, which the schema
    // rejects: a condition always says something.
    if new.message.is_empty() {
        new.message = new.reason.to_string();
    }
    let status = if new.status { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = new.reason.to_string();
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
        }
        None => conditions.push(Condition {
            type_: new.type_.to_string(),
            status,
            reason: new.reason.to_string(),
            message: new.message,
            observed_generation: new.observed_generation,
            last_transition_time: now,
        }),
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Conditions equal but for their transition times (used to skip no-op status writes).
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            find(b, &x.type_).is_some_and(|y| {
                x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).expect("valid time"))
    }

    fn ready(status: bool, reason: &'static str) -> NewCondition<'static> {
        NewCondition {
            type_: "Ready",
            status,
            reason,
            message: String::new(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut c = Vec::new();
        set_condition(&mut c, ready(true, "A"), at(10));
        set_condition(&mut c, ready(true, "B"), at(20));
        assert_eq!(c[0].last_transition_time, at(10));
        assert_eq!(c[0].reason, "B");
        set_condition(&mut c, ready(false, "C"), at(30));
        assert_eq!(c[0].last_transition_time, at(30));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_empty_message_becomes_the_reason() {
        let mut c = Vec::new();
        set_condition(&mut c, ready(true, "AllGood"), at(1));
        assert_eq!(c[0].message, "AllGood");
    }

    #[test]
    fn comparison_ignores_only_time() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        set_condition(&mut a, ready(true, "A"), at(10));
        set_condition(&mut b, ready(true, "A"), at(99));
        assert!(same_ignoring_time(&a, &b));
        set_condition(&mut b, ready(true, "Other"), at(99));
        assert!(!same_ignoring_time(&a, &b));
    }
}
