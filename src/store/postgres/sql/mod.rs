//! Every statement the store runs, one file per area. Public so that the load benchmark
//! (`benches/load.rs`) measures the very statements the store runs, and the schema test
//! prepares each of them ([`STATEMENTS`]); nothing else should run them.
//!
//! Statements are `&'static str`, so each is prepared once per connection (`prepare_cached`).
//! `$now` parameters are the caller's clock: no statement asks SQL for the time when deciding
//! expiry. Rows are decoded by position (`rows.rs`), so each decoder's columns are one
//! [`Columns`] constant, spliced into every statement that feeds that decoder.

use tokio_postgres::types::Type;

/// `concat!` for constants (`concat!` takes only literals): splices [`Columns`] lists into
/// statements at compile time.
macro_rules! join {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[&str] = &[$($part),+];
        const BYTES: [u8; $crate::store::postgres::sql::joined_len(PARTS)] =
            $crate::store::postgres::sql::join_bytes(PARTS);
        // Joined whole strings are always UTF-8; an empty statement would fail to prepare.
        match ::std::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => "",
        }
    }};
}

pub mod attributes;
#[macro_use]
pub mod events;
// After `events`, whose macros it uses.
pub mod accounts;
pub mod credentials;
pub mod sessions;
pub mod throttle;
pub mod users;

pub(crate) const fn joined_len(parts: &[&str]) -> usize {
    let mut len = 0;
    let mut index = 0;
    while index < parts.len() {
        len += parts[index].len();
        index += 1;
    }
    len
}

pub(crate) const fn join_bytes<const LEN: usize>(parts: &[&str]) -> [u8; LEN] {
    let mut joined = [0; LEN];
    let mut at = 0;
    let mut index = 0;
    while index < parts.len() {
        let bytes = parts[index].as_bytes();
        let mut byte = 0;
        while byte < bytes.len() {
            joined[at] = bytes[byte];
            at += 1;
            byte += 1;
        }
        index += 1;
    }
    joined
}

/// The columns one row decoder reads, in order: `list` is spliced into each statement that
/// feeds the decoder, `types` are what the decoder reads them as. The schema test checks
/// every such statement against both.
pub struct Columns {
    pub list: &'static str,
    pub types: &'static [Type],
}

impl Columns {
    /// Where the next entity's columns start in a row that holds several side by side.
    pub const fn width(&self) -> usize {
        self.types.len()
    }
}

/// A user as clients see it (`rows::user`).
pub const USER: Columns = Columns {
    list: "u.id, u.username, u.email, u.display_name, u.first_name, u.middle_name, u.last_name, \
           u.is_super_user, u.is_locked, u.approval_status, u.password_must_change, \
           u.password_expiry, u.created_at, u.last_login_at, u.is_confirmed, \
           u.totp_enabled",
    types: &[
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::BOOL,
        Type::TEXT,
        Type::BOOL,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::BOOL,
        Type::BOOL,
    ],
};

/// After [`USER`], for the store's own user record (`rows::user_record`).
pub const PASSWORD_HASH: Columns = Columns {
    list: "u.password_hash",
    types: &[Type::TEXT],
};

/// Before [`USER`] in a listing: how many users match the filter.
pub const USER_TOTAL: Columns = Columns {
    list: "matching.total",
    types: &[Type::INT8],
};

/// A session (`rows::session`).
pub const SESSION: Columns = Columns {
    list: "s.id, s.user_id, s.current_app, s.remote_addr, s.user_agent, s.created_at, \
           s.expires_at, s.last_renewed_at",
    types: &[
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ],
};

/// An attribute (`rows::attribute`).
pub const ATTRIBUTE: Columns = Columns {
    list: "a.name, a.value, a.key_id, a.created_at, a.modified_at, a.expires_at",
    types: &[
        Type::TEXT,
        Type::BYTEA,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ],
};

/// Before [`ATTRIBUTE`] in a write's rows (`AttributeSql::set`, aliased `a` with the
/// attribute): the live attributes the owner holds once the write applies, and the bytes of
/// their values.
pub const OWNER_TOTALS: Columns = Columns {
    list: "a.owner_live, a.owner_bytes",
    types: &[Type::INT8, Type::INT8],
};

/// A stored TOTP secret (`rows::totp`).
pub const TOTP_SECRET: Columns = Columns {
    list: "key_id, secret, last_step",
    types: &[Type::TEXT, Type::BYTEA, Type::INT8],
};

/// An address's failure counter after a claim (`throttle::CLAIM_ADDRESS`).
pub const ADDRESS_COUNTER: Columns = Columns {
    list: "window_start, locked_until",
    types: &[Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
};

/// The end of a lockout, if any.
pub const LOCKED_UNTIL: Columns = Columns {
    list: "locked_until",
    types: &[Type::TIMESTAMPTZ],
};

/// An event of the audit log (`rows::event`).
pub const EVENT: Columns = Columns {
    list: "e.xact, e.sequence, e.time, e.type, e.cid, e.actor_user_id, \
           e.actor_session_id, e.user_id, e.session_id, e.current_app, e.remote_addr, \
           e.user_agent, e.reason, e.details",
    types: &[
        Type::INT8,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
    ],
};

/// Before [`EVENT`] in a watcher's feed: whether later events are not settled yet, and
/// whether the retention trimmed one after the cursor.
pub const FEED_STATE: Columns = Columns {
    list: "pending, expired",
    types: &[Type::BOOL, Type::BOOL],
};

pub const PING: &str = "SELECT 1";

/// A statement and the columns its rows are decoded from, in order; `returns` is empty for a
/// statement whose rows (if any) no decoder reads.
pub struct Statement {
    pub name: &'static str,
    pub sql: &'static str,
    pub returns: &'static [&'static Columns],
}

macro_rules! statements {
    ($($sql:expr => [$($columns:expr),*]),* $(,)?) => {
        &[$(Statement { name: stringify!($sql), sql: $sql, returns: &[$(&$columns),*] }),*]
    };
}

/// Every statement of the store, for the schema test.
pub const STATEMENTS: &[Statement] = statements![
    PING => [],
    users::CREATE_USER => [USER],
    users::USER_BY_ID => [USER, PASSWORD_HASH],
    users::USER_BY_USERNAME => [USER, PASSWORD_HASH],
    users::LIST_USERS => [USER_TOTAL, USER],
    users::UPDATE_USER => [USER],
    users::PASSWORD_EXPIRED => [],
    users::END_USER_SESSIONS => [],
    users::DELETE_USER => [],
    users::USERNAME_KEYS => [],
    users::SET_USERNAME_KEY => [],
    sessions::RECORD_LOGIN => [],
    sessions::USER_EXISTS => [],
    sessions::LOCK_USER => [],
    sessions::ENFORCE_SESSION_LIMIT => [],
    sessions::INSERT_SESSION => [SESSION],
    sessions::END_REPLACED_SESSION => [],
    sessions::SESSION_BY_TOKEN => [SESSION, USER],
    sessions::SESSION_BY_TOKEN_RENEWING => [SESSION, USER],
    sessions::SESSION_BY_ID => [SESSION, USER],
    sessions::RENEW_SESSION => [SESSION],
    sessions::LIST_SESSIONS => [SESSION],
    sessions::LIST_SESSIONS_AFTER => [SESSION],
    sessions::DELETE_SESSION => [],
    sessions::DELETE_USER_SESSIONS => [],
    sessions::DELETE_OTHER_USER_SESSIONS => [],
    sessions::DELETE_GUEST_SESSIONS => [],
    sessions::DELETE_ALL_SESSIONS => [],
    sessions::PURGE_SESSIONS => [],
    attributes::SESSION_ATTRIBUTES.set => [OWNER_TOTALS, ATTRIBUTE],
    attributes::SESSION_ATTRIBUTES.select_all => [ATTRIBUTE],
    attributes::SESSION_ATTRIBUTES.select_named => [ATTRIBUTE],
    attributes::SESSION_ATTRIBUTES.names_all => [],
    attributes::SESSION_ATTRIBUTES.names_named => [],
    attributes::SESSION_ATTRIBUTES.delete => [],
    attributes::SESSION_ATTRIBUTES.set_expiry => [ATTRIBUTE],
    attributes::SESSION_ATTRIBUTES.purge => [],
    attributes::USER_ATTRIBUTES.set => [OWNER_TOTALS, ATTRIBUTE],
    attributes::USER_ATTRIBUTES.select_all => [ATTRIBUTE],
    attributes::USER_ATTRIBUTES.select_named => [ATTRIBUTE],
    attributes::USER_ATTRIBUTES.names_all => [],
    attributes::USER_ATTRIBUTES.names_named => [],
    attributes::USER_ATTRIBUTES.delete => [],
    attributes::USER_ATTRIBUTES.set_expiry => [ATTRIBUTE],
    attributes::USER_ATTRIBUTES.purge => [],
    throttle::CLAIM_ADDRESS => [ADDRESS_COUNTER],
    throttle::RELEASE_ADDRESS => [],
    throttle::CLAIM_USER => [LOCKED_UNTIL],
    throttle::ADDRESS_LOCKED_UNTIL => [LOCKED_UNTIL],
    throttle::USER_LOCKED_UNTIL => [LOCKED_UNTIL],
    throttle::FORGET_USER => [],
    throttle::PURGE_USERS => [],
    throttle::PURGE_ADDRESSES => [],
    events::APPEND_EVENTS => [],
    events::LIST_EVENTS => [EVENT],
    events::FEED => [FEED_STATE, EVENT],
    events::HEAD => [],
    events::TRIM_EVENTS => [],
    events::EVENT_EXISTS => [],
    accounts::SIGN_UP_USER => [USER],
    accounts::ISSUE_PASSWORD_RESET => [USER],
    accounts::TOKEN_USER => [USER, PASSWORD_HASH],
    accounts::LOCK_TOKEN_USER => [],
    accounts::CONFIRM_SIGN_UP => [USER],
    accounts::RESET_PASSWORD => [USER],
    accounts::PURGE_ACCOUNT_TOKENS => [],
    credentials::TOTP => [TOTP_SECRET],
    credentials::LOCK_TOTP_ENABLED => [],
    credentials::STORE_PENDING_TOTP => [],
    credentials::CONFIRM_PENDING_TOTP => [],
    credentials::INSERT_RECOVERY_CODES => [],
    credentials::ENABLE_TOTP => [USER],
    credentials::USE_TOTP_STEP => [],
    credentials::USE_RECOVERY_CODE => [],
    credentials::DISABLE_TOTP => [],
    credentials::PASSWORD_HISTORY => [],
    credentials::PUSH_PASSWORD_HISTORY => [],
];
