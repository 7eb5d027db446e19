//! What the engine itself is doing to the copies, for the status syncer to tell the engine's own
//! moves from someone else's (expectations, as client-go's controllers keep them):
//! - the latest placement of every object (its generation and selected members), set before any
//!   copy is applied or removed, so the syncer never judges a copy against an older status;
//! - the copies the engine is removing: their deletion is not drift;
//! - the baseline of every copy applied: the member's own answer to Flotilla's apply (after
//!   defaulting and normalisation), restricted to the fields Flotilla sets, so drift compares
//!   like with like.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::per_copy::PerCopy;

/// One object's latest placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The host kind (each kind's syncer tidies only its own objects).
    pub kind: &'static str,
    pub generation: i64,
    pub selected: Vec<String>,
}

/// Keyed by the host object's uid (and member).
#[derive(Default)]
pub struct Ledger {
    placed: Mutex<HashMap<String, Placed>>,
    leaving: Mutex<HashSet<(String, String)>>,
    baselines: Mutex<Baselines>,
}

/// Every copy's baseline (one per copy: 100,000 at the scale this is built for, so the text is
/// shared). Copies of one object in members that normalise it alike (most) have the same
/// baseline, and hold one text between them.
#[derive(Default)]
struct Baselines {
    by_copy: PerCopy<Arc<str>>,
    /// The texts in use, each once. A text no copy holds any more is dropped by [`Ledger::tidy`].
    texts: HashSet<Arc<str>>,
}

impl Baselines {
    fn intern(&mut self, text: String) -> Arc<str> {
        if let Some(t) = self.texts.get(text.as_str()) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(text);
        self.texts.insert(t.clone());
        t
    }

    fn insert(&mut self, uid: &str, member: &str, text: String) {
        let text = self.intern(text);
        self.by_copy.insert(uid, member, text);
    }

    fn get(&self, uid: &str, member: &str) -> Option<Arc<str>> {
        self.by_copy.get(uid, member).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ledger {
    /// Records `uid`'s placement before its copies are applied or removed. A member placed
    /// again is no longer one the copy is leaving (a copy kept while its member was away and
    /// placed there again on its return is the engine's, and judged again).
    pub fn place(&self, uid: &str, placed: Placed) {
        lock(&self.leaving).retain(|(u, m)| u != uid || !placed.selected.contains(m));
        lock(&self.placed).insert(uid.to_string(), placed);
    }

    pub fn placement(&self, uid: &str) -> Option<Placed> {
        lock(&self.placed).get(uid).cloned()
    }

    /// The engine is about to remove `uid`'s copy from `member`.
    pub fn expect_removal(&self, uid: &str, member: &str) {
        lock(&self.leaving).insert((uid.to_string(), member.to_string()));
    }

    /// The copy the engine was removing is gone: its baseline goes too.
    pub fn removed(&self, uid: &str, member: &str) {
        lock(&self.baselines).by_copy.remove(uid, member);
    }

    /// Whether the engine is removing (or removed) `uid`'s copy from `member`.
    pub fn is_leaving(&self, uid: &str, member: &str) -> bool {
        lock(&self.leaving).contains(&(uid.to_string(), member.to_string()))
    }

    /// Records the member's answer to an apply, restricted to the paths of `desired`.
    pub fn applied(&self, uid: &str, member: &str, desired: &Value, answer: &Value) {
        lock(&self.leaving).remove(&(uid.to_string(), member.to_string()));
        let baseline = restrict(answer, desired).to_string();
        lock(&self.baselines).insert(uid, member, baseline);
    }

    /// What Flotilla's last apply of `uid` to `member` left there, as the member normalised it.
    pub fn baseline(&self, uid: &str, member: &str) -> Option<Value> {
        let text = lock(&self.baselines).get(uid, member)?;
        serde_json::from_str(&text).ok()
    }

    /// Forgets an object whose host object is gone.
    pub fn forget_object(&self, uid: &str) {
        lock(&self.placed).remove(uid);
        lock(&self.leaving).retain(|(u, _)| u != uid);
        lock(&self.baselines).by_copy.remove_object(uid);
    }

    /// Forgets members that were removed (keeps those in `live`).
    pub fn retain_members(&self, live: &HashSet<String>) {
        lock(&self.leaving).retain(|(_, m)| live.contains(m));
        lock(&self.baselines).by_copy.retain_members(live);
    }

    /// Drops baseline texts no copy holds any more (after their objects or members went, or
    /// were applied anew).
    pub fn tidy(&self) {
        let mut baselines = lock(&self.baselines);
        baselines.texts.retain(|t| Arc::strong_count(t) > 1);
        baselines.texts.shrink_to_fit();
    }

    /// Objects of host kind `kind` recorded, for tidying up against that kind's store.
    pub fn objects(&self, kind: &str) -> Vec<String> {
        lock(&self.placed)
            .iter()
            .filter(|(_, p)| p.kind == kind)
            .map(|(uid, _)| uid.clone())
            .collect()
    }
}

/// `answer` with only the object keys `shape` has (arrays are taken whole where `shape` has
/// them: list items are compared as Flotilla set them).
pub fn restrict(answer: &Value, shape: &Value) -> Value {
    match (answer, shape) {
        (Value::Object(a), Value::Object(s)) => Value::Object(
            s.iter()
                .filter_map(|(k, sv)| a.get(k).map(|av| (k.clone(), restrict(av, sv))))
                .collect(),
        ),
        (Value::Array(a), Value::Array(s)) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, av)| s.get(i).map_or_else(|| av.clone(), |sv| restrict(av, sv)))
                .collect(),
        ),
        (a, _) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_baseline_is_the_answer_restricted_to_what_flotilla_set() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1000m"}}}]}}}});
        let answer = json!({"metadata": {"uid": "x"}, "status": {"replicas": 0},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "a", "imagePullPolicy": "Always", "resources": {"limits": {"cpu": "1"}}}]}}}});
        let ledger = Ledger::default();
        ledger.applied("u", "m1", &desired, &answer);
        assert_eq!(
            ledger.baseline("u", "m1"),
            Some(
                json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]}}}})
            )
        );
    }

    #[test]
    fn a_removal_is_expected_until_the_copy_is_applied_again() {
        let ledger = Ledger::default();
        ledger.expect_removal("u", "m1");
        assert!(ledger.is_leaving("u", "m1"));
        assert!(!ledger.is_leaving("u", "m2"));
        ledger.applied("u", "m1", &json!({}), &json!({}));
        assert!(!ledger.is_leaving("u", "m1"));
        ledger.expect_removal("u", "m1");
        ledger.place(
            "u",
            Placed {
                kind: "FederatedIngress",
                generation: 1,
                selected: vec!["m1".into()],
            },
        );
        assert!(!ledger.is_leaving("u", "m1"), "placed again: not leaving");
        ledger.expect_removal("u", "m1");
        ledger.forget_object("u");
        assert!(!ledger.is_leaving("u", "m1"));
    }

    #[test]
    fn copies_alike_share_one_baseline_text_until_none_holds_it() {
        let ledger = Ledger::default();
        let desired = json!({"spec": {"rules": [{"host": "a"}]}});
        for member in ["m1", "m2", "m3"] {
            ledger.applied("u", member, &desired, &desired);
        }
        ledger.applied("v", "m1", &json!({"spec": {}}), &json!({"spec": {}}));
        assert_eq!(lock(&ledger.baselines).texts.len(), 2);
        let shared = lock(&ledger.baselines).get("u", "m1").expect("baseline");
        assert!(Arc::ptr_eq(
            &shared,
            &lock(&ledger.baselines).get("u", "m3").expect("baseline")
        ));
        drop(shared);
        assert_eq!(ledger.baseline("u", "m2"), Some(desired.clone()));

        ledger.removed("u", "m1");
        assert_eq!(ledger.baseline("u", "m1"), None);
        assert_eq!(ledger.baseline("u", "m2"), Some(desired.clone()));
        ledger.retain_members(&HashSet::from(["m1".to_string(), "m2".to_string()]));
        assert_eq!(ledger.baseline("u", "m3"), None);
        ledger.forget_object("u");
        assert_eq!(ledger.baseline("u", "m2"), None);
        ledger.tidy();
        // Only v's text is still held.
        assert_eq!(lock(&ledger.baselines).texts.len(), 1);
        assert_eq!(ledger.baseline("v", "m1"), Some(json!({"spec": {}})));
    }
}
