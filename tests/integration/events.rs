//! The audit trail through the real server, on both stores: every event type with its fields
//! (cid, actor, target, client, reason), `ListEvents` paging and filters, `WatchEvents`
//! replay and live follow, and on PostgreSQL the order of a watch under concurrent writers
//! whose transactions commit out of id order.

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime},
};

use ssod::proto::{self, event_service_client::EventServiceClient};
use tonic::{Code, Request, Streaming, transport::Channel};

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

/// The longest any test waits for something that must happen; only a hang reaches it.
const BOUND: Duration = Duration::from_secs(30);

fn events(server: &TestServer) -> EventServiceClient<Channel> {
    EventServiceClient::new(server.channel.clone())
}

/// A request with the given cid and, if given, a UST.
fn call<T>(ust: Option<&str>, cid: &str, message: T) -> Request<T> {
    let mut request = match ust {
        Some(ust) => authed(ust, message),
        None => Request::new(message),
    };
    request
        .metadata_mut()
        .insert("x-request-id", cid.parse().expect("cid"));
    request
}

/// Every stored event that `request` selects, all pages, in order.
async fn list_all(
    server: &TestServer,
    admin: &str,
    request: proto::ListEventsRequest,
) -> Vec<proto::Event> {
    let mut found = Vec::new();
    let mut request = request;
    loop {
        let page = events(server)
            .list_events(authed(admin, request.clone()))
            .await
            .expect("list events")
            .into_inner();
        found.extend(page.events);
        if page.next_page_token.is_empty() {
            return found;
        }
        request.page_token = page.next_page_token;
    }
}

/// The stored event of `kind` with call id `cid` (and, if given, about `session`), waiting
/// for it: acts that change nothing are written a moment after their call returns.
async fn recorded(
    server: &TestServer,
    admin: &str,
    kind: &str,
    cid: &str,
    session: Option<&str>,
) -> proto::Event {
    let request = proto::ListEventsRequest {
        types: vec![kind.into()],
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let found = list_all(server, admin, request.clone()).await;
        let mut matching: Vec<proto::Event> = found
            .into_iter()
            .filter(|event| event.cid == cid)
            .filter(|event| session.is_none_or(|session| event.session_id == session))
            .collect();
        if matching.len() > 1 {
            panic!("{kind} of {cid} recorded {} times", matching.len());
        }
        if let Some(event) = matching.pop() {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} event of {cid}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn login_request(username: &str, password: &str) -> proto::LoginRequest {
    proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: "shop".into(),
        remote_addr: "198.51.100.7".into(),
        user_agent: "browser/1".into(),
        ..Default::default()
    }
}

async fn sign_in_events(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.lockout.login_max_failures = 3;
    })
    .await;
    let admin = server.admin().await;
    let alice = server
        .create_user(&admin, "alice", "alice-password-1")
        .await;

    // A guest session, then a login that rotates it.
    let guest = server
        .sessions()
        .create_session(call(
            None,
            "cid-guest",
            proto::CreateSessionRequest {
                current_app: "shop".into(),
                remote_addr: "198.51.100.7".into(),
                user_agent: "browser/1".into(),
            },
        ))
        .await
        .expect("guest")
        .into_inner();
    let guest_id = guest.session.expect("session").session_id;
    let created = recorded(&server, &admin, "session.created", "cid-guest", None).await;
    assert_eq!(created.session_id, guest_id);
    assert_eq!(created.user_id, "");
    assert_eq!(created.actor_user_id, "");
    assert_eq!(
        (
            created.current_app.as_str(),
            created.remote_addr.as_str(),
            created.user_agent.as_str()
        ),
        ("shop", "198.51.100.7", "browser/1")
    );

    let login = server
        .users()
        .login(call(
            Some(&guest.ust),
            "cid-login",
            login_request("alice", "alice-password-1"),
        ))
        .await
        .expect("login")
        .into_inner();
    let session_id = login.session.expect("session").session_id;
    let succeeded = recorded(&server, &admin, "login.succeeded", "cid-login", None).await;
    assert_eq!(succeeded.user_id, alice.user_id);
    assert_eq!(succeeded.session_id, session_id);
    assert_eq!(succeeded.remote_addr, "198.51.100.7");
    let rotated = recorded(&server, &admin, "session.ended", "cid-login", None).await;
    assert_eq!(rotated.session_id, guest_id);
    assert_eq!(rotated.reason, "rotated");
    assert!(
        rotated.event_id < succeeded.event_id,
        "the rotated session ends before the login is recorded"
    );

    // Failures: a wrong password names the user, an unknown username does not.
    for (cid, username) in [("cid-wrong", "alice"), ("cid-nobody", "nobody")] {
        let refused = server
            .users()
            .login(call(None, cid, login_request(username, "wrong-password")))
            .await
            .expect_err("refused");
        assert_error(&refused, Code::Unauthenticated, "INVALID_CREDENTIALS");
        let failed = recorded(&server, &admin, "login.failed", cid, None).await;
        assert_eq!(failed.reason, "INVALID_CREDENTIALS");
        assert_eq!(failed.session_id, "");
        let expected_user = if username == "alice" {
            alice.user_id.as_str()
        } else {
            ""
        };
        assert_eq!(failed.user_id, expected_user, "{cid}");
    }

    // The third failure locks alice out; the next attempt is refused as locked out, and the
    // audit trail says so even though the client is only told the credentials are wrong.
    for cid in ["cid-wrong-2", "cid-wrong-3"] {
        let _ = server
            .users()
            .login(call(None, cid, login_request("alice", "wrong-password")))
            .await
            .expect_err("refused");
    }
    let locked_out = recorded(&server, &admin, "user.locked_out", "cid-wrong-3", None).await;
    assert_eq!(locked_out.user_id, alice.user_id);
    assert_eq!(locked_out.reason, "TOO_MANY_ATTEMPTS");
    let refused = server
        .users()
        .login(call(
            None,
            "cid-locked-out",
            login_request("alice", "alice-password-1"),
        ))
        .await
        .expect_err("locked out");
    assert_error(&refused, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let failed = recorded(&server, &admin, "login.failed", "cid-locked-out", None).await;
    assert_eq!(failed.reason, "TOO_MANY_ATTEMPTS");
    assert_eq!(failed.user_id, alice.user_id);

    // Logout: who logged out, and the session's end.
    server
        .users()
        .logout(call(
            Some(&login.ust),
            "cid-logout",
            proto::LogoutRequest {},
        ))
        .await
        .expect("logout");
    let logout = recorded(&server, &admin, "logout", "cid-logout", None).await;
    assert_eq!(logout.user_id, alice.user_id);
    assert_eq!(logout.session_id, session_id);
    assert_eq!(logout.actor_session_id, session_id);
    assert_eq!(logout.actor_user_id, alice.user_id);
    let ended = recorded(&server, &admin, "session.ended", "cid-logout", None).await;
    assert_eq!(ended.session_id, session_id);
    assert_eq!(ended.reason, "logout");

    // No event carries a UST or password.
    let everything = list_all(&server, &admin, proto::ListEventsRequest::default()).await;
    let text = format!("{everything:?}");
    for secret in [
        guest.ust.as_str(),
        login.ust.as_str(),
        "alice-password-1",
        "wrong-password",
        admin.as_str(),
    ] {
        assert!(!text.contains(secret), "an event shows a secret");
    }
}

async fn administration_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let admin_user = server
        .users()
        .get_current_user(authed(&admin, proto::GetCurrentUserRequest {}))
        .await
        .expect("admin")
        .into_inner()
        .user
        .expect("user")
        .user_id;
    let bob = server
        .users()
        .create_user(call(
            Some(&admin),
            "cid-create",
            proto::CreateUserRequest {
                username: "bob".into(),
                password: Some("bob-password-1".into()),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");
    let created = recorded(&server, &admin, "user.created", "cid-create", None).await;
    assert_eq!(created.user_id, bob.user_id);
    assert_eq!(created.actor_user_id, admin_user);
    assert_eq!(created.current_app, "tests", "the actor's session's app");
    let first = server.login("bob", "bob-password-1").await;
    let second = server.login("bob", "bob-password-1").await;
    let first_id = first.session.clone().expect("session").session_id;
    let second_id = second.session.clone().expect("session").session_id;

    server
        .users()
        .update_user(call(
            Some(&admin),
            "cid-update",
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: bob.user_id.clone(),
                    display_name: "Bob".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
        ))
        .await
        .expect("update");
    let updated = recorded(&server, &admin, "user.updated", "cid-update", None).await;
    assert_eq!(updated.user_id, bob.user_id);
    let fields = format!("{:?}", updated.details);
    assert!(fields.contains("display_name"), "{fields}");

    // A super-user's reads of a session.
    server
        .sessions()
        .get_session(call(
            Some(&admin),
            "cid-get",
            proto::GetSessionRequest {
                target_ust: first.ust.clone(),
                current_app: "portal".into(),
                remote_addr: "203.0.113.9".into(),
            },
        ))
        .await
        .expect("get session");
    server
        .sessions()
        .verify_session(call(
            Some(&admin),
            "cid-verify",
            proto::VerifySessionRequest {
                target_ust: first.ust.clone(),
                current_app: "portal".into(),
                remote_addr: "203.0.113.9".into(),
            },
        ))
        .await
        .expect("verify session");
    for cid in ["cid-get", "cid-verify"] {
        let read = recorded(&server, &admin, "session.read", cid, None).await;
        assert_eq!(read.session_id, first_id);
        assert_eq!(read.user_id, bob.user_id);
        assert_eq!(read.actor_user_id, admin_user);
        assert_eq!(read.current_app, "portal");
        assert_eq!(read.remote_addr, "203.0.113.9");
    }

    // Bob changes his password from his first session: the second ends.
    server
        .users()
        .change_password(call(
            Some(&first.ust),
            "cid-password",
            proto::ChangePasswordRequest {
                old_password: "bob-password-1".into(),
                new_password: "bob-password-2".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("change password");
    let changed = recorded(&server, &admin, "password.changed", "cid-password", None).await;
    assert_eq!(changed.user_id, bob.user_id);
    assert_eq!(changed.actor_user_id, bob.user_id);
    assert_eq!(changed.actor_session_id, first_id);
    let ended = recorded(&server, &admin, "session.ended", "cid-password", None).await;
    assert_eq!(ended.session_id, second_id);
    assert_eq!(ended.reason, "user_changed");

    let user_id = || proto::LockUserRequest {
        user_id: bob.user_id.clone(),
    };
    server
        .users()
        .lock_user(call(Some(&admin), "cid-lock", user_id()))
        .await
        .expect("lock");
    let locked = recorded(&server, &admin, "user.locked", "cid-lock", None).await;
    assert_eq!(locked.user_id, bob.user_id);
    let ended = recorded(&server, &admin, "session.ended", "cid-lock", None).await;
    assert_eq!(ended.session_id, first_id);
    assert_eq!(ended.reason, "user_changed");
    server
        .users()
        .unlock_user(call(
            Some(&admin),
            "cid-unlock",
            proto::UnlockUserRequest {
                user_id: bob.user_id.clone(),
            },
        ))
        .await
        .expect("unlock");
    recorded(&server, &admin, "user.unlocked", "cid-unlock", None).await;
    server
        .users()
        .reject_user(call(
            Some(&admin),
            "cid-reject",
            proto::RejectUserRequest {
                user_id: bob.user_id.clone(),
            },
        ))
        .await
        .expect("reject");
    recorded(&server, &admin, "user.rejected", "cid-reject", None).await;
    server
        .users()
        .approve_user(call(
            Some(&admin),
            "cid-approve",
            proto::ApproveUserRequest {
                user_id: bob.user_id.clone(),
            },
        ))
        .await
        .expect("approve");
    recorded(&server, &admin, "user.approved", "cid-approve", None).await;
    server.login("bob", "bob-password-2").await;
    server
        .users()
        .delete_user(call(
            Some(&admin),
            "cid-delete",
            proto::DeleteUserRequest {
                user_id: bob.user_id.clone(),
            },
        ))
        .await
        .expect("delete");
    let deleted = recorded(&server, &admin, "user.deleted", "cid-delete", None).await;
    assert_eq!(deleted.user_id, bob.user_id);
    assert!(
        format!("{:?}", deleted.details).contains("sessions_ended"),
        "{deleted:?}"
    );
}

async fn revocation_and_expiry_events(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.max_sessions_per_user = 2;
    })
    .await;
    let admin = server.admin().await;
    let carol = server
        .create_user(&admin, "carol", "carol-password-1")
        .await;
    let login = |cid: &'static str| {
        let users = server.users();
        async move {
            let mut users = users;
            users
                .login(call(None, cid, login_request("carol", "carol-password-1")))
                .await
                .expect("login")
                .into_inner()
        }
    };
    let one = login("cid-one").await;
    let two = login("cid-two").await;
    let _three = login("cid-three").await;
    let ended = recorded(&server, &admin, "session.ended", "cid-three", None).await;
    assert_eq!(ended.session_id, one.session.expect("session").session_id);
    assert_eq!(ended.reason, "session_limit");
    assert_eq!(ended.user_id, carol.user_id);

    let two_id = two.session.expect("session").session_id;
    server
        .sessions()
        .delete_session(call(
            Some(&two.ust),
            "cid-delete-session",
            proto::DeleteSessionRequest::default(),
        ))
        .await
        .expect("delete session");
    let revoked = recorded(&server, &admin, "session.ended", "cid-delete-session", None).await;
    assert_eq!(revoked.session_id, two_id);
    assert_eq!(revoked.reason, "revoked");

    let four = login("cid-four").await;
    server
        .sessions()
        .revoke_other_sessions(call(
            Some(&four.ust),
            "cid-revoke-others",
            proto::RevokeOtherSessionsRequest {},
        ))
        .await
        .expect("revoke others");
    let bulk = recorded(
        &server,
        &admin,
        "sessions.revoked",
        "cid-revoke-others",
        None,
    )
    .await;
    assert_eq!(bulk.user_id, carol.user_id);
    let details = format!("{:?}", bulk.details);
    assert!(details.contains("other_sessions"), "{details}");
    assert_eq!(count_of(&bulk), 1.0, "the third session");

    server
        .sessions()
        .delete_user_sessions(call(
            Some(&admin),
            "cid-revoke-user",
            proto::DeleteUserSessionsRequest {
                selector: Some(proto::delete_user_sessions_request::Selector::UserId(
                    carol.user_id.clone(),
                )),
            },
        ))
        .await
        .expect("revoke user");
    let bulk = recorded(&server, &admin, "sessions.revoked", "cid-revoke-user", None).await;
    assert_eq!(bulk.user_id, carol.user_id);
    assert_eq!(count_of(&bulk), 1.0, "the fourth session");

    // A guest expires; the sweep records it.
    let guest = server.guest().await.session.expect("session").session_id;
    server.advance(Duration::from_secs(31 * 60));
    let admin = server.admin().await;
    server
        .sessions()
        .purge_expired(call(
            Some(&admin),
            "cid-sweep",
            proto::PurgeExpiredRequest {},
        ))
        .await
        .expect("sweep");
    let expired = recorded(
        &server,
        &admin,
        "session.expired",
        "cid-sweep",
        Some(&guest),
    )
    .await;
    assert_eq!(expired.user_id, "");
}

/// `details.count` of a bulk revocation.
fn count_of(event: &proto::Event) -> f64 {
    use prost_types::value::Kind;
    match event
        .details
        .as_ref()
        .and_then(|details| details.fields.get("count"))
        .and_then(|count| count.kind.clone())
    {
        Some(Kind::NumberValue(count)) => count,
        other => panic!("no count in {event:?}: {other:?}"),
    }
}

async fn listing_pages_and_filters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let start = server.clock_now();
    let mut users = Vec::new();
    for index in 0..5 {
        users.push(
            server
                .create_user(&admin, &format!("user-{index}"), "user-password-1")
                .await,
        );
        server.advance(Duration::from_secs(10));
    }
    // Pages of two, in creation order.
    let request = proto::ListEventsRequest {
        types: vec!["user.created".into()],
        page_size: 2,
        ..Default::default()
    };
    let mut pages = 0;
    let mut listed = Vec::new();
    let mut next = request.clone();
    loop {
        let page = events(&server)
            .list_events(authed(&admin, next.clone()))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        listed.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        next.page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    // The bootstrap super-user's, then these five.
    let created: Vec<&str> = listed.iter().map(|event| event.user_id.as_str()).collect();
    let expected: Vec<&str> = users.iter().map(|user| user.user_id.as_str()).collect();
    assert_eq!(created.len(), 6);
    assert_eq!(created[1..], expected);
    let ids: Vec<&str> = listed.iter().map(|event| event.event_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");

    // By user, by session, by time.
    let by_user = list_all(
        &server,
        &admin,
        proto::ListEventsRequest {
            user_id: users[2].user_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_user.len(), 1);
    assert_eq!(by_user[0].r#type, "user.created");
    let login = server.login("user-3", "user-password-1").await;
    let session_id = login.session.expect("session").session_id;
    let by_session = list_all(
        &server,
        &admin,
        proto::ListEventsRequest {
            session_id: session_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<&str> = by_session.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["login.succeeded"]);
    let window = list_all(
        &server,
        &admin,
        proto::ListEventsRequest {
            types: vec!["user.created".into()],
            start_time: Some((start + Duration::from_secs(10)).into()),
            end_time: Some((start + Duration::from_secs(30)).into()),
            ..Default::default()
        },
    )
    .await;
    let in_window: Vec<&str> = window.iter().map(|event| event.user_id.as_str()).collect();
    assert_eq!(
        in_window,
        [users[1].user_id.as_str(), users[2].user_id.as_str()]
    );

    // Refusals: an unknown type, a token from another filter, a page token that is not one.
    let refused = events(&server)
        .list_events(authed(
            &admin,
            proto::ListEventsRequest {
                types: vec!["no.such.type".into()],
                ..Default::default()
            },
        ))
        .await
        .expect_err("unknown type");
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    let first = events(&server)
        .list_events(authed(&admin, request.clone()))
        .await
        .expect("page")
        .into_inner();
    let refused = events(&server)
        .list_events(authed(
            &admin,
            proto::ListEventsRequest {
                page_token: first.next_page_token,
                ..Default::default()
            },
        ))
        .await
        .expect_err("another filter's token");
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    let (_, user) = server.user_session("not-an-admin").await;
    let refused = events(&server)
        .list_events(authed(&user, proto::ListEventsRequest::default()))
        .await
        .expect_err("not a super-user");
    assert_error(&refused, Code::PermissionDenied, "SUPER_USER_REQUIRED");
}

/// The next event of a watch, within the bound; heartbeats are skipped.
async fn next_event(stream: &mut Streaming<proto::WatchEventsResponse>) -> proto::Event {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("an event within the bound")
            .expect("the stream stays open")
            .expect("a message");
        if let Some(event) = message.event {
            return event;
        }
    }
}

async fn watch(
    server: &TestServer,
    admin: &str,
    after: &str,
    types: &[&str],
) -> Streaming<proto::WatchEventsResponse> {
    events(server)
        .watch_events(authed(
            admin,
            proto::WatchEventsRequest {
                after_event_id: after.into(),
                types: types.iter().map(|kind| kind.to_string()).collect(),
            },
        ))
        .await
        .expect("watch")
        .into_inner()
}

async fn watching_replays_then_follows(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for index in 0..3 {
        server
            .create_user(&admin, &format!("early-{index}"), "user-password-1")
            .await;
    }
    let stored = list_all(&server, &admin, proto::ListEventsRequest::default()).await;
    assert!(stored.len() >= 4, "{stored:?}");

    // Replay from the first event: every later one, in order, then live ones.
    let mut stream = watch(&server, &admin, &stored[0].event_id, &[]).await;
    for expected in &stored[1..] {
        assert_eq!(&next_event(&mut stream).await, expected);
    }
    let late = server.create_user(&admin, "late", "user-password-1").await;
    let live = next_event(&mut stream).await;
    assert_eq!(live.r#type, "user.created");
    assert_eq!(live.user_id, late.user_id);
    assert!(live.event_id > stored[stored.len() - 1].event_id);

    // From now on, one type only: what came before is not replayed (on PostgreSQL "now" is
    // the last settled event, so the creation of "late" may still come).
    let mut from_now = watch(&server, &admin, "", &["user.created"]).await;
    server.login("late", "user-password-1").await;
    let later = server.create_user(&admin, "later", "user-password-1").await;
    let mut first = next_event(&mut from_now).await;
    if first.user_id == late.user_id {
        first = next_event(&mut from_now).await;
    }
    assert_eq!(first.user_id, later.user_id);

    // A cursor that is not an event id, and a non-super-user, are refused.
    let refused = events(&server)
        .watch_events(authed(
            &admin,
            proto::WatchEventsRequest {
                after_event_id: "yesterday".into(),
                types: Vec::new(),
            },
        ))
        .await
        .expect_err("bad cursor");
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    let (_, user) = server.user_session("watcher").await;
    let refused = events(&server)
        .watch_events(authed(&user, proto::WatchEventsRequest::default()))
        .await
        .expect_err("not a super-user");
    assert_error(&refused, Code::PermissionDenied, "SUPER_USER_REQUIRED");
}

both!(
    sign_in_events,
    administration_events,
    revocation_and_expiry_events,
    listing_pages_and_filters,
    watching_replays_then_follows,
);

/// Many writers at once, and transactions held open while later ones commit (one rolled
/// back): a watch from the start receives exactly what is stored, in id order, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_never_skips_an_event_committed_out_of_order() {
    const WRITERS: usize = 6;
    const CALLS: usize = 15;
    const HELD: usize = 4;
    let server = TestServer::start(Backend::Postgres).await;
    let admin = server.admin().await;
    let url = server.config.database.url.clone().expect("url");
    let zero = "00000000000000000000-00000000000000000000";
    let mut stream = watch(&server, &admin, zero, &[]).await;

    // Transactions that write an event and stay open: their ids are below everything the
    // writers then commit.
    let mut held = Vec::new();
    for index in 0..HELD {
        let client = crate::pg::connect(&url).await;
        client.batch_execute("BEGIN").await.expect("begin");
        client
            .execute(
                "INSERT INTO events (time, type, cid, current_app, remote_addr, user_agent, \
                 reason, details) VALUES (now(), 'session.read', $1, '', '', '', '', '{}')",
                &[&format!("held-{index}")],
            )
            .await
            .expect("insert");
        held.push(client);
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let channel = server.channel.clone();
            tokio::spawn(async move {
                let mut sessions =
                    proto::session_service_client::SessionServiceClient::new(channel);
                for index in 0..CALLS {
                    sessions
                        .create_session(call(
                            None,
                            &format!("writer-{writer}-{index}"),
                            proto::CreateSessionRequest::default(),
                        ))
                        .await
                        .expect("guest");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    // The held ones end last, newest first; one rolls back.
    while let Some(client) = held.pop() {
        let end = if held.len() == 1 {
            "ROLLBACK"
        } else {
            "COMMIT"
        };
        client.batch_execute(end).await.expect("end");
    }

    let stored = list_all(&server, &admin, proto::ListEventsRequest::default()).await;
    assert_eq!(
        stored
            .iter()
            .filter(|event| event.cid.starts_with("writer-"))
            .count(),
        WRITERS * CALLS
    );
    assert_eq!(
        stored
            .iter()
            .filter(|event| event.cid.starts_with("held-"))
            .count(),
        HELD - 1
    );
    let mut received = Vec::with_capacity(stored.len());
    while received.len() < stored.len() {
        received.push(next_event(&mut stream).await);
    }
    let received_ids: Vec<&str> = received.iter().map(|e| e.event_id.as_str()).collect();
    let stored_ids: Vec<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        received_ids, stored_ids,
        "the watch saw exactly what is stored"
    );
    let distinct: BTreeSet<&str> = received_ids.iter().copied().collect();
    assert_eq!(distinct.len(), received_ids.len(), "no event twice");
}

/// With `SSOD_AUDIT_READ_INTERVAL`, a super-user's repeated reads of one session record one
/// `session.read` per interval, per reading session and method.
async fn repeated_reads_are_recorded_once_per_interval(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.events.read_interval = Duration::from_secs(60);
    })
    .await;
    let admin = server.admin().await;
    let other_admin = server.admin().await;
    let (_, target) = server.user_session("read-often").await;
    let verify = |reader: &str, cid: &'static str| {
        let (mut sessions, reader, target) = (server.sessions(), reader.to_owned(), target.clone());
        async move {
            sessions
                .verify_session(call(
                    Some(&reader),
                    cid,
                    proto::VerifySessionRequest {
                        target_ust: target,
                        ..Default::default()
                    },
                ))
                .await
        }
    };
    let get = |cid: &'static str| {
        let (mut sessions, admin, target) = (server.sessions(), admin.clone(), target.clone());
        async move {
            sessions
                .get_session(call(
                    Some(&admin),
                    cid,
                    proto::GetSessionRequest {
                        target_ust: target,
                        ..Default::default()
                    },
                ))
                .await
        }
    };
    let session_id = verify(&admin, "verify-1")
        .await
        .expect("verify")
        .into_inner()
        .session
        .expect("valid")
        .session_id;
    for cid in ["verify-2", "verify-3"] {
        verify(&admin, cid).await.expect("verify");
    }
    for cid in ["get-1", "get-2"] {
        get(cid).await.expect("get");
    }
    server.advance(Duration::from_secs(61));
    verify(&admin, "verify-4").await.expect("verify");
    verify(&admin, "verify-5").await.expect("verify");
    // Another reader's first read; acts are written in order, so once it is stored the
    // others are too.
    verify(&other_admin, "other-1").await.expect("verify");
    recorded(
        &server,
        &admin,
        "session.read",
        "other-1",
        Some(&session_id),
    )
    .await;
    let cids: Vec<String> = list_all(
        &server,
        &admin,
        proto::ListEventsRequest {
            types: vec!["session.read".into()],
            session_id,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|event| event.cid)
    .collect();
    assert_eq!(cids, ["verify-1", "get-1", "verify-4", "other-1"]);
}

/// What a watch and the audit log lines run on every read stays a few index pages however
/// large the log is, also under the generic plan PostgreSQL gives a prepared statement after
/// its fifth run (where asking "is any later event unsettled?" as an `EXISTS` had become a
/// scan of the whole table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reads_touch_a_few_pages_of_a_large_log() {
    use ssod::store::postgres::sql::events::{EVENT_EXISTS, FEED, HEAD};
    const EVENTS: i64 = 100_000;
    const MOST_PAGES: u64 = 40;
    let server = TestServer::start(Backend::Postgres).await;
    let url = server.config.database.url.clone().expect("url");
    let client = crate::pg::connect(&url).await;
    client
        .batch_execute(&format!(
            "INSERT INTO events (time, type, cid, current_app, remote_addr, user_agent, reason, \
             details) SELECT now(), 'session.read', '', '', '', '', '', '{{}}' \
             FROM generate_series(1, {EVENTS}); ANALYZE events"
        ))
        .await
        .expect("a large log");
    let row = client
        .query_one(
            "SELECT count(*), max(xact), max(sequence), pg_relation_size('events') / 8192 \
             FROM events",
            &[],
        )
        .await
        .expect("newest");
    let (count, xact, sequence, table_pages): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(
        count >= EVENTS && table_pages > 500,
        "{count} events, {table_pages} pages"
    );
    client
        .batch_execute(&format!(
            "PREPARE feed(int8, int8, int8) AS {FEED}; PREPARE head AS {HEAD}; \
             PREPARE stored(int8, int8) AS {EVENT_EXISTS}; \
             SET plan_cache_mode = force_generic_plan"
        ))
        .await
        .expect("prepared");
    let reads = [
        // A watch 100 events behind (its next page), and one that has read everything.
        format!("feed({xact}, {}, 256)", sequence - 100),
        format!("feed({xact}, {sequence}, 256)"),
        "head".to_owned(),
        format!("stored({xact}, {sequence})"),
    ];
    for read in reads {
        let (pages, plan) = crate::pg::pages_touched(&client, &format!("EXECUTE {read}")).await;
        assert!(
            pages <= MOST_PAGES,
            "{read} touched {pages} pages of a {table_pages}-page log: {plan}"
        );
    }
}

/// Events carry the write's time from the injected clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_time_of_their_write() {
    let server = TestServer::start(Backend::Memory).await;
    let admin = server.admin().await;
    server.advance(Duration::from_secs(42));
    let at: SystemTime = server.clock_now();
    let user = server.create_user(&admin, "timed", "user-password-1").await;
    let created = list_all(
        &server,
        &admin,
        proto::ListEventsRequest {
            user_id: user.user_id,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].time, Some(at.into()));
}

/// Events past the retention are swept; a watch from a cursor whose event was swept is
/// refused, and one from the zero cursor gets what is left.
async fn retention_trims_events_and_expires_cursors(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.events.retention = Duration::from_secs(3600);
    })
    .await;
    let admin = server.admin().await;
    let old = list_all(&server, &admin, proto::ListEventsRequest::default()).await;
    server.advance(Duration::from_secs(3601));
    let admin = server.admin().await;
    server
        .sessions()
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("sweep");
    let kept = list_all(&server, &admin, proto::ListEventsRequest::default()).await;
    for event in &old {
        assert!(!kept.contains(event), "{event:?} outlived the retention");
    }
    assert!(!kept.is_empty(), "the new login is kept");

    let refused = events(&server)
        .watch_events(authed(
            &admin,
            proto::WatchEventsRequest {
                after_event_id: old[0].event_id.clone(),
                types: Vec::new(),
            },
        ))
        .await
        .expect_err("an expired cursor");
    assert_error(&refused, Code::FailedPrecondition, "CURSOR_EXPIRED");
    let mut stream = watch(
        &server,
        &admin,
        "00000000000000000000-00000000000000000000",
        &[],
    )
    .await;
    assert_eq!(next_event(&mut stream).await, kept[0]);
}

/// An idle watch hears a heartbeat (a message without an event), then events again.
async fn idle_watches_get_heartbeats(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.events.heartbeat = Duration::from_secs(1);
    })
    .await;
    let admin = server.admin().await;
    let mut stream = watch(&server, &admin, "", &[]).await;
    // On PostgreSQL "now" is the last settled event: the set-up's events may still come first.
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("a heartbeat within the bound")
            .expect("the stream stays open")
            .expect("a message");
        if message.event.is_none() {
            break;
        }
    }
    let user = server
        .create_user(&admin, "after-quiet", "user-password-1")
        .await;
    assert_eq!(next_event(&mut stream).await.user_id, user.user_id);
}

/// At shutdown a watch ends with UNAVAILABLE `SHUTTING_DOWN` rather than holding the drain.
async fn watches_end_at_shutdown(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut stream = watch(&server, &admin, "", &[]).await;
    let stopping = tokio::spawn(server.stop());
    let ended = loop {
        match tokio::time::timeout(BOUND, stream.message())
            .await
            .expect("the watch ends within the bound")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the watch ended without a status"),
            Err(status) => break status,
        }
    };
    assert_error(&ended, Code::Unavailable, "SHUTTING_DOWN");
    stopping.await.expect("stopped");
}

both!(
    retention_trims_events_and_expires_cursors,
    repeated_reads_are_recorded_once_per_interval,
    idle_watches_get_heartbeats,
    watches_end_at_shutdown,
);

/// A watch resumed from its last cursor on a restarted ssod (the real binary, PostgreSQL)
/// gets every event it had not received, including those written while it was away, each
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_across_a_restart() {
    use crate::process::{Process, connect, free_address};
    let url = crate::pg::fresh_database_url().await;
    let start = || {
        let address = free_address();
        let process = Process::start(&[
            ("SSOD_LISTEN", address.to_string()),
            ("SSOD_DATABASE_URL", url.clone()),
            ("SSOD_SUPER_USER", "admin".into()),
            ("SSOD_SUPER_USER_PASSWORD", "admin-password-1".into()),
            ("SSOD_LOG", "warn".into()),
        ]);
        (process, address)
    };
    let admin_login = |channel: Channel| async move {
        proto::user_service_client::UserServiceClient::new(channel)
            .login(login_request("admin", "admin-password-1"))
            .await
            .expect("admin login")
            .into_inner()
            .ust
    };
    let create = |channel: Channel, admin: String, name: String| async move {
        proto::user_service_client::UserServiceClient::new(channel)
            .create_user(authed(
                &admin,
                proto::CreateUserRequest {
                    username: name,
                    password: Some("user-password-1".into()),
                    ..Default::default()
                },
            ))
            .await
            .expect("create user");
    };

    let (first, address) = start();
    let channel = connect(address).await;
    let admin = admin_login(channel.clone()).await;
    for index in 0..3 {
        create(channel.clone(), admin.clone(), format!("before-{index}")).await;
    }
    let mut stream = EventServiceClient::new(channel.clone())
        .watch_events(authed(
            &admin,
            proto::WatchEventsRequest {
                after_event_id: "00000000000000000000-00000000000000000000".into(),
                types: Vec::new(),
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(next_event(&mut stream).await);
    }
    // Written while the watch is not reading, then the server goes away.
    for index in 0..3 {
        create(channel.clone(), admin.clone(), format!("unread-{index}")).await;
    }
    let (exited, logs) = first.terminate();
    assert!(exited, "{logs}");
    drop(stream);

    let (second, address) = start();
    let channel = connect(address).await;
    let admin = admin_login(channel.clone()).await;
    for index in 0..3 {
        create(channel.clone(), admin.clone(), format!("after-{index}")).await;
    }
    let cursor = received.last().expect("received").event_id.clone();
    let mut resumed = EventServiceClient::new(channel.clone())
        .watch_events(authed(
            &admin,
            proto::WatchEventsRequest {
                after_event_id: cursor,
                types: Vec::new(),
            },
        ))
        .await
        .expect("resumed watch")
        .into_inner();
    let mut events = EventServiceClient::new(channel);
    let mut stored = Vec::new();
    let mut request = proto::ListEventsRequest::default();
    loop {
        let page = events
            .list_events(authed(&admin, request.clone()))
            .await
            .expect("list")
            .into_inner();
        stored.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    while received.len() < stored.len() {
        received.push(next_event(&mut resumed).await);
    }
    assert_eq!(
        received, stored,
        "every event once, in order, across the restart"
    );
    let created: Vec<String> = received
        .iter()
        .filter(|event| event.r#type == "user.created")
        .map(|event| event.user_id.clone())
        .collect();
    assert_eq!(created.len(), 10, "the bootstrap admin and nine users");
    let (exited, logs) = second.terminate();
    assert!(exited, "{logs}");
}
