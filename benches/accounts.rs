//! Password reset timing for the README: `cargo bench --bench accounts [-- --store memory|postgres]`.
//!
//! Starts the real `ssod` binary (release profile) once per store, mailing to an SMTP sink in
//! this process, and sends `RequestPasswordReset` one at a time, alternating a known username
//! (a user with an address, who gets a token by mail) and an unknown one. Prints the median
//! and the 90th percentile of each, and the difference of the medians: what a client timing
//! the answers could learn about which usernames exist. Each kind cycles through 50 names, so
//! both mostly replace an earlier request's token (the first request for a name inserts one,
//! known or not).
//!
//! All traffic goes to 127.0.0.1; every loop is bounded in count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "../tests/integration/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::time::Instant;

use ssod::proto::{self, user_service_client::UserServiceClient};
use support::{ADMIN_PASSWORD, Server, database_url, percentile_ms};
use tonic::{Request, transport::Channel};

const ADMIN: &str = "bench-admin";
const USERS: usize = 50;
const WARM_UP: usize = 200;
const REQUESTS: usize = 2000;

fn main() {
    let stores = support::stores_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        support::print_machine("accounts");
        println!(
            "RequestPasswordReset, one call at a time, {REQUESTS} per kind alternating \
             (after {WARM_UP} to warm up); {USERS} known and {USERS} unknown names"
        );
        for store in stores {
            let url = match store {
                "postgres" => Some(database_url().await),
                _ => None,
            };
            run(store, url.as_deref()).await;
        }
    });
}

async fn run(store: &str, database_url: Option<&str>) {
    let sink = smtp::SmtpSink::start().await;
    let smtp_url = sink.url();
    let server = Server::start(
        database_url,
        ADMIN,
        &[
            ("SSOD_SMTP_URL", smtp_url.as_str()),
            ("SSOD_MAIL_FROM", "bench@example.test"),
            ("SSOD_MAIL_QUEUE", "100000"),
        ],
    )
    .await;
    println!("\n== {store}");
    let channel = server.channel().await.expect("channel");
    let admin = admin_login(&channel).await;
    for n in 0..USERS {
        create_user(&channel, &admin, &format!("known-{n}")).await;
    }
    let mut known = Vec::with_capacity(REQUESTS);
    let mut unknown = Vec::with_capacity(REQUESTS);
    for n in 0..WARM_UP + REQUESTS {
        let known_us = request(&channel, &format!("known-{}", n % USERS)).await;
        let unknown_us = request(&channel, &format!("unknown-{}", n % USERS)).await;
        if n >= WARM_UP {
            known.push(known_us);
            unknown.push(unknown_us);
        }
    }
    known.sort_unstable();
    unknown.sort_unstable();
    let (known_p50, unknown_p50) = (percentile_ms(&known, 50), percentile_ms(&unknown, 50));
    println!(
        "known:   p50 {known_p50:.3} ms  p90 {:.3} ms",
        percentile_ms(&known, 90)
    );
    println!(
        "unknown: p50 {unknown_p50:.3} ms  p90 {:.3} ms",
        percentile_ms(&unknown, 90)
    );
    println!(
        "median difference (known - unknown): {:+.1} µs",
        (known_p50 - unknown_p50) * 1000.0
    );
    println!("server: {}", server.stop());
}

/// One request's latency in microseconds.
async fn request(channel: &Channel, username: &str) -> u32 {
    let started = Instant::now();
    UserServiceClient::new(channel.clone())
        .request_password_reset(proto::RequestPasswordResetRequest {
            username: username.into(),
            current_app: "bench".into(),
            remote_addr: "127.0.0.1".into(),
            user_agent: "ssod-accounts-bench".into(),
        })
        .await
        .expect("a reset request is always OK");
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

async fn admin_login(channel: &Channel) -> String {
    UserServiceClient::new(channel.clone())
        .login(proto::LoginRequest {
            username: ADMIN.into(),
            password: ADMIN_PASSWORD.into(),
            current_app: "bench".into(),
            ..Default::default()
        })
        .await
        .expect("admin login")
        .into_inner()
        .ust
}

async fn create_user(channel: &Channel, admin: &str, username: &str) {
    let mut request = Request::new(proto::CreateUserRequest {
        username: username.into(),
        password: Some("known-password-1".into()),
        email: format!("{username}@example.test"),
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
