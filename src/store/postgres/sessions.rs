//! Sessions in PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{
    PostgresStore, Retry,
    credentials::push_password_history,
    delete_in_batches,
    error::from_pg,
    events,
    rows::{self, AttributeArrays, to_i64, to_u64},
    sql,
    throttle::purge_login_failures,
};
use crate::{
    domain::{
        DeleteSession, DeleteSessions, OpenSession, PurgeCounts, PurgeExpired, RenewOnUse,
        RenewSession, Session, SessionId, SessionLimitPolicy, SessionSelector, SessionWithUser,
        TokenHash, UserId, Write, commands::user_changed_template,
    },
    store::{SessionStore, StoreError, StoreResult},
};

impl PostgresStore {
    /// Deletes a user's sessions in batches of at most `batch`, as part of deleting the user
    /// (whose own event says so); counts the live ones.
    pub(super) async fn delete_user_sessions(
        &self,
        user: UserId,
        now: SystemTime,
        batch: usize,
    ) -> StoreResult<u64> {
        self.delete_sessions_in_batches(
            sql::sessions::DELETE_USER_SESSIONS,
            &[user.0],
            now,
            batch,
            &events::no_records(),
        )
        .await
    }

    /// Runs one of the batched revocation statements until a batch comes back short, each
    /// batch its own statement (and transaction), so no statement outgrows the statement
    /// timeout and locks are held one batch at a time. `selected` are the statement's
    /// parameters from `$6` on, which choose the sessions; the last batch records `summary`
    /// with the count. Counts the live sessions deleted.
    async fn delete_sessions_in_batches(
        &self,
        sql: &'static str,
        selected: &[Uuid],
        now: SystemTime,
        batch: usize,
        summary: &events::Records,
    ) -> StoreResult<u64> {
        let batch = to_i64(batch.max(1));
        // Never: a second run would count only what the first left.
        self.with_client(Retry::Never, move |client| async move {
            let result = async {
                let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
                // Ids are random or time-ordered UUIDs, never nil: the walk starts below all of them.
                let mut after = Uuid::nil();
                let mut live: i64 = 0;
                loop {
                    let mut params: Vec<&(dyn ToSql + Sync)> =
                        vec![&now, &after, &batch, summary, &live];
                    params.extend(selected.iter().map(|id| id as &(dyn ToSql + Sync)));
                    let row = client
                        .query_one(&statement, &params)
                        .await
                        .map_err(from_pg)?;
                    let selected: i64 = row.try_get(0).map_err(from_pg)?;
                    let deleted_live: i64 = row.try_get(1).map_err(from_pg)?;
                    let last: Option<Uuid> = row.try_get(2).map_err(from_pg)?;
                    live += deleted_live;
                    match last {
                        Some(last) if selected >= batch => after = last,
                        _ => return Ok(to_u64(live)),
                    }
                }
            }
            .await;
            (client, result)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session> {
        let opened_events = events::write_records(&write, &write.command.opened_events());
        let replaced_templates = events::write_records(&write, &write.command.replaced_templates());
        let limit_templates = events::write_records(&write, &OpenSession::limit_templates());
        let ended_templates = events::write_records(&write, &user_changed_template());
        let Write {
            now, command: open, ..
        } = write;
        let open = &open;
        let (opened_events, replaced_templates, limit_templates, ended_templates) = (
            &opened_events,
            &replaced_templates,
            &limit_templates,
            &ended_templates,
        );
        // Never: a second run would open a second session (or find the replaced one gone).
        self.with_client(Retry::Never, move |mut client| async move {
            let result = async {
                let transaction = client.transaction().await.map_err(from_pg)?;
                let new = &open.new.session;
                let user_id = new.user_id.map(|id| id.0);
                // The user row first, as `update_user` does, so the two lock in the same order.
                if let (Some(login), Some(user_id)) = (&open.login, user_id) {
                    let change = login.new_password.as_ref();
                    if let Some(change) = change {
                        push_password_history(&transaction, user_id, now, change.keep_history)
                            .await?;
                    }
                    let statement = transaction
                        .prepare_cached(sql::sessions::RECORD_LOGIN)
                        .await
                        .map_err(from_pg)?;
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
                            .query_opt(sql::sessions::USER_EXISTS, &[&user_id])
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
                if let (None, Some(user_id), Some(_)) = (&open.login, user_id, open.session_limit) {
                    let locked = transaction
                        .query_opt(sql::sessions::LOCK_USER, &[&user_id])
                        .await
                        .map_err(from_pg)?;
                    if locked.is_none() {
                        return Err(StoreError::UserNotFound);
                    }
                }
                // The replaced session goes first: a guest replacing a guest then frees its place in
                // the guest count before taking one, and the count's lock stays the last one taken.
                if let Some(replaced) = open.replaces {
                    let statement = transaction
                        .prepare_cached(sql::sessions::END_REPLACED_SESSION)
                        .await
                        .map_err(from_pg)?;
                    let row = transaction
                        .query_one(&statement, &[&replaced.0, &now, replaced_templates])
                        .await
                        .map_err(from_pg)?;
                    let ended: i64 = row.try_get(0).map_err(from_pg)?;
                    if ended == 0 {
                        return Err(StoreError::SessionNotFound);
                    }
                }
                // Then the user's sessions that end with this one's opening: all of them with
                // a new password, else those past the limit. Both under the user's row lock.
                let new_password = open
                    .login
                    .as_ref()
                    .is_some_and(|login| login.new_password.is_some());
                if let (Some(user_id), true) = (user_id, new_password) {
                    let statement = transaction
                        .prepare_cached(sql::users::END_USER_SESSIONS)
                        .await
                        .map_err(from_pg)?;
                    transaction
                        .execute(&statement, &[&user_id, &None::<Uuid>, ended_templates])
                        .await
                        .map_err(from_pg)?;
                } else if let (Some(user_id), Some(limit)) = (user_id, open.session_limit) {
                    let statement = transaction
                        .prepare_cached(sql::sessions::ENFORCE_SESSION_LIMIT)
                        .await
                        .map_err(from_pg)?;
                    let end_oldest = limit.policy == SessionLimitPolicy::EndOldest;
                    let row = transaction
                        .query_one(
                            &statement,
                            &[
                                &user_id,
                                &now,
                                &to_i64(limit.max.get()),
                                &end_oldest,
                                limit_templates,
                            ],
                        )
                        .await
                        .map_err(from_pg)?;
                    let live: i64 = row.try_get(0).map_err(from_pg)?;
                    if !end_oldest && live >= to_i64(limit.max.get()) {
                        return Err(StoreError::SessionLimitReached {
                            limit: limit.max.get(),
                        });
                    }
                }
                let statement = transaction
                    .prepare_cached(sql::sessions::INSERT_SESSION)
                    .await
                    .map_err(from_pg)?;
                let arrays = AttributeArrays::new(&open.attributes);
                let row = transaction
                    .query_opt(
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
                            &to_i64(open.max_guest_sessions),
                            opened_events,
                        ],
                    )
                    .await
                    .map_err(from_pg)?;
                let Some(row) = row else {
                    return Err(StoreError::TooManyGuestSessions {
                        limit: open.max_guest_sessions,
                    });
                };
                let session = rows::session(&row, 0)?;
                transaction.commit().await.map_err(from_pg)?;
                Ok(session)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        renew: Option<&RenewOnUse>,
    ) -> StoreResult<Option<SessionWithUser>> {
        let hash = hash.0.as_slice();
        let Some(renew) = renew else {
            return self
                .query_opt_decoded(
                    Retry::Safe,
                    sql::sessions::SESSION_BY_TOKEN,
                    &[&hash, &now],
                    rows::session_with_user,
                )
                .await;
        };
        let lifetimes = &renew.lifetimes;
        let user_expiry = now + lifetimes.idle_timeout;
        let guest_expiry = now + lifetimes.guest_idle_timeout;
        let max_lifetime_micros =
            i64::try_from(lifetimes.max_lifetime.as_micros()).unwrap_or(i64::MAX);
        // Safe: a second run finds the session renewed at `now`, not due, and answers the same.
        self.query_opt_decoded(
            Retry::Safe,
            sql::sessions::SESSION_BY_TOKEN_RENEWING,
            &[
                &hash,
                &now,
                &renew.renewed_before,
                &user_expiry,
                &guest_expiry,
                &max_lifetime_micros,
            ],
            rows::session_with_user,
        )
        .await
    }

    async fn session_by_id(
        &self,
        id: SessionId,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        self.query_opt_decoded(
            Retry::Safe,
            sql::sessions::SESSION_BY_ID,
            &[&id.0, &now],
            rows::session_with_user,
        )
        .await
    }

    async fn renew_session(&self, write: Write<RenewSession>) -> StoreResult<Option<Session>> {
        let Write {
            now,
            command: RenewSession { id, expires_at },
            ..
        } = write;
        // Safe: it sets the given expiry and renewal time; a second run sets the same.
        self.query_opt_decoded(
            Retry::Safe,
            sql::sessions::RENEW_SESSION,
            &[&id.0, &expires_at, &now],
            |row| rows::session(row, 0),
        )
        .await
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
                self.query(
                    Retry::Safe,
                    sql::sessions::LIST_SESSIONS,
                    &[&user.0, &now, &limit],
                )
                .await?
            }
            Some(after) => {
                self.query(
                    Retry::Safe,
                    sql::sessions::LIST_SESSIONS_AFTER,
                    &[&user.0, &now, &limit, &after.0],
                )
                .await?
            }
        };
        rows.iter().map(|row| rows::session(row, 0)).collect()
    }

    async fn delete_session(&self, write: Write<DeleteSession>) -> StoreResult<bool> {
        let templates = events::write_records(&write, &write.command.templates());
        let Write { now, command, .. } = write;
        // Never: a second run would answer that nothing was deleted.
        let row = self
            .query_opt(
                Retry::Never,
                sql::sessions::DELETE_SESSION,
                &[&command.id.0, &now, &templates],
            )
            .await?;
        match row {
            Some(row) => row.try_get(0).map_err(from_pg),
            None => Ok(false),
        }
    }

    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64> {
        let summary = events::write_records(&write, &[write.command.summary()]);
        let Write {
            now,
            command: DeleteSessions { selector, batch },
            ..
        } = write;
        let (sql, selected) = match selector {
            SessionSelector::User(user) => (sql::sessions::DELETE_USER_SESSIONS, vec![user.0]),
            SessionSelector::OtherSessionsOf { user, keep } => (
                sql::sessions::DELETE_OTHER_USER_SESSIONS,
                vec![user.0, keep.0],
            ),
            SessionSelector::Guests => (sql::sessions::DELETE_GUEST_SESSIONS, Vec::new()),
            SessionSelector::All => (sql::sessions::DELETE_ALL_SESSIONS, Vec::new()),
        };
        self.delete_sessions_in_batches(sql, &selected, now, batch, &summary)
            .await
    }

    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        let templates = events::write_records(&write, &PurgeExpired::templates());
        let templates = &templates;
        let events_before = write.command.events_before(write.now);
        let Write {
            now,
            command: PurgeExpired {
                batch, throttle, ..
            },
            ..
        } = write;
        // Each batch is its own statement, so locks are held for one batch at a time.
        let batch = to_i64(batch.max(1));
        // Never: a second run would count only what the first left.
        let counts = self
            .with_client(Retry::Never, move |client| async move {
                let result = async {
                    let mut counts = PurgeCounts {
                        login_failures: purge_login_failures(&client, &throttle, now, batch)
                            .await?,
                        ..PurgeCounts::default()
                    };
                    counts.account_tokens = delete_in_batches(
                        &client,
                        sql::accounts::PURGE_ACCOUNT_TOKENS,
                        now,
                        batch,
                        &[],
                    )
                    .await?;
                    for table in [
                        &sql::attributes::SESSION_ATTRIBUTES,
                        &sql::attributes::USER_ATTRIBUTES,
                    ] {
                        counts.attributes +=
                            delete_in_batches(&client, table.purge, now, batch, &[]).await?;
                    }
                    let statement = client
                        .prepare_cached(sql::sessions::PURGE_SESSIONS)
                        .await
                        .map_err(from_pg)?;
                    loop {
                        let row = client
                            .query_one(&statement, &[&now, &batch, templates])
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
                    if let Some(before) = events_before {
                        counts.events = delete_in_batches(
                            &client,
                            sql::events::TRIM_EVENTS,
                            before,
                            batch,
                            &[],
                        )
                        .await?;
                    }
                    Ok(counts)
                }
                .await;
                (client, result)
            })
            .await?;
        if counts != PurgeCounts::default() {
            tracing::debug!(
                sessions = counts.sessions,
                attributes = counts.attributes,
                login_failures = counts.login_failures,
                account_tokens = counts.account_tokens,
                "purged expired rows"
            );
        }
        Ok(counts)
    }
}
