//! TOTP over the real server: enrolment and confirmation, login with a code or a recovery
//! code (each accepted once), the lockout counting wrong codes, and disabling.

use std::time::{Duration, SystemTime};

use ssod::proto::{self, event_service_client::EventServiceClient};
use tonic::{Code, Request, Status};
use totp_rs::{Algorithm, Builder, Secret};

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, reason, violated_fields},
};

const PASSWORD: &str = "user-password-1";

/// The code an authenticator app with `secret` (base32) shows at `at`.
fn code_at(secret: &str, at: SystemTime) -> String {
    let bytes = Secret::try_from_base32(secret)
        .expect("base32 secret")
        .as_bytes()
        .to_vec();
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(bytes)
        .build()
        .expect("an RFC 6238 secret");
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    totp.generate(seconds).to_string()
}

async fn begin(
    server: &TestServer,
    ust: &str,
) -> Result<proto::BeginTotpEnrollmentResponse, Status> {
    server
        .users()
        .begin_totp_enrollment(authed(ust, proto::BeginTotpEnrollmentRequest {}))
        .await
        .map(tonic::Response::into_inner)
}

async fn confirm(server: &TestServer, ust: &str, code: &str) -> Result<Vec<String>, Status> {
    server
        .users()
        .confirm_totp_enrollment(authed(
            ust,
            proto::ConfirmTotpEnrollmentRequest {
                totp_code: code.into(),
            },
        ))
        .await
        .map(|response| response.into_inner().recovery_codes)
}

async fn login_with_code(
    server: &TestServer,
    username: &str,
    password: &str,
    code: Option<&str>,
) -> Result<proto::LoginResponse, Status> {
    server
        .users()
        .login(proto::LoginRequest {
            username: username.into(),
            password: password.into(),
            current_app: "tests".into(),
            remote_addr: "127.0.0.1".into(),
            user_agent: "harness".into(),
            totp_code: code.map(Into::into),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn disable(
    server: &TestServer,
    ust: &str,
    request: proto::DisableTotpRequest,
) -> Result<(), Status> {
    server
        .users()
        .disable_totp(authed(ust, request))
        .await
        .map(drop)
}

/// A user with TOTP enabled: its UST, the secret and the recovery codes. The clock then moves
/// to the next step, so the confirming code is of the past.
async fn enrolled(server: &TestServer, username: &str) -> (String, String, Vec<String>) {
    let (_, ust) = server.user_session(username).await;
    let enrollment = begin(server, &ust).await.expect("enrolment begins");
    let codes = confirm(
        server,
        &ust,
        &code_at(&enrollment.secret, server.clock_now()),
    )
    .await
    .expect("confirmed");
    server.advance(Duration::from_secs(30));
    (ust, enrollment.secret, codes)
}

async fn enrolment_returns_a_secret_that_an_app_can_use(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (user, ust) = server.user_session("ada").await;
    assert!(!user.totp_enabled);
    let enrollment = begin(&server, &ust).await.expect("enrolment begins");
    assert_eq!(enrollment.secret.len(), 32, "160 bits in base32");
    assert_eq!(
        enrollment.otpauth_uri,
        format!(
            "otpauth://totp/ssod:ada?secret={}&issuer=ssod&algorithm=SHA1&digits=6&period=30",
            enrollment.secret
        )
    );
    let printed = format!("{enrollment:?}");
    assert!(!printed.contains(&enrollment.secret), "{printed}");

    // Pending: a new enrolment replaces it, and only the newest secret confirms.
    let replaced = begin(&server, &ust).await.expect("begins again");
    assert_ne!(replaced.secret, enrollment.secret);
    let stale = confirm(
        &server,
        &ust,
        &code_at(&enrollment.secret, server.clock_now()),
    )
    .await
    .expect_err("the replaced secret");
    assert_error(&stale, Code::Unauthenticated, "TOTP_INVALID");
    let current_user = server.current_user(&ust).await.expect("me").into_inner();
    assert!(
        !current_user.user.expect("user").totp_enabled,
        "still pending"
    );

    let codes = confirm(
        &server,
        &ust,
        &code_at(&replaced.secret, server.clock_now()),
    )
    .await
    .expect("confirmed");
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    let current_user = server.current_user(&ust).await.expect("me").into_inner();
    assert!(current_user.user.expect("user").totp_enabled);

    let again = begin(&server, &ust).await.expect_err("enabled already");
    assert_error(&again, Code::FailedPrecondition, "TOTP_ALREADY_ENABLED");
    let confirmed_twice = confirm(&server, &ust, "123456")
        .await
        .expect_err("nothing pending");
    assert_error(
        &confirmed_twice,
        Code::FailedPrecondition,
        "TOTP_NOT_PENDING",
    );

    let guest = server.guest().await.ust;
    let status = begin(&server, &guest)
        .await
        .expect_err("a guest has no user");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = server
        .users()
        .begin_totp_enrollment(Request::new(proto::BeginTotpEnrollmentRequest {}))
        .await
        .expect_err("no UST");
    assert_error(&status, Code::Unauthenticated, "UST_MISSING");
}

async fn the_issuer_is_configurable(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.credentials.totp_issuer = "Acme SSO".into()
    })
    .await;
    let (_, ust) = server.user_session("bo").await;
    let enrollment = begin(&server, &ust).await.expect("enrolment begins");
    assert!(
        enrollment
            .otpauth_uri
            .starts_with("otpauth://totp/Acme%20SSO:bo?"),
        "{}",
        enrollment.otpauth_uri
    );
    assert!(enrollment.otpauth_uri.contains("&issuer=Acme%20SSO&"));
}

async fn enrolment_needs_an_encryption_key(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.encryption.keys = Some(String::new());
    })
    .await;
    let (_, ust) = server.user_session("cy").await;
    let status = begin(&server, &ust)
        .await
        .expect_err("nothing to seal with");
    assert_error(&status, Code::FailedPrecondition, "ENCRYPTION_UNAVAILABLE");
    let status = confirm(&server, &ust, "123456")
        .await
        .expect_err("nothing stored");
    assert_error(&status, Code::FailedPrecondition, "TOTP_NOT_PENDING");
}

async fn a_wrong_confirmation_code_enables_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, ust) = server.user_session("dee").await;
    let enrollment = begin(&server, &ust).await.expect("begins");
    let now = server.clock_now();
    let two_steps_ago = now - Duration::from_secs(60);
    for wrong in [
        "000000".to_owned(),
        code_at(&enrollment.secret, two_steps_ago),
        "not a code".to_owned(),
    ] {
        if wrong == code_at(&enrollment.secret, now) {
            continue;
        }
        let status = confirm(&server, &ust, &wrong)
            .await
            .expect_err("a wrong code");
        assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");
    }
    let user = server
        .current_user(&ust)
        .await
        .expect("me")
        .into_inner()
        .user;
    assert!(!user.expect("user").totp_enabled);
    login_with_code(&server, "dee", PASSWORD, None)
        .await
        .expect("no code needed while pending");
}

async fn login_needs_the_code_only_after_the_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, secret, _) = enrolled(&server, "eve").await;
    let now = server.clock_now();

    let status = login_with_code(
        &server,
        "eve",
        "wrong-password",
        Some(&code_at(&secret, now)),
    )
    .await
    .expect_err("a wrong password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let status = login_with_code(&server, "eve", PASSWORD, None)
        .await
        .expect_err("no code");
    assert_error(&status, Code::Unauthenticated, "TOTP_REQUIRED");
    let status = login_with_code(&server, "eve", PASSWORD, Some("000000"))
        .await
        .expect_err("a wrong code");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");

    let login = login_with_code(&server, "eve", PASSWORD, Some(&code_at(&secret, now)))
        .await
        .expect("password and code");
    assert!(login.user.expect("user").totp_enabled);
    let status = login_with_code(&server, "eve", PASSWORD, Some(&code_at(&secret, now)))
        .await
        .expect_err("the same code again");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");

    // One step of skew either way: the previous step's code, once the clock moved on, is
    // still refused as used; the next step's is accepted, and then the current one is old.
    let next = now + Duration::from_secs(30);
    login_with_code(&server, "eve", PASSWORD, Some(&code_at(&secret, next)))
        .await
        .expect("a code one step ahead");
    server.advance(Duration::from_secs(30));
    let status = login_with_code(&server, "eve", PASSWORD, Some(&code_at(&secret, next)))
        .await
        .expect_err("its step was used");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");
    server.advance(Duration::from_secs(30));
    login_with_code(
        &server,
        "eve",
        PASSWORD,
        Some(&code_at(&secret, server.clock_now())),
    )
    .await
    .expect("a fresh step");
}

async fn a_recovery_code_logs_in_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, _, codes) = enrolled(&server, "fay").await;
    login_with_code(&server, "fay", PASSWORD, Some(&codes[0]))
        .await
        .expect("a recovery code");
    let status = login_with_code(&server, "fay", PASSWORD, Some(&codes[0]))
        .await
        .expect_err("used up");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");
    // As typed by a person: upper case, spaces for dashes.
    let retyped = codes[1].to_uppercase().replace('-', " ");
    login_with_code(&server, "fay", PASSWORD, Some(&retyped))
        .await
        .expect("another one, however typed");
    let status = login_with_code(&server, "fay", PASSWORD, Some("abcd-efgh-ijkl-mnop"))
        .await
        .expect_err("not one of hers");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");
}

async fn a_code_for_a_user_without_totp_is_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user_session("gus").await;
    let status = login_with_code(&server, "gus", PASSWORD, Some("123456"))
        .await
        .expect_err("no TOTP to check it against");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["totp_code"]);
    // Only once the password is right: otherwise it says nothing about the user.
    let status = login_with_code(&server, "gus", "wrong-password", Some("123456"))
        .await
        .expect_err("a wrong password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    login_with_code(&server, "gus", PASSWORD, Some(""))
        .await
        .expect("an empty code is no code");
}

/// Wrong codes count towards the lockout like wrong passwords, and so does a login without
/// a code: only a right code forgets a TOTP user's failures.
async fn wrong_codes_lock_the_user_out(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.lockout.login_max_failures = 3;
        config.passwords.reveal_login_failures = true;
    })
    .await;
    let (_, secret, _) = enrolled(&server, "hal").await;
    let status = login_with_code(&server, "hal", PASSWORD, Some("000000"))
        .await
        .expect_err("wrong code");
    assert_eq!(reason(&status), "TOTP_INVALID");
    let status = login_with_code(&server, "hal", PASSWORD, None)
        .await
        .expect_err("no code");
    assert_eq!(reason(&status), "TOTP_REQUIRED");
    let status = login_with_code(&server, "hal", PASSWORD, Some("111111"))
        .await
        .expect_err("wrong code");
    assert_eq!(reason(&status), "TOTP_INVALID");
    let status = login_with_code(
        &server,
        "hal",
        PASSWORD,
        Some(&code_at(&secret, server.clock_now())),
    )
    .await
    .expect_err("locked out, right code or not");
    assert_error(&status, Code::Unauthenticated, "TOO_MANY_ATTEMPTS");

    server.advance(Duration::from_secs(61));
    login_with_code(
        &server,
        "hal",
        PASSWORD,
        Some(&code_at(&secret, server.clock_now())),
    )
    .await
    .expect("after the lockout");
    // The success forgot the failures: two more wrong codes do not lock.
    for wrong in ["000000", "111111"] {
        let status = login_with_code(&server, "hal", PASSWORD, Some(wrong))
            .await
            .expect_err("wrong code");
        assert_eq!(reason(&status), "TOTP_INVALID");
    }
    server.advance(Duration::from_secs(30));
    login_with_code(
        &server,
        "hal",
        PASSWORD,
        Some(&code_at(&secret, server.clock_now())),
    )
    .await
    .expect("not locked");
}

async fn concurrent_logins_with_one_code_let_one_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, secret, _) = enrolled(&server, "ida").await;
    let code = code_at(&secret, server.clock_now());
    let attempts = (0..4).map(|_| {
        let mut users = server.users();
        let code = code.clone();
        tokio::spawn(async move {
            users
                .login(proto::LoginRequest {
                    username: "ida".into(),
                    password: PASSWORD.into(),
                    totp_code: Some(code),
                    ..Default::default()
                })
                .await
        })
    });
    let mut admitted = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => admitted += 1,
            Err(status) => assert_eq!(reason(&status), "TOTP_INVALID"),
        }
    }
    assert_eq!(admitted, 1, "one code, one session");
}

async fn disabling_takes_password_and_code_or_a_super_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (ust, secret, codes) = enrolled(&server, "jo").await;
    let own = |password: &str, code: &str| proto::DisableTotpRequest {
        password: password.into(),
        totp_code: code.into(),
        ..Default::default()
    };
    let status = disable(&server, &ust, own(PASSWORD, ""))
        .await
        .expect_err("no code");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["totp_code"]);
    let status = disable(&server, &ust, own("", ""))
        .await
        .expect_err("neither");
    assert_eq!(violated_fields(&status), ["password", "totp_code"]);
    let status = disable(&server, &ust, own("wrong-password", &codes[0]))
        .await
        .expect_err("wrong password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let status = disable(&server, &ust, own(PASSWORD, "000000"))
        .await
        .expect_err("wrong code");
    assert_error(&status, Code::Unauthenticated, "TOTP_INVALID");
    let me = server
        .current_user(&ust)
        .await
        .expect("me")
        .into_inner()
        .user;
    assert!(me.expect("user").totp_enabled, "refusals change nothing");

    disable(
        &server,
        &ust,
        own(PASSWORD, &code_at(&secret, server.clock_now())),
    )
    .await
    .expect("disabled with password and code");
    let me = server
        .current_user(&ust)
        .await
        .expect("me")
        .into_inner()
        .user;
    assert!(!me.expect("user").totp_enabled);
    login_with_code(&server, "jo", PASSWORD, None)
        .await
        .expect("no code needed any more");
    let status = disable(&server, &ust, own(PASSWORD, &codes[1]))
        .await
        .expect_err("nothing to disable");
    assert_error(&status, Code::FailedPrecondition, "TOTP_NOT_ENABLED");

    // Another user's: only a super-user, with no password or code of theirs.
    let (ust, _, _) = enrolled(&server, "kim").await;
    let kim = server
        .current_user(&ust)
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    let (_, bystander) = server.user_session("lou").await;
    let by_id = proto::DisableTotpRequest {
        user_id: kim.user_id.clone(),
        ..Default::default()
    };
    let status = disable(&server, &bystander, by_id.clone())
        .await
        .expect_err("not a super-user");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");
    let admin = server.admin().await;
    disable(&server, &admin, by_id.clone())
        .await
        .expect("a super-user disables it");
    let kim = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                user_id: kim.user_id,
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert!(!kim.totp_enabled);
    let status = disable(&server, &admin, by_id).await.expect_err("again");
    assert_error(&status, Code::FailedPrecondition, "TOTP_NOT_ENABLED");
}

/// The secret and the codes appear in the enrolment responses only: not in the user, its
/// listing, or any other answer.
async fn secrets_appear_only_in_the_enrolment_answers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (ust, secret, codes) = enrolled(&server, "max").await;
    let admin = server.admin().await;
    let listed = server
        .users()
        .list_users(authed(&admin, proto::ListUsersRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let me = server.current_user(&ust).await.expect("me").into_inner();
    let printed = format!("{listed:?} {me:?}");
    assert!(!printed.contains(&secret));
    for code in &codes {
        assert!(!printed.contains(code.as_str()));
    }
}

/// Every event of `user` of the given types, waiting until `count` are stored: a failed
/// login's event is written a moment after its call returns.
async fn user_events(
    server: &TestServer,
    admin: &str,
    user: &str,
    types: &[&str],
    count: usize,
) -> Vec<proto::Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = EventServiceClient::new(server.channel.clone())
            .list_events(authed(
                admin,
                proto::ListEventsRequest {
                    page_size: 1000,
                    types: types.iter().map(|kind| (*kind).into()).collect(),
                    user_id: user.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list events")
            .into_inner()
            .events;
        if listed.len() >= count {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} events: {listed:?}",
            listed.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn enabling_disabling_and_wrong_codes_are_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (user, ust) = server.user_session("ada").await;
    let enrollment = begin(&server, &ust).await.expect("enrolment begins");
    let codes = confirm(
        &server,
        &ust,
        &code_at(&enrollment.secret, server.clock_now()),
    )
    .await
    .expect("confirmed");
    server.advance(Duration::from_secs(30));

    // A six-digit code of none of the accepted steps.
    let now = server.clock_now();
    let valid: Vec<String> = [
        now - Duration::from_secs(30),
        now,
        now + Duration::from_secs(30),
    ]
    .into_iter()
    .map(|at| code_at(&enrollment.secret, at))
    .collect();
    let wrong = (0..10)
        .map(|digit| digit.to_string().repeat(6))
        .find(|code| !valid.contains(code))
        .expect("a wrong code");
    let refused = login_with_code(&server, "ada", PASSWORD, Some(&wrong))
        .await
        .expect_err("a wrong code is refused");
    assert_error(&refused, Code::Unauthenticated, "TOTP_INVALID");

    disable(
        &server,
        &ust,
        proto::DisableTotpRequest {
            password: PASSWORD.into(),
            totp_code: codes[0].clone(),
            ..Default::default()
        },
    )
    .await
    .expect("disabled");

    let listed = user_events(
        &server,
        &admin,
        &user.user_id,
        &["totp.enabled", "totp.disabled", "login.failed"],
        3,
    )
    .await;
    let kinds: Vec<&str> = listed.iter().map(|event| event.r#type.as_str()).collect();
    assert_eq!(
        kinds,
        ["totp.enabled", "login.failed", "totp.disabled"],
        "{listed:?}"
    );
    let (enabled, failed, disabled) = (&listed[0], &listed[1], &listed[2]);
    assert_eq!(failed.reason, "TOTP_INVALID");
    assert_eq!(failed.current_app, "tests");
    for event in [enabled, disabled] {
        assert_eq!(event.user_id, user.user_id);
        assert_eq!(event.actor_user_id, user.user_id, "the user acts on itself");
        assert!(!event.actor_session_id.is_empty());
    }
}

both!(
    enrolment_returns_a_secret_that_an_app_can_use,
    the_issuer_is_configurable,
    enrolment_needs_an_encryption_key,
    a_wrong_confirmation_code_enables_nothing,
    login_needs_the_code_only_after_the_password,
    a_recovery_code_logs_in_once,
    a_code_for_a_user_without_totp_is_invalid,
    wrong_codes_lock_the_user_out,
    concurrent_logins_with_one_code_let_one_in,
    disabling_takes_password_and_code_or_a_super_user,
    secrets_appear_only_in_the_enrolment_answers,
    enabling_disabling_and_wrong_codes_are_events,
);
