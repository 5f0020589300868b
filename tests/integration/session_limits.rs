//! `SSOD_MAX_SESSIONS_PER_USER` over the real server: `end-oldest` and `refuse`, a refusal
//! that is not a failed login, rotation at the limit, and twenty concurrent logins with a
//! limit of three on both stores and through two servers on one PostgreSQL database. The
//! concurrent tests print the most sessions a watcher saw while the logins ran.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ssod::{
    config::{Config, LimitPolicy},
    domain::UserId,
    proto,
};
use tokio::task::JoinSet;
use tonic::Code;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

const PASSWORD: &str = "user-password-1";

fn limit_sessions(config: &mut Config, max: usize, policy: LimitPolicy) {
    config.sessions.max_sessions_per_user = max;
    config.sessions.session_limit_policy = policy;
}

async fn assert_ended(server: &TestServer, ust: &str) {
    let status = server.current_user(ust).await.expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

async fn the_oldest_session_ends_at_the_limit(backend: Backend) {
    // The default policy is end-oldest.
    let server = TestServer::start_with(backend, |config| {
        config.sessions.max_sessions_per_user = 2;
    })
    .await;
    let (_, first) = server.user_session("olga").await;
    server.advance(Duration::from_secs(1));
    let second = server.login("olga", PASSWORD).await.ust;
    server.advance(Duration::from_secs(1));
    let third = server.login("olga", PASSWORD).await.ust;
    assert_ended(&server, &first).await;
    for live in [&second, &third] {
        server.current_user(live).await.expect("live");
    }
    let listed = server
        .sessions()
        .list_sessions(authed(&third, proto::ListSessionsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .sessions;
    assert_eq!(listed.len(), 2);
}

/// Under `refuse` a user at the limit gets `RESOURCE_EXHAUSTED` `SESSION_LIMIT_REACHED`,
/// however often: the refusals are not failed logins, so the two-failure lockout (which
/// would answer `TOO_MANY_ATTEMPTS`, revealed here) never starts. Rotating one of its own
/// sessions, or ending one, makes room.
async fn a_user_at_the_limit_is_refused_but_not_locked_out(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        limit_sessions(config, 2, LimitPolicy::Refuse);
        config.lockout.login_max_failures = 2;
        config.passwords.reveal_login_failures = true;
    })
    .await;
    let (_, first) = server.user_session("pia").await;
    let second = server.login("pia", PASSWORD).await.ust;
    for _ in 0..4 {
        let status = server
            .try_login("pia", PASSWORD, None)
            .await
            .expect_err("at the limit");
        assert_error(&status, Code::ResourceExhausted, "SESSION_LIMIT_REACHED");
    }
    let rotated = server
        .try_login("pia", PASSWORD, Some(&first))
        .await
        .expect("a rotation takes the place of the session it ends")
        .ust;
    assert_ended(&server, &first).await;
    server
        .sessions()
        .revoke_other_sessions(authed(&rotated, proto::RevokeOtherSessionsRequest {}))
        .await
        .expect("revoke");
    assert_ended(&server, &second).await;
    server.login("pia", PASSWORD).await;
}

/// What one race of logins did: how many were admitted and refused, the most live sessions
/// the watcher saw in its `samples` counts while they ran, and how many were left.
struct Race {
    admitted: usize,
    refused: usize,
    most_seen: usize,
    samples: usize,
    left: usize,
}

/// Sends `logins` logins of `username` at once, spread over `servers`, while a watcher counts
/// the user's live sessions in the store as often as it can.
async fn race_logins(
    servers: &Arc<Vec<TestServer>>,
    user: UserId,
    username: &str,
    logins: usize,
) -> Race {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (servers, done) = (Arc::clone(servers), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut most_seen, mut samples) = (0, 0);
            loop {
                let finished = done.load(Ordering::SeqCst);
                let live = servers[0]
                    .store
                    .list_sessions(user, None, 1000, servers[0].clock_now())
                    .await
                    .expect("listed")
                    .len();
                most_seen = most_seen.max(live);
                samples += 1;
                if finished {
                    return (most_seen, samples, live);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut tasks = JoinSet::new();
    for index in 0..logins {
        let (servers, username) = (Arc::clone(servers), username.to_owned());
        tasks.spawn(async move {
            servers[index % servers.len()]
                .try_login(&username, PASSWORD, None)
                .await
        });
    }
    let (mut admitted, mut refused) = (0, 0);
    for outcome in tasks.join_all().await {
        match outcome {
            Ok(_) => admitted += 1,
            Err(status) => {
                assert_error(&status, Code::ResourceExhausted, "SESSION_LIMIT_REACHED");
                refused += 1;
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    let (most_seen, samples, left) = watcher.await.expect("watcher");
    Race {
        admitted,
        refused,
        most_seen,
        samples,
        left,
    }
}

const LIMIT: usize = 3;
const LOGINS: usize = 20;

/// Twenty logins at once under each policy, on `servers` (one, or several sharing a
/// database): never more than three sessions, seen at any moment or left at the end.
async fn race_under_both_policies(backend: Backend, servers: usize) {
    for policy in [LimitPolicy::EndOldest, LimitPolicy::Refuse] {
        let configure = |config: &mut Config| {
            limit_sessions(config, LIMIT, policy);
            // Twenty claims of one username at once: no lockout may refuse them.
            config.lockout.login_max_failures = 1000;
            config.lockout.address_max_failures = 1000;
        };
        let first = TestServer::start_with(backend, configure).await;
        let mut all = vec![first];
        for _ in 1..servers {
            let config = all[0].config.clone();
            let store = ssod::open_store(&config).await.expect("store opens");
            all.push(TestServer::start_on(config, store).await);
        }
        let servers = Arc::new(all);
        let admin = servers[0].admin().await;
        let user = servers[0].create_user(&admin, "racer", PASSWORD).await;
        let user_id = UserId(user.user_id.parse().expect("a uuid"));
        let race = race_logins(&servers, user_id, "racer", LOGINS).await;
        println!(
            "session limit {LIMIT}, {policy:?}, {backend:?}, {} server(s): {LOGINS} concurrent \
             logins, {} admitted, {} refused; most sessions seen {} (in {} counts), left {}",
            servers.len(),
            race.admitted,
            race.refused,
            race.most_seen,
            race.samples,
            race.left
        );
        assert!(race.most_seen <= LIMIT, "seen {}", race.most_seen);
        assert_eq!(race.left, LIMIT);
        match policy {
            LimitPolicy::EndOldest => assert_eq!((race.admitted, race.refused), (LOGINS, 0)),
            LimitPolicy::Refuse => {
                assert_eq!((race.admitted, race.refused), (LIMIT, LOGINS - LIMIT))
            }
        }
    }
}

async fn concurrent_logins_never_pass_the_limit(backend: Backend) {
    race_under_both_policies(backend, 1).await;
}

both!(
    the_oldest_session_ends_at_the_limit,
    a_user_at_the_limit_is_refused_but_not_locked_out,
    concurrent_logins_never_pass_the_limit,
);

/// Two servers (replicas) on one database: the limit is the database's, not a process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_never_pass_the_limit() {
    race_under_both_policies(Backend::Postgres, 2).await;
}
