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
//! - the hot path is one round trip per call: the token look-up with its user (renewing the
//!   session in the same statement when due), each attribute read, each attribute write;
//! - `set_attributes` is one statement calling a PL/pgSQL function
//!   (`0006_attribute_writes.sql`) that locks the owner row (`FOR NO KEY UPDATE`: checks the
//!   owner exists and queues concurrent writers of that owner), then counts the owner's live
//!   rows in a fresh snapshot and upserts all items in one
//!   `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`, or writes nothing if the owner
//!   would exceed a limit. The lock is what makes the per-owner limits (count and bytes) hold
//!   under concurrency: nothing else can add live rows to an owner, and everything else only
//!   removes them;
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
//! with `target_session_attrs=read-write` makes each new connection find the primary. TLS
//! follows libpq's `sslmode` and `sslrootcert` (see [`tls`]).
//!
//! # Dead connections
//!
//! After a database restart or failover the pooled connections are dead. The pool checks
//! each one before handing it out (`is_closed()`: the connection task has seen the socket
//! end, as it does when the server terminates it), so a call gets a fresh one instead. A
//! call whose connection dies under it anyway is retried once, on a fresh connection, only
//! where running it twice cannot apply it twice: every store method states its [`Retry`]
//! class at the [`PostgresStore::with_client`] call. A connection found dead is dropped,
//! never returned to the pool.
//!
//! # Layout
//!
//! One file per capability (`users.rs`, `sessions.rs`, `attributes.rs`, `throttle.rs`,
//! `credentials.rs`), each beside its
//! statements in [`sql`]; this one holds the pool, health and the query helpers;
//! [`listener`] holds the one connection outside the pool, which receives `NOTIFY`s.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Row, types::ToSql};

use super::{PoolStatus, StoreError, StoreHealth, StoreResult};

mod accounts;
mod attributes;
mod credentials;
mod error;
pub mod events;
pub mod listener;
mod migrations;
mod rows;
mod sessions;
pub mod sql;
mod throttle;
mod tls;
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
        let (mut config, tls) = connection_config(url)?;
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
        config.options(&options);
        let manager = Manager::from_config(
            config,
            tls,
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

    /// Runs `call` on a pooled connection. If it fails and the connection turns out dead, the
    /// connection is dropped rather than returned to the pool, and a [`Retry::Safe`] call runs
    /// once more on a fresh one. `call` owns the connection while it runs and hands it back
    /// with its result (a closure borrowing it could not say its future is `Send`).
    async fn with_client<T, Call, Running>(&self, retry: Retry, mut call: Call) -> StoreResult<T>
    where
        Call: FnMut(Object) -> Running,
        Running: Future<Output = (Object, StoreResult<T>)>,
    {
        let (client, result) = call(self.client().await?).await;
        let Err(error) = &result else {
            return result;
        };
        // A server that ends a connection says why first (57P01 on shutdown), so the call can
        // fail before the connection is seen closed: on such errors, ask the connection.
        let dead = client.is_closed()
            || (matches!(error, StoreError::Unavailable(_))
                && client.check_connection().await.is_err());
        if !dead {
            return result;
        }
        drop(Object::take(client));
        match retry {
            Retry::Never => result,
            Retry::Safe => {
                tracing::debug!("database connection lost; retrying the call on a fresh one");
                call(self.client().await?).await.1
            }
        }
    }

    // Each runs one statement outside a transaction, `sql` prepared once per connection.

    async fn query_opt(
        &self,
        retry: Retry,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        self.with_client(retry, move |client| async move {
            let result = async {
                let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
                client.query_opt(&statement, params).await.map_err(from_pg)
            }
            .await;
            (client, result)
        })
        .await
    }

    /// One row decoded, if the statement returned one.
    async fn query_opt_decoded<T>(
        &self,
        retry: Retry,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        decode: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = self.query_opt(retry, sql, params).await?;
        row.map(|row| decode(&row)).transpose()
    }

    async fn query_one(
        &self,
        retry: Retry,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Row> {
        self.with_client(retry, move |client| async move {
            let result = async {
                let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
                client.query_one(&statement, params).await.map_err(from_pg)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn query(
        &self,
        retry: Retry,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        self.with_client(retry, move |client| async move {
            let result = async {
                let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
                client.query(&statement, params).await.map_err(from_pg)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn execute(
        &self,
        retry: Retry,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        self.with_client(retry, move |client| async move {
            let result = async {
                let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
                client.execute(&statement, params).await.map_err(from_pg)
            }
            .await;
            (client, result)
        })
        .await
    }
}

/// The configuration and TLS connector for a connection string, with TCP keepalives so a dead
/// network path is noticed: shared by the pool and the [`listener::Listener`].
fn connection_config(
    url: &str,
) -> StoreResult<(
    tokio_postgres::Config,
    tokio_postgres_rustls::MakeRustlsConnect,
)> {
    let (mut config, tls) = tls::configure(url)?;
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    Ok((config, tls))
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

/// Whether a call may run again on a fresh connection after its connection died under it,
/// when nobody can tell whether the server applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Running it twice answers and leaves the database as running it once: reads, and writes
    /// that set given values (an upsert, a new expiry).
    Safe,
    /// It could apply twice or answer differently the second time (an insert, a counter, a
    /// delete that reports what it deleted): the caller gets the failure.
    Never,
}

#[async_trait]
impl StoreHealth for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.query_one(Retry::Safe, sql::PING, &[]).await.map(drop)
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
