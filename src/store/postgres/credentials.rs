//! Second factors and password history in PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::{
    PostgresStore, Retry,
    error::from_pg,
    events,
    rows::{self, to_i64},
    sql,
};
use crate::{
    domain::{
        BeginTotp, DisableTotp, EnableTotp, TotpRecord, UseRecoveryCode, UseTotpStep, User, UserId,
        Write,
    },
    store::{CredentialStore, StoreError, StoreResult},
};

/// Locks the user row; whether it has TOTP enabled. `UserNotFound` if it does not exist.
async fn lock_totp_enabled(transaction: &Transaction<'_>, user: UserId) -> StoreResult<bool> {
    let statement = transaction
        .prepare_cached(sql::credentials::LOCK_TOTP_ENABLED)
        .await
        .map_err(from_pg)?;
    let row = transaction
        .query_opt(&statement, &[&user.0])
        .await
        .map_err(from_pg)?
        .ok_or(StoreError::UserNotFound)?;
    row.try_get(0).map_err(from_pg)
}

/// Before a password hash is replaced, in the same transaction: the replaced hash joins the
/// user's history, which keeps `keep` (see [`sql::credentials::PUSH_PASSWORD_HISTORY`]).
pub(super) async fn push_password_history(
    transaction: &Transaction<'_>,
    user: uuid::Uuid,
    now: SystemTime,
    keep: usize,
) -> StoreResult<()> {
    let statement = transaction
        .prepare_cached(sql::credentials::PUSH_PASSWORD_HISTORY)
        .await
        .map_err(from_pg)?;
    transaction
        .execute(&statement, &[&user, &now, &to_i64(keep)])
        .await
        .map_err(from_pg)?;
    Ok(())
}

/// A step as the `bigint` column holds it; steps of 30 s since 1970 are far below its limit.
fn step_param(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>> {
        self.query_opt_decoded(Retry::Safe, sql::credentials::TOTP, &[&user.0], rows::totp)
            .await
    }

    async fn begin_totp(&self, write: Write<BeginTotp>) -> StoreResult<()> {
        let BeginTotp { user, secret } = &write.command;
        // Safe: storing the same pending secret twice leaves it stored once.
        self.with_client(Retry::Safe, move |mut client| async move {
            let result = async {
                let transaction = client.transaction().await.map_err(from_pg)?;
                if lock_totp_enabled(&transaction, *user).await? {
                    return Err(StoreError::TotpAlreadyEnabled);
                }
                let statement = transaction
                    .prepare_cached(sql::credentials::STORE_PENDING_TOTP)
                    .await
                    .map_err(from_pg)?;
                transaction
                    .execute(&statement, &[&user.0, &secret.key_id, &secret.ciphertext])
                    .await
                    .map_err(from_pg)?;
                transaction.commit().await.map_err(from_pg)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn enable_totp(&self, write: Write<EnableTotp>) -> StoreResult<User> {
        let EnableTotp {
            user,
            secret,
            step,
            recovery_codes,
        } = &write.command;
        let codes: Vec<&[u8]> = recovery_codes.iter().map(|code| &code.0[..]).collect();
        let codes = &codes;
        let recorded = &events::write_records(&write, &[write.command.event()]);
        // Never: a second run would find TOTP enabled by the first.
        self.with_client(Retry::Never, move |mut client| async move {
            let result = async {
                let transaction = client.transaction().await.map_err(from_pg)?;
                if lock_totp_enabled(&transaction, *user).await? {
                    return Err(StoreError::TotpNotPending);
                }
                let statement = transaction
                    .prepare_cached(sql::credentials::CONFIRM_PENDING_TOTP)
                    .await
                    .map_err(from_pg)?;
                let confirmed = transaction
                    .execute(
                        &statement,
                        &[
                            &user.0,
                            &secret.key_id,
                            &secret.ciphertext,
                            &step_param(*step),
                        ],
                    )
                    .await
                    .map_err(from_pg)?;
                if confirmed == 0 {
                    return Err(StoreError::TotpNotPending);
                }
                let statement = transaction
                    .prepare_cached(sql::credentials::INSERT_RECOVERY_CODES)
                    .await
                    .map_err(from_pg)?;
                transaction
                    .execute(&statement, &[&user.0, codes])
                    .await
                    .map_err(from_pg)?;
                let statement = transaction
                    .prepare_cached(sql::credentials::ENABLE_TOTP)
                    .await
                    .map_err(from_pg)?;
                let row = transaction
                    .query_one(&statement, &[&user.0, recorded])
                    .await
                    .map_err(from_pg)?;
                let enabled = rows::user(&row, 0)?;
                transaction.commit().await.map_err(from_pg)?;
                Ok(enabled)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn use_totp_step(&self, write: Write<UseTotpStep>) -> StoreResult<bool> {
        let UseTotpStep { user, step } = write.command;
        // Never: a second run would answer that the step was used.
        let used = self
            .execute(
                Retry::Never,
                sql::credentials::USE_TOTP_STEP,
                &[&user.0, &step_param(step)],
            )
            .await?;
        Ok(used > 0)
    }

    async fn use_recovery_code(&self, write: Write<UseRecoveryCode>) -> StoreResult<bool> {
        let UseRecoveryCode { user, code } = write.command;
        // Never: a second run would answer that the code was used.
        let used = self
            .execute(
                Retry::Never,
                sql::credentials::USE_RECOVERY_CODE,
                &[&user.0, &&code.0[..]],
            )
            .await?;
        Ok(used > 0)
    }

    async fn disable_totp(&self, write: Write<DisableTotp>) -> StoreResult<bool> {
        let recorded = &events::write_records(&write, &[write.command.event()]);
        let DisableTotp { user } = write.command;
        // Never: a second run would answer that TOTP was not enabled.
        self.with_client(Retry::Never, move |mut client| async move {
            let result = async {
                let transaction = client.transaction().await.map_err(from_pg)?;
                let was_enabled = lock_totp_enabled(&transaction, user).await?;
                let statement = transaction
                    .prepare_cached(sql::credentials::DISABLE_TOTP)
                    .await
                    .map_err(from_pg)?;
                transaction
                    .execute(&statement, &[&user.0, recorded])
                    .await
                    .map_err(from_pg)?;
                transaction.commit().await.map_err(from_pg)?;
                Ok(was_enabled)
            }
            .await;
            (client, result)
        })
        .await
    }

    async fn password_history(&self, user: UserId) -> StoreResult<Vec<String>> {
        let rows = self
            .query(Retry::Safe, sql::credentials::PASSWORD_HISTORY, &[&user.0])
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(from_pg))
            .collect()
    }
}
