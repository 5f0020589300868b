//! Statements on sign-up confirmation and password reset tokens (migration 10).

use super::{PASSWORD_HASH, USER, users::INSERT_USER};

/// Sign-up in one statement: the user of [`INSERT_USER`]'s `$1`…`$17` and its confirmation
/// token `$18` expiring at `$19`, or neither (no row) when the username key is taken.
pub const SIGN_UP_USER: &str = join!(
    "WITH created AS (",
    INSERT_USER,
    " ON CONFLICT (username_key) DO NOTHING RETURNING u.*), \
     token AS (INSERT INTO account_tokens (token_hash, user_id, purpose, created_at, expires_at) \
       SELECT $18, id, 'confirm_sign_up', created_at, $19 FROM created) \
     SELECT ",
    USER.list,
    " FROM created u"
);

/// Issues reset token `$2` (created at `$3`, expiring at `$4`) to the user of username key
/// `$1`, if it may reset its password (`User::may_reset_password`), replacing its older reset
/// token; returns that user. One statement, whether the user exists or not. The token keeps
/// the fingerprint of the user's password hash (see migration 10).
pub const ISSUE_PASSWORD_RESET: &str = join!(
    "WITH issued AS (INSERT INTO account_tokens AS t \
       (token_hash, user_id, purpose, password_fingerprint, created_at, expires_at) \
       SELECT $2, u.id, 'reset_password', ",
    FINGERPRINT,
    ", $3, $4 FROM users u WHERE u.username_key = $1 AND u.is_confirmed AND NOT u.is_locked \
       AND u.approval_status = 'approved' \
       ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = EXCLUDED.token_hash, \
         password_fingerprint = EXCLUDED.password_fingerprint, \
         created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at \
       RETURNING t.user_id) \
     SELECT ",
    USER.list,
    " FROM issued JOIN users u ON u.id = issued.user_id"
);

/// The SHA-256 of user `u`'s password hash: what binds a reset token to a password.
const FINGERPRINT: &str = "sha256(convert_to(u.password_hash, 'UTF8'))";

/// Token `t` of user `u` is token `$1` and still redeems at `$2`: unexpired, and a reset token
/// only while the user's password is the one it was issued against.
const REDEEMABLE: &str = join!(
    "t.token_hash = $1 AND t.expires_at > $2 AND u.id = t.user_id \
     AND (t.password_fingerprint IS NULL OR t.password_fingerprint = ",
    FINGERPRINT,
    ")"
);

/// The user (with its password hash) of token `$1` of purpose `$3`, if it redeems at `$2`.
pub const TOKEN_USER: &str = join!(
    "SELECT ",
    USER.list,
    ", ",
    PASSWORD_HASH.list,
    " FROM account_tokens t, users u WHERE t.purpose = $3 AND ",
    REDEEMABLE
);

/// Locks the user of token `$1`, first in a redemption's transaction: the redemption's own
/// statement then reads the user's password as committed by now, so a password change that
/// commits meanwhile invalidates the token instead of being overwritten.
pub const LOCK_TOKEN_USER: &str = "SELECT 1 FROM users u WHERE u.id = \
     (SELECT t.user_id FROM account_tokens t WHERE t.token_hash = $1) FOR NO KEY UPDATE";

/// Consumes confirmation token `$1` if it redeems at `$2`, and confirms its user.
pub const CONFIRM_SIGN_UP: &str = join!(
    "WITH redeemed AS (DELETE FROM account_tokens t USING users u \
       WHERE t.purpose = 'confirm_sign_up' AND ",
    REDEEMABLE,
    " RETURNING t.user_id) \
     UPDATE users u SET is_confirmed = true FROM redeemed WHERE u.id = redeemed.user_id \
     RETURNING ",
    USER.list
);

/// Consumes reset token `$1` if it redeems at `$2`, and sets its user's password hash `$3`,
/// must-change flag `$4` and expiry `$5`. The user's sessions end by the next statement
/// (`users::END_USER_SESSIONS`) in the same transaction.
pub const RESET_PASSWORD: &str = join!(
    "WITH redeemed AS (DELETE FROM account_tokens t USING users u \
       WHERE t.purpose = 'reset_password' AND ",
    REDEEMABLE,
    " RETURNING t.user_id) \
     UPDATE users u SET password_hash = $3, password_must_change = $4, password_expiry = $5 \
     FROM redeemed WHERE u.id = redeemed.user_id RETURNING ",
    USER.list
);

/// One batch of the sweep: up to `$2` tokens expired at `$1`.
pub const PURGE_ACCOUNT_TOKENS: &str = "DELETE FROM account_tokens WHERE token_hash IN \
     (SELECT token_hash FROM account_tokens WHERE expires_at <= $1 LIMIT $2 \
     FOR UPDATE SKIP LOCKED)";
