//! Sign-up confirmation and password reset tokens: issue, look-up, single-use redemption,
//! expiry, replacement, invalidation by a password change, the sweep.

use std::sync::Arc;

use super::{at, create_user, leftovers, open, purge, user_record, write};
use ssod::{
    crypto,
    domain::{
        AccountTokenPurpose, ApprovalStatus, DeleteUser, EndSessions, EventContext, EventQuery,
        EventType, IssuePasswordReset, NewAccountToken, PasswordChange, PurgeCounts,
        RedeemAccountToken, Redemption, SessionEndReason, SessionId, SignUp, SignedUp, TokenHash,
        UpdateUser, User, UserId, UserPatch, UserRecord, Username,
    },
    store::Store,
};

conformance!(
    sign_up_stores_the_user_and_its_token_together,
    a_taken_username_stores_nothing_and_names_the_owner,
    a_confirmation_token_is_single_use_and_expires,
    a_reset_goes_only_to_a_user_who_may_reset,
    a_reset_sets_the_password_and_ends_every_session,
    a_later_reset_request_replaces_the_older_token,
    a_password_change_invalidates_a_reset_token,
    a_token_of_one_purpose_never_redeems_the_other,
    expired_tokens_are_swept_and_a_deleted_users_never_redeem,
    account_writes_record_their_events,
    a_taken_name_or_a_used_token_records_nothing,
);

/// A fresh token's text and hash, expiring at `expires`.
fn token(expires: u64) -> (String, NewAccountToken) {
    let text = crypto::generate_account_token();
    let new = NewAccountToken {
        hash: crypto::hash_account_token(&text),
        expires_at: at(expires),
    };
    (text, new)
}

fn unconfirmed(username: &str) -> UserRecord {
    let mut record = user_record(username);
    record.user.is_confirmed = false;
    record
}

/// Signs `username` up at 0 with a confirmation token expiring at `expires`.
async fn sign_up(store: &Arc<dyn Store>, username: &str, expires: u64) -> (User, TokenHash) {
    let (_, confirmation) = token(expires);
    let signed_up = store
        .sign_up(write(
            at(0),
            SignUp {
                record: unconfirmed(username),
                confirmation,
            },
        ))
        .await
        .expect("signed up");
    match signed_up {
        SignedUp::Created(user) => (user, confirmation.hash),
        SignedUp::Taken { .. } => panic!("{username} was taken"),
    }
}

/// Issues a reset token to `username` at `now`, expiring at `expires`.
async fn issue_reset(
    store: &Arc<dyn Store>,
    username: &str,
    now: u64,
    expires: u64,
) -> (Option<User>, TokenHash) {
    let (_, token) = token(expires);
    let issued = store
        .issue_password_reset(write(
            at(now),
            IssuePasswordReset {
                user_key: Username::key_of(username),
                token,
            },
        ))
        .await
        .expect("issue runs");
    (issued, token.hash)
}

fn new_password(hash: &str) -> Redemption {
    Redemption::ResetPassword(PasswordChange {
        password_hash: hash.into(),
        keep_history: 0,
        password_must_change: false,
        password_expiry: Some(at(9_000)),
    })
}

async fn redeem(
    store: &Arc<dyn Store>,
    hash: TokenHash,
    redemption: Redemption,
    now: u64,
) -> Option<User> {
    store
        .redeem_account_token(write(at(now), RedeemAccountToken { hash, redemption }))
        .await
        .expect("redemption runs")
}

async fn token_user(
    store: &Arc<dyn Store>,
    hash: TokenHash,
    purpose: AccountTokenPurpose,
    now: u64,
) -> Option<UserRecord> {
    store
        .account_token_user(&hash, purpose, at(now))
        .await
        .expect("look-up runs")
}

async fn stored(store: &Arc<dyn Store>, user: &User) -> UserRecord {
    store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user exists")
}

async fn sign_up_stores_the_user_and_its_token_together(store: Arc<dyn Store>) {
    let (user, hash) = sign_up(&store, "Newcomer", 100).await;
    assert!(!user.is_confirmed);
    assert_eq!(stored(&store, &user).await.user, user);
    let found = token_user(&store, hash, AccountTokenPurpose::ConfirmSignUp, 10)
        .await
        .expect("the token finds its user");
    assert_eq!(found.user.id, user.id);
    assert_eq!(found.password_hash, super::hash_of("Newcomer"));
}

async fn a_taken_username_stores_nothing_and_names_the_owner(store: Arc<dyn Store>) {
    let owner = create_user(&store, "Taken").await;
    let (_, confirmation) = token(100);
    let mut record = unconfirmed("TAKEN");
    record.user.profile.email = "intruder@example.test".into();
    let signed_up = store
        .sign_up(write(
            at(0),
            SignUp {
                record: record.clone(),
                confirmation,
            },
        ))
        .await
        .expect("sign-up runs");
    match signed_up {
        SignedUp::Taken { owner: Some(found) } => assert_eq!(found, owner),
        other => panic!("expected the owner, got {other:?}"),
    }
    assert!(
        store
            .user_by_id(record.user.id)
            .await
            .expect("read")
            .is_none(),
        "no user stored"
    );
    assert!(
        token_user(
            &store,
            confirmation.hash,
            AccountTokenPurpose::ConfirmSignUp,
            10
        )
        .await
        .is_none(),
        "no token stored"
    );
}

async fn a_confirmation_token_is_single_use_and_expires(store: Arc<dyn Store>) {
    let (user, hash) = sign_up(&store, "confirmer", 100).await;
    let (late, late_hash) = sign_up(&store, "latecomer", 100).await;
    // An expiry equal to now has passed.
    assert!(
        redeem(&store, late_hash, Redemption::ConfirmSignUp, 100)
            .await
            .is_none()
    );
    assert!(!stored(&store, &late).await.user.is_confirmed);

    let confirmed = redeem(&store, hash, Redemption::ConfirmSignUp, 99)
        .await
        .expect("a live token confirms");
    assert_eq!(confirmed.id, user.id);
    assert!(confirmed.is_confirmed);
    assert_eq!(stored(&store, &user).await.user, confirmed);
    assert!(
        redeem(&store, hash, Redemption::ConfirmSignUp, 99)
            .await
            .is_none(),
        "used up"
    );
    assert!(
        token_user(&store, hash, AccountTokenPurpose::ConfirmSignUp, 99)
            .await
            .is_none()
    );
}

async fn a_reset_goes_only_to_a_user_who_may_reset(store: Arc<dyn Store>) {
    let (issued, _) = issue_reset(&store, "nobody", 0, 100).await;
    assert!(issued.is_none(), "an unknown name gets nothing");

    let (pending, _) = sign_up(&store, "pending", 100).await;
    let (issued, _) = issue_reset(&store, "pending", 0, 100).await;
    assert!(issued.is_none(), "an unconfirmed user gets nothing");

    for (username, patch) in [
        (
            "locked",
            UserPatch {
                is_locked: Some(true),
                ..UserPatch::default()
            },
        ),
        (
            "rejected",
            UserPatch {
                approval_status: Some(ApprovalStatus::Rejected),
                ..UserPatch::default()
            },
        ),
    ] {
        let user = create_user(&store, username).await;
        update(&store, &user, patch).await;
        let (issued, hash) = issue_reset(&store, username, 0, 100).await;
        assert!(issued.is_none(), "{username} gets nothing");
        assert!(
            token_user(&store, hash, AccountTokenPurpose::ResetPassword, 10)
                .await
                .is_none(),
            "{username}'s token never redeems"
        );
    }

    let user = create_user(&store, "Forgetful").await;
    // Any spelling of the name reaches the user: the key is what is looked up.
    let (issued, hash) = issue_reset(&store, "FORGETFUL", 0, 100).await;
    assert_eq!(issued.expect("issued").id, user.id);
    let found = token_user(&store, hash, AccountTokenPurpose::ResetPassword, 10)
        .await
        .expect("the token finds its user");
    assert_eq!(found.user.id, user.id);
    assert_ne!(pending.id, user.id);
}

async fn update(store: &Arc<dyn Store>, user: &User, patch: UserPatch) {
    store
        .update_user(write(
            at(0),
            UpdateUser {
                id: user.id,
                patch,
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
}

async fn a_reset_sets_the_password_and_ends_every_session(store: Arc<dyn Store>) {
    let user = create_user(&store, "resetter").await;
    let other = create_user(&store, "bystander").await;
    let (first, first_token) = open(&store, Some(user.id), 0, 500).await;
    let (_second, second_token) = open(&store, Some(user.id), 0, 500).await;
    let (_kept, kept_token) = open(&store, Some(other.id), 0, 500).await;
    let (_, hash) = issue_reset(&store, "resetter", 0, 100).await;
    // Expired at 100: nothing changes.
    assert!(
        redeem(&store, hash, new_password("new-hash"), 100)
            .await
            .is_none()
    );
    assert_eq!(
        stored(&store, &user).await.password_hash,
        super::hash_of("resetter")
    );
    assert!(
        store
            .session_by_id(first.id, at(100))
            .await
            .expect("read")
            .is_some()
    );

    let (_, hash) = issue_reset(&store, "resetter", 100, 200).await;
    let reset = redeem(&store, hash, new_password("new-hash"), 150)
        .await
        .expect("a live token resets");
    assert_eq!(reset.password_expiry, Some(at(9_000)));
    let record = stored(&store, &user).await;
    assert_eq!(record.password_hash, "new-hash");
    assert_eq!(record.user, reset);
    for token in [first_token, second_token] {
        assert!(
            store
                .session_by_token(&token, at(150), None)
                .await
                .expect("read")
                .is_none(),
            "every session of the user ended"
        );
    }
    assert!(
        store
            .session_by_token(&kept_token, at(150), None)
            .await
            .expect("read")
            .is_some(),
        "another user's session stays"
    );
    assert!(
        redeem(&store, hash, new_password("newer-hash"), 150)
            .await
            .is_none(),
        "used up"
    );
    assert_eq!(stored(&store, &user).await.password_hash, "new-hash");
}

async fn a_later_reset_request_replaces_the_older_token(store: Arc<dyn Store>) {
    let user = create_user(&store, "twice").await;
    let (_, older) = issue_reset(&store, "twice", 0, 100).await;
    let (_, newer) = issue_reset(&store, "twice", 10, 110).await;
    assert!(
        token_user(&store, older, AccountTokenPurpose::ResetPassword, 20)
            .await
            .is_none()
    );
    assert!(
        redeem(&store, older, new_password("older"), 20)
            .await
            .is_none()
    );
    assert_eq!(
        redeem(&store, newer, new_password("newer"), 20)
            .await
            .expect("the newer token resets")
            .id,
        user.id
    );
}

async fn a_password_change_invalidates_a_reset_token(store: Arc<dyn Store>) {
    let user = create_user(&store, "changer").await;
    let (_, hash) = issue_reset(&store, "changer", 0, 100).await;
    update(
        &store,
        &user,
        UserPatch {
            password_hash: Some("changed-meanwhile".into()),
            ..UserPatch::default()
        },
    )
    .await;
    assert!(
        token_user(&store, hash, AccountTokenPurpose::ResetPassword, 10)
            .await
            .is_none()
    );
    assert!(
        redeem(&store, hash, new_password("reset"), 10)
            .await
            .is_none()
    );
    assert_eq!(
        stored(&store, &user).await.password_hash,
        "changed-meanwhile"
    );

    // A profile change is no password change: a token issued after it still works.
    let (_, hash) = issue_reset(&store, "changer", 10, 100).await;
    update(
        &store,
        &user,
        UserPatch {
            email: Some("new@example.test".into()),
            ..UserPatch::default()
        },
    )
    .await;
    assert!(
        redeem(&store, hash, new_password("reset"), 20)
            .await
            .is_some()
    );
}

async fn a_token_of_one_purpose_never_redeems_the_other(store: Arc<dyn Store>) {
    let (user, confirmation) = sign_up(&store, "purposeful", 100).await;
    assert!(
        token_user(&store, confirmation, AccountTokenPurpose::ResetPassword, 10)
            .await
            .is_none()
    );
    assert!(
        redeem(&store, confirmation, new_password("sneaky"), 10)
            .await
            .is_none()
    );
    assert_eq!(
        stored(&store, &user).await.password_hash,
        super::hash_of("purposeful")
    );
    redeem(&store, confirmation, Redemption::ConfirmSignUp, 10)
        .await
        .expect("confirmed");
    let (_, reset) = issue_reset(&store, "purposeful", 10, 100).await;
    assert!(
        redeem(&store, reset, Redemption::ConfirmSignUp, 20)
            .await
            .is_none()
    );
    assert!(
        redeem(&store, reset, new_password("mine"), 20)
            .await
            .is_some()
    );
}

async fn expired_tokens_are_swept_and_a_deleted_users_never_redeem(store: Arc<dyn Store>) {
    sign_up(&store, "expiring", 50).await;
    sign_up(&store, "lasting", 500).await;
    create_user(&store, "resets").await;
    issue_reset(&store, "resets", 0, 60).await;
    let (doomed, doomed_token) = sign_up(&store, "doomed", 500).await;
    assert_eq!(
        store
            .purge_expired(write(at(60), purge(1)))
            .await
            .expect("swept")
            .account_tokens,
        2,
        "the two expired by 60, in batches of one"
    );
    store
        .delete_user(write(
            at(70),
            DeleteUser {
                id: doomed.id,
                batch: 10,
            },
        ))
        .await
        .expect("deleted");
    // A new user of the same name has another (salted) password hash: the old token is not
    // its.
    let mut successor = user_record("doomed");
    successor.password_hash = "$argon2id$v=19$fake$another-salt".into();
    store
        .create_user(write(at(80), successor))
        .await
        .expect("the name is free again");
    assert!(
        redeem(&store, doomed_token, Redemption::ConfirmSignUp, 90)
            .await
            .is_none()
    );
    // A reset request for a name nobody may reset is stored like any other, until swept.
    let (issued, _) = issue_reset(&store, "nobody", 90, 100).await;
    assert!(issued.is_none());
    let left = leftovers(&store).await;
    assert_eq!(
        left,
        PurgeCounts {
            account_tokens: 3,
            ..left
        },
        "the lasting, the deleted user's and the unknown name's tokens are left"
    );
}

/// The events of call `cid`: (type, user, session, reason).
async fn events_of(
    store: &Arc<dyn Store>,
    cid: &str,
) -> Vec<(EventType, Option<UserId>, Option<SessionId>, String)> {
    let mut found: Vec<_> = store
        .list_events(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("listed")
        .into_iter()
        .filter(|event| event.context.cid == cid)
        .map(|event| {
            (
                event.event.kind,
                event.event.user,
                event.event.session,
                event.event.reason,
            )
        })
        .collect();
    // Within one write the order of per-session events is the store's.
    found.sort_by_key(|(_, _, session, _)| *session);
    found
}

fn by(cid: &str) -> EventContext {
    EventContext {
        cid: cid.into(),
        remote_addr: "192.0.2.9".into(),
        ..EventContext::default()
    }
}

async fn account_writes_record_their_events(store: Arc<dyn Store>) {
    let (_, confirmation) = token(100);
    let record = unconfirmed("chronicled");
    let id = record.user.id;
    store
        .sign_up(
            write(
                at(0),
                SignUp {
                    record,
                    confirmation,
                },
            )
            .by(by("sign-up")),
        )
        .await
        .expect("signed up");
    assert_eq!(
        events_of(&store, "sign-up").await,
        [(EventType::SignupRequested, Some(id), None, String::new())]
    );
    store
        .redeem_account_token(
            write(
                at(10),
                RedeemAccountToken {
                    hash: confirmation.hash,
                    redemption: Redemption::ConfirmSignUp,
                },
            )
            .by(by("confirm")),
        )
        .await
        .expect("runs")
        .expect("confirmed");
    assert_eq!(
        events_of(&store, "confirm").await,
        [(EventType::SignupConfirmed, Some(id), None, String::new())]
    );

    for (cid, name, user) in [
        ("known", "chronicled", Some(id)),
        ("unknown", "nobody", None),
    ] {
        let (_, token) = token(100);
        store
            .issue_password_reset(
                write(
                    at(20),
                    IssuePasswordReset {
                        user_key: Username::key_of(name),
                        token,
                    },
                )
                .by(by(cid)),
            )
            .await
            .expect("runs");
        assert_eq!(
            events_of(&store, cid).await,
            [(EventType::PasswordResetRequested, user, None, String::new())],
            "{cid}"
        );
    }
    let (first, _) = open(&store, Some(id), 30, 500).await;
    let (second, _) = open(&store, Some(id), 30, 500).await;
    let (_, hash) = issue_reset(&store, "chronicled", 40, 100).await;
    store
        .redeem_account_token(
            write(
                at(50),
                RedeemAccountToken {
                    hash,
                    redemption: new_password("new-hash"),
                },
            )
            .by(by("reset")),
        )
        .await
        .expect("runs")
        .expect("reset");
    let ended = |session: SessionId| {
        (
            EventType::SessionEnded,
            Some(id),
            Some(session),
            SessionEndReason::UserChanged.as_str().to_owned(),
        )
    };
    let mut expected = vec![
        (EventType::PasswordReset, Some(id), None, String::new()),
        ended(first.id),
        ended(second.id),
    ];
    expected.sort_by_key(|(_, _, session, _)| *session);
    assert_eq!(events_of(&store, "reset").await, expected);
}

async fn a_taken_name_or_a_used_token_records_nothing(store: Arc<dyn Store>) {
    create_user(&store, "occupied").await;
    let (_, confirmation) = token(100);
    store
        .sign_up(
            write(
                at(0),
                SignUp {
                    record: unconfirmed("occupied"),
                    confirmation,
                },
            )
            .by(by("taken")),
        )
        .await
        .expect("runs");
    assert_eq!(events_of(&store, "taken").await, []);
    store
        .redeem_account_token(
            write(
                at(0),
                RedeemAccountToken {
                    hash: confirmation.hash,
                    redemption: Redemption::ConfirmSignUp,
                },
            )
            .by(by("unknown token")),
        )
        .await
        .expect("runs");
    assert_eq!(events_of(&store, "unknown token").await, []);
}
