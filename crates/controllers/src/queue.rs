//! A work queue as client-go's: each key is queued at most once, a key being worked on is not handed out
//! again until it is done (if it changed meanwhile it is queued again then), and keys can be queued for later;
//! and the [`Backoff`] of keys whose syncs fail.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The keys to work on.
#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Changed while being worked on: queued again when done.
    dirty: HashSet<K>,
    later: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            active: HashSet::new(),
            dirty: HashSet::new(),
            later: BinaryHeap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// Queues `key` (once).
    pub fn add(&mut self, key: K) {
        if self.active.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Queues `key` once `delay` has passed.
    pub fn add_after(&mut self, key: K, delay: Duration, now: Instant) {
        self.later.push(Reverse((now + delay, key)));
    }

    /// Queues what was due by `now`.
    pub fn tick(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.later.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.later.pop() {
                self.add(key);
            }
        }
    }

    /// When the next delayed key is due.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.later.peek().map(|Reverse((at, _))| *at)
    }

    /// Keys ready to be worked on.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Keys being worked on.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// The next key to work on; it is active until [`done`](Self::done).
    pub fn pop(&mut self) -> Option<K> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.active.insert(key.clone());
        Some(key)
    }

    /// The work on `key` is over: queued again if it changed meanwhile.
    pub fn done(&mut self, key: &K) {
        self.active.remove(key);
        if self.dirty.remove(key) {
            self.add(key.clone());
        }
    }
}

/// Failed syncs in a row, by key: after the n-th failure in a row a key waits `first`·2ⁿ (at most `max`)
/// before it is tried again.
#[derive(Debug)]
pub struct Backoff<K> {
    first: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
}

impl<K> Default for Backoff<K> {
    /// From 5 ms up to 5 minutes.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(5), Duration::from_secs(300))
    }
}

impl<K> Backoff<K> {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            failures: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Backoff<K> {
    /// A sync of `key` failed: how long to wait before trying again.
    pub fn failed(&mut self, key: &K) -> Duration {
        let failed = self.failures.entry(key.clone()).or_default();
        *failed = failed.saturating_add(1);
        self.first
            .saturating_mul(1 << (*failed).min(20))
            .min(self.max)
    }

    /// A sync of `key` went well, or it is gone: the next failure starts over.
    pub fn reset<Q: Eq + Hash + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_queued_once_and_never_handed_out_twice_at_a_time() {
        let mut queue = WorkQueue::default();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop(), Some("a"));
        queue.add("a");
        assert_eq!(queue.pop(), Some("b"));
        assert_eq!(queue.pop(), None, "a is being worked on");
        queue.done(&"a");
        assert_eq!(queue.pop(), Some("a"), "it changed meanwhile");
        queue.done(&"a");
        queue.done(&"b");
        assert!(queue.is_empty());
        assert_eq!(queue.active(), 0);
    }

    #[test]
    fn delayed_keys_come_when_due() {
        let mut queue = WorkQueue::default();
        let now = Instant::now();
        queue.add_after("late", Duration::from_secs(5), now);
        queue.add_after("soon", Duration::from_secs(1), now);
        assert_eq!(queue.next_wakeup(), Some(now + Duration::from_secs(1)));
        queue.tick(now + Duration::from_secs(2));
        assert_eq!(queue.pop(), Some("soon"));
        assert_eq!(queue.pop(), None);
        queue.tick(now + Duration::from_secs(5));
        assert_eq!(queue.pop(), Some("late"));
        assert_eq!(queue.next_wakeup(), None);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_longest_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(backoff.failed(&"a"), Duration::from_millis(200));
        assert_eq!(backoff.failed(&"a"), Duration::from_millis(400));
        assert_eq!(backoff.failed(&"b"), Duration::from_millis(200));
        assert_eq!(backoff.failed(&"a"), Duration::from_millis(800));
        assert_eq!(backoff.failed(&"a"), Duration::from_secs(1));
        for _ in 0..100 {
            backoff.failed(&"a");
        }
        assert_eq!(backoff.failed(&"a"), Duration::from_secs(1));
        backoff.reset(&"a");
        assert_eq!(backoff.failed(&"a"), Duration::from_millis(200));
    }
}
