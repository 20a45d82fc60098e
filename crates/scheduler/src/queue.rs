//! The pods waiting to be scheduled, by uid: an active queue (first in, first out), pods backing off after a
//! failed attempt (1 s doubling to 10 s, upstream's defaults), and unschedulable pods, which wait for a
//! change in the cluster (a node added or changed, a pod gone; a pod placed, for those that asked for it)
//! — or at most [`UNSCHEDULABLE_FLUSH`] — and then for the rest of their back-off.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The first back-off (upstream's `podInitialBackoffSeconds`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off (upstream's `podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long an unschedulable pod waits for a change before it is tried again anyway (upstream's
/// `podMaxInUnschedulablePodsDuration`).
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Backoff(Instant),
    Unschedulable {
        until: Instant,
        since: Instant,
    },
    /// Popped: being scheduled or bound.
    InFlight,
}

/// The scheduling queue.
#[derive(Debug, Default)]
pub struct Queue {
    states: HashMap<String, State>,
    attempts: HashMap<String, u32>,
    active: VecDeque<String>,
    backoff: BinaryHeap<Reverse<(Instant, String)>>,
    unschedulable: HashSet<String>,
    /// Unschedulable pods that a pod placed (or relabelled) may help (affinity, spreading).
    on_pods: HashSet<String>,
}

/// The back-off after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

impl Queue {
    /// Queues a pod not seen before (a pod already queued stays where it is).
    pub fn add(&mut self, uid: &str) {
        if !self.states.contains_key(uid) {
            self.activate(uid);
        }
    }

    fn activate(&mut self, uid: &str) {
        self.unschedulable.remove(uid);
        self.on_pods.remove(uid);
        self.states.insert(uid.to_owned(), State::Active);
        self.active.push_back(uid.to_owned());
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.states.contains_key(uid)
    }

    /// How many pods are ready to be scheduled (an upper bound: removed ones are skipped when popped).
    pub fn ready(&self) -> usize {
        self.active.len()
    }

    /// The next pod to schedule; it is in flight until [`Queue::done`], [`Queue::unschedulable`] or
    /// [`Queue::retry`].
    pub fn pop(&mut self) -> Option<String> {
        while let Some(uid) = self.active.pop_front() {
            if let Some(state) = self.states.get_mut(&uid)
                && *state == State::Active
            {
                *state = State::InFlight;
                return Some(uid);
            }
        }
        None
    }

    /// Forgets a pod (bound, deleted).
    pub fn done(&mut self, uid: &str) {
        self.states.remove(uid);
        self.attempts.remove(uid);
        self.unschedulable.remove(uid);
        self.on_pods.remove(uid);
    }

    fn next_backoff(&mut self, uid: &str) -> Duration {
        let attempts = self.attempts.entry(uid.to_owned()).or_default();
        *attempts += 1;
        backoff(*attempts)
    }

    /// No node could take the pod: it waits for a change in the cluster, and its back-off.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        if !self.states.contains_key(uid) {
            return;
        }
        let until = now + self.next_backoff(uid);
        self.states
            .insert(uid.to_owned(), State::Unschedulable { until, since: now });
        self.unschedulable.insert(uid.to_owned());
    }

    /// Something else went wrong (the binding failed): the pod is tried again after its back-off.
    pub fn retry(&mut self, uid: &str, now: Instant) {
        if !self.states.contains_key(uid) {
            return;
        }
        let until = now + self.next_backoff(uid);
        self.back_off(uid, until);
    }

    fn back_off(&mut self, uid: &str, until: Instant) {
        self.unschedulable.remove(uid);
        self.on_pods.remove(uid);
        self.states.insert(uid.to_owned(), State::Backoff(until));
        self.backoff.push(Reverse((until, uid.to_owned())));
    }

    /// The cluster changed: unschedulable pods go back, to the active queue or, while backing off, until
    /// their back-off ends.
    pub fn cluster_changed(&mut self, now: Instant) {
        self.on_pods.clear();
        for uid in std::mem::take(&mut self.unschedulable) {
            self.wake(&uid, now);
        }
    }

    /// The unschedulable pod `uid` may also be helped by a pod placed or relabelled.
    pub fn wake_on_pod_changes(&mut self, uid: &str) {
        if self.unschedulable.contains(uid) {
            self.on_pods.insert(uid.to_owned());
        }
    }

    /// A pod was placed or relabelled: the unschedulable pods waiting for that go back.
    pub fn pods_changed(&mut self, now: Instant) {
        for uid in std::mem::take(&mut self.on_pods) {
            if self.unschedulable.remove(&uid) {
                self.wake(&uid, now);
            }
        }
    }

    /// The pod itself changed: tried again (after its back-off) if it was unschedulable.
    pub fn pod_changed(&mut self, uid: &str, now: Instant) {
        if self.unschedulable.remove(uid) {
            self.wake(uid, now);
        }
    }

    fn wake(&mut self, uid: &str, now: Instant) {
        if let Some(State::Unschedulable { until, .. }) = self.states.get(uid).copied() {
            if until <= now {
                self.activate(uid);
            } else {
                self.back_off(uid, until);
            }
        }
    }

    /// Moves the pods whose back-off is over to the active queue, and the pods unschedulable for longer
    /// than [`UNSCHEDULABLE_FLUSH`] back.
    pub fn tick(&mut self, now: Instant) {
        while let Some(Reverse((until, _))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((until, uid))) = self.backoff.pop() else {
                break;
            };
            if self.states.get(&uid) == Some(&State::Backoff(until)) {
                self.activate(&uid);
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|uid| {
                matches!(self.states.get(*uid), Some(State::Unschedulable { since, .. })
                    if now.duration_since(*since) >= UNSCHEDULABLE_FLUSH)
            })
            .cloned()
            .collect();
        for uid in stale {
            self.unschedulable.remove(&uid);
            self.wake(&uid, now);
        }
    }

    /// When the next back-off ends.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((until, _))| *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_ten() {
        let got: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_change_and_their_backoff() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop(), None);
        q.unschedulable("a", t0);
        q.unschedulable("b", t0);
        // Time alone does not bring them back (until the flush).
        q.tick(t0 + Duration::from_secs(5));
        assert_eq!(q.pop(), None);
        // A change does; b's back-off is over by then, a is changed before its own is.
        q.pod_changed("a", t0 + Duration::from_millis(500));
        assert_eq!(q.pop(), None);
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        q.cluster_changed(t0 + Duration::from_secs(2));
        assert_eq!(q.pop().as_deref(), Some("b"));
        q.tick(t0 + Duration::from_secs(1));
        assert_eq!(q.pop().as_deref(), Some("a"));
        // A second failure backs off for 2 s.
        let t1 = t0 + Duration::from_secs(3);
        q.retry("a", t1);
        q.tick(t1 + Duration::from_millis(1999));
        assert_eq!(q.pop(), None);
        q.tick(t1 + Duration::from_secs(2));
        assert_eq!(q.pop().as_deref(), Some("a"));
        // Removed pods are skipped and never come back.
        q.unschedulable("b", t1);
        q.done("b");
        q.cluster_changed(t1 + Duration::from_secs(60));
        assert_eq!(q.pop(), None);
        assert!(!q.contains("b"));
        // Unschedulable for five minutes: tried again anyway.
        q.unschedulable("a", t1);
        q.tick(t1 + UNSCHEDULABLE_FLUSH);
        assert_eq!(q.pop().as_deref(), Some("a"));
    }
}
