//! Statements on the audit outbox (`0008_events.sql`), and the pieces that fold an event
//! insert into another statement as a CTE, so a write records its events in the same
//! statement (one round trip, one transaction).
//!
//! Events travel as one `jsonb` parameter: an array of records shaped like an `events` row
//! (`jsonb_populate_recordset(NULL::events, …)` reads them; `xact` and `sequence` are left
//! to their defaults). A record may serve as a template: [`for_rows!`] inserts one event per
//! row of a CTE, taking `user_id` and `session_id` from the row (a session it deleted).

use super::EVENT;

/// The columns a write sets; `xact` and `sequence` come from their defaults.
macro_rules! event_columns {
    () => {
        "time, type, cid, actor_user_id, actor_session_id, current_app, remote_addr, \
         user_agent, user_id, session_id, reason, details"
    };
}

/// A CTE body inserting the events listed in `$param`, once per row of `$from` (a CTE
/// that yields one row when the write happened, none when it did not).
macro_rules! listed {
    ($param:literal, $from:literal) => {
        concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, \
             e.current_app, e.remote_addr, e.user_agent, e.user_id, e.session_id, e.reason, \
             e.details FROM (SELECT 1 FROM ",
            $from,
            " LIMIT 1) AS happened, jsonb_populate_recordset(NULL::events, ",
            $param,
            "::jsonb) AS e"
        )
    };
}

/// A CTE body inserting each template in `$param` once per row of `$rows`, which has the
/// columns `user_id` and `id` (the session).
macro_rules! for_rows {
    ($param:literal, $rows:literal) => {
        concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, \
             e.current_app, e.remote_addr, e.user_agent, r.user_id, r.id, e.reason, \
             e.details FROM ",
            $rows,
            " AS r, jsonb_populate_recordset(NULL::events, ",
            $param,
            "::jsonb) AS e"
        )
    };
}

/// Records events that change nothing else (a failed login, a super-user's read): `$1`.
pub const APPEND_EVENTS: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, e.current_app, \
     e.remote_addr, e.user_agent, e.user_id, e.session_id, e.reason, e.details \
     FROM jsonb_populate_recordset(NULL::events, $1::jsonb) AS e"
);

/// A page of the log in id order: after (`$1` transaction, `$2` sequence) when `$1` is not
/// null; types `$3` (empty: all); user `$4`, session `$5`; time at or after `$6`, before
/// `$7` (null: unbounded); at most `$8`. What has committed: unlike [`FEED`], an event of a
/// transaction that is still open may later appear before the last one listed.
pub const LIST_EVENTS: &str = join!(
    "SELECT ",
    EVENT.list,
    " FROM events e WHERE ($1::int8 IS NULL OR (e.xact, e.sequence) > \
       ($1::int8, $2::int8)) \
     AND (cardinality($3::text[]) = 0 OR e.type = ANY($3::text[])) \
     AND ($4::uuid IS NULL OR e.user_id = $4::uuid) \
     AND ($5::uuid IS NULL OR e.session_id = $5::uuid) \
     AND ($6::timestamptz IS NULL OR e.time >= $6::timestamptz) \
     AND ($7::timestamptz IS NULL OR e.time < $7::timestamptz) \
     ORDER BY e.xact, e.sequence LIMIT $8"
);

/// What a watcher reads next: up to `$3` settled events after (`$1`, `$2`), in id order;
/// whether any later event is not settled yet; and whether the retention has trimmed an
/// event after the cursor (its horizon is past it: the watch is expired). Settled: written by
/// a transaction below the snapshot's xmin, so every transaction that could still add an
/// event before it has ended. One row per event, each with `pending` and `expired`; a single
/// row of nulls besides them when there is none. `pending` looks at the newest event only
/// (one backward step of the primary key): a later unsettled event exists exactly when the
/// newest is unsettled and after the cursor. Asked as "any unsettled event after the
/// cursor", PostgreSQL's generic plan for it scanned the whole table on every read.
pub const FEED: &str = join!(
    "WITH horizon AS MATERIALIZED (SELECT x.xmin, COALESCE((SELECT p.xact >= x.xmin AND \
       (p.xact, p.sequence) > ($1::int8, $2::int8) FROM events p \
       ORDER BY p.xact DESC, p.sequence DESC LIMIT 1), false) AS pending, \
       (SELECT (t.xact, t.sequence) > ($1::int8, $2::int8) FROM event_trim_horizon t) AS expired \
       FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8 AS xmin) x) \
     SELECT h.pending, h.expired, ",
    EVENT.list,
    " FROM horizon h LEFT JOIN LATERAL (SELECT * FROM events e \
       WHERE (e.xact, e.sequence) > ($1::int8, $2::int8) AND e.xact < h.xmin \
       ORDER BY e.xact, e.sequence LIMIT $3) e ON true ORDER BY e.xact, e.sequence"
);

/// The last settled event's id (transaction, sequence), where a watcher that starts "from now
/// on" begins; no row when the log is empty.
pub const HEAD: &str = "SELECT e.xact, e.sequence FROM events e \
     WHERE e.xact < pg_snapshot_xmin(pg_current_snapshot())::text::int8 \
     ORDER BY e.xact DESC, e.sequence DESC LIMIT 1";

/// One batch of retention: deletes up to `$2` events recorded before `$1`, and raises the
/// trim horizon to the newest id it deleted (migration 11), in one statement so a watcher
/// sees both or neither. Rows another sweeper holds are skipped.
pub const TRIM_EVENTS: &str = "WITH doomed AS MATERIALIZED (SELECT xact, sequence FROM events \
       WHERE time < $1 LIMIT $2 FOR UPDATE SKIP LOCKED), \
     raised AS (UPDATE event_trim_horizon t SET xact = n.xact, sequence = n.sequence \
       FROM (SELECT xact, sequence FROM doomed ORDER BY xact DESC, sequence DESC LIMIT 1) n \
       WHERE (n.xact, n.sequence) > (t.xact, t.sequence)) \
     DELETE FROM events WHERE (xact, sequence) IN (SELECT xact, sequence FROM doomed)";

/// Whether the event (`$1`, `$2`) is still stored: a cursor whose event is gone is past the
/// retention.
pub const EVENT_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM events WHERE xact = $1 AND sequence = $2)";
