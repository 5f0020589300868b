//! Proto ↔ domain conversion: requests are validated and converted once, here; responses
//! are built from domain values.

use std::time::{Duration, SystemTime};

use crate::domain::Secret;
use prost_types::{Timestamp, Value, value::Kind};
use uuid::Uuid;

use crate::{
    domain::{
        ApprovalStatus, Attribute, Event, EventId, EventType, Session, SessionId, User, UserId,
    },
    proto,
    service::{ClientInfo, OwnerRef, Scope, ServiceError, ServiceResult},
};

pub fn timestamp(time: SystemTime) -> Timestamp {
    Timestamp::from(time)
}

/// 9999-12-31T23:59:59Z: the last second every store and client library represents.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A timestamp from 1970 to 9999.
pub fn system_time(field: &str, timestamp: Timestamp) -> ServiceResult<SystemTime> {
    if !(0..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds) {
        return Err(ServiceError::invalid(
            field,
            "must lie between 1970 and 9999",
        ));
    }
    SystemTime::try_from(timestamp)
        .map_err(|_| ServiceError::invalid(field, "is not a valid timestamp"))
}

/// A count for the wire.
pub fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An optional positive duration.
pub fn duration(
    field: &str,
    duration: Option<prost_types::Duration>,
) -> ServiceResult<Option<Duration>> {
    duration
        .map(|duration| {
            // Only the normalised form: nanos are a fraction of a second, not a second count.
            let normalised = duration.seconds >= 0 && (0..1_000_000_000).contains(&duration.nanos);
            normalised
                .then(|| Duration::try_from(duration).ok())
                .flatten()
                .ok_or_else(|| ServiceError::invalid(field, "must be a non-negative duration"))
        })
        .transpose()
}

/// An optional id: empty means absent.
pub fn optional_uuid(field: &str, text: &str) -> ServiceResult<Option<Uuid>> {
    if text.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(text)
        .map(Some)
        .map_err(|_| ServiceError::invalid(field, "is not a valid id"))
}

pub fn required_uuid(field: &str, text: &str) -> ServiceResult<Uuid> {
    optional_uuid(field, text)?.ok_or_else(|| ServiceError::invalid(field, "is required"))
}

pub fn user_id(field: &str, text: &str) -> ServiceResult<UserId> {
    required_uuid(field, text).map(UserId)
}

pub fn optional_user_id(field: &str, text: &str) -> ServiceResult<Option<UserId>> {
    Ok(optional_uuid(field, text)?.map(UserId))
}

pub fn optional_session_id(field: &str, text: &str) -> ServiceResult<Option<SessionId>> {
    Ok(optional_uuid(field, text)?.map(SessionId))
}

pub fn owner(scope: i32, owner_id: &str) -> ServiceResult<OwnerRef> {
    let scope = match proto::AttributeScope::try_from(scope) {
        Ok(proto::AttributeScope::Session) => Scope::Session,
        Ok(proto::AttributeScope::User) => Scope::User,
        _ => {
            return Err(ServiceError::invalid(
                "scope",
                "must be ATTRIBUTE_SCOPE_SESSION or ATTRIBUTE_SCOPE_USER",
            ));
        }
    };
    Ok(OwnerRef {
        scope,
        id: optional_uuid("owner_id", owner_id)?,
    })
}

pub fn client(current_app: String, remote_addr: String, user_agent: String) -> ClientInfo {
    ClientInfo {
        current_app,
        remote_addr,
        user_agent,
    }
}

/// A second-factor code from an optional field: empty is the same as absent.
pub fn optional_code(code: Option<String>) -> Option<Secret> {
    code.filter(|code| !code.is_empty()).map(Secret::from)
}

/// `APPROVAL_STATUS_UNSPECIFIED` is `None`.
pub fn approval_status(field: &str, value: i32) -> ServiceResult<Option<ApprovalStatus>> {
    match proto::ApprovalStatus::try_from(value) {
        Ok(proto::ApprovalStatus::Unspecified) => Ok(None),
        Ok(proto::ApprovalStatus::Approved) => Ok(Some(ApprovalStatus::Approved)),
        Ok(proto::ApprovalStatus::Rejected) => Ok(Some(ApprovalStatus::Rejected)),
        Ok(proto::ApprovalStatus::Pending) => Ok(Some(ApprovalStatus::Pending)),
        Err(_) => Err(ServiceError::invalid(
            field,
            "is not a known approval status",
        )),
    }
}

fn proto_approval(status: ApprovalStatus) -> proto::ApprovalStatus {
    match status {
        ApprovalStatus::Approved => proto::ApprovalStatus::Approved,
        ApprovalStatus::Rejected => proto::ApprovalStatus::Rejected,
        ApprovalStatus::Pending => proto::ApprovalStatus::Pending,
    }
}

/// A protobuf `Value` as JSON; non-finite numbers have no JSON form and are refused.
pub fn json(field: &str, value: Value) -> ServiceResult<serde_json::Value> {
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .ok_or_else(|| ServiceError::invalid(field, "numbers must be finite"))?,
        Some(Kind::ListValue(list)) => serde_json::Value::Array(
            list.values
                .into_iter()
                .map(|item| json(field, item))
                .collect::<ServiceResult<_>>()?,
        ),
        Some(Kind::StructValue(object)) => serde_json::Value::Object(
            object
                .fields
                .into_iter()
                .map(|(key, item)| Ok((key, json(field, item)?)))
                .collect::<ServiceResult<_>>()?,
        ),
    })
}

pub fn required_json(field: &str, value: Option<Value>) -> ServiceResult<serde_json::Value> {
    json(
        field,
        value.ok_or_else(|| ServiceError::invalid(field, "is required"))?,
    )
}

pub fn proto_value(value: serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(proto_value).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(key, item)| (key, proto_value(item)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

impl From<User> for proto::User {
    fn from(user: User) -> Self {
        Self {
            user_id: user.id.to_string(),
            username: user.username,
            email: user.profile.email,
            display_name: user.profile.display_name,
            first_name: user.profile.first_name,
            middle_name: user.profile.middle_name,
            last_name: user.profile.last_name,
            is_super_user: user.is_super_user,
            is_locked: user.is_locked,
            approval_status: proto_approval(user.approval_status).into(),
            password_must_change: user.password_must_change,
            password_expiry: user.password_expiry.map(timestamp),
            creation_time: Some(timestamp(user.created_at)),
            last_login_time: user.last_login_at.map(timestamp),
            is_confirmed: user.is_confirmed,
            totp_enabled: user.totp_enabled,
        }
    }
}

impl From<Session> for proto::Session {
    fn from(session: Session) -> Self {
        Self {
            session_id: session.id.to_string(),
            user_id: session.user_id.map(|id| id.to_string()).unwrap_or_default(),
            current_app: session.current_app,
            remote_addr: session.remote_addr,
            user_agent: session.user_agent,
            creation_time: Some(timestamp(session.created_at)),
            expiration_time: Some(timestamp(session.expires_at)),
            last_renewal_time: Some(timestamp(session.last_renewed_at)),
        }
    }
}

impl From<Attribute> for proto::Attribute {
    fn from(attribute: Attribute) -> Self {
        Self {
            name: attribute.name,
            value: Some(proto_value(attribute.value)),
            encrypted: attribute.encrypted,
            creation_time: Some(timestamp(attribute.created_at)),
            last_modified: Some(timestamp(attribute.modified_at)),
            expiration_time: attribute.expires_at.map(timestamp),
        }
    }
}

impl From<Event> for proto::Event {
    fn from(event: Event) -> Self {
        let id_text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        let context = event.context;
        let details = proto_value(serde_json::Value::Object(event.event.details));
        let details = match details.kind {
            Some(Kind::StructValue(details)) => details,
            _ => prost_types::Struct::default(),
        };
        Self {
            event_id: event.id.to_string(),
            time: Some(timestamp(event.time)),
            r#type: event.event.kind.as_str().to_owned(),
            cid: context.cid,
            actor_user_id: id_text(context.actor_user.map(|id| id.0)),
            actor_session_id: id_text(context.actor_session.map(|id| id.0)),
            user_id: id_text(event.event.user.map(|id| id.0)),
            session_id: id_text(event.event.session.map(|id| id.0)),
            current_app: context.current_app,
            remote_addr: context.remote_addr,
            user_agent: context.user_agent,
            reason: event.event.reason,
            details: Some(details),
        }
    }
}

/// Event types by name; an unknown one is refused.
pub fn event_types(field: &str, names: &[String]) -> ServiceResult<Vec<EventType>> {
    names
        .iter()
        .map(|name| {
            EventType::parse(name)
                .ok_or_else(|| ServiceError::invalid(field, format!("unknown event type {name:?}")))
        })
        .collect()
}

/// An event id from a client (empty: none).
pub fn optional_event_id(field: &str, text: &str) -> ServiceResult<Option<EventId>> {
    if text.is_empty() {
        return Ok(None);
    }
    EventId::parse(text)
        .map(Some)
        .ok_or_else(|| ServiceError::invalid(field, "is not an event id this server issued"))
}

/// A page size from the wire: negative is refused.
pub fn page_size(value: i32) -> ServiceResult<usize> {
    usize::try_from(value).map_err(|_| ServiceError::invalid("page_size", "must not be negative"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_protobuf_values() {
        let original = serde_json::json!({"a": [1.5, true, null, "x"], "b": {"c": -2.0}});
        let back = json("value", proto_value(original.clone())).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let nan = Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert!(json("value", nan).is_err());
    }
}
