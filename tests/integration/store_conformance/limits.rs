//! Storage limits on both stores: the guest session cap and the count it keeps through every
//! way a session goes, the per-owner byte limit, and bulk revocation in batches. The
//! PostgreSQL-only tests at the end race writers against each limit.

use ssod::domain::SessionEndReason;
use std::sync::Arc;

use ssod::{
    domain::{
        DeleteSession, DeleteSessions, DeleteUser, NewAttribute, OpenSession, Owner, Session,
        SessionId, SessionSelector, SetAttributes, StoredAttribute, UserId,
    },
    store::{Store, StoreError, StoreResult},
};

use super::{
    NEVER, at, create_user, leftovers, names, new_session, open, plain, plain_open, purge, sealed,
    write,
};

conformance!(
    guest_sessions_stop_at_the_limit,
    expired_guests_count_until_the_sweep,
    guest_rotation_and_revocation_keep_the_count,
    bulk_revocation_deletes_every_batch_and_counts_the_live,
    attribute_bytes_stop_at_the_limit,
    attribute_bytes_count_only_live_rows_and_the_new_value,
    sealed_values_count_their_ciphertext,
);

/// Opens a session at `created` that expires at `expires`, under a guest limit.
async fn open_under(
    store: &Arc<dyn Store>,
    user: Option<UserId>,
    replaces: Option<SessionId>,
    limit: usize,
    created: u64,
    expires: u64,
) -> StoreResult<Session> {
    let (new, _) = new_session(user, created, expires);
    store
        .open_session(write(
            at(created),
            OpenSession {
                replaces,
                max_guest_sessions: limit,
                ..plain_open(new)
            },
        ))
        .await
}

/// How many more guests fit under `limit` at `now`: opens guests until one is refused, then
/// removes the ones it opened.
async fn room_for_guests(store: &Arc<dyn Store>, limit: usize, now: u64) -> usize {
    let mut opened = Vec::new();
    loop {
        match open_under(store, None, None, limit, now, NEVER).await {
            Ok(session) => opened.push(session.id),
            Err(StoreError::TooManyGuestSessions { limit: refused }) => {
                assert_eq!(refused, limit);
                break;
            }
            Err(error) => panic!("unexpected: {error:?}"),
        }
        assert!(opened.len() <= limit, "more guests than the limit");
    }
    let room = opened.len();
    for id in opened {
        store
            .delete_session(write(
                at(now),
                DeleteSession {
                    id,
                    reason: SessionEndReason::Revoked,
                },
            ))
            .await
            .expect("deleted");
    }
    room
}

async fn guest_sessions_stop_at_the_limit(store: Arc<dyn Store>) {
    let mut guests = Vec::new();
    for _ in 0..3 {
        guests.push(
            open_under(&store, None, None, 3, 0, NEVER)
                .await
                .expect("under the limit"),
        );
    }
    let refused = open_under(&store, None, None, 3, 0, NEVER)
        .await
        .expect_err("the fourth guest");
    assert!(
        matches!(refused, StoreError::TooManyGuestSessions { limit: 3 }),
        "{refused:?}"
    );
    // A user's session is not a guest's.
    let user = create_user(&store, "counted").await;
    open_under(&store, Some(user.id), None, 3, 0, NEVER)
        .await
        .expect("a user session is not capped");
    // Deleting a guest makes room for exactly one.
    store
        .delete_session(write(
            at(1),
            DeleteSession {
                id: guests[0].id,
                reason: SessionEndReason::Revoked,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(room_for_guests(&store, 3, 1).await, 1);
    // A larger limit applies at once: the count is of sessions, not of a configured figure.
    assert_eq!(room_for_guests(&store, 10, 1).await, 8);
}

async fn expired_guests_count_until_the_sweep(store: Arc<dyn Store>) {
    // A guest that expired at once still holds its place, as it still holds its memory.
    open_under(&store, None, None, 2, 0, 1)
        .await
        .expect("first");
    open_under(&store, None, None, 2, 0, NEVER)
        .await
        .expect("second");
    assert_eq!(room_for_guests(&store, 2, 5).await, 0);
    let swept = store
        .purge_expired(write(at(5), purge(1)))
        .await
        .expect("swept");
    assert_eq!(swept.sessions, 1);
    assert_eq!(room_for_guests(&store, 2, 5).await, 1);
}

async fn guest_rotation_and_revocation_keep_the_count(store: Arc<dyn Store>) {
    const LIMIT: usize = 4;
    let user = create_user(&store, "rotating").await;
    let guest = open_under(&store, None, None, LIMIT, 0, NEVER)
        .await
        .expect("guest");
    let other = open_under(&store, None, None, LIMIT, 0, NEVER)
        .await
        .expect("guest");
    assert_eq!(room_for_guests(&store, LIMIT, 1).await, 2);

    // Login rotates a guest into a user's session: one guest fewer.
    let signed_in = open_under(&store, Some(user.id), Some(guest.id), LIMIT, 2, NEVER)
        .await
        .expect("rotated at login");
    assert_eq!(room_for_guests(&store, LIMIT, 2).await, 3);

    // Logout rotates a user's session into a guest: one more, refused when full.
    for _ in 0..3 {
        open_under(&store, None, None, LIMIT, 3, NEVER)
            .await
            .expect("fill");
    }
    let refused = open_under(&store, None, Some(signed_in.id), LIMIT, 3, NEVER)
        .await
        .expect_err("no room for the logout's guest");
    assert!(matches!(refused, StoreError::TooManyGuestSessions { .. }));
    // Nothing of the refused rotation happened: the user's session is still there.
    assert!(
        store
            .session_by_id(signed_in.id, at(3))
            .await
            .expect("read")
            .is_some()
    );
    // A guest replacing a guest takes its place, even at the limit.
    open_under(&store, None, Some(other.id), LIMIT, 3, NEVER)
        .await
        .expect("guest to guest at the limit");
    assert_eq!(room_for_guests(&store, LIMIT, 3).await, 0);

    // Deleting a user takes none of the guests' places and frees none.
    store
        .delete_user(write(
            at(4),
            DeleteUser {
                id: user.id,
                batch: 1,
            },
        ))
        .await
        .expect("user deleted");
    assert_eq!(room_for_guests(&store, LIMIT, 4).await, 0);

    // Bulk revocation of guests frees every place, in batches smaller than the count.
    let deleted = store
        .delete_sessions(write(
            at(5),
            DeleteSessions {
                selector: SessionSelector::Guests,
                batch: 3,
            },
        ))
        .await
        .expect("revoked");
    assert_eq!(deleted, LIMIT as u64);
    assert_eq!(room_for_guests(&store, LIMIT, 5).await, LIMIT);

    // And revoking everything does too.
    for _ in 0..2 {
        open_under(&store, None, None, LIMIT, 6, NEVER)
            .await
            .expect("guest");
    }
    let deleted = store
        .delete_sessions(write(
            at(6),
            DeleteSessions {
                selector: SessionSelector::All,
                batch: 1,
            },
        ))
        .await
        .expect("revoked");
    assert_eq!(deleted, 2);
    assert_eq!(room_for_guests(&store, LIMIT, 6).await, LIMIT);
}

async fn bulk_revocation_deletes_every_batch_and_counts_the_live(store: Arc<dyn Store>) {
    let alice = create_user(&store, "alice").await;
    let bob = create_user(&store, "bob").await;
    // Alice: five live sessions and two expired; Bob: three live; four guests, one expired.
    for _ in 0..5 {
        open(&store, Some(alice.id), 0, NEVER).await;
    }
    for _ in 0..2 {
        open(&store, Some(alice.id), 0, 5).await;
    }
    for _ in 0..3 {
        open(&store, Some(bob.id), 0, NEVER).await;
    }
    for _ in 0..3 {
        open(&store, None, 0, NEVER).await;
    }
    open(&store, None, 0, 5).await;
    let revoke =
        |selector, batch| store.delete_sessions(write(at(10), DeleteSessions { selector, batch }));
    // Batches of 2 over seven rows: every row goes, the five live ones are counted.
    assert_eq!(
        revoke(SessionSelector::User(alice.id), 2)
            .await
            .expect("revoked"),
        5
    );
    assert!(
        store
            .list_sessions(alice.id, None, 100, at(0))
            .await
            .expect("listed")
            .is_empty(),
        "expired sessions are deleted too"
    );
    assert_eq!(
        store
            .list_sessions(bob.id, None, 100, at(10))
            .await
            .expect("listed")
            .len(),
        3
    );
    // A batch exactly the size of the selection, then one past it.
    assert_eq!(
        revoke(SessionSelector::Guests, 4).await.expect("revoked"),
        3
    );
    assert_eq!(revoke(SessionSelector::Guests, 4).await.expect("again"), 0);

    // User deletion takes the user's sessions in batches too.
    for _ in 0..4 {
        open(&store, Some(bob.id), 0, NEVER).await;
    }
    assert!(
        store
            .delete_user(write(
                at(10),
                DeleteUser {
                    id: bob.id,
                    batch: 3
                }
            ))
            .await
            .expect("deleted")
    );
    assert!(
        store
            .list_sessions(bob.id, None, 100, at(0))
            .await
            .expect("listed")
            .is_empty()
    );
    assert_eq!(revoke(SessionSelector::All, 1).await.expect("revoked"), 0);
    assert_eq!(leftovers(&store).await.sessions, 0);
}

/// Writes `items` to `owner` at `now` under a byte limit (and no count limit to speak of).
async fn write_bytes(
    store: &Arc<dyn Store>,
    owner: Owner,
    items: Vec<NewAttribute>,
    max_bytes: usize,
    now: u64,
) -> StoreResult<Vec<StoredAttribute>> {
    store
        .set_attributes(write(
            at(now),
            SetAttributes {
                owner,
                items,
                max_per_owner: 1000,
                max_bytes_per_owner: max_bytes,
            },
        ))
        .await
}

/// A plain JSON string value of exactly `bytes` bytes of JSON.
fn sized(name: &str, bytes: usize, expires: Option<u64>) -> NewAttribute {
    plain(name, &format!("\"{}\"", "x".repeat(bytes - 2)), expires)
}

fn assert_too_many_bytes(result: StoreResult<Vec<StoredAttribute>>, bytes: usize, limit: usize) {
    match result {
        Err(StoreError::TooManyAttributeBytes {
            bytes: refused,
            limit: refused_limit,
        }) => assert_eq!((refused, refused_limit), (bytes, limit)),
        other => panic!("expected a byte limit refusal, got {other:?}"),
    }
}

async fn attribute_bytes_stop_at_the_limit(store: Arc<dyn Store>) {
    let user = create_user(&store, "bytes").await;
    let (session, _) = open(&store, None, 0, NEVER).await;
    for owner in [Owner::Session(session.id), Owner::User(user.id)] {
        write_bytes(&store, owner, vec![sized("a", 60, None)], 100, 0)
            .await
            .expect("60 of 100");
        // Exactly at the limit.
        write_bytes(&store, owner, vec![sized("b", 40, None)], 100, 0)
            .await
            .expect("100 of 100");
        // One byte past it.
        assert_too_many_bytes(
            write_bytes(&store, owner, vec![plain("c", "1", None)], 100, 0).await,
            101,
            100,
        );
        // A multi-item write that would pass it writes none of its items.
        write_bytes(&store, owner, vec![sized("b", 10, None)], 100, 1)
            .await
            .expect("b shrinks to 10: 70 of 100");
        assert_too_many_bytes(
            write_bytes(
                &store,
                owner,
                vec![sized("d", 10, None), sized("e", 21, None)],
                100,
                1,
            )
            .await,
            101,
            100,
        );
        assert_eq!(names(&store, owner, 1).await, ["a", "b"]);
        // The count limit still answers first when both are passed.
        let refused = store
            .set_attributes(write(
                at(1),
                SetAttributes {
                    owner,
                    items: vec![sized("f", 90, None)],
                    max_per_owner: 2,
                    max_bytes_per_owner: 100,
                },
            ))
            .await
            .expect_err("both limits");
        assert!(matches!(refused, StoreError::TooManyAttributes { .. }));
    }
}

async fn attribute_bytes_count_only_live_rows_and_the_new_value(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    // 90 bytes that expire at 10: they hold their bytes until then, not after.
    write_bytes(&store, owner, vec![sized("soon", 90, Some(10))], 100, 0)
        .await
        .expect("90 of 100");
    assert_too_many_bytes(
        write_bytes(&store, owner, vec![sized("other", 20, None)], 100, 9).await,
        110,
        100,
    );
    write_bytes(&store, owner, vec![sized("other", 20, None)], 100, 10)
        .await
        .expect("the expired 90 no longer count");
    // Replacing a value counts its new size, not both: 20 → 100 fits, 101 does not.
    write_bytes(&store, owner, vec![sized("other", 100, None)], 100, 11)
        .await
        .expect("replaced at the limit");
    assert_too_many_bytes(
        write_bytes(&store, owner, vec![sized("other", 101, None)], 100, 11).await,
        101,
        100,
    );
    // Replacing the expired row counts only the new value too.
    write_bytes(
        &store,
        owner,
        vec![sized("other", 50, None), sized("soon", 50, None)],
        100,
        12,
    )
    .await
    .expect("50 + 50");
}

async fn sealed_values_count_their_ciphertext(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    let ciphertext = [7u8; 64];
    write_bytes(&store, owner, vec![sealed("secret", &ciphertext)], 64, 0)
        .await
        .expect("64 bytes of ciphertext at a limit of 64");
    assert_too_many_bytes(
        write_bytes(&store, owner, vec![sealed("more", &[1])], 64, 0).await,
        65,
        64,
    );
}

// PostgreSQL only: concurrency, where the memory store's one lock leaves nothing to race.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guest_creations_leave_at_most_the_limit() {
    const LIMIT: usize = 10;
    const CREATORS: usize = 40;
    let store: Arc<dyn Store> = super::migrated_postgres_store().await;
    let start = Arc::new(tokio::sync::Barrier::new(CREATORS));
    let creators: Vec<_> = (0..CREATORS)
        .map(|_| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                open_under(&store, None, None, LIMIT, 0, NEVER).await
            })
        })
        .collect();
    let mut created = 0;
    for creator in creators {
        match creator.await.expect("joined") {
            Ok(_) => created += 1,
            Err(StoreError::TooManyGuestSessions { .. }) => {}
            Err(error) => panic!("unexpected: {error:?}"),
        }
    }
    assert_eq!(created, LIMIT);
    assert_eq!(room_for_guests(&store, LIMIT, 1).await, 0);
    assert_eq!(leftovers(&store).await.sessions, LIMIT as u64);
    assert_eq!(room_for_guests(&store, LIMIT, 1).await, LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_cannot_pass_the_byte_limit() {
    const WRITERS: usize = 20;
    let store: Arc<dyn Store> = super::migrated_postgres_store().await;
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
    // Each writes 100 new bytes under a limit of 1,000: ten fit, whoever comes first.
    let writers: Vec<_> = (0..WRITERS)
        .map(|index| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                write_bytes(
                    &store,
                    owner,
                    vec![sized(&format!("w{index}"), 100, None)],
                    1000,
                    0,
                )
                .await
            })
        })
        .collect();
    let mut written = 0;
    for writer in writers {
        match writer.await.expect("joined") {
            Ok(_) => written += 1,
            Err(StoreError::TooManyAttributeBytes { .. }) => {}
            Err(error) => panic!("unexpected: {error:?}"),
        }
    }
    assert_eq!(written, 10);
    assert_eq!(names(&store, owner, 0).await.len(), 10);
}

/// Many writers of one new name each race from an empty owner to the count limit: exactly
/// the limit gets in, on either owner table, however the writes interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_fill_an_owner_exactly_to_the_count_limit() {
    const LIMIT: usize = 10;
    const WRITERS: usize = 40;
    let store: Arc<dyn Store> = super::migrated_postgres_store().await;
    let (session, _) = open(&store, None, 0, NEVER).await;
    let user = create_user(&store, "raced").await;
    for owner in [Owner::Session(session.id), Owner::User(user.id)] {
        let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let writers: Vec<_> = (0..WRITERS)
            .map(|index| {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    store
                        .set_attributes(write(
                            at(1),
                            SetAttributes {
                                owner,
                                items: vec![plain(&format!("w{index}"), "1", None)],
                                max_per_owner: LIMIT,
                                max_bytes_per_owner: usize::MAX,
                            },
                        ))
                        .await
                })
            })
            .collect();
        let mut written = 0;
        for writer in writers {
            match writer.await.expect("joined") {
                Ok(_) => written += 1,
                Err(StoreError::TooManyAttributes {
                    count: 11,
                    limit: LIMIT,
                }) => {}
                Err(error) => panic!("unexpected: {error:?}"),
            }
        }
        assert_eq!(written, LIMIT, "{owner:?}");
        assert_eq!(names(&store, owner, 1).await.len(), LIMIT, "{owner:?}");
    }
}
