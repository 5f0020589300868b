//! Anonymous and storage limits through the real server: the guest session cap with its
//! `RetryInfo`, the guest idle timeout, the per-owner byte limit and the shortest expiration.
//! Every refusal says which limit and writes nothing.

use std::time::Duration;

use ssod::proto::{self, AttributeScope};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, violated_fields, write},
};

const SESSION: i32 = AttributeScope::Session as i32;

fn seconds(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    timestamp.as_ref().expect("timestamp").seconds
}

fn duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

async fn create_guest(server: &TestServer) -> Result<proto::CreateSessionResponse, tonic::Status> {
    server
        .sessions()
        .create_session(proto::CreateSessionRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

fn assert_guest_limit(status: &tonic::Status) {
    assert_error(status, Code::ResourceExhausted, "LIMIT_EXCEEDED");
    let retry = status
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(!retry.is_zero());
}

async fn guest_sessions_stop_at_the_limit(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.max_guest_sessions = 2;
    })
    .await;
    let first = create_guest(&server).await.expect("first guest").ust;
    create_guest(&server).await.expect("second guest");
    let status = create_guest(&server).await.expect_err("the third guest");
    assert_guest_limit(&status);
    // Users still log in: their sessions are not guests'.
    let admin = server.admin().await;
    // Ending a guest session makes room for one more.
    server
        .sessions()
        .delete_session(authed(&first, proto::DeleteSessionRequest::default()))
        .await
        .expect("guest ends its session");
    create_guest(&server).await.expect("room again");
    assert_guest_limit(&create_guest(&server).await.expect_err("full again"));
    // Revoking the guests frees every place.
    let revoked = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(proto::delete_user_sessions_request::Selector::GuestsOnly(
                    true,
                )),
            },
        ))
        .await
        .expect("revoked")
        .into_inner()
        .deleted_count;
    assert_eq!(revoked, 2);
    create_guest(&server).await.expect("after revocation");
    create_guest(&server).await.expect("after revocation");
}

async fn an_expired_guest_holds_its_place_until_the_sweep(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.max_guest_sessions = 1;
        config.sessions.guest_idle_timeout = Duration::from_secs(60);
    })
    .await;
    create_guest(&server).await.expect("the guest");
    server.advance(Duration::from_secs(61));
    assert_guest_limit(&create_guest(&server).await.expect_err("expired, not swept"));
    let admin = server.admin().await;
    server
        .sessions()
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("swept");
    create_guest(&server).await.expect("room after the sweep");
}

async fn a_logout_with_no_room_for_its_guest_ends_the_session_and_says_so(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.max_guest_sessions = 1;
        config.sessions.persistent_on_logout = vec!["theme".into()];
    })
    .await;
    let (_, ust) = server.user_session("leaving").await;
    server
        .set_attribute(&ust, SESSION, "theme", serde_json::json!("dark"))
        .await
        .expect("set");
    create_guest(&server).await.expect("the only guest place");
    let status = server
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect_err("no room for the carrying guest");
    assert_guest_limit(&status);
    let ended = server
        .sessions()
        .renew_session(authed(&ust, proto::RenewSessionRequest {}))
        .await
        .expect_err("the session ended all the same");
    assert_error(&ended, Code::Unauthenticated, "UST_INVALID");
    assert_guest_limit(&create_guest(&server).await.expect_err("no guest was made"));
}

async fn guests_expire_after_their_own_idle_timeout(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(3600);
        config.sessions.guest_idle_timeout = Duration::from_secs(600);
    })
    .await;
    let guest = create_guest(&server).await.expect("guest");
    let session = guest.session.expect("session");
    let created = seconds(&session.creation_time);
    assert_eq!(seconds(&session.expiration_time), created + 600);
    // A user's session keeps the user idle timeout.
    let login = server
        .login(crate::harness::ADMIN, crate::harness::ADMIN_PASSWORD)
        .await;
    let user_session = login.session.expect("session");
    assert_eq!(
        seconds(&user_session.expiration_time),
        seconds(&user_session.creation_time) + 3600
    );

    server.advance(Duration::from_secs(500));
    let renewed = server
        .sessions()
        .renew_session(authed(&guest.ust, proto::RenewSessionRequest {}))
        .await
        .expect("renewed")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(seconds(&renewed.expiration_time), created + 500 + 600);

    server.advance(Duration::from_secs(600));
    let status = server
        .sessions()
        .renew_session(authed(&guest.ust, proto::RenewSessionRequest {}))
        .await
        .expect_err("expired at its renewal + the guest idle timeout");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

async fn names(server: &TestServer, ust: &str) -> Vec<String> {
    server
        .list_attribute_names(ust, SESSION)
        .await
        .expect("names")
        .into_inner()
        .names
}

/// A JSON string whose encoding is exactly `bytes` bytes.
fn json_of(bytes: usize) -> serde_json::Value {
    serde_json::json!("x".repeat(bytes - 2))
}

async fn owners_hold_at_most_the_configured_bytes(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.max_bytes_per_owner = 100;
    })
    .await;
    let ust = create_guest(&server).await.expect("guest").ust;
    server
        .set_attribute(&ust, SESSION, "a", json_of(60))
        .await
        .expect("60 bytes");
    server
        .set_attribute(&ust, SESSION, "b", json_of(40))
        .await
        .expect("exactly 100 bytes");
    let status = server
        .set_attribute(&ust, SESSION, "c", serde_json::json!(1))
        .await
        .expect_err("101 bytes");
    assert_error(&status, Code::InvalidArgument, "LIMIT_EXCEEDED");
    assert_eq!(violated_fields(&status), ["attributes"]);
    // Replacing a value counts its new size only.
    server
        .set_attribute(&ust, SESSION, "b", json_of(10))
        .await
        .expect("b shrinks");
    let status = server
        .set_attributes(
            &ust,
            SESSION,
            vec![write("d", json_of(10)), write("e", json_of(21))],
        )
        .await
        .expect_err("one item too many bytes");
    assert_error(&status, Code::InvalidArgument, "LIMIT_EXCEEDED");
    assert_eq!(violated_fields(&status), ["attributes"]);
    assert_eq!(names(&server, &ust).await, ["a", "b"], "nothing written");
}

async fn expirations_are_at_least_one_second(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = create_guest(&server).await.expect("guest").ust;
    let mut client = server.attributes();
    let status = client
        .set_attribute(authed(
            &ust,
            proto::SetAttributeRequest {
                scope: SESSION,
                name: "n".into(),
                value: Some(crate::harness::json_value(serde_json::json!(1))),
                expiration: duration(0, 1),
                ..Default::default()
            },
        ))
        .await
        .expect_err("1 ns");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["expiration"]);

    let status = client
        .set_attributes(authed(
            &ust,
            proto::SetAttributesRequest {
                scope: SESSION,
                attributes: vec![write("a", serde_json::json!(1))],
                expiration: duration(0, 999_999_999),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a default just under 1 s");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["expiration"]);

    let status = client
        .set_attributes(authed(
            &ust,
            proto::SetAttributesRequest {
                scope: SESSION,
                attributes: vec![
                    write("a", serde_json::json!(1)),
                    proto::AttributeWrite {
                        expiration: duration(0, 500_000_000),
                        ..write("b", serde_json::json!(1))
                    },
                ],
                expiration: duration(60, 0),
                ..Default::default()
            },
        ))
        .await
        .expect_err("an item's own 0.5 s");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["attributes[1].expiration"]);
    assert!(names(&server, &ust).await.is_empty(), "nothing written");

    server
        .set_attribute(&ust, SESSION, "kept", serde_json::json!(1))
        .await
        .expect("set");
    let status = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: SESSION,
                name: "kept".into(),
                expiration: duration(0, 1),
                ..Default::default()
            },
        ))
        .await
        .expect_err("1 ns");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["expiration"]);
    let kept = server
        .get_attribute(&ust, SESSION, "kept")
        .await
        .expect("still there")
        .into_inner()
        .attribute
        .expect("attribute");
    assert!(kept.expiration_time.is_none(), "its expiry unchanged");

    // Exactly one second is accepted.
    let set = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: SESSION,
                name: "kept".into(),
                expiration: duration(1, 0),
                ..Default::default()
            },
        ))
        .await
        .expect("1 s")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(
        seconds(&set.expiration_time),
        seconds(&set.last_modified) + 1
    );
}

both!(
    guest_sessions_stop_at_the_limit,
    an_expired_guest_holds_its_place_until_the_sweep,
    a_logout_with_no_room_for_its_guest_ends_the_session_and_says_so,
    guests_expire_after_their_own_idle_timeout,
    owners_hold_at_most_the_configured_bytes,
    expirations_are_at_least_one_second,
);
