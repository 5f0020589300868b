//! The password policy over the real server: the zxcvbn strength floor on every path that
//! sets a password, the history of recent passwords, and the super-user made at start-up.

use std::sync::Arc;

use ssod::{clock::ManualClock, config::DeliverySetting, proto};
use tonic::{Code, Status};

use crate::{
    both,
    harness::{Backend, START, TestServer, assert_error, authed, test_config, violated_fields},
};

/// Strong enough for any floor.
const STRONG: &str = "correct horse battery staple";
const WEAK: &str = "qwerty123";

/// A server with the product's default floor (the harness turns it off for other suites).
async fn start_with_floor(backend: Backend, floor: u8) -> TestServer {
    TestServer::start_with(backend, |config| {
        config.credentials.password_min_strength = floor;
    })
    .await
}

async fn create(
    server: &TestServer,
    admin: &str,
    username: &str,
    password: Option<&str>,
) -> Result<proto::CreateUserResponse, Status> {
    server
        .users()
        .create_user(authed(
            admin,
            proto::CreateUserRequest {
                username: username.into(),
                password: password.map(Into::into),
                email: format!("{username}@example.test"),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn change_own(server: &TestServer, ust: &str, old: &str, new: &str) -> Result<(), Status> {
    server
        .users()
        .change_password(authed(
            ust,
            proto::ChangePasswordRequest {
                old_password: old.into(),
                new_password: new.into(),
                ..Default::default()
            },
        ))
        .await
        .map(drop)
}

/// The violation's description, which carries zxcvbn's advice.
fn advice(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .and_then(|bad| bad.field_violations.first())
        .map(|violation| violation.description.clone())
        .unwrap_or_default()
}

fn assert_too_weak(status: &Status, field: &str, password: &str) {
    assert_error(status, Code::InvalidArgument, "PASSWORD_TOO_WEAK");
    assert_eq!(violated_fields(status), [field], "{status:?}");
    let advice = advice(status);
    assert!(advice.contains("too easy to guess"), "{advice}");
    assert!(
        !advice.contains(password),
        "the password is echoed: {advice}"
    );
    assert!(!status.message().contains(password), "{status:?}");
}

async fn weak_passwords_are_refused_on_every_path(backend: Backend) {
    let server = start_with_floor(backend, 2).await;
    let admin = server.admin().await;

    let status = create(&server, &admin, "ann", Some(WEAK))
        .await
        .expect_err("weak");
    assert_too_weak(&status, "password", WEAK);
    let missing = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "ann".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("nothing written");
    assert_eq!(missing.code(), Code::NotFound);
    create(&server, &admin, "ann", Some(STRONG))
        .await
        .expect("strong");

    // zxcvbn is told the user's names: a password built on them is weak for that user only.
    let own_name = "kq7vbz3mxw";
    let built_on_it = "kq7vbz3mxw!!";
    let status = create(&server, &admin, own_name, Some(built_on_it))
        .await
        .expect_err("built on the username");
    assert_too_weak(&status, "password", built_on_it);
    create(&server, &admin, "bob", Some(built_on_it))
        .await
        .expect("not built on this user's name");

    let ann = server.login("ann", STRONG).await.ust;
    let status = change_own(&server, &ann, STRONG, WEAK)
        .await
        .expect_err("weak");
    assert_too_weak(&status, "new_password", WEAK);
    server.login("ann", STRONG).await;

    // A must-change user chooses its new password in Login.
    server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "cat".into(),
                password: Some(STRONG.into()),
                password_must_change: true,
                ..Default::default()
            },
        ))
        .await
        .expect("created");
    let status = server
        .users()
        .login(proto::LoginRequest {
            username: "cat".into(),
            password: STRONG.into(),
            new_password: Some(WEAK.into()),
            ..Default::default()
        })
        .await
        .expect_err("weak");
    assert_too_weak(&status, "new_password", WEAK);
    server
        .users()
        .login(proto::LoginRequest {
            username: "cat".into(),
            password: STRONG.into(),
            new_password: Some("staple battery horse correct".into()),
            ..Default::default()
        })
        .await
        .expect("strong");
}

async fn generated_passwords_pass_the_highest_floor(backend: Backend) {
    let server = start_with_floor(backend, 4).await;
    let admin = server.admin().await;
    let created = create(&server, &admin, "dan", None)
        .await
        .expect("a generated password passes");
    server.login("dan", &created.generated_password).await;
}

async fn a_floor_of_zero_estimates_nothing(backend: Backend) {
    let server = start_with_floor(backend, 0).await;
    let admin = server.admin().await;
    create(&server, &admin, "eli", Some(WEAK))
        .await
        .expect("no floor");
}

/// With a history of 3, the current password and the two before it are refused, by
/// every path; the fourth-last is allowed again.
async fn recent_passwords_are_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.credentials.password_history = 3;
    })
    .await;
    let admin = server.admin().await;
    create(&server, &admin, "fin", Some("password-0"))
        .await
        .expect("created");
    let ust = server.login("fin", "password-0").await.ust;
    change_own(&server, &ust, "password-0", "password-1")
        .await
        .expect("new");
    change_own(&server, &ust, "password-1", "password-2")
        .await
        .expect("new");
    for reused in ["password-0", "password-1"] {
        let status = change_own(&server, &ust, "password-2", reused)
            .await
            .expect_err("recent");
        assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
        assert_eq!(violated_fields(&status), ["new_password"]);
        assert!(!status.message().contains(reused), "{status:?}");
    }
    // A super-user's change is held to it too, the current password included.
    let fin = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "fin".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    let by_admin = |new: &str, must_change: Option<bool>| proto::ChangePasswordRequest {
        user_id: fin.user_id.clone(),
        new_password: new.into(),
        must_change,
        ..Default::default()
    };
    for reused in ["password-2", "password-0"] {
        let status = server
            .users()
            .change_password(authed(&admin, by_admin(reused, None)))
            .await
            .expect_err("recent");
        assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
    }
    server
        .users()
        .change_password(authed(&admin, by_admin("password-3", Some(true))))
        .await
        .expect("new");
    // The must-change login: password-1 is still among the last three (3, 2, 1).
    let login_changing = |new: &str| proto::LoginRequest {
        username: "fin".into(),
        password: "password-3".into(),
        new_password: Some(new.into()),
        ..Default::default()
    };
    let status = server
        .users()
        .login(login_changing("password-1"))
        .await
        .expect_err("recent");
    assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
    server
        .users()
        .login(login_changing("password-0"))
        .await
        .expect("the fourth-last is allowed again");
}

/// A reset is held to the history like every other path, and the password it sets joins
/// the history (tokens returned to the super-user caller, so no mail is needed here).
async fn a_reset_is_held_to_the_history_and_joins_it(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.credentials.password_history = 2;
        config.mail.delivery = DeliverySetting::Caller;
    })
    .await;
    let admin = server.admin().await;
    create(&server, &admin, "gil", Some("password-0"))
        .await
        .expect("created");
    let reset_token = || async {
        let token = server
            .users()
            .request_password_reset(authed(
                &admin,
                proto::RequestPasswordResetRequest {
                    username: "gil".into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("requested")
            .into_inner()
            .reset_token;
        assert!(!token.is_empty(), "returned to the super-user");
        token
    };
    let reset = |token: String, new: &'static str| {
        let server = &server;
        async move {
            server
                .users()
                .reset_password(proto::ResetPasswordRequest {
                    reset_token: token,
                    new_password: new.into(),
                })
                .await
                .map(drop)
        }
    };
    let token = reset_token().await;
    let status = reset(token.clone(), "password-0")
        .await
        .expect_err("the current password");
    assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
    assert_eq!(violated_fields(&status), ["new_password"]);
    reset(token, "password-1")
        .await
        .expect("a refused password does not use up the token");
    // The history is now 1 (set by the reset) and 0.
    let ust = server.login("gil", "password-1").await.ust;
    let status = change_own(&server, &ust, "password-1", "password-0")
        .await
        .expect_err("the reset kept the history");
    assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
    change_own(&server, &ust, "password-1", "password-2")
        .await
        .expect("new");
    let status = change_own(&server, &ust, "password-2", "password-1")
        .await
        .expect_err("the reset's password joined the history");
    assert_error(&status, Code::InvalidArgument, "PASSWORD_REUSED");
}

/// Each remembered password costs one Argon2 verification, run on the hasher pool (where the
/// overload limits apply): a change with a full history of 3 runs the old password's check,
/// three history checks and the new hash.
async fn history_checks_run_on_the_hasher_pool(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.credentials.password_history = 3;
    })
    .await;
    let admin = server.admin().await;
    create(&server, &admin, "gil", Some("password-0"))
        .await
        .expect("created");
    let ust = server.login("gil", "password-0").await.ust;
    for (old, new) in [("password-0", "password-1"), ("password-1", "password-2")] {
        change_own(&server, &ust, old, new).await.expect("new");
    }
    let before = server.sso.password_hasher().completed();
    change_own(&server, &ust, "password-2", "password-3")
        .await
        .expect("new");
    assert_eq!(server.sso.password_hasher().completed() - before, 5);
}

/// The start-up super-user's given password is held to the floor, and the refusal names the
/// problem without the password.
async fn a_weak_start_up_password_is_a_configuration_error(backend: Backend) {
    let mut config = test_config();
    config.credentials.password_min_strength = 2;
    config.bootstrap.super_user = Some("root".into());
    config.bootstrap.super_user_password = Some("root1234".into());
    if backend == Backend::Postgres {
        config.database.url = Some(crate::pg::fresh_database_url().await);
    }
    let store = ssod::open_store(&config).await.expect("store opens");
    let background = ssod::Background::start(None).expect("background");
    let sso = ssod::build_service(
        &config,
        store,
        Arc::new(ManualClock::new(std::time::SystemTime::UNIX_EPOCH + START)),
        &background,
    )
    .expect("service builds");
    let error = ssod::bootstrap(&config, &sso).await.expect_err("too weak");
    let message = error.to_string();
    assert!(matches!(error, ssod::AppError::Config(_)), "{message}");
    assert!(message.contains("too easy to guess"), "{message}");
    assert!(!message.contains("root1234"), "{message}");
}

both!(
    weak_passwords_are_refused_on_every_path,
    generated_passwords_pass_the_highest_floor,
    a_floor_of_zero_estimates_nothing,
    recent_passwords_are_refused,
    a_reset_is_held_to_the_history_and_joins_it,
    history_checks_run_on_the_hasher_pool,
    a_weak_start_up_password_is_a_configuration_error,
);
