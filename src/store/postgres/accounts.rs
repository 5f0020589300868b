//! Sign-up confirmation and password reset tokens in PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{PostgresStore, Retry, error::from_pg, events, rows, sql};
use crate::{
    domain::{
        AccountTokenPurpose, IssuePasswordReset, RedeemAccountToken, Redemption, SignUp, SignedUp,
        TokenHash, User, UserRecord, Username, Write, commands::user_changed_template,
    },
    store::{AccountTokenStore, StoreResult},
};

#[async_trait]
impl AccountTokenStore for PostgresStore {
    async fn sign_up(&self, write: Write<SignUp>) -> StoreResult<SignedUp> {
        let recorded = events::write_records(&write, &[write.command.event()]);
        let SignUp {
            record,
            confirmation,
        } = &write.command;
        let user = &record.user;
        let key = Username::key_of(&user.username);
        // Never: a second run would find the name taken by the first.
        let created = self
            .query_opt_decoded(
                Retry::Never,
                sql::accounts::SIGN_UP_USER,
                &[
                    &user.id.0,
                    &user.username,
                    &key,
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
                    &user.is_confirmed,
                    &confirmation.hash.0.as_slice(),
                    &confirmation.expires_at,
                    &recorded,
                ],
                |row| rows::user(row, 0),
            )
            .await?;
        if let Some(user) = created {
            return Ok(SignedUp::Created(user));
        }
        // The owner may have been deleted since: then there is nobody to tell.
        let owner = self
            .query_opt_decoded(Retry::Safe, sql::users::USER_BY_USERNAME, &[&key], |row| {
                rows::user(row, 0)
            })
            .await?;
        Ok(SignedUp::Taken { owner })
    }

    async fn issue_password_reset(
        &self,
        write: Write<IssuePasswordReset>,
    ) -> StoreResult<Option<User>> {
        let requested = events::write_records(&write, &IssuePasswordReset::templates());
        let Write {
            now,
            command: IssuePasswordReset { user_key, token },
            ..
        } = write;
        // Never: a second run would record the request twice.
        self.query_opt_decoded(
            Retry::Never,
            sql::accounts::ISSUE_PASSWORD_RESET,
            &[
                &user_key,
                &token.hash.0.as_slice(),
                &now,
                &token.expires_at,
                &requested,
            ],
            |row| rows::user(row, 0),
        )
        .await
    }

    async fn account_token_user(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: SystemTime,
    ) -> StoreResult<Option<UserRecord>> {
        self.query_opt_decoded(
            Retry::Safe,
            sql::accounts::TOKEN_USER,
            &[&hash.0.as_slice(), &now, &purpose.as_str()],
            |row| rows::user_record(row, 0),
        )
        .await
    }

    async fn redeem_account_token(
        &self,
        write: Write<RedeemAccountToken>,
    ) -> StoreResult<Option<User>> {
        let redeemed = events::write_records(&write, &write.command.templates());
        let ended = events::write_records(&write, &user_changed_template());
        let Write {
            now,
            command: RedeemAccountToken { hash, redemption },
            ..
        } = write;
        let (redemption, redeemed, ended) = (&redemption, &redeemed, &ended);
        // Never: a second run would find the token used.
        let row = self
            .with_client(Retry::Never, move |mut client| async move {
                let result = async {
                    let hash = hash.0.as_slice();
                    let transaction = client.transaction().await.map_err(from_pg)?;
                    let lock = transaction
                        .prepare_cached(sql::accounts::LOCK_TOKEN_USER)
                        .await
                        .map_err(from_pg)?;
                    let locked: Option<uuid::Uuid> = transaction
                        .query_opt(&lock, &[&hash])
                        .await
                        .map_err(from_pg)?
                        .map(|row| row.try_get(0))
                        .transpose()
                        .map_err(from_pg)?;
                    let row = match redemption {
                        Redemption::ConfirmSignUp => {
                            let statement = transaction
                                .prepare_cached(sql::accounts::CONFIRM_SIGN_UP)
                                .await
                                .map_err(from_pg)?;
                            transaction
                                .query_opt(&statement, &[&hash, &now, redeemed])
                                .await
                                .map_err(from_pg)?
                        }
                        Redemption::ResetPassword(change) => {
                            // The replaced hash joins the history, as on any password
                            // change; rolled back below if the token does not redeem.
                            if let Some(user) = locked {
                                super::credentials::push_password_history(
                                    &transaction,
                                    user,
                                    now,
                                    change.keep_history,
                                )
                                .await?;
                            }
                            let statement = transaction
                                .prepare_cached(sql::accounts::RESET_PASSWORD)
                                .await
                                .map_err(from_pg)?;
                            let row = transaction
                                .query_opt(
                                    &statement,
                                    &[
                                        &hash,
                                        &now,
                                        &change.password_hash,
                                        &change.password_must_change,
                                        &change.password_expiry,
                                        redeemed,
                                    ],
                                )
                                .await
                                .map_err(from_pg)?;
                            if let Some(row) = &row {
                                let user: uuid::Uuid = row.try_get(0).map_err(from_pg)?;
                                let end = transaction
                                    .prepare_cached(sql::users::END_USER_SESSIONS)
                                    .await
                                    .map_err(from_pg)?;
                                transaction
                                    .execute(&end, &[&user, &None::<uuid::Uuid>, ended])
                                    .await
                                    .map_err(from_pg)?;
                            }
                            row
                        }
                    };
                    if row.is_none() {
                        transaction.rollback().await.map_err(from_pg)?;
                        return Ok(None);
                    }
                    transaction.commit().await.map_err(from_pg)?;
                    Ok(row)
                }
                .await;
                (client, result)
            })
            .await?;
        row.map(|row| rows::user(&row, 0)).transpose()
    }
}
