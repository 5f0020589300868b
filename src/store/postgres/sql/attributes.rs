//! Statements on the attribute tables: the same statements for each owner table.

use super::{ATTRIBUTE, OTHERS_LIVE};

/// The statements on one attribute table.
pub struct AttributeSql {
    /// Locks a live owner row against concurrent writers (`$1` id; sessions: `$2` now).
    pub lock_owner: &'static str,
    /// `$1` owner, `$2` now, `$3`–`$6` the item arrays. Returns how many live attributes the
    /// owner holds that are not named in `$3`, and the bytes of their values (as they were
    /// before this statement), beside each written row.
    pub upsert: &'static str,
    pub select_all: &'static str,
    /// `$3` the names.
    pub select_named: &'static str,
    pub names_all: &'static str,
    pub names_named: &'static str,
    /// `$2` names, `$3` now; counts the live rows among those deleted.
    pub delete: &'static str,
    /// `$1` owner, `$2` name, `$3` expiry, `$4` now.
    pub set_expiry: &'static str,
    /// Up to `$2` rows expired at `$1`.
    pub purge: &'static str,
}

/// `FROM` an owner's live rows: `$1` the owner, `$2` now.
macro_rules! live_of_owner {
    ($table:literal, $owner:literal) => {
        concat!(
            " FROM ",
            $table,
            " a WHERE a.",
            $owner,
            " = $1 AND (a.expires_at IS NULL OR a.expires_at > $2)"
        )
    };
}

macro_rules! attribute_sql {
    ($table:literal, $owner:literal, $lock_owner:expr) => {
        AttributeSql {
            lock_owner: $lock_owner,
            upsert: join!(
                "WITH input AS (SELECT * FROM unnest($3::text[], $4::bytea[], $5::text[], \
                 $6::timestamptz[]) AS i (name, value, key_id, expires_at)), \
                 others AS (SELECT count(*) AS live, \
                   coalesce(sum(octet_length(a.value)), 0)::int8 AS bytes FROM ",
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
                ATTRIBUTE.list,
                ") SELECT ",
                OTHERS_LIVE.list,
                ", a.* FROM others LEFT JOIN written a ON true"
            ),
            select_all: join!(
                "SELECT ",
                ATTRIBUTE.list,
                live_of_owner!($table, $owner),
                " ORDER BY a.name"
            ),
            select_named: join!(
                "SELECT ",
                ATTRIBUTE.list,
                live_of_owner!($table, $owner),
                " AND a.name = ANY ($3) ORDER BY a.name"
            ),
            names_all: concat!(
                "SELECT a.name",
                live_of_owner!($table, $owner),
                " ORDER BY a.name"
            ),
            names_named: concat!(
                "SELECT a.name",
                live_of_owner!($table, $owner),
                " AND a.name = ANY ($3) ORDER BY a.name"
            ),
            delete: concat!(
                "WITH gone AS (DELETE FROM ",
                $table,
                " WHERE ",
                $owner,
                " = $1 AND name = ANY ($2) RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE expires_at IS NULL OR expires_at > $3"
            ),
            set_expiry: join!(
                "UPDATE ",
                $table,
                " AS a SET expires_at = $3, modified_at = $4 WHERE a.",
                $owner,
                " = $1 AND a.name = $2 AND (a.expires_at IS NULL OR a.expires_at > $4) \
                 RETURNING ",
                ATTRIBUTE.list
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
pub const SESSION_ATTRIBUTES: AttributeSql = attribute_sql!(
    "session_attributes",
    "session_id",
    "SELECT 1 FROM sessions WHERE id = $1 AND expires_at > $2 FOR NO KEY UPDATE"
);

pub const USER_ATTRIBUTES: AttributeSql = attribute_sql!(
    "user_attributes",
    "user_id",
    "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE"
);
