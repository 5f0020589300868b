//! AttributeService over the real server: every RPC, ownership, expiry, atomicity and
//! encryption at rest.

use std::time::Duration;

use ssod::{
    domain::{Owner, SessionId, StoredValue},
    proto::{self, AttributeScope},
};
use tonic::Code;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, json_value, violated_fields, write},
};

const SESSION: i32 = AttributeScope::Session as i32;
const USER: i32 = AttributeScope::User as i32;

async fn set_get_list_exist_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, ust) = server.user_session("uma").await;
    let mut client = server.attributes();
    let value =
        serde_json::json!({"items": [1, 2.5, "three", null, true], "nested": {"ok": false}});
    let set = client
        .set_attribute(authed(
            &ust,
            proto::SetAttributeRequest {
                scope: SESSION,
                name: "cart".into(),
                value: Some(json_value(value.clone())),
                ..Default::default()
            },
        ))
        .await
        .expect("set")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(set.value, Some(json_value(value.clone())));
    assert!(!set.encrypted);
    assert!(set.expiration_time.is_none());
    assert_eq!(set.creation_time, set.last_modified);

    let many = client
        .set_attributes(authed(
            &ust,
            proto::SetAttributesRequest {
                scope: SESSION,
                attributes: vec![
                    write("b", serde_json::json!("bee")),
                    write("a", serde_json::json!(1)),
                    proto::AttributeWrite {
                        expiration: Some(prost_types::Duration {
                            seconds: 5,
                            nanos: 0,
                        }),
                        ..write("c", serde_json::json!([]))
                    },
                ],
                expiration: Some(prost_types::Duration {
                    seconds: 50,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("set many")
        .into_inner()
        .attributes;
    assert_eq!(many.len(), 3);
    let expiry = |name: &str| {
        many.iter()
            .find(|a| a.name == name)
            .and_then(|a| a.expiration_time)
            .expect("expiry")
            .seconds
    };
    assert_eq!(
        expiry("a"),
        expiry("c") + 45,
        "the item's own expiration wins"
    );

    let got = server
        .get_attribute(&ust, SESSION, "cart")
        .await
        .expect("get")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(got.value, Some(json_value(value)));

    let some = client
        .get_attributes(authed(
            &ust,
            proto::GetAttributesRequest {
                scope: SESSION,
                names: vec!["a".into(), "missing".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("get many")
        .into_inner()
        .attributes;
    assert_eq!(some.keys().collect::<Vec<_>>(), ["a"]);

    let names = server
        .list_attribute_names(&ust, SESSION)
        .await
        .expect("names")
        .into_inner()
        .names;
    assert_eq!(names, ["a", "b", "c", "cart"]);

    let exists = client
        .attribute_exists(authed(
            &ust,
            proto::AttributeExistsRequest {
                scope: SESSION,
                name: "b".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("exists")
        .into_inner()
        .exists;
    assert!(exists);
    let map = client
        .attributes_exist(authed(
            &ust,
            proto::AttributesExistRequest {
                scope: SESSION,
                names: vec!["a".into(), "zz".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("exist many")
        .into_inner()
        .exists;
    assert_eq!(map.get("a"), Some(&true));
    assert_eq!(map.get("zz"), Some(&false));

    // Expiry hides values before any sweep.
    server.advance(Duration::from_secs(5));
    let status = server
        .get_attribute(&ust, SESSION, "c")
        .await
        .expect_err("expired");
    assert_error(&status, Code::NotFound, "ATTRIBUTE_NOT_FOUND");
    let names = server
        .list_attribute_names(&ust, SESSION)
        .await
        .expect("names")
        .into_inner()
        .names;
    assert_eq!(names, ["a", "b", "cart"]);

    // An expired, unswept row is replaced by an upsert and starts afresh.
    let replaced = server
        .set_attribute(&ust, SESSION, "c", serde_json::json!("new"))
        .await
        .expect("replace expired")
        .into_inner()
        .attribute
        .expect("attribute");
    assert!(replaced.expiration_time.is_none());
    assert_eq!(replaced.creation_time, replaced.last_modified);

    let deleted = client
        .delete_attribute(authed(
            &ust,
            proto::DeleteAttributeRequest {
                scope: SESSION,
                name: "b".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("delete")
        .into_inner()
        .deleted;
    assert!(deleted);
    let absent = client
        .delete_attribute(authed(
            &ust,
            proto::DeleteAttributeRequest {
                scope: SESSION,
                name: "b".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("absent is no error")
        .into_inner()
        .deleted;
    assert!(!absent);
    let count = client
        .delete_attributes(authed(
            &ust,
            proto::DeleteAttributesRequest {
                scope: SESSION,
                names: vec!["a".into(), "c".into(), "nope".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("delete many")
        .into_inner()
        .deleted_count;
    assert_eq!(count, 2);
}

async fn set_attribute_expiry(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, ust) = server.user_session("vic").await;
    let mut client = server.attributes();
    let missing = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: USER,
                name: "x".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("absent");
    assert_error(&missing, Code::NotFound, "ATTRIBUTE_NOT_FOUND");
    server
        .set_attribute(&ust, USER, "x", serde_json::json!(1))
        .await
        .expect("set");
    let with_expiry = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: USER,
                name: "x".into(),
                expiration: Some(prost_types::Duration {
                    seconds: 30,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("expiry")
        .into_inner()
        .attribute
        .expect("attribute");
    assert!(with_expiry.expiration_time.is_some());
    let cleared = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: USER,
                name: "x".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("clear")
        .into_inner()
        .attribute
        .expect("attribute");
    assert!(cleared.expiration_time.is_none());
    server.advance(Duration::from_secs(31));
    let ust = server.login("vic", "user-password-1").await.ust;
    server
        .get_attribute(&ust, USER, "x")
        .await
        .expect("never expires now");
    let negative = client
        .set_attribute_expiry(authed(
            &ust,
            proto::SetAttributeExpiryRequest {
                scope: USER,
                name: "x".into(),
                expiration: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .expect_err("negative");
    assert_error(&negative, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&negative), ["expiration"]);
}

async fn a_failed_multi_write_writes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, ust) = server.user_session("wendy").await;
    let bad_batches = vec![
        vec![
            write("ok", serde_json::json!(1)),
            write("", serde_json::json!(2)),
        ],
        vec![
            write("ok", serde_json::json!(1)),
            write("ok", serde_json::json!(2)),
        ],
        vec![
            write("ok", serde_json::json!(1)),
            proto::AttributeWrite {
                name: "novalue".into(),
                ..Default::default()
            },
        ],
        vec![
            write("ok", serde_json::json!(1)),
            write("big", serde_json::json!("x".repeat(70_000))),
        ],
    ];
    for batch in bad_batches {
        let status = server
            .set_attributes(&ust, SESSION, batch)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let names = server
        .list_attribute_names(&ust, SESSION)
        .await
        .expect("names")
        .into_inner()
        .names;
    assert!(names.is_empty(), "nothing half-written: {names:?}");
}

async fn ownership_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (xena, xena_ust) = server.user_session("xena").await;
    let xena_second = server.login("xena", "user-password-1").await;
    let xena_second_id = xena_second.session.expect("session").session_id;
    let (_, yuri_ust) = server.user_session("yuri").await;
    let guest = server.guest().await;
    let mut client = server.attributes();
    let set = |ust: &str, scope: i32, owner: &str| {
        authed(
            ust,
            proto::SetAttributeRequest {
                scope,
                owner_id: owner.into(),
                name: "n".into(),
                value: Some(json_value(serde_json::json!(1))),
                ..Default::default()
            },
        )
    };
    // Another session of the caller's own user is allowed.
    client
        .set_attribute(set(&xena_ust, SESSION, &xena_second_id))
        .await
        .expect("own user's session");
    client
        .set_attribute(set(&xena_ust, USER, &xena.user_id))
        .await
        .expect("own user by id");
    // Someone else's session or user is not.
    for request in [
        set(&yuri_ust, SESSION, &xena_second_id),
        set(&yuri_ust, USER, &xena.user_id),
    ] {
        let status = client
            .set_attribute(request)
            .await
            .expect_err("not the owner");
        assert_error(&status, Code::PermissionDenied, "NOT_OWNER");
    }
    let guest_session_id = guest.session.expect("session").session_id;
    let status = client
        .set_attribute(set(&guest.ust, SESSION, &xena_second_id))
        .await
        .expect_err("a guest owns only itself");
    assert_error(&status, Code::PermissionDenied, "NOT_OWNER");
    // A guest has session attributes but no user attributes.
    client
        .set_attribute(set(&guest.ust, SESSION, ""))
        .await
        .expect("guest session attribute");
    let status = client
        .set_attribute(set(&guest.ust, USER, ""))
        .await
        .expect_err("guest user attrs");
    assert_error(&status, Code::NotFound, "USER_NOT_FOUND");
    // A super-user may touch anyone's.
    let admin = server.admin().await;
    client
        .set_attribute(set(&admin, SESSION, &guest_session_id))
        .await
        .expect("SU on a guest");
    client
        .set_attribute(set(&admin, USER, &xena.user_id))
        .await
        .expect("SU on a user");
    let missing = client
        .set_attribute(set(&admin, SESSION, &uuid::Uuid::now_v7().to_string()))
        .await
        .expect_err("no such session");
    assert_error(&missing, Code::NotFound, "SESSION_NOT_FOUND");
    let missing = client
        .set_attribute(set(&admin, USER, &uuid::Uuid::now_v7().to_string()))
        .await
        .expect_err("no such user");
    assert_error(&missing, Code::NotFound, "USER_NOT_FOUND");
    // The scope must be given; ids must parse; a token is required.
    let status = client
        .set_attribute(set(&xena_ust, 0, ""))
        .await
        .expect_err("unspecified scope");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["scope"]);
    let status = client
        .set_attribute(set(&xena_ust, SESSION, "not-a-uuid"))
        .await
        .expect_err("bad id");
    assert_eq!(violated_fields(&status), ["owner_id"]);
    let status = client
        .get_attribute(proto::GetAttributeRequest {
            scope: SESSION,
            name: "n".into(),
            ..Default::default()
        })
        .await
        .expect_err("no token");
    assert_error(&status, Code::Unauthenticated, "UST_MISSING");
    // Session and user attributes are separate namespaces.
    let session_value = client
        .get_attribute(authed(
            &xena_ust,
            proto::GetAttributeRequest {
                scope: SESSION,
                owner_id: xena_second_id,
                name: "n".into(),
            },
        ))
        .await
        .expect("session attribute")
        .into_inner();
    assert!(session_value.attribute.is_some());
    let status = server
        .get_attribute(&xena_ust, SESSION, "n")
        .await
        .expect_err("not on this session");
    assert_error(&status, Code::NotFound, "ATTRIBUTE_NOT_FOUND");
}

async fn encrypted_values_are_not_stored_in_plaintext(backend: Backend) {
    let server = TestServer::start(backend).await;
    let guest = server.guest().await;
    let plaintext = "card-4111-1111-1111-1111";
    let attribute = server
        .attributes()
        .set_attribute(authed(
            &guest.ust,
            proto::SetAttributeRequest {
                scope: SESSION,
                name: "pan".into(),
                value: Some(json_value(serde_json::json!(plaintext))),
                encrypt: true,
                ..Default::default()
            },
        ))
        .await
        .expect("set")
        .into_inner()
        .attribute
        .expect("attribute");
    assert!(attribute.encrypted);
    let session_id = SessionId(
        guest
            .session
            .expect("session")
            .session_id
            .parse()
            .expect("uuid"),
    );
    let stored = server
        .store
        .get_attributes(Owner::Session(session_id), None, server.clock_now())
        .await
        .expect("store read");
    match &stored[0].value {
        StoredValue::Sealed { key_id, ciphertext } => {
            assert_eq!(key_id, "k1");
            assert!(
                !ciphertext
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes())
            );
        }
        other => panic!("stored in the clear: {other:?}"),
    }
    let back = server
        .get_attribute(&guest.ust, SESSION, "pan")
        .await
        .expect("get")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(back.value, Some(json_value(serde_json::json!(plaintext))));
    assert!(back.encrypted);
}

async fn encryption_needs_a_key(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.encryption.keys = Some(String::new());
    })
    .await;
    let guest = server.guest().await;
    let status = server
        .attributes()
        .set_attribute(authed(
            &guest.ust,
            proto::SetAttributeRequest {
                scope: SESSION,
                name: "s".into(),
                value: Some(json_value(serde_json::json!(1))),
                encrypt: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("no key");
    assert_error(&status, Code::FailedPrecondition, "ENCRYPTION_UNAVAILABLE");
}

/// Expirations are bounded so no store or timestamp type overflows.
async fn absurd_expirations_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let guest = server.guest().await.ust;
    let century = 100 * 366 * 24 * 60 * 60;
    for seconds in [century + 1, 10_000_000_000_000, i64::MAX] {
        let status = server
            .attributes()
            .set_attribute(authed(
                &guest,
                proto::SetAttributeRequest {
                    scope: SESSION,
                    name: "n".into(),
                    value: Some(json_value(serde_json::json!(1))),
                    expiration: Some(prost_types::Duration { seconds, nanos: 0 }),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("too far");
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), ["expiration"]);
    }
    let written = server
        .attributes()
        .set_attribute(authed(
            &guest,
            proto::SetAttributeRequest {
                scope: SESSION,
                name: "n".into(),
                value: Some(json_value(serde_json::json!(1))),
                expiration: Some(prost_types::Duration {
                    seconds: century,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("a century is fine")
        .into_inner()
        .attribute
        .expect("attribute");
    let expiry = written.expiration_time.expect("expiry").seconds;
    assert_eq!(
        expiry,
        server
            .clock_now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("epoch")
            .as_secs() as i64
            + century
    );
}

both!(
    absurd_expirations_are_refused,
    set_get_list_exist_delete,
    set_attribute_expiry,
    a_failed_multi_write_writes_nothing,
    ownership_rules,
    encrypted_values_are_not_stored_in_plaintext,
    encryption_needs_a_key,
);
