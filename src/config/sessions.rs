//! How long sessions live, what they carry across login and logout, and how the expired
//! ones are swept.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{duration, non_empty};
use crate::domain::{SessionLimit, SessionLimitPolicy, SessionPolicy};

/// `SSOD_SESSION_LIMIT_POLICY`: what a login does when its user has
/// `SSOD_MAX_SESSIONS_PER_USER` live sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LimitPolicy {
    /// End the user's oldest sessions to make room.
    #[default]
    EndOldest,
    /// Refuse the login (`RESOURCE_EXHAUSTED` `SESSION_LIMIT_REACHED`).
    Refuse,
}

#[derive(Clone, Debug, Args)]
pub struct SessionsConfig {
    /// A session's expiry after login or renewal.
    #[arg(long = "session-idle-timeout", env = "SSOD_SESSION_IDLE_TIMEOUT", default_value = "60m", value_parser = duration, global = true)]
    pub idle_timeout: Duration,
    /// A guest session's expiry after creation or renewal.
    #[arg(long = "guest-idle-timeout", env = "SSOD_GUEST_IDLE_TIMEOUT", default_value = "30m", value_parser = duration, global = true)]
    pub guest_idle_timeout: Duration,
    /// Guest sessions held at once (expired ones count until the sweep); more are refused.
    #[arg(
        long,
        env = "SSOD_MAX_GUEST_SESSIONS",
        default_value_t = 1_000_000,
        global = true
    )]
    pub max_guest_sessions: usize,
    /// Renewal never extends a session past creation + this.
    #[arg(long = "session-max-lifetime", env = "SSOD_SESSION_MAX_LIFETIME", default_value = "12h", value_parser = duration, global = true)]
    pub max_lifetime: Duration,
    /// Use renews: a call authenticated by a session's UST slides its expiry, at most once
    /// per renewal interval (`false`: only `RenewSession` does).
    #[arg(
        long = "session-renew-on-use",
        env = "SSOD_SESSION_RENEW_ON_USE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub renew_on_use: bool,
    /// Least time between two renewals of one session by use.
    #[arg(long = "session-renew-interval", env = "SSOD_SESSION_RENEW_INTERVAL", default_value = "60s", value_parser = duration, global = true)]
    pub renew_interval: Duration,
    /// Session attribute names kept across login.
    #[arg(
        long,
        env = "SSOD_PERSISTENT_ON_LOGIN",
        value_delimiter = ',',
        global = true
    )]
    pub persistent_on_login: Vec<String>,
    /// Session attribute names kept across logout.
    #[arg(
        long,
        env = "SSOD_PERSISTENT_ON_LOGOUT",
        value_delimiter = ',',
        global = true
    )]
    pub persistent_on_logout: Vec<String>,
    /// Live sessions per user, on every replica together; 0 = no limit.
    #[arg(
        long,
        env = "SSOD_MAX_SESSIONS_PER_USER",
        default_value_t = 0,
        global = true
    )]
    pub max_sessions_per_user: usize,
    /// What a login past `--max-sessions-per-user` does.
    #[arg(
        long,
        env = "SSOD_SESSION_LIMIT_POLICY",
        value_enum,
        default_value_t,
        global = true
    )]
    pub session_limit_policy: LimitPolicy,
    /// Accepted `current_app` values; empty = any.
    #[arg(long, env = "SSOD_ALLOWED_APPS", value_delimiter = ',', global = true)]
    pub allowed_apps: Vec<String>,
    /// How often the background task sweeps expired sessions and attributes.
    #[arg(long, env = "SSOD_SWEEP_INTERVAL", default_value = "60s", value_parser = duration, global = true)]
    pub sweep_interval: Duration,
    /// Rows deleted per statement by the sweep and by bulk revocation.
    #[arg(long, env = "SSOD_SWEEP_BATCH", default_value_t = 1000, global = true)]
    pub sweep_batch: usize,
}

/// The session rules of the service policy; field names are the policy's.
pub struct SessionRules {
    pub sessions: SessionPolicy,
    pub persistent_on_login: Vec<String>,
    pub persistent_on_logout: Vec<String>,
    pub allowed_apps: Vec<String>,
    pub sweep_batch: usize,
    pub max_guest_sessions: usize,
    pub session_limit: Option<SessionLimit>,
    pub renew_on_use: Option<Duration>,
}

impl SessionsConfig {
    pub fn policy(&self) -> SessionRules {
        SessionRules {
            sessions: SessionPolicy {
                idle_timeout: self.idle_timeout,
                guest_idle_timeout: self.guest_idle_timeout,
                max_lifetime: self.max_lifetime,
            },
            persistent_on_login: non_empty(&self.persistent_on_login),
            persistent_on_logout: non_empty(&self.persistent_on_logout),
            allowed_apps: non_empty(&self.allowed_apps),
            sweep_batch: self.sweep_batch.max(1),
            max_guest_sessions: self.max_guest_sessions,
            session_limit: std::num::NonZeroUsize::new(self.max_sessions_per_user).map(|max| {
                SessionLimit {
                    max,
                    policy: match self.session_limit_policy {
                        LimitPolicy::EndOldest => SessionLimitPolicy::EndOldest,
                        LimitPolicy::Refuse => SessionLimitPolicy::Refuse,
                    },
                }
            }),
            renew_on_use: self.renew_on_use.then_some(self.renew_interval),
        }
    }
}
