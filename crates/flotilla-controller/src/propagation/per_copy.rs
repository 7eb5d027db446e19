//! A value per copy, kept by host object uid and then member: an object's values are found (and
//! forgotten) without going through every other object's, and its few members are a short list,
//! not a hash table of their own (a small table costs more than the ten entries it holds). One
//! entry per copy, 100,000 at the scale the engine is built for.
use std::collections::{HashMap, HashSet};

use compact_str::CompactString;

pub struct PerCopy<V> {
    by_uid: HashMap<String, Vec<(CompactString, V)>>,
}

impl<V> Default for PerCopy<V> {
    fn default() -> Self {
        Self {
            by_uid: HashMap::new(),
        }
    }
}

impl<V> PerCopy<V> {
    pub fn get(&self, uid: &str, member: &str) -> Option<&V> {
        self.by_uid
            .get(uid)?
            .iter()
            .find(|(m, _)| m == member)
            .map(|(_, v)| v)
    }

    /// Sets the copy's value, replacing the one it had.
    pub fn insert(&mut self, uid: &str, member: &str, value: V) {
        // The uid is copied only for an object not seen yet.
        let members = match self.by_uid.get_mut(uid) {
            Some(m) => m,
            None => self.by_uid.entry(uid.to_string()).or_default(),
        };
        match members.iter_mut().find(|(m, _)| m == member) {
            Some((_, v)) => *v = value,
            None => members.push((member.into(), value)),
        }
    }

    pub fn remove(&mut self, uid: &str, member: &str) {
        if let Some(members) = self.by_uid.get_mut(uid) {
            members.retain(|(m, _)| m != member);
            if members.is_empty() {
                self.by_uid.remove(uid);
            }
        }
    }

    pub fn remove_object(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }

    /// One object's values, by member.
    pub fn of<'a>(&'a self, uid: &str) -> impl Iterator<Item = (&'a str, &'a V)> {
        self.by_uid
            .get(uid)
            .into_iter()
            .flatten()
            .map(|(m, v)| (m.as_str(), v))
    }

    /// Keeps only the members in `live`.
    pub fn retain_members(&mut self, live: &HashSet<String>) {
        self.by_uid.retain(|_, members| {
            members.retain(|(m, _)| live.contains(m.as_str()));
            !members.is_empty()
        });
    }

    /// Keeps only the objects in `live`.
    pub fn retain_objects(&mut self, live: &HashSet<String>) {
        self.by_uid.retain(|uid, _| live.contains(uid));
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_per_object_and_member() {
        let mut c = PerCopy::default();
        c.insert("u", "m1", 1);
        c.insert("u", "m2", 2);
        c.insert("v", "m1", 3);
        assert_eq!(c.get("u", "m2"), Some(&2));
        assert_eq!(c.get("u", "m3"), None);
        // Set again: replaced, not added.
        c.insert("u", "m2", 4);
        assert_eq!(c.of("u").collect::<Vec<_>>(), [("m1", &1), ("m2", &4)]);
        c.remove("u", "m1");
        c.retain_members(&HashSet::from(["m1".to_string()]));
        assert_eq!(
            c.of("u").count(),
            0,
            "an object with no values left is dropped"
        );
        assert_eq!(c.get("v", "m1"), Some(&3));
        c.remove_object("v");
        assert!(c.is_empty());
        c.insert("w", "m1", 5);
        c.retain_objects(&HashSet::new());
        assert!(c.is_empty());
    }
}
