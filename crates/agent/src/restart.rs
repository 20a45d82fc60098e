//! When a stopped container starts again: its pod's `restartPolicy`, and the kubelet's exponential back-off
//! (10 s, doubling to 5 min; forgotten once the container has run for 10 min), which makes a crashing
//! container `CrashLoopBackOff`.

use std::time::Duration;

/// The first back-off.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts over from [`INITIAL_BACKOFF`].
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Whether a container that exited with `exit_code` runs again under `restart_policy` (regular init
/// containers and app containers; sidecars always restart).
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// A container's back-off: how long to wait before the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    /// The wait before the next restart (zero before the first).
    current: Duration,
}

impl Backoff {
    /// Records an exit after the container ran for `ran`; returns how long to wait before starting it again.
    pub fn next(&mut self, ran: Duration) -> Duration {
        self.current = if ran >= RESET_AFTER || self.current.is_zero() {
            INITIAL_BACKOFF
        } else {
            (self.current * 2).min(MAX_BACKOFF)
        };
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets_after_a_long_run() {
        let mut backoff = Backoff::default();
        let short = Duration::from_secs(1);
        let waits: Vec<u64> = (0..7).map(|_| backoff.next(short).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.next(Duration::from_secs(601)), INITIAL_BACKOFF);
    }
}
