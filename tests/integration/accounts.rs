//! Sign-up with confirmation and password reset, through the real server on both stores,
//! with tokens read from mails a real SMTP server (the tests' sink) received.

use std::time::Duration;

use ssod::{
    config::{Config, DeliverySetting, SignUpSetting},
    proto::{self, event_service_client::EventServiceClient},
};
use tonic::{Code, Request};

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed, violated_fields},
    smtp::SmtpSink,
};

both!(
    sign_up_is_refused_when_off,
    sign_up_refuses_bad_input_and_writes_nothing,
    sign_up_confirm_by_mail_then_log_in,
    approval_mode_needs_confirmation_and_approval,
    a_taken_username_answers_the_same_and_tells_its_owner,
    reset_by_mail_sets_the_password_and_ends_every_session,
    reset_tokens_expire_and_are_invalidated,
    caller_delivery_returns_tokens_to_super_users_only,
    a_refused_mail_is_retried,
    a_dead_relay_never_loses_the_sign_up,
    every_flow_records_its_events,
);

const PASSWORD: &str = "first-password-1";
const NEW_PASSWORD: &str = "second-password-2";

/// Sign-up in `mode`, mails to `sink`, retries 10 ms apart.
fn mailing(config: &mut Config, sink: &SmtpSink, mode: SignUpSetting) {
    config.accounts.signup = mode;
    config.accounts.signup_confirm_url = Some("https://app.example.test/confirm/{token}".into());
    config.mail.smtp_url = Some(sink.url());
    config.mail.from = Some("ssod <no-reply@example.test>".into());
    config.mail.retry_delay = Duration::from_millis(10);
}

fn sign_up_request(username: &str) -> proto::SignUpRequest {
    proto::SignUpRequest {
        username: username.into(),
        password: PASSWORD.into(),
        email: format!("{username}@example.test"),
        display_name: format!("The {username}"),
        current_app: "tests".into(),
        remote_addr: "127.0.0.1".into(),
        user_agent: "harness".into(),
        ..Default::default()
    }
}

async fn sign_up(
    server: &TestServer,
    request: Request<proto::SignUpRequest>,
) -> Result<proto::SignUpResponse, tonic::Status> {
    server
        .users()
        .sign_up(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn confirm(server: &TestServer, token: &str) -> Result<proto::User, tonic::Status> {
    server
        .users()
        .confirm_sign_up(proto::ConfirmSignUpRequest {
            confirmation_token: token.into(),
        })
        .await
        .map(|response| response.into_inner().user.expect("user"))
}

fn reset_request(username: &str) -> proto::RequestPasswordResetRequest {
    proto::RequestPasswordResetRequest {
        username: username.into(),
        current_app: "tests".into(),
        remote_addr: "127.0.0.1".into(),
        user_agent: "harness".into(),
    }
}

async fn request_reset(
    server: &TestServer,
    request: Request<proto::RequestPasswordResetRequest>,
) -> String {
    server
        .users()
        .request_password_reset(request)
        .await
        .expect("a reset request is always OK")
        .into_inner()
        .reset_token
}

async fn reset(server: &TestServer, token: &str, password: &str) -> Result<(), tonic::Status> {
    server
        .users()
        .reset_password(proto::ResetPasswordRequest {
            reset_token: token.into(),
            new_password: password.into(),
        })
        .await
        .map(drop)
}

/// A user with an address, created by the admin.
async fn user_with_email(server: &TestServer, username: &str) -> proto::User {
    let admin = server.admin().await;
    server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: username.into(),
                password: Some(PASSWORD.into()),
                email: format!("{username}@example.test"),
                ..Default::default()
            },
        ))
        .await
        .expect("created")
        .into_inner()
        .user
        .expect("user")
}

async fn sign_up_is_refused_when_off(backend: Backend) {
    let server = TestServer::start(backend).await;
    let status = sign_up(&server, Request::new(sign_up_request("hopeful")))
        .await
        .expect_err("sign-up is off by default");
    assert_error(&status, Code::PermissionDenied, "SIGNUP_DISABLED");
    // Nothing was written: the name is free for an administrator.
    user_with_email(&server, "hopeful").await;
}

async fn sign_up_refuses_bad_input_and_writes_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Open)
    })
    .await;
    let base = || sign_up_request("careless");
    let cases = [
        (
            proto::SignUpRequest {
                username: "care\u{200b}less".into(),
                ..base()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("username"),
        ),
        (
            proto::SignUpRequest {
                username: "x".repeat(500),
                ..base()
            },
            Code::InvalidArgument,
            "LIMIT_EXCEEDED",
            Some("username"),
        ),
        (
            proto::SignUpRequest {
                display_name: "d".repeat(5000),
                ..base()
            },
            Code::InvalidArgument,
            "LIMIT_EXCEEDED",
            Some("display_name"),
        ),
        (
            proto::SignUpRequest {
                remote_addr: "bad\u{0}addr".into(),
                ..base()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("remote_addr"),
        ),
        (
            proto::SignUpRequest {
                password: "short".into(),
                ..base()
            },
            Code::InvalidArgument,
            "PASSWORD_TOO_WEAK",
            None,
        ),
    ];
    for (request, code, expected_reason, field) in cases {
        let status = sign_up(&server, Request::new(request))
            .await
            .expect_err("refused");
        assert_error(&status, code, expected_reason);
        if let Some(field) = field {
            assert_eq!(violated_fields(&status), [field], "{status:?}");
        }
    }
    // Nothing was written: the name is free.
    user_with_email(&server, "careless").await;
}

async fn sign_up_confirm_by_mail_then_log_in(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Open);
        config.passwords.reveal_login_failures = true;
    })
    .await;
    let signed_up = sign_up(&server, Request::new(sign_up_request("newcomer")))
        .await
        .expect("signed up");
    assert!(signed_up.confirmation_token.is_empty(), "tokens go by mail");
    let user = signed_up.user.expect("user");
    assert!(!user.is_confirmed);
    assert_eq!(user.approval_status, proto::ApprovalStatus::Approved as i32);
    assert_eq!(user.email, "newcomer@example.test");

    let status = server
        .try_login("newcomer", PASSWORD, None)
        .await
        .expect_err("unconfirmed");
    assert_error(&status, Code::PermissionDenied, "USER_NOT_CONFIRMED");

    let mail = sink.next().await;
    assert_eq!(mail.to, ["newcomer@example.test"]);
    assert_eq!(mail.subject(), "Confirm your account");
    assert!(
        mail.text()
            .contains("https://app.example.test/confirm/ssod_act_"),
        "the link template: {}",
        mail.text()
    );
    let token = mail.token().expect("a token in the mail");
    let confirmed = confirm(&server, &token).await.expect("confirmed");
    assert_eq!(confirmed.user_id, user.user_id);
    assert!(confirmed.is_confirmed);
    let status = confirm(&server, &token).await.expect_err("single use");
    assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");
    for bad in [
        "",
        "ssod_act_short",
        &token.replace("ssod_act_", "ssod_ust_"),
    ] {
        let status = confirm(&server, bad).await.expect_err("malformed");
        assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");
    }

    let login = server.login("newcomer", PASSWORD).await;
    assert!(login.user.expect("user").is_confirmed);
}

async fn approval_mode_needs_confirmation_and_approval(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Approval)
    })
    .await;
    let user = sign_up(&server, Request::new(sign_up_request("applicant")))
        .await
        .expect("signed up")
        .user
        .expect("user");
    assert_eq!(user.approval_status, proto::ApprovalStatus::Pending as i32);
    // Unconfirmed: refused like a wrong password, as failures are not revealed.
    let status = server
        .try_login("applicant", PASSWORD, None)
        .await
        .expect_err("unconfirmed");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let token = sink.next().await.token().expect("token");
    confirm(&server, &token).await.expect("confirmed");
    // Confirmed but pending: refused like a wrong password, as failures are not revealed.
    let status = server
        .try_login("applicant", PASSWORD, None)
        .await
        .expect_err("pending");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let admin = server.admin().await;
    server
        .users()
        .approve_user(authed(
            &admin,
            proto::ApproveUserRequest {
                user_id: user.user_id,
            },
        ))
        .await
        .expect("approved");
    server.login("applicant", PASSWORD).await;
}

async fn a_taken_username_answers_the_same_and_tells_its_owner(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Open)
    })
    .await;
    let owner = user_with_email(&server, "owner").await;
    let mut request = sign_up_request("OWNER");
    request.email = "intruder@example.test".into();
    let answer = sign_up(&server, Request::new(request.clone()))
        .await
        .expect("answered like a new name");
    let shown = answer.user.expect("user");
    assert_ne!(shown.user_id, owner.user_id);
    assert!(!shown.is_confirmed);
    assert_eq!(shown.email, "intruder@example.test");

    let notice = sink.next().await;
    assert_eq!(notice.to, ["owner@example.test"], "the owner is told");
    assert_eq!(notice.token(), None, "the notice carries no token");
    // The owner's account is untouched, and the answered user does not exist.
    server.login("owner", PASSWORD).await;
    let admin = server.admin().await;
    let status = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                user_id: shown.user_id,
                ..Default::default()
            },
        ))
        .await
        .expect_err("never stored");
    assert_error(&status, Code::NotFound, "USER_NOT_FOUND");
    // A super-user may list users anyway: it is told the truth.
    let status = sign_up(&server, authed(&admin, request))
        .await
        .expect_err("taken");
    assert_error(&status, Code::AlreadyExists, "USERNAME_TAKEN");
}

async fn reset_by_mail_sets_the_password_and_ends_every_session(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Off);
        config.accounts.password_reset_url =
            Some("https://app.example.test/reset?t={token}".into());
    })
    .await;
    user_with_email(&server, "forgetful").await;
    let first = server.login("forgetful", PASSWORD).await.ust;
    let second = server.login("forgetful", PASSWORD).await.ust;

    // Unknown and known names get the same answer.
    assert_eq!(
        request_reset(&server, Request::new(reset_request("nobody"))).await,
        ""
    );
    assert_eq!(
        request_reset(&server, Request::new(reset_request("Forgetful"))).await,
        ""
    );
    let mail = sink.next().await;
    assert_eq!(
        mail.to,
        ["forgetful@example.test"],
        "only the known name is mailed"
    );
    assert_eq!(mail.subject(), "Reset your password");
    assert!(
        mail.text()
            .contains("https://app.example.test/reset?t=ssod_act_"),
        "the link template: {}",
        mail.text()
    );
    let token = mail.token().expect("token");

    let status = reset(&server, &token, "short").await.expect_err("too weak");
    assert_error(&status, Code::InvalidArgument, "PASSWORD_TOO_WEAK");
    // A refusal used nothing up.
    reset(&server, &token, NEW_PASSWORD).await.expect("reset");
    for ust in [&first, &second] {
        let status = server.current_user(ust).await.expect_err("session ended");
        assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    }
    let status = server
        .try_login("forgetful", PASSWORD, None)
        .await
        .expect_err("old password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    server.login("forgetful", NEW_PASSWORD).await;
    let status = reset(&server, &token, "third-password-3")
        .await
        .expect_err("single use");
    assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");
    server.login("forgetful", NEW_PASSWORD).await;
}

async fn reset_tokens_expire_and_are_invalidated(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Off);
        config.accounts.token_ttl = Duration::from_secs(600);
    })
    .await;
    user_with_email(&server, "careful").await;
    let request = || Request::new(reset_request("careful"));

    request_reset(&server, request()).await;
    let expiring = sink.next().await.token().expect("token");
    server.advance(Duration::from_secs(600));
    let status = reset(&server, &expiring, NEW_PASSWORD)
        .await
        .expect_err("expired");
    assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");

    request_reset(&server, request()).await;
    let older = sink.next().await.token().expect("token");
    request_reset(&server, request()).await;
    let newer = sink.next().await.token().expect("token");
    let status = reset(&server, &older, NEW_PASSWORD)
        .await
        .expect_err("replaced by the later request");
    assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");

    // A password change by the user invalidates the outstanding token.
    let ust = server.login("careful", PASSWORD).await.ust;
    server
        .users()
        .change_password(authed(
            &ust,
            proto::ChangePasswordRequest {
                old_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("changed");
    let status = reset(&server, &newer, "third-password-3")
        .await
        .expect_err("the password changed since");
    assert_error(&status, Code::InvalidArgument, "TOKEN_INVALID");
    server.login("careful", NEW_PASSWORD).await;
}

async fn caller_delivery_returns_tokens_to_super_users_only(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.accounts.signup = SignUpSetting::Open;
        config.mail.delivery = DeliverySetting::Caller;
    })
    .await;
    let admin = server.admin().await;
    let (_, user_ust) = server.user_session("someone").await;

    let anonymous = sign_up(&server, Request::new(sign_up_request("anonymous")))
        .await
        .expect("signed up");
    assert!(anonymous.confirmation_token.is_empty());
    let by_user = sign_up(&server, authed(&user_ust, sign_up_request("by-user")))
        .await
        .expect("signed up");
    assert!(by_user.confirmation_token.is_empty(), "not a super-user");
    let by_admin = sign_up(&server, authed(&admin, sign_up_request("by-admin")))
        .await
        .expect("signed up");
    assert!(!by_admin.confirmation_token.is_empty());
    confirm(&server, &by_admin.confirmation_token)
        .await
        .expect("confirmed");
    server.login("by-admin", PASSWORD).await;

    assert_eq!(
        request_reset(&server, Request::new(reset_request("by-admin"))).await,
        ""
    );
    assert_eq!(
        request_reset(&server, authed(&user_ust, reset_request("by-admin"))).await,
        ""
    );
    assert_eq!(
        request_reset(&server, authed(&admin, reset_request("no-such-user"))).await,
        ""
    );
    let token = request_reset(&server, authed(&admin, reset_request("by-admin"))).await;
    assert!(!token.is_empty());
    reset(&server, &token, NEW_PASSWORD).await.expect("reset");
    server.login("by-admin", NEW_PASSWORD).await;
}

async fn a_refused_mail_is_retried(backend: Backend) {
    let mut sink = SmtpSink::refusing(2).await;
    let server =
        TestServer::start_with(backend, |config| mailing(config, &sink, SignUpSetting::Off)).await;
    user_with_email(&server, "patient").await;
    request_reset(&server, Request::new(reset_request("patient"))).await;
    let token = sink
        .next()
        .await
        .token()
        .expect("delivered on the third try");
    assert_eq!(sink.refused(), 2);
    reset(&server, &token, NEW_PASSWORD).await.expect("reset");
}

async fn a_dead_relay_never_loses_the_sign_up(backend: Backend) {
    // A port nobody listens on: every send fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let server = TestServer::start_with(backend, |config| {
        config.accounts.signup = SignUpSetting::Open;
        config.mail.smtp_url = Some(format!("smtp://{dead}"));
        config.mail.from = Some("ssod@example.test".into());
        config.mail.max_attempts = 2;
        config.mail.retry_delay = Duration::from_millis(10);
    })
    .await;
    let signed_up = sign_up(&server, Request::new(sign_up_request("stranded")))
        .await
        .expect("the sign-up does not wait for the relay")
        .user
        .expect("user");
    let admin = server.admin().await;
    let stored = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "stranded".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the user was stored")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(stored.user_id, signed_up.user_id);
    assert!(!stored.is_confirmed);
}

/// `request` carrying `x-request-id: cid`.
fn with_cid<T>(cid: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", cid.parse().expect("cid"));
    request
}

/// The stored events of `kind` that call `cid` recorded.
async fn events_of(server: &TestServer, admin: &str, kind: &str, cid: &str) -> Vec<proto::Event> {
    let listed = EventServiceClient::new(server.channel.clone())
        .list_events(authed(
            admin,
            proto::ListEventsRequest {
                types: vec![kind.into()],
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("events listed")
        .into_inner();
    listed
        .events
        .into_iter()
        .filter(|event| event.cid == cid)
        .collect()
}

async fn every_flow_records_its_events(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let server = TestServer::start_with(backend, |config| {
        mailing(config, &sink, SignUpSetting::Open)
    })
    .await;
    let admin = server.admin().await;
    let user = sign_up(&server, with_cid("cid-signup", sign_up_request("eventful")))
        .await
        .expect("signed up")
        .user
        .expect("user");
    let [requested] = events_of(&server, &admin, "signup.requested", "cid-signup")
        .await
        .try_into()
        .expect("one signup.requested");
    assert_eq!(requested.user_id, user.user_id);
    assert_eq!(requested.remote_addr, "127.0.0.1");
    let confirmation = sink.next().await.token().expect("token");
    server
        .users()
        .confirm_sign_up(with_cid(
            "cid-confirm",
            proto::ConfirmSignUpRequest {
                confirmation_token: confirmation.clone(),
            },
        ))
        .await
        .expect("confirmed");
    let [confirmed] = events_of(&server, &admin, "signup.confirmed", "cid-confirm")
        .await
        .try_into()
        .expect("one signup.confirmed");
    assert_eq!(confirmed.user_id, user.user_id);

    let first = server
        .login("eventful", PASSWORD)
        .await
        .session
        .expect("session");
    let second = server
        .login("eventful", PASSWORD)
        .await
        .session
        .expect("session");
    for (cid, username, user_id) in [
        ("cid-known", "eventful", user.user_id.as_str()),
        ("cid-unknown", "nobody-at-all", ""),
    ] {
        server
            .users()
            .request_password_reset(with_cid(cid, reset_request(username)))
            .await
            .expect("answered");
        let [requested] = events_of(&server, &admin, "password.reset_requested", cid)
            .await
            .try_into()
            .expect("one password.reset_requested per request");
        assert_eq!(requested.user_id, user_id, "{cid}");
    }
    let reset_token = sink.next().await.token().expect("token");
    server
        .users()
        .reset_password(with_cid(
            "cid-reset",
            proto::ResetPasswordRequest {
                reset_token: reset_token.clone(),
                new_password: NEW_PASSWORD.into(),
            },
        ))
        .await
        .expect("reset");
    let [reset] = events_of(&server, &admin, "password.reset", "cid-reset")
        .await
        .try_into()
        .expect("one password.reset");
    assert_eq!(reset.user_id, user.user_id);
    let ended = events_of(&server, &admin, "session.ended", "cid-reset").await;
    let mut ended_sessions: Vec<&str> = ended
        .iter()
        .inspect(|event| {
            assert_eq!(event.reason, "user_changed");
            assert_eq!(event.user_id, user.user_id);
        })
        .map(|event| event.session_id.as_str())
        .collect();
    ended_sessions.sort_unstable();
    let mut expected = vec![first.session_id.as_str(), second.session_id.as_str()];
    expected.sort_unstable();
    assert_eq!(
        ended_sessions, expected,
        "one session.ended per session the reset ended"
    );

    // No event carries a token.
    let everything = EventServiceClient::new(server.channel.clone())
        .list_events(authed(
            &admin,
            proto::ListEventsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("events listed")
        .into_inner();
    let printed = format!("{:?}", everything.events);
    for token in [&confirmation, &reset_token] {
        assert!(!printed.contains(token.as_str()), "a token in an event");
    }
}

/// The sweep of expired sign-up and reset tokens reads a few index pages however many tokens
/// are stored, also under PostgreSQL's generic plan (see
/// `lockout::sweeps_of_failure_counters_touch_a_few_pages_of_large_tables`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_of_account_tokens_touch_a_few_pages_of_many_tokens() {
    use ssod::store::postgres::sql::accounts::PURGE_ACCOUNT_TOKENS;
    const TOKENS: i64 = 100_000;
    const EXPIRED: i64 = 10;
    const MOST_PAGES: u64 = 100;
    let server = TestServer::start(Backend::Postgres).await;
    let url = server.config.database.url.clone().expect("url");
    let client = crate::pg::connect(&url).await;
    // The first EXPIRED expired a minute ago, the rest expire in half an hour.
    client
        .batch_execute(&format!(
            "INSERT INTO account_tokens \
               (token_hash, user_key, purpose, password_fingerprint, created_at, expires_at) \
             SELECT sha256(int8send(i)), 'key-' || i, 'reset_password', NULL, now(), \
               now() + CASE WHEN i <= {EXPIRED} THEN interval '-1 minute' \
               ELSE interval '30 minutes' END \
             FROM generate_series(1, {TOKENS}) AS i; \
             ANALYZE account_tokens; \
             PREPARE sweep AS {PURGE_ACCOUNT_TOKENS}; \
             SET plan_cache_mode = force_generic_plan"
        ))
        .await
        .expect("many tokens");
    let row = client
        .query_one("SELECT pg_relation_size('account_tokens') / 8192", &[])
        .await
        .expect("size");
    let table_pages: i64 = row.get(0);
    assert!(table_pages > 500, "{table_pages} pages");
    // Twice: the first sweeps EXPIRED tokens, the second (the usual sweep) none.
    for _ in 0..2 {
        let (pages, plan) = crate::pg::pages_touched(&client, "EXECUTE sweep(now(), 1000)").await;
        assert!(
            pages <= MOST_PAGES,
            "the sweep touched {pages} pages: {plan}"
        );
    }
    let row = client
        .query_one("SELECT count(*) FROM account_tokens", &[])
        .await
        .expect("counted");
    let kept: i64 = row.get(0);
    assert_eq!(kept, TOKENS - EXPIRED, "exactly the expired ones swept");
}
