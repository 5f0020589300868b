//! Schema migrations, embedded in the binary. Each numbered file under `migrations/` is
//! applied once, in its own transaction, and recorded in `ssod_schema_migrations`. Every
//! transaction first takes a transaction-scoped advisory lock, so replicas migrating at the
//! same moment apply each migration exactly once (the others wait, then see it recorded), and
//! a failed migration releases the lock with its rollback.

use uuid::Uuid;

use super::{PostgresStore, error::from_pg, sql};
use crate::{domain::Username, store::StoreError};

/// One embedded migration.
pub(super) struct Migration {
    pub(super) version: u32,
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

/// Every migration, in version order. Never edit an applied one: add the next.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "login_failures",
        sql: include_str!("migrations/0002_login_failures.sql"),
    },
    Migration {
        version: 3,
        name: "guest_limits",
        sql: include_str!("migrations/0003_guest_limits.sql"),
    },
    Migration {
        version: USERNAME_KEY_MIGRATION,
        name: "username_key",
        sql: include_str!("migrations/0004_username_key.sql"),
    },
    Migration {
        version: 5,
        name: "login_failure_reset",
        sql: include_str!("migrations/0005_login_failure_reset.sql"),
    },
    Migration {
        version: 6,
        name: "attribute_writes",
        sql: include_str!("migrations/0006_attribute_writes.sql"),
    },
    Migration {
        version: 7,
        name: "auth_notify",
        sql: include_str!("migrations/0007_auth_notify.sql"),
    },
    Migration {
        version: 8,
        name: "events",
        sql: include_str!("migrations/0008_events.sql"),
    },
    Migration {
        version: 9,
        name: "totp_password_history",
        sql: include_str!("migrations/0009_totp_password_history.sql"),
    },
    Migration {
        version: 10,
        name: "account_tokens",
        sql: include_str!("migrations/0010_account_tokens.sql"),
    },
    Migration {
        version: 11,
        name: "event_trim_horizon",
        sql: include_str!("migrations/0011_event_trim_horizon.sql"),
    },
];

/// Adds `users.username_key`; its SQL backfill is completed in Rust ([`rekey_usernames`]).
const USERNAME_KEY_MIGRATION: u32 = 4;

/// `pg_advisory_xact_lock` key serialising migrations ("ssodmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7373_6f64_6d69_6772;

const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS ssod_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL
)";

/// How long a migration waits for the advisory lock and for any table lock its DDL needs.
/// DDL itself may take as long as it needs.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '60s'; SET LOCAL statement_timeout = 0";

impl PostgresStore {
    /// The versions of the embedded migrations, in the order they apply.
    pub fn migration_versions() -> Vec<u32> {
        MIGRATIONS
            .iter()
            .map(|migration| migration.version)
            .collect()
    }

    /// Applies the embedded migrations the database lacks; returns the versions applied now
    /// (empty when the schema was current). Safe to run from several replicas at once.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let mut client = self.client().await?;
        let mut applied = Vec::new();
        for migration in MIGRATIONS {
            let version = i32::try_from(migration.version)
                .map_err(|_| StoreError::Internal("migration version out of range".into()))?;
            let transaction = client.transaction().await.map_err(from_pg)?;
            // Bounded: a holder whose host vanished keeps the lock until TCP gives up.
            transaction
                .batch_execute(LOCK_TIMEOUT)
                .await
                .map_err(from_pg)?;
            let lock = transaction
                .prepare_cached("SELECT pg_advisory_xact_lock($1)")
                .await
                .map_err(from_pg)?;
            transaction
                .execute(&lock, &[&MIGRATION_LOCK])
                .await
                .map_err(|error| {
                    if error.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                        StoreError::Unavailable(
                            "another process held the migration lock for 60 s; is a migration \
                             stuck? (see pg_locks where locktype = 'advisory')"
                                .into(),
                        )
                    } else {
                        from_pg(error)
                    }
                })?;
            transaction
                .batch_execute(CREATE_HISTORY)
                .await
                .map_err(from_pg)?;
            let recorded = transaction
                .prepare_cached("SELECT name FROM ssod_schema_migrations WHERE version = $1")
                .await
                .map_err(from_pg)?;
            if let Some(row) = transaction
                .query_opt(&recorded, &[&version])
                .await
                .map_err(from_pg)?
            {
                let name: String = row.try_get(0).map_err(from_pg)?;
                if name != migration.name {
                    return Err(mismatch(migration, &name));
                }
                transaction.commit().await.map_err(from_pg)?;
                continue;
            }
            transaction
                .batch_execute(migration.sql)
                .await
                .map_err(from_pg)?;
            if migration.version == USERNAME_KEY_MIGRATION {
                rekey_usernames(&transaction).await?;
            }
            let record = transaction
                .prepare_cached(
                    "INSERT INTO ssod_schema_migrations (version, name, applied_at) \
                     VALUES ($1, $2, now())",
                )
                .await
                .map_err(from_pg)?;
            transaction
                .execute(&record, &[&version, &migration.name])
                .await
                .map_err(from_pg)?;
            transaction.commit().await.map_err(from_pg)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied migration"
            );
            applied.push(migration.version);
        }
        Ok(applied)
    }

    /// Checks that the database holds exactly the embedded migrations: none missing (run
    /// `ssod migrate`) and none newer than this build knows (upgrade ssod).
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let exists = client
            .prepare_cached("SELECT to_regclass('ssod_schema_migrations') IS NOT NULL")
            .await
            .map_err(from_pg)?;
        let exists: bool = client
            .query_one(&exists, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(from_pg)?;
        if !exists {
            return Err(StoreError::Internal(
                "database schema is not initialised: run `ssod migrate`".into(),
            ));
        }
        let recorded = client
            .prepare_cached("SELECT version, name FROM ssod_schema_migrations ORDER BY version")
            .await
            .map_err(from_pg)?;
        let mut applied = Vec::new();
        for row in client.query(&recorded, &[]).await.map_err(from_pg)? {
            let version: i32 = row.try_get(0).map_err(from_pg)?;
            let name: String = row.try_get(1).map_err(from_pg)?;
            applied.push((i64::from(version), name));
        }
        let unknown: Vec<i64> = applied
            .iter()
            .filter(|(version, _)| {
                !MIGRATIONS
                    .iter()
                    .any(|known| i64::from(known.version) == *version)
            })
            .map(|(version, _)| *version)
            .collect();
        if !unknown.is_empty() {
            let newest = MIGRATIONS.last().map_or(0, |migration| migration.version);
            return Err(StoreError::Internal(format!(
                "database schema has migrations {unknown:?} unknown to this ssod (it knows up to \
                 {newest}): upgrade ssod, then run `ssod migrate`"
            )));
        }
        for (version, name) in &applied {
            if let Some(known) = MIGRATIONS
                .iter()
                .find(|known| i64::from(known.version) == *version)
                && known.name != name
            {
                return Err(mismatch(known, name));
            }
        }
        let missing: Vec<u32> = MIGRATIONS
            .iter()
            .map(|migration| migration.version)
            .filter(|version| {
                !applied
                    .iter()
                    .any(|(applied, _)| *applied == i64::from(*version))
            })
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Internal(format!(
                "database schema lacks migrations {missing:?}: run `ssod migrate`"
            )));
        }
        Ok(())
    }
}

/// Rewrites every username key SQL's `lower(normalize(..))` got wrong with the key ssod
/// computes ([`Username::key_of`]), inside migration 4's transaction.
async fn rekey_usernames(
    transaction: &deadpool_postgres::Transaction<'_>,
) -> Result<(), StoreError> {
    let select = transaction
        .prepare_cached(sql::users::USERNAME_KEYS)
        .await
        .map_err(from_pg)?;
    let update = transaction
        .prepare_cached(sql::users::SET_USERNAME_KEY)
        .await
        .map_err(from_pg)?;
    for row in transaction.query(&select, &[]).await.map_err(from_pg)? {
        let id: Uuid = row.try_get(0).map_err(from_pg)?;
        let username: &str = row.try_get(1).map_err(from_pg)?;
        let stored: &str = row.try_get(2).map_err(from_pg)?;
        let key = Username::key_of(username);
        if key == stored {
            continue;
        }
        transaction
            .execute(&update, &[&id, &key])
            .await
            .map_err(|error| match from_pg(error) {
                StoreError::UsernameTaken => StoreError::Internal(format!(
                    "user {id} now has the same username key as another user (they differ only \
                     in case folding): rename one, then run `ssod migrate` again"
                )),
                other => other,
            })?;
    }
    Ok(())
}

fn mismatch(migration: &Migration, recorded: &str) -> StoreError {
    StoreError::Internal(format!(
        "database migration {} is recorded as {recorded:?} but this ssod calls it {:?}: the \
         database belongs to another build",
        migration.version, migration.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions only increase; a gap is allowed, as branches reserve numbers for migrations
    /// that land separately (each is applied once whatever the order it arrives in).
    #[test]
    fn embedded_migrations_are_numbered_in_order() {
        // Numbers are taken by the change that needs one, so a gap is a migration still on
        // another branch; order is what matters.
        let mut previous = 0;
        for migration in MIGRATIONS {
            assert!(
                migration.version > previous,
                "{} out of order",
                migration.version
            );
            assert!(!migration.sql.trim().is_empty());
            previous = migration.version;
        }
    }
}
