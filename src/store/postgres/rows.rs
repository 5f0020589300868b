//! Rows → domain types. Columns are read by position, in the order of each decoder's
//! [`sql::Columns`] in [`super::sql`]; a row may hold several entities side by side (a session,
//! then its user), the next starting at the previous one's [`sql::Columns::width`].

use std::{collections::HashSet, time::SystemTime};

use tokio_postgres::{Row, types::FromSql};
use uuid::Uuid;

use super::{error::from_pg, sql};
use crate::{
    domain::{
        ApprovalStatus, Event, EventContext, EventId, EventType, NewAttribute, NewEvent, Profile,
        SealedSecret, Session, SessionId, SessionWithUser, StoredAttribute, StoredValue,
        TotpRecord, User, UserId, UserRecord,
    },
    store::{StoreError, StoreResult},
};

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(from_pg)
}

/// [`sql::USER`] from `at`.
pub(super) fn user(row: &Row, at: usize) -> StoreResult<User> {
    let status: &str = get(row, at + 9)?;
    let approval_status = ApprovalStatus::parse(status)
        .ok_or_else(|| StoreError::Internal("stored approval status is unknown".into()))?;
    Ok(User {
        id: UserId(get(row, at)?),
        username: get(row, at + 1)?,
        profile: Profile {
            email: get(row, at + 2)?,
            display_name: get(row, at + 3)?,
            first_name: get(row, at + 4)?,
            middle_name: get(row, at + 5)?,
            last_name: get(row, at + 6)?,
        },
        is_super_user: get(row, at + 7)?,
        is_locked: get(row, at + 8)?,
        approval_status,
        password_must_change: get(row, at + 10)?,
        password_expiry: get(row, at + 11)?,
        created_at: get(row, at + 12)?,
        last_login_at: get(row, at + 13)?,
        is_confirmed: get(row, at + 14)?,
        totp_enabled: get(row, at + 15)?,
    })
}

/// [`sql::TOTP_SECRET`].
pub(super) fn totp(row: &Row) -> StoreResult<TotpRecord> {
    let last_step: Option<i64> = get(row, 2)?;
    Ok(TotpRecord {
        secret: SealedSecret {
            key_id: get(row, 0)?,
            ciphertext: get(row, 1)?,
        },
        last_step: last_step.map(to_u64),
    })
}

/// [`sql::USER`] then [`sql::PASSWORD_HASH`], from `at`.
pub(super) fn user_record(row: &Row, at: usize) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user: user(row, at)?,
        password_hash: get(row, at + sql::USER.width())?,
    })
}

/// [`sql::SESSION`] from `at`.
pub(super) fn session(row: &Row, at: usize) -> StoreResult<Session> {
    let user_id: Option<Uuid> = get(row, at + 1)?;
    Ok(Session {
        id: SessionId(get(row, at)?),
        user_id: user_id.map(UserId),
        current_app: get(row, at + 2)?,
        remote_addr: get(row, at + 3)?,
        user_agent: get(row, at + 4)?,
        created_at: get(row, at + 5)?,
        expires_at: get(row, at + 6)?,
        last_renewed_at: get(row, at + 7)?,
    })
}

/// [`sql::EVENT`] from `at`; `None` for a row of nulls (an empty page).
pub(super) fn event(row: &Row, at: usize) -> StoreResult<Option<Event>> {
    let Some(transaction) = get::<Option<i64>>(row, at)? else {
        return Ok(None);
    };
    let kind: &str = get(row, at + 3)?;
    let kind = EventType::parse(kind)
        .ok_or_else(|| StoreError::Internal(format!("stored event type {kind:?} is unknown")))?;
    let details = match get::<serde_json::Value>(row, at + 13)? {
        serde_json::Value::Object(details) => details,
        _ => serde_json::Map::new(),
    };
    let actor_user: Option<Uuid> = get(row, at + 5)?;
    let actor_session: Option<Uuid> = get(row, at + 6)?;
    let user: Option<Uuid> = get(row, at + 7)?;
    let session: Option<Uuid> = get(row, at + 8)?;
    Ok(Some(Event {
        id: EventId {
            transaction: to_u64(transaction),
            sequence: to_u64(get(row, at + 1)?),
        },
        time: get(row, at + 2)?,
        context: EventContext {
            cid: get(row, at + 4)?,
            actor_user: actor_user.map(UserId),
            actor_session: actor_session.map(SessionId),
            current_app: get(row, at + 9)?,
            remote_addr: get(row, at + 10)?,
            user_agent: get(row, at + 11)?,
        },
        event: NewEvent {
            kind,
            user: user.map(UserId),
            session: session.map(SessionId),
            reason: get(row, at + 12)?,
            details,
        },
    }))
}

/// [`sql::SESSION`], then [`sql::USER`] from a LEFT JOIN (all null for a guest).
pub(super) fn session_with_user(row: &Row) -> StoreResult<SessionWithUser> {
    let session = session(row, 0)?;
    let user_id: Option<Uuid> = get(row, sql::SESSION.width())?;
    let user = match user_id {
        Some(_) => Some(user(row, sql::SESSION.width())?),
        None => None,
    };
    Ok(SessionWithUser { session, user })
}

/// [`sql::ATTRIBUTE`] from `at`; `None` when the name is null (the empty
/// side of an outer join).
pub(super) fn attribute(row: &Row, at: usize) -> StoreResult<Option<StoredAttribute>> {
    let Some(name) = get::<Option<String>>(row, at)? else {
        return Ok(None);
    };
    let bytes: Vec<u8> = get(row, at + 1)?;
    let key_id: Option<String> = get(row, at + 2)?;
    let value = match key_id {
        None => StoredValue::Plain(
            String::from_utf8(bytes)
                .map_err(|_| StoreError::Internal("stored plain value is not utf-8".into()))?,
        ),
        Some(key_id) => StoredValue::Sealed {
            key_id,
            ciphertext: bytes,
        },
    };
    Ok(Some(StoredAttribute {
        name,
        value,
        created_at: get(row, at + 3)?,
        modified_at: get(row, at + 4)?,
        expires_at: get(row, at + 5)?,
    }))
}

pub(super) fn attributes(rows: &[Row]) -> StoreResult<Vec<StoredAttribute>> {
    rows.iter()
        .filter_map(|row| attribute(row, 0).transpose())
        .collect()
}

/// Attributes to write as parallel arrays, the parameters of one `UNNEST`. Of items sharing a
/// name only the last is kept (what writing them one after another would leave), because one
/// statement cannot upsert a row twice.
pub(super) struct AttributeArrays<'a> {
    pub(super) names: Vec<&'a str>,
    pub(super) values: Vec<&'a [u8]>,
    pub(super) key_ids: Vec<Option<&'a str>>,
    pub(super) expires_at: Vec<Option<SystemTime>>,
}

impl<'a> AttributeArrays<'a> {
    pub(super) fn new(items: &'a [NewAttribute]) -> Self {
        let mut seen = HashSet::with_capacity(items.len());
        let mut kept: Vec<&NewAttribute> = items
            .iter()
            .rev()
            .filter(|item| seen.insert(item.name.as_str()))
            .collect();
        kept.reverse();
        let mut arrays = Self {
            names: Vec::with_capacity(kept.len()),
            values: Vec::with_capacity(kept.len()),
            key_ids: Vec::with_capacity(kept.len()),
            expires_at: Vec::with_capacity(kept.len()),
        };
        for item in kept {
            let (value, key_id) = match &item.value {
                StoredValue::Plain(json) => (json.as_bytes(), None),
                StoredValue::Sealed { key_id, ciphertext } => {
                    (ciphertext.as_slice(), Some(key_id.as_str()))
                }
            };
            arrays.names.push(&item.name);
            arrays.values.push(value);
            arrays.key_ids.push(key_id);
            arrays.expires_at.push(item.expires_at);
        }
        arrays
    }
}

/// Saturating conversions between Rust sizes and SQL bigints.
pub(super) fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
