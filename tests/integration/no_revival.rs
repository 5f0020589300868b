//! Sessions that must not come back to life (issue 11, "a review also found"): each test
//! reproduces one finding through the real server, on both stores. A new password, by any
//! path, ends the user's other sessions; a session that a password expiry or
//! `password_must_change` made unusable stays unusable; a session presented to Login is
//! rotated whoever it belongs to; a carried attribute that cannot be decrypted is dropped
//! rather than failing the Login.

use std::time::Duration;

use ssod::proto::{self, AttributeScope};
use tonic::Code;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, json_value},
};

const PASSWORD: &str = "user-password-1";

/// Sessions outlive the clock moves of these tests: only the password's expiry ends them.
fn long_sessions(config: &mut ssod::config::Config) {
    config.sessions.idle_timeout = Duration::from_secs(48 * 3600);
    config.sessions.max_lifetime = Duration::from_secs(96 * 3600);
}

/// `Login` with `new_password`, presenting no UST.
async fn login_changing_password(
    server: &TestServer,
    username: &str,
    password: &str,
    new_password: &str,
) -> proto::LoginResponse {
    server
        .users()
        .login(proto::LoginRequest {
            username: username.into(),
            password: password.into(),
            new_password: Some(new_password.into()),
            current_app: "tests".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("login of {username} with a new password: {status:?}"))
        .into_inner()
}

/// A super-user's `UpdateUser` of `user` with the fields named by `paths`.
async fn update(server: &TestServer, admin: &str, user: proto::User, paths: &[&str]) {
    server
        .users()
        .update_user(authed(
            admin,
            proto::UpdateUserRequest {
                user: Some(user),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| (*path).to_owned()).collect(),
                }),
            },
        ))
        .await
        .expect("update user");
}

async fn assert_ended(server: &TestServer, ust: &str, what: &str) {
    let status = server
        .current_user(ust)
        .await
        .expect_err(&format!("{what} no longer authenticates"));
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
}

/// A password that expired hides the user's sessions; renewing the password at Login must not
/// bring them back (a stolen UST among them).
async fn a_password_renewed_at_login_revives_no_session(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        long_sessions(config);
        config.passwords.max_age = Some(Duration::from_secs(3600));
    })
    .await;
    let admin = server.admin().await;
    server.create_user(&admin, "erin", PASSWORD).await;
    let stolen = server.login("erin", PASSWORD).await.ust;
    server.advance(Duration::from_secs(3601));
    assert_ended(&server, &stolen, "a session of an expired password").await;

    let renewed = login_changing_password(&server, "erin", PASSWORD, "user-password-2").await;
    server
        .current_user(&renewed.ust)
        .await
        .expect("the new session works");
    assert_ended(&server, &stolen, "a session hidden by the expiry").await;
}

/// A super-user who moves an expired password's expiry later revives no session.
async fn an_expiry_moved_later_revives_no_session(backend: Backend) {
    let server = TestServer::start_with(backend, long_sessions).await;
    let admin = server.admin().await;
    let user = server.create_user(&admin, "fern", PASSWORD).await;
    let hidden = server.login("fern", PASSWORD).await.ust;
    let soon = prost_types::Timestamp::from(server.clock_now() + Duration::from_secs(60));
    update(
        &server,
        &admin,
        proto::User {
            user_id: user.user_id.clone(),
            password_expiry: Some(soon),
            ..Default::default()
        },
        &["password_expiry"],
    )
    .await;
    server
        .current_user(&hidden)
        .await
        .expect("usable until the password expires");
    server.advance(Duration::from_secs(61));
    assert_ended(&server, &hidden, "a session of an expired password").await;

    let admin = server.admin().await;
    let later = prost_types::Timestamp::from(server.clock_now() + Duration::from_secs(86_400));
    update(
        &server,
        &admin,
        proto::User {
            user_id: user.user_id.clone(),
            password_expiry: Some(later),
            ..Default::default()
        },
        &["password_expiry"],
    )
    .await;
    assert_ended(&server, &hidden, "a session after the expiry moved later").await;
    // Clearing the expiry (never expires) revives nothing either.
    let again = server.login("fern", PASSWORD).await.ust;
    server.advance(Duration::from_secs(86_401));
    assert_ended(&server, &again, "a session of an expired password").await;
    let admin = server.admin().await;
    update(
        &server,
        &admin,
        proto::User {
            user_id: user.user_id,
            ..Default::default()
        },
        &["password_expiry"],
    )
    .await;
    assert_ended(&server, &again, "a session after the expiry was cleared").await;
    server.login("fern", PASSWORD).await;
}

/// Login with `new_password` ends the user's other sessions, as `ChangePassword` does; the
/// new session survives.
async fn a_password_changed_at_login_ends_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, other) = server.user_session("gail").await;
    let changed = login_changing_password(&server, "gail", PASSWORD, "user-password-2").await;
    assert_ended(&server, &other, "another session of the user").await;
    server
        .current_user(&changed.ust)
        .await
        .expect("the login's own session survives");
}

/// Setting `password_must_change` ends the user's sessions, and the password chosen at the
/// next Login does not bring them back.
async fn must_change_ends_the_users_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (user, ust) = server.user_session("hana").await;
    let admin = server.admin().await;
    update(
        &server,
        &admin,
        proto::User {
            user_id: user.user_id,
            password_must_change: true,
            ..Default::default()
        },
        &["password_must_change"],
    )
    .await;
    assert_ended(&server, &ust, "a session of a user who must change").await;
    let changed = login_changing_password(&server, "hana", PASSWORD, "user-password-2").await;
    assert!(!changed.user.expect("user").password_must_change);
    assert_ended(&server, &ust, "a session after the password changed").await;
}

/// A logged-in session's UST presented with Login is rotated like a guest's: it ends, and its
/// persistent-on-login attributes move to the new session.
async fn login_rotates_a_presented_user_session(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.persistent_on_login = vec!["cart".into()];
    })
    .await;
    let admin = server.admin().await;
    server.create_user(&admin, "ines", PASSWORD).await;
    server.create_user(&admin, "jude", PASSWORD).await;
    let first = server.login("ines", PASSWORD).await.ust;
    server
        .set_attribute(
            &first,
            AttributeScope::Session as i32,
            "cart",
            serde_json::json!(["lamp"]),
        )
        .await
        .expect("set");
    // The same user again, then another user, from the same browser.
    let second = server
        .try_login("ines", PASSWORD, Some(&first))
        .await
        .expect("login presenting the user's own session")
        .ust;
    assert_ended(&server, &first, "the presented session").await;
    let third = server
        .try_login("jude", PASSWORD, Some(&second))
        .await
        .expect("login presenting another user's session")
        .ust;
    assert_ended(&server, &second, "the presented session").await;
    let cart = server
        .get_attribute(&third, AttributeScope::Session as i32, "cart")
        .await
        .expect("the cart moved twice")
        .into_inner()
        .attribute
        .expect("attribute");
    assert_eq!(cart.value, Some(json_value(serde_json::json!(["lamp"]))));
}

/// A carried attribute whose key left the ring is dropped with a warning; the Login succeeds,
/// the other carried attributes move, and the presented session ends.
async fn login_drops_an_attribute_it_cannot_decrypt(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.persistent_on_login = vec!["cart".into(), "secret".into()];
    })
    .await;
    let admin = server.admin().await;
    server.create_user(&admin, "kai", PASSWORD).await;
    let guest = server.guest().await.ust;
    for (name, encrypt) in [("secret", true), ("cart", false)] {
        server
            .attributes()
            .set_attribute(authed(
                &guest,
                proto::SetAttributeRequest {
                    scope: AttributeScope::Session as i32,
                    name: name.into(),
                    value: Some(json_value(serde_json::json!(name))),
                    encrypt,
                    ..Default::default()
                },
            ))
            .await
            .expect("set");
    }
    let (mut config, store) = server.stop().await;
    // Only a new key remains: values sealed with k1 can no longer be opened.
    config.encryption.keys = Some(format!("k2:{}", crate::harness::base64_key(9)));
    // A stopped server closes its pool: PostgreSQL opens a new one on the same database.
    let store = match backend {
        Backend::Memory => store,
        Backend::Postgres => ssod::open_store(&config).await.expect("reopen"),
    };
    let restarted = TestServer::start_on(config, store).await;
    let login = restarted
        .try_login("kai", PASSWORD, Some(&guest))
        .await
        .expect("login despite an attribute it cannot carry");
    let names = restarted
        .list_attribute_names(&login.ust, AttributeScope::Session as i32)
        .await
        .expect("names")
        .into_inner()
        .names;
    assert_eq!(
        names,
        ["cart"],
        "the readable attribute moved, the other was dropped"
    );
    assert_ended(&restarted, &guest, "the rotated guest session").await;
}

both!(
    a_password_renewed_at_login_revives_no_session,
    an_expiry_moved_later_revives_no_session,
    a_password_changed_at_login_ends_other_sessions,
    must_change_ends_the_users_sessions,
    login_rotates_a_presented_user_session,
    login_drops_an_attribute_it_cannot_decrypt,
);
