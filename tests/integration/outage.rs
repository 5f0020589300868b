//! A PostgreSQL outage as replicas see it: health turns NOT_SERVING, calls fail with
//! UNAVAILABLE / STORE_UNAVAILABLE (Logout too: it must not claim to have ended a session it
//! could not reach), and everything recovers when the database comes back.

use std::time::{Duration, Instant};

use ssod::proto;
use tokio_postgres::NoTls;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::{Backend, TestServer, assert_error, authed};

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

async fn wait_for_health(server: &TestServer, expected: i32) {
    let mut health = HealthClient::new(server.channel.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "sso.v1.SessionService".into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        if status == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed {status}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_errors_follow_a_database_outage() {
    let server = TestServer::start(Backend::Postgres).await;
    let ust = server.admin().await;
    wait_for_health(&server, SERVING).await;

    let url = server.config.database.url.clone().expect("postgres url");
    let (database_name, maintenance_url) = {
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
        let connection = tokio::spawn(connection);
        let name: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .expect("name")
            .get(0);
        drop(client);
        let _ = connection.await;
        let maintenance = crate::pg::with_database(&url, "postgres");
        (name, maintenance)
    };
    let (admin, connection) = tokio_postgres::connect(&maintenance_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{database_name}\" ALLOW_CONNECTIONS false"
        ))
        .await
        .expect("disallow connections");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database_name],
        )
        .await
        .expect("terminate the server's connections");

    wait_for_health(&server, NOT_SERVING).await;
    let status = server
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect_err("logout cannot reach the store");
    assert_error(&status, Code::Unavailable, "STORE_UNAVAILABLE");
    let status = server
        .users()
        .login(proto::LoginRequest {
            username: crate::harness::ADMIN.into(),
            password: crate::harness::ADMIN_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect_err("login cannot reach the store");
    assert_error(&status, Code::Unavailable, "STORE_UNAVAILABLE");

    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{database_name}\" ALLOW_CONNECTIONS true"
        ))
        .await
        .expect("allow connections");
    wait_for_health(&server, SERVING).await;
    // A pooled connection that died may fail one call; the session itself survived.
    let mut current = None;
    for _ in 0..3 {
        match server.current_user(&ust).await {
            Ok(response) => {
                current = response.into_inner().user;
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
    }
    assert!(current.is_some(), "the session outlived the outage");
    server
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout");
    let status = server.current_user(&ust).await.expect_err("logged out");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

/// Shutdown turns health NOT_SERVING first, so a mesh stops routing before calls are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_when_shutdown_begins() {
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.server.shutdown_timeout = Duration::from_millis(500);
    })
    .await;
    let mut health = HealthClient::new(server.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("a status");
    assert_eq!(first.status, SERVING);
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status within bounds")
        .expect("stream")
        .expect("a status");
    assert_eq!(next.status, NOT_SERVING);
    // The server stops within bounds; the open watch does not hold it (see streams.rs).
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops within the drain deadline")
        .expect("joined");
}
