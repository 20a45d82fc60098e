//! What a controller is waiting to see, as upstream's `UIDTrackingControllerExpectations`: after it issues
//! creates and deletes for an object, it does not act on that object again until its watch has shown them
//! (or [`TIMEOUT`] passed), so that a burst of events never creates or deletes twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// Expectations older than this are considered met (upstream's `ExpectationsTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expectation {
    /// Creations not yet seen.
    adds: i64,
    /// The uids of the pods whose deletion is not yet seen.
    deletes: HashSet<String>,
    since: Instant,
}

/// Expectations by controller key.
#[derive(Debug, Default)]
pub struct Expectations {
    by_key: HashMap<String, Expectation>,
}

impl Expectations {
    /// Whether the controller may act on `key`: nothing expected, everything seen, or expired.
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        self.by_key.get(key).is_none_or(|e| {
            (e.adds <= 0 && e.deletes.is_empty()) || now.duration_since(e.since) > TIMEOUT
        })
    }

    /// Expects `adds` creations and the deletion of `deletes` (replacing what was expected).
    pub fn expect(&mut self, key: &str, adds: usize, deletes: Vec<String>, now: Instant) {
        self.by_key.insert(
            key.to_owned(),
            Expectation {
                adds: i64::try_from(adds).unwrap_or(i64::MAX),
                deletes: deletes.into_iter().collect(),
                since: now,
            },
        );
    }

    /// `n` creations seen (or failed, or skipped: they will not be seen).
    pub fn creations_observed(&mut self, key: &str, n: usize) {
        if let Some(e) = self.by_key.get_mut(key) {
            e.adds -= i64::try_from(n).unwrap_or(i64::MAX);
        }
    }

    /// The deletion of the pod `uid` seen (or failed).
    pub fn deletion_observed(&mut self, key: &str, uid: &str) {
        if let Some(e) = self.by_key.get_mut(key) {
            e.deletes.remove(uid);
        }
    }

    /// The controller is gone.
    pub fn forget(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    /// When the expectations of `key` expire, if it waits for any.
    pub fn expires(&self, key: &str) -> Option<Instant> {
        self.by_key
            .get(key)
            .filter(|e| e.adds > 0 || !e.deletes.is_empty())
            .map(|e| e.since + TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn met_when_every_create_and_delete_is_seen() {
        let now = Instant::now();
        let mut e = Expectations::default();
        assert!(e.satisfied("ns/rs", now));
        e.expect("ns/rs", 2, vec!["u1".into()], now);
        assert!(!e.satisfied("ns/rs", now));
        assert_eq!(e.expires("ns/rs"), Some(now + TIMEOUT));
        e.creations_observed("ns/rs", 1);
        e.deletion_observed("ns/rs", "u1");
        e.deletion_observed("ns/rs", "u1");
        assert!(!e.satisfied("ns/rs", now));
        e.creations_observed("ns/rs", 1);
        assert!(e.satisfied("ns/rs", now));
        assert_eq!(e.expires("ns/rs"), None);
        e.creations_observed("ns/rs", 1);
        assert!(e.satisfied("ns/rs", now), "more seen than expected");
    }

    #[test]
    fn expire_after_the_timeout() {
        let now = Instant::now();
        let mut e = Expectations::default();
        e.expect("k", 1, vec![], now);
        assert!(!e.satisfied("k", now + TIMEOUT));
        assert!(e.satisfied("k", now + TIMEOUT + Duration::from_secs(1)));
        e.forget("k");
        assert!(e.satisfied("k", now));
    }
}
