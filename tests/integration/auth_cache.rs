//! The UST cache on PostgreSQL (`store::cache`): what migration 7's triggers announce, that
//! every way of ending a session or changing a user is refused at once by the process that
//! made it and, through `NOTIFY`, by another process, and that the cache fails closed while
//! its listener is down.

use ssod::domain::SessionEndReason;
use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures::{StreamExt, stream};
use ssod::{
    Background, crypto,
    domain::{
        DeleteSession, DeleteSessions, DeleteUser, EndSessions, LoginRecord, OpenSession,
        RenewSession, SessionSelector, UpdateUser, UserPatch,
    },
    lifecycle::Lifecycle,
    proto::{self, AttributeScope, delete_user_sessions_request::Selector},
    store::{
        Store,
        cache::CHANNEL,
        postgres::{
            PgSettings, PostgresStore,
            listener::{APPLICATION_NAME, Listener, Listening},
        },
    },
};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tonic::Code;

use crate::{
    harness::{ADMIN, ADMIN_PASSWORD, TestServer, assert_error, authed, test_config},
    store_conformance::{at, create_user, hash_of, new_session, open, plain_open, purge, write},
};

const PASSWORD: &str = "user-password-1";
/// What a probe writes into a session row behind the cache's back.
const CHANGED_BEHIND: &str = "changed behind the cache";

/// A plain connection to look at and change the database directly.
async fn sql(url: &str) -> Client {
    crate::pg::connect(url).await
}

/// Looks at sessions as a super-user does (`VerifySession`, which reads through the cache
/// and never renews), and tells whether an answer came from memory.
struct Probe {
    admin: String,
    sql: Client,
}

impl Probe {
    async fn new(server: &TestServer) -> Self {
        let url = server.config.database.url.as_deref().expect("postgres");
        Self {
            admin: server.admin().await,
            sql: sql(url).await,
        }
    }

    /// The session `ust` names, if it authenticates.
    async fn verify(&self, server: &TestServer, ust: &str) -> Option<proto::Session> {
        let answer = server
            .sessions()
            .verify_session(authed(
                &self.admin,
                proto::VerifySessionRequest {
                    target_ust: ust.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("verify")
            .into_inner();
        answer
            .valid
            .then(|| answer.session.expect("a valid session"))
    }

    async fn set_user_agent(&self, ust: &str, user_agent: &str) {
        let hash = crypto::hash_ust(ust).0.to_vec();
        self.sql
            .execute(
                "UPDATE sessions SET user_agent = $2 WHERE token_hash = $1",
                &[&hash, &user_agent],
            )
            .await
            .expect("update");
    }

    /// Waits until `ust` is answered from memory: its row's user agent is changed behind the
    /// cache (no trigger follows an UPDATE of a session), and the answer still shows the old
    /// one. Until the listener is up the cache is bypassed, so this may take a few rounds.
    async fn cached(&self, server: &TestServer, ust: &str) {
        let original = self.verify(server, ust).await.expect("live").user_agent;
        for _ in 0..600 {
            self.set_user_agent(ust, &original).await;
            self.verify(server, ust).await.expect("live");
            self.set_user_agent(ust, CHANGED_BEHIND).await;
            let seen = self.verify(server, ust).await.expect("live").user_agent;
            if seen == original {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never answered from memory: is the cache serving?");
    }

    async fn assert_refused(&self, server: &TestServer, ust: &str, what: &str) {
        assert!(
            self.verify(server, ust).await.is_none(),
            "{what}: still authenticates"
        );
    }
}

async fn current_user_of(server: &TestServer, ust: &str) -> proto::User {
    server
        .current_user(ust)
        .await
        .expect("current user")
        .into_inner()
        .user
        .expect("user")
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    })
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    time.into()
}

/// A PostgreSQL server whose cache hears nothing from the database: its listener is up (so
/// the cache serves) but on no channel, so only the process's own invalidations drop entries.
async fn deaf_server(configure: impl FnOnce(&mut ssod::config::Config)) -> TestServer {
    let url = crate::pg::fresh_database_url().await;
    let mut config = test_config();
    config.database.url = Some(url.clone());
    configure(&mut config);
    let store = ssod::open_store(&config).await.expect("store opens");
    let lifecycle = Lifecycle::new();
    let listener = Listener::start_on(&url, &[], &lifecycle).expect("listener");
    TestServer::start_in(
        config,
        store,
        Background {
            lifecycle,
            listener: Some(listener),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_and_change_is_seen_at_once_by_the_process_that_made_it() {
    let server = deaf_server(|config| {
        config.sessions.persistent_on_logout = vec!["cart".into()];
    })
    .await;
    let probe = Probe::new(&server).await;
    let admin = probe.admin.clone();
    let sessions = || server.sessions();
    let users = || server.users();

    // Logout.
    let (_, ust) = server.user_session("logout").await;
    probe.cached(&server, &ust).await;
    users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout");
    probe.assert_refused(&server, &ust, "logout").await;

    // Logout that carries an attribute to a new guest session (the session is replaced).
    let ust = server.login("logout", PASSWORD).await.ust;
    server
        .set_attribute(
            &ust,
            AttributeScope::Session as i32,
            "cart",
            serde_json::json!([1]),
        )
        .await
        .expect("cart");
    probe.cached(&server, &ust).await;
    let guest = users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout")
        .into_inner()
        .guest_ust;
    assert!(!guest.is_empty(), "the cart is carried");
    probe
        .assert_refused(&server, &ust, "logout with carried attributes")
        .await;

    // Rotation: a guest's UST in the login metadata.
    let guest = server.guest().await.ust;
    probe.cached(&server, &guest).await;
    server
        .try_login("logout", PASSWORD, Some(&guest))
        .await
        .expect("login");
    probe.assert_refused(&server, &guest, "rotated guest").await;

    // DeleteSession: one's own, another of one's user, any by a super-user.
    let own = server.login("logout", PASSWORD).await.ust;
    probe.cached(&server, &own).await;
    sessions()
        .delete_session(authed(&own, proto::DeleteSessionRequest::default()))
        .await
        .expect("delete own");
    probe
        .assert_refused(&server, &own, "own session deleted")
        .await;
    let first = server.login("logout", PASSWORD).await;
    let second = server.login("logout", PASSWORD).await;
    probe.cached(&server, &second.ust).await;
    sessions()
        .delete_session(authed(
            &first.ust,
            proto::DeleteSessionRequest {
                session_id: second.session.expect("session").session_id,
            },
        ))
        .await
        .expect("delete sibling");
    probe
        .assert_refused(&server, &second.ust, "sibling deleted")
        .await;
    probe.cached(&server, &first.ust).await;
    sessions()
        .delete_session(authed(
            &admin,
            proto::DeleteSessionRequest {
                session_id: first.session.expect("session").session_id,
            },
        ))
        .await
        .expect("delete by a super-user");
    probe
        .assert_refused(&server, &first.ust, "deleted by a super-user")
        .await;

    // Bulk revocation: a user's, the guests'.
    let (user, ust) = server.user_session("bulk").await;
    probe.cached(&server, &ust).await;
    sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::UserId(user.user_id.clone())),
            },
        ))
        .await
        .expect("revoke the user's");
    probe
        .assert_refused(&server, &ust, "user's sessions revoked")
        .await;
    let guest = server.guest().await.ust;
    probe.cached(&server, &guest).await;
    sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::GuestsOnly(true)),
            },
        ))
        .await
        .expect("revoke guests");
    probe
        .assert_refused(&server, &guest, "guests revoked")
        .await;

    // Lock, reject, delete.
    for (name, change) in [("locked", 0), ("rejected", 1), ("deleted", 2)] {
        let (user, ust) = server.user_session(name).await;
        probe.cached(&server, &ust).await;
        let user_id = user.user_id.clone();
        match change {
            0 => drop(
                users()
                    .lock_user(authed(&admin, proto::LockUserRequest { user_id }))
                    .await
                    .expect("lock"),
            ),
            1 => drop(
                users()
                    .reject_user(authed(&admin, proto::RejectUserRequest { user_id }))
                    .await
                    .expect("reject"),
            ),
            _ => drop(
                users()
                    .delete_user(authed(&admin, proto::DeleteUserRequest { user_id }))
                    .await
                    .expect("delete"),
            ),
        }
        probe.assert_refused(&server, &ust, name).await;
    }

    // Passwords: a super-user's change ends every session; one's own, every other one;
    // an expiry set in the past ends them all too.
    let (user, ust) = server.user_session("password").await;
    probe.cached(&server, &ust).await;
    users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                user_id: user.user_id.clone(),
                new_password: "second-password-2".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("changed by a super-user");
    probe
        .assert_refused(&server, &ust, "password changed by a super-user")
        .await;
    let keeping = server.login("password", "second-password-2").await.ust;
    let other = server.login("password", "second-password-2").await.ust;
    probe.cached(&server, &other).await;
    users()
        .change_password(authed(
            &keeping,
            proto::ChangePasswordRequest {
                old_password: "second-password-2".into(),
                new_password: "third-password-3".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("own change");
    probe
        .assert_refused(&server, &other, "own password changed")
        .await;
    probe.cached(&server, &keeping).await;
    users()
        .update_user(authed(
            &admin,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id.clone(),
                    password_expiry: Some(timestamp(server.clock_now())),
                    ..Default::default()
                }),
                update_mask: mask(&["password_expiry"]),
            },
        ))
        .await
        .expect("expiry set");
    probe
        .assert_refused(&server, &keeping, "password expired")
        .await;

    // A super-user demoted is no super-user at once.
    let (deputy, deputy_ust) = server.user_session("deputy").await;
    let promote = |is_super_user| proto::UpdateUserRequest {
        user: Some(proto::User {
            user_id: deputy.user_id.clone(),
            is_super_user,
            ..Default::default()
        }),
        update_mask: mask(&["is_super_user"]),
    };
    users()
        .update_user(authed(&admin, promote(true)))
        .await
        .expect("promoted");
    let list = || proto::ListUsersRequest::default();
    users()
        .list_users(authed(&deputy_ust, list()))
        .await
        .expect("a super-user lists users");
    probe.cached(&server, &deputy_ust).await;
    users()
        .update_user(authed(&admin, promote(false)))
        .await
        .expect("demoted");
    let status = users()
        .list_users(authed(&deputy_ust, list()))
        .await
        .expect_err("no longer a super-user");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");

    // A profile change, and a later login's time, show at once.
    probe.cached(&server, &deputy_ust).await;
    users()
        .update_user(authed(
            &deputy_ust,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    email: "deputy@example.test".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["email"]),
            },
        ))
        .await
        .expect("own profile");
    assert_eq!(
        current_user_of(&server, &deputy_ust).await.email,
        "deputy@example.test"
    );
    probe.cached(&server, &deputy_ust).await;
    server.advance(Duration::from_secs(5));
    let later = server.login("deputy", PASSWORD).await;
    assert_eq!(
        current_user_of(&server, &deputy_ust).await.last_login_time,
        later.user.expect("user").last_login_time
    );

    // A renewal shows its new expiry at once.
    probe.cached(&server, &deputy_ust).await;
    let before = probe.verify(&server, &deputy_ust).await.expect("live");
    server.advance(Duration::from_secs(60));
    let renewed = sessions()
        .renew_session(authed(&deputy_ust, proto::RenewSessionRequest {}))
        .await
        .expect("renewed")
        .into_inner()
        .session
        .expect("session");
    assert_ne!(renewed.expiration_time, before.expiration_time);
    let after = probe.verify(&server, &deputy_ust).await.expect("live");
    assert_eq!(after.expiration_time, renewed.expiration_time);

    // Everything, the caller's own session included.
    probe.cached(&server, &deputy_ust).await;
    sessions()
        .delete_user_sessions(authed(
            &admin,
            proto::DeleteUserSessionsRequest {
                selector: Some(Selector::All(true)),
            },
        ))
        .await
        .expect("revoke all");
    let status = server.current_user(&deputy_ust).await.expect_err("revoked");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    let status = server.current_user(&admin).await.expect_err("revoked");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

/// A connection that `LISTEN`s on the cache's channel, and what it receives.
struct Announcements {
    client: tokio_postgres::Client,
    received: mpsc::UnboundedReceiver<String>,
    marks: u32,
}

impl Announcements {
    async fn start(url: &str) -> Self {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
        let (forward, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(notification) = message {
                    let _ = forward.send(notification.payload().to_owned());
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .expect("listen");
        Self {
            client,
            received,
            marks: 0,
        }
    }

    /// Everything announced since the last call. A mark sent now arrives after whatever
    /// committed before it (PostgreSQL delivers in commit order), so this waits for nothing
    /// but the mark.
    async fn announced(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("mark {}", self.marks);
        self.client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &mark])
            .await
            .expect("notify");
        let mut payloads = Vec::new();
        loop {
            let payload = tokio::time::timeout(Duration::from_secs(30), self.received.recv())
                .await
                .expect("the mark within 30 s")
                .expect("connection open");
            if payload == mark {
                return payloads;
            }
            payloads.push(payload);
        }
    }
}

#[tokio::test]
async fn the_triggers_announce_ended_sessions_and_changed_users_but_not_renewals_or_sweeps() {
    let url = crate::pg::fresh_database_url().await;
    let postgres = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    postgres.migrate().await.expect("migrations apply");
    let store: Arc<dyn Store> = Arc::new(postgres);
    let mut listening = Announcements::start(&url).await;

    let user = create_user(&store, "ann").await;
    let (first, _) = open(&store, Some(user.id), 0, 100).await;
    let (second, _) = open(&store, Some(user.id), 0, 100).await;
    let (expiring, _) = open(&store, Some(user.id), 0, 5).await;
    assert_eq!(listening.announced().await, Vec::<String>::new(), "inserts");

    store
        .renew_session(write(
            at(1),
            RenewSession {
                id: first.id,
                expires_at: at(200),
            },
        ))
        .await
        .expect("renewed");
    let swept = store
        .purge_expired(write(at(10), purge(100)))
        .await
        .expect("swept");
    assert_eq!(swept.sessions, 1, "{expiring:?} swept");
    assert_eq!(
        listening.announced().await,
        Vec::<String>::new(),
        "a renewal and the sweep"
    );

    let deleted = store
        .delete_session(write(
            at(11),
            DeleteSession {
                id: first.id,
                reason: SessionEndReason::Revoked,
            },
        ))
        .await
        .expect("deleted");
    assert!(deleted);
    assert_eq!(listening.announced().await, [format!("s:{}", first.id)]);

    // A login's update of its user, and the guest it rotates.
    let (guest, _) = open(&store, None, 0, 100).await;
    let (new, _) = new_session(Some(user.id), 12, 100);
    store
        .open_session(write(
            at(12),
            OpenSession {
                replaces: Some(guest.id),
                login: Some(LoginRecord {
                    verified_hash: hash_of("ann"),
                    new_password: None,
                }),
                ..plain_open(new)
            },
        ))
        .await
        .expect("logged in");
    assert_eq!(
        listening.announced().await,
        [format!("u:{}", user.id), format!("s:{}", guest.id)]
    );

    // A lock that ends the user's sessions: the user, then its sessions.
    store
        .update_user(write(
            at(13),
            UpdateUser {
                id: user.id,
                patch: UserPatch {
                    is_locked: Some(true),
                    ..UserPatch::default()
                },
                end_sessions: EndSessions::All,
            },
        ))
        .await
        .expect("locked");
    let announced = listening.announced().await;
    assert_eq!(announced[0], format!("u:{}", user.id));
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert!(
        announced[1].contains(&second.id.to_string()),
        "{announced:?}"
    );

    // An update that changes nothing announces nothing.
    store
        .update_user(write(
            at(14),
            UpdateUser {
                id: user.id,
                patch: UserPatch::default(),
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    assert_eq!(listening.announced().await, Vec::<String>::new());

    // More ids than a payload holds: everything.
    for _ in 0..200 {
        open(&store, None, 0, 100).await;
    }
    let revoked = store
        .delete_sessions(write(
            at(15),
            DeleteSessions {
                selector: SessionSelector::Guests,
                batch: 1000,
            },
        ))
        .await
        .expect("revoked");
    assert_eq!(revoked, 200);
    assert_eq!(listening.announced().await, ["*"]);

    // A deleted user: the user, and the sessions the cascade takes with it.
    let (last, _) = open(&store, Some(user.id), 20, 100).await;
    store
        .delete_user(write(
            at(21),
            DeleteUser {
                id: user.id,
                batch: 10,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(
        listening.announced().await,
        [format!("s:{}", last.id), format!("u:{}", user.id)]
    );
}

/// What a login ends besides the session it rotates: the oldest past the session limit, the
/// user's others when it sets a new password; and "log out my other devices".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_ended_by_logins_and_by_their_owner_are_refused_at_once() {
    let server = deaf_server(|config| {
        config.sessions.max_sessions_per_user = 2;
    })
    .await;
    let probe = Probe::new(&server).await;
    server.create_user(&probe.admin, "limited", PASSWORD).await;

    let oldest = server.login("limited", PASSWORD).await.ust;
    let newer = server.login("limited", PASSWORD).await.ust;
    probe.cached(&server, &oldest).await;
    server.login("limited", PASSWORD).await;
    probe
        .assert_refused(&server, &oldest, "the oldest, past the limit")
        .await;

    probe.cached(&server, &newer).await;
    server
        .users()
        .login(proto::LoginRequest {
            username: "limited".into(),
            password: PASSWORD.into(),
            new_password: Some("renewed-password-4".into()),
            ..Default::default()
        })
        .await
        .expect("a login with a new password");
    probe
        .assert_refused(&server, &newer, "ended by a new password at login")
        .await;

    let keeping = server.login("limited", "renewed-password-4").await.ust;
    let other = server.login("limited", "renewed-password-4").await.ust;
    probe.cached(&server, &other).await;
    server
        .sessions()
        .revoke_other_sessions(authed(&keeping, proto::RevokeOtherSessionsRequest {}))
        .await
        .expect("revoke the others");
    probe
        .assert_refused(&server, &other, "revoked by its user's other session")
        .await;
    assert!(probe.verify(&server, &keeping).await.is_some());
}

/// `url` with another user and password.
fn with_user(url: &str, user: &str, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{user}:{password}@{host}{path}")
        }
        None => format!("{url} user={user} password={password}"),
    }
}

async fn wait_for(state: &mut tokio::sync::watch::Receiver<Listening>, up: bool) {
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|now| matches!(now, Listening::Up { .. }) == up),
    )
    .await
    .expect("listener state within 30 s")
    .expect("listener alive");
}

/// The listener's connection is killed and kept from coming back (its role may not log in
/// for a while): the cache is flushed and every look-up reads the store, so a revocation
/// whose notification is lost in the gap is refused; once the listener is back the cache
/// serves again, and still refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bypassed_while_its_listener_is_down() {
    let url = crate::pg::fresh_database_url().await;
    let database = sql(&url).await;
    let name: String = database
        .query_one("SELECT current_database()", &[])
        .await
        .expect("name")
        .get(0);
    // Roles are shared by the cluster's databases: one per test database.
    let role = format!("{name}_listener");
    database
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'listener'"))
        .await
        .expect("role");
    let mut config = test_config();
    config.database.url = Some(url.clone());
    let store = ssod::open_store(&config).await.expect("store opens");
    let lifecycle = Lifecycle::new();
    let listener =
        Listener::start(&with_user(&url, &role, "listener"), &lifecycle).expect("listener");
    let mut state = listener.state();
    let server = TestServer::start_in(
        config,
        store,
        Background {
            lifecycle,
            listener: Some(listener),
        },
    )
    .await;
    let probe = Probe::new(&server).await;
    let (_, kept) = server.user_session("kept").await;
    let (_, revoked) = server.user_session("revoked").await;
    probe.cached(&server, &revoked).await;
    probe.cached(&server, &kept).await;

    database
        .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
        .await
        .expect("no more logins");
    let killed: i64 = database
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 1, "one listener");
    wait_for(&mut state, false).await;

    // Flushed: `kept` is read from the store, where `cached` left its user agent changed.
    for _ in 0..600 {
        let seen = probe.verify(&server, &kept).await.expect("live");
        if seen.user_agent == CHANGED_BEHIND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And bypassed, not just flushed: every answer is the store's, none is kept.
    for round in 0..3 {
        let user_agent = format!("round {round}");
        probe.set_user_agent(&kept, &user_agent).await;
        let seen = probe.verify(&server, &kept).await.expect("live");
        assert_eq!(
            seen.user_agent, user_agent,
            "read from the store while down"
        );
    }
    // A revocation on another replica whose notification is lost.
    let hash = crypto::hash_ust(&revoked).0.to_vec();
    let deleted = database
        .execute("DELETE FROM sessions WHERE token_hash = $1", &[&hash])
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    probe
        .assert_refused(&server, &revoked, "revoked while the listener was down")
        .await;

    database
        .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
        .await
        .expect("logins again");
    wait_for(&mut state, true).await;
    probe.cached(&server, &kept).await;
    probe
        .assert_refused(&server, &revoked, "revoked while the listener was down")
        .await;
}

/// Revocations made through one process, refused by another.
const TRIALS: usize = 50;
/// A bound for a hang, not a timing: a refusal normally follows within milliseconds.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

/// The value of a counter or gauge (summed over its label sets) in a Prometheus scrape.
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two `ssod` processes on one database: 50 sessions opened through the first, each read
/// through the second (cached there), revoked through the first in one of four ways, and
/// refused by the second once its notification arrives. Then both listeners are killed: the
/// second says so in a log line and its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_process_is_refused_by_the_other() {
    use crate::process::{Process, connect, free_address, scrape};

    let url = crate::pg::fresh_database_url().await;
    let start = |bootstrap: bool| {
        let grpc = free_address();
        let metrics = free_address();
        let mut envs = vec![
            ("SSOD_LISTEN", grpc.to_string()),
            ("SSOD_METRICS_LISTEN", metrics.to_string()),
            ("SSOD_DATABASE_URL", url.clone()),
        ];
        if bootstrap {
            envs.push(("SSOD_SUPER_USER", ADMIN.into()));
            envs.push(("SSOD_SUPER_USER_PASSWORD", ADMIN_PASSWORD.into()));
        }
        (Process::start(&envs), grpc, metrics)
    };
    let (first, first_address, _) = start(true);
    let (second, second_address, second_metrics) = start(false);
    let one = connect(first_address).await;
    let other = connect(second_address).await;
    let users = |channel: &tonic::transport::Channel| {
        proto::user_service_client::UserServiceClient::new(channel.clone())
    };
    let login = |username: &str, password: &str| proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    };
    let admin = users(&one)
        .login(login(ADMIN, ADMIN_PASSWORD))
        .await
        .expect("admin login")
        .into_inner()
        .ust;
    let user = users(&one)
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "replicated".into(),
                password: Some(PASSWORD.into()),
                ..Default::default()
            },
        ))
        .await
        .expect("user")
        .into_inner()
        .user
        .expect("user");
    let current = |ust: &str| {
        let mut users = users(&other);
        let request = authed(ust, proto::GetCurrentUserRequest {});
        async move { users.get_current_user(request).await }
    };

    let mut delays_ms = Vec::with_capacity(TRIALS);
    for trial in 0..TRIALS {
        let opened = users(&one)
            .login(login("replicated", PASSWORD))
            .await
            .expect("login")
            .into_inner();
        let ust = opened.ust;
        let session_id = opened.session.expect("session").session_id;
        for _ in 0..2 {
            current(&ust)
                .await
                .expect("the other process knows the session");
        }
        let sessions = proto::session_service_client::SessionServiceClient::new(one.clone());
        let revoked_at = std::time::Instant::now();
        match trial % 4 {
            0 => drop(
                users(&one)
                    .logout(authed(&ust, proto::LogoutRequest {}))
                    .await
                    .expect("logout"),
            ),
            1 => drop(
                sessions
                    .clone()
                    .delete_session(authed(&admin, proto::DeleteSessionRequest { session_id }))
                    .await
                    .expect("delete"),
            ),
            2 => drop(
                sessions
                    .clone()
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
                users(&one)
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
        let refused = loop {
            match current(&ust).await {
                Err(status) => {
                    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
                    break revoked_at.elapsed();
                }
                Ok(_) if revoked_at.elapsed() < REFUSED_WITHIN => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(_) => panic!("trial {trial}: still accepted after {REFUSED_WITHIN:?}"),
            }
        };
        delays_ms.push(refused.as_secs_f64() * 1000.0);
        if trial % 4 == 3 {
            users(&one)
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
    delays_ms.sort_by(f64::total_cmp);
    eprintln!(
        "refused by the other process after (ms): min {:.1} p50 {:.1} max {:.1}",
        delays_ms[0],
        delays_ms[TRIALS / 2],
        delays_ms[TRIALS - 1]
    );
    let metrics = scrape(second_metrics).await;
    assert!(
        metric(&metrics, "ssod_auth_cache_hits_total") > 0.0,
        "the other process served from its cache: {metrics}"
    );
    assert!(metric(&metrics, "ssod_auth_cache_misses_total") > 0.0);

    // Both listeners killed: the second process flushes and bypasses until it listens again.
    let database = sql(&url).await;
    let flushes = |metrics: &str| {
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("ssod_auth_cache_invalidations_total")
                    && line.contains("origin=\"listener\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = flushes(&metrics);
    database
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .expect("terminate");
    let deadline = std::time::Instant::now() + REFUSED_WITHIN;
    let metrics = loop {
        let metrics = scrape(second_metrics).await;
        // Flushed when it went down and again when it came back.
        if flushes(&metrics) >= before + 2.0 {
            break metrics;
        }
        assert!(std::time::Instant::now() < deadline, "no flush: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in [
        "ssod_auth_cache_bypassed",
        "ssod_auth_cache_bypass_seconds_total",
        "ssod_auth_cache_entries",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    let (stopped, _) = first.terminate();
    assert!(stopped);
    let (stopped, log) = second.terminate();
    assert!(stopped);
    assert!(
        log.contains("auth cache bypassed"),
        "a log line says so: {log}"
    );
}
