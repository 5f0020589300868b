//! Statements on second factors and password history (`0009_totp_password_history.sql`).
//! Every write that reads or changes a user's `totp_enabled` locks the user row first, in
//! a statement of its own, so the statements after it see what committed while it waited.

use super::{TOTP_SECRET, USER};

/// User `$1`'s stored TOTP secret, pending or enabled.
pub const TOTP: &str = join!(
    "SELECT ",
    TOTP_SECRET.list,
    " FROM user_totp WHERE user_id = $1"
);

/// Locks user `$1` and says whether it has TOTP enabled; no row: no such user.
pub const LOCK_TOTP_ENABLED: &str = "SELECT totp_enabled FROM users WHERE id = $1 FOR UPDATE";

/// Stores pending secret `$2` (key id), `$3` (sealed) for user `$1`, replacing a pending one.
/// Runs after [`LOCK_TOTP_ENABLED`] found TOTP not enabled.
pub const STORE_PENDING_TOTP: &str = "INSERT INTO user_totp (user_id, key_id, secret, last_step) \
     VALUES ($1, $2, $3, NULL) \
     ON CONFLICT (user_id) DO UPDATE SET key_id = EXCLUDED.key_id, secret = EXCLUDED.secret, \
     last_step = NULL";

/// Accepts step `$4` for user `$1`'s pending secret, if it is still `$2`, `$3`; updates
/// nothing when another enrolment replaced it.
pub const CONFIRM_PENDING_TOTP: &str = "UPDATE user_totp SET last_step = $4 \
     WHERE user_id = $1 AND key_id = $2 AND secret = $3";

/// Stores user `$1`'s recovery code hashes `$2`.
pub const INSERT_RECOVERY_CODES: &str = "INSERT INTO totp_recovery_codes (user_id, code_hash) \
     SELECT $1, code_hash FROM unnest($2::bytea[]) AS code_hash";

/// Enables TOTP of user `$1` and records the events `$2` (`totp.enabled`).
pub const ENABLE_TOTP: &str = join!(
    "WITH u AS (UPDATE users AS u SET totp_enabled = true WHERE u.id = $1 RETURNING ",
    USER.list,
    "), recorded AS (",
    listed!("$2", "u"),
    ") SELECT ",
    USER.list,
    " FROM u"
);

/// Moves user `$1`'s last accepted step to `$2` if TOTP is enabled and `$2` is later: one row
/// updated for the one call that wins (a concurrent one re-checks `last_step` after waiting
/// for the row and updates nothing).
pub const USE_TOTP_STEP: &str = "UPDATE user_totp t SET last_step = $2 FROM users u \
     WHERE t.user_id = $1 AND u.id = t.user_id AND u.totp_enabled \
     AND (t.last_step IS NULL OR t.last_step < $2)";

/// Uses up user `$1`'s recovery code of hash `$2`: one row deleted for the one call that wins.
pub const USE_RECOVERY_CODE: &str =
    "DELETE FROM totp_recovery_codes WHERE user_id = $1 AND code_hash = $2";

/// Disables TOTP of user `$1`: its secret and recovery codes go; records the events `$2`
/// (`totp.disabled`) if TOTP was enabled. Runs after [`LOCK_TOTP_ENABLED`].
pub const DISABLE_TOTP: &str = concat!(
    "WITH codes AS (DELETE FROM totp_recovery_codes WHERE user_id = $1), \
     secret AS (DELETE FROM user_totp WHERE user_id = $1), \
     u AS (UPDATE users SET totp_enabled = false WHERE id = $1 AND totp_enabled RETURNING id), \
     recorded AS (",
    listed!("$2", "u"),
    ") SELECT count(*) FROM u"
);

/// User `$1`'s replaced password hashes, newest first.
pub const PASSWORD_HISTORY: &str =
    "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY seq DESC";

/// Before user `$1`'s password hash is replaced at `$2`, in the same transaction: locks the
/// user row, adds the hash being replaced to the history and keeps the newest `$3` (none when
/// `$3` is 0). The delete's snapshot does not see the row inserted beside it, so it keeps
/// `$3 - 1` older ones.
pub const PUSH_PASSWORD_HISTORY: &str = "WITH replaced AS (\
       SELECT id, password_hash FROM users WHERE id = $1 FOR UPDATE), \
     kept AS (INSERT INTO password_history (user_id, password_hash, replaced_at) \
       SELECT id, password_hash, $2 FROM replaced WHERE $3::int8 > 0) \
     DELETE FROM password_history WHERE user_id = $1 AND seq NOT IN (\
       SELECT seq FROM password_history WHERE user_id = $1 \
       ORDER BY seq DESC LIMIT greatest($3::int8 - 1, 0))";
