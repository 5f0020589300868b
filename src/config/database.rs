//! PostgreSQL: where it is, what to do about its schema, and the connection pool.

use std::{fmt, time::Duration};

use clap::{Args, ValueEnum};

use super::{Redacted, duration};
use crate::store::postgres::PgSettings;

/// What to do about the PostgreSQL schema at start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SchemaMode {
    /// Apply pending migrations (under an advisory lock) before serving.
    #[default]
    Migrate,
    /// Refuse to serve unless every migration is already applied.
    Check,
}

#[derive(Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL; absent = the embedded in-memory store.
    #[arg(
        long = "database-url",
        env = "SSOD_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub url: Option<String>,
    /// PostgreSQL: at start-up apply migrations, or only check them.
    #[arg(long, env = "SSOD_SCHEMA", value_enum, default_value_t = SchemaMode::Migrate, global = true)]
    pub schema: SchemaMode,
    /// PostgreSQL: connections in the pool.
    #[arg(
        long = "db-pool-size",
        env = "SSOD_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub pool_size: usize,
    /// PostgreSQL: how long a call waits for a free connection.
    #[arg(long = "db-wait-timeout", env = "SSOD_DB_WAIT_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub wait_timeout: Duration,
    /// PostgreSQL: how long opening a connection may take.
    #[arg(long = "db-create-timeout", env = "SSOD_DB_CREATE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub create_timeout: Duration,
    /// PostgreSQL: how long one statement may run.
    #[arg(long = "db-statement-timeout", env = "SSOD_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = duration, global = true)]
    pub statement_timeout: Duration,
    /// PostgreSQL: how long checking a pooled connection may take.
    #[arg(long = "db-recycle-timeout", env = "SSOD_DB_RECYCLE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub recycle_timeout: Duration,
}

impl DatabaseConfig {
    pub fn pg_settings(&self) -> PgSettings {
        PgSettings {
            pool_size: self.pool_size.max(1),
            wait_timeout: self.wait_timeout,
            create_timeout: self.create_timeout,
            recycle_timeout: self.recycle_timeout,
            statement_timeout: self.statement_timeout,
        }
    }
}

/// The URL may carry a password.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so a new field cannot be left out unnoticed.
        let Self {
            url,
            schema,
            pool_size,
            wait_timeout,
            create_timeout,
            statement_timeout,
            recycle_timeout,
        } = self;
        f.debug_struct("DatabaseConfig")
            .field("url", &Redacted(url))
            .field("schema", schema)
            .field("pool_size", pool_size)
            .field("wait_timeout", wait_timeout)
            .field("create_timeout", create_timeout)
            .field("statement_timeout", statement_timeout)
            .field("recycle_timeout", recycle_timeout)
            .finish()
    }
}
