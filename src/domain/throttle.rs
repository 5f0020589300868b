//! Brute-force throttling: how many failed logins a user (by username key) and a client
//! address may have before their attempts are refused, and what a claim on a password check
//! answers. The stores keep the counters; the rules on them are here and in their statements.

use std::time::{Duration, SystemTime};

/// The configured limits, passed with every claim so both stores apply the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Consecutive failures of one username before it is locked out.
    pub user_max_failures: u32,
    /// The first lockout (users and addresses); a user's further lockouts double it.
    pub lockout: Duration,
    /// A user's lockout never lasts longer than this.
    pub max_lockout: Duration,
    /// Failures from one address within `failure_window` before its attempts are refused.
    pub address_max_failures: u32,
    pub failure_window: Duration,
    /// A username's failures and lockout history are forgotten once its last failure is this
    /// old and no lockout of it is running: anonymous claims cannot grow the counters for good.
    pub failure_reset: Duration,
}

/// Doublings beyond this change nothing (2^30 minutes is two thousand years) and would
/// overflow.
pub const MAX_DOUBLINGS: u32 = 30;

impl ThrottleLimits {
    /// A user's lockout after `earlier` lockouts: the first one doubled each time, capped.
    pub fn user_lockout(&self, earlier: u32) -> Duration {
        self.lockout
            .saturating_mul(1 << earlier.min(MAX_DOUBLINGS))
            .min(self.max_lockout)
    }

    /// Whether a username's counter is forgotten at `now`: its last failure is at least
    /// `failure_reset` old and no lockout of it is running. A claim then starts from zero, and
    /// the sweep deletes it.
    pub fn user_forgotten(
        &self,
        last_failure: SystemTime,
        locked_until: Option<SystemTime>,
        now: SystemTime,
    ) -> bool {
        passed(last_failure, self.failure_reset, now) && lockout_over(locked_until, now)
    }

    /// Whether an address's counter is forgotten at `now`: its window and any lockout have
    /// passed, so a claim would start a new window as if it had never failed.
    pub fn address_forgotten(
        &self,
        window_start: SystemTime,
        locked_until: Option<SystemTime>,
        now: SystemTime,
    ) -> bool {
        passed(window_start, self.failure_window, now) && lockout_over(locked_until, now)
    }
}

/// Whether `length` from `start` has passed at `now`; never, for a time beyond the calendar.
fn passed(start: SystemTime, length: Duration, now: SystemTime) -> bool {
    start.checked_add(length).is_some_and(|end| end <= now)
}

fn lockout_over(locked_until: Option<SystemTime>, now: SystemTime) -> bool {
    locked_until.is_none_or(|until| until <= now)
}

/// Which limit refused an attempt; a metric label, never a username or address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleKind {
    User,
    Address,
}

impl ThrottleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Address => "address",
        }
    }
}

/// The place an admitted attempt holds in its address's count: given back when the password
/// was right, and only within the window it was counted in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressClaim {
    pub address: String,
    pub window_start: SystemTime,
}

/// What a claim on one password check answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginClaim {
    /// Counted as a failure until the password proves right; it may be checked now.
    Admitted { address: Option<AddressClaim> },
    /// Locked out until `until`; nothing was counted.
    Refused {
        kind: ThrottleKind,
        until: SystemTime,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lockouts_double_up_to_the_maximum() {
        let limits = ThrottleLimits {
            user_max_failures: 10,
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            address_max_failures: 100,
            failure_window: Duration::from_secs(900),
            failure_reset: Duration::from_secs(43_200),
        };
        let minutes: Vec<u64> = [0, 1, 2, 5, 6, 7, 40, u32::MAX]
            .into_iter()
            .map(|earlier| limits.user_lockout(earlier).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [1, 2, 4, 32, 60, 60, 60, 60]);
    }
}
