//! Attributes: upserts and the per-owner limit, reads, deletion, expiry.

use std::sync::Arc;

use super::{NEVER, at, create_user, leftovers, names, open, plain, sealed, set, strings, write};
use ssod::{
    domain::{
        DeleteAttributes, NewAttribute, Owner, PurgeCounts, SessionId, SetAttributeExpiry,
        SetAttributes, StoredValue, UserId,
    },
    store::{Store, StoreError},
};

conformance!(
    set_attributes_upserts_and_resets_expired_rows,
    set_attributes_enforces_the_per_owner_limit,
    set_attributes_requires_a_live_owner,
    attribute_reads_filter_expired_rows,
    delete_attributes_counts_live_rows,
    set_attribute_expiry_touches_live_rows_only,
);

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
                            max_bytes_per_owner: usize::MAX,
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
                    max_bytes_per_owner: usize::MAX,
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
