//! The store conformance suite: every test is written once against `Arc<dyn Store>` and runs
//! on both stores (`name::memory`, `name::postgres`), so the PostgreSQL store is held to the
//! in-memory store's semantics. Time is explicit: each test passes its own `now`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ssod::{
    crypto,
    domain::{
        ApprovalStatus, DeleteAttributes, DeleteSession, DeleteSessions, DeleteUser, EndSessions,
        LoginRecord, NewAttribute, NewSession, OpenSession, Owner, PasswordChange, Profile,
        PurgeCounts, PurgeExpired, RenewSession, Session, SessionId, SessionSelector,
        SetAttributeExpiry, SetAttributes, StoredAttribute, StoredValue, TokenHash, UpdateUser,
        User, UserId, UserPatch, UserQuery, UserRecord, Write,
    },
    store::{
        Store, StoreError,
        memory::MemoryStore,
        postgres::{PgSettings, PostgresStore},
    },
};

/// Runs each suite function on both stores: `name::memory` and `name::postgres`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory_store()).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(super::postgres_store().await).await;
            }
        }
    )*};
}

conformance!(
    ping_answers,
    user_round_trip,
    usernames_are_unique_case_insensitively,
    list_users_pages_filters_and_counts,
    list_users_prefix_is_literal,
    update_user_patches_only_given_fields,
    update_user_ends_the_chosen_sessions,
    delete_user_cascades_to_sessions_and_attributes,
    open_session_rotates_carries_and_records_the_login,
    open_session_is_all_or_nothing,
    a_login_lands_only_while_the_user_is_unchanged,
    session_by_token_respects_the_expiry_boundary,
    renew_session_moves_expiry_of_live_sessions_only,
    list_sessions_pages_by_id,
    delete_session_counts_only_live_sessions,
    delete_sessions_by_selector,
    set_attributes_upserts_and_resets_expired_rows,
    set_attributes_enforces_the_per_owner_limit,
    set_attributes_requires_a_live_owner,
    attribute_reads_filter_expired_rows,
    delete_attributes_counts_live_rows,
    set_attribute_expiry_touches_live_rows_only,
    purge_expired_counts_and_batches,
);

mod postgres_only;

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
                .session_by_token(&crypto::hash_ust(&ust), at(11))
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
        .delete_user(write(at(0), DeleteUser { id: user.id }))
        .await
        .expect("deleted");
    assert!(gone);
    let (open, _) = attempt("$argon2id$reset".into(), 30);
    assert!(matches!(
        store.open_session(write(at(30), open)).await,
        Err(StoreError::UserNotFound)
    ));
}

pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

pub async fn postgres_store() -> Arc<dyn Store> {
    migrated_postgres_store().await
}

/// A `PostgresStore` on a fresh, migrated database.
pub async fn migrated_postgres_store() -> Arc<PostgresStore> {
    let url = crate::pg::fresh_database_url().await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    store.migrate().await.expect("migrations apply");
    Arc::new(store)
}

// Fixtures.

/// `secs` after a fixed instant (1970-01-12, far from any real clock).
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

const NEVER: u64 = 1_000_000_000;

/// A store write at `now`.
pub fn write<C>(now: SystemTime, command: C) -> Write<C> {
    Write { now, command }
}

pub fn user_record(username: &str) -> UserRecord {
    UserRecord {
        user: User {
            id: UserId::generate(),
            username: username.into(),
            profile: Profile {
                email: format!("{username}@example.test"),
                display_name: format!("The {username}"),
                first_name: "First".into(),
                middle_name: String::new(),
                last_name: "Last".into(),
            },
            is_super_user: false,
            is_locked: false,
            approval_status: ApprovalStatus::Approved,
            password_must_change: false,
            password_expiry: None,
            created_at: at(0),
            last_login_at: None,
        },
        password_hash: hash_of(username),
    }
}

/// The (fake) password hash `user_record` gives a user.
pub fn hash_of(username: &str) -> String {
    format!("$argon2id$v=19$fake${username}")
}

pub async fn create_user(store: &Arc<dyn Store>, username: &str) -> User {
    store
        .create_user(write(at(0), user_record(username)))
        .await
        .expect("user created")
}

/// A session created at `created` that expires at `expires`, and its UST.
pub fn new_session(user: Option<UserId>, created: u64, expires: u64) -> (NewSession, String) {
    let ust = crypto::generate_ust();
    let session = Session {
        id: SessionId::generate(),
        user_id: user,
        current_app: "app".into(),
        remote_addr: "192.0.2.1".into(),
        user_agent: "agent/1".into(),
        created_at: at(created),
        expires_at: at(expires),
        last_renewed_at: at(created),
    };
    (
        NewSession {
            session,
            token_hash: crypto::hash_ust(&ust),
        },
        ust,
    )
}

pub fn plain_open(new: NewSession) -> OpenSession {
    OpenSession {
        new,
        attributes: Vec::new(),
        replaces: None,
        login: None,
    }
}

/// Opens a session at `created` (also the `now` of the call); returns it and its token hash.
pub async fn open(
    store: &Arc<dyn Store>,
    user: Option<UserId>,
    created: u64,
    expires: u64,
) -> (Session, TokenHash) {
    let (new, _) = new_session(user, created, expires);
    let hash = new.token_hash;
    let session = store
        .open_session(write(at(created), plain_open(new)))
        .await
        .expect("session opens");
    (session, hash)
}

pub fn plain(name: &str, json: &str, expires: Option<u64>) -> NewAttribute {
    NewAttribute {
        name: name.into(),
        value: StoredValue::Plain(json.into()),
        expires_at: expires.map(at),
    }
}

fn sealed(name: &str, bytes: &[u8]) -> NewAttribute {
    NewAttribute {
        name: name.into(),
        value: StoredValue::Sealed {
            key_id: "k1".into(),
            ciphertext: bytes.to_vec(),
        },
        expires_at: None,
    }
}

async fn set(
    store: &Arc<dyn Store>,
    owner: Owner,
    items: Vec<NewAttribute>,
    now: u64,
) -> Vec<StoredAttribute> {
    store
        .set_attributes(write(
            at(now),
            SetAttributes {
                owner,
                items,
                max_per_owner: 1000,
            },
        ))
        .await
        .expect("attributes set")
}

async fn names(store: &Arc<dyn Store>, owner: Owner, now: u64) -> Vec<String> {
    store
        .attribute_names(owner, None, at(now))
        .await
        .expect("names read")
}

/// Everything the store still holds, swept at the end of time: what a test left behind.
async fn leftovers(store: &Arc<dyn Store>) -> PurgeCounts {
    store
        .purge_expired(write(at(NEVER * 10), PurgeExpired { batch: 1000 }))
        .await
        .expect("purge")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

// Users.

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}

async fn user_round_trip(store: Arc<dyn Store>) {
    let mut record = user_record("Grace");
    record.user.is_super_user = true;
    record.user.password_must_change = true;
    record.user.password_expiry = Some(at(500));
    record.user.approval_status = ApprovalStatus::Pending;
    record.user.profile.middle_name = "Brewster Ünïcode".into();
    let created = store
        .create_user(write(at(0), record.clone()))
        .await
        .expect("created");
    assert_eq!(created, record.user);

    let by_id = store
        .user_by_id(created.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_id.user, record.user);
    assert_eq!(by_id.password_hash, record.password_hash);

    for spelling in ["Grace", "grace", "GRACE", "gRaCe"] {
        let found = store
            .user_by_username(spelling)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("{spelling} not found"));
        assert_eq!(found.user.id, created.id);
        assert_eq!(found.user.username, "Grace", "the spelling is kept");
    }
    assert!(
        store
            .user_by_username("grac")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .user_by_username("grace ")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .user_by_id(UserId::generate())
            .await
            .expect("read")
            .is_none()
    );
}

async fn usernames_are_unique_case_insensitively(store: Arc<dyn Store>) {
    let first = create_user(&store, "Alice").await;
    for spelling in ["Alice", "alice", "ALICE"] {
        let error = store
            .create_user(write(at(0), user_record(spelling)))
            .await
            .expect_err("duplicate refused");
        assert!(
            matches!(error, StoreError::UsernameTaken),
            "{spelling}: {error:?}"
        );
    }
    create_user(&store, "Alicia").await;
    // Beyond ASCII too (the test cluster runs in a UTF-8 locale).
    create_user(&store, "Élodie").await;
    let error = store
        .create_user(write(at(0), user_record("éLODIE")))
        .await
        .expect_err("duplicate refused");
    assert!(matches!(error, StoreError::UsernameTaken), "{error:?}");
    let found = store.user_by_username("ÉLODIE").await.expect("read");
    assert_eq!(found.expect("found").user.username, "Élodie");
    let found = store
        .user_by_username("alice")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        found.user.id, first.id,
        "the refused inserts changed nothing"
    );
    let page = store
        .list_users(&UserQuery {
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.total_size, 3);
}

async fn list_users_pages_filters_and_counts(store: Arc<dyn Store>) {
    for name in ["bob", "Albert", "alice", "ALFRED", "carol", "alan"] {
        create_user(&store, name).await;
    }
    let mut pending = user_record("alma");
    pending.user.approval_status = ApprovalStatus::Pending;
    store
        .create_user(write(at(0), pending))
        .await
        .expect("created");
    let mut rejected = user_record("Dora");
    rejected.user.approval_status = ApprovalStatus::Rejected;
    store
        .create_user(write(at(0), rejected))
        .await
        .expect("created");

    let list = |prefix: &str, status: Option<ApprovalStatus>, after: Option<&str>, limit| {
        let query = UserQuery {
            username_prefix: prefix.into(),
            approval_status: status,
            after: after.map(str::to_owned),
            limit,
        };
        let store = Arc::clone(&store);
        async move {
            let page = store.list_users(&query).await.expect("list");
            let names: Vec<String> = page.users.into_iter().map(|user| user.username).collect();
            (names, page.total_size)
        }
    };

    let (all, total) = list("", None, None, 100).await;
    assert_eq!(
        all,
        strings(&[
            "alan", "Albert", "ALFRED", "alice", "alma", "bob", "carol", "Dora"
        ]),
        "ordered by lower-cased username"
    );
    assert_eq!(total, 8);

    let (page, total) = list("AL", None, None, 2).await;
    assert_eq!(page, strings(&["alan", "Albert"]));
    assert_eq!(total, 5, "the total counts every match, not the page");
    let (page, total) = list("al", None, Some("albert"), 2).await;
    assert_eq!(page, strings(&["ALFRED", "alice"]));
    assert_eq!(total, 5);
    // The cursor is a username as stored; the store folds its case like the key's.
    let (page, _) = list("al", None, Some("Albert"), 2).await;
    assert_eq!(page, strings(&["ALFRED", "alice"]));
    let (page, _) = list("al", None, Some("alice"), 2).await;
    assert_eq!(page, strings(&["alma"]));
    let (page, total) = list("al", None, Some("alma"), 2).await;
    assert!(page.is_empty());
    assert_eq!(total, 5, "an empty page still has the total");

    let (page, total) = list("al", Some(ApprovalStatus::Approved), None, 100).await;
    assert_eq!(page, strings(&["alan", "Albert", "ALFRED", "alice"]));
    assert_eq!(total, 4);
    let (page, total) = list("", Some(ApprovalStatus::Pending), None, 100).await;
    assert_eq!((page, total), (strings(&["alma"]), 1));
    let (page, total) = list("", Some(ApprovalStatus::Rejected), None, 100).await;
    assert_eq!((page, total), (strings(&["Dora"]), 1));

    let (page, total) = list("zed", None, None, 100).await;
    assert_eq!((page.len(), total), (0, 0));
    let (page, total) = list("", None, None, 0).await;
    assert_eq!((page.len(), total), (0, 8));
}

async fn list_users_prefix_is_literal(store: Arc<dyn Store>) {
    for name in ["a_b", "axb", "a%c", "abc", "a\\d"] {
        create_user(&store, name).await;
    }
    for (prefix, expected) in [
        ("a_", vec!["a_b"]),
        ("a%", vec!["a%c"]),
        ("a\\", vec!["a\\d"]),
        ("a", vec!["a%c", "a\\d", "a_b", "abc", "axb"]),
    ] {
        let page = store
            .list_users(&UserQuery {
                username_prefix: prefix.into(),
                limit: 100,
                ..UserQuery::default()
            })
            .await
            .expect("list");
        let names: Vec<&str> = page
            .users
            .iter()
            .map(|user| user.username.as_str())
            .collect();
        assert_eq!(names, expected, "prefix {prefix:?}, ordered by code point");
        assert_eq!(page.total_size, expected.len() as u64);
    }
}

async fn update_user_patches_only_given_fields(store: Arc<dyn Store>) {
    let user = create_user(&store, "patchy").await;
    let other = create_user(&store, "bystander").await;
    let patch = UserPatch {
        email: Some("new@example.test".into()),
        last_name: Some(String::new()),
        is_locked: Some(true),
        approval_status: Some(ApprovalStatus::Rejected),
        password_hash: Some("$argon2id$new".into()),
        password_must_change: Some(true),
        password_expiry: Some(Some(at(900))),
        ..UserPatch::default()
    };
    let updated = store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch: patch.clone(),
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    let mut expected = user.clone();
    expected.profile.email = "new@example.test".into();
    expected.profile.last_name = String::new();
    expected.is_locked = true;
    expected.approval_status = ApprovalStatus::Rejected;
    expected.password_must_change = true;
    expected.password_expiry = Some(at(900));
    assert_eq!(updated, expected);
    let stored = store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(stored.user, expected);
    assert_eq!(stored.password_hash, "$argon2id$new");

    // An empty patch changes nothing; `Some(None)` clears the password expiry.
    let same = store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch: UserPatch::default(),
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    assert_eq!(same, expected);
    let cleared = store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch: UserPatch {
                    password_expiry: Some(None),
                    is_super_user: Some(true),
                    display_name: Some("Renamed".into()),
                    ..UserPatch::default()
                },
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    assert_eq!(cleared.password_expiry, None);
    assert!(cleared.is_super_user);
    assert_eq!(cleared.profile.display_name, "Renamed");
    assert_eq!(cleared.profile.email, "new@example.test");

    let untouched = store
        .user_by_id(other.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(untouched.user, other);

    let error = store
        .update_user(write(
            at(0),
            UpdateUser {
                id: UserId::generate(),
                patch: patch.clone(),
                end_sessions: EndSessions::All,
            },
        ))
        .await
        .expect_err("missing user");
    assert!(matches!(error, StoreError::UserNotFound), "{error:?}");
}

async fn update_user_ends_the_chosen_sessions(store: Arc<dyn Store>) {
    let user = create_user(&store, "sessioned").await;
    let other = create_user(&store, "other").await;
    let (kept, _) = open(&store, Some(user.id), 0, 100).await;
    let (ended, _) = open(&store, Some(user.id), 0, 100).await;
    let (_expired, _) = open(&store, Some(user.id), 0, 10).await;
    let (others, _) = open(&store, Some(other.id), 0, 100).await;
    let (guest, _) = open(&store, None, 0, 100).await;
    set(
        &store,
        Owner::Session(ended.id),
        vec![plain("a", "1", None)],
        0,
    )
    .await;

    store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch: UserPatch::default(),
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    for id in [kept.id, ended.id] {
        assert!(
            store
                .session_by_id(id, at(20))
                .await
                .expect("read")
                .is_some()
        );
    }

    store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch: UserPatch::default(),
                end_sessions: EndSessions::AllBut(kept.id),
            },
        ))
        .await
        .expect("updated");
    assert!(
        store
            .session_by_id(kept.id, at(20))
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .session_by_id(ended.id, at(20))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .get_attributes(Owner::Session(ended.id), None, at(20))
            .await
            .expect("read")
            .is_empty(),
        "an ended session's attributes go with it"
    );

    store
        .update_user(write(
            at(0),
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
        .expect("updated");
    assert!(
        store
            .session_by_id(kept.id, at(20))
            .await
            .expect("read")
            .is_none()
    );
    for id in [others.id, guest.id] {
        assert!(
            store
                .session_by_id(id, at(20))
                .await
                .expect("read")
                .is_some()
        );
    }
    // The expired session went too: only the other user's session and the guest are left.
    assert_eq!(
        leftovers(&store).await,
        PurgeCounts {
            sessions: 2,
            attributes: 0
        }
    );
}

async fn delete_user_cascades_to_sessions_and_attributes(store: Arc<dyn Store>) {
    let user = create_user(&store, "doomed").await;
    let other = create_user(&store, "survivor").await;
    let (session, hash) = open(&store, Some(user.id), 0, 100).await;
    let (_expired, _) = open(&store, Some(user.id), 0, 5).await;
    let (other_session, other_hash) = open(&store, Some(other.id), 0, 100).await;
    set(
        &store,
        Owner::Session(session.id),
        vec![plain("s", "1", None)],
        0,
    )
    .await;
    set(
        &store,
        Owner::User(user.id),
        vec![plain("u", "1", None), plain("v", "2", Some(50))],
        0,
    )
    .await;
    set(
        &store,
        Owner::User(other.id),
        vec![plain("u", "1", None)],
        0,
    )
    .await;
    set(
        &store,
        Owner::Session(other_session.id),
        vec![plain("s", "1", None)],
        0,
    )
    .await;

    assert!(
        store
            .delete_user(write(at(0), DeleteUser { id: user.id }))
            .await
            .expect("deleted")
    );
    assert!(store.user_by_id(user.id).await.expect("read").is_none());
    assert!(
        store
            .user_by_username("doomed")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_token(&hash, at(1))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        names(&store, Owner::Session(session.id), 1)
            .await
            .is_empty()
    );
    assert!(names(&store, Owner::User(user.id), 1).await.is_empty());
    assert!(
        !store
            .delete_user(write(at(0), DeleteUser { id: user.id }))
            .await
            .expect("deleted twice"),
        "already gone"
    );
    // The name is free again.
    create_user(&store, "DOOMED").await;

    let survivor = store
        .session_by_token(&other_hash, at(1))
        .await
        .expect("read");
    assert_eq!(
        survivor.expect("kept").user.map(|user| user.id),
        Some(other.id)
    );
    assert_eq!(
        names(&store, Owner::User(other.id), 1).await,
        strings(&["u"])
    );
    // Nothing of the deleted user is left behind for the sweep: only the other user's
    // session and its attribute (its user attribute never expires).
    assert_eq!(
        leftovers(&store).await,
        PurgeCounts {
            sessions: 1,
            attributes: 1
        }
    );
}

// Sessions.

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
                        password_must_change: true,
                        password_expiry: Some(at(9000)),
                    }),
                }),
            },
        ))
        .await
        .expect("opened");
    assert_eq!(opened, expected);

    let found = store
        .session_by_token(&crypto::hash_ust(&ust), at(11))
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
            .session_by_token(&guest_hash, at(11))
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
                    password_must_change: true,
                    password_expiry: None,
                }),
            }),
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
                .session_by_token(&crypto::hash_ust(&ust), at(10))
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
            attributes: 0
        }
    );
}

async fn session_by_token_respects_the_expiry_boundary(store: Arc<dyn Store>) {
    let user = create_user(&store, "boundary").await;
    let (session, hash) = open(&store, Some(user.id), 0, 100).await;
    let (guest, guest_hash) = open(&store, None, 0, 100).await;

    let found = store
        .session_by_token(&hash, at(99))
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
        .session_by_token(&guest_hash, at(0))
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.session, guest);
    assert_eq!(found.session.user_id, None);
    assert!(found.user.is_none(), "a guest session has no user");

    for now in [100, 101] {
        assert!(
            store
                .session_by_token(&hash, at(now))
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
            .session_by_token(&unknown, at(0))
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
        .session_by_token(&hash, at(150))
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
            .session_by_token(&hash, at(201))
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
            .delete_session(write(at(20), DeleteSession { id: live.id }))
            .await
            .expect("deleted")
    );
    assert!(
        store
            .session_by_token(&hash, at(20))
            .await
            .expect("read")
            .is_none()
    );
    assert!(names(&store, Owner::Session(live.id), 20).await.is_empty());
    assert!(
        !store
            .delete_session(write(at(20), DeleteSession { id: live.id }))
            .await
            .expect("deleted twice")
    );
    assert!(
        !store
            .delete_session(write(at(20), DeleteSession { id: expired.id }))
            .await
            .expect("deleted"),
        "an expired session does not count"
    );
    assert!(
        !store
            .delete_session(write(
                at(20),
                DeleteSession {
                    id: SessionId::generate()
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
                    selector: SessionSelector::Guests
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
                    selector: SessionSelector::All
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
                    selector: SessionSelector::All
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

async fn set_attributes_upserts_and_resets_expired_rows(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    let written = set(
        &store,
        owner,
        vec![
            plain("b", "\"two\"", None),
            plain("a", "{\"x\":1}", Some(100)),
            sealed("c", b"\x01\x02"),
        ],
        0,
    )
    .await;
    let written_names: Vec<&str> = written.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        written_names,
        ["b", "a", "c"],
        "returned in the order given"
    );
    assert_eq!(written[1].created_at, at(0));
    assert_eq!(written[1].modified_at, at(0));
    assert_eq!(written[1].expires_at, Some(at(100)));
    assert_eq!(written[1].value, StoredValue::Plain("{\"x\":1}".into()));

    // Replacing a live row keeps its creation time.
    let replaced = set(&store, owner, vec![plain("a", "2", Some(100))], 50).await;
    assert_eq!(replaced[0].created_at, at(0));
    assert_eq!(replaced[0].modified_at, at(50));
    assert_eq!(replaced[0].value, StoredValue::Plain("2".into()));

    // At 100 "a" has expired but is not swept; writing it again starts it afresh.
    assert_eq!(names(&store, owner, 100).await, strings(&["b", "c"]));
    let renewed = set(&store, owner, vec![plain("a", "3", None)], 150).await;
    assert_eq!(
        renewed[0].created_at,
        at(150),
        "an expired row's creation is reset"
    );
    assert_eq!(renewed[0].modified_at, at(150));
    assert_eq!(renewed[0].expires_at, None);

    // A sealed value can replace a plain one and back, in place.
    let sealed_now = set(&store, owner, vec![sealed("b", b"\x00")], 160).await;
    assert_eq!(sealed_now[0].created_at, at(0));
    let stored = store
        .get_attributes(owner, None, at(170))
        .await
        .expect("read");
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0], renewed[0]);
    assert_eq!(stored[1], sealed_now[0]);
    assert_eq!(
        stored[2].value,
        StoredValue::Sealed {
            key_id: "k1".into(),
            ciphertext: vec![1, 2]
        }
    );

    // User attributes are a separate namespace of the same names.
    let user = create_user(&store, "owner").await;
    set(
        &store,
        Owner::User(user.id),
        vec![plain("a", "\"user\"", None)],
        0,
    )
    .await;
    let user_values = store
        .get_attributes(Owner::User(user.id), None, at(0))
        .await
        .expect("read");
    assert_eq!(user_values.len(), 1);
    assert_eq!(user_values[0].value, StoredValue::Plain("\"user\"".into()));
    let empty = set(&store, owner, Vec::new(), 170).await;
    assert!(empty.is_empty());
}

async fn set_attributes_enforces_the_per_owner_limit(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let user = create_user(&store, "limited").await;
    for owner in [Owner::Session(session.id), Owner::User(user.id)] {
        let set_limited = |items: Vec<NewAttribute>, now: u64| {
            let store = Arc::clone(&store);
            async move {
                store
                    .set_attributes(write(
                        at(now),
                        SetAttributes {
                            owner,
                            items,
                            max_per_owner: 3,
                        },
                    ))
                    .await
            }
        };
        set_limited(
            vec![
                plain("a", "1", None),
                plain("b", "1", None),
                plain("c", "1", None),
            ],
            0,
        )
        .await
        .expect("exactly at the limit");

        let error = set_limited(vec![plain("a", "2", None), plain("d", "2", None)], 1)
            .await
            .expect_err("one over");
        assert!(
            matches!(error, StoreError::TooManyAttributes { count: 4, limit: 3 }),
            "{error:?}"
        );
        let stored = store
            .get_attributes(owner, None, at(1))
            .await
            .expect("read");
        let values: Vec<(&str, &StoredValue)> =
            stored.iter().map(|a| (a.name.as_str(), &a.value)).collect();
        let one = StoredValue::Plain("1".into());
        assert_eq!(
            values,
            [("a", &one), ("b", &one), ("c", &one)],
            "nothing written"
        );
        assert!(stored.iter().all(|a| a.modified_at == at(0)));

        set_limited(vec![plain("a", "3", None)], 2)
            .await
            .expect("replacing stays at the limit");

        // An expired, unswept row does not count.
        store
            .delete_attributes(write(
                at(3),
                DeleteAttributes {
                    owner,
                    names: strings(&["c"]),
                },
            ))
            .await
            .expect("deleted");
        set_limited(vec![plain("c", "1", Some(10))], 3)
            .await
            .expect("back at the limit");
        set_limited(vec![plain("d", "1", None)], 5)
            .await
            .expect_err("c is still live at 5");
        set_limited(vec![plain("d", "1", None)], 10)
            .await
            .expect("c expired at 10");
        assert_eq!(names(&store, owner, 10).await, strings(&["a", "b", "d"]));
        // Replacing the expired row itself makes it live again, which counts.
        let error = set_limited(vec![plain("c", "1", None)], 11)
            .await
            .expect_err("over");
        assert!(
            matches!(error, StoreError::TooManyAttributes { count: 4, limit: 3 }),
            "{error:?}"
        );
    }
}

async fn set_attributes_requires_a_live_owner(store: Arc<dyn Store>) {
    let (expired, _) = open(&store, None, 0, 10).await;
    let cases = [
        (Owner::Session(SessionId::generate()), "missing session"),
        (Owner::Session(expired.id), "expired session"),
        (Owner::User(UserId::generate()), "missing user"),
    ];
    for (owner, case) in cases {
        let error = store
            .set_attributes(write(
                at(10),
                SetAttributes {
                    owner,
                    items: vec![plain("a", "1", None)],
                    max_per_owner: 1000,
                },
            ))
            .await
            .expect_err(case);
        match owner {
            Owner::Session(_) => assert!(
                matches!(error, StoreError::SessionNotFound),
                "{case}: {error:?}"
            ),
            Owner::User(_) => assert!(
                matches!(error, StoreError::UserNotFound),
                "{case}: {error:?}"
            ),
        }
        assert!(
            names(&store, owner, 0).await.is_empty(),
            "{case}: nothing written"
        );
    }
}

async fn attribute_reads_filter_expired_rows(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    set(
        &store,
        owner,
        vec![
            plain("b", "1", None),
            plain("a", "2", Some(100)),
            plain("B", "3", Some(50)),
            plain("_x", "4", None),
            plain("é", "5", None),
        ],
        0,
    )
    .await;
    assert_eq!(
        names(&store, owner, 0).await,
        strings(&["B", "_x", "a", "b", "é"]),
        "sorted by code point"
    );
    assert_eq!(
        names(&store, owner, 50).await,
        strings(&["_x", "a", "b", "é"]),
        "50 is expired at 50"
    );
    assert_eq!(names(&store, owner, 100).await, strings(&["_x", "b", "é"]));

    let wanted = strings(&["a", "B", "missing", "b"]);
    let got = store
        .get_attributes(owner, Some(&wanted), at(49))
        .await
        .expect("read");
    let got_names: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        got_names,
        ["B", "a", "b"],
        "absent names are left out, the rest sorted"
    );
    let got = store
        .get_attributes(owner, Some(&wanted), at(50))
        .await
        .expect("read");
    let got_names: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(got_names, ["a", "b"]);
    let named = store
        .attribute_names(owner, Some(&wanted), at(100))
        .await
        .expect("read");
    assert_eq!(named, strings(&["b"]));
    let none = store
        .get_attributes(owner, Some(&[]), at(0))
        .await
        .expect("read");
    assert!(none.is_empty(), "no names asked, none returned");
    assert!(
        store
            .get_attributes(Owner::Session(SessionId::generate()), None, at(0))
            .await
            .expect("read")
            .is_empty()
    );
}

async fn delete_attributes_counts_live_rows(store: Arc<dyn Store>) {
    let user = create_user(&store, "deleter").await;
    let owner = Owner::User(user.id);
    set(
        &store,
        owner,
        vec![
            plain("live", "1", None),
            plain("expired", "1", Some(10)),
            plain("kept", "1", None),
        ],
        0,
    )
    .await;
    let deleted = store
        .delete_attributes(write(
            at(20),
            DeleteAttributes {
                owner,
                names: strings(&["live", "expired", "absent", "live"]),
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(deleted, 1, "only the live row counts");
    assert_eq!(
        names(&store, owner, 0).await,
        strings(&["kept"]),
        "the expired row went too"
    );
    assert_eq!(
        store
            .delete_attributes(write(
                at(20),
                DeleteAttributes {
                    owner,
                    names: Vec::new()
                }
            ))
            .await
            .expect("deleted"),
        0
    );
    assert_eq!(
        leftovers(&store).await,
        PurgeCounts::default(),
        "nothing expired was left to sweep"
    );
}

async fn set_attribute_expiry_touches_live_rows_only(store: Arc<dyn Store>) {
    let (session, _) = open(&store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    set(
        &store,
        owner,
        vec![plain("a", "1", None), plain("b", "1", Some(10))],
        0,
    )
    .await;

    let updated = store
        .set_attribute_expiry(write(
            at(5),
            SetAttributeExpiry {
                owner,
                name: "a".into(),
                expires_at: Some(at(100)),
            },
        ))
        .await
        .expect("updated")
        .expect("live");
    assert_eq!(updated.expires_at, Some(at(100)));
    assert_eq!(updated.modified_at, at(5));
    assert_eq!(updated.created_at, at(0));
    assert_eq!(updated.value, StoredValue::Plain("1".into()));
    let cleared = store
        .set_attribute_expiry(write(
            at(6),
            SetAttributeExpiry {
                owner,
                name: "a".into(),
                expires_at: None,
            },
        ))
        .await
        .expect("updated")
        .expect("live");
    assert_eq!(cleared.expires_at, None);
    assert_eq!(
        store
            .get_attributes(owner, None, at(7))
            .await
            .expect("read")[0],
        cleared
    );

    assert!(
        store
            .set_attribute_expiry(write(
                at(10),
                SetAttributeExpiry {
                    owner,
                    name: "b".into(),
                    expires_at: None
                }
            ))
            .await
            .expect("updated")
            .is_none(),
        "an expired row stays expired"
    );
    assert!(
        store
            .set_attribute_expiry(write(
                at(10),
                SetAttributeExpiry {
                    owner,
                    name: "absent".into(),
                    expires_at: None
                }
            ))
            .await
            .expect("updated")
            .is_none()
    );
    assert_eq!(names(&store, owner, 10).await, strings(&["a"]));
}

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
        .purge_expired(write(at(100), PurgeExpired { batch: 2 }))
        .await
        .expect("purged");
    assert_eq!(
        counts,
        PurgeCounts {
            sessions: 5,
            // 5 + 2 + 3 expired attributes, and the 5 live ones of the expired sessions.
            attributes: 15
        }
    );
    assert_eq!(
        store
            .purge_expired(write(at(100), PurgeExpired { batch: 2 }))
            .await
            .expect("purged"),
        PurgeCounts::default()
    );
    for (session, hash) in &live {
        assert!(
            store
                .session_by_token(hash, at(100))
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
            .purge_expired(write(at(2000), PurgeExpired { batch: 1 }))
            .await
            .expect("purged"),
        PurgeCounts {
            sessions: 2,
            attributes: 3
        }
    );
}
