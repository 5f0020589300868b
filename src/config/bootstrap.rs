//! The super-user created at start-up.

use std::fmt;

use clap::Args;

use super::Redacted;

#[derive(Clone, Args)]
pub struct BootstrapConfig {
    /// At start-up, create this super-user if no user has that name.
    #[arg(long, env = "SSOD_SUPER_USER", global = true)]
    pub super_user: Option<String>,
    /// The start-up super-user's password; generated and printed once when absent.
    #[arg(
        long,
        env = "SSOD_SUPER_USER_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub super_user_password: Option<String>,
}

impl fmt::Debug for BootstrapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            super_user,
            super_user_password,
        } = self;
        f.debug_struct("BootstrapConfig")
            .field("super_user", super_user)
            .field("super_user_password", &Redacted(super_user_password))
            .finish()
    }
}
