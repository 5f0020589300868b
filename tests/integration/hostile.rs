//! Hostile input, wholesale: a table of bad requests to every RPC that takes input (empty
//! and oversized fields, bad enums, negative and huge durations, NUL and invisible
//! characters, duplicate names, too many items, over-quota writes). Each must get its
//! documented code, reason and field, and leave nothing written. SQL and format-string
//! payloads are valid text: they are stored and read back literally.

use ssod::proto::{self, AttributeScope, delete_user_sessions_request::Selector};
use tonic::{Code, Request, Status};

use crate::{
    both,
    harness::{Backend, TestServer, authed, json_value, violated_fields, write},
};

const SESSION: i32 = AttributeScope::Session as i32;
const USER: i32 = AttributeScope::User as i32;

/// One request to any RPC.
enum Call {
    SetAttribute(proto::SetAttributeRequest),
    SetAttributes(proto::SetAttributesRequest),
    GetAttributes(proto::GetAttributesRequest),
    SetAttributeExpiry(proto::SetAttributeExpiryRequest),
    DeleteAttributes(proto::DeleteAttributesRequest),
    CreateUser(proto::CreateUserRequest),
    Login(proto::LoginRequest),
    GetUser(proto::GetUserRequest),
    ListUsers(proto::ListUsersRequest),
    UpdateUser(proto::UpdateUserRequest),
    ChangePassword(proto::ChangePasswordRequest),
    LockUser(proto::LockUserRequest),
    CreateSession(proto::CreateSessionRequest),
    ListSessions(proto::ListSessionsRequest),
    DeleteSession(proto::DeleteSessionRequest),
    DeleteUserSessions(proto::DeleteUserSessionsRequest),
    GetSession(proto::GetSessionRequest),
}

/// A bad request and what the contract says it gets.
struct Case {
    what: &'static str,
    call: Call,
    code: Code,
    reason: &'static str,
    /// The field violation named, where the problem is one field.
    field: Option<&'static str>,
}

fn case(what: &'static str, call: Call, code: Code, reason: &'static str) -> Case {
    Case {
        what,
        call,
        code,
        reason,
        field: None,
    }
}

fn invalid(what: &'static str, call: Call, field: &'static str) -> Case {
    Case {
        field: Some(field),
        ..case(what, call, Code::InvalidArgument, "INVALID_ARGUMENT")
    }
}

fn over_limit(what: &'static str, call: Call, field: &'static str) -> Case {
    Case {
        field: Some(field),
        ..case(what, call, Code::InvalidArgument, "LIMIT_EXCEEDED")
    }
}

async fn send(server: &TestServer, ust: &str, call: Call) -> Result<(), Status> {
    fn req<T>(ust: &str, message: T) -> Request<T> {
        authed(ust, message)
    }
    match call {
        Call::SetAttribute(m) => server
            .attributes()
            .set_attribute(req(ust, m))
            .await
            .map(drop),
        Call::SetAttributes(m) => server
            .attributes()
            .set_attributes(req(ust, m))
            .await
            .map(drop),
        Call::GetAttributes(m) => server
            .attributes()
            .get_attributes(req(ust, m))
            .await
            .map(drop),
        Call::SetAttributeExpiry(m) => server
            .attributes()
            .set_attribute_expiry(req(ust, m))
            .await
            .map(drop),
        Call::DeleteAttributes(m) => server
            .attributes()
            .delete_attributes(req(ust, m))
            .await
            .map(drop),
        Call::CreateUser(m) => server.users().create_user(req(ust, m)).await.map(drop),
        Call::Login(m) => server.users().login(Request::new(m)).await.map(drop),
        Call::GetUser(m) => server.users().get_user(req(ust, m)).await.map(drop),
        Call::ListUsers(m) => server.users().list_users(req(ust, m)).await.map(drop),
        Call::UpdateUser(m) => server.users().update_user(req(ust, m)).await.map(drop),
        Call::ChangePassword(m) => server.users().change_password(req(ust, m)).await.map(drop),
        Call::LockUser(m) => server.users().lock_user(req(ust, m)).await.map(drop),
        Call::CreateSession(m) => server.sessions().create_session(m).await.map(drop),
        Call::ListSessions(m) => server.sessions().list_sessions(req(ust, m)).await.map(drop),
        Call::DeleteSession(m) => server
            .sessions()
            .delete_session(req(ust, m))
            .await
            .map(drop),
        Call::DeleteUserSessions(m) => server
            .sessions()
            .delete_user_sessions(req(ust, m))
            .await
            .map(drop),
        Call::GetSession(m) => server.sessions().get_session(req(ust, m)).await.map(drop),
    }
}

fn set(name: &str, value: serde_json::Value) -> proto::SetAttributeRequest {
    proto::SetAttributeRequest {
        scope: SESSION,
        name: name.into(),
        value: Some(json_value(value)),
        ..Default::default()
    }
}

fn seconds(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

fn new_user(username: &str, password: &str) -> proto::CreateUserRequest {
    proto::CreateUserRequest {
        username: username.into(),
        password: Some(password.into()),
        ..Default::default()
    }
}

fn login(username: &str, app: &str, addr: &str) -> proto::LoginRequest {
    proto::LoginRequest {
        username: username.into(),
        password: "admin-password-1".into(),
        current_app: app.into(),
        remote_addr: addr.into(),
        user_agent: "hostile".into(),
        ..Default::default()
    }
}

fn cases() -> Vec<Case> {
    use Call::*;
    let long_name = "n".repeat(192);
    let big_value = serde_json::json!("x".repeat(64 * 1024));
    let items = |names: &[&str]| -> Vec<proto::AttributeWrite> {
        names
            .iter()
            .map(|name| write(*name, serde_json::json!(1)))
            .collect()
    };
    let many: Vec<String> = (0..1001).map(|i| format!("n{i}")).collect();
    vec![
        // Attributes.
        invalid(
            "scope unspecified",
            SetAttribute(proto::SetAttributeRequest {
                scope: 0,
                ..set("a", 1.into())
            }),
            "scope",
        ),
        invalid(
            "scope out of the enum",
            SetAttribute(proto::SetAttributeRequest {
                scope: 99,
                ..set("a", 1.into())
            }),
            "scope",
        ),
        invalid(
            "owner id not a uuid",
            SetAttribute(proto::SetAttributeRequest {
                owner_id: "1; DROP TABLE sessions".into(),
                ..set("a", 1.into())
            }),
            "owner_id",
        ),
        case(
            "owner that does not exist",
            SetAttribute(proto::SetAttributeRequest {
                owner_id: uuid::Uuid::now_v7().to_string(),
                ..set("a", 1.into())
            }),
            Code::NotFound,
            "SESSION_NOT_FOUND",
        ),
        case(
            "user owner that does not exist",
            SetAttribute(proto::SetAttributeRequest {
                scope: USER,
                owner_id: uuid::Uuid::now_v7().to_string(),
                ..set("a", 1.into())
            }),
            Code::NotFound,
            "USER_NOT_FOUND",
        ),
        invalid("empty name", SetAttribute(set("", 1.into())), "name"),
        invalid("NUL in a name", SetAttribute(set("a\0b", 1.into())), "name"),
        invalid(
            "newline in a name",
            SetAttribute(set("a\nb", 1.into())),
            "name",
        ),
        over_limit(
            "name of 192 characters",
            SetAttribute(set(&long_name, 1.into())),
            "name",
        ),
        invalid(
            "no value",
            SetAttribute(proto::SetAttributeRequest {
                value: None,
                ..set("a", 1.into())
            }),
            "value",
        ),
        invalid(
            "NaN",
            SetAttribute(proto::SetAttributeRequest {
                value: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
                }),
                ..set("a", 1.into())
            }),
            "value",
        ),
        over_limit(
            "value over 64 KiB",
            SetAttribute(set("a", big_value.clone())),
            "value",
        ),
        invalid(
            "negative expiration",
            SetAttribute(proto::SetAttributeRequest {
                expiration: seconds(-1, 0),
                ..set("a", 1.into())
            }),
            "expiration",
        ),
        invalid(
            "expiration of one nanosecond",
            SetAttribute(proto::SetAttributeRequest {
                expiration: seconds(0, 1),
                ..set("a", 1.into())
            }),
            "expiration",
        ),
        invalid(
            "expiration just under a second",
            SetAttribute(proto::SetAttributeRequest {
                expiration: seconds(0, 999_999_999),
                ..set("a", 1.into())
            }),
            "expiration",
        ),
        invalid(
            "an item expiring in a millisecond",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: vec![proto::AttributeWrite {
                    expiration: seconds(0, 1_000_000),
                    ..write("a", 1.into())
                }],
                ..Default::default()
            }),
            "attributes[0].expiration",
        ),
        invalid(
            "nanos out of range",
            SetAttribute(proto::SetAttributeRequest {
                expiration: seconds(1, 2_000_000_000),
                ..set("a", 1.into())
            }),
            "expiration",
        ),
        invalid(
            "expiration of centuries",
            SetAttribute(proto::SetAttributeRequest {
                expiration: seconds(i64::MAX, 0),
                ..set("a", 1.into())
            }),
            "expiration",
        ),
        invalid(
            "no items",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                ..Default::default()
            }),
            "attributes",
        ),
        over_limit(
            "1,001 items",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: many
                    .iter()
                    .map(|n| write(n, serde_json::json!(1)))
                    .collect(),
                ..Default::default()
            }),
            "attributes",
        ),
        invalid(
            "a name twice",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: items(&["a", "b", "a"]),
                ..Default::default()
            }),
            "attributes",
        ),
        invalid(
            "one bad item among good ones",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: items(&["good", "bad\0", "fine"]),
                ..Default::default()
            }),
            "name",
        ),
        over_limit(
            "one oversized item among good ones",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: vec![write("good", 1.into()), write("big", big_value)],
                ..Default::default()
            }),
            "value",
        ),
        invalid(
            "a bad default expiration",
            SetAttributes(proto::SetAttributesRequest {
                scope: SESSION,
                attributes: items(&["a"]),
                expiration: seconds(-5, 0),
                ..Default::default()
            }),
            "expiration",
        ),
        over_limit(
            "1,001 names to read",
            GetAttributes(proto::GetAttributesRequest {
                scope: SESSION,
                names: many.clone(),
                ..Default::default()
            }),
            "names",
        ),
        invalid(
            "NUL among names to read",
            GetAttributes(proto::GetAttributesRequest {
                scope: SESSION,
                names: vec!["a".into(), "\0".into()],
                ..Default::default()
            }),
            "name",
        ),
        invalid(
            "NUL among names to delete",
            DeleteAttributes(proto::DeleteAttributesRequest {
                scope: SESSION,
                names: vec!["\0".into()],
                ..Default::default()
            }),
            "name",
        ),
        invalid(
            "negative expiry change",
            SetAttributeExpiry(proto::SetAttributeExpiryRequest {
                scope: SESSION,
                name: "a".into(),
                expiration: seconds(-1, 0),
                ..Default::default()
            }),
            "expiration",
        ),
        // Users.
        invalid(
            "empty username",
            CreateUser(new_user("", "password-123")),
            "username",
        ),
        invalid(
            "NUL in a username",
            CreateUser(new_user("ad\0min", "password-123")),
            "username",
        ),
        invalid(
            "zero-width space in a username",
            CreateUser(new_user("admin\u{200b}", "password-123")),
            "username",
        ),
        invalid(
            "right-to-left override in a username",
            CreateUser(new_user("\u{202e}nimda", "password-123")),
            "username",
        ),
        invalid(
            "unassigned character in a username",
            CreateUser(new_user("x\u{0378}", "password-123")),
            "username",
        ),
        invalid(
            "space in a username",
            CreateUser(new_user("two words", "password-123")),
            "username",
        ),
        over_limit(
            "username of 192 characters",
            CreateUser(new_user(&"u".repeat(192), "password-123")),
            "username",
        ),
        case(
            "fullwidth twin of an existing user",
            CreateUser(new_user("ＡＤＭＩＮ", "password-123")),
            Code::AlreadyExists,
            "USERNAME_TAKEN",
        ),
        case(
            "password too short",
            CreateUser(new_user("shorty", "pw")),
            Code::InvalidArgument,
            "PASSWORD_TOO_WEAK",
        ),
        case(
            "password too long",
            CreateUser(new_user("longy", &"p".repeat(257))),
            Code::InvalidArgument,
            "PASSWORD_TOO_WEAK",
        ),
        case(
            "password equal to the username",
            CreateUser(new_user("samesame", "SameSame")),
            Code::InvalidArgument,
            "PASSWORD_TOO_WEAK",
        ),
        invalid(
            "NUL in an email",
            CreateUser(proto::CreateUserRequest {
                email: "a\0@b".into(),
                ..new_user("mailer", "password-123")
            }),
            "email",
        ),
        over_limit(
            "email of 257 characters",
            CreateUser(proto::CreateUserRequest {
                email: "e".repeat(257),
                ..new_user("mailer", "password-123")
            }),
            "email",
        ),
        case(
            "NUL in a login name",
            Login(login("ad\0min", "tests", "127.0.0.1")),
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        ),
        case(
            "invisible login name",
            Login(login("admin\u{200b}", "tests", "127.0.0.1")),
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        ),
        invalid(
            "NUL in current_app",
            Login(login("admin", "te\0sts", "127.0.0.1")),
            "current_app",
        ),
        over_limit(
            "remote_addr of 513 characters",
            Login(login("admin", "tests", &"1".repeat(513))),
            "remote_addr",
        ),
        invalid(
            "user id and username both",
            GetUser(proto::GetUserRequest {
                user_id: uuid::Uuid::now_v7().to_string(),
                username: "admin".into(),
            }),
            "user_id",
        ),
        invalid(
            "NUL in a looked-up username",
            GetUser(proto::GetUserRequest {
                username: "a\0".into(),
                ..Default::default()
            }),
            "username",
        ),
        invalid(
            "negative page size",
            ListUsers(proto::ListUsersRequest {
                page_size: -1,
                ..Default::default()
            }),
            "page_size",
        ),
        invalid(
            "forged page token",
            ListUsers(proto::ListUsersRequest {
                page_token: "' OR 1=1 --".into(),
                ..Default::default()
            }),
            "page_token",
        ),
        invalid(
            "approval status out of the enum",
            ListUsers(proto::ListUsersRequest {
                approval_status: 42,
                ..Default::default()
            }),
            "approval_status",
        ),
        invalid(
            "NUL in a listing prefix",
            ListUsers(proto::ListUsersRequest {
                username_prefix: "a\0".into(),
                ..Default::default()
            }),
            "username_prefix",
        ),
        invalid(
            "update without a mask",
            UpdateUser(proto::UpdateUserRequest {
                user: Some(proto::User::default()),
                update_mask: None,
            }),
            "update_mask",
        ),
        invalid(
            "update of an unknown field",
            UpdateUser(proto::UpdateUserRequest {
                user: Some(proto::User::default()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["password_hash".into()],
                }),
            }),
            "update_mask",
        ),
        invalid(
            "password expiry beyond year 9999",
            ChangePassword(proto::ChangePasswordRequest {
                user_id: uuid::Uuid::now_v7().to_string(),
                new_password: "new-password-1".into(),
                password_expiry: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            "password_expiry",
        ),
        invalid(
            "lock of a non-uuid",
            LockUser(proto::LockUserRequest {
                user_id: "%s%n".into(),
            }),
            "user_id",
        ),
        // Sessions.
        invalid(
            "NUL in a guest's app",
            CreateSession(proto::CreateSessionRequest {
                current_app: "\0".into(),
                ..Default::default()
            }),
            "current_app",
        ),
        over_limit(
            "user agent of 513 characters",
            CreateSession(proto::CreateSessionRequest {
                user_agent: "a".repeat(513),
                ..Default::default()
            }),
            "user_agent",
        ),
        invalid(
            "negative session page size",
            ListSessions(proto::ListSessionsRequest {
                page_size: i32::MIN,
                ..Default::default()
            }),
            "page_size",
        ),
        invalid(
            "session id not a uuid",
            DeleteSession(proto::DeleteSessionRequest {
                session_id: "{}".into(),
            }),
            "session_id",
        ),
        invalid(
            "bulk revocation without a selector",
            DeleteUserSessions(proto::DeleteUserSessionsRequest { selector: None }),
            "selector",
        ),
        invalid(
            "bulk revocation of a non-uuid",
            DeleteUserSessions(proto::DeleteUserSessionsRequest {
                selector: Some(Selector::UserId("*".into())),
            }),
            "user_id",
        ),
        case(
            "a forged target UST",
            GetSession(proto::GetSessionRequest {
                target_ust: "ssod_ust_' OR ''='".into(),
                ..Default::default()
            }),
            Code::NotFound,
            "SESSION_NOT_FOUND",
        ),
    ]
}

/// What a refused request must not have changed.
async fn written(server: &TestServer, ust: &str) -> (Vec<String>, Vec<String>, i32, usize) {
    let session_names = server
        .list_attribute_names(ust, SESSION)
        .await
        .expect("session names")
        .into_inner()
        .names;
    let user_names = server
        .list_attribute_names(ust, USER)
        .await
        .expect("user names")
        .into_inner()
        .names;
    let users = server
        .users()
        .list_users(authed(ust, proto::ListUsersRequest::default()))
        .await
        .expect("users")
        .into_inner()
        .total_size;
    let sessions = server
        .sessions()
        .list_sessions(authed(ust, proto::ListSessionsRequest::default()))
        .await
        .expect("sessions")
        .into_inner()
        .sessions
        .len();
    (session_names, user_names, users, sessions)
}

async fn every_hostile_request_gets_its_error_and_writes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.admin().await;
    server
        .set_attribute(&ust, SESSION, "kept", serde_json::json!("before"))
        .await
        .expect("a value to keep");
    let mut before = written(&server, &ust).await;
    let cases = cases();
    let count = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let what = case.what;
        match send(&server, &ust, case.call).await {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(refused) => {
                let reason = crate::harness::reason(&refused);
                if refused.code() != case.code || reason != case.reason {
                    failures.push(format!(
                        "{what}: {:?} {reason} ({}), expected {:?} {}",
                        refused.code(),
                        refused.message(),
                        case.code,
                        case.reason
                    ));
                }
                if let Some(field) = case.field {
                    let fields = violated_fields(&refused);
                    let named = fields
                        .iter()
                        .any(|named| named == field || named.ends_with(&format!(".{field}")));
                    if !named {
                        failures.push(format!("{what}: violations {fields:?}, expected {field}"));
                    }
                }
            }
        }
        let after = written(&server, &ust).await;
        if after != before {
            failures.push(format!("{what}: wrote {after:?}"));
            before = after;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("hostile suite: {count} cases refused as documented, nothing written");

    // Payloads that are valid text are stored and read back literally.
    for payload in [
        "'; DROP TABLE session_attributes; --",
        "%s%n%x{}{0}",
        "\u{1F600}",
    ] {
        server
            .set_attribute(&ust, SESSION, payload, serde_json::json!(payload))
            .await
            .expect(payload);
        let read = server
            .get_attribute(&ust, SESSION, payload)
            .await
            .expect(payload)
            .into_inner()
            .attribute
            .expect("attribute");
        assert_eq!(read.value, Some(json_value(serde_json::json!(payload))));
    }
}

both!(every_hostile_request_gets_its_error_and_writes_nothing);
