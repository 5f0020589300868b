//! Abuse resistance over the real server: floods are refused at once, never queued without
//! bound.

use ssod::proto;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    both,
    harness::{ADMIN, ADMIN_PASSWORD, Backend, TestServer, assert_error, authed, violated_fields},
};

/// One hasher thread and no waiting room: of many logins sent at once, those that find the
/// hasher busy are refused with `OVERLOADED` and a retry delay, and none is lost or stuck.
async fn a_login_flood_beyond_the_hash_queue_is_refused_at_once(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.passwords.max_concurrent_hashes = 1;
        config.passwords.max_pending_hashes = 0;
    })
    .await;
    let attempts = (0..40).map(|_| server.try_login(ADMIN, ADMIN_PASSWORD, None));
    let outcomes = futures::future::join_all(attempts).await;
    let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!refused.is_empty(), "40 simultaneous logins on one hasher");
    assert!(refused.len() < outcomes.len(), "the first login is hashed");
    for status in &refused {
        assert_error(status, Code::ResourceExhausted, "OVERLOADED");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert!(retry.retry_delay.is_some_and(|delay| !delay.is_zero()));
    }
    // Refusals hold no place: a login after the flood is hashed as usual.
    server.login(ADMIN, ADMIN_PASSWORD).await;
}

both!(a_login_flood_beyond_the_hash_queue_is_refused_at_once);

async fn try_create(
    server: &TestServer,
    admin: &str,
    username: &str,
) -> Result<proto::User, Status> {
    server
        .users()
        .create_user(authed(
            admin,
            proto::CreateUserRequest {
                username: username.into(),
                password: Some("user-password-1".into()),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().user.expect("user"))
}

/// Usernames are unique and looked up after NFKC and case folding; invisible, control and
/// unassigned characters are refused; a malformed name at login is just an unknown user.
async fn usernames_are_normalised_and_invisible_characters_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for invisible in [
        "admin\u{200b}",
        "\u{202e}nimda",
        "ad\u{00ad}min",
        "nul\0admin",
        "x\u{0378}",
    ] {
        let refused = try_create(&server, &admin, invisible).await.unwrap_err();
        assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&refused), ["username"], "{invisible:?}");
    }
    for lookalike in ["ＡＤＭＩＮ", "Admin", "ａｄｍｉｎ"] {
        let refused = try_create(&server, &admin, lookalike).await.unwrap_err();
        assert_error(&refused, Code::AlreadyExists, "USERNAME_TAKEN");
    }
    // The shown name is the NFKC form of what was given.
    let created = try_create(&server, &admin, "Ｊｏｓé")
        .await
        .expect("created");
    assert_eq!(created.username, "José");
    server.login("josé", "user-password-1").await;
    server.login(ADMIN, ADMIN_PASSWORD).await;
    server.login("ａｄｍｉｎ", ADMIN_PASSWORD).await;
    for malformed in ["nul\0admin", "admin\u{200b}", "", "\u{202e}"] {
        let refused = server
            .try_login(malformed, ADMIN_PASSWORD, None)
            .await
            .unwrap_err();
        assert_error(&refused, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let refused = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "nul\0admin".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    let found = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "ＡＤＭＩＮ".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("found by its lookalike")
        .into_inner();
    assert_eq!(found.user.expect("user").username, ADMIN);
}

/// A page token pages through the listing it was issued for, and no other.
async fn page_tokens_are_tied_to_their_filter(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for name in ["page-a", "page-b", "page-c"] {
        try_create(&server, &admin, name).await.expect("created");
    }
    let list = |prefix: &str, token: &str| {
        let request = proto::ListUsersRequest {
            page_size: 1,
            page_token: token.into(),
            username_prefix: prefix.into(),
            ..Default::default()
        };
        let mut users = server.users();
        let admin = admin.clone();
        async move {
            users
                .list_users(authed(&admin, request))
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = list("page-", "").await.expect("first page");
    assert_eq!(first.users[0].username, "page-a");
    let second = list("page-", &first.next_page_token)
        .await
        .expect("same filter");
    assert_eq!(second.users[0].username, "page-b");
    let refused = list("pa", &first.next_page_token).await.unwrap_err();
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&refused), ["page_token"]);
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "[\"x\",\"nul\\u0000\"]",
    );
    let refused = list("page-", &forged).await.unwrap_err();
    assert_error(&refused, Code::InvalidArgument, "INVALID_ARGUMENT");
}

both!(
    usernames_are_normalised_and_invisible_characters_refused,
    page_tokens_are_tied_to_their_filter,
);
