//! The PostgreSQL store: [`Store`] on tokio-postgres with a deadpool connection pool.
//!
//! # Schema
//!
//! `migrations/0001_initial.sql` explains each table by its access paths. In short: `users`
//! (unique index on `lower(username)` in the "C" collation, which also orders the listing);
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
//!   makes the per-owner limit hold under concurrency: nothing else can add live rows to an
//!   owner, and everything else only removes them.
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

use std::{collections::HashMap, str::FromStr, time::Duration, time::SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, types::ToSql};
use uuid::Uuid;

use super::{
    AttributeStore, PoolStatus, SessionStore, StoreError, StoreHealth, StoreResult, UserStore,
};
use crate::domain::{
    DeleteAttributes, DeleteSession, DeleteSessions, DeleteUser, EndSessions, OpenSession, Owner,
    PurgeCounts, PurgeExpired, RenewSession, Session, SessionId, SessionSelector, SessionWithUser,
    SetAttributeExpiry, SetAttributes, StoredAttribute, TokenHash, UpdateUser, User, UserId,
    UserPage, UserQuery, UserRecord, Write,
};

mod error;
mod migrations;
mod rows;
mod sql;

use error::{from_pg, from_pool};
use rows::{AttributeArrays, to_i64, to_u64};
use sql::AttributeSql;

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

    /// Prepares (once per connection) and runs one statement outside a transaction.
    async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
        client.query_opt(&statement, params).await.map_err(from_pg)
    }

    async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Row> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
        client.query_one(&statement, params).await.map_err(from_pg)
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
        client.query(&statement, params).await.map_err(from_pg)
    }

    async fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
        client.execute(&statement, params).await.map_err(from_pg)
    }

    /// Runs an owner's attribute query: `all_sql` (`$1` owner, `$2` now) when `names` is
    /// `None`, else `named_sql` (with `$3` the names).
    async fn owner_rows(
        &self,
        all_sql: &'static str,
        named_sql: &'static str,
        owner_id: Uuid,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<Row>> {
        match names {
            None => self.query(all_sql, &[&owner_id, &now]).await,
            Some(names) => self.query(named_sql, &[&owner_id, &now, &names]).await,
        }
    }
}

fn attribute_sql(owner: Owner) -> (&'static AttributeSql, Uuid) {
    match owner {
        Owner::Session(id) => (&sql::SESSION_ATTRIBUTES, id.0),
        Owner::User(id) => (&sql::USER_ATTRIBUTES, id.0),
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

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User> {
        let Write {
            command: record, ..
        } = write;
        let user = &record.user;
        let row = self
            .query_one(
                sql::CREATE_USER,
                &[
                    &user.id.0,
                    &user.username,
                    &user.profile.email,
                    &user.profile.display_name,
                    &user.profile.first_name,
                    &user.profile.middle_name,
                    &user.profile.last_name,
                    &user.is_super_user,
                    &user.is_locked,
                    &user.approval_status.as_str(),
                    &record.password_hash,
                    &user.password_must_change,
                    &user.password_expiry,
                    &user.created_at,
                    &user.last_login_at,
                ],
            )
            .await?;
        rows::user(&row, 0)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let row = self.query_opt(sql::USER_BY_ID, &[&id.0]).await?;
        row.map(|row| rows::user_record(&row, 0)).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = self.query_opt(sql::USER_BY_USERNAME, &[&username]).await?;
        row.map(|row| rows::user_record(&row, 0)).transpose()
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let pattern = like_prefix(&query.username_prefix);
        let status = query.approval_status.map(|status| status.as_str());
        let rows = self
            .query(
                sql::LIST_USERS,
                &[&pattern, &status, &query.after, &to_i64(query.limit)],
            )
            .await?;
        let mut total_size = 0;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            total_size = to_u64(row.try_get(0).map_err(from_pg)?);
            let id: Option<Uuid> = row.try_get(1).map_err(from_pg)?;
            if id.is_some() {
                users.push(rows::user(row, 1)?);
            }
        }
        Ok(UserPage { users, total_size })
    }

    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User> {
        let Write {
            command:
                UpdateUser {
                    id,
                    patch,
                    end_sessions,
                },
            ..
        } = write;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(from_pg)?;
        let statement = transaction
            .prepare_cached(sql::UPDATE_USER)
            .await
            .map_err(from_pg)?;
        let row = transaction
            .query_opt(
                &statement,
                &[
                    &id.0,
                    &patch.email,
                    &patch.display_name,
                    &patch.first_name,
                    &patch.middle_name,
                    &patch.last_name,
                    &patch.is_super_user,
                    &patch.is_locked,
                    &patch.approval_status.map(|status| status.as_str()),
                    &patch.password_hash,
                    &patch.password_must_change,
                    &patch.password_expiry.is_some(),
                    &patch.password_expiry.flatten(),
                ],
            )
            .await
            .map_err(from_pg)?;
        let keep = match end_sessions {
            EndSessions::None => None,
            EndSessions::All => Some(None),
            EndSessions::AllBut(keep) => Some(Some(keep.0)),
        };
        if let (Some(keep), Some(_)) = (keep, &row) {
            let statement = transaction
                .prepare_cached(sql::END_USER_SESSIONS)
                .await
                .map_err(from_pg)?;
            transaction
                .execute(&statement, &[&id.0, &keep])
                .await
                .map_err(from_pg)?;
        }
        transaction.commit().await.map_err(from_pg)?;
        match row {
            Some(row) => rows::user(&row, 0),
            None => Err(StoreError::UserNotFound),
        }
    }

    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool> {
        let Write {
            command: DeleteUser { id },
            ..
        } = write;
        let deleted = self.execute(sql::DELETE_USER, &[&id.0]).await?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session> {
        let Write { now, command: open } = write;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(from_pg)?;
        let new = &open.new.session;
        let user_id = new.user_id.map(|id| id.0);
        // The user row first, as `update_user` does, so the two lock in the same order.
        if let (Some(login), Some(user_id)) = (&open.login, user_id) {
            let statement = transaction
                .prepare_cached(sql::RECORD_LOGIN)
                .await
                .map_err(from_pg)?;
            let change = login.new_password.as_ref();
            let updated = transaction
                .execute(
                    &statement,
                    &[
                        &user_id,
                        &new.created_at,
                        &change.map(|change| change.password_hash.as_str()),
                        &change.map(|change| change.password_must_change),
                        &change.and_then(|change| change.password_expiry),
                        &login.verified_hash,
                    ],
                )
                .await
                .map_err(from_pg)?;
            if updated == 0 {
                // Only on this failure path: say whether the user is gone or just changed.
                let exists = transaction
                    .query_opt(sql::USER_EXISTS, &[&user_id])
                    .await
                    .map_err(from_pg)?
                    .is_some();
                return Err(if exists {
                    StoreError::UserChanged
                } else {
                    StoreError::UserNotFound
                });
            }
        }
        let statement = transaction
            .prepare_cached(sql::INSERT_SESSION)
            .await
            .map_err(from_pg)?;
        let arrays = AttributeArrays::new(&open.attributes);
        let row = transaction
            .query_one(
                &statement,
                &[
                    &new.id.0,
                    &open.new.token_hash.0.as_slice(),
                    &user_id,
                    &new.current_app,
                    &new.remote_addr,
                    &new.user_agent,
                    &new.created_at,
                    &new.expires_at,
                    &new.last_renewed_at,
                    &now,
                    &arrays.names,
                    &arrays.values,
                    &arrays.key_ids,
                    &arrays.expires_at,
                ],
            )
            .await
            .map_err(from_pg)?;
        let session = rows::session(&row, 0)?;
        if let Some(replaced) = open.replaces {
            let statement = transaction
                .prepare_cached(sql::END_REPLACED_SESSION)
                .await
                .map_err(from_pg)?;
            let ended = transaction
                .execute(&statement, &[&replaced.0, &now])
                .await
                .map_err(from_pg)?;
            if ended == 0 {
                return Err(StoreError::SessionNotFound);
            }
        }
        transaction.commit().await.map_err(from_pg)?;
        Ok(session)
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        let row = self
            .query_opt(sql::SESSION_BY_TOKEN, &[&hash.0.as_slice(), &now])
            .await?;
        row.map(|row| rows::session_with_user(&row)).transpose()
    }

    async fn session_by_id(
        &self,
        id: SessionId,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        let row = self.query_opt(sql::SESSION_BY_ID, &[&id.0, &now]).await?;
        row.map(|row| rows::session_with_user(&row)).transpose()
    }

    async fn renew_session(&self, write: Write<RenewSession>) -> StoreResult<Option<Session>> {
        let Write {
            now,
            command: RenewSession { id, expires_at },
        } = write;
        let row = self
            .query_opt(sql::RENEW_SESSION, &[&id.0, &expires_at, &now])
            .await?;
        row.map(|row| rows::session(&row, 0)).transpose()
    }

    async fn list_sessions(
        &self,
        user: UserId,
        after: Option<SessionId>,
        limit: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<Session>> {
        let limit = to_i64(limit);
        let rows = match after {
            None => {
                self.query(sql::LIST_SESSIONS, &[&user.0, &now, &limit])
                    .await?
            }
            Some(after) => {
                self.query(sql::LIST_SESSIONS_AFTER, &[&user.0, &now, &limit, &after.0])
                    .await?
            }
        };
        rows.iter().map(|row| rows::session(row, 0)).collect()
    }

    async fn delete_session(&self, write: Write<DeleteSession>) -> StoreResult<bool> {
        let Write {
            now,
            command: DeleteSession { id },
        } = write;
        let row = self.query_opt(sql::DELETE_SESSION, &[&id.0, &now]).await?;
        match row {
            Some(row) => row.try_get(0).map_err(from_pg),
            None => Ok(false),
        }
    }

    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteSessions { selector },
        } = write;
        let row = match selector {
            SessionSelector::User(user) => {
                self.query_one(sql::DELETE_USER_SESSIONS, &[&now, &user.0])
                    .await?
            }
            SessionSelector::Guests => self.query_one(sql::DELETE_GUEST_SESSIONS, &[&now]).await?,
            SessionSelector::All => self.query_one(sql::DELETE_ALL_SESSIONS, &[&now]).await?,
        };
        Ok(to_u64(row.try_get(0).map_err(from_pg)?))
    }

    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        let Write {
            now,
            command: PurgeExpired { batch },
        } = write;
        let client = self.client().await?;
        // Each batch is its own statement, so locks are held for one batch at a time.
        let batch = to_i64(batch.max(1));
        let mut counts = PurgeCounts::default();
        for table in [&sql::SESSION_ATTRIBUTES, &sql::USER_ATTRIBUTES] {
            let statement = client.prepare_cached(table.purge).await.map_err(from_pg)?;
            loop {
                let deleted = client
                    .execute(&statement, &[&now, &batch])
                    .await
                    .map_err(from_pg)?;
                counts.attributes += deleted;
                if i64::try_from(deleted).unwrap_or(i64::MAX) < batch {
                    break;
                }
            }
        }
        let statement = client
            .prepare_cached(sql::PURGE_SESSIONS)
            .await
            .map_err(from_pg)?;
        loop {
            let row = client
                .query_one(&statement, &[&now, &batch])
                .await
                .map_err(from_pg)?;
            let sessions: i64 = row.try_get(0).map_err(from_pg)?;
            let attributes: i64 = row.try_get(1).map_err(from_pg)?;
            counts.sessions += to_u64(sessions);
            counts.attributes += to_u64(attributes);
            if sessions < batch {
                break;
            }
        }
        if counts != PurgeCounts::default() {
            tracing::debug!(
                sessions = counts.sessions,
                attributes = counts.attributes,
                "purged expired rows"
            );
        }
        Ok(counts)
    }
}

#[async_trait]
impl AttributeStore for PostgresStore {
    async fn set_attributes(
        &self,
        write: Write<SetAttributes>,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributes {
                    owner,
                    items,
                    max_per_owner,
                },
        } = write;
        let (table, owner_id) = attribute_sql(owner);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(from_pg)?;
        let lock = transaction
            .prepare_cached(table.lock_owner)
            .await
            .map_err(from_pg)?;
        let locked = match owner {
            Owner::Session(_) => transaction.query_opt(&lock, &[&owner_id, &now]).await,
            Owner::User(_) => transaction.query_opt(&lock, &[&owner_id]).await,
        }
        .map_err(from_pg)?;
        if locked.is_none() {
            return Err(match owner {
                Owner::Session(_) => StoreError::SessionNotFound,
                Owner::User(_) => StoreError::UserNotFound,
            });
        }
        let upsert = transaction
            .prepare_cached(table.upsert)
            .await
            .map_err(from_pg)?;
        let arrays = AttributeArrays::new(&items);
        let rows = transaction
            .query(
                &upsert,
                &[
                    &owner_id,
                    &now,
                    &arrays.names,
                    &arrays.values,
                    &arrays.key_ids,
                    &arrays.expires_at,
                ],
            )
            .await
            .map_err(from_pg)?;
        let others = match rows.first() {
            Some(row) => to_u64(row.try_get(0).map_err(from_pg)?),
            None => 0,
        };
        // Counted like the memory store: every item, plus the live rows it does not replace.
        let count = usize::try_from(others)
            .unwrap_or(usize::MAX)
            .saturating_add(items.len());
        if count > max_per_owner {
            transaction.rollback().await.map_err(from_pg)?;
            return Err(StoreError::TooManyAttributes {
                count,
                limit: max_per_owner,
            });
        }
        let mut written = HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(attribute) = rows::attribute(row, 1)? {
                written.insert(attribute.name.clone(), attribute);
            }
        }
        transaction.commit().await.map_err(from_pg)?;
        // In the order given, one per item, like the memory store.
        items
            .iter()
            .map(|item| {
                written.get(&item.name).cloned().ok_or_else(|| {
                    StoreError::Internal("upsert returned fewer rows than written".into())
                })
            })
            .collect()
    }

    async fn get_attributes(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let (table, owner_id) = attribute_sql(owner);
        let rows = self
            .owner_rows(table.select_all, table.select_named, owner_id, names, now)
            .await?;
        rows::attributes(&rows)
    }

    async fn attribute_names(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<String>> {
        let (table, owner_id) = attribute_sql(owner);
        let rows = self
            .owner_rows(table.names_all, table.names_named, owner_id, names, now)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(from_pg))
            .collect()
    }

    async fn delete_attributes(&self, write: Write<DeleteAttributes>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteAttributes { owner, names },
        } = write;
        let (table, owner_id) = attribute_sql(owner);
        let row = self
            .query_one(table.delete, &[&owner_id, &names, &now])
            .await?;
        Ok(to_u64(row.try_get(0).map_err(from_pg)?))
    }

    async fn set_attribute_expiry(
        &self,
        write: Write<SetAttributeExpiry>,
    ) -> StoreResult<Option<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributeExpiry {
                    owner,
                    name,
                    expires_at,
                },
        } = write;
        let (table, owner_id) = attribute_sql(owner);
        let row = self
            .query_opt(table.set_expiry, &[&owner_id, &name, &expires_at, &now])
            .await?;
        match row {
            Some(row) => rows::attribute(&row, 0),
            None => Ok(None),
        }
    }
}

/// A LIKE pattern matching names that start with `prefix`, taken literally.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for character in prefix.chars() {
        if matches!(character, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix(""), "%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }

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
