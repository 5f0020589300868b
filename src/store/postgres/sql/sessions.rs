//! Statements on sessions.

use super::{SESSION, USER};

/// Inserts a session and, in the same statement, its attributes (`$10` now, `$11`–`$14` the
/// attribute arrays) and its events (`$16`). A guest (`$3` null) is inserted only while fewer
/// than `$15` guest sessions are stored: `room` locks the guest count (re-reading it after any
/// wait) and the insert's trigger raises it; a user's session neither locks nor reads it.
/// Returns no row (and records nothing) when there is no room.
pub const INSERT_SESSION: &str = join!(
    "WITH room AS MATERIALIZED (\
       SELECT 1 FROM (SELECT 1 FROM guest_sessions_count \
         WHERE $3::uuid IS NULL AND sessions < $15::int8 FOR UPDATE) AS guest \
       UNION ALL SELECT 1 WHERE $3::uuid IS NOT NULL), \
     s AS (INSERT INTO sessions AS s (id, token_hash, user_id, current_app, remote_addr, \
     user_agent, created_at, expires_at, last_renewed_at) \
     SELECT $1::uuid, $2::bytea, $3::uuid, $4::text, $5::text, $6::text, $7::timestamptz, \
     $8::timestamptz, $9::timestamptz FROM room RETURNING ",
    SESSION.list,
    "), a AS (INSERT INTO session_attributes \
     (session_id, name, value, key_id, created_at, modified_at, expires_at) \
     SELECT s.id, i.name, i.value, i.key_id, $10, $10, i.expires_at \
     FROM s, unnest($11::text[], $12::bytea[], $13::text[], $14::timestamptz[]) \
     AS i (name, value, key_id, expires_at)), recorded AS (",
    listed!("$16", "s"),
    ") SELECT * FROM s"
);

/// Records a login: `$2` the session's creation; with a new password when `$3` is not null.
/// Only while the user still has `$6`, the hash the password was verified against, and may
/// log in: a lock or reset that committed meanwhile makes it update nothing.
pub const RECORD_LOGIN: &str = "UPDATE users SET last_login_at = $2, \
     password_hash = COALESCE($3, password_hash), \
     password_must_change = CASE WHEN $3 IS NULL THEN password_must_change ELSE $4 END, \
     password_expiry = CASE WHEN $3 IS NULL THEN password_expiry ELSE $5 END \
     WHERE id = $1 AND password_hash = $6 AND NOT is_locked AND approval_status = 'approved'";

pub const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";

/// Locks user `$1` for a session opened without a login record (which would lock it), so
/// its session limit is counted under the same lock.
pub const LOCK_USER: &str = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE";

/// Keeps user `$1` within `$3` live sessions at `$2` once a new one is added: returns how
/// many live sessions it has and, when `$4` (end the oldest), deletes all but the newest
/// `$3 - 1` of them, recording templates `$5` for each, returning how many. Runs under the user's row lock, which every login of
/// the user takes first, in a statement of its own, so its snapshot includes the sessions of
/// logins that committed while this one waited for the lock.
pub const ENFORCE_SESSION_LIMIT: &str = concat!(
    "WITH live AS MATERIALIZED (\
       SELECT id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS newness \
       FROM sessions WHERE user_id = $1 AND expires_at > $2), \
     ended AS (DELETE FROM sessions s USING live \
       WHERE $4::bool AND live.newness >= $3::int8 AND s.id = live.id \
       RETURNING s.id, s.user_id), recorded AS (",
    for_rows!("$5", "ended"),
    ") SELECT (SELECT count(*) FROM live), (SELECT count(*) FROM ended)"
);

/// Ends the session a new one replaces, if it is still live, recording templates `$3`.
/// Returns how many it ended.
pub const END_REPLACED_SESSION: &str = concat!(
    "WITH gone AS (DELETE FROM sessions WHERE id = $1 AND expires_at > $2 \
     RETURNING id, user_id), recorded AS (",
    for_rows!("$3", "gone"),
    ") SELECT count(*) FROM gone"
);

/// A live session and its user (null columns for a guest), by the condition on `$1` that
/// follows; `$2` now.
const SESSION_WITH_USER: &str = join!(
    "SELECT ",
    SESSION.list,
    ", ",
    USER.list,
    " FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.expires_at > $2 AND "
);

/// The hot path: one probe of the unique token index, joined to the user by primary key.
pub const SESSION_BY_TOKEN: &str = join!(SESSION_WITH_USER, "s.token_hash = $1");

/// The hot path with renewal by use (`RenewOnUse`), still one statement: `$1` the token hash,
/// `$2` now, `$3` renewed before, `$4` a user's session's new expiry (now + idle timeout),
/// `$5` a guest's, `$6` the absolute lifetime in microseconds (the new expiry is capped at
/// creation + that). `renewed` renews the session if it is due and its user may
/// authenticate (the rule of `User::may_authenticate`); otherwise the plain look-up answers.
/// The main query cannot see what `renewed` wrote, hence the union rather than a re-read.
/// A renewal racing another one re-checks `$3` on the row it waited for and finds it no
/// longer due; the plain look-up then answers with the row as the statement's snapshot had it.
pub const SESSION_BY_TOKEN_RENEWING: &str = join!(
    "WITH renewed AS (UPDATE sessions AS s SET \
       expires_at = least(CASE WHEN s.user_id IS NULL THEN $5::timestamptz \
         ELSE $4::timestamptz END, s.created_at + $6::int8 * interval '1 microsecond'), \
       last_renewed_at = $2 \
     WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_renewed_at <= $3 \
       AND (s.user_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id \
         AND NOT u.is_locked AND u.approval_status = 'approved' \
         AND (u.password_expiry IS NULL OR u.password_expiry > $2))) \
     RETURNING ",
    SESSION.list,
    "), s AS (SELECT * FROM renewed UNION ALL SELECT ",
    SESSION.list,
    " FROM sessions s WHERE s.token_hash = $1 AND s.expires_at > $2 \
       AND NOT EXISTS (SELECT 1 FROM renewed)) \
     SELECT ",
    SESSION.list,
    ", ",
    USER.list,
    " FROM s LEFT JOIN users u ON u.id = s.user_id"
);

pub const SESSION_BY_ID: &str = join!(SESSION_WITH_USER, "s.id = $1");

pub const RENEW_SESSION: &str = join!(
    "UPDATE sessions AS s SET expires_at = $2, last_renewed_at = $3 \
     WHERE s.id = $1 AND s.expires_at > $3 RETURNING ",
    SESSION.list
);

pub const LIST_SESSIONS: &str = join!(
    "SELECT ",
    SESSION.list,
    " FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 ORDER BY s.id LIMIT $3"
);

pub const LIST_SESSIONS_AFTER: &str = join!(
    "SELECT ",
    SESSION.list,
    " FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 AND s.id > $4 \
     ORDER BY s.id LIMIT $3"
);

/// Deletes a session, expired or not, recording templates `$3` for it; says whether it was
/// live.
pub const DELETE_SESSION: &str = concat!(
    "WITH gone AS (DELETE FROM sessions WHERE id = $1 RETURNING id, user_id, expires_at), \
     recorded AS (",
    for_rows!("$3", "gone"),
    ") SELECT expires_at > $2 FROM gone"
);

/// One batch of a bulk revocation: deletes up to `$3` selected sessions, expired or not,
/// with ids after `$2`, in id order (a keyset walk, so no batch scans what an earlier one
/// deleted). Returns how many it selected, how many of those were live at `$1`, and the last
/// id selected, where the next batch starts. Rows another transaction holds are waited for,
/// not skipped: a revocation must not leave any behind. The batch that ends the walk (it
/// selects fewer than `$3`) records the revocation's one event from `$4` with its count,
/// `$5` live sessions deleted by the batches before plus its own.
macro_rules! delete_sessions_batch {
    ($selected:literal) => {
        concat!(
            "WITH doomed AS MATERIALIZED (SELECT id FROM sessions WHERE ",
            $selected,
            " AND id > $2 ORDER BY id LIMIT $3 FOR UPDATE), \
             gone AS (DELETE FROM sessions s USING doomed WHERE s.id = doomed.id \
               RETURNING s.expires_at), \
             live AS MATERIALIZED (SELECT count(*) AS live FROM gone WHERE expires_at > $1), \
             summary AS (INSERT INTO events (",
            event_columns!(),
            ") SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, \
               e.current_app, e.remote_addr, e.user_agent, e.user_id, e.session_id, e.reason, \
               e.details || jsonb_build_object('count', $5::int8 + live.live) \
             FROM live, jsonb_populate_recordset(NULL::events, $4::jsonb) AS e \
             WHERE (SELECT count(*) FROM doomed) < $3) \
             SELECT (SELECT count(*) FROM doomed), (SELECT live FROM live), \
               (SELECT id FROM doomed ORDER BY id DESC LIMIT 1)"
        )
    };
}

/// `$6` the user.
pub const DELETE_USER_SESSIONS: &str = delete_sessions_batch!("user_id = $6");
/// `$6` the user, `$7` the session it keeps.
pub const DELETE_OTHER_USER_SESSIONS: &str = delete_sessions_batch!("user_id = $6 AND id <> $7");
pub const DELETE_GUEST_SESSIONS: &str = delete_sessions_batch!("user_id IS NULL");
pub const DELETE_ALL_SESSIONS: &str = delete_sessions_batch!("true");

/// One batch of the sweep: up to `$2` sessions expired at `$1`, with every attribute they
/// still hold (deleted here so they can be counted; the cascade then finds nothing),
/// recording templates `$3` (`session.expired`) for each session. Rows
/// another sweeper holds are skipped, not waited for. `quiet` sets `ssod.sweeping` for the
/// statement's own transaction, before any row is deleted, so migration 7's trigger does
/// not announce sessions that every UST cache already refuses by their expiry.
pub const PURGE_SESSIONS: &str = concat!(
    "WITH quiet AS MATERIALIZED \
       (SELECT set_config('ssod.sweeping', 'on', true)), \
     doomed AS (SELECT id FROM sessions, quiet \
     WHERE expires_at <= $1 LIMIT $2 FOR UPDATE OF sessions SKIP LOCKED), \
     attributes AS (DELETE FROM session_attributes a USING doomed \
       WHERE a.session_id = doomed.id RETURNING 1), \
     gone AS (DELETE FROM sessions s USING doomed WHERE s.id = doomed.id \
       RETURNING s.id, s.user_id), recorded AS (",
    for_rows!("$3", "gone"),
    ") SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM attributes)"
);
