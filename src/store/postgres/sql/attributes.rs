//! Statements on the attribute tables: the same statements for each owner table.

use super::{ATTRIBUTE, OWNER_TOTALS};

/// The statements on one attribute table.
pub struct AttributeSql {
    /// The whole write in one statement: a call of the table's `ssod_set_…` function
    /// (migration 6, which explains it) that locks the owner, counts and upserts. `$1` owner,
    /// `$2` now, `$3`–`$6` the item arrays, `$7` the most live attributes and `$8` the most
    /// bytes the owner may hold. No row: the owner is missing; a row without an attribute:
    /// refused (or no items); else one row per item written.
    pub set: &'static str,
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
    ($table:literal, $owner:literal) => {
        AttributeSql {
            set: join!(
                "SELECT ",
                OWNER_TOTALS.list,
                ", ",
                ATTRIBUTE.list,
                " FROM ssod_set_",
                $table,
                "($1, $2, $3, $4, $5, $6, $7, $8) AS a"
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

pub const SESSION_ATTRIBUTES: AttributeSql = attribute_sql!("session_attributes", "session_id");

pub const USER_ATTRIBUTES: AttributeSql = attribute_sql!("user_attributes", "user_id");
