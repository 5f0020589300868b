//! Sessions: opening (rotation, carried attributes, logins), look-up, renewal, listing,
//! deletion, the sweep.

use ssod::domain::SessionEndReason;
use std::{sync::Arc, time::Duration};

use super::{
    at, create_user, hash_of, leftovers, names, new_session, open, plain, plain_open, purge,
    sealed, set, strings, user_record, write,
};
use ssod::{
    crypto,
    domain::{
        ApprovalStatus, DeleteSession, DeleteSessions, DeleteUser, EndSessions, LoginRecord,
        OpenSession, Owner, PasswordChange, PurgeCounts, RenewOnUse, RenewSession, Session,
        SessionId, SessionPolicy, SessionSelector, StoredValue, TokenHash, UpdateUser, UserId,
        UserPatch,
    },
    store::{Store, StoreError},
};

conformance!(
    open_session_rotates_carries_and_records_the_login,
    open_session_is_all_or_nothing,
    a_login_lands_only_while_the_user_is_unchanged,
    session_by_token_respects_the_expiry_boundary,
    session_by_token_renews_when_due_and_caps,
    session_by_token_renews_only_sessions_that_authenticate,
    renew_session_moves_expiry_of_live_sessions_only,
    list_sessions_pages_by_id,
    delete_session_counts_only_live_sessions,
    delete_sessions_by_selector,
    other_sessions_of_a_user_end_in_batches,
    purge_expired_counts_and_batches,
);

async fn open_session_rotates_carries_and_records_the_login(store: Arc<dyn Store>) {
    let user = create_user(&store, "login").await;
    let (guest, guest_hash) = open(&store, None, 0, 100).await;
    set(
        &store,
        Owner::Session(guest.id),
        vec![plain("cart", "[1,2]", None), plain("tmp", "0", None)],
        0,
    )
    .await;

    let (new, ust) = new_session(Some(user.id), 10, 3610);
    let expected = new.session.clone();
    let opened = store
        .open_session(write(
            at(10),
            OpenSession {
                new,
                attributes: vec![
                    plain("cart", "[1,2]", Some(500)),
                    sealed("secret", b"\x00\xffsealed"),
                ],
                replaces: Some(guest.id),
                login: Some(LoginRecord {
                    verified_hash: hash_of("login"),
                    new_password: Some(PasswordChange {
                        password_hash: "$argon2id$changed".into(),
                        keep_history: 0,
                        password_must_change: true,
                        password_expiry: Some(at(9000)),
                    }),
                }),
                max_guest_sessions: usize::MAX,
                session_limit: None,
            },
        ))
        .await
        .expect("opened");
    assert_eq!(opened, expected);

    let found = store
        .session_by_token(&crypto::hash_ust(&ust), at(11), None)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.session, expected);
    let logged_in = found.user.expect("the session's user");
    assert_eq!(
        logged_in.last_login_at,
        Some(at(10)),
        "login time is the session's creation"
    );
    assert!(logged_in.password_must_change);
    assert_eq!(logged_in.password_expiry, Some(at(9000)));
    let record = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.password_hash, "$argon2id$changed");

    let carried = store
        .get_attributes(Owner::Session(expected.id), None, at(11))
        .await
        .expect("read");
    assert_eq!(carried.len(), 2);
    assert_eq!(carried[0].name, "cart");
    assert_eq!(carried[0].value, StoredValue::Plain("[1,2]".into()));
    assert_eq!(carried[0].expires_at, Some(at(500)));
    assert_eq!(
        (carried[0].created_at, carried[0].modified_at),
        (at(10), at(10))
    );
    assert_eq!(
        carried[1].value,
        StoredValue::Sealed {
            key_id: "k1".into(),
            ciphertext: b"\x00\xffsealed".to_vec()
        }
    );

    // The guest session is gone with its attributes.
    assert!(
        store
            .session_by_token(&guest_hash, at(11), None)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_id(guest.id, at(11))
            .await
            .expect("read")
            .is_none()
    );
    assert!(names(&store, Owner::Session(guest.id), 11).await.is_empty());

    // A login without a password change only records the time.
    let (new, _) = new_session(Some(user.id), 20, 3620);
    store
        .open_session(write(
            at(20),
            OpenSession {
                login: Some(LoginRecord {
                    verified_hash: "$argon2id$changed".into(),
                    new_password: None,
                }),
                ..plain_open(new)
            },
        ))
        .await
        .expect("opened");
    let record = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.user.last_login_at, Some(at(20)));
    assert_eq!(record.password_hash, "$argon2id$changed");
    assert!(record.user.password_must_change);

    // A session without a login record leaves the user alone.
    let (new, _) = new_session(Some(user.id), 30, 3630);
    store
        .open_session(write(at(30), plain_open(new)))
        .await
        .expect("opened");
    let record = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.user.last_login_at, Some(at(20)));
}

async fn open_session_is_all_or_nothing(store: Arc<dyn Store>) {
    let user = create_user(&store, "atomic").await;
    let (expired_guest, _) = open(&store, None, 0, 5).await;
    let attempt = |replaces: Option<SessionId>, user_id: Option<UserId>, login: bool| {
        let (new, ust) = new_session(user_id, 10, 100);
        let id = new.session.id;
        let open = OpenSession {
            new,
            attributes: vec![plain("carried", "true", None)],
            replaces,
            login: login.then(|| LoginRecord {
                verified_hash: hash_of("atomic"),
                new_password: Some(PasswordChange {
                    password_hash: "$argon2id$must-not-land".into(),
                    keep_history: 0,
                    password_must_change: true,
                    password_expiry: None,
                }),
            }),
            max_guest_sessions: usize::MAX,
            session_limit: None,
        };
        (open, id, ust)
    };
    let cases = [
        // The replaced session never existed.
        (
            attempt(Some(SessionId::generate()), Some(user.id), true),
            "missing replaced",
        ),
        // The replaced session has expired (expiry 5 <= now 10).
        (
            attempt(Some(expired_guest.id), Some(user.id), true),
            "expired replaced",
        ),
        // The user is gone, with or without a login record.
        (
            attempt(None, Some(UserId::generate()), true),
            "missing user, login",
        ),
        (
            attempt(None, Some(UserId::generate()), false),
            "missing user",
        ),
    ];
    for ((open, id, ust), case) in cases {
        let expect_user_missing = case.starts_with("missing user");
        let error = store
            .open_session(write(at(10), open))
            .await
            .expect_err(case);
        if expect_user_missing {
            assert!(
                matches!(error, StoreError::UserNotFound),
                "{case}: {error:?}"
            );
        } else {
            assert!(
                matches!(error, StoreError::SessionNotFound),
                "{case}: {error:?}"
            );
        }
        assert!(
            store
                .session_by_token(&crypto::hash_ust(&ust), at(10), None)
                .await
                .expect("read")
                .is_none(),
            "{case}: no session written"
        );
        assert!(
            store
                .session_by_id(id, at(10))
                .await
                .expect("read")
                .is_none(),
            "{case}"
        );
        assert!(
            names(&store, Owner::Session(id), 10).await.is_empty(),
            "{case}"
        );
        let record = store
            .user_by_id(user.id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(record.user.last_login_at, None, "{case}: no login recorded");
        assert_eq!(
            record.password_hash,
            user_record("atomic").password_hash,
            "{case}"
        );
    }
    // The expired guest was not ended by the refused rotation either; only it is left.
    assert_eq!(
        leftovers(&store).await,
        PurgeCounts {
            sessions: 1,
            attributes: 0,
            login_failures: 0,
            events: 0,
            account_tokens: 0,
        }
    );
}

/// A login verified against one state of the user must not land after a lock, a rejection or
/// a password reset committed in between: it fails with `UserChanged` and writes nothing.
async fn a_login_lands_only_while_the_user_is_unchanged(store: Arc<dyn Store>) {
    let user = create_user(&store, "racer").await;
    let attempt = |verified_hash: String, at_second: u64| {
        let (new, ust) = new_session(Some(user.id), at_second, at_second + 100);
        let open = OpenSession {
            login: Some(LoginRecord {
                verified_hash,
                new_password: None,
            }),
            ..plain_open(new)
        };
        (open, ust)
    };
    let patches = [
        UserPatch {
            is_locked: Some(true),
            ..UserPatch::default()
        },
        UserPatch {
            approval_status: Some(ApprovalStatus::Rejected),
            ..UserPatch::default()
        },
        UserPatch {
            password_hash: Some("$argon2id$reset".into()),
            ..UserPatch::default()
        },
    ];
    let restore = UserPatch {
        is_locked: Some(false),
        approval_status: Some(ApprovalStatus::Approved),
        ..UserPatch::default()
    };
    for patch in patches {
        store
            .update_user(write(
                at(0),
                UpdateUser {
                    id: user.id,
                    patch: patch.clone(),
                    end_sessions: EndSessions::All,
                },
            ))
            .await
            .expect("patched");
        let (open, ust) = attempt(hash_of("racer"), 10);
        let refused = store.open_session(write(at(10), open)).await;
        assert!(
            matches!(refused, Err(StoreError::UserChanged)),
            "{patch:?}: {refused:?}"
        );
        assert!(
            store
                .session_by_token(&crypto::hash_ust(&ust), at(11), None)
                .await
                .expect("read")
                .is_none(),
            "nothing written"
        );
        store
            .update_user(write(
                at(0),
                UpdateUser {
                    id: user.id,
                    patch: restore.clone(),
                    end_sessions: EndSessions::None,
                },
            ))
            .await
            .expect("restored");
    }
    let record = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.user.last_login_at, None, "no login was recorded");
    let (open, _) = attempt("$argon2id$reset".into(), 20);
    store
        .open_session(write(at(20), open))
        .await
        .expect("the current hash logs in");
    let gone = store
        .delete_user(write(
            at(0),
            DeleteUser {
                id: user.id,
                batch: 1000,
            },
        ))
        .await
        .expect("deleted");
    assert!(gone);
    let (open, _) = attempt("$argon2id$reset".into(), 30);
    assert!(matches!(
        store.open_session(write(at(30), open)).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn session_by_token_respects_the_expiry_boundary(store: Arc<dyn Store>) {
    let user = create_user(&store, "boundary").await;
    let (session, hash) = open(&store, Some(user.id), 0, 100).await;
    let (guest, guest_hash) = open(&store, None, 0, 100).await;

    let found = store
        .session_by_token(&hash, at(99), None)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.session, session);
    assert_eq!(found.user, Some(user.clone()));
    let found = store
        .session_by_id(session.id, at(99))
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.session, session);
    assert_eq!(found.user, Some(user));

    let found = store
        .session_by_token(&guest_hash, at(0), None)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.session, guest);
    assert_eq!(found.session.user_id, None);
    assert!(found.user.is_none(), "a guest session has no user");

    for now in [100, 101] {
        assert!(
            store
                .session_by_token(&hash, at(now), None)
                .await
                .expect("read")
                .is_none(),
            "expires_at == now is expired"
        );
        assert!(
            store
                .session_by_id(session.id, at(now))
                .await
                .expect("read")
                .is_none()
        );
    }
    let unknown = crypto::hash_ust(&crypto::generate_ust());
    assert!(
        store
            .session_by_token(&unknown, at(0), None)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_id(SessionId::generate(), at(0))
            .await
            .expect("read")
            .is_none()
    );
}

/// Idle timeouts of 100 s (users) and 50 s (guests), at most 250 s from creation.
const LIFETIMES: SessionPolicy = SessionPolicy {
    idle_timeout: Duration::from_secs(100),
    guest_idle_timeout: Duration::from_secs(50),
    max_lifetime: Duration::from_secs(250),
};

/// Renewal by a use at `now`, due once the last renewal is `interval` seconds old.
fn use_at(now: u64, interval: u64) -> RenewOnUse {
    RenewOnUse {
        renewed_before: at(now) - Duration::from_secs(interval),
        lifetimes: LIFETIMES,
    }
}

/// Looks `hash` up at `now` as a use with a 30 s renewal interval; expects it live.
async fn used(store: &Arc<dyn Store>, hash: &TokenHash, now: u64) -> Session {
    store
        .session_by_token(hash, at(now), Some(&use_at(now, 30)))
        .await
        .expect("read")
        .expect("live")
        .session
}

/// What the store holds for `hash` at `now`, read without renewing.
async fn stored(store: &Arc<dyn Store>, hash: &TokenHash, now: u64) -> Option<Session> {
    store
        .session_by_token(hash, at(now), None)
        .await
        .expect("read")
        .map(|found| found.session)
}

async fn session_by_token_renews_when_due_and_caps(store: Arc<dyn Store>) {
    let user = create_user(&store, "renewed").await;
    let (session, hash) = open(&store, Some(user.id), 0, 100).await;

    // Not due: renewed at 0, which is less than the interval before 20.
    assert_eq!(used(&store, &hash, 20).await, session);
    assert_eq!(stored(&store, &hash, 20).await, Some(session.clone()));

    // Due at exactly the interval: now + the idle timeout, renewed now; the user comes along.
    let found = store
        .session_by_token(&hash, at(30), Some(&use_at(30, 30)))
        .await
        .expect("read")
        .expect("live");
    let renewed = Session {
        expires_at: at(130),
        last_renewed_at: at(30),
        ..session.clone()
    };
    assert_eq!(found.session, renewed);
    assert_eq!(found.user, Some(user));
    assert_eq!(stored(&store, &hash, 30).await, Some(renewed.clone()));

    // Inside the interval again: untouched, whatever the expiry.
    assert_eq!(used(&store, &hash, 59).await, renewed);
    assert_eq!(stored(&store, &hash, 59).await, Some(renewed.clone()));

    assert_eq!(used(&store, &hash, 120).await.expires_at, at(220));
    // Capped by the absolute lifetime: 200 + 100 would pass creation + 250.
    let capped = used(&store, &hash, 200).await;
    assert_eq!(
        (capped.expires_at, capped.last_renewed_at),
        (at(250), at(200))
    );

    // Expired: not found, and a use does not revive it.
    assert!(
        store
            .session_by_token(&hash, at(250), Some(&use_at(250, 0)))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        stored(&store, &hash, 249)
            .await
            .is_some_and(|s| s.expires_at == at(250))
    );
    assert!(
        store
            .session_by_id(session.id, at(250))
            .await
            .expect("read")
            .is_none()
    );

    // A guest slides by the guest idle timeout.
    let (guest, guest_hash) = open(&store, None, 0, 50).await;
    let renewed = used(&store, &guest_hash, 40).await;
    assert_eq!(renewed.id, guest.id);
    assert_eq!(
        (renewed.expires_at, renewed.last_renewed_at),
        (at(90), at(40))
    );
}

/// Only a use that authenticates renews: a session whose user's password has expired is
/// found (the service refuses it) but keeps its expiry.
async fn session_by_token_renews_only_sessions_that_authenticate(store: Arc<dyn Store>) {
    let mut record = user_record("expired");
    record.user.password_expiry = Some(at(10));
    let user = store
        .create_user(write(at(0), record))
        .await
        .expect("user created");
    let (session, hash) = open(&store, Some(user.id), 0, 100).await;
    assert_eq!(used(&store, &hash, 40).await, session);
    assert_eq!(stored(&store, &hash, 40).await, Some(session));
}

async fn renew_session_moves_expiry_of_live_sessions_only(store: Arc<dyn Store>) {
    let (session, hash) = open(&store, None, 0, 100).await;
    let renewed = store
        .renew_session(write(
            at(50),
            RenewSession {
                id: session.id,
                expires_at: at(200),
            },
        ))
        .await
        .expect("renewed")
        .expect("live");
    assert_eq!(renewed.expires_at, at(200));
    assert_eq!(renewed.last_renewed_at, at(50));
    assert_eq!(renewed.created_at, at(0));
    let found = store
        .session_by_token(&hash, at(150), None)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.session, renewed);

    assert!(
        store
            .renew_session(write(
                at(200),
                RenewSession {
                    id: session.id,
                    expires_at: at(400)
                }
            ))
            .await
            .expect("renew")
            .is_none(),
        "an expired session is not revived"
    );
    assert!(
        store
            .session_by_token(&hash, at(201), None)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .renew_session(write(
                at(0),
                RenewSession {
                    id: SessionId::generate(),
                    expires_at: at(400)
                }
            ))
            .await
            .expect("renew")
            .is_none()
    );
}

async fn list_sessions_pages_by_id(store: Arc<dyn Store>) {
    let user = create_user(&store, "lister").await;
    let other = create_user(&store, "other").await;
    let mut live = Vec::new();
    for _ in 0..5 {
        live.push(open(&store, Some(user.id), 0, 100).await.0);
    }
    open(&store, Some(user.id), 0, 10).await;
    open(&store, Some(other.id), 0, 100).await;
    open(&store, None, 0, 100).await;
    live.sort_by_key(|session| session.id);

    let now = at(10);
    let first = store
        .list_sessions(user.id, None, 2, now)
        .await
        .expect("list");
    assert_eq!(first, live[..2]);
    let second = store
        .list_sessions(user.id, Some(first[1].id), 2, now)
        .await
        .expect("list");
    assert_eq!(second, live[2..4]);
    let last = store
        .list_sessions(user.id, Some(second[1].id), 2, now)
        .await
        .expect("list");
    assert_eq!(last, live[4..]);
    let none = store
        .list_sessions(user.id, Some(last[0].id), 2, now)
        .await
        .expect("list");
    assert!(none.is_empty());
    let all = store
        .list_sessions(user.id, None, 100, now)
        .await
        .expect("list");
    assert_eq!(all, live, "the expired session is left out");
    assert!(
        store
            .list_sessions(user.id, None, 100, at(100))
            .await
            .expect("list")
            .is_empty()
    );
}

async fn delete_session_counts_only_live_sessions(store: Arc<dyn Store>) {
    let (live, hash) = open(&store, None, 0, 100).await;
    let (expired, _) = open(&store, None, 0, 10).await;
    set(
        &store,
        Owner::Session(live.id),
        vec![plain("a", "1", None)],
        0,
    )
    .await;

    assert!(
        store
            .delete_session(write(
                at(20),
                DeleteSession {
                    id: live.id,
                    reason: SessionEndReason::Revoked
                }
            ))
            .await
            .expect("deleted")
    );
    assert!(
        store
            .session_by_token(&hash, at(20), None)
            .await
            .expect("read")
            .is_none()
    );
    assert!(names(&store, Owner::Session(live.id), 20).await.is_empty());
    assert!(
        !store
            .delete_session(write(
                at(20),
                DeleteSession {
                    id: live.id,
                    reason: SessionEndReason::Revoked
                }
            ))
            .await
            .expect("deleted twice")
    );
    assert!(
        !store
            .delete_session(write(
                at(20),
                DeleteSession {
                    id: expired.id,
                    reason: SessionEndReason::Revoked
                }
            ))
            .await
            .expect("deleted"),
        "an expired session does not count"
    );
    assert!(
        !store
            .delete_session(write(
                at(20),
                DeleteSession {
                    id: SessionId::generate(),
                    reason: SessionEndReason::Revoked,
                }
            ))
            .await
            .expect("deleted")
    );
    assert_eq!(
        leftovers(&store).await,
        PurgeCounts::default(),
        "the expired session was deleted all the same"
    );
}

/// "Log out my other devices": every session of the user but one, in batches of one here so
/// the walk past the kept session is exercised; the expired one goes uncounted.
async fn other_sessions_of_a_user_end_in_batches(store: Arc<dyn Store>) {
    let alice = create_user(&store, "alice").await;
    let bob = create_user(&store, "bob").await;
    let mut alices = Vec::new();
    for expires in [100, 100, 10, 100] {
        alices.push(open(&store, Some(alice.id), 0, expires).await.0);
    }
    let (bobs, _) = open(&store, Some(bob.id), 0, 100).await;
    let (guest, _) = open(&store, None, 0, 100).await;
    let keep = alices[1].id;
    let select = DeleteSessions {
        selector: SessionSelector::OtherSessionsOf {
            user: alice.id,
            keep,
        },
        batch: 1,
    };
    let deleted = store
        .delete_sessions(write(at(20), select))
        .await
        .expect("deleted");
    assert_eq!(
        deleted, 2,
        "two live others; the expired one is not counted"
    );
    let left: Vec<SessionId> = store
        .list_sessions(alice.id, None, 10, at(0))
        .await
        .expect("list")
        .into_iter()
        .map(|session| session.id)
        .collect();
    assert_eq!(left, [keep], "expired or not, only the kept one stays");
    for other in [bobs.id, guest.id] {
        assert!(
            store
                .session_by_id(other, at(20))
                .await
                .expect("read")
                .is_some()
        );
    }
    assert_eq!(
        store
            .delete_sessions(write(at(20), select))
            .await
            .expect("deleted"),
        0
    );
}

async fn delete_sessions_by_selector(store: Arc<dyn Store>) {
    let alice = create_user(&store, "alice").await;
    let bob = create_user(&store, "bob").await;
    let (alice_session, _) = open(&store, Some(alice.id), 0, 100).await;
    open(&store, Some(alice.id), 0, 100).await;
    open(&store, Some(alice.id), 0, 10).await;
    open(&store, Some(bob.id), 0, 100).await;
    let (guest, _) = open(&store, None, 0, 100).await;
    open(&store, None, 0, 100).await;
    open(&store, None, 0, 10).await;
    set(
        &store,
        Owner::Session(alice_session.id),
        vec![plain("a", "1", None)],
        0,
    )
    .await;
    set(
        &store,
        Owner::Session(guest.id),
        vec![plain("a", "1", None)],
        0,
    )
    .await;
    let now = at(20);

    let deleted = store
        .delete_sessions(write(
            now,
            DeleteSessions {
                selector: SessionSelector::User(alice.id),
                batch: 1000,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(deleted, 2, "the expired one goes uncounted");
    assert!(
        store
            .list_sessions(alice.id, None, 10, at(0))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        names(&store, Owner::Session(alice_session.id), 0)
            .await
            .is_empty()
    );
    assert_eq!(
        store
            .delete_sessions(write(
                now,
                DeleteSessions {
                    selector: SessionSelector::Guests,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted"),
        2
    );
    assert!(names(&store, Owner::Session(guest.id), 0).await.is_empty());
    assert_eq!(
        store
            .list_sessions(bob.id, None, 10, now)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        store
            .delete_sessions(write(
                now,
                DeleteSessions {
                    selector: SessionSelector::All,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted"),
        1
    );
    assert_eq!(leftovers(&store).await, PurgeCounts::default());
    assert_eq!(
        store
            .delete_sessions(write(
                now,
                DeleteSessions {
                    selector: SessionSelector::All,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted"),
        0
    );
    assert!(
        store.user_by_id(alice.id).await.expect("read").is_some(),
        "users stay"
    );
}

// Attributes.

async fn purge_expired_counts_and_batches(store: Arc<dyn Store>) {
    let user = create_user(&store, "sweeper").await;
    // Five expired sessions, each with one live and one expired attribute.
    for _ in 0..5 {
        let (session, _) = open(&store, None, 0, 50).await;
        set(
            &store,
            Owner::Session(session.id),
            vec![plain("live", "1", None), plain("gone", "1", Some(20))],
            0,
        )
        .await;
    }
    // Two live sessions with one expired attribute each, and one live attribute.
    let mut live = Vec::new();
    for _ in 0..2 {
        let (session, hash) = open(&store, Some(user.id), 0, 1000).await;
        set(
            &store,
            Owner::Session(session.id),
            vec![plain("keep", "1", None), plain("gone", "1", Some(100))],
            0,
        )
        .await;
        live.push((session, hash));
    }
    // Three expired user attributes and one live.
    set(
        &store,
        Owner::User(user.id),
        vec![
            plain("u1", "1", Some(10)),
            plain("u2", "1", Some(100)),
            plain("u3", "1", Some(100)),
            plain("keep", "1", Some(101)),
        ],
        0,
    )
    .await;

    // Batches of 2, smaller than every kind of row. Expiry at exactly `now` is swept.
    let counts = store
        .purge_expired(write(at(100), purge(2)))
        .await
        .expect("purged");
    assert_eq!(
        counts,
        PurgeCounts {
            sessions: 5,
            // 5 + 2 + 3 expired attributes, and the 5 live ones of the expired sessions.
            attributes: 15,
            login_failures: 0,
            events: 0,
            account_tokens: 0,
        }
    );
    assert_eq!(
        store
            .purge_expired(write(at(100), purge(2)))
            .await
            .expect("purged"),
        PurgeCounts::default()
    );
    for (session, hash) in &live {
        assert!(
            store
                .session_by_token(hash, at(100), None)
                .await
                .expect("read")
                .is_some()
        );
        assert_eq!(
            names(&store, Owner::Session(session.id), 100).await,
            strings(&["keep"])
        );
    }
    assert_eq!(
        names(&store, Owner::User(user.id), 100).await,
        strings(&["keep"])
    );
    assert_eq!(
        store
            .purge_expired(write(at(2000), purge(1)))
            .await
            .expect("purged"),
        PurgeCounts {
            sessions: 2,
            attributes: 3,
            login_failures: 0,
            events: 0,
            account_tokens: 0,
        }
    );
}
