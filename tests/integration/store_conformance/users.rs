//! Users: creation, look-up, listing, patches, deletion.

use std::sync::Arc;

use super::{
    at, create_user, leftovers, name, names, open, plain, set, strings, user_record, write,
};
use ssod::{
    domain::{
        ApprovalStatus, DeleteUser, EndSessions, Owner, PurgeCounts, UpdateUser, UserId, UserPatch,
        UserQuery, Username,
    },
    store::{Store, StoreError},
};

conformance!(
    user_round_trip,
    usernames_are_unique_case_insensitively,
    usernames_are_unique_by_their_unicode_key,
    list_users_pages_filters_and_counts,
    list_users_prefix_is_literal,
    update_user_patches_only_given_fields,
    update_user_ends_the_chosen_sessions,
    an_update_ends_the_sessions_of_an_expired_password,
    delete_user_cascades_to_sessions_and_attributes,
);

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
            .user_by_username(&name(spelling))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("{spelling} not found"));
        assert_eq!(found.user.id, created.id);
        assert_eq!(found.user.username, "Grace", "the spelling is kept");
    }
    assert!(
        store
            .user_by_username(&name("grac"))
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
    let found = store.user_by_username(&name("ÉLODIE")).await.expect("read");
    assert_eq!(found.expect("found").user.username, "Élodie");
    let found = store
        .user_by_username(&name("alice"))
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

async fn usernames_are_unique_by_their_unicode_key(store: Arc<dyn Store>) {
    // Full case folding (ß is ss), not lower(); NFKC (fullwidth is ASCII); the same in both
    // stores whatever the database's locale.
    let strasse = create_user(&store, "Straße").await;
    let finn = create_user(&store, "Finn").await;
    for (taken, spelling) in [
        (&strasse, "STRASSE"),
        (&strasse, "strasse"),
        (&strasse, "ＳＴＲＡＳＳＥ"),
        (&finn, "ＦＩＮＮ"),
        (&finn, "ｆｉｎｎ"),
    ] {
        let error = store
            .create_user(write(at(0), user_record(spelling)))
            .await
            .expect_err("the key is taken");
        assert!(
            matches!(error, StoreError::UsernameTaken),
            "{spelling}: {error:?}"
        );
        let found = store
            .user_by_username(&name(spelling))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("{spelling} not found"));
        assert_eq!(found.user.id, taken.id, "{spelling}");
    }
    let found = store
        .user_by_username(&name("straße"))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.user.username, "Straße", "the spelling is kept");
    create_user(&store, "Strand").await;

    for prefix in ["STRAS", "straß", "ｓｔｒａｓ", "Straß"] {
        let (names, _) = listed_by_key(&store, prefix, None).await;
        assert_eq!(names, ["Straße"], "prefix {prefix:?}");
    }
    let (names, total) = listed_by_key(&store, "STR", Some("STRAND")).await;
    assert_eq!(names, ["Straße"], "strand < strasse by key");
    assert_eq!(total, 2);
}

/// Usernames and total of a listing whose prefix and cursor are folded into keys.
async fn listed_by_key(
    store: &Arc<dyn Store>,
    prefix: &str,
    after: Option<&str>,
) -> (Vec<String>, u64) {
    let page = store
        .list_users(&UserQuery {
            username_prefix: Username::key_of(prefix),
            after: after.map(Username::key_of),
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .expect("list");
    let names = page.users.into_iter().map(|user| user.username).collect();
    (names, page.total_size)
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

    // The prefix and the cursor folded into keys, as the service hands them over.
    let list = |prefix: &str, status: Option<ApprovalStatus>, after: Option<&str>, limit| {
        let query = UserQuery {
            username_prefix: Username::key_of(prefix),
            approval_status: status,
            after: after.map(Username::key_of),
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
        "ordered by username key"
    );
    assert_eq!(total, 8);

    let (page, total) = list("AL", None, None, 2).await;
    assert_eq!(page, strings(&["alan", "Albert"]));
    assert_eq!(total, 5, "the total counts every match, not the page");
    let (page, total) = list("al", None, Some("albert"), 2).await;
    assert_eq!(page, strings(&["ALFRED", "alice"]));
    assert_eq!(total, 5);
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

/// `AllIfPasswordExpired` ends the user's sessions only if its password had expired at the
/// write's `now`, before the patch moved the expiry: sessions hidden by an expiry stay ended.
async fn an_update_ends_the_sessions_of_an_expired_password(store: Arc<dyn Store>) {
    let mut record = user_record("expiring");
    record.user.password_expiry = Some(at(100));
    let user = store
        .create_user(write(at(0), record))
        .await
        .expect("created");
    let (session, _) = open(&store, Some(user.id), 0, 1000).await;
    let later = UserPatch {
        password_expiry: Some(Some(at(500))),
        ..UserPatch::default()
    };
    let update = |now: u64, patch: UserPatch| {
        store.update_user(write(
            at(now),
            UpdateUser {
                id: user.id,
                patch,
                end_sessions: EndSessions::AllIfPasswordExpired,
            },
        ))
    };
    // At 99 the password has not expired: the session stays.
    update(99, later.clone()).await.expect("updated");
    assert!(
        store
            .session_by_id(session.id, at(99))
            .await
            .expect("read")
            .is_some()
    );
    // At 500, exactly its new expiry, it has: the update that clears the expiry ends it.
    let updated = update(
        500,
        UserPatch {
            password_expiry: Some(None),
            ..UserPatch::default()
        },
    )
    .await
    .expect("updated");
    assert_eq!(updated.password_expiry, None);
    assert!(
        store
            .session_by_id(session.id, at(500))
            .await
            .expect("read")
            .is_none()
    );
    let missing = store
        .update_user(write(
            at(0),
            UpdateUser {
                id: UserId::generate(),
                patch: later,
                end_sessions: EndSessions::AllIfPasswordExpired,
            },
        ))
        .await
        .expect_err("no such user");
    assert!(matches!(missing, StoreError::UserNotFound), "{missing:?}");
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
            attributes: 0,
            login_failures: 0,
            events: 0,
            account_tokens: 0,
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
            .delete_user(write(
                at(0),
                DeleteUser {
                    id: user.id,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted")
    );
    assert!(store.user_by_id(user.id).await.expect("read").is_none());
    assert!(
        store
            .user_by_username(&name("doomed"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_token(&hash, at(1), None)
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
            .delete_user(write(
                at(0),
                DeleteUser {
                    id: user.id,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted twice"),
        "already gone"
    );
    // The name is free again.
    create_user(&store, "DOOMED").await;

    let survivor = store
        .session_by_token(&other_hash, at(1), None)
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
            attributes: 1,
            login_failures: 0,
            events: 0,
            account_tokens: 0,
        }
    );
}

// Sessions.
