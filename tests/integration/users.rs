//! UserService over the real server: login and its refusals, accounts, passwords.

use std::time::Duration;

use prost::Message;
use ssod::proto::{self, ApprovalStatus};
use tonic::{Code, Request};

use crate::{
    both,
    harness::{ADMIN, ADMIN_PASSWORD, Backend, TestServer, assert_error, authed, violated_fields},
};

async fn login_opens_a_session_and_never_returns_a_hash(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server.login(ADMIN, ADMIN_PASSWORD).await;
    assert!(response.ust.starts_with("ssod_ust_"));
    let session = response.session.expect("session");
    let user = response.user.expect("user");
    assert_eq!(session.user_id, user.user_id);
    assert_eq!(session.current_app, "tests");
    assert_eq!(session.remote_addr, "127.0.0.1");
    assert_eq!(session.user_agent, "harness");
    assert!(user.is_super_user);
    assert!(user.last_login_time.is_some());
    assert!(!response.password_expiry_warning);
    let bytes = user.encode_to_vec();
    assert!(!String::from_utf8_lossy(&bytes).contains("argon2"));
    // Usernames are case-insensitive.
    server.login("ADMIN", ADMIN_PASSWORD).await;
    for id in [&user.user_id, &session.session_id] {
        let id = uuid::Uuid::parse_str(id).expect("uuid");
        assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    }
}

async fn wrong_password_and_unknown_user_look_the_same(backend: Backend) {
    let server = TestServer::start(backend).await;
    let wrong = server
        .try_login(ADMIN, "not-the-password", None)
        .await
        .expect_err("wrong");
    let unknown = server
        .try_login("nobody", ADMIN_PASSWORD, None)
        .await
        .expect_err("unknown");
    for status in [&wrong, &unknown] {
        assert_error(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    assert_eq!(wrong.message(), unknown.message());
}

async fn refused_users_get_invalid_credentials_by_default(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let user = server
        .create_user(&admin, "locked-out", "user-password-1")
        .await;
    server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: user.user_id.clone(),
            },
        ))
        .await
        .expect("lock");
    let status = server
        .try_login("locked-out", "user-password-1", None)
        .await
        .expect_err("locked");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");

    let pending = server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "pending".into(),
                password: Some("user-password-1".into()),
                is_approved: Some(false),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(pending.approval_status, ApprovalStatus::Pending as i32);
    let status = server
        .try_login("pending", "user-password-1", None)
        .await
        .expect_err("pending");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
}

async fn a_setting_reveals_why_login_was_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.passwords.reveal_login_failures = true
    })
    .await;
    let admin = server.admin().await;
    let locked = server
        .create_user(&admin, "locked", "user-password-1")
        .await;
    server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: locked.user_id,
            },
        ))
        .await
        .expect("lock");
    let status = server
        .try_login("locked", "user-password-1", None)
        .await
        .expect_err("locked");
    assert_error(&status, Code::PermissionDenied, "USER_LOCKED");

    let rejected = server
        .create_user(&admin, "rejected", "user-password-1")
        .await;
    server
        .users()
        .reject_user(authed(
            &admin,
            proto::RejectUserRequest {
                user_id: rejected.user_id,
            },
        ))
        .await
        .expect("reject");
    let status = server
        .try_login("rejected", "user-password-1", None)
        .await
        .expect_err("rejected");
    assert_error(&status, Code::PermissionDenied, "USER_NOT_APPROVED");

    let expiring = server
        .create_user(&admin, "expiring", "user-password-1")
        .await;
    let expiry = prost_types::Timestamp::from(server.clock_now() + Duration::from_secs(3600));
    server
        .users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                user_id: expiring.user_id,
                new_password: "user-password-2".into(),
                password_expiry: Some(expiry),
                ..Default::default()
            },
        ))
        .await
        .expect("set expiry");
    let warned = server.login("expiring", "user-password-2").await;
    assert!(
        warned.password_expiry_warning,
        "expires within the warning window"
    );
    server.advance(Duration::from_secs(3601));
    let status = server
        .try_login("expiring", "user-password-2", None)
        .await
        .expect_err("expired");
    assert_error(&status, Code::FailedPrecondition, "PASSWORD_EXPIRED");
    // The session opened before the expiry no longer authenticates.
    let status = server
        .current_user(&warned.ust)
        .await
        .expect_err("expired password");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    // Logging in with a new password renews it.
    let mut users = server.users();
    let renewed = users
        .login(proto::LoginRequest {
            username: "expiring".into(),
            password: "user-password-2".into(),
            new_password: Some("user-password-3".into()),
            ..Default::default()
        })
        .await
        .expect("login with new password")
        .into_inner();
    assert!(renewed.user.expect("user").password_expiry.is_none());
    server.login("expiring", "user-password-3").await;
}

async fn must_change_password_is_changed_at_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "newbie".into(),
                password: Some("initial-password".into()),
                password_must_change: true,
                ..Default::default()
            },
        ))
        .await
        .expect("create");
    let status = server
        .try_login("newbie", "initial-password", None)
        .await
        .expect_err("must change");
    assert_error(&status, Code::FailedPrecondition, "PASSWORD_MUST_CHANGE");
    let same = server
        .users()
        .login(proto::LoginRequest {
            username: "newbie".into(),
            password: "initial-password".into(),
            new_password: Some("initial-password".into()),
            ..Default::default()
        })
        .await
        .expect_err("same password");
    assert_error(&same, Code::InvalidArgument, "PASSWORD_TOO_WEAK");
    let changed = server
        .users()
        .login(proto::LoginRequest {
            username: "newbie".into(),
            password: "initial-password".into(),
            new_password: Some("chosen-password".into()),
            ..Default::default()
        })
        .await
        .expect("login with new password")
        .into_inner();
    assert!(!changed.user.expect("user").password_must_change);
    server.login("newbie", "chosen-password").await;
    let old = server
        .try_login("newbie", "initial-password", None)
        .await
        .expect_err("old");
    assert_error(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
}

async fn allowed_apps_are_enforced(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.allowed_apps = vec!["tests".into(), "portal".into()];
    })
    .await;
    server.login(ADMIN, ADMIN_PASSWORD).await;
    let status = server
        .users()
        .login(proto::LoginRequest {
            username: ADMIN.into(),
            password: ADMIN_PASSWORD.into(),
            current_app: "intruder".into(),
            ..Default::default()
        })
        .await
        .expect_err("app refused");
    assert_error(&status, Code::PermissionDenied, "APP_NOT_ALLOWED");
}

async fn create_user_generates_a_password_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let created = server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "generated".into(),
                email: "g@example.com".into(),
                display_name: "Gen Erated".into(),
                first_name: "Gen".into(),
                middle_name: "E.".into(),
                last_name: "Rated".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(created.generated_password.len() >= 16);
    let user = created.user.expect("user");
    assert_eq!(user.email, "g@example.com");
    assert_eq!(user.middle_name, "E.");
    assert_eq!(user.approval_status, ApprovalStatus::Approved as i32);
    assert!(!user.is_super_user);
    server.login("generated", &created.generated_password).await;

    let taken = server
        .users()
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "GENERATED".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("taken");
    assert_error(&taken, Code::AlreadyExists, "USERNAME_TAKEN");

    for bad in ["", "has space", "tab\there"] {
        let status = server
            .users()
            .create_user(authed(
                &admin,
                proto::CreateUserRequest {
                    username: bad.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("bad username");
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), ["username"]);
    }
}

async fn weak_passwords_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for password in ["short7c", &"x".repeat(257), "same-as-name"] {
        let status = server
            .users()
            .create_user(authed(
                &admin,
                proto::CreateUserRequest {
                    username: "same-as-name".into(),
                    password: Some(password.into()),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("weak");
        assert_error(&status, Code::InvalidArgument, "PASSWORD_TOO_WEAK");
    }
    // Exactly at the bounds is fine.
    server.create_user(&admin, "eight", "8chars!!").await;
    server.create_user(&admin, "max", &"y".repeat(256)).await;
}

async fn get_and_list_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let alice = server.create_user(&admin, "alice", "user-password-1").await;
    for name in ["bob", "carol", "alfred", "albert"] {
        server.create_user(&admin, name, "user-password-1").await;
    }
    let by_id = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                user_id: alice.user_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("by id")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(by_id, alice);
    let by_name = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "ALICE".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("by name")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(by_name, alice);
    let neither = server
        .users()
        .get_user(authed(&admin, proto::GetUserRequest::default()))
        .await
        .expect_err("neither");
    assert_error(&neither, Code::InvalidArgument, "INVALID_ARGUMENT");
    let bad_id = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                user_id: "nope".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("bad id");
    assert_eq!(violated_fields(&bad_id), ["user_id"]);

    // Paging over the "al" prefix: albert, alfred, alice.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .users()
            .list_users(authed(
                &admin,
                proto::ListUsersRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    username_prefix: "al".into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(page.total_size, 3);
        seen.extend(page.users.into_iter().map(|u| u.username));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["albert", "alfred", "alice"]);

    let all = server
        .users()
        .list_users(authed(&admin, proto::ListUsersRequest::default()))
        .await
        .expect("list all")
        .into_inner();
    assert_eq!(all.total_size, 6);
    assert!(all.next_page_token.is_empty());

    server
        .users()
        .reject_user(authed(
            &admin,
            proto::RejectUserRequest {
                user_id: alice.user_id.clone(),
            },
        ))
        .await
        .expect("reject");
    let rejected = server
        .users()
        .list_users(authed(
            &admin,
            proto::ListUsersRequest {
                approval_status: ApprovalStatus::Rejected as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("filter")
        .into_inner();
    assert_eq!(rejected.users.len(), 1);
    assert_eq!(rejected.users[0].username, "alice");
    let approved = server
        .users()
        .approve_user(authed(
            &admin,
            proto::ApproveUserRequest {
                user_id: alice.user_id,
            },
        ))
        .await
        .expect("approve")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(approved.approval_status, ApprovalStatus::Approved as i32);

    for bad in [
        proto::ListUsersRequest {
            page_size: -1,
            ..Default::default()
        },
        proto::ListUsersRequest {
            page_token: "!!".into(),
            ..Default::default()
        },
    ] {
        let status = server
            .users()
            .list_users(authed(&admin, bad))
            .await
            .expect_err("bad page");
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    }
}

async fn update_user_profile_and_admin_fields(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (user, ust) = server.user_session("dora").await;
    let mask = |paths: &[&str]| prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    };
    let updated = server
        .users()
        .update_user(authed(
            &ust,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    display_name: "Dora E.".into(),
                    email: "ignored@example.com".into(),
                    ..Default::default()
                }),
                update_mask: Some(mask(&["display_name"])),
            },
        ))
        .await
        .expect("self update")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.display_name, "Dora E.");
    assert_eq!(updated.email, "", "fields outside the mask are untouched");

    let status = server
        .users()
        .update_user(authed(
            &ust,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    is_super_user: true,
                    ..Default::default()
                }),
                update_mask: Some(mask(&["is_super_user"])),
            },
        ))
        .await
        .expect_err("self promotion");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");

    let status = server
        .users()
        .update_user(authed(
            &ust,
            proto::UpdateUserRequest {
                user: Some(proto::User::default()),
                update_mask: Some(mask(&["password_hash"])),
            },
        ))
        .await
        .expect_err("unknown path");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["update_mask"]);

    let admin = server.admin().await;
    let promoted = server
        .users()
        .update_user(authed(
            &admin,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id.clone(),
                    is_super_user: true,
                    last_name: "Explorer".into(),
                    ..Default::default()
                }),
                update_mask: Some(mask(&["is_super_user", "last_name"])),
            },
        ))
        .await
        .expect("admin update")
        .into_inner()
        .user
        .expect("user");
    assert!(promoted.is_super_user);
    assert_eq!(promoted.last_name, "Explorer");
    assert_eq!(promoted.display_name, "Dora E.");

    let (_, other) = server.user_session("eve").await;
    let status = server
        .users()
        .update_user(authed(
            &other,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id,
                    display_name: "x".into(),
                    ..Default::default()
                }),
                update_mask: Some(mask(&["display_name"])),
            },
        ))
        .await
        .expect_err("someone else");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");
}

async fn delete_user_removes_sessions_and_attributes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (user, ust) = server.user_session("frank").await;
    let status = server
        .users()
        .delete_user(authed(
            &admin,
            proto::DeleteUserRequest {
                user_id: user.user_id.clone(),
            },
        ))
        .await;
    status.expect("delete");
    let status = server.current_user(&ust).await.expect_err("session gone");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    let again = server
        .users()
        .delete_user(authed(
            &admin,
            proto::DeleteUserRequest {
                user_id: user.user_id,
            },
        ))
        .await
        .expect_err("gone");
    assert_error(&again, Code::NotFound, "USER_NOT_FOUND");
    let me = server
        .current_user(&admin)
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    let status = server
        .users()
        .delete_user(authed(
            &admin,
            proto::DeleteUserRequest {
                user_id: me.user_id,
            },
        ))
        .await
        .expect_err("self");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
}

async fn change_password_ends_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (user, first) = server.user_session("grace").await;
    let second = server.login("grace", "user-password-1").await.ust;
    let wrong = server
        .users()
        .change_password(authed(
            &first,
            proto::ChangePasswordRequest {
                old_password: "wrong-password".into(),
                new_password: "user-password-2".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("wrong old password");
    assert_error(&wrong, Code::Unauthenticated, "INVALID_CREDENTIALS");
    server
        .users()
        .change_password(authed(
            &first,
            proto::ChangePasswordRequest {
                old_password: "user-password-1".into(),
                new_password: "user-password-2".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("change");
    server
        .current_user(&first)
        .await
        .expect("the caller's session survives");
    let status = server
        .current_user(&second)
        .await
        .expect_err("other session ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    server.login("grace", "user-password-2").await;

    // A non-super-user cannot change someone else's password.
    let (_, other) = server.user_session("heidi").await;
    let status = server
        .users()
        .change_password(authed(
            &other,
            proto::ChangePasswordRequest {
                user_id: user.user_id.clone(),
                new_password: "hijacked-password".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("not SU");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");

    // A super-user can, and may require a change at next login.
    let admin = server.admin().await;
    server
        .users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                user_id: user.user_id,
                new_password: "reset-password".into(),
                must_change: Some(true),
                ..Default::default()
            },
        ))
        .await
        .expect("SU reset");
    let status = server
        .current_user(&first)
        .await
        .expect_err("all of grace's sessions ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    let status = server
        .try_login("grace", "reset-password", None)
        .await
        .expect_err("must change");
    assert_error(&status, Code::FailedPrecondition, "PASSWORD_MUST_CHANGE");
}

async fn lock_ends_sessions_and_unlock_restores_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (user, ust) = server.user_session("ivan").await;
    let locked = server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: user.user_id.clone(),
            },
        ))
        .await
        .expect("lock")
        .into_inner()
        .user
        .expect("user");
    assert!(locked.is_locked);
    let status = server.current_user(&ust).await.expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    let unlocked = server
        .users()
        .unlock_user(authed(
            &admin,
            proto::UnlockUserRequest {
                user_id: user.user_id,
            },
        ))
        .await
        .expect("unlock")
        .into_inner()
        .user
        .expect("user");
    assert!(!unlocked.is_locked);
    server.login("ivan", "user-password-1").await;
    let missing = server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .expect_err("no such user");
    assert_error(&missing, Code::NotFound, "USER_NOT_FOUND");
}

async fn logout_answers_ok_whatever_the_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ust = server.admin().await;
    let response = server
        .users()
        .logout(authed(&ust, proto::LogoutRequest {}))
        .await
        .expect("logout")
        .into_inner();
    assert!(response.guest_ust.is_empty());
    let status = server.current_user(&ust).await.expect_err("logged out");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    for request in [
        Request::new(proto::LogoutRequest {}),
        authed(&ust, proto::LogoutRequest {}),
        authed("garbage", proto::LogoutRequest {}),
    ] {
        server
            .users()
            .logout(request)
            .await
            .expect("logout is always OK");
    }
}

async fn current_user_needs_a_user_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let missing = server
        .users()
        .get_current_user(proto::GetCurrentUserRequest {})
        .await
        .expect_err("no token");
    assert_error(&missing, Code::Unauthenticated, "UST_MISSING");
    let guest = server.guest().await.ust;
    let status = server.current_user(&guest).await.expect_err("guest");
    assert_error(&status, Code::NotFound, "USER_NOT_FOUND");
    let (user, ust) = server.user_session("judy").await;
    let me = server
        .current_user(&ust)
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.user_id, user.user_id);
}

/// Un-approving or locking a user through UpdateUser ends its sessions like RejectUser and
/// LockUser do, and a super-user cannot lock, reject or demote itself.
async fn approval_and_lock_changes_end_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mask = |path: &str| {
        Some(prost_types::FieldMask {
            paths: vec![path.into()],
        })
    };
    let (user, ust) = server.user_session("xavier").await;
    server
        .users()
        .update_user(authed(
            &admin,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id.clone(),
                    approval_status: ApprovalStatus::Pending as i32,
                    ..Default::default()
                }),
                update_mask: mask("approval_status"),
            },
        ))
        .await
        .expect("un-approve");
    let status = server
        .current_user(&ust)
        .await
        .expect_err("sessions of a pending user end");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    server
        .users()
        .approve_user(authed(
            &admin,
            proto::ApproveUserRequest {
                user_id: user.user_id.clone(),
            },
        ))
        .await
        .expect("approve");
    let ust = server.login("xavier", "user-password-1").await.ust;
    server
        .users()
        .update_user(authed(
            &admin,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: user.user_id,
                    is_locked: true,
                    ..Default::default()
                }),
                update_mask: mask("is_locked"),
            },
        ))
        .await
        .expect("lock by update");
    let status = server
        .current_user(&ust)
        .await
        .expect_err("sessions of a locked user end");
    assert_error(&status, Code::Unauthenticated, "UST_INVALID");

    let me = server
        .current_user(&admin)
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    let lock_self = server
        .users()
        .lock_user(authed(
            &admin,
            proto::LockUserRequest {
                user_id: me.user_id.clone(),
            },
        ))
        .await
        .expect_err("lock self");
    assert_error(&lock_self, Code::InvalidArgument, "INVALID_ARGUMENT");
    let demote_self = server
        .users()
        .update_user(authed(
            &admin,
            proto::UpdateUserRequest {
                user: Some(proto::User {
                    user_id: me.user_id,
                    is_super_user: false,
                    ..Default::default()
                }),
                update_mask: mask("is_super_user"),
            },
        ))
        .await
        .expect_err("demote self");
    assert_error(&demote_self, Code::InvalidArgument, "INVALID_ARGUMENT");
    server
        .current_user(&admin)
        .await
        .expect("the super-user keeps its session");
}

/// One's own password changes only with the old one, super-user or not, and must differ.
async fn own_password_needs_the_old_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let status = server
        .users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                new_password: "taken-over-password".into(),
                must_change: Some(false),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no old password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let same = server
        .users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                old_password: ADMIN_PASSWORD.into(),
                new_password: ADMIN_PASSWORD.into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("same password");
    assert_error(&same, Code::InvalidArgument, "PASSWORD_TOO_WEAK");
    server.login(ADMIN, ADMIN_PASSWORD).await;
    let far_future = prost_types::Timestamp {
        seconds: 300_000_000_000,
        nanos: 0,
    };
    let (user, _) = server.user_session("yara").await;
    let status = server
        .users()
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                user_id: user.user_id,
                new_password: "reset-password-1".into(),
                password_expiry: Some(far_future),
                ..Default::default()
            },
        ))
        .await
        .expect_err("year beyond 9999");
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
}

both!(
    approval_and_lock_changes_end_sessions,
    own_password_needs_the_old_one,
    login_opens_a_session_and_never_returns_a_hash,
    wrong_password_and_unknown_user_look_the_same,
    refused_users_get_invalid_credentials_by_default,
    a_setting_reveals_why_login_was_refused,
    must_change_password_is_changed_at_login,
    allowed_apps_are_enforced,
    create_user_generates_a_password_once,
    weak_passwords_are_refused,
    get_and_list_users,
    update_user_profile_and_admin_fields,
    delete_user_removes_sessions_and_attributes,
    change_password_ends_other_sessions,
    lock_ends_sessions_and_unlock_restores_login,
    logout_answers_ok_whatever_the_token,
    current_user_needs_a_user_session,
);
