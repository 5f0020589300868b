//! Failed-login counters in PostgreSQL. A claim is one upsert per counter, the address's
//! first: the row lock of each serialises concurrent claims, so no more than the limit are
//! admitted. An address counted for an attempt the user's lockout then refuses is given its
//! place back at once; until then it only ever over-counts, which refuses, never admits.

use std::time::SystemTime;

use async_trait::async_trait;

use deadpool_postgres::Object;

use super::{PostgresStore, Retry, delete_in_batches, error::from_pg, events, sql};
use crate::{
    domain::{
        AddressClaim, ClaimLogin, ForgetLoginFailures, LoginClaim, ThrottleKind, ThrottleLimits,
        Write, throttle::MAX_DOUBLINGS,
    },
    store::{StoreResult, ThrottleStore},
};

/// A limit as the statements' `int4`; limits beyond it cannot be reached anyway.
fn limit(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl PostgresStore {
    /// The address's part of a claim: its admitted place, or the end of its lockout.
    async fn claim_address(
        &self,
        address: &str,
        limits: &ThrottleLimits,
        now: SystemTime,
    ) -> StoreResult<Result<AddressClaim, SystemTime>> {
        // Never, like every counter: a second run would count the attempt twice.
        let row = self
            .query_opt(
                Retry::Never,
                sql::throttle::CLAIM_ADDRESS,
                &[
                    &address,
                    &now,
                    &limits.failure_window.as_secs_f64(),
                    &limit(limits.address_max_failures),
                    &limits.lockout.as_secs_f64(),
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Err(self
                .locked_until(sql::throttle::ADDRESS_LOCKED_UNTIL, address, now)
                .await?));
        };
        let window_start: SystemTime = row.try_get(0).map_err(from_pg)?;
        let locked_until: Option<SystemTime> = row.try_get(1).map_err(from_pg)?;
        Ok(match locked_until {
            Some(until) => Err(until),
            None => Ok(AddressClaim {
                address: address.to_owned(),
                window_start,
            }),
        })
    }

    /// The end of the lockout that refused a claim; `now` if it has just been lifted.
    async fn locked_until(
        &self,
        statement: &'static str,
        key: &str,
        now: SystemTime,
    ) -> StoreResult<SystemTime> {
        let until = self
            .query_opt_decoded(Retry::Safe, statement, &[&key], |row| {
                row.try_get::<_, Option<SystemTime>>(0).map_err(from_pg)
            })
            .await?;
        Ok(until.flatten().unwrap_or(now).max(now))
    }

    async fn release_address(&self, claim: &AddressClaim) -> StoreResult<()> {
        self.execute(
            Retry::Never,
            sql::throttle::RELEASE_ADDRESS,
            &[&claim.address, &claim.window_start],
        )
        .await
        .map(drop)
    }
}

/// The sweep's part on the counters: deletes the usernames and addresses `limits` say are
/// forgotten at `now`, `batch` rows per statement; how many.
pub(super) async fn purge_login_failures(
    client: &Object,
    limits: &ThrottleLimits,
    now: SystemTime,
    batch: i64,
) -> StoreResult<u64> {
    let reset = limits.failure_reset.as_secs_f64();
    let window = limits.failure_window.as_secs_f64();
    let users = sql::throttle::PURGE_USERS;
    let addresses = sql::throttle::PURGE_ADDRESSES;
    Ok(
        delete_in_batches(client, users, now, batch, &[&reset]).await?
            + delete_in_batches(client, addresses, now, batch, &[&window]).await?,
    )
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn claim_login(&self, write: Write<ClaimLogin>) -> StoreResult<LoginClaim> {
        let lockout_templates = events::write_records(&write, &ClaimLogin::lockout_template());
        let Write {
            now,
            command:
                ClaimLogin {
                    user_key,
                    address,
                    limits,
                },
            ..
        } = write;
        let address = match &address {
            Some(address) => match self.claim_address(address, &limits, now).await? {
                Ok(claim) => Some(claim),
                Err(until) => {
                    return Ok(LoginClaim::Refused {
                        kind: ThrottleKind::Address,
                        until,
                    });
                }
            },
            None => None,
        };
        let admitted = self
            .query_opt(
                Retry::Never,
                sql::throttle::CLAIM_USER,
                &[
                    &user_key,
                    &now,
                    &limit(limits.user_max_failures),
                    &limits.lockout.as_secs_f64(),
                    &limits.max_lockout.as_secs_f64(),
                    &limit(MAX_DOUBLINGS),
                    &limits.failure_reset.as_secs_f64(),
                    &lockout_templates,
                ],
            )
            .await?
            .is_some();
        if admitted {
            return Ok(LoginClaim::Admitted { address });
        }
        if let Some(claim) = &address {
            self.release_address(claim).await?;
        }
        let until = self
            .locked_until(sql::throttle::USER_LOCKED_UNTIL, &user_key, now)
            .await?;
        Ok(LoginClaim::Refused {
            kind: ThrottleKind::User,
            until,
        })
    }

    async fn forget_login_failures(&self, write: Write<ForgetLoginFailures>) -> StoreResult<()> {
        let ForgetLoginFailures { user_key, address } = write.command;
        // Safe: deleting the counter twice leaves it deleted.
        self.execute(Retry::Safe, sql::throttle::FORGET_USER, &[&user_key])
            .await?;
        if let Some(claim) = &address {
            self.release_address(claim).await?;
        }
        Ok(())
    }
}
