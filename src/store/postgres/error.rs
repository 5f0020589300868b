//! PostgreSQL errors → [`StoreError`]: the one place that knows SQLSTATE codes and constraint
//! names. Messages carry codes, constraint names and the server's wording only where that
//! wording cannot quote a value (data exceptions and integrity violations can, so theirs is
//! left out): no SQL text, no parameter, no token hash or password hash ever.

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::{DbError, SqlState};

use crate::store::StoreError;

/// The unique constraint on `username_key` (migration 4).
const USERNAME_KEY: &str = "users_username_key_unique";
/// Foreign keys whose violation means the owner row is gone.
const SESSION_USER_FKEY: &str = "sessions_user_id_fkey";
const SESSION_ATTRIBUTE_OWNER_FKEY: &str = "session_attributes_session_id_fkey";
const USER_ATTRIBUTE_OWNER_FKEY: &str = "user_attributes_user_id_fkey";

/// An error from a statement on an open connection.
pub(super) fn from_pg(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        return from_db(db);
    }
    if error.is_closed() || is_io(&error) {
        return StoreError::Unavailable(format!("database connection lost: {error}"));
    }
    // Client-side failures: a value that does not encode, a column that does not decode.
    StoreError::Internal(format!("database client: {error}"))
}

/// An error while taking a connection from the pool: whatever the cause (refused, timed out,
/// wrong password, database missing), the store cannot be used right now.
pub(super) fn from_pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            StoreError::Unavailable("timed out waiting for a free database connection".into())
        }
        PoolError::Timeout(TimeoutType::Create) => {
            StoreError::Unavailable("timed out connecting to the database".into())
        }
        PoolError::Timeout(TimeoutType::Recycle) => {
            StoreError::Unavailable("timed out checking a pooled database connection".into())
        }
        PoolError::Backend(error) => match error.as_db_error() {
            Some(db) => StoreError::Unavailable(format!(
                "cannot connect to the database: sqlstate {}: {}",
                db.code().code(),
                db.message()
            )),
            None => StoreError::Unavailable(format!("cannot connect to the database: {error}")),
        },
        PoolError::Closed => StoreError::Unavailable("database connection pool is closed".into()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Internal("database connection pool has no runtime".into())
        }
        PoolError::PostCreateHook(error) => {
            StoreError::Unavailable(format!("cannot prepare a database connection: {error}"))
        }
    }
}

fn from_db(db: &DbError) -> StoreError {
    let code = db.code();
    let constraint = db.constraint().unwrap_or_default();
    if *code == SqlState::UNIQUE_VIOLATION && constraint == USERNAME_KEY {
        return StoreError::UsernameTaken;
    }
    if *code == SqlState::FOREIGN_KEY_VIOLATION {
        match constraint {
            SESSION_USER_FKEY | USER_ATTRIBUTE_OWNER_FKEY => return StoreError::UserNotFound,
            SESSION_ATTRIBUTE_OWNER_FKEY => return StoreError::SessionNotFound,
            _ => {}
        }
    }
    if is_transient(code) {
        return StoreError::Unavailable(describe(db));
    }
    StoreError::Internal(describe(db))
}

/// Conditions a retry (on another connection, or after a failover) can get past.
fn is_transient(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    // 08: connection exception; 53: insufficient resources (too many connections, disk full);
    // 57: operator intervention (shutdown, crash recovery, cannot connect now, statement
    // timeout); 58: system error (I/O).
    matches!(class, "08" | "53" | "57" | "58")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        // A primary that became a standby refuses writes until the pool reconnects elsewhere.
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
}

fn describe(db: &DbError) -> String {
    let code = db.code().code();
    let mut text = format!("sqlstate {code}");
    if let Some(table) = db.table() {
        text.push_str(&format!(" on {table}"));
    }
    if let Some(constraint) = db.constraint() {
        text.push_str(&format!(" ({constraint})"));
    }
    // Data exceptions (22) and integrity violations (23) may quote the offending value.
    if !code.starts_with("22") && !code.starts_with("23") {
        text.push_str(": ");
        text.push_str(db.message());
    }
    text
}

fn is_io(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
