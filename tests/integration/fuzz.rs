//! Property-based fuzzing of the request path (conversion, validation, bearer parsing, the
//! service's rules) through the real server: arbitrary text with control, invisible and
//! non-ASCII characters, arbitrary enums, durations, timestamps, JSON values and page
//! tokens. Whatever arrives, the server answers with a contract error (never INTERNAL,
//! UNKNOWN or a dropped connection) and keeps serving.

use std::sync::Arc;

use proptest::{prelude::*, test_runner::TestRunner};
use ssod::proto::{self, delete_user_sessions_request::Selector};
use tonic::{Code, Request, metadata::MetadataValue};
use tonic_types::StatusExt;

use crate::harness::{Backend, TestServer, authed};

/// Cases per RPC; each is one real call (logins and user creation also hash a password).
const CASES: u32 = 96;

/// Text as hostile clients send it: anything, or near-misses of what the server expects.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::string::string_regex("(?s).{0,40}").expect("regex"),
        1 => proptest::string::string_regex("(?s).{180,260}").expect("regex"),
        1 => Just(String::new()),
        1 => prop_oneof![
            Just("admin".to_string()),
            Just("ADMIN\u{200b}".to_string()),
            Just("ａｄｍｉｎ".to_string()),
            Just("nul\0byte".to_string()),
            Just("'; DROP TABLE users; --".to_string()),
            Just("%s%n%x{}{0}{:?}".to_string()),
            Just("\u{202e}evil".to_string()),
            Just("\u{1F600}\u{FE0F}".to_string()),
        ],
        1 => any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).to_string()),
    ]
}

fn duration() -> impl Strategy<Value = Option<prost_types::Duration>> {
    proptest::option::of(prop_oneof![
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
        (-5i64..100_000, -2_000_000_000i32..2_000_000_000)
            .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
    ])
}

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    proptest::option::of(
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
}

fn value() -> impl Strategy<Value = prost_types::Value> {
    use prost_types::value::Kind;
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        any::<i32>().prop_map(Kind::NullValue),
        any::<f64>().prop_map(Kind::NumberValue),
        text().prop_map(Kind::StringValue),
        any::<bool>().prop_map(Kind::BoolValue),
    ]
    .prop_map(|kind| prost_types::Value { kind: Some(kind) });
    let leaf = prop_oneof![leaf, Just(prost_types::Value { kind: None })];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|values| {
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::ListValue(
                        prost_types::ListValue { values },
                    )),
                }
            }),
            proptest::collection::btree_map(text(), inner, 0..6).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct {
                        fields,
                    })),
                }
            }),
        ]
    })
}

fn scope() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0i32..4, 1 => any::<i32>()]
}

fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text(), 0..6)
}

/// An `authorization` value as clients get it wrong.
fn bearer(valid_ust: String) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(format!("Bearer {valid_ust}")),
        1 => text().prop_map(|token| format!("Bearer {token}")),
        1 => text(),
        1 => Just(format!("bearer   {valid_ust}  ")),
        1 => Just(format!("Basic {valid_ust}")),
        1 => Just(format!("Bearer {valid_ust}x")),
    ]
}

/// The property: an answer, or an error the contract names, and the server still serves.
fn assert_contract_answer<T>(rpc: &str, outcome: Result<tonic::Response<T>, tonic::Status>) {
    let Err(status) = outcome else {
        return;
    };
    assert!(
        !matches!(
            status.code(),
            Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
        ),
        "{rpc} answered {status:?}"
    );
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{rpc}: no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "sso", "{rpc}");
}

/// A request carrying `authorization`, when the header value can be sent at all.
fn with_authorization<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = authorization.parse::<MetadataValue<_>>() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Runs `cases` generated requests through `call` on one runtime.
fn fuzz<S: Strategy>(
    runtime: &tokio::runtime::Runtime,
    cases: u32,
    strategy: S,
    call: impl Fn(S::Value) -> futures::future::BoxFuture<'static, ()>,
) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |input| {
            runtime.block_on(call(input));
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}

fn fuzz_every_rpc(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = Arc::new(runtime.block_on(TestServer::start(backend)));
    let admin = runtime.block_on(server.admin());

    let s = Arc::clone(&server);
    let ust = admin.clone();
    fuzz(
        &runtime,
        CASES,
        (scope(), text(), text(), value(), duration(), any::<bool>()),
        move |(scope, owner_id, name, value, expiration, encrypt)| {
            let (s, ust) = (Arc::clone(&s), ust.clone());
            Box::pin(async move {
                let request = proto::SetAttributeRequest {
                    scope,
                    owner_id,
                    name,
                    value: Some(value),
                    expiration,
                    encrypt,
                };
                let outcome = s.attributes().set_attribute(authed(&ust, request)).await;
                assert_contract_answer("SetAttribute", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    let ust = admin.clone();
    let item = (
        text(),
        proptest::option::of(value()),
        duration(),
        any::<Option<bool>>(),
    )
        .prop_map(|(name, value, expiration, encrypt)| proto::AttributeWrite {
            name,
            value,
            expiration,
            encrypt,
        });
    fuzz(
        &runtime,
        CASES,
        (
            scope(),
            text(),
            proptest::collection::vec(item, 0..5),
            duration(),
            any::<bool>(),
        ),
        move |(scope, owner_id, attributes, expiration, encrypt)| {
            let (s, ust) = (Arc::clone(&s), ust.clone());
            Box::pin(async move {
                let request = proto::SetAttributesRequest {
                    scope,
                    owner_id,
                    attributes,
                    expiration,
                    encrypt,
                };
                let outcome = s.attributes().set_attributes(authed(&ust, request)).await;
                assert_contract_answer("SetAttributes", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    fuzz(
        &runtime,
        CASES,
        (
            bearer(admin.clone()),
            scope(),
            text(),
            names(),
            text(),
            duration(),
        ),
        move |(authorization, scope, owner_id, names, name, expiration)| {
            let s = Arc::clone(&s);
            Box::pin(async move {
                let mut attributes = s.attributes();
                let request = proto::GetAttributesRequest {
                    scope,
                    owner_id: owner_id.clone(),
                    names: names.clone(),
                };
                let outcome = attributes
                    .get_attributes(with_authorization(&authorization, request))
                    .await;
                assert_contract_answer("GetAttributes", outcome);
                let request = proto::AttributesExistRequest {
                    scope,
                    owner_id: owner_id.clone(),
                    names: names.clone(),
                };
                let outcome = attributes
                    .attributes_exist(with_authorization(&authorization, request))
                    .await;
                assert_contract_answer("AttributesExist", outcome);
                let request = proto::DeleteAttributesRequest {
                    scope,
                    owner_id: owner_id.clone(),
                    names,
                };
                let outcome = attributes
                    .delete_attributes(with_authorization(&authorization, request))
                    .await;
                assert_contract_answer("DeleteAttributes", outcome);
                let request = proto::SetAttributeExpiryRequest {
                    scope,
                    owner_id,
                    name,
                    expiration,
                };
                let outcome = attributes
                    .set_attribute_expiry(with_authorization(&authorization, request))
                    .await;
                assert_contract_answer("SetAttributeExpiry", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    let ust = admin.clone();
    fuzz(
        &runtime,
        CASES / 3,
        (
            text(),
            proptest::option::of(text()),
            (text(), text(), text()),
            any::<(bool, Option<bool>, bool)>(),
        ),
        move |(username, password, (email, display_name, last_name), flags)| {
            let (s, ust) = (Arc::clone(&s), ust.clone());
            Box::pin(async move {
                let (is_super_user, is_approved, password_must_change) = flags;
                let request = proto::CreateUserRequest {
                    username,
                    password,
                    email,
                    display_name,
                    last_name,
                    is_super_user,
                    is_approved,
                    password_must_change,
                    ..Default::default()
                };
                let outcome = s.users().create_user(authed(&ust, request)).await;
                assert_contract_answer("CreateUser", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    fuzz(
        &runtime,
        CASES / 3,
        (text(), text(), text(), text(), proptest::option::of(text())),
        move |(username, password, current_app, remote_addr, new_password)| {
            let s = Arc::clone(&s);
            Box::pin(async move {
                let request = proto::LoginRequest {
                    username,
                    password,
                    current_app,
                    remote_addr,
                    user_agent: "fuzz".into(),
                    new_password,
                    totp_code: None,
                };
                let outcome = s.users().login(Request::new(request)).await;
                assert_contract_answer("Login", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    let ust = admin.clone();
    // Never the caller itself (an empty id): a super-user may legitimately expire its own
    // password, which would end the session the remaining cases use.
    let other_user_id = text().prop_filter("another user", |id| !id.is_empty());
    let user = (
        other_user_id,
        text(),
        text(),
        any::<(bool, bool, i32)>(),
        timestamp(),
    )
        .prop_map(
            |(user_id, username, email, (is_super_user, is_locked, approval_status), expiry)| {
                proto::User {
                    user_id,
                    username,
                    email,
                    is_super_user,
                    is_locked,
                    approval_status,
                    password_expiry: expiry,
                    ..Default::default()
                }
            },
        );
    let mask = proptest::collection::vec(
        prop_oneof![
            Just("email".to_string()),
            Just("is_locked".to_string()),
            Just("approval_status".to_string()),
            Just("password_expiry".to_string()),
            text(),
        ],
        0..4,
    );
    fuzz(
        &runtime,
        CASES,
        (
            user,
            proptest::option::of(mask),
            any::<i32>(),
            text(),
            text(),
        ),
        move |(user, mask, page_size, page_token, prefix)| {
            let (s, ust) = (Arc::clone(&s), ust.clone());
            Box::pin(async move {
                let mut users = s.users();
                let request = proto::UpdateUserRequest {
                    user: Some(user.clone()),
                    update_mask: mask.map(|paths| prost_types::FieldMask { paths }),
                };
                let outcome = users.update_user(authed(&ust, request)).await;
                assert_contract_answer("UpdateUser", outcome);
                let request = proto::ListUsersRequest {
                    page_size,
                    page_token,
                    username_prefix: prefix,
                    approval_status: user.approval_status,
                };
                let outcome = users.list_users(authed(&ust, request)).await;
                assert_contract_answer("ListUsers", outcome);
                let request = proto::GetUserRequest {
                    user_id: user.user_id.clone(),
                    username: user.username,
                };
                let outcome = users.get_user(authed(&ust, request)).await;
                assert_contract_answer("GetUser", outcome);
                let request = proto::LockUserRequest {
                    user_id: user.user_id,
                };
                let outcome = users.lock_user(authed(&ust, request)).await;
                assert_contract_answer("LockUser", outcome);
            })
        },
    );

    let s = Arc::clone(&server);
    let ust = admin.clone();
    fuzz(
        &runtime,
        CASES,
        (text(), text(), any::<i32>(), text(), any::<bool>()),
        move |(target, id, page_size, page_token, guests)| {
            let (s, ust) = (Arc::clone(&s), ust.clone());
            Box::pin(async move {
                let mut sessions = s.sessions();
                let request = proto::VerifySessionRequest {
                    target_ust: target.clone(),
                    current_app: "fuzz".into(),
                    remote_addr: id.clone(),
                };
                let outcome = sessions.verify_session(authed(&ust, request)).await;
                assert_contract_answer("VerifySession", outcome);
                let request = proto::GetSessionRequest {
                    target_ust: target,
                    current_app: id.clone(),
                    remote_addr: String::new(),
                };
                let outcome = sessions.get_session(authed(&ust, request)).await;
                assert_contract_answer("GetSession", outcome);
                let request = proto::ListSessionsRequest {
                    user_id: id.clone(),
                    page_size,
                    page_token,
                };
                let outcome = sessions.list_sessions(authed(&ust, request)).await;
                assert_contract_answer("ListSessions", outcome);
                let selector = if guests {
                    Selector::GuestsOnly(true)
                } else {
                    Selector::UserId(id.clone())
                };
                let request = proto::DeleteUserSessionsRequest {
                    selector: Some(selector),
                };
                let outcome = sessions.delete_user_sessions(authed(&ust, request)).await;
                assert_contract_answer("DeleteUserSessions", outcome);
                // An empty id is the caller's own session, which the other cases still use.
                let session_id = if id.is_empty() { "-".to_string() } else { id };
                let request = proto::DeleteSessionRequest { session_id };
                let outcome = sessions.delete_session(authed(&ust, request)).await;
                assert_contract_answer("DeleteSession", outcome);
            })
        },
    );

    // Still serving, and the super-user's session survived whatever was thrown at it.
    runtime.block_on(async {
        let user = server.current_user(&admin).await.expect("still serving");
        assert_eq!(user.into_inner().user.expect("user").username, "admin");
    });
}

#[test]
fn every_rpc_answers_arbitrary_requests_within_the_contract_on_memory() {
    fuzz_every_rpc(Backend::Memory);
}

#[test]
fn every_rpc_answers_arbitrary_requests_within_the_contract_on_postgres() {
    fuzz_every_rpc(Backend::Postgres);
}
