//! Statements on the failed-login counters. Durations are `float8` seconds; `$now` is the
//! caller's clock. Each claim is one upsert whose `WHERE` refuses a locked-out row: it then
//! updates and returns nothing (the row stays locked, so concurrent claims still queue on it).

use super::{ADDRESS_COUNTER, LOCKED_UNTIL};

/// Claims a place for one attempt from address `$1` at `$2`, window `$3` s, limit `$4`,
/// lockout `$5` s. Counts one failure in the current window (a new one once it has passed);
/// when the window already holds the limit, counts nothing and locks the address out from
/// now instead (a returned `locked_until`). No row: locked out already.
pub const CLAIM_ADDRESS: &str = join!(
    "INSERT INTO login_failures_by_address AS a (remote_addr, failures, window_start, locked_until) \
     VALUES ($1, 1, $2::timestamptz, NULL) \
     ON CONFLICT (remote_addr) DO UPDATE SET \
         failures = CASE \
             WHEN a.window_start + make_interval(secs => $3::float8) <= $2::timestamptz THEN 1 \
             WHEN a.failures >= $4::int4 THEN 0 \
             ELSE a.failures + 1 END, \
         window_start = CASE \
             WHEN a.window_start + make_interval(secs => $3::float8) <= $2::timestamptz \
                 OR a.failures >= $4::int4 THEN $2::timestamptz \
             ELSE a.window_start END, \
         locked_until = CASE \
             WHEN a.window_start + make_interval(secs => $3::float8) > $2::timestamptz \
                 AND a.failures >= $4::int4 \
             THEN $2::timestamptz + make_interval(secs => $5::float8) END \
     WHERE a.locked_until IS NULL OR a.locked_until <= $2::timestamptz \
     RETURNING ",
    ADDRESS_COUNTER.list
);

/// Gives back the place an admitted claim took in address `$1`'s window that started at
/// `$2`; nothing once another window has started.
pub const RELEASE_ADDRESS: &str = "UPDATE login_failures_by_address SET failures = failures - 1 \
     WHERE remote_addr = $1 AND window_start = $2 AND failures > 0";

/// Claims a place for one attempt on username key `$1` at `$2`, limit `$3`, first lockout
/// `$4` s, longest lockout `$5` s, doubled at most `$6` times, reset time `$7` s. Counts one
/// failure; the one that reaches the limit starts a lockout, doubled for each earlier one and
/// capped. A row whose last failure is the reset time old starts from zero, like a new one
/// (the proposed row, `EXCLUDED`). No row: locked out, nothing counted. The claim that starts
/// a lockout of a username that names a user records templates `$8` (`user.locked_out`) for
/// that user, with the lockout's length.
pub const CLAIM_USER: &str = join!(
    "WITH c AS (INSERT INTO login_failures_by_user AS u \
         (username_key, failures, lockouts, locked_until, last_failure_at) \
     VALUES ($1, \
         CASE WHEN $3::int4 <= 1 THEN 0 ELSE 1 END, \
         CASE WHEN $3::int4 <= 1 THEN 1 ELSE 0 END, \
         CASE WHEN $3::int4 <= 1 \
             THEN $2::timestamptz + make_interval(secs => least($4::float8, $5::float8)) END, \
         $2::timestamptz) \
     ON CONFLICT (username_key) DO UPDATE SET \
         failures = CASE WHEN ",
    USER_RESET,
    " THEN EXCLUDED.failures \
             WHEN u.failures + 1 >= $3::int4 THEN 0 ELSE u.failures + 1 END, \
         lockouts = CASE WHEN ",
    USER_RESET,
    " THEN EXCLUDED.lockouts \
             WHEN u.failures + 1 >= $3::int4 THEN u.lockouts + 1 ELSE u.lockouts END, \
         locked_until = CASE WHEN ",
    USER_RESET,
    " THEN EXCLUDED.locked_until \
             WHEN u.failures + 1 >= $3::int4 \
             THEN $2::timestamptz + make_interval(secs => least( \
                 $4::float8 * power(2, least(u.lockouts, $6::int4)), $5::float8)) \
             ELSE u.locked_until END, \
         last_failure_at = $2::timestamptz \
     WHERE u.locked_until IS NULL OR u.locked_until <= $2::timestamptz \
     RETURNING ",
    LOCKED_UNTIL.list,
    "), recorded AS (INSERT INTO events (",
    event_columns!(),
    ") SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, e.current_app, \
       e.remote_addr, e.user_agent, users.id, NULL, e.reason, e.details || jsonb_build_object(\
         'lockout_secs', floor(extract(epoch FROM c.locked_until - $2::timestamptz))::int8) \
     FROM c JOIN users ON users.username_key = $1, \
       jsonb_populate_recordset(NULL::events, $8::jsonb) AS e \
     WHERE c.locked_until > $2::timestamptz) \
     SELECT ",
    LOCKED_UNTIL.list,
    " FROM c"
);

/// The claim's test that the row's last failure is reset time `$7` s old at `$2`; its
/// `WHERE` has already made sure no lockout is running.
const USER_RESET: &str = "u.last_failure_at <= $2::timestamptz - make_interval(secs => $7::float8)";

/// Why a claim on address `$1` was refused: the end of its lockout.
pub const ADDRESS_LOCKED_UNTIL: &str = join!(
    "SELECT ",
    LOCKED_UNTIL.list,
    " FROM login_failures_by_address WHERE remote_addr = $1"
);

/// Why a claim on username key `$1` was refused: the end of its lockout.
pub const USER_LOCKED_UNTIL: &str = join!(
    "SELECT ",
    LOCKED_UNTIL.list,
    " FROM login_failures_by_user WHERE username_key = $1"
);

/// A success or an unlock: the user's failures and lockout history go.
pub const FORGET_USER: &str = "DELETE FROM login_failures_by_user WHERE username_key = $1";

/// One batch of the sweep: deletes up to `$2` rows of `$table` forgotten at `$1`, those
/// whose `$since` is `$3` s old with no lockout running, oldest first. Rows a claim holds
/// are skipped. Shaped for PostgreSQL's generic plan, which the prepared statement switches
/// to once full batches (a burst of failures, a reset time later) have raised its custom
/// plans' average cost above the generic estimate: the `ORDER BY` walks `$since`'s index (an
/// unordered `LIMIT` was a sequential scan of the whole table, even with nothing to forget)
/// and the keys are deleted as an array, by primary key (an `IN` was a hash join over a
/// sequential scan).
macro_rules! purge_forgotten {
    ($table:literal, $key:literal, $since:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $key,
            " = ANY (ARRAY(SELECT ",
            $key,
            " FROM ",
            $table,
            " WHERE ",
            $since,
            " <= $1::timestamptz - make_interval(secs => $3::float8) \
               AND (locked_until IS NULL OR locked_until <= $1::timestamptz) \
             ORDER BY ",
            $since,
            " LIMIT $2 FOR UPDATE SKIP LOCKED))"
        )
    };
}

/// `$3` the reset time: counted from the last failure.
pub const PURGE_USERS: &str =
    purge_forgotten!("login_failures_by_user", "username_key", "last_failure_at");
/// `$3` the window: counted from its start.
pub const PURGE_ADDRESSES: &str =
    purge_forgotten!("login_failures_by_address", "remote_addr", "window_start");
