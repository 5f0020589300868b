//! Statements on users.

use super::{PASSWORD_HASH, USER, USER_TOTAL};

/// Inserts a user from `$1`…`$17`; shared by [`CREATE_USER`] and sign-up's insert.
pub(super) const INSERT_USER: &str = "INSERT INTO users AS u (id, username, username_key, email, \
     display_name, first_name, middle_name, last_name, is_super_user, is_locked, \
     approval_status, password_hash, password_must_change, password_expiry, created_at, \
     last_login_at, is_confirmed) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// `$18` its events (`user.created`).
pub const CREATE_USER: &str = join!(
    "WITH u AS (",
    INSERT_USER,
    " RETURNING ",
    USER.list,
    "), recorded AS (",
    listed!("$18", "u"),
    ") SELECT ",
    USER.list,
    " FROM u"
);

pub const USER_BY_ID: &str = join!(
    "SELECT ",
    USER.list,
    ", ",
    PASSWORD_HASH.list,
    " FROM users u WHERE u.id = $1"
);

/// `$1` the username key, folded in Rust (`Username::key`).
pub const USER_BY_USERNAME: &str = join!(
    "SELECT ",
    USER.list,
    ", ",
    PASSWORD_HASH.list,
    " FROM users u WHERE u.username_key = $1"
);

/// `$1` LIKE pattern of the key prefix, `$2` approval status or null, `$3` the key to start
/// after or null, `$4` page size. Keys are folded in Rust and compared by code point (the
/// column's "C" collation), so a prefix LIKE is a range scan of the unique index. One row per
/// user of the page, each with the total; a single row of nulls besides the total when the
/// page is empty.
pub const LIST_USERS: &str = join!(
    "SELECT ",
    USER_TOTAL.list,
    ", ",
    USER.list,
    " FROM (SELECT count(*) AS total FROM users u WHERE u.username_key LIKE $1 \
     AND ($2::text IS NULL OR u.approval_status = $2)) matching \
     LEFT JOIN LATERAL (SELECT u.* FROM users u WHERE u.username_key LIKE $1 \
     AND ($2::text IS NULL OR u.approval_status = $2) \
     AND ($3::text IS NULL OR u.username_key > $3) ORDER BY u.username_key LIMIT $4) u ON true \
     ORDER BY u.username_key"
);

/// Patches a user (null leaves a column as it is; `$12` says whether to set the nullable
/// `password_expiry` to `$13`) and records its events `$14`. Returns nothing (and records
/// nothing) when the user does not exist.
pub const UPDATE_USER: &str = join!(
    "WITH u AS (UPDATE users AS u SET \
         email = COALESCE($2, u.email), \
         display_name = COALESCE($3, u.display_name), \
         first_name = COALESCE($4, u.first_name), \
         middle_name = COALESCE($5, u.middle_name), \
         last_name = COALESCE($6, u.last_name), \
         is_super_user = COALESCE($7, u.is_super_user), \
         is_locked = COALESCE($8, u.is_locked), \
         approval_status = COALESCE($9, u.approval_status), \
         password_hash = COALESCE($10, u.password_hash), \
         password_must_change = COALESCE($11, u.password_must_change), \
         password_expiry = CASE WHEN $12 THEN $13 ELSE u.password_expiry END \
     WHERE u.id = $1 RETURNING ",
    USER.list,
    "), recorded AS (",
    listed!("$14", "u"),
    ") SELECT ",
    USER.list,
    " FROM u"
);

/// Locks user `$1` and says whether its password had expired at `$2`, before an update that
/// may move the expiry: the sessions that expiry made unusable must end, not come back.
pub const PASSWORD_EXPIRED: &str =
    "SELECT (password_expiry <= $2) IS TRUE FROM users WHERE id = $1 FOR UPDATE";

/// Ends a user's sessions but `$2`, recording templates `$3` for each. A statement of its
/// own, after `UPDATE_USER` in the same transaction, so its snapshot includes sessions of
/// logins that committed while the update waited for the user row.
pub const END_USER_SESSIONS: &str = concat!(
    "WITH gone AS (DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2 \
     RETURNING id, user_id), recorded AS (",
    for_rows!("$3", "gone"),
    ") SELECT count(*) FROM gone"
);

/// Cascades to the user's sessions, their attributes and the user's attributes; records
/// `$2` if the user was there. Returns how many users it deleted.
pub const DELETE_USER: &str = concat!(
    "WITH u AS (DELETE FROM users WHERE id = $1 RETURNING id), recorded AS (",
    listed!("$2", "u"),
    ") SELECT count(*) FROM u"
);

/// Every user's name and key, for migration 4 to correct the keys SQL could only approximate.
pub const USERNAME_KEYS: &str = "SELECT id, username, username_key FROM users";

/// `$2` the key ssod computes for user `$1`'s name.
pub const SET_USERNAME_KEY: &str = "UPDATE users SET username_key = $2 WHERE id = $1";
