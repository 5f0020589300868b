//! Long-lived calls: an open health `Watch` ends at shutdown with a clear status instead of
//! holding the drain to its deadline, and a stream's caller can be re-checked so a revoked
//! session's stream can be ended.

use std::{sync::Arc, time::Duration};

use http::uri::PathAndQuery;
use ssod::{proto, service::ServiceError};
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::{
    both,
    harness::{ADMIN, Backend, TestServer, assert_error, authed, watch_health_into_shutdown},
};

/// The watch ends while the drain still waits on a stuck call, so it ended well before the
/// drain deadline, and it ended with `UNAVAILABLE` rather than a cut connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_ends_at_shutdown_before_the_drain_deadline() {
    let server = TestServer::start(Backend::Memory).await;
    // A unary call whose request never comes holds the drain until its deadline.
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    let stuck = tokio::spawn(async move {
        grpc.ready().await.expect("ready");
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let never = futures::stream::pending::<HealthCheckRequest>();
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let _ = grpc.streaming(Request::new(never), path, codec).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut watch, stopping) = watch_health_into_shutdown(server).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the watch ends within bounds")
        .expect_err("the watch ends with a status");
    assert_error(&ended, Code::Unavailable, "SHUTTING_DOWN");
    assert_eq!(ended.message(), "server shutting down");
    assert!(
        !stopping.is_finished(),
        "the watch ended while the drain still waited on the stuck call"
    );
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("the drain deadline ends the stuck call")
        .expect("joined");
    stuck.abort();
}

/// What a streaming handler asks now and then: the caller it resolved at the start is
/// refused once its session was revoked or expired, or its user locked.
async fn a_recheck_refuses_a_caller_whose_session_ended(backend: Backend) {
    let server = TestServer::start(backend).await;
    let sso = ssod::build_service(
        &server.config,
        Arc::clone(&server.store),
        Arc::new(server.clock.clone()),
        &ssod::Background::start(None).expect("no listener"),
    )
    .expect("service");
    let refused = |result: Result<_, ServiceError>| matches!(result, Err(ServiceError::UstInvalid));

    let (user, ust) = server.user_session("streamer").await;
    let caller = sso.authenticate(&ust).await.expect("authenticates");
    let again = sso.recheck(&caller).await.expect("a live session passes");
    assert_eq!(again.session.id, caller.session.id);
    server
        .sessions()
        .delete_session(authed(&ust, proto::DeleteSessionRequest::default()))
        .await
        .expect("the caller ends its session");
    assert!(refused(sso.recheck(&caller).await), "revoked session");

    let ust = server.login("streamer", "user-password-1").await.ust;
    let caller = sso.authenticate(&ust).await.expect("authenticates");
    let admin = server.admin().await;
    server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: user.user_id.clone(),
            },
        ))
        .await
        .expect("lock");
    assert!(refused(sso.recheck(&caller).await), "locked user");

    let ust = server
        .login(ADMIN, crate::harness::ADMIN_PASSWORD)
        .await
        .ust;
    let caller = sso.authenticate(&ust).await.expect("authenticates");
    server.advance(Duration::from_secs(24 * 3600));
    assert!(refused(sso.recheck(&caller).await), "expired session");
}

both!(a_recheck_refuses_a_caller_whose_session_ended);
