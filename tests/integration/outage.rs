//! A PostgreSQL outage as replicas see it: health turns NOT_SERVING, calls fail at once with
//! UNAVAILABLE / STORE_UNAVAILABLE (Logout too: it must not claim to have ended a session it
//! could not reach), and once the database answers again no call fails: the pool's dead
//! connections are never handed out, nor returned to it.

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

/// Small, so the calls below outnumber the connections several times.
const POOL_SIZE: usize = 4;
/// Far beyond a refused connection, far below the request deadline.
const FAILS_WITHIN: Duration = Duration::from_secs(10);

fn admin_login() -> proto::LoginRequest {
    proto::LoginRequest {
        username: crate::harness::ADMIN.into(),
        password: crate::harness::ADMIN_PASSWORD.into(),
        ..Default::default()
    }
}

/// Runs `count` calls at once (reads, an upsert, logins: retried and never-retried store
/// writes) as the holder of `ust`; how many failed, each failure printed.
async fn concurrent_calls(server: &TestServer, ust: &str, count: usize) -> usize {
    let calls = (0..count).map(|index| async move {
        let result = match index % 3 {
            0 => server.current_user(ust).await.map(drop),
            1 => server
                .set_attribute(
                    ust,
                    proto::AttributeScope::Session as i32,
                    &format!("a{index}"),
                    serde_json::json!(index),
                )
                .await
                .map(drop),
            _ => server.users().login(admin_login()).await.map(drop),
        };
        result.inspect_err(|status| eprintln!("call {index} failed: {status:?}"))
    });
    futures::future::join_all(calls)
        .await
        .iter()
        .filter(|result| result.is_err())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_errors_follow_a_database_outage() {
    let server = TestServer::start_with(Backend::Postgres, |config| {
        config.database.pool_size = POOL_SIZE;
    })
    .await;
    let ust = server.admin().await;
    wait_for_health(&server, SERVING).await;
    // Every pooled connection opened, so the outage kills each of them.
    assert_eq!(concurrent_calls(&server, &ust, 4 * POOL_SIZE).await, 0);

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
    // Refused at once, not held until a deadline: a bound for hanging, not a timing.
    let status = tokio::time::timeout(
        FAILS_WITHIN,
        server.users().logout(authed(&ust, proto::LogoutRequest {})),
    )
    .await
    .expect("logout fails without waiting for a deadline")
    .expect_err("logout cannot reach the store");
    assert_error(&status, Code::Unavailable, "STORE_UNAVAILABLE");
    let status = tokio::time::timeout(FAILS_WITHIN, server.users().login(admin_login()))
        .await
        .expect("login fails without waiting for a deadline")
        .expect_err("login cannot reach the store");
    assert_error(&status, Code::Unavailable, "STORE_UNAVAILABLE");

    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{database_name}\" ALLOW_CONNECTIONS true"
        ))
        .await
        .expect("allow connections");
    wait_for_health(&server, SERVING).await;
    // Not one call fails once the database answers: more calls at once than the pool has
    // connections, so each dead connection would be met, by reads and writes alike.
    assert_eq!(
        concurrent_calls(&server, &ust, 4 * POOL_SIZE).await,
        0,
        "calls failed after the database came back"
    );
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
    let (_watch, stopping) = crate::harness::watch_health_into_shutdown(server).await;
    // The server stops within bounds; the open watch does not hold it (see streams.rs).
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops within the drain deadline")
        .expect("joined");
}
