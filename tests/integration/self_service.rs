//! Self-service sessions over the real server: `GetCurrentSession` for guests and users,
//! `RevokeOtherSessions` ("log out my other devices").

use ssod::proto;
use tonic::{Code, Request};

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

async fn current_session(
    server: &TestServer,
    ust: &str,
) -> Result<proto::GetCurrentSessionResponse, tonic::Status> {
    server
        .sessions()
        .get_current_session(authed(ust, proto::GetCurrentSessionRequest {}))
        .await
        .map(tonic::Response::into_inner)
}

async fn revoke_other_sessions(
    server: &TestServer,
    ust: &str,
) -> Result<proto::RevokeOtherSessionsResponse, tonic::Status> {
    server
        .sessions()
        .revoke_other_sessions(authed(ust, proto::RevokeOtherSessionsRequest {}))
        .await
        .map(tonic::Response::into_inner)
}

async fn get_current_session_answers_for_guests_and_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let guest = server.guest().await;
    let seen = current_session(&server, &guest.ust)
        .await
        .expect("a guest's own session");
    assert_eq!(seen.session, guest.session);
    assert!(seen.user.is_none(), "a guest has no user");

    let admin = server.admin().await;
    server.create_user(&admin, "lena", "user-password-1").await;
    let login = server.login("lena", "user-password-1").await;
    let seen = current_session(&server, &login.ust)
        .await
        .expect("a user's own session");
    assert_eq!(seen.session, login.session);
    assert_eq!(seen.user, login.user);
    let printed = format!("{seen:?}");
    assert!(!printed.contains(&login.ust), "no UST in the answer");

    let missing = server
        .sessions()
        .get_current_session(Request::new(proto::GetCurrentSessionRequest {}))
        .await
        .expect_err("no UST");
    assert_error(&missing, Code::Unauthenticated, "UST_MISSING");
    let unknown = current_session(&server, &ssod::crypto::generate_ust())
        .await
        .expect_err("unknown UST");
    assert_error(&unknown, Code::Unauthenticated, "UST_INVALID");
}

async fn revoke_other_sessions_keeps_only_the_callers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, first) = server.user_session("mira").await;
    let second = server.login("mira", "user-password-1").await.ust;
    let third = server.login("mira", "user-password-1").await.ust;
    let (_, bystander) = server.user_session("nils").await;
    let guest = server.guest().await.ust;

    let revoked = revoke_other_sessions(&server, &second)
        .await
        .expect("revoke");
    assert_eq!(revoked.deleted_count, 2);
    server
        .current_user(&second)
        .await
        .expect("the caller's session stays");
    for ended in [&first, &third] {
        let status = server.current_user(ended).await.expect_err("ended");
        assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    }
    server
        .current_user(&bystander)
        .await
        .expect("another user's session stays");
    current_session(&server, &guest)
        .await
        .expect("guests are untouched");
    let again = revoke_other_sessions(&server, &second)
        .await
        .expect("revoke again");
    assert_eq!(again.deleted_count, 0);

    let status = revoke_other_sessions(&server, &guest)
        .await
        .expect_err("a guest has no user");
    assert_error(&status, Code::NotFound, "USER_NOT_FOUND");
    let status = server
        .sessions()
        .revoke_other_sessions(Request::new(proto::RevokeOtherSessionsRequest {}))
        .await
        .expect_err("no UST");
    assert_error(&status, Code::Unauthenticated, "UST_MISSING");
}

both!(
    get_current_session_answers_for_guests_and_users,
    revoke_other_sessions_keeps_only_the_callers,
);
