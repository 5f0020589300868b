//! The one typed configuration. Every setting is a flag and an environment variable
//! (flags win); secrets come only from the environment or the command line.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{crypto::HasherSettings, domain::Limits, service::Policy};

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
        /// generated and printed once to stderr.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// What to do about the PostgreSQL schema at start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SchemaMode {
    /// Apply pending migrations (under an advisory lock) before serving.
    #[default]
    Migrate,
    /// Refuse to serve unless every migration is already applied.
    Check,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// gRPC listen address.
    #[arg(
        long,
        env = "SSOD_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: SocketAddr,
    /// PostgreSQL URL; absent = the embedded in-memory store.
    #[arg(long, env = "SSOD_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
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
    /// Comma-separated `id:base64` 256-bit keys; the first encrypts, all decrypt.
    #[arg(
        long,
        env = "SSOD_ENCRYPTION_KEYS",
        hide_env_values = true,
        global = true
    )]
    pub encryption_keys: Option<String>,
    /// A session's expiry after login or renewal.
    #[arg(long, env = "SSOD_SESSION_IDLE_TIMEOUT", default_value = "60m", value_parser = duration, global = true)]
    pub session_idle_timeout: Duration,
    /// Renewal never extends a session past creation + this.
    #[arg(long, env = "SSOD_SESSION_MAX_LIFETIME", default_value = "12h", value_parser = duration, global = true)]
    pub session_max_lifetime: Duration,
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
    /// Accepted `current_app` values; empty = any.
    #[arg(long, env = "SSOD_ALLOWED_APPS", value_delimiter = ',', global = true)]
    pub allowed_apps: Vec<String>,
    /// Say why a correct password was refused (locked, unapproved, expired password).
    #[arg(long, env = "SSOD_REVEAL_LOGIN_FAILURES", global = true)]
    pub reveal_login_failures: bool,
    /// New passwords expire after this; absent = never.
    #[arg(long, env = "SSOD_PASSWORD_MAX_AGE", value_parser = duration, global = true)]
    pub password_max_age: Option<Duration>,
    /// Login sets `password_expiry_warning` within this of the expiry.
    #[arg(long, env = "SSOD_PASSWORD_EXPIRY_WARNING", default_value = "7days", value_parser = duration, global = true)]
    pub password_expiry_warning: Duration,
    #[arg(
        long,
        env = "SSOD_PASSWORD_MIN_LENGTH",
        default_value_t = 8,
        global = true
    )]
    pub password_min_length: usize,
    #[arg(
        long,
        env = "SSOD_PASSWORD_MAX_LENGTH",
        default_value_t = 256,
        global = true
    )]
    pub password_max_length: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTE_NAME_CHARS",
        default_value_t = 191,
        global = true
    )]
    pub max_attribute_name_chars: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTE_VALUE_BYTES",
        default_value_t = 65536,
        global = true
    )]
    pub max_attribute_value_bytes: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTES_PER_WRITE",
        default_value_t = 1000,
        global = true
    )]
    pub max_attributes_per_write: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTES_PER_OWNER",
        default_value_t = 1000,
        global = true
    )]
    pub max_attributes_per_owner: usize,
    /// How often the background task sweeps expired sessions and attributes.
    #[arg(long, env = "SSOD_SWEEP_INTERVAL", default_value = "60s", value_parser = duration, global = true)]
    pub sweep_interval: Duration,
    /// Rows deleted per sweep statement.
    #[arg(long, env = "SSOD_SWEEP_BATCH", default_value_t = 1000, global = true)]
    pub sweep_batch: usize,
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
    /// How often the store is pinged: health turns NOT_SERVING while it does not answer.
    #[arg(long, env = "SSOD_HEALTH_PROBE_INTERVAL", default_value = "2s", value_parser = duration, global = true)]
    pub health_probe_interval: Duration,
    /// How long shutdown waits for in-flight calls.
    #[arg(long, env = "SSOD_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration, global = true)]
    pub shutdown_timeout: Duration,
    #[arg(long, env = "SSOD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "SSOD_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Prometheus metrics address (`/metrics`); absent = no metrics endpoint.
    #[arg(long, env = "SSOD_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM server certificate chain; with `--tls-key` the server speaks TLS.
    #[arg(long, env = "SSOD_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "SSOD_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[arg(long, env = "SSOD_TLS_CLIENT_CA", requires = "tls_cert", global = true)]
    pub tls_client_ca: Option<PathBuf>,
    /// PostgreSQL: at start-up apply migrations, or only check them.
    #[arg(long, env = "SSOD_SCHEMA", value_enum, default_value_t = SchemaMode::Migrate, global = true)]
    pub schema: SchemaMode,
    /// PostgreSQL: connections in the pool.
    #[arg(long, env = "SSOD_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: usize,
    /// PostgreSQL: how long a call waits for a free connection.
    #[arg(long, env = "SSOD_DB_WAIT_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub db_wait_timeout: Duration,
    /// PostgreSQL: how long opening a connection may take.
    #[arg(long, env = "SSOD_DB_CREATE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub db_create_timeout: Duration,
    /// PostgreSQL: how long one statement may run.
    #[arg(long, env = "SSOD_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = duration, global = true)]
    pub db_statement_timeout: Duration,
    /// PostgreSQL: how long checking a pooled connection may take.
    #[arg(long, env = "SSOD_DB_RECYCLE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub db_recycle_timeout: Duration,
}

impl Config {
    /// The defaults, as if no flag or variable were given (environment ignored).
    pub fn defaults() -> Self {
        let mut cli = Cli::command_for_defaults();
        cli.config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cli.config
    }

    pub fn policy(&self) -> Policy {
        Policy {
            sessions: crate::domain::SessionPolicy {
                idle_timeout: self.session_idle_timeout,
                max_lifetime: self.session_max_lifetime,
            },
            limits: Limits {
                max_name_chars: self.max_attribute_name_chars,
                max_value_bytes: self.max_attribute_value_bytes,
                max_items_per_write: self.max_attributes_per_write,
                max_attributes_per_owner: self.max_attributes_per_owner,
                min_password_chars: self.password_min_length,
                max_password_chars: self.password_max_length,
                ..Limits::default()
            },
            persistent_on_login: non_empty(&self.persistent_on_login),
            persistent_on_logout: non_empty(&self.persistent_on_logout),
            allowed_apps: non_empty(&self.allowed_apps),
            reveal_login_failures: self.reveal_login_failures,
            password_max_age: self.password_max_age,
            password_expiry_warning: self.password_expiry_warning,
            sweep_batch: self.sweep_batch.max(1),
        }
    }

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

fn non_empty(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}
