//! Sessions in PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    PostgresStore,
    error::from_pg,
    rows::{self, AttributeArrays, to_i64, to_u64},
    sql,
};
use crate::{
    domain::{
        DeleteSession, DeleteSessions, OpenSession, PurgeCounts, PurgeExpired, RenewSession,
        Session, SessionId, SessionSelector, SessionWithUser, TokenHash, UserId, Write,
    },
    store::{SessionStore, StoreError, StoreResult},
};

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
                .prepare_cached(sql::sessions::RECORD_LOGIN)
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
        let statement = transaction
            .prepare_cached(sql::sessions::INSERT_SESSION)
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
                .prepare_cached(sql::sessions::END_REPLACED_SESSION)
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
        self.query_opt_decoded(
            sql::sessions::SESSION_BY_TOKEN,
            &[&hash.0.as_slice(), &now],
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
        } = write;
        self.query_opt_decoded(
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
                self.query(sql::sessions::LIST_SESSIONS, &[&user.0, &now, &limit])
                    .await?
            }
            Some(after) => {
                self.query(
                    sql::sessions::LIST_SESSIONS_AFTER,
                    &[&user.0, &now, &limit, &after.0],
                )
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
        let row = self
            .query_opt(sql::sessions::DELETE_SESSION, &[&id.0, &now])
            .await?;
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
                self.query_one(sql::sessions::DELETE_USER_SESSIONS, &[&now, &user.0])
                    .await?
            }
            SessionSelector::Guests => {
                self.query_one(sql::sessions::DELETE_GUEST_SESSIONS, &[&now])
                    .await?
            }
            SessionSelector::All => {
                self.query_one(sql::sessions::DELETE_ALL_SESSIONS, &[&now])
                    .await?
            }
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
        for table in [
            &sql::attributes::SESSION_ATTRIBUTES,
            &sql::attributes::USER_ATTRIBUTES,
        ] {
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
            .prepare_cached(sql::sessions::PURGE_SESSIONS)
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
