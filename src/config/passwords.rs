//! Password expiry, hashing capacity, and what a refused login may reveal.

use std::time::Duration;

use clap::Args;

use super::duration;
use crate::crypto::HasherSettings;

#[derive(Clone, Debug, Args)]
pub struct PasswordsConfig {
    /// New passwords expire after this; absent = never.
    #[arg(long = "password-max-age", env = "SSOD_PASSWORD_MAX_AGE", value_parser = duration, global = true)]
    pub max_age: Option<Duration>,
    /// Login sets `password_expiry_warning` within this of the expiry.
    #[arg(long = "password-expiry-warning", env = "SSOD_PASSWORD_EXPIRY_WARNING", default_value = "7days", value_parser = duration, global = true)]
    pub expiry_warning: Duration,
    /// Argon2id hasher threads (hashes running at once); 0 = one fewer than the CPUs (at
    /// least one), so a login storm leaves a core to verifications.
    #[arg(
        long,
        env = "SSOD_MAX_CONCURRENT_HASHES",
        default_value_t = 0,
        global = true
    )]
    pub max_concurrent_hashes: usize,
    /// Password hashes that may wait beyond those running; more are refused as overloaded.
    #[arg(
        long,
        env = "SSOD_MAX_PENDING_HASHES",
        default_value_t = 64,
        global = true
    )]
    pub max_pending_hashes: usize,
    /// Say why a correct password was refused (locked, unapproved, expired password).
    #[arg(long, env = "SSOD_REVEAL_LOGIN_FAILURES", global = true)]
    pub reveal_login_failures: bool,
}

/// The password rules of the service policy; field names are the policy's.
pub struct PasswordRules {
    pub password_max_age: Option<Duration>,
    pub password_expiry_warning: Duration,
    pub reveal_login_failures: bool,
}

impl PasswordsConfig {
    pub fn policy(&self) -> PasswordRules {
        PasswordRules {
            password_max_age: self.max_age,
            password_expiry_warning: self.expiry_warning,
            reveal_login_failures: self.reveal_login_failures,
        }
    }

    /// The hasher pool's size, with 0 threads resolved from the CPUs.
    pub fn hasher_settings(&self) -> HasherSettings {
        let threads = match self.max_concurrent_hashes {
            0 => std::thread::available_parallelism()
                .map_or(1, |cpus| usize::from(cpus).saturating_sub(1).max(1)),
            n => n,
        };
        HasherSettings {
            threads,
            max_pending: self.max_pending_hashes,
        }
    }
}
