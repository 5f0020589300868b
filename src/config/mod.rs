//! The one typed configuration. Every setting is a flag and an environment variable
//! (flags win); secrets come only from the environment or the command line.
//!
//! [`Config`] is made of groups, one per concern, each flattened into the one command line:
//! the flags stay flat (`--session-idle-timeout`), the code reads `config.sessions.idle_timeout`.
//! A field named shorter inside its group spells its flag out (`long = "session-idle-timeout"`).
//! Every setting is `global` so the subcommands accept it too.

use std::{fmt, net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::service::Policy;

mod accounts;
mod bootstrap;
mod cache;
mod credentials;
mod database;
mod encryption;
mod events;
mod limits;
mod lockout;
mod mail;
mod passwords;
mod server;
mod sessions;
mod tls;

#[cfg(test)]
#[allow(clippy::expect_used)]
mod readme;

pub use accounts::{AccountsConfig, SignUpSetting};
pub use bootstrap::BootstrapConfig;
pub use cache::CacheConfig;
pub use credentials::CredentialsConfig;
pub use database::{DatabaseConfig, SchemaMode};
pub use encryption::EncryptionConfig;
pub use events::{EventRules, EventsConfig};
pub use limits::LimitsConfig;
pub use lockout::LockoutConfig;
pub use mail::{DeliverySetting, MailConfig};
pub use passwords::{PasswordRules, PasswordsConfig};
pub use server::{LogFormat, ServerConfig};
pub use sessions::{LimitPolicy, SessionRules, SessionsConfig};
pub use tls::TlsConfig;

#[derive(Debug, Parser)]
#[command(
    name = "ssod",
    version,
    about = "Single-sign-on session service over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply PostgreSQL migrations and exit.
    Migrate,
    /// Create a super-user in PostgreSQL and exit.
    CreateSuperUser {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input; otherwise one is
        /// generated and shown once: on stderr if it is a terminal, else written to a new
        /// `--super-user-password-file`, else not at all.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub tls: TlsConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub bootstrap: BootstrapConfig,
    #[command(flatten)]
    pub encryption: EncryptionConfig,
    #[command(flatten)]
    pub sessions: SessionsConfig,
    #[command(flatten)]
    pub passwords: PasswordsConfig,
    #[command(flatten)]
    pub credentials: CredentialsConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub lockout: LockoutConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
    #[command(flatten)]
    pub events: EventsConfig,
    #[command(flatten)]
    pub accounts: AccountsConfig,
    #[command(flatten)]
    pub mail: MailConfig,
}

impl Config {
    /// The defaults, as if no flag or variable were given (environment ignored).
    pub fn defaults() -> Self {
        let mut cli = Cli::command_for_defaults();
        cli.config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cli.config
    }

    /// The service policy, assembled from the groups' parts of it.
    pub fn policy(&self) -> Policy {
        let SessionRules {
            sessions,
            persistent_on_login,
            persistent_on_logout,
            allowed_apps,
            sweep_batch,
            max_guest_sessions,
            session_limit,
            renew_on_use,
        } = self.sessions.policy();
        let PasswordRules {
            password_max_age,
            password_expiry_warning,
            reveal_login_failures,
        } = self.passwords.policy();
        let EventRules {
            event_retention,
            event_heartbeat,
            session_read_interval,
        } = self.events.policy();
        Policy {
            sessions,
            limits: self.limits.policy(),
            persistent_on_login,
            persistent_on_logout,
            allowed_apps,
            reveal_login_failures,
            password_max_age,
            password_expiry_warning,
            sweep_batch,
            throttle: self.lockout.policy(),
            credentials: self.credentials.policy(),
            max_guest_sessions,
            session_limit,
            renew_on_use,
            event_retention,
            event_heartbeat,
            session_read_interval,
            accounts: self.accounts.policy(self.mail.delivery()),
        }
    }
}

impl Cli {
    fn command_for_defaults() -> Self {
        // Parsing no arguments cannot fail: every setting has a default or is optional.
        // Environment variables are not consulted for tests that build configs in code.
        let matches = <Self as clap::CommandFactory>::command()
            .mut_args(|arg| arg.env(None::<&str>))
            .get_matches_from(["ssod"]);
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
            .unwrap_or_else(|error| error.exit())
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

fn non_empty(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// A secret in `Debug` output: whether it is set, never its value.
struct Redacted<'a>(&'a Option<String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Some([redacted])",
            None => "None",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let mut config = Config::defaults();
        config.database.url = Some("postgres://ssod:db-secret-1@db/ssod".into());
        config.bootstrap.super_user = Some("root".into());
        config.bootstrap.super_user_password = Some("super-secret-2".into());
        config.encryption.keys = Some("k1:key-secret-3".into());
        config.mail.smtp_url = Some("smtp://relay:mail-secret-4@mail.example".into());
        let cli = Cli {
            command: None,
            config,
        };
        let printed = format!("{cli:?} {cli:#?}");
        for secret in [
            "db-secret-1",
            "super-secret-2",
            "key-secret-3",
            "mail-secret-4",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("super_user: Some(\"root\")"), "{printed}");
        assert!(printed.contains("Some([redacted])"), "{printed}");
    }

    #[test]
    fn every_setting_is_global() {
        let command = Cli::command();
        let local: Vec<_> = command
            .get_arguments()
            .filter(|arg| arg.get_env().is_some() && !arg.is_global_set())
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(
            local.is_empty(),
            "not global, so subcommands refuse them: {local:?}"
        );
    }
}
