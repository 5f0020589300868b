//! Every statement the store runs, as `&'static str` so each is prepared once per connection
//! (`prepare_cached`). `$now` parameters are the caller's clock: no statement asks SQL for the
//! time when deciding expiry. Column lists are macros so that `concat!` can splice them and
//! [`super::rows`] can decode them by position.

macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.display_name, u.first_name, u.middle_name, u.last_name, \
         u.is_super_user, u.is_locked, u.approval_status, u.password_must_change, \
         u.password_expiry, u.created_at, u.last_login_at"
    };
}

macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.current_app, s.remote_addr, s.user_agent, s.created_at, \
         s.expires_at, s.last_renewed_at"
    };
}

macro_rules! attribute_columns {
    () => {
        "a.name, a.value, a.key_id, a.created_at, a.modified_at, a.expires_at"
    };
}

/// The username key: `lower()` in the database's locale, compared and ordered by code point.
macro_rules! username_key {
    () => {
        "(lower(u.username) COLLATE \"C\")"
    };
}

pub(super) const PING: &str = "SELECT 1";

// Users.

pub(super) const CREATE_USER: &str = concat!(
    "INSERT INTO users AS u (id, username, email, display_name, first_name, middle_name, \
     last_name, is_super_user, is_locked, approval_status, password_hash, password_must_change, \
     password_expiry, created_at, last_login_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ",
    user_columns!()
);

pub(super) const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", u.password_hash FROM users u WHERE u.id = $1"
);

pub(super) const USER_BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", u.password_hash FROM users u WHERE ",
    username_key!(),
    " = lower($1)"
);

/// `$1` LIKE pattern of the lower-cased prefix, `$2` approval status or null, `$3` the
/// username to start after (lower-cased here, like the key) or null, `$4` page size. One row per user of the page, each with the total;
/// a single row of nulls besides the total when the page is empty.
pub(super) const LIST_USERS: &str = concat!(
    "SELECT matching.total, ",
    user_columns!(),
    " FROM (SELECT count(*) AS total FROM users u WHERE ",
    username_key!(),
    " LIKE lower($1) AND ($2::text IS NULL OR u.approval_status = $2)) matching \
     LEFT JOIN LATERAL (SELECT u.* FROM users u WHERE ",
    username_key!(),
    " LIKE lower($1) AND ($2::text IS NULL OR u.approval_status = $2) \
     AND ($3::text IS NULL OR ",
    username_key!(),
    " > (lower($3) COLLATE \"C\")) ORDER BY ",
    username_key!(),
    " LIMIT $4) u ON true ORDER BY ",
    username_key!()
);

/// Patches a user (null leaves a column as it is; `$12` says whether to set the nullable
/// `password_expiry` to `$13`). Returns nothing when the user does not exist.
pub(super) const UPDATE_USER: &str = concat!(
    "UPDATE users AS u SET \
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
    user_columns!()
);

/// Ends a user's sessions but `$2`. A statement of its own, after `UPDATE_USER` in the same
/// transaction, so its snapshot includes sessions of logins that committed while the update
/// waited for the user row.
pub(super) const END_USER_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2";

pub(super) const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";

/// Cascades to the user's sessions, their attributes and the user's attributes.
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// Records a login: `$2` the session's creation; with a new password when `$3` is not null.
/// Only while the user still has `$6`, the hash the password was verified against, and may
/// log in: a lock or reset that committed meanwhile makes it update nothing.
pub(super) const RECORD_LOGIN: &str = "UPDATE users SET last_login_at = $2, \
     password_hash = COALESCE($3, password_hash), \
     password_must_change = CASE WHEN $3 IS NULL THEN password_must_change ELSE $4 END, \
     password_expiry = CASE WHEN $3 IS NULL THEN password_expiry ELSE $5 END \
     WHERE id = $1 AND password_hash = $6 AND NOT is_locked AND approval_status = 'approved'";

// Sessions.

/// Inserts a session and, in the same statement, its attributes (`$10` now, `$11`–`$14` the
/// attribute arrays).
pub(super) const INSERT_SESSION: &str = concat!(
    "WITH s AS (INSERT INTO sessions AS s (id, token_hash, user_id, current_app, remote_addr, \
     user_agent, created_at, expires_at, last_renewed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
    session_columns!(),
    "), a AS (INSERT INTO session_attributes \
     (session_id, name, value, key_id, created_at, modified_at, expires_at) \
     SELECT $1, i.name, i.value, i.key_id, $10, $10, i.expires_at \
     FROM unnest($11::text[], $12::bytea[], $13::text[], $14::timestamptz[]) \
     AS i (name, value, key_id, expires_at)) \
     SELECT * FROM s"
);

/// Ends the session a new one replaces, if it is still live.
pub(super) const END_REPLACED_SESSION: &str =
    "DELETE FROM sessions WHERE id = $1 AND expires_at > $2";

/// The hot path: one probe of the unique token index, joined to the user by primary key.
pub(super) const SESSION_BY_TOKEN: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", ",
    user_columns!(),
    " FROM sessions s LEFT JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.expires_at > $2"
);

pub(super) const SESSION_BY_ID: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", ",
    user_columns!(),
    " FROM sessions s LEFT JOIN users u ON u.id = s.user_id \
     WHERE s.id = $1 AND s.expires_at > $2"
);

pub(super) const RENEW_SESSION: &str = concat!(
    "UPDATE sessions AS s SET expires_at = $2, last_renewed_at = $3 \
     WHERE s.id = $1 AND s.expires_at > $3 RETURNING ",
    session_columns!()
);

pub(super) const LIST_SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 ORDER BY s.id LIMIT $3"
);

pub(super) const LIST_SESSIONS_AFTER: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 AND s.id > $4 \
     ORDER BY s.id LIMIT $3"
);

/// Deletes a session, expired or not; says whether it was live.
pub(super) const DELETE_SESSION: &str =
    "DELETE FROM sessions WHERE id = $1 RETURNING expires_at > $2";

/// Deletes every selected session; counts the live ones (`$1` now).
pub(super) const DELETE_USER_SESSIONS: &str = "WITH gone AS (DELETE FROM sessions \
     WHERE user_id = $2 RETURNING expires_at) SELECT count(*) FROM gone WHERE expires_at > $1";
pub(super) const DELETE_GUEST_SESSIONS: &str = "WITH gone AS (DELETE FROM sessions \
     WHERE user_id IS NULL RETURNING expires_at) SELECT count(*) FROM gone WHERE expires_at > $1";
pub(super) const DELETE_ALL_SESSIONS: &str = "WITH gone AS (DELETE FROM sessions \
     RETURNING expires_at) SELECT count(*) FROM gone WHERE expires_at > $1";

/// One batch of the sweep: up to `$2` sessions expired at `$1`, with every attribute they
/// still hold (deleted here so they can be counted; the cascade then finds nothing). Rows
/// another sweeper holds are skipped, not waited for.
pub(super) const PURGE_SESSIONS: &str = "WITH doomed AS (SELECT id FROM sessions \
     WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED), \
     attributes AS (DELETE FROM session_attributes a USING doomed \
       WHERE a.session_id = doomed.id RETURNING 1), \
     gone AS (DELETE FROM sessions s USING doomed WHERE s.id = doomed.id RETURNING 1) \
     SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM attributes)";

// Attributes: the same statements for each owner table.

/// The statements on one attribute table.
pub(super) struct AttributeSql {
    /// Locks a live owner row against concurrent writers (`$1` id; sessions: `$2` now).
    pub(super) lock_owner: &'static str,
    /// `$1` owner, `$2` now, `$3`–`$6` the item arrays. Returns the owner's live attributes
    /// not named in `$3` (as they were before this statement) beside each written row.
    pub(super) upsert: &'static str,
    pub(super) select_all: &'static str,
    /// `$3` the names.
    pub(super) select_named: &'static str,
    pub(super) names_all: &'static str,
    pub(super) names_named: &'static str,
    /// `$2` names, `$3` now; counts the live rows among those deleted.
    pub(super) delete: &'static str,
    /// `$1` owner, `$2` name, `$3` expiry, `$4` now.
    pub(super) set_expiry: &'static str,
    /// Up to `$2` rows expired at `$1`.
    pub(super) purge: &'static str,
}

macro_rules! attribute_sql {
    ($table:literal, $owner:literal, $lock_owner:expr) => {
        AttributeSql {
            lock_owner: $lock_owner,
            upsert: concat!(
                "WITH input AS (SELECT * FROM unnest($3::text[], $4::bytea[], $5::text[], \
                 $6::timestamptz[]) AS i (name, value, key_id, expires_at)), \
                 others AS (SELECT count(*) AS live FROM ",
                $table,
                " a WHERE a.",
                $owner,
                " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) AND a.name <> ALL ($3)), \
                 written AS (INSERT INTO ",
                $table,
                " AS a (",
                $owner,
                ", name, value, key_id, created_at, modified_at, expires_at) \
                 SELECT $1, i.name, i.value, i.key_id, $2, $2, i.expires_at FROM input i \
                 ON CONFLICT (",
                $owner,
                ", name) DO UPDATE SET \
                   value = excluded.value, key_id = excluded.key_id, \
                   expires_at = excluded.expires_at, \
                   created_at = CASE WHEN a.expires_at IS NOT NULL \
                     AND a.expires_at <= excluded.modified_at \
                     THEN excluded.created_at ELSE a.created_at END, \
                   modified_at = excluded.modified_at \
                 RETURNING ",
                attribute_columns!(),
                ") \
                 SELECT others.live, a.* FROM others LEFT JOIN written a ON true"
            ),
            select_all: concat!(
                "SELECT ",
                attribute_columns!(),
                " FROM ",
                $table,
                " a WHERE a.",
                $owner,
                " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) ORDER BY a.name"
            ),
            select_named: concat!(
                "SELECT ",
                attribute_columns!(),
                " FROM ",
                $table,
                " a WHERE a.",
                $owner,
                " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) AND a.name = ANY ($3) \
                 ORDER BY a.name"
            ),
            names_all: concat!(
                "SELECT a.name FROM ",
                $table,
                " a WHERE a.",
                $owner,
                " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) ORDER BY a.name"
            ),
            names_named: concat!(
                "SELECT a.name FROM ",
                $table,
                " a WHERE a.",
                $owner,
                " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) AND a.name = ANY ($3) \
                 ORDER BY a.name"
            ),
            delete: concat!(
                "WITH gone AS (DELETE FROM ",
                $table,
                " WHERE ",
                $owner,
                " = $1 AND name = ANY ($2) RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE expires_at IS NULL OR expires_at > $3"
            ),
            set_expiry: concat!(
                "UPDATE ",
                $table,
                " AS a SET expires_at = $3, modified_at = $4 WHERE a.",
                $owner,
                " = $1 AND a.name = $2 AND (a.expires_at IS NULL OR a.expires_at > $4) \
                 RETURNING ",
                attribute_columns!()
            ),
            purge: concat!(
                "DELETE FROM ",
                $table,
                " WHERE (",
                $owner,
                ", name) IN (SELECT ",
                $owner,
                ", name FROM ",
                $table,
                " WHERE expires_at <= $1 LIMIT $2 \
                 FOR UPDATE SKIP LOCKED)"
            ),
        }
    };
}

/// `NO KEY UPDATE` conflicts with itself (so attribute writers of one owner queue up) but not
/// with the `KEY SHARE` lock that inserting a referencing row takes.
pub(super) const SESSION_ATTRIBUTES: AttributeSql = attribute_sql!(
    "session_attributes",
    "session_id",
    "SELECT 1 FROM sessions WHERE id = $1 AND expires_at > $2 FOR NO KEY UPDATE"
);

pub(super) const USER_ATTRIBUTES: AttributeSql = attribute_sql!(
    "user_attributes",
    "user_id",
    "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE"
);
