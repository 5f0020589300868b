//! Brute-force protection: when failed logins lock a username or a client address out.

use std::time::Duration;

use clap::Args;

use super::duration;
use crate::domain::ThrottleLimits;

#[derive(Clone, Debug, Args)]
pub struct LockoutConfig {
    /// Consecutive failed logins of one username before it is locked out.
    #[arg(long, env = "SSOD_LOGIN_MAX_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub login_max_failures: u32,
    /// The first lockout (of a username or an address); each further one of a username
    /// doubles, up to `--login-max-lockout`.
    #[arg(long, env = "SSOD_LOGIN_LOCKOUT", default_value = "1m", value_parser = duration, global = true)]
    pub login_lockout: Duration,
    /// The longest lockout of a username.
    #[arg(long, env = "SSOD_LOGIN_MAX_LOCKOUT", default_value = "1h", value_parser = duration, global = true)]
    pub login_max_lockout: Duration,
    /// Failed logins from one `remote_addr` within `--login-failure-window` before its
    /// attempts are refused for the lockout time.
    #[arg(long, env = "SSOD_ADDRESS_MAX_FAILURES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub address_max_failures: u32,
    /// The window in which an address's failures are counted.
    #[arg(long, env = "SSOD_LOGIN_FAILURE_WINDOW", default_value = "15m", value_parser = duration, global = true)]
    pub login_failure_window: Duration,
    /// A username's failed logins and lockout history are forgotten once its last failure is
    /// this old and no lockout of it is running.
    #[arg(long, env = "SSOD_LOGIN_FAILURE_RESET", default_value = "12h", value_parser = positive_duration, global = true)]
    pub login_failure_reset: Duration,
}

impl LockoutConfig {
    /// The throttle limits of the service policy.
    pub fn policy(&self) -> ThrottleLimits {
        ThrottleLimits {
            user_max_failures: self.login_max_failures,
            lockout: self.login_lockout,
            max_lockout: self.login_max_lockout,
            address_max_failures: self.address_max_failures,
            failure_window: self.login_failure_window,
            failure_reset: self.login_failure_reset,
        }
    }
}

/// A reset time of zero would forget every failure at once: no username would ever be
/// locked out.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err("must be longer than zero".into()),
        positive => Ok(positive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_time_of_zero_is_refused() {
        assert_eq!(positive_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(positive_duration("0s").is_err());
    }
}
