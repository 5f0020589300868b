//! The audit log: both stores record the same events for the same writes, in the write
//! itself, and read them back alike (listing, the watchers' feed, the head).

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use uuid::Uuid;

use ssod::{
    domain::{
        ClaimLogin, DeleteSession, DeleteSessions, DeleteUser, EndSessions, Event, EventContext,
        EventFeed, EventId, EventQuery, EventType, NewEvent, OpenSession, SessionEndReason,
        SessionLimit, SessionLimitPolicy, SessionSelector, UpdateUser, UserId, UserPatch, Write,
    },
    store::Store,
};

use super::{at, create_user, new_session, open, plain_open, purge, throttle, write};

/// A call's context, as the service would stamp it.
fn by(cid: &str) -> EventContext {
    EventContext {
        cid: cid.into(),
        actor_user: Some(UserId(Uuid::from_u128(7))),
        actor_session: None,
        current_app: "console".into(),
        remote_addr: "192.0.2.9".into(),
        user_agent: "admin/1".into(),
    }
}

/// Every event, oldest first.
async fn all(store: &Arc<dyn Store>) -> Vec<Event> {
    store
        .list_events(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("listed")
}

/// The events of call `cid`: (type, user, session, reason).
async fn of(
    store: &Arc<dyn Store>,
    cid: &str,
) -> Vec<(
    EventType,
    Option<UserId>,
    Option<ssod::domain::SessionId>,
    String,
)> {
    all(store)
        .await
        .into_iter()
        .filter(|event| event.context.cid == cid)
        .map(|event| {
            (
                event.event.kind,
                event.event.user,
                event.event.session,
                event.event.reason,
            )
        })
        .collect()
}

conformance!(
    writes_record_their_events_with_their_context,
    session_ends_are_recorded_once_per_session,
    a_refused_write_records_nothing,
    the_claim_that_locks_a_user_out_records_it,
    acts_are_appended_and_the_feed_follows_the_log,
);

async fn writes_record_their_events_with_their_context(store: Arc<dyn Store>) {
    let user = create_user(&store, "eve").await;
    let events = all(&store).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.kind, EventType::UserCreated);
    assert_eq!(events[0].event.user, Some(user.id));
    assert_eq!(events[0].time, at(0));

    let patch = UserPatch {
        display_name: Some("Eve".into()),
        is_locked: Some(true),
        ..UserPatch::default()
    };
    store
        .update_user(
            Write::new(
                at(5),
                UpdateUser {
                    id: user.id,
                    patch,
                    end_sessions: EndSessions::None,
                },
            )
            .by(by("cid-update")),
        )
        .await
        .expect("updated");
    let recorded: Vec<Event> = all(&store)
        .await
        .into_iter()
        .filter(|event| event.context.cid == "cid-update")
        .collect();
    let kinds: Vec<EventType> = recorded.iter().map(|event| event.event.kind).collect();
    assert_eq!(kinds, [EventType::UserUpdated, EventType::UserLocked]);
    let updated = &recorded[0];
    assert_eq!(updated.context, by("cid-update"));
    assert_eq!(updated.time, at(5));
    assert_eq!(
        updated.event.details.get("fields"),
        Some(&serde_json::json!(["display_name"]))
    );
    assert!(recorded[0].id < recorded[1].id);
}

async fn session_ends_are_recorded_once_per_session(store: Arc<dyn Store>) {
    let user = create_user(&store, "frank").await;
    let (first, _) = open(&store, Some(user.id), 1, 1000).await;
    let (second, _) = open(&store, Some(user.id), 2, 1000).await;

    // A login past the limit of two ends the oldest, and rotates the presented guest.
    let (guest, _) = open(&store, None, 3, 1000).await;
    let (new, _) = new_session(Some(user.id), 4, 1000);
    let new_id = new.session.id;
    let limited = OpenSession {
        replaces: Some(guest.id),
        session_limit: Some(SessionLimit {
            max: NonZeroUsize::new(2).expect("two"),
            policy: SessionLimitPolicy::EndOldest,
        }),
        ..plain_open(new)
    };
    store
        .open_session(write(at(4), limited).by(by("cid-login")))
        .await
        .expect("opened");
    assert_eq!(
        of(&store, "cid-login").await,
        [
            (
                EventType::SessionEnded,
                None,
                Some(guest.id),
                "rotated".to_owned()
            ),
            (
                EventType::SessionEnded,
                Some(user.id),
                Some(first.id),
                "session_limit".to_owned()
            ),
            (
                EventType::LoginSucceeded,
                Some(user.id),
                Some(new_id),
                String::new()
            ),
        ]
    );

    // A deletion, a logout, a bulk revocation.
    store
        .delete_session(
            write(
                at(5),
                DeleteSession {
                    id: second.id,
                    reason: SessionEndReason::Revoked,
                },
            )
            .by(by("cid-delete")),
        )
        .await
        .expect("deleted");
    assert_eq!(
        of(&store, "cid-delete").await,
        [(
            EventType::SessionEnded,
            Some(user.id),
            Some(second.id),
            "revoked".to_owned()
        )]
    );
    let (third, _) = open(&store, Some(user.id), 6, 1000).await;
    store
        .delete_session(
            write(
                at(7),
                DeleteSession {
                    id: third.id,
                    reason: SessionEndReason::Logout,
                },
            )
            .by(by("cid-logout")),
        )
        .await
        .expect("logged out");
    assert_eq!(
        of(&store, "cid-logout").await,
        [
            (
                EventType::Logout,
                Some(user.id),
                Some(third.id),
                String::new()
            ),
            (
                EventType::SessionEnded,
                Some(user.id),
                Some(third.id),
                "logout".to_owned()
            ),
        ]
    );
    // Two batches of one: still one event, with the whole count.
    open(&store, Some(user.id), 8, 1000).await;
    let revoked = store
        .delete_sessions(
            write(
                at(9),
                DeleteSessions {
                    selector: SessionSelector::User(user.id),
                    batch: 1,
                },
            )
            .by(by("cid-revoke")),
        )
        .await
        .expect("revoked");
    assert_eq!(revoked, 2, "the login's session and the last one");
    let bulk: Vec<Event> = all(&store)
        .await
        .into_iter()
        .filter(|event| event.context.cid == "cid-revoke")
        .collect();
    assert_eq!(bulk.len(), 1);
    assert_eq!(bulk[0].event.kind, EventType::SessionsRevoked);
    assert_eq!(bulk[0].event.user, Some(user.id));
    assert_eq!(
        bulk[0].event.details.get("count"),
        Some(&serde_json::json!(2))
    );

    // The sweep: one `session.expired` per session it deletes.
    let (expiring, _) = open(&store, None, 10, 20).await;
    store
        .purge_expired(write(at(30), purge(1000)).by(by("cid-sweep")))
        .await
        .expect("swept");
    assert_eq!(
        of(&store, "cid-sweep").await,
        [(
            EventType::SessionExpired,
            None,
            Some(expiring.id),
            String::new()
        )]
    );

    // Deleting the user: one event, with how many live sessions went with it.
    open(&store, Some(user.id), 31, 1000).await;
    store
        .delete_user(
            write(
                at(32),
                DeleteUser {
                    id: user.id,
                    batch: 10,
                },
            )
            .by(by("cid-delete-user")),
        )
        .await
        .expect("deleted");
    let deleted: Vec<Event> = all(&store)
        .await
        .into_iter()
        .filter(|event| event.context.cid == "cid-delete-user")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].event.kind, EventType::UserDeleted);
    assert_eq!(
        deleted[0].event.details.get("sessions_ended"),
        Some(&serde_json::json!(1))
    );
}

async fn a_refused_write_records_nothing(store: Arc<dyn Store>) {
    let before = all(&store).await.len();
    let update = UpdateUser {
        id: UserId::generate(),
        patch: UserPatch {
            is_locked: Some(true),
            ..UserPatch::default()
        },
        end_sessions: EndSessions::All,
    };
    store
        .update_user(write(at(1), update).by(by("cid-nobody")))
        .await
        .expect_err("no such user");
    let (guest, _) = new_session(None, 2, 100);
    let full = OpenSession {
        max_guest_sessions: 0,
        ..plain_open(guest)
    };
    store
        .open_session(write(at(2), full).by(by("cid-full")))
        .await
        .expect_err("no room");
    assert_eq!(all(&store).await.len(), before);
}

async fn the_claim_that_locks_a_user_out_records_it(store: Arc<dyn Store>) {
    let user = create_user(&store, "grace").await;
    let limits = throttle::limits();
    let claim = |cid: &str| {
        write(
            at(1),
            ClaimLogin {
                user_key: "grace".into(),
                address: None,
                limits,
            },
        )
        .by(by(cid))
    };
    for attempt in 0..limits.user_max_failures {
        store
            .claim_login(claim(&format!("cid-claim-{attempt}")))
            .await
            .expect("claimed");
    }
    let locked_out: Vec<Event> = all(&store)
        .await
        .into_iter()
        .filter(|event| event.event.kind == EventType::UserLockedOut)
        .collect();
    assert_eq!(
        locked_out.len(),
        1,
        "only the claim that starts the lockout"
    );
    let last = limits.user_max_failures - 1;
    assert_eq!(locked_out[0].context.cid, format!("cid-claim-{last}"));
    assert_eq!(locked_out[0].event.user, Some(user.id));
    assert_eq!(
        locked_out[0].event.details.get("lockout_secs"),
        Some(&serde_json::json!(limits.lockout.as_secs()))
    );
}

async fn acts_are_appended_and_the_feed_follows_the_log(store: Arc<dyn Store>) {
    let head = store.event_head().await.expect("head");
    assert_eq!(head, EventId::default(), "an empty log");
    let act = |cid: &str, at_secs: u64| {
        Write::new(
            at(at_secs),
            vec![NewEvent::new(EventType::LoginFailed).reason("INVALID_CREDENTIALS")],
        )
        .by(by(cid))
    };
    store
        .append_events(vec![act("cid-a", 1), act("cid-b", 2)])
        .await
        .expect("appended");
    create_user(&store, "heidi").await;
    let log = all(&store).await;
    let cids: Vec<&str> = log.iter().map(|event| event.context.cid.as_str()).collect();
    assert_eq!(cids, ["cid-a", "cid-b", ""]);

    // The feed pages through the log after a cursor, and has nothing after the head.
    let feed = settled(&store, EventId::default(), 2, 2).await;
    assert_eq!(feed.events, log[..2]);
    let feed = settled(&store, log[1].id, 10, 1).await;
    assert_eq!(feed.events, log[2..]);
    assert_eq!(store.event_head().await.expect("head"), log[2].id);
    let feed = store.event_feed(log[2].id, 10).await.expect("feed");
    assert!(feed.events.is_empty());
    assert!(!feed.pending, "nothing is written after it");

    // Listing filters and pages.
    let failed = store
        .list_events(&EventQuery {
            types: vec![EventType::LoginFailed],
            after: Some(log[0].id),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .expect("listed");
    assert_eq!(failed, log[1..2]);
    let by_time = store
        .list_events(&EventQuery {
            start: Some(at(2)),
            end: Some(at(3)),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .expect("listed");
    assert_eq!(by_time, log[1..2]);
}

/// The feed after `after`, once it holds `count` events: on PostgreSQL an event is settled
/// only once every older transaction of the cluster has ended (other tests' included).
async fn settled(store: &Arc<dyn Store>, after: EventId, limit: usize, count: usize) -> EventFeed {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let feed = store.event_feed(after, limit).await.expect("feed");
        if feed.events.len() >= count {
            return feed;
        }
        assert!(feed.pending, "{count} events are stored but not pending");
        assert!(tokio::time::Instant::now() < deadline, "never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

conformance!(the_sweep_trims_events_past_their_retention);

async fn the_sweep_trims_events_past_their_retention(store: Arc<dyn Store>) {
    create_user(&store, "ivan").await;
    store
        .append_events(vec![Write::new(
            at(100),
            vec![NewEvent::new(EventType::SessionRead)],
        )])
        .await
        .expect("appended");
    let log = all(&store).await;
    assert_eq!(log.len(), 2);
    let sweep = ssod::domain::PurgeExpired {
        event_retention: Duration::from_secs(100),
        ..purge(1)
    };
    let counts = store
        .purge_expired(write(at(150), sweep))
        .await
        .expect("swept");
    assert_eq!(counts.events, 1, "the event at 0, not the one at 100");
    assert_eq!(all(&store).await, log[1..]);
    assert!(!store.event_stored(log[0].id).await.expect("asked"));
    assert!(store.event_stored(log[1].id).await.expect("asked"));

    // A watcher whose cursor is below the trimmed event would step over it: it is told.
    let before_trimmed = EventId {
        sequence: log[0].id.sequence - 1,
        ..log[0].id
    };
    assert!(matches!(
        store.event_feed(before_trimmed, 10).await,
        Err(ssod::store::StoreError::CursorExpired)
    ));
    // At the trimmed event itself nothing after it is missing; the zero id reads what is kept.
    for cursor in [log[0].id, EventId::default()] {
        assert_eq!(settled(&store, cursor, 10, 1).await.events, log[1..]);
    }
}
