//! The per-user session limit on both stores: only live sessions count, after the session an
//! open replaces and (with a new password) the user's other sessions have ended; the oldest
//! end first by creation time, or the open is refused with nothing changed; exact under
//! concurrent opens.

use std::{num::NonZeroUsize, sync::Arc};

use ssod::{
    domain::{
        LoginRecord, OpenSession, PasswordChange, Session, SessionId, SessionLimit,
        SessionLimitPolicy, UserId,
    },
    store::{Store, StoreError, StoreResult},
};

use super::{NEVER, at, create_user, hash_of, new_session, open, plain, plain_open, write};

conformance!(
    the_oldest_sessions_end_at_the_limit,
    a_refused_open_changes_nothing,
    only_live_sessions_count_and_a_replaced_one_frees_its_place,
    a_new_password_ends_every_other_session,
    concurrent_opens_never_pass_the_limit,
);

fn limit(max: usize, policy: SessionLimitPolicy) -> SessionLimit {
    SessionLimit {
        max: NonZeroUsize::new(max).expect("a limit above zero"),
        policy,
    }
}

/// Opens a session of `user` at `created` under `limit`, replacing `replaces`, recording a
/// login when `login` is given.
async fn open_limited(
    store: &Arc<dyn Store>,
    user: UserId,
    limit: SessionLimit,
    replaces: Option<SessionId>,
    login: Option<LoginRecord>,
    created: u64,
) -> StoreResult<Session> {
    let (new, _) = new_session(Some(user), created, NEVER);
    store
        .open_session(write(
            at(created),
            OpenSession {
                replaces,
                login,
                session_limit: Some(limit),
                ..plain_open(new)
            },
        ))
        .await
}

/// The ids of the user's live sessions at `now`, in id order.
async fn live(store: &Arc<dyn Store>, user: UserId, now: u64) -> Vec<SessionId> {
    store
        .list_sessions(user, None, 1000, at(now))
        .await
        .expect("listed")
        .into_iter()
        .map(|session| session.id)
        .collect()
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

async fn the_oldest_sessions_end_at_the_limit(store: Arc<dyn Store>) {
    let user = create_user(&store, "many").await;
    let other = create_user(&store, "bystander").await;
    let (bystander, _) = open(&store, Some(other.id), 0, NEVER).await;
    let end_oldest = limit(3, SessionLimitPolicy::EndOldest);
    let mut opened = Vec::new();
    // Created at 20, 10 and 30: age is the creation time, not the order of ids.
    for created in [20, 10, 30] {
        let session = open_limited(&store, user.id, end_oldest, None, None, created)
            .await
            .expect("within the limit");
        opened.push(session.id);
    }
    assert_eq!(live(&store, user.id, 40).await, sorted(opened.clone()));
    let fourth = open_limited(&store, user.id, end_oldest, None, None, 40)
        .await
        .expect("ends the oldest");
    assert_eq!(
        live(&store, user.id, 40).await,
        sorted(vec![opened[0], opened[2], fourth.id]),
        "the one created at 10 ended"
    );
    // A lower limit (a new configuration) brings the user within it at the next open.
    let fifth = open_limited(
        &store,
        user.id,
        limit(2, SessionLimitPolicy::EndOldest),
        None,
        None,
        50,
    )
    .await
    .expect("ends the two oldest");
    assert_eq!(
        live(&store, user.id, 50).await,
        sorted(vec![fourth.id, fifth.id])
    );
    assert_eq!(live(&store, other.id, 50).await, [bystander.id]);
}

async fn a_refused_open_changes_nothing(store: Arc<dyn Store>) {
    let user = create_user(&store, "full").await;
    let refuse = limit(2, SessionLimitPolicy::Refuse);
    let first = open_limited(&store, user.id, refuse, None, None, 1)
        .await
        .expect("first");
    let second = open_limited(&store, user.id, refuse, None, None, 2)
        .await
        .expect("second");
    let (guest, _) = open(&store, None, 0, NEVER).await;
    let (new, ust) = new_session(Some(user.id), 3, NEVER);
    let refused = store
        .open_session(write(
            at(3),
            OpenSession {
                attributes: vec![plain("carried", "true", None)],
                replaces: Some(guest.id),
                login: Some(LoginRecord {
                    verified_hash: hash_of("full"),
                    new_password: None,
                }),
                session_limit: Some(refuse),
                ..plain_open(new)
            },
        ))
        .await
        .expect_err("past the limit");
    assert!(
        matches!(refused, StoreError::SessionLimitReached { limit: 2 }),
        "{refused:?}"
    );
    assert_eq!(
        live(&store, user.id, 3).await,
        sorted(vec![first.id, second.id])
    );
    assert!(
        store
            .session_by_token(&ssod::crypto::hash_ust(&ust), at(3), None)
            .await
            .expect("read")
            .is_none(),
        "the refused session was not stored"
    );
    assert!(
        store
            .session_by_id(guest.id, at(3))
            .await
            .expect("read")
            .is_some(),
        "the session it would replace is still there"
    );
    let record = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.user.last_login_at, None, "no login recorded");
}

async fn only_live_sessions_count_and_a_replaced_one_frees_its_place(store: Arc<dyn Store>) {
    let user = create_user(&store, "expiring").await;
    let refuse = limit(2, SessionLimitPolicy::Refuse);
    // One that expires at 5 and one that lives on.
    let (new, _) = new_session(Some(user.id), 0, 5);
    store
        .open_session(write(
            at(0),
            OpenSession {
                session_limit: Some(refuse),
                ..plain_open(new)
            },
        ))
        .await
        .expect("expiring");
    let lasting = open_limited(&store, user.id, refuse, None, None, 1)
        .await
        .expect("lasting");
    let status = open_limited(&store, user.id, refuse, None, None, 4)
        .await
        .expect_err("both live at 4");
    assert!(matches!(status, StoreError::SessionLimitReached { .. }));
    let third = open_limited(&store, user.id, refuse, None, None, 5)
        .await
        .expect("the expired one does not count at 5");
    // At the limit, a login that replaces one of the user's own sessions takes its place.
    let rotated = open_limited(&store, user.id, refuse, Some(lasting.id), None, 6)
        .await
        .expect("a rotation adds no session");
    assert_eq!(
        live(&store, user.id, 6).await,
        sorted(vec![third.id, rotated.id])
    );
}

async fn a_new_password_ends_every_other_session(store: Arc<dyn Store>) {
    let user = create_user(&store, "renewing").await;
    let refuse = limit(2, SessionLimitPolicy::Refuse);
    for created in [1, 2] {
        open_limited(&store, user.id, refuse, None, None, created)
            .await
            .expect("within the limit");
    }
    let login = LoginRecord {
        verified_hash: hash_of("renewing"),
        new_password: Some(PasswordChange {
            password_hash: "$argon2id$renewed".into(),
            keep_history: 0,
            password_must_change: false,
            password_expiry: None,
        }),
    };
    let renewed = open_limited(&store, user.id, refuse, None, Some(login), 3)
        .await
        .expect("the others end first, so the limit is not reached");
    assert_eq!(live(&store, user.id, 3).await, [renewed.id]);
}

/// Twenty opens at once for one user, under each policy: never more than the limit live,
/// and under `Refuse` exactly the limit admitted. Half record a login (which locks the user
/// row by updating it), half do not (the store locks it itself).
async fn concurrent_opens_never_pass_the_limit(store: Arc<dyn Store>) {
    const LIMIT: usize = 3;
    const OPENS: usize = 20;
    for (name, policy) in [
        ("racing-end-oldest", SessionLimitPolicy::EndOldest),
        ("racing-refuse", SessionLimitPolicy::Refuse),
    ] {
        let user = create_user(&store, name).await;
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..OPENS {
            let store = Arc::clone(&store);
            let login = (index % 2 == 0).then(|| LoginRecord {
                verified_hash: hash_of(name),
                new_password: None,
            });
            tasks.spawn(async move {
                open_limited(&store, user.id, limit(LIMIT, policy), None, login, 10).await
            });
        }
        let mut admitted = 0;
        for result in tasks.join_all().await {
            match result {
                Ok(_) => admitted += 1,
                Err(StoreError::SessionLimitReached { limit }) => assert_eq!(limit, LIMIT),
                Err(error) => panic!("unexpected: {error:?}"),
            }
        }
        let left = live(&store, user.id, 10).await.len();
        match policy {
            SessionLimitPolicy::EndOldest => assert_eq!((admitted, left), (OPENS, LIMIT)),
            SessionLimitPolicy::Refuse => assert_eq!((admitted, left), (LIMIT, LIMIT)),
        }
    }
}
