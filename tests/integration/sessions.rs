//! SessionService over the real server: guest sessions, inspection, renewal, listing,
//! revocation, sweeps, and rotation on login and logout.

use std::time::{Duration, SystemTime};

use prost::Message;
use ssod::{
    domain::{Session, SessionId},
    proto::{self, AttributeScope, delete_user_sessions_request::Selector},
};
use tonic::Code;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, json_value},
};

fn seconds(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    timestamp.as_ref().expect("timestamp").seconds
}

async fn guest_sessions_are_verified_without_extension(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let guest = server.guest().await;
    let session = guest.session.expect("session");
    assert!(session.user_id.is_empty());
    let verified = server
        .sessions()
        .verify_session(authed(
            &admin,
            proto::VerifySessionRequest {
                target_ust: guest.ust.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.valid);
    let seen = verified.session.expect("session");
    assert_eq!(seen.session_id, session.session_id);
    assert_eq!(
        seen.expiration_time, session.expiration_time,
        "verify never extends"
    );

    // Within the guest idle timeout (30 minutes by default).
    server.advance(Duration::from_secs(20 * 60));
    let again = server
        .sessions()
        .verify_session(authed(
            &admin,
            proto::VerifySessionRequest {
                target_ust: guest.ust.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(
        again.session.expect("session").expiration_time,
        session.expiration_time
    );

    for target in [ssod::crypto::generate_ust(), "garbage".to_string()] {
        let invalid = server
            .sessions()
            .verify_session(authed(
                &admin,
                proto::VerifySessionRequest {
                    target_ust: target,
                    ..Default::default()
                },
            ))
            .await
            .expect("verify")
            .into_inner();
        assert!(!invalid.valid);
        assert!(invalid.session.is_none());
    }
    let empty = server
        .sessions()
        .verify_session(authed(&admin, proto::VerifySessionRequest::default()))
        .await
        .expect_err("empty target");
    assert_error(&empty, Code::InvalidArgument, "INVALID_ARGUMENT");
}

async fn get_session_finds_only_live_sessions(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(600);
        config.sessions.max_lifetime = Duration::from_secs(7200);
    })
    .await;
    let (user, ust) = server.user_session("kim").await;
    let admin_ust = server.admin().await;
    let found = server
        .sessions()
        .get_session(authed(
            &admin_ust,
            proto::GetSessionRequest {
                target_ust: ust.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("found")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(found.user_id, user.user_id);

    // Expiry is exclusive: at exactly expires_at the session is gone.
    server.advance(Duration::from_secs(600));
    let admin_ust = server.admin().await;
    let status = server
        .sessions()
        .get_session(authed(
            &admin_ust,
            proto::GetSessionRequest {
                target_ust: ust,
                ..Default::default()
            },
        ))
        .await
        .expect_err("expired");
    assert_error(&status, Code::NotFound, "SESSION_NOT_FOUND");

    // A session whose user's password has expired is not found either.
    let fresh = server.login("kim", "user-password-1").await.ust;
    let expiry = prost_types::Timestamp::from(server.clock_now() + Duration::from_secs(60));
    server
        .users()
        .update_user(authed(
            &admin_ust,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id,
                    password_expiry: Some(expiry),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["password_expiry".into()],
                }),
            },
        ))
        .await
        .expect("set expiry");
    server
        .sessions()
        .get_session(authed(
            &admin_ust,
            proto::GetSessionRequest {
                target_ust: fresh.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("still valid");
    server.advance(Duration::from_secs(60));
    let status = server
        .sessions()
        .get_session(authed(
            &admin_ust,
            proto::GetSessionRequest {
                target_ust: fresh,
                ..Default::default()
            },
        ))
        .await
        .expect_err("password expired");
    assert_error(&status, Code::NotFound, "SESSION_NOT_FOUND");
}

async fn renewal_slides_and_is_capped(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(600);
        config.sessions.max_lifetime = Duration::from_secs(1000);
    })
    .await;
    let login = server
        .login(crate::harness::ADMIN, crate::harness::ADMIN_PASSWORD)
        .await;
    let session = login.session.expect("session");
    let created = seconds(&session.creation_time);
    assert_eq!(seconds(&session.expiration_time), created + 600);

    server.advance(Duration::from_secs(300));
    let renewed = server
        .sessions()
        .renew_session(authed(&login.ust, proto::RenewSessionRequest {}))
        .await
        .expect("renew")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(seconds(&renewed.expiration_time), created + 900);
    assert_eq!(seconds(&renewed.last_renewal_time), created + 300);

    server.advance(Duration::from_secs(500));
    let capped = server
        .sessions()
        .renew_session(authed(&login.ust, proto::RenewSessionRequest {}))
        .await
        .expect("renew")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(
        seconds(&capped.expiration_time),
        created + 1000,
        "capped by the lifetime"
    );

    server.advance(Duration::from_secs(200));
    let status = server
        .sessions()
        .renew_session(authed(&login.ust, proto::RenewSessionRequest {}))
        .await
        .expect_err("past the absolute lifetime");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

/// The stored session, read without using it (a store read renews nothing).
async fn stored_session(server: &TestServer, session_id: &str) -> Option<Session> {
    let id = SessionId(uuid::Uuid::parse_str(session_id).expect("a session id"));
    server
        .store
        .session_by_id(id, server.clock_now())
        .await
        .expect("read")
        .map(|found| found.session)
}

/// Its expiry and last renewal, as seconds after `since`.
fn lifetime_since(session: &Session, since: SystemTime) -> (u64, u64) {
    let after = |time: SystemTime| time.duration_since(since).expect("later").as_secs();
    (after(session.expires_at), after(session.last_renewed_at))
}

/// Any call a UST authenticates renews its session, at most once per renewal interval
/// (60 s by default), and never past the absolute lifetime.
async fn use_renews_throttled_and_capped(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(600);
        config.sessions.guest_idle_timeout = Duration::from_secs(300);
        config.sessions.max_lifetime = Duration::from_secs(1000);
    })
    .await;
    let admin = server.admin().await;
    server.create_user(&admin, "uma", "user-password-1").await;
    let start = server.clock_now();
    let login = server.login("uma", "user-password-1").await;
    let id = login.session.expect("session").session_id;
    let ust = login.ust;
    let lifetime =
        || async { lifetime_since(&stored_session(&server, &id).await.expect("live"), start) };
    assert_eq!(lifetime().await, (600, 0));

    // Inside the interval: the call is served, nothing is written.
    server.advance(Duration::from_secs(30));
    server.current_user(&ust).await.expect("served");
    assert_eq!(lifetime().await, (600, 0));

    // At the interval: now + the idle timeout.
    server.advance(Duration::from_secs(30));
    server.current_user(&ust).await.expect("served");
    assert_eq!(lifetime().await, (660, 60));
    server.advance(Duration::from_secs(59));
    server.current_user(&ust).await.expect("served");
    assert_eq!(lifetime().await, (660, 60), "throttled by the interval");

    // Past what the login alone gave (600), kept alive by use, and capped at creation + 1000.
    server.advance(Duration::from_secs(540));
    server
        .list_attribute_names(&ust, AttributeScope::User as i32)
        .await
        .expect("served");
    assert_eq!(lifetime().await, (1000, 659));
    server.advance(Duration::from_secs(341));
    let status = server
        .current_user(&ust)
        .await
        .expect_err("past the absolute lifetime");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");

    // A guest slides by the guest idle timeout.
    let guest = server.guest().await;
    let guest_id = guest.session.expect("session").session_id;
    let created = server.clock_now();
    server.advance(Duration::from_secs(100));
    server
        .list_attribute_names(&guest.ust, AttributeScope::Session as i32)
        .await
        .expect("served");
    let renewed = stored_session(&server, &guest_id).await.expect("live");
    assert_eq!(lifetime_since(&renewed, created), (400, 100));
}

async fn use_renews_nothing_when_turned_off(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(600);
        config.sessions.renew_on_use = false;
    })
    .await;
    let admin = server.admin().await;
    server
        .create_user(&admin, "ursula", "user-password-1")
        .await;
    let start = server.clock_now();
    let login = server.login("ursula", "user-password-1").await;
    let id = login.session.expect("session").session_id;
    for _ in 0..5 {
        server.advance(Duration::from_secs(110));
        server.current_user(&login.ust).await.expect("served");
    }
    let stored = stored_session(&server, &id).await.expect("live");
    assert_eq!(lifetime_since(&stored, start), (600, 0));
    server.advance(Duration::from_secs(50));
    let status = server
        .current_user(&login.ust)
        .await
        .expect_err("expired however much it was used");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

/// `VerifySession` and `GetSession` look at their target without extending it; the
/// super-user's own session, which authenticates the call, is renewed like any caller's.
async fn verify_and_get_session_never_extend_their_target(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server
        .login(crate::harness::ADMIN, crate::harness::ADMIN_PASSWORD)
        .await;
    let admin_id = admin.session.expect("session").session_id;
    server
        .create_user(&admin.ust, "tess", "user-password-1")
        .await;
    let start = server.clock_now();
    let target = server.login("tess", "user-password-1").await;
    let target_session = target.session.expect("session");

    server.advance(Duration::from_secs(120));
    let verified = server
        .sessions()
        .verify_session(authed(
            &admin.ust,
            proto::VerifySessionRequest {
                target_ust: target.ust.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.valid);
    let seen = verified.session.expect("session");
    assert_eq!(seen.expiration_time, target_session.expiration_time);
    assert_eq!(seen.last_renewal_time, target_session.last_renewal_time);
    let admin_session = stored_session(&server, &admin_id).await.expect("live");
    assert_eq!(
        admin_session.last_renewed_at,
        server.clock_now(),
        "the caller's own session renewed by use"
    );

    server.advance(Duration::from_secs(120));
    let got = server
        .sessions()
        .get_session(authed(
            &admin.ust,
            proto::GetSessionRequest {
                target_ust: target.ust.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(got.expiration_time, target_session.expiration_time);
    assert_eq!(got.last_renewal_time, target_session.last_renewal_time);
    let stored = stored_session(&server, &target_session.session_id)
        .await
        .expect("live");
    assert_eq!(lifetime_since(&stored, start), (3600, 0));
}

async fn list_sessions_pages_and_never_returns_usts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (user, first) = server.user_session("liam").await;
    let mut usts = vec![first.clone()];
    for _ in 0..4 {
        usts.push(server.login("liam", "user-password-1").await.ust);
    }
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .sessions()
            .list_sessions(authed(
                &first,
                proto::ListSessionsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner();
        let bytes = page.encode_to_vec();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("ssod_ust_"),
            "a UST leaked into ListSessions"
        );
        for ust in &usts {
            assert!(!text.contains(ust.as_str()));
        }
        ids.extend(page.sessions.into_iter().map(|s| s.session_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids.len(), 5);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by id");

    let (_, other) = server.user_session("mia").await;
    let status = server
        .sessions()
        .list_sessions(authed(
            &other,
            proto::ListSessionsRequest {
                user_id: user.user_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("someone else's");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");
    let admin = server.admin().await;
    let listed = server
        .sessions()
        .list_sessions(authed(
            &admin,
            proto::ListSessionsRequest {
                user_id: user.user_id,
                ..Default::default()
            },
        ))
        .await
        .expect("SU lists anyone's")
        .into_inner();
    assert_eq!(listed.sessions.len(), 5);
}

async fn delete_session_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, first) = server.user_session("noah").await;
    let second = server.login("noah", "user-password-1").await;
    let (_, stranger) = server.user_session("olivia").await;
    let second_id = second.session.expect("session").session_id;

    let status = server
        .sessions()
        .delete_session(authed(
            &stranger,
            proto::DeleteSessionRequest {
                session_id: second_id.clone(),
            },
        ))
        .await
        .expect_err("not the owner");
    assert_error(&status, Code::PermissionDenied, "NOT_OWNER");
    server
        .sessions()
        .delete_session(authed(
            &first,
            proto::DeleteSessionRequest {
                session_id: second_id.clone(),
            },
        ))
        .await
        .expect("another session of the same user");
    let status = server.current_user(&second.ust).await.expect_err("deleted");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");

    server
        .sessions()
        .delete_session(authed(&first, proto::DeleteSessionRequest::default()))
        .await
        .expect("own session");
    let status = server.current_user(&first).await.expect_err("deleted");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");

    let admin = server.admin().await;
    let stranger_id = server
        .current_user(&stranger)
        .await
        .expect("alive")
        .into_inner();
    assert!(stranger_id.user.is_some());
    let status = server
        .sessions()
        .delete_session(authed(
            &admin,
            proto::DeleteSessionRequest {
                session_id: second_id,
            },
        ))
        .await
        .expect_err("already gone");
    assert_error(&status, Code::NotFound, "SESSION_NOT_FOUND");
}

async fn delete_user_sessions_selectors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (user, ust) = server.user_session("pat").await;
    server.login("pat", "user-password-1").await;
    let guests = [server.guest().await.ust, server.guest().await.ust];

    let none = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest { selector: None },
        ))
        .await
        .expect_err("no selector");
    assert_error(&none, Code::InvalidArgument, "INVALID_ARGUMENT");
    let falsy = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::GuestsOnly(false)),
            },
        ))
        .await
        .expect_err("guests_only=false selects nothing");
    assert_error(&falsy, Code::InvalidArgument, "INVALID_ARGUMENT");

    let by_user = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::UserId(user.user_id)),
            },
        ))
        .await
        .expect("by user")
        .into_inner();
    assert_eq!(by_user.deleted_count, 2);
    let status = server.current_user(&ust).await.expect_err("revoked");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");

    let guests_deleted = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::GuestsOnly(true)),
            },
        ))
        .await
        .expect("guests")
        .into_inner();
    assert_eq!(guests_deleted.deleted_count, guests.len() as i64);
    server
        .current_user(&admin)
        .await
        .expect("the admin's session survives guests_only");

    let all = server
        .sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::All(true)),
            },
        ))
        .await
        .expect("all")
        .into_inner();
    assert_eq!(all.deleted_count, 2, "the two admin sessions were left");
}

async fn purge_expired_sweeps_sessions_and_attributes(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(100);
        config.sessions.guest_idle_timeout = Duration::from_secs(100);
    })
    .await;
    let guest = server.guest().await.ust;
    server
        .attributes()
        .set_attributes(authed(
            &guest,
            proto::SetAttributesRequest {
                scope: AttributeScope::Session as i32,
                attributes: vec![
                    proto::AttributeWrite {
                        name: "a".into(),
                        value: Some(json_value(serde_json::json!(1))),
                        ..Default::default()
                    },
                    proto::AttributeWrite {
                        name: "short".into(),
                        value: Some(json_value(serde_json::json!(2))),
                        expiration: Some(prost_types::Duration {
                            seconds: 10,
                            nanos: 0,
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ))
        .await
        .expect("set");
    server.advance(Duration::from_secs(10));
    let admin = server.admin().await;
    let first = server
        .sessions()
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("purge")
        .into_inner();
    assert_eq!((first.sessions_deleted, first.attributes_deleted), (0, 1));
    server.advance(Duration::from_secs(95));
    let second = server
        .sessions()
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("purge")
        .into_inner();
    // The guest session and its remaining attribute expired; the admin session has not.
    assert_eq!((second.sessions_deleted, second.attributes_deleted), (1, 1));
    let third = server
        .sessions()
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("purge")
        .into_inner();
    assert_eq!((third.sessions_deleted, third.attributes_deleted), (0, 0));
}

async fn login_rotates_a_guest_session(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.persistent_on_login = vec!["cart".into(), "secret".into()];
    })
    .await;
    let admin = server.admin().await;
    server.create_user(&admin, "quinn", "user-password-1").await;
    let guest = server.guest().await;
    let write = |name: &str, value: serde_json::Value, encrypt: bool| proto::AttributeWrite {
        name: name.into(),
        value: Some(json_value(value)),
        encrypt: Some(encrypt),
        ..Default::default()
    };
    server
        .attributes()
        .set_attributes(authed(
            &guest.ust,
            proto::SetAttributesRequest {
                scope: AttributeScope::Session as i32,
                attributes: vec![
                    write("cart", serde_json::json!(["book"]), false),
                    write("secret", serde_json::json!({"k": "v"}), true),
                    write("scratch", serde_json::json!("dropped"), false),
                ],
                ..Default::default()
            },
        ))
        .await
        .expect("guest attributes");

    let login = server
        .try_login("quinn", "user-password-1", Some(&guest.ust))
        .await
        .expect("login with a guest UST");
    assert_ne!(login.ust, guest.ust);
    let attributes = server
        .attributes()
        .get_attributes(authed(
            &login.ust,
            proto::GetAttributesRequest {
                scope: AttributeScope::Session as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .attributes;
    let mut names: Vec<_> = attributes.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["cart", "secret"]);
    let secret = &attributes["secret"];
    assert!(secret.encrypted);
    assert_eq!(
        secret.value,
        Some(json_value(serde_json::json!({"k": "v"}))),
        "re-sealed for the new session"
    );

    let status = server
        .attributes()
        .get_attributes(authed(
            &guest.ust,
            proto::GetAttributesRequest {
                scope: AttributeScope::Session as i32,
                ..Default::default()
            },
        ))
        .await
        .expect_err("the guest session ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

async fn logout_carries_persistent_attributes_to_a_guest(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.persistent_on_logout = vec!["theme".into()];
    })
    .await;
    let (_, ust) = server.user_session("rosa").await;
    server
        .set_attribute(
            &ust,
            AttributeScope::Session as i32,
            "theme",
            serde_json::json!("dark"),
        )
        .await
        .expect("set");
    let guest_ust = server
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout")
        .into_inner()
        .guest_ust;
    assert!(guest_ust.starts_with("ssod_ust_"));
    let theme = server
        .get_attribute(&guest_ust, AttributeScope::Session as i32, "theme")
        .await
        .expect("carried")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(theme.value, Some(json_value(serde_json::json!("dark"))));
    let current = server
        .current_user(&guest_ust)
        .await
        .expect_err("a guest has no user");
    assert_error(&current, Code::NotFound, "USER_NOT_FOUND");

    // Without any of those attributes, no guest session is made.
    let (_, plain) = server.user_session("sam").await;
    let response = server
        .users()
        .logout(authed(&plain, proto::LogoutRequest {}))
        .await
        .expect("logout")
        .into_inner();
    assert!(response.guest_ust.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_server_restart_on_postgres() {
    let server = TestServer::start(Backend::Postgres).await;
    let (_, ust) = server.user_session("tara").await;
    server
        .attributes()
        .set_attribute(authed(
            &ust,
            proto::SetAttributeRequest {
                scope: AttributeScope::User as i32,
                name: "pref".into(),
                value: Some(json_value(serde_json::json!({"lang": "pl"}))),
                encrypt: true,
                ..Default::default()
            },
        ))
        .await
        .expect("set");
    let (config, _) = server.stop().await;
    // A brand-new store (pool) on the same database.
    let store = ssod::open_store(&config).await.expect("reopen");
    let restarted = TestServer::start_on(config, store).await;
    let pref = restarted
        .attributes()
        .get_attribute(authed(
            &ust,
            proto::GetAttributeRequest {
                scope: AttributeScope::User as i32,
                name: "pref".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the session and attribute survive")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(
        pref.value,
        Some(json_value(serde_json::json!({"lang": "pl"})))
    );
}

both!(
    guest_sessions_are_verified_without_extension,
    get_session_finds_only_live_sessions,
    renewal_slides_and_is_capped,
    use_renews_throttled_and_capped,
    use_renews_nothing_when_turned_off,
    verify_and_get_session_never_extend_their_target,
    list_sessions_pages_and_never_returns_usts,
    delete_session_rules,
    delete_user_sessions_selectors,
    purge_expired_sweeps_sessions_and_attributes,
    login_rotates_a_guest_session,
    logout_carries_persistent_attributes_to_a_guest,
);

/// Logout ends the session even when a persistent attribute cannot be carried (its key was
/// removed from the ring): the attribute is lost, the session is not left alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_when_an_attribute_cannot_be_carried() {
    let server = TestServer::start_with(Backend::Postgres, |config| {
        config.sessions.persistent_on_logout = vec!["theme".into()];
    })
    .await;
    let (_, ust) = server.user_session("una").await;
    server
        .attributes()
        .set_attribute(authed(
            &ust,
            proto::SetAttributeRequest {
                scope: AttributeScope::Session as i32,
                name: "theme".into(),
                value: Some(json_value(serde_json::json!("dark"))),
                encrypt: true,
                ..Default::default()
            },
        ))
        .await
        .expect("sealed with k1");
    let (mut config, _) = server.stop().await;
    // Only a new key remains: values sealed with k1 can no longer be opened.
    config.encryption.keys = Some(format!("k2:{}", crate::harness::base64_key(9)));
    let store = ssod::open_store(&config).await.expect("reopen");
    let restarted = TestServer::start_on(config, store).await;
    let status = restarted
        .get_attribute(&ust, AttributeScope::Session as i32, "theme")
        .await
        .expect_err("no key for it");
    assert_error(&status, Code::FailedPrecondition, "ENCRYPTION_UNAVAILABLE");
    let response = restarted
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout still succeeds")
        .into_inner();
    assert!(response.guest_ust.is_empty(), "nothing could be carried");
    let status = restarted.current_user(&ust).await.expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}
