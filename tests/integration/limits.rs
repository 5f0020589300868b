//! Every limit of the contract, at and just past its bound: refused with INVALID_ARGUMENT,
//! nothing written.

use ssod::proto::{self, AttributeScope};
use tonic::Code;

use crate::{
    both,
    harness::{Backend, TestServer, authed, reason, violated_fields, write},
};

const SESSION: i32 = AttributeScope::Session as i32;

async fn names(server: &TestServer, ust: &str) -> Vec<String> {
    server
        .list_attribute_names(ust, SESSION)
        .await
        .expect("names")
        .into_inner()
        .names
}

async fn attribute_names_are_1_to_191_printable_characters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.guest().await.ust;
    // 191 characters, several bytes each: the limit counts characters.
    let longest = "é".repeat(191);
    server
        .set_attribute(&ust, SESSION, &longest, serde_json::json!(1))
        .await
        .expect("191 characters");
    server
        .set_attribute(&ust, SESSION, "with space ✓", serde_json::json!(1))
        .await
        .expect("printable");
    for (name, expected_reason) in [
        ("é".repeat(192), "LIMIT_EXCEEDED"),
        (String::new(), "INVALID_ARGUMENT"),
        ("tab\tname".to_string(), "INVALID_ARGUMENT"),
        ("nul\0name".to_string(), "INVALID_ARGUMENT"),
        ("line\nbreak".to_string(), "INVALID_ARGUMENT"),
    ] {
        let status = server
            .set_attribute(&ust, SESSION, &name, serde_json::json!(1))
            .await
            .expect_err("bad name");
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(reason(&status), expected_reason, "{name:?}");
        assert_eq!(violated_fields(&status), ["name"]);
    }
    assert_eq!(names(&server, &ust).await.len(), 2);
}

async fn values_are_at_most_64_kib_of_json(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.guest().await.ust;
    // A JSON string's encoding is its text plus two quotes.
    let at_limit = "v".repeat(64 * 1024 - 2);
    server
        .set_attribute(&ust, SESSION, "max", serde_json::json!(at_limit))
        .await
        .expect("exactly 64 KiB");
    let over = "v".repeat(64 * 1024 - 1);
    let status = server
        .set_attribute(&ust, SESSION, "over", serde_json::json!(over))
        .await
        .expect_err("too big");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    assert_eq!(violated_fields(&status), ["value"]);
    // In a batch, the refusal names the item, and none of the batch is written.
    let status = server
        .set_attributes(
            &ust,
            SESSION,
            vec![
                write("fits", serde_json::json!(1)),
                write("over", serde_json::json!(over)),
            ],
        )
        .await
        .expect_err("too big in a batch");
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    assert_eq!(violated_fields(&status), ["attributes[1].value"]);
    let status = server
        .set_attributes(
            &ust,
            SESSION,
            vec![
                write("fits", serde_json::json!(1)),
                write("", serde_json::json!(1)),
            ],
        )
        .await
        .expect_err("an unnamed item");
    assert_eq!(violated_fields(&status), ["attributes[1].name"]);
    assert_eq!(names(&server, &ust).await, ["max"]);
}

async fn at_most_1000_items_per_write(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.guest().await.ust;
    let items = |count: usize| {
        (0..count)
            .map(|i| write(format!("n{i:04}"), serde_json::json!(i)))
            .collect::<Vec<_>>()
    };
    let status = server
        .set_attributes(&ust, SESSION, items(1001))
        .await
        .expect_err("1001 items");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    assert!(names(&server, &ust).await.is_empty());
    let written = server
        .set_attributes(&ust, SESSION, items(1000))
        .await
        .expect("1000 items")
        .into_inner()
        .attributes;
    assert_eq!(written.len(), 1000);
    let empty = server
        .attributes()
        .set_attributes(authed(
            &ust,
            proto::SetAttributesRequest {
                scope: SESSION,
                ..Default::default()
            },
        ))
        .await
        .expect_err("no items");
    assert_eq!(empty.code(), Code::InvalidArgument);
}

async fn at_most_1000_attributes_per_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.guest().await.ust;
    let batch = |from: usize, count: usize| {
        (from..from + count)
            .map(|i| write(format!("n{i:04}"), serde_json::json!(i)))
            .collect::<Vec<_>>()
    };
    server
        .set_attributes(&ust, SESSION, batch(0, 999))
        .await
        .expect("999");
    // Replacing existing names does not count against the limit.
    server
        .set_attributes(&ust, SESSION, batch(0, 10))
        .await
        .expect("overwrite");
    // A write that would make 1001 is refused whole.
    let status = server
        .set_attributes(&ust, SESSION, batch(999, 2))
        .await
        .expect_err("1001");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    assert_eq!(names(&server, &ust).await.len(), 999);
    server
        .set_attribute(&ust, SESSION, "n0999", serde_json::json!(1))
        .await
        .expect("the 1000th");
    let status = server
        .set_attribute(&ust, SESSION, "n1000", serde_json::json!(1))
        .await
        .expect_err("the 1001st");
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    // Deleting makes room again.
    server
        .attributes()
        .delete_attribute(authed(
            &ust,
            proto::DeleteAttributeRequest {
                scope: SESSION,
                name: "n0000".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("delete");
    server
        .set_attribute(&ust, SESSION, "n1000", serde_json::json!(1))
        .await
        .expect("room again");
}

async fn configured_limits_apply(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.max_attribute_name_chars = 4;
        config.limits.max_attribute_value_bytes = 10;
        config.limits.max_attributes_per_write = 2;
        config.limits.max_attributes_per_owner = 3;
    })
    .await;
    let ust = server.guest().await.ust;
    server
        .set_attribute(&ust, SESSION, "abcd", serde_json::json!("12345678"))
        .await
        .expect("at the limits");
    for (name, value, field) in [
        ("abcde", serde_json::json!(1), "name"),
        ("v", serde_json::json!("123456789"), "value"),
    ] {
        let status = server
            .set_attribute(&ust, SESSION, name, value)
            .await
            .expect_err("over a limit");
        assert_eq!(reason(&status), "LIMIT_EXCEEDED");
        assert_eq!(violated_fields(&status), [field]);
    }
    let three = vec![
        write("a", serde_json::json!(1)),
        write("b", serde_json::json!(1)),
        write("c", serde_json::json!(1)),
    ];
    let status = server
        .set_attributes(&ust, SESSION, three)
        .await
        .expect_err("3 > 2 per write");
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    server
        .set_attribute(&ust, SESSION, "b", serde_json::json!(1))
        .await
        .expect("2nd");
    server
        .set_attribute(&ust, SESSION, "c", serde_json::json!(1))
        .await
        .expect("3rd");
    let status = server
        .set_attribute(&ust, SESSION, "d", serde_json::json!(1))
        .await
        .expect_err("4th");
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
}

async fn read_requests_are_bounded_too(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.guest().await.ust;
    let names: Vec<String> = (0..1001).map(|i| format!("n{i}")).collect();
    let status = server
        .attributes()
        .get_attributes(authed(
            &ust,
            proto::GetAttributesRequest {
                scope: SESSION,
                names,
                ..Default::default()
            },
        ))
        .await
        .expect_err("1001 names");
    assert_eq!(reason(&status), "LIMIT_EXCEEDED");
    let long_field = "x".repeat(513);
    let status = server
        .sessions()
        .create_session(proto::CreateSessionRequest {
            user_agent: long_field,
            ..Default::default()
        })
        .await
        .expect_err("user agent too long");
    assert_eq!(violated_fields(&status), ["user_agent"]);
}

both!(
    attribute_names_are_1_to_191_printable_characters,
    values_are_at_most_64_kib_of_json,
    at_most_1000_items_per_write,
    at_most_1000_attributes_per_owner,
    configured_limits_apply,
    read_requests_are_bounded_too,
);
