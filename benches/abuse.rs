//! Abuse figures for the README: `cargo bench --bench abuse [-- --store memory|postgres]`.
//!
//! Starts the real `ssod` binary (release profile) with its defaults, once per store, and
//! plays an attacker against it, printing what it saw:
//!
//! - **guessing**: 60 wrong passwords for one user sent at once; how many were hashed
//!   (`ssod_password_hashes_total` from `/metrics`) and what they answered;
//! - **abandoned logins**: 200 logins sent 3 ms apart, each giving up after 10 ms, then one
//!   real login: how long it waited, and how many of the abandoned hashes ran;
//! - **login storm**: `VerifySession` p50/p99 alone, then beside a storm of logins, and the
//!   p99 ratio (target ≤ 2).
//! - **HTTP/2 SETTINGS** the server advertises, read by a raw `h2` handshake.
//!
//! All traffic goes to 127.0.0.1; every loop is bounded in count or time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use ssod::proto::{self, user_service_client::UserServiceClient};
use support::{ADDR, ADMIN_PASSWORD, Server, Window, database_url, drive, percentile_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, transport::Channel};

const ADMIN: &str = "bench-admin";
const VICTIM_PASSWORD: &str = "victim-password-1";
const STORM_PASSWORD: &str = "storm-password-1";
const GUESSES: usize = 60;
const ABANDONED: usize = 200;
const VERIFY_CONCURRENCY: usize = 16;
const STORM_CONCURRENCY: usize = 8;
const PHASE: Duration = Duration::from_secs(5);

fn main() {
    let stores = support::stores_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        support::print_machine("abuse");
        for store in stores {
            let url = match store {
                "postgres" => Some(database_url().await),
                _ => None,
            };
            run(store, url.as_deref()).await;
        }
    });
}

fn free_port() -> SocketAddr {
    TcpListener::bind((ADDR, 0))
        .expect("free port")
        .local_addr()
        .expect("address")
}

async fn run(store: &str, database_url: Option<&str>) {
    let metrics = free_port();
    let metrics_listen = metrics.to_string();
    let server = Server::start(
        database_url,
        ADMIN,
        &[("SSOD_METRICS_LISTEN", metrics_listen.as_str())],
    )
    .await;
    println!("\n== {store}");
    let channel = server.channel().await.expect("channel");
    let admin = login(&channel, ADMIN, ADMIN_PASSWORD, "10.0.0.1")
        .await
        .expect("admin login");
    create_user(&channel, &admin, "victim", VICTIM_PASSWORD).await;
    create_user(&channel, &admin, "storm", STORM_PASSWORD).await;

    guessing(&channel, metrics).await;
    abandoned(&channel, metrics).await;
    storm(&channel, &admin).await;
    settings(server.address).await;
    println!("server: {}", server.stop());
}

/// Sends a login; the answer's reason when refused.
async fn login(
    channel: &Channel,
    username: &str,
    password: &str,
    remote_addr: &str,
) -> Result<String, String> {
    let request = proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: "bench".into(),
        remote_addr: remote_addr.into(),
        user_agent: "ssod-abuse-bench".into(),
        ..Default::default()
    };
    UserServiceClient::new(channel.clone())
        .login(request)
        .await
        .map(|response| response.into_inner().ust)
        .map_err(|status| reason(&status))
}

fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map_or_else(|| format!("{:?}", status.code()), |info| info.reason)
}

async fn create_user(channel: &Channel, admin: &str, username: &str, password: &str) {
    let mut request = Request::new(proto::CreateUserRequest {
        username: username.into(),
        password: Some(password.into()),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {admin}").parse().expect("header"),
    );
    UserServiceClient::new(channel.clone())
        .create_user(request)
        .await
        .expect("create user");
}

/// The value of an unlabelled counter from the metrics endpoint (0 when not yet counted).
async fn counter(metrics: SocketAddr, name: &str) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(metrics)
        .await
        .expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn tally(answers: impl IntoIterator<Item = String>) -> String {
    let mut counts = BTreeMap::<String, usize>::new();
    for answer in answers {
        *counts.entry(answer).or_default() += 1;
    }
    counts
        .iter()
        .map(|(answer, count)| format!("{count} {answer}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn guessing(channel: &Channel, metrics: SocketAddr) {
    let hashed_before = counter(metrics, "ssod_password_hashes_total").await;
    let guesses = (0..GUESSES).map(|i| {
        let channel = channel.clone();
        async move {
            login(&channel, "victim", &format!("wrong-guess-{i}"), "10.0.1.1")
                .await
                .map_or_else(|reason| reason, |_| "OK".into())
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let hashed = counter(metrics, "ssod_password_hashes_total").await - hashed_before;
    println!(
        "guessing: {GUESSES} parallel wrong passwords for one user: {hashed} hashed; answers: {}",
        tally(answers)
    );
}

async fn abandoned(channel: &Channel, metrics: SocketAddr) {
    let hashed_before = counter(metrics, "ssod_password_hashes_total").await;
    let skipped_before = counter(metrics, "ssod_password_hashes_skipped_total").await;
    let mut calls = Vec::with_capacity(ABANDONED);
    for i in 0..ABANDONED {
        let mut client = UserServiceClient::new(channel.clone());
        let mut request = Request::new(proto::LoginRequest {
            username: format!("nobody-{i}"),
            password: "whatever-password".into(),
            current_app: "bench".into(),
            // Each from its own address, so the address limit does not end the flood early.
            remote_addr: format!("10.1.{}.{}", i / 250, i % 250),
            user_agent: "impatient".into(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_millis(10));
        calls.push(tokio::spawn(async move {
            client
                .login(request)
                .await
                .map_or_else(|status| reason(&status), |_| "OK".into())
        }));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let started = Instant::now();
    let real = login(channel, "storm", STORM_PASSWORD, "10.0.2.1").await;
    let waited = started.elapsed();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("call task"));
    }
    // Let the queue drain before reading what ran.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hashed = counter(metrics, "ssod_password_hashes_total").await - hashed_before;
    let skipped = counter(metrics, "ssod_password_hashes_skipped_total").await - skipped_before;
    println!(
        "abandoned logins: {ABANDONED} sent 3 ms apart, each giving up after 10 ms ({}); \
         then a real login {} after {:.1} ms; hashes run {hashed} (the real one included), \
         skipped {skipped}",
        tally(answers),
        if real.is_ok() { "succeeded" } else { "failed" },
        waited.as_secs_f64() * 1000.0
    );
}

async fn verify_latencies(channel: &Channel, admin: &str, target: &str) -> Vec<u32> {
    let now = Instant::now();
    let window = Window {
        measure_from: now + Duration::from_millis(500),
        end: now + Duration::from_millis(500) + PHASE,
    };
    let tasks = (0..VERIFY_CONCURRENCY).map(|_| {
        let client = proto::session_service_client::SessionServiceClient::new(channel.clone());
        let bearer: tonic::metadata::MetadataValue<_> =
            format!("Bearer {admin}").parse().expect("header");
        let target = target.to_owned();
        tokio::spawn(drive(window, move |_| {
            let mut request = Request::new(proto::VerifySessionRequest {
                target_ust: target.clone(),
                current_app: "bench".into(),
                remote_addr: "10.0.3.1".into(),
            });
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            let mut client = client.clone();
            async move {
                let response = client.verify_session(request).await;
                let valid = response.map_err(|s| s.to_string())?.into_inner().valid;
                if valid {
                    Ok(())
                } else {
                    Err("not valid".into())
                }
            }
        }))
    });
    let mut latencies = Vec::new();
    for tally in futures::future::join_all(tasks).await {
        latencies.extend(tally.expect("verify task").latencies_us);
    }
    latencies.sort_unstable();
    latencies
}

async fn storm(channel: &Channel, admin: &str) {
    let target = login(channel, "storm", STORM_PASSWORD, "10.0.4.1")
        .await
        .expect("target session");
    let alone = verify_latencies(channel, admin, &target).await;
    let stop = Instant::now() + PHASE + Duration::from_secs(1);
    let stormers: Vec<_> = (0..STORM_CONCURRENCY)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let mut logins = 0u64;
                while Instant::now() < stop {
                    let addr = format!("10.2.0.{i}");
                    if login(&channel, "storm", STORM_PASSWORD, &addr)
                        .await
                        .is_ok()
                    {
                        logins += 1;
                    }
                }
                logins
            })
        })
        .collect();
    let stormed = verify_latencies(channel, admin, &target).await;
    let mut logins = 0;
    for stormer in stormers {
        logins += stormer.await.expect("storm task");
    }
    let (p99_alone, p99_storm) = (percentile_ms(&alone, 99), percentile_ms(&stormed, 99));
    println!(
        "login storm: VerifySession ×{VERIFY_CONCURRENCY} alone p50 {:.2} ms p99 {p99_alone:.2} ms \
         ({} calls); beside {STORM_CONCURRENCY} logging-in tasks ({logins} logins) p50 {:.2} ms \
         p99 {p99_storm:.2} ms ({} calls); p99 ratio {:.2}",
        percentile_ms(&alone, 50),
        alone.len(),
        percentile_ms(&stormed, 50),
        stormed.len(),
        p99_storm / p99_alone.max(0.001)
    );
}

/// The SETTINGS frame the server sends, as a raw HTTP/2 client sees it once a response has
/// come (the server's SETTINGS are its first frame).
async fn settings(address: SocketAddr) {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{address}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut stream) = client.send_request(request, false).expect("send");
    // An empty HealthCheckRequest: one uncompressed frame of zero bytes.
    stream
        .send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("message");
    response.await.expect("response");
    println!(
        "http/2 SETTINGS: max concurrent streams {}",
        client.current_max_send_streams()
    );
}
