//! Objects waiting for a status write, oldest first. Marking an object that already waits keeps
//! its place, so objects whose copies keep changing are written in turn with the others instead
//! of ahead of them (a map's iteration order let some be written again and again while others
//! waited for minutes). Each key also keeps when it started waiting. Pure.
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub struct WriteQueue<V> {
    /// Every waiting key once, oldest first.
    order: VecDeque<String>,
    waiting: HashMap<String, Waiting<V>>,
}

struct Waiting<V> {
    value: V,
    since: Instant,
}

/// A key taken out of the queue, with its value and when it started waiting.
#[derive(Debug, PartialEq)]
pub struct Taken<V> {
    pub key: String,
    pub value: V,
    pub since: Instant,
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
    /// `key` needs a write (as of `now`); `value` replaces what an earlier mark left, the place
    /// and the time it started waiting stay.
    pub fn mark(&mut self, key: String, value: V, now: Instant) {
        match self.waiting.get_mut(&key) {
            Some(w) => w.value = value,
            None => {
                self.waiting
                    .insert(key.clone(), Waiting { value, since: now });
                self.order.push_back(key);
            }
        }
    }

    /// Puts back a key taken out and not written, with the time it started waiting.
    pub fn put_back(&mut self, taken: Taken<V>) {
        let Taken { key, value, since } = taken;
        self.mark(key, value, since);
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Up to `n` of the oldest keys, taken out.
    pub fn take_oldest(&mut self, n: usize) -> Vec<Taken<V>> {
        let mut taken = Vec::new();
        while taken.len() < n {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(Waiting { value, since }) = self.waiting.remove(&key) {
                taken.push(Taken { key, value, since });
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V>(taken: Vec<Taken<V>>) -> Vec<String> {
        taken.into_iter().map(|t| t.key).collect()
    }

    fn pairs<V>(taken: Vec<Taken<V>>) -> Vec<(String, V)> {
        taken.into_iter().map(|t| (t.key, t.value)).collect()
    }

    #[test]
    fn the_oldest_are_taken_first_and_a_new_mark_keeps_the_place() {
        let now = Instant::now();
        let mut q = WriteQueue::default();
        for k in ["a", "b", "c", "d"] {
            q.mark(k.to_string(), 1, now);
        }
        q.mark("a".into(), 2, now); // changed again while waiting: still first, with the new value
        let taken = q.take_oldest(2);
        assert_eq!(
            pairs(taken),
            vec![("a".to_string(), 2), ("b".to_string(), 1)]
        );
        q.mark("a".into(), 3, now); // marked after its write: behind the others
        assert_eq!(keys(q.take_oldest(10)), ["c", "d", "a"]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_object_that_keeps_changing_does_not_starve_the_others() {
        let now = Instant::now();
        let mut q = WriteQueue::default();
        for i in 0..100 {
            q.mark(format!("o{i}"), (), now);
        }
        let mut written = std::collections::HashSet::new();
        for _ in 0..10 {
            for t in q.take_oldest(10) {
                written.insert(t.key);
            }
            q.mark("o0".into(), (), now); // changes again after every write
        }
        assert_eq!(
            written.len(),
            100,
            "every object written within 10 rounds of 10"
        );
    }

    #[test]
    fn a_key_keeps_the_time_it_started_waiting() {
        let start = Instant::now();
        let later = start + std::time::Duration::from_secs(3);
        let mut q = WriteQueue::default();
        q.mark("a".into(), 1, start);
        q.mark("a".into(), 2, later);
        let mut taken = q.take_oldest(1);
        assert_eq!(taken[0].since, start);
        q.put_back(taken.remove(0));
        q.mark("a".into(), 3, later);
        let taken = q.take_oldest(1);
        assert_eq!((taken[0].value, taken[0].since), (3, start));
    }
}
