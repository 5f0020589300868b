//! Statements on sign-up confirmation and password reset tokens (migration 10).

use super::{PASSWORD_HASH, USER, users::INSERT_USER};

/// Sign-up in one statement: the user of [`INSERT_USER`]'s `$1`…`$17`, its confirmation
/// token `$18` expiring at `$19` (replacing any token left under the key by a deleted
/// user) and its events `$20` (`signup.requested`), or none of them (no row) when the
/// username key is taken.
pub const SIGN_UP_USER: &str = join!(
    "WITH created AS (",
    INSERT_USER,
    " ON CONFLICT (username_key) DO NOTHING RETURNING u.*), \
     token AS (INSERT INTO account_tokens AS t \
       (token_hash, user_key, purpose, password_fingerprint, created_at, expires_at) \
       SELECT $18, u.username_key, 'confirm_sign_up', ",
    FINGERPRINT,
    ", u.created_at, $19 FROM created u",
    UPSERT_TOKEN,
    "), recorded AS (",
    listed!("$20", "created"),
    ") SELECT ",
    USER.list,
    " FROM created u"
);

/// Issues reset token `$2` (created at `$3`, expiring at `$4`) under username key `$1`,
/// replacing the key's older reset token, and returns the key's user if it may reset its
/// password (`User::may_reset_password`). The token is bound to that user's password; for
/// any other key (no user, or one that may not reset) it is written all the same with no
/// fingerprint and never redeems. Records the templates `$5` (`password.reset_requested`)
/// once, about the key's user if there is one. So every request costs the same writes.
pub const ISSUE_PASSWORD_RESET: &str = join!(
    "WITH named AS (SELECT u.id, (u.is_confirmed AND NOT u.is_locked \
       AND u.approval_status = 'approved') AS may_reset, ",
    FINGERPRINT,
    " AS fingerprint FROM users u WHERE u.username_key = $1), \
     issued AS (INSERT INTO account_tokens AS t \
       (token_hash, user_key, purpose, password_fingerprint, created_at, expires_at) \
       VALUES ($2, $1, 'reset_password', \
         (SELECT fingerprint FROM named WHERE may_reset), $3, $4)",
    UPSERT_TOKEN,
    " RETURNING t.password_fingerprint), \
     subject AS (SELECT (SELECT id FROM named) AS user_id, NULL::uuid AS id), \
     recorded AS (",
    for_rows!("$5", "subject"),
    ") SELECT ",
    USER.list,
    " FROM issued, named JOIN users u ON u.id = named.id WHERE named.may_reset"
);

/// The upsert that keeps one token per username key and purpose: the newer replaces it.
const UPSERT_TOKEN: &str = " ON CONFLICT (user_key, purpose) DO UPDATE SET \
     token_hash = EXCLUDED.token_hash, password_fingerprint = EXCLUDED.password_fingerprint, \
     created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at";

/// The SHA-256 of user `u`'s password hash: what binds a token to a password.
const FINGERPRINT: &str = "sha256(convert_to(u.password_hash, 'UTF8'))";

/// Token `t` is token `$1`, unexpired at `$2`, and user `u` is its user: the one under its
/// key that still has the password it was issued against.
const REDEEMABLE: &str = join!(
    "t.token_hash = $1 AND t.expires_at > $2 AND u.username_key = t.user_key \
     AND t.password_fingerprint = ",
    FINGERPRINT
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
pub const LOCK_TOKEN_USER: &str = "SELECT u.id FROM users u WHERE u.username_key = \
     (SELECT t.user_key FROM account_tokens t WHERE t.token_hash = $1) FOR NO KEY UPDATE";

/// Consumes confirmation token `$1` if it redeems at `$2`, confirms its user and records
/// the templates `$3` (`signup.confirmed`) about the user.
pub const CONFIRM_SIGN_UP: &str = join!(
    "WITH redeemed AS (DELETE FROM account_tokens t USING users u \
       WHERE t.purpose = 'confirm_sign_up' AND ",
    REDEEMABLE,
    " RETURNING u.id), \
     u AS (UPDATE users u SET is_confirmed = true FROM redeemed WHERE u.id = redeemed.id \
       RETURNING ",
    USER.list,
    "), ",
    REDEEMED_SUBJECT,
    ", recorded AS (",
    for_rows!("$3", "subject"),
    ") SELECT ",
    USER.list,
    " FROM u"
);

/// Consumes reset token `$1` if it redeems at `$2`, sets its user's password hash `$3`,
/// must-change flag `$4` and expiry `$5`, and records the templates `$6` (`password.reset`)
/// about the user. The user's sessions end by the next statement
/// (`users::END_USER_SESSIONS`) in the same transaction.
pub const RESET_PASSWORD: &str = join!(
    "WITH redeemed AS (DELETE FROM account_tokens t USING users u \
       WHERE t.purpose = 'reset_password' AND ",
    REDEEMABLE,
    " RETURNING u.id), \
     u AS (UPDATE users u SET password_hash = $3, password_must_change = $4, \
       password_expiry = $5 FROM redeemed WHERE u.id = redeemed.id RETURNING ",
    USER.list,
    "), ",
    REDEEMED_SUBJECT,
    ", recorded AS (",
    for_rows!("$6", "subject"),
    ") SELECT ",
    USER.list,
    " FROM u"
);

/// The redeemed user `u` as the rows `for_rows!` fills templates from (no session).
const REDEEMED_SUBJECT: &str = "subject AS (SELECT u.id AS user_id, NULL::uuid AS id FROM u)";

/// One batch of the sweep: up to `$2` tokens expired at `$1`, oldest first. Index walks
/// under the generic plan too, for the reasons `purge_forgotten!` in `throttle.rs` gives.
pub const PURGE_ACCOUNT_TOKENS: &str = "DELETE FROM account_tokens WHERE token_hash = ANY \
     (ARRAY(SELECT token_hash FROM account_tokens WHERE expires_at <= $1 \
     ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))";
