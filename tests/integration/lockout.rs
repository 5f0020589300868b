//! Brute-force lockout through the real server, on both stores: per username and per
//! address, claims before hashing, doubling lockouts, resets, and what the answers reveal.

use std::time::Duration;

use ssod::{config::Config, proto};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

const PASSWORD: &str = "user-password-1";
const WRONG: &str = "wrong-password-1";
const ADDRESS: &str = "198.51.100.7";

/// A server with lockouts of 60 s doubling up to 150 s, and a user `victim` whose password
/// is [`PASSWORD`]; returns the super-user's UST and the victim's id.
async fn start(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
) -> (TestServer, String, String) {
    let server = TestServer::start_with(backend, |config| {
        config.lockout.login_lockout = Duration::from_secs(60);
        config.lockout.login_max_lockout = Duration::from_secs(150);
        configure(config);
    })
    .await;
    let admin = server.admin().await;
    let victim = server.create_user(&admin, "victim", PASSWORD).await;
    (server, admin, victim.user_id)
}

/// A login from `address`.
async fn attempt(
    server: &TestServer,
    username: &str,
    password: &str,
    address: &str,
) -> Result<proto::LoginResponse, Status> {
    let request = proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: "tests".into(),
        remote_addr: address.into(),
        user_agent: "lockout".into(),
        ..Default::default()
    };
    server.users().login(request).await.map(|r| r.into_inner())
}

/// `count` wrong passwords for `username`, each answered as invalid credentials.
async fn fail(server: &TestServer, username: &str, count: usize) {
    for _ in 0..count {
        let status = attempt(server, username, WRONG, ADDRESS)
            .await
            .expect_err("wrong password");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
}

/// The right password is refused exactly like a wrong one, and costs no hash.
async fn assert_locked_out(server: &TestServer, username: &str) {
    let hashes = server.sso.password_hasher().completed();
    let status = attempt(server, username, PASSWORD, ADDRESS)
        .await
        .expect_err("locked out");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(
        server.sso.password_hasher().completed(),
        hashes,
        "a refused attempt hashed"
    );
}

async fn assert_logs_in(server: &TestServer, username: &str) {
    attempt(server, username, PASSWORD, ADDRESS)
        .await
        .unwrap_or_else(|status| panic!("{username} cannot log in: {status:?}"));
}

/// The `RetryInfo` delay of a status.
fn retry_delay(status: &Status) -> Duration {
    status
        .get_details_retry_info()
        .and_then(|retry| retry.retry_delay)
        .expect("RetryInfo with a delay")
}

async fn the_right_password_is_refused_while_locked_out(backend: Backend) {
    let (server, _, _) = start(backend, |_| {}).await;
    // One key for every spelling of the name.
    fail(&server, "Victim", 5).await;
    fail(&server, "ＶＩＣＴＩＭ", 5).await;
    assert_locked_out(&server, "victim").await;
    server.advance(Duration::from_secs(59));
    assert_locked_out(&server, "victim").await;
    server.advance(Duration::from_secs(1));
    assert_logs_in(&server, "victim").await;
}

async fn further_lockouts_double_up_to_the_maximum_and_refusals_never_extend(backend: Backend) {
    let (server, _, _) = start(backend, |_| {}).await;
    fail(&server, "victim", 10).await;
    server.advance(Duration::from_secs(60));
    fail(&server, "victim", 10).await;
    // The second lockout lasts 120 s; attempts meanwhile neither count nor extend it.
    for _ in 0..4 {
        server.advance(Duration::from_secs(29));
        assert_locked_out(&server, "victim").await;
        fail_refused(&server, "victim").await;
    }
    server.advance(Duration::from_secs(4));
    fail(&server, "victim", 10).await;
    // The third would be 240 s: capped at 150 s.
    server.advance(Duration::from_secs(149));
    assert_locked_out(&server, "victim").await;
    server.advance(Duration::from_secs(1));
    assert_logs_in(&server, "victim").await;
}

/// A wrong password during a lockout: refused, not counted.
async fn fail_refused(server: &TestServer, username: &str) {
    let hashes = server.sso.password_hasher().completed();
    fail(server, username, 1).await;
    assert_eq!(server.sso.password_hasher().completed(), hashes);
}

async fn a_success_resets_failures_and_lockout_history(backend: Backend) {
    let (server, _, _) = start(backend, |_| {}).await;
    fail(&server, "victim", 10).await;
    server.advance(Duration::from_secs(60));
    fail(&server, "victim", 9).await;
    assert_logs_in(&server, "victim").await;
    fail(&server, "victim", 9).await;
    assert_logs_in(&server, "victim").await;
    // The next lockout is a first one again: 60 s, not 120 s.
    fail(&server, "victim", 10).await;
    server.advance(Duration::from_secs(60));
    assert_logs_in(&server, "victim").await;
}

async fn unlock_user_resets_failures_and_lockout_history(backend: Backend) {
    let (server, admin, victim) = start(backend, |_| {}).await;
    fail(&server, "victim", 10).await;
    assert_locked_out(&server, "victim").await;
    server
        .users()
        .unlock_user(authed(
            &admin,
            proto::UnlockUserRequest {
                user_id: victim.clone(),
            },
        ))
        .await
        .expect("unlock");
    assert_logs_in(&server, "victim").await;
}

async fn an_address_is_limited_across_usernames(backend: Backend) {
    let (server, _, _) = start(backend, |config| {
        config.lockout.address_max_failures = 5;
        config.lockout.login_failure_window = Duration::from_secs(300);
    })
    .await;
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        fail(&server, name, 1).await;
    }
    // The sixth attempt from that address is refused, even the victim's right password, and
    // the address stays locked out for 60 s; other addresses are not.
    assert_locked_out(&server, "victim").await;
    attempt(&server, "victim", PASSWORD, "203.0.113.1")
        .await
        .expect("another address");
    server.advance(Duration::from_secs(59));
    assert_locked_out(&server, "victim").await;
    server.advance(Duration::from_secs(1));
    assert_logs_in(&server, "victim").await;
}

async fn revealed_lockouts_say_too_many_attempts_and_when_to_retry(backend: Backend) {
    let (server, _, _) = start(backend, |config| {
        config.passwords.reveal_login_failures = true;
    })
    .await;
    // An unknown username is throttled exactly like a real one.
    for username in ["victim", "nobody"] {
        fail(&server, username, 10).await;
        let status = attempt(&server, username, PASSWORD, ADDRESS)
            .await
            .expect_err("locked out");
        assert_error(&status, Code::Unauthenticated, "TOO_MANY_ATTEMPTS");
        assert_eq!(retry_delay(&status), Duration::from_secs(60));
    }
    server.advance(Duration::from_secs(21));
    let status = attempt(&server, "victim", PASSWORD, ADDRESS)
        .await
        .expect_err("still locked out");
    assert_error(&status, Code::Unauthenticated, "TOO_MANY_ATTEMPTS");
    assert_eq!(retry_delay(&status), Duration::from_secs(39));
}

async fn parallel_wrong_guesses_hash_no_more_than_the_limit(backend: Backend) {
    let (server, _, _) = start(backend, |config| {
        config.passwords.max_pending_hashes = 64;
    })
    .await;
    let hashes = server.sso.password_hasher().completed();
    let guesses = (0..60).map(|_| attempt(&server, "victim", WRONG, ADDRESS));
    for outcome in futures::future::join_all(guesses).await {
        let status = outcome.expect_err("wrong password");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let hashed = server.sso.password_hasher().completed() - hashes;
    assert!(hashed <= 10, "{hashed} of 60 parallel guesses were hashed");
    assert_eq!(hashed, 10, "every admitted claim is checked");
    assert_locked_out(&server, "victim").await;
}

async fn refusals_for_other_reasons_are_not_failures(backend: Backend) {
    let (server, admin, victim) = start(backend, |config| {
        config.passwords.max_concurrent_hashes = 1;
        config.passwords.max_pending_hashes = 0;
        config.lockout.login_max_failures = 3;
    })
    .await;
    // Every hashing place taken: logins are refused as overloaded, and claim nothing.
    let place = server
        .sso
        .password_hasher()
        .reserve()
        .expect("the one place");
    for _ in 0..5 {
        let status = attempt(&server, "victim", WRONG, ADDRESS)
            .await
            .expect_err("overloaded");
        assert_error(&status, Code::ResourceExhausted, "OVERLOADED");
    }
    drop(place);
    // A right password for a user refused for another reason is no failure either.
    server
        .users()
        .reject_user(authed(
            &admin,
            proto::RejectUserRequest {
                user_id: victim.clone(),
            },
        ))
        .await
        .expect("reject");
    for _ in 0..5 {
        let status = attempt(&server, "victim", PASSWORD, ADDRESS)
            .await
            .expect_err("rejected");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    server
        .users()
        .approve_user(authed(
            &admin,
            proto::ApproveUserRequest { user_id: victim },
        ))
        .await
        .expect("approve");
    fail(&server, "victim", 2).await;
    assert_logs_in(&server, "victim").await;
}

/// The failed-login counters the sweep deleted.
async fn swept_login_failures(server: &TestServer) -> u64 {
    server.sso.sweep().await.expect("swept").login_failures
}

async fn failures_are_forgotten_after_the_reset_time_and_swept(backend: Backend) {
    let reset = Duration::from_secs(30 * 60);
    let (server, admin, _) = start(backend, |config| {
        config.lockout.login_failure_reset = reset;
    })
    .await;
    server.create_user(&admin, "second", PASSWORD).await;
    // Sprayed names that do not exist hold a counter each, like real ones.
    for name in ["ghost1", "ghost2", "ghost3"] {
        fail(&server, name, 1).await;
    }
    fail(&server, "victim", 9).await;
    fail(&server, "second", 10).await;
    assert_locked_out(&server, "second").await;
    assert_eq!(swept_login_failures(&server).await, 0);
    // The addresses' windows (15 m) have passed: theirs and the harness's admin login's.
    server.advance(reset - Duration::from_secs(1));
    assert_eq!(swept_login_failures(&server).await, 2);
    // The usernames' last failures are now the reset time old: all five go.
    server.advance(Duration::from_secs(1));
    assert_eq!(swept_login_failures(&server).await, 5);
    assert_eq!(swept_login_failures(&server).await, 0);
    // From zero: nine more failures do not lock the victim out…
    fail(&server, "victim", 9).await;
    assert_logs_in(&server, "victim").await;
    // …and the next lockout is a first one again: 60 s, not 120 s.
    fail(&server, "second", 10).await;
    assert_locked_out(&server, "second").await;
    server.advance(Duration::from_secs(60));
    assert_logs_in(&server, "second").await;
}

/// Without the sweep, a claim after the reset time starts from zero just the same.
async fn a_claim_after_the_reset_time_starts_from_zero_unswept(backend: Backend) {
    let reset = Duration::from_secs(30 * 60);
    let (server, _, _) = start(backend, |config| {
        config.lockout.login_failure_reset = reset;
    })
    .await;
    fail(&server, "victim", 9).await;
    server.advance(reset);
    fail(&server, "victim", 9).await;
    assert_logs_in(&server, "victim").await;
}

both!(
    the_right_password_is_refused_while_locked_out,
    further_lockouts_double_up_to_the_maximum_and_refusals_never_extend,
    a_success_resets_failures_and_lockout_history,
    unlock_user_resets_failures_and_lockout_history,
    an_address_is_limited_across_usernames,
    revealed_lockouts_say_too_many_attempts_and_when_to_retry,
    parallel_wrong_guesses_hash_no_more_than_the_limit,
    refusals_for_other_reasons_are_not_failures,
    failures_are_forgotten_after_the_reset_time_and_swept,
    a_claim_after_the_reset_time_starts_from_zero_unswept,
);

/// The counters live in the database: a restarted server still refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_survives_a_restart_on_postgres() {
    let (server, _, _) = start(Backend::Postgres, |_| {}).await;
    fail(&server, "victim", 10).await;
    let (config, _) = server.stop().await;
    // A brand-new store (pool) on the same database.
    let store = ssod::open_store(&config).await.expect("reopen");
    let server = TestServer::start_on(config, store).await;
    assert_locked_out(&server, "victim").await;
    server.advance(Duration::from_secs(60));
    assert_logs_in(&server, "victim").await;
}

/// The sweep of forgotten failure counters reads a few index pages however many counters
/// there are, also under the generic plan PostgreSQL gives a prepared statement once a few
/// full batches have cost more than its estimate (where an unordered `LIMIT` and an `IN` had
/// been sequential scans of the whole table, even with nothing to forget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_of_failure_counters_touch_a_few_pages_of_large_tables() {
    use ssod::store::postgres::sql::throttle::{PURGE_ADDRESSES, PURGE_USERS};
    const COUNTERS: i64 = 100_000;
    const FORGOTTEN: i64 = 10;
    const MOST_PAGES: u64 = 100;
    let server = TestServer::start(Backend::Postgres).await;
    let url = server.config.database.url.clone().expect("url");
    let client = crate::pg::connect(&url).await;
    // The first FORGOTTEN of each are a day old, the rest a minute.
    client
        .batch_execute(&format!(
            "INSERT INTO login_failures_by_user \
               (username_key, failures, lockouts, locked_until, last_failure_at) \
             SELECT 'counted-' || i, 1, 0, NULL, now() - CASE WHEN i <= {FORGOTTEN} \
               THEN interval '1 day' ELSE interval '1 minute' END \
             FROM generate_series(1, {COUNTERS}) AS i; \
             INSERT INTO login_failures_by_address \
               (remote_addr, failures, window_start, locked_until) \
             SELECT 'address-' || i, 1, now() - CASE WHEN i <= {FORGOTTEN} \
               THEN interval '1 day' ELSE interval '1 minute' END, NULL \
             FROM generate_series(1, {COUNTERS}) AS i; \
             ANALYZE login_failures_by_user, login_failures_by_address; \
             PREPARE users AS {PURGE_USERS}; PREPARE addresses AS {PURGE_ADDRESSES}; \
             SET plan_cache_mode = force_generic_plan"
        ))
        .await
        .expect("many counters");
    for table in ["login_failures_by_user", "login_failures_by_address"] {
        let row = client
            .query_one(&format!("SELECT pg_relation_size('{table}') / 8192"), &[])
            .await
            .expect("size");
        let table_pages: i64 = row.get(0);
        assert!(table_pages > 500, "{table}: {table_pages} pages");
    }
    // Each twice: the first forgets FORGOTTEN counters, the second (the usual sweep) none.
    for sweep in [
        "users(now(), 1000, 3600)",
        "users(now(), 1000, 3600)",
        "addresses(now(), 1000, 900)",
        "addresses(now(), 1000, 900)",
    ] {
        let (pages, plan) = crate::pg::pages_touched(&client, &format!("EXECUTE {sweep}")).await;
        assert!(pages <= MOST_PAGES, "{sweep} touched {pages} pages: {plan}");
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM login_failures_by_user), \
             (SELECT count(*) FROM login_failures_by_address)",
            &[],
        )
        .await
        .expect("counted");
    let kept: (i64, i64) = (row.get(0), row.get(1));
    let expected = COUNTERS - FORGOTTEN;
    assert_eq!(
        kept,
        (expected, expected),
        "exactly the forgotten ones swept"
    );
}
