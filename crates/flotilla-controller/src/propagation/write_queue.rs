//! Objects waiting for a status write, oldest first. Marking an object that already waits keeps
//! its place, so objects whose copies keep changing are written in turn with the others instead
//! of ahead of them (a map's iteration order let some be written again and again while others
//! waited for minutes). Pure.
use std::collections::{HashMap, VecDeque};

pub struct WriteQueue<V> {
    /// Every waiting key once, oldest first.
    order: VecDeque<String>,
    waiting: HashMap<String, V>,
}

impl<V> Default for WriteQueue<V> {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<V> WriteQueue<V> {
    /// `key` needs a write; `value` replaces what an earlier mark left, the place stays.
    pub fn mark(&mut self, key: String, value: V) {
        if self.waiting.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Up to `n` of the oldest keys that are `ready`, taken out; the others keep their places.
    pub fn take_oldest(&mut self, n: usize, ready: impl Fn(&str) -> bool) -> Vec<(String, V)> {
        let mut taken = Vec::new();
        let mut passed = Vec::new();
        while taken.len() < n {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if !ready(&key) {
                passed.push(key);
                continue;
            }
            if let Some(value) = self.waiting.remove(&key) {
                taken.push((key, value));
            }
        }
        for key in passed.into_iter().rev() {
            self.order.push_front(key);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V>(taken: Vec<(String, V)>) -> Vec<String> {
        taken.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_oldest_are_taken_first_and_a_new_mark_keeps_the_place() {
        let mut q = WriteQueue::default();
        for k in ["a", "b", "c", "d"] {
            q.mark(k.to_string(), 1);
        }
        q.mark("a".into(), 2); // changed again while waiting: still first, with the new value
        let taken = q.take_oldest(2, |_| true);
        assert_eq!(taken, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
        q.mark("a".into(), 3); // marked after its write: behind the others
        assert_eq!(keys(q.take_oldest(10, |_| true)), ["c", "d", "a"]);
        assert!(q.is_empty());
    }

    #[test]
    fn keys_that_are_not_ready_keep_their_places() {
        let mut q = WriteQueue::default();
        for k in ["a", "b", "c"] {
            q.mark(k.to_string(), ());
        }
        assert_eq!(keys(q.take_oldest(1, |k| k != "a")), ["b"]);
        assert_eq!(q.len(), 2);
        assert_eq!(keys(q.take_oldest(10, |_| true)), ["a", "c"]);
    }

    #[test]
    fn an_object_that_keeps_changing_does_not_starve_the_others() {
        let mut q = WriteQueue::default();
        for i in 0..100 {
            q.mark(format!("o{i}"), ());
        }
        let mut written = std::collections::HashSet::new();
        for _ in 0..10 {
            for (k, ()) in q.take_oldest(10, |_| true) {
                written.insert(k);
            }
            q.mark("o0".into(), ()); // changes again after every write
        }
        assert_eq!(
            written.len(),
            100,
            "every object written within 10 rounds of 10"
        );
    }
}
