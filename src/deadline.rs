//! Deadlines from timeouts, without the panic of `Instant + Duration` on huge values.
//!
//! `Instant::now() + Duration::MAX` panics; every timeout a user can pass goes through
//! [`after`], where a deadline too far away to represent means "no deadline".

use std::time::{Duration, Instant};

/// The instant `timeout` from now, or `None` (wait forever) if it cannot be represented.
pub(crate) fn after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The earlier of two optional deadlines (`None` is "never").
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Whether `deadline` has passed (never, for `None`).
pub(crate) fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_no_deadline() {
        assert_eq!(after(Duration::MAX), None);
        assert!(after(Duration::ZERO).is_some());
        assert!(!passed(None));
        assert!(passed(after(Duration::ZERO)));
        let soon = after(Duration::from_secs(1));
        assert_eq!(earliest(soon, None), soon);
        assert_eq!(earliest(None, None), None);
    }
}
