//! Users in PostgreSQL.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    PostgresStore, Retry,
    credentials::push_password_history,
    error::from_pg,
    events,
    rows::{self, to_i64, to_u64},
    sql,
};
use crate::{
    domain::{
        DeleteUser, EndSessions, UpdateUser, User, UserId, UserPage, UserQuery, UserRecord,
        Username, Write,
        commands::{user_changed_template, user_created},
    },
    store::{StoreError, StoreResult, UserStore},
};

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User> {
        let user = &write.command.user;
        let events = events::write_records(&write, &[user_created(user)]);
        // Never: a second insert would find the name taken by the first.
        let row = self
            .query_one(
                Retry::Never,
                sql::users::CREATE_USER,
                &[
                    &user.id.0,
                    &user.username,
                    &Username::key_of(&user.username),
                    &user.profile.email,
                    &user.profile.display_name,
                    &user.profile.first_name,
                    &user.profile.middle_name,
                    &user.profile.last_name,
                    &user.is_super_user,
                    &user.is_locked,
                    &user.approval_status.as_str(),
                    &write.command.password_hash,
                    &user.password_must_change,
                    &user.password_expiry,
                    &user.created_at,
                    &user.last_login_at,
                    &user.is_confirmed,
                    &events,
                ],
            )
            .await?;
        rows::user(&row, 0)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.query_opt_decoded(Retry::Safe, sql::users::USER_BY_ID, &[&id.0], |row| {
            rows::user_record(row, 0)
        })
        .await
    }

    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<UserRecord>> {
        self.query_opt_decoded(
            Retry::Safe,
            sql::users::USER_BY_USERNAME,
            &[&username.key()],
            |row| rows::user_record(row, 0),
        )
        .await
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let pattern = like_prefix(&query.username_prefix);
        let status = query.approval_status.map(|status| status.as_str());
        let rows = self
            .query(
                Retry::Safe,
                sql::users::LIST_USERS,
                &[&pattern, &status, &query.after, &to_i64(query.limit)],
            )
            .await?;
        let mut total_size = 0;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            total_size = to_u64(row.try_get(0).map_err(from_pg)?);
            // The first user column, null when the page is empty.
            let id: Option<Uuid> = row.try_get(sql::USER_TOTAL.width()).map_err(from_pg)?;
            if id.is_some() {
                users.push(rows::user(row, sql::USER_TOTAL.width())?);
            }
        }
        Ok(UserPage { users, total_size })
    }

    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User> {
        let user_events = events::write_records(&write, &write.command.events());
        let ended_templates = events::write_records(&write, &user_changed_template());
        let Write {
            now,
            command:
                UpdateUser {
                    id,
                    patch,
                    end_sessions,
                },
            ..
        } = write;
        let (user_events, ended_templates) = (&user_events, &ended_templates);
        // Which sessions end: `None` none, `Some(keep)` all but `keep` (if any).
        let keep = match end_sessions {
            EndSessions::None | EndSessions::AllIfPasswordExpired => None,
            EndSessions::All => Some(None),
            EndSessions::AllBut(keep) => Some(Some(keep.0)),
        };
        let patch = &patch;
        // Never: a second run would end sessions opened in between.
        let row = self
            .with_client(Retry::Never, move |mut client| async move {
                let result = async {
                    let transaction = client.transaction().await.map_err(from_pg)?;
                    let mut keep = keep;
                    if end_sessions == EndSessions::AllIfPasswordExpired {
                        let statement = transaction
                            .prepare_cached(sql::users::PASSWORD_EXPIRED)
                            .await
                            .map_err(from_pg)?;
                        let expired = match transaction
                            .query_opt(&statement, &[&id.0, &now])
                            .await
                            .map_err(from_pg)?
                        {
                            Some(row) => row.try_get(0).map_err(from_pg)?,
                            // No such user: the update finds none either.
                            None => false,
                        };
                        if expired {
                            keep = Some(None);
                        }
                    }
                    if patch.password_hash.is_some() {
                        push_password_history(&transaction, id.0, now, patch.keep_password_history)
                            .await?;
                    }
                    let statement = transaction
                        .prepare_cached(sql::users::UPDATE_USER)
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
                                user_events,
                            ],
                        )
                        .await
                        .map_err(from_pg)?;
                    if let (Some(keep), Some(_)) = (keep, &row) {
                        let statement = transaction
                            .prepare_cached(sql::users::END_USER_SESSIONS)
                            .await
                            .map_err(from_pg)?;
                        transaction
                            .execute(&statement, &[&id.0, &keep, ended_templates])
                            .await
                            .map_err(from_pg)?;
                    }
                    transaction.commit().await.map_err(from_pg)?;
                    Ok(row)
                }
                .await;
                (client, result)
            })
            .await?;
        match row {
            Some(row) => rows::user(&row, 0),
            None => Err(StoreError::UserNotFound),
        }
    }

    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool> {
        let DeleteUser { id, batch } = write.command;
        // The sessions first, in batches: the cascade would delete them all in one statement.
        // A session opened meanwhile still goes with the user, by the cascade.
        let ended = self.delete_user_sessions(id, write.now, batch).await?;
        let deleted = events::write_records(&write, &[write.command.event(ended)]);
        // Never: a second run would answer that there was no such user.
        let row = self
            .query_one(Retry::Never, sql::users::DELETE_USER, &[&id.0, &deleted])
            .await?;
        let deleted: i64 = row.try_get(0).map_err(from_pg)?;
        Ok(deleted > 0)
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
}
