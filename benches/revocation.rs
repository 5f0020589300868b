//! Cross-replica revocation delay for the README:
//! `cargo bench --bench revocation [-- --trials N]`.
//!
//! Starts two `ssod` processes (release profile, default settings: the UST cache on) on one
//! PostgreSQL database: a throwaway cluster, or `SSOD_BENCH_DATABASE_URL`. Each trial opens a
//! session through the first, reads it twice through the second (so the second's cache holds
//! it), revokes it through the first (logout, deletion by a super-user, revocation of the
//! user's sessions, or a lock, in turn), and then asks the second back to back until it
//! refuses the UST. The delay runs from the first's answer to the revocation to the second's
//! first refusal: the commit's `NOTIFY`, the second's listener and invalidation, and the
//! last call. Prints its distribution (min/p50/p90/p99/max, ms) per way and overall, and the
//! second's cache hits and misses.
//!
//! All traffic goes to 127.0.0.1; every loop is bounded in count or time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use ssod::proto::{
    self, delete_user_sessions_request::Selector, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use support::{
    ADMIN_PASSWORD, Server, authed, database_url, free_address, load_average, login_request,
    metric, percentile_ms, scrape,
};
use tonic::transport::Channel;

/// The `current_app` of the bench's calls.
const APP: &str = "bench";
const ADMIN: &str = "bench-admin";
const USER: &str = "bench-revoked";
const PASSWORD: &str = "revoked-password-1";
const DEFAULT_TRIALS: usize = 200;
/// A bound for a hang: a refusal that has not come by then fails the run.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);
const WAYS: [&str; 4] = ["logout", "delete session", "revoke user's", "lock user"];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let trials = match args.as_slice() {
        [flag, count] if flag == "--trials" => count.parse().expect("--trials N"),
        _ => DEFAULT_TRIALS,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        support::print_machine("revocation");
        let url = database_url().await;
        run(&url, trials).await;
    });
}

/// A session of the bench user opened through `one`, read twice through `other`.
async fn cached_session(one: &Channel, other: &Channel) -> proto::LoginResponse {
    let opened = UserServiceClient::new(one.clone())
        .login(login_request(USER, PASSWORD, APP))
        .await
        .expect("login")
        .into_inner();
    for _ in 0..2 {
        UserServiceClient::new(other.clone())
            .get_current_user(authed(&opened.ust, proto::GetCurrentUserRequest {}))
            .await
            .expect("the other process knows the session");
    }
    opened
}

async fn run(url: &str, trials: usize) {
    let first = Server::start(Some(url), ADMIN, &[]).await;
    let metrics = free_address();
    let metrics_listen = metrics.to_string();
    let second = Server::start(
        Some(url),
        ADMIN,
        &[("SSOD_METRICS_LISTEN", metrics_listen.as_str())],
    )
    .await;
    let one = first.channel().await.expect("first channel");
    let other = second.channel().await.expect("second channel");
    println!(
        "two ssod processes (pids {} and {}) on one database, SSOD_LOG=warn, cache defaults \
         (SSOD_AUTH_CACHE_TTL=10s, SSOD_AUTH_CACHE_CAPACITY=100000)",
        first.pid(),
        second.pid()
    );

    let admin = UserServiceClient::new(one.clone())
        .login(login_request(ADMIN, ADMIN_PASSWORD, APP))
        .await
        .expect("admin login")
        .into_inner()
        .ust;
    let user = UserServiceClient::new(one.clone())
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: USER.into(),
                password: Some(PASSWORD.into()),
                ..Default::default()
            },
        ))
        .await
        .expect("user")
        .into_inner()
        .user
        .expect("user");

    // The second's cache serves once its listener is up: wait for its first hit.
    let deadline = Instant::now() + REFUSED_WITHIN;
    while metric(&scrape(metrics).await, "ssod_auth_cache_hits_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "the second process never hit its cache"
        );
        cached_session(&one, &other).await;
    }
    let before = scrape(metrics).await;
    println!("load average at the start: {}", load_average());

    let mut delays_us: Vec<Vec<u32>> = vec![Vec::new(); WAYS.len()];
    let mut polls = 0u64;
    for trial in 0..trials {
        let opened = cached_session(&one, &other).await;
        let way = trial % WAYS.len();
        let mut sessions = SessionServiceClient::new(one.clone());
        let mut users = UserServiceClient::new(one.clone());
        match way {
            0 => drop(
                users
                    .logout(authed(&opened.ust, proto::LogoutRequest {}))
                    .await
                    .expect("logout"),
            ),
            1 => drop(
                sessions
                    .delete_session(authed(
                        &admin,
                        proto::DeleteSessionRequest {
                            session_id: opened.session.expect("session").session_id,
                        },
                    ))
                    .await
                    .expect("delete"),
            ),
            2 => drop(
                sessions
                    .delete_user_sessions(authed(
                        &admin,
                        proto::DeleteUserSessionsRequest {
                            selector: Some(Selector::UserId(user.user_id.clone())),
                        },
                    ))
                    .await
                    .expect("revoke"),
            ),
            _ => drop(
                users
                    .lock_user(authed(
                        &admin,
                        proto::LockUserRequest {
                            user_id: user.user_id.clone(),
                        },
                    ))
                    .await
                    .expect("lock"),
            ),
        }
        let revoked = Instant::now();
        let mut asking = UserServiceClient::new(other.clone());
        loop {
            polls += 1;
            let answer = asking
                .get_current_user(authed(&opened.ust, proto::GetCurrentUserRequest {}))
                .await;
            match answer {
                Err(status) if status.code() == tonic::Code::Unauthenticated => break,
                Err(status) => panic!("trial {trial}: {status:?}"),
                Ok(_) => assert!(
                    revoked.elapsed() < REFUSED_WITHIN,
                    "trial {trial}: still accepted after {REFUSED_WITHIN:?}"
                ),
            }
        }
        let delay = u32::try_from(revoked.elapsed().as_micros()).unwrap_or(u32::MAX);
        delays_us[way].push(delay);
        if way == 3 {
            users
                .unlock_user(authed(
                    &admin,
                    proto::UnlockUserRequest {
                        user_id: user.user_id.clone(),
                    },
                ))
                .await
                .expect("unlock");
        }
    }
    let after = scrape(metrics).await;
    println!(
        "load average at the end (other work on the machine counts): {}",
        load_average()
    );

    println!(
        "{trials} trials: a session opened through the first, read twice through the second, \
         revoked through the first; delay from the revocation's answer to the second's \
         first refusal (asked back to back)"
    );
    println!(
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "revoked by", "trials", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut all = Vec::new();
    for (way, delays) in WAYS.iter().zip(&mut delays_us) {
        delays.sort_unstable();
        print_row(way, delays);
        all.extend_from_slice(delays);
    }
    all.sort_unstable();
    print_row("all", &all);
    let hits = metric(&after, "ssod_auth_cache_hits_total")
        - metric(&before, "ssod_auth_cache_hits_total");
    let misses = metric(&after, "ssod_auth_cache_misses_total")
        - metric(&before, "ssod_auth_cache_misses_total");
    println!(
        "second process during the trials: {hits} cache hits, {misses} misses, {polls} \
         calls after the revocations (the refusing ones included)"
    );
    println!("first: {}", first.stop());
    println!("second: {}", second.stop());
}

fn print_row(label: &str, sorted_us: &[u32]) {
    if sorted_us.is_empty() {
        return;
    }
    println!(
        "{:<16} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        label,
        sorted_us.len(),
        f64::from(sorted_us[0]) / 1000.0,
        percentile_ms(sorted_us, 50),
        percentile_ms(sorted_us, 90),
        percentile_ms(sorted_us, 99),
        f64::from(sorted_us[sorted_us.len() - 1]) / 1000.0,
    );
}
