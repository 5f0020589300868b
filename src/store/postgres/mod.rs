//! The PostgreSQL store: [`super::Store`] on tokio-postgres with a deadpool connection pool.
//!
//! # Schema
//!
//! `migrations/0001_initial.sql` explains each table by its access paths. In short: `users`
//! (unique `username_key`, folded in Rust and compared in the "C" collation, which also
//! orders the listing; `0004_username_key.sql`);
//! `sessions` (unique `token_hash`, the SHA-256 of the UST and the only form in which a token
//! is stored; `(user_id, id)` for listing; `expires_at` for the sweep); and one attribute
//! table per owner kind, `session_attributes` and `user_attributes`, each with a real
//! foreign key that cascades and a primary key `(owner, name)`. Two tables rather than one
//! with two nullable owner columns: each owner gets a plain primary key for `ON CONFLICT`, a
//! cascading foreign key, and no CHECK to keep exactly one owner set.
//!
//! # Migrations
//!
//! Numbered SQL files embedded in the binary ([`PostgresStore::migrate`], run by
//! `ssod migrate`), each applied in its own transaction under an advisory lock and recorded
//! in `ssod_schema_migrations`; [`PostgresStore::check_schema`] refuses a database that
//! lacks one or has one this build does not know.
//!
//! # Semantics
//!
//! Exactly those of [`super::memory::MemoryStore`], which the conformance suite checks
//! against both stores:
//! - expiry is decided by the `now` passed in (the injectable clock), never SQL `now()`;
//!   an expiry equal to `now` has passed;
//! - every operation that must be atomic is one statement or one transaction;
//! - `set_attributes` locks the owner row (`FOR NO KEY UPDATE`: checks the owner exists and
//!   queues concurrent writers of that owner), upserts all items in one
//!   `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE` that also counts the owner's
//!   other live rows, and rolls back if the owner would exceed the limit. The lock is what
//!   makes the per-owner limits (count and bytes) hold under concurrency: nothing else can
//!   add live rows to an owner, and everything else only removes them;
//! - guest sessions are counted in one row that triggers keep (`0003_guest_limits.sql`); a
//!   guest insert locks it and inserts only below the limit, so the cap holds across
//!   replicas without counting rows;
//! - bulk revocation deletes in keyset batches, each its own statement.
//!
//! Two differences from the memory store, both below anything a client can observe:
//! timestamps are stored with microsecond precision (PostgreSQL's), so a time read back is
//! truncated to the microsecond; and `lower()` follows the database's locale, which agrees
//! with Rust's `to_lowercase` for ASCII and, under a UTF-8 locale, for ordinary letters.
//!
//! # Connections
//!
//! Connections are opened lazily by the pool, so [`PostgresStore::connect`] does no I/O and
//! a database that is down fails calls with [`StoreError::Unavailable`] (and the health
//! check) rather than start-up. Every wait is bounded by [`PgSettings`]. A multi-host URL
//! with `target_session_attrs=read-write` makes each new connection find the primary. TLS to
//! PostgreSQL is not supported yet: connections use `NoTls`, so keep the database on a
//! private network (or a mesh that encrypts it).
//!
//! # Layout
//!
//! One file per capability (`users.rs`, `sessions.rs`, `attributes.rs`, `throttle.rs`), each beside its
//! statements in [`sql`]; this one holds the pool, health and the query helpers.

use std::{
    str::FromStr,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, Statement, types::ToSql};

use super::{PoolStatus, StoreError, StoreHealth, StoreResult};

mod attributes;
mod error;
mod migrations;
mod rows;
mod sessions;
pub mod sql;
mod throttle;
mod users;

use error::{from_pg, from_pool};

/// Pool size and the bounds on every wait for a connection.
#[derive(Clone, Copy, Debug)]
pub struct PgSettings {
    /// Most connections open at once.
    pub pool_size: usize,
    /// Longest wait for a free connection when all are busy.
    pub wait_timeout: Duration,
    /// Longest wait to open a new connection (TCP, authentication).
    pub create_timeout: Duration,
    /// Longest wait to check a pooled connection before reuse.
    pub recycle_timeout: Duration,
    /// Longest any statement may run (PostgreSQL's `statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            wait_timeout: Duration::from_secs(5),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// The PostgreSQL store. Clones share one pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the connection pool for a `postgres://` URL or a `key=value` connection string.
    /// No connection is opened here (see the module documentation).
    pub fn connect(url: &str, settings: PgSettings) -> Result<PostgresStore, StoreError> {
        // The parse error names the offending option, never the URL (which may hold a password).
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Internal(format!("invalid database url: {error}")))?;
        // A hung server or a dead network path fails calls within bounds instead of holding
        // them (and health) forever.
        let statement_timeout = format!(
            "-c statement_timeout={}",
            settings.statement_timeout.as_millis()
        );
        let options = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {statement_timeout}"),
            _ => statement_timeout,
        };
        config
            .options(&options)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.create_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| StoreError::Internal(format!("database pool: {error}")))?;
        Ok(PostgresStore { pool })
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(from_pool)
    }

    /// A pooled connection with `sql` prepared on it (once per connection).
    async fn prepared(&self, sql: &'static str) -> StoreResult<(Object, Statement)> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
        Ok((client, statement))
    }

    // Each runs one statement outside a transaction.

    async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let (client, statement) = self.prepared(sql).await?;
        client.query_opt(&statement, params).await.map_err(from_pg)
    }

    /// One row decoded, if the statement returned one.
    async fn query_opt_decoded<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        decode: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = self.query_opt(sql, params).await?;
        row.map(|row| decode(&row)).transpose()
    }

    async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Row> {
        let (client, statement) = self.prepared(sql).await?;
        client.query_one(&statement, params).await.map_err(from_pg)
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let (client, statement) = self.prepared(sql).await?;
        client.query(&statement, params).await.map_err(from_pg)
    }

    async fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let (client, statement) = self.prepared(sql).await?;
        client.execute(&statement, params).await.map_err(from_pg)
    }
}

/// A sweep's delete, `$1` now, `$2` at most `batch` rows, then `more`: run until a batch
/// deletes fewer rows than that; how many it deleted in all. Each batch is its own
/// statement, so its row locks are held for one batch at a time.
async fn delete_in_batches(
    client: &Object,
    sql: &'static str,
    now: SystemTime,
    batch: i64,
    more: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&now, &batch];
    params.extend_from_slice(more);
    let mut total = 0;
    loop {
        let deleted = client.execute(&statement, &params).await.map_err(from_pg)?;
        total += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < batch {
            return Ok(total);
        }
    }
}

#[async_trait]
impl StoreHealth for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.query_one(sql::PING, &[]).await.map(drop)
    }

    /// Closes the pool: connections are dropped as they are returned, and new requests fail
    /// with [`StoreError::Unavailable`].
    fn close(&self) {
        self.pool.close();
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        for url in [
            "postgres://u:s3cret@host:notaport/db",
            "postgres://u:s3cret@host/db?connect_timeout=s3cret",
            "postgres://u:s3cret@host/db?sslmode=s3cret",
            "postgres://u:s3cret@host/db?s3cret=1",
            "host=h password=s3cret port=x",
        ] {
            let error = PostgresStore::connect(url, PgSettings::default())
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(error.contains("invalid database url"), "{url}: {error}");
            assert!(!error.contains("s3cret"), "{url}: {error}");
        }
    }
}
