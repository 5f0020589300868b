//! Credentials: TOTP enrolment, single use of codes and recovery codes, password history.

use std::sync::Arc;

use super::{at, create_user, hash_of, new_session, plain_open, write};
use ssod::{
    domain::{
        BeginTotp, DeleteUser, DisableTotp, EnableTotp, EndSessions, LoginRecord, PasswordChange,
        RecoveryCodeHash, SealedSecret, UpdateUser, UseRecoveryCode, UseTotpStep, UserId,
        UserPatch,
    },
    store::{Store, StoreError},
};

conformance!(
    totp_enrolment_is_pending_until_enabled,
    a_new_enrolment_replaces_a_pending_one_only,
    a_totp_step_is_accepted_once_and_only_forward,
    concurrent_uses_of_one_step_admit_exactly_one,
    a_recovery_code_is_used_up_once,
    disabling_totp_removes_secret_and_codes,
    password_history_keeps_the_newest_replaced_hashes,
    a_login_with_a_new_password_records_the_replaced_hash,
    credentials_go_with_their_user,
);

fn sealed(byte: u8) -> SealedSecret {
    SealedSecret {
        key_id: "k1".into(),
        ciphertext: vec![byte; 40],
    }
}

fn code(byte: u8) -> RecoveryCodeHash {
    RecoveryCodeHash([byte; 32])
}

async fn begin(
    store: &Arc<dyn Store>,
    user: UserId,
    secret: SealedSecret,
) -> Result<(), StoreError> {
    store
        .begin_totp(write(at(1), BeginTotp { user, secret }))
        .await
}

async fn enable(
    store: &Arc<dyn Store>,
    user: UserId,
    secret: SealedSecret,
    step: u64,
) -> Result<ssod::domain::User, StoreError> {
    store
        .enable_totp(write(
            at(2),
            EnableTotp {
                user,
                secret,
                step,
                recovery_codes: vec![code(1), code(2)],
            },
        ))
        .await
}

async fn use_step(store: &Arc<dyn Store>, user: UserId, step: u64) -> bool {
    store
        .use_totp_step(write(at(3), UseTotpStep { user, step }))
        .await
        .expect("step use answers")
}

async fn use_code(store: &Arc<dyn Store>, user: UserId, code: RecoveryCodeHash) -> bool {
    store
        .use_recovery_code(write(at(3), UseRecoveryCode { user, code }))
        .await
        .expect("code use answers")
}

async fn enabled(store: &Arc<dyn Store>, user: UserId) -> bool {
    store
        .user_by_id(user)
        .await
        .expect("read")
        .expect("found")
        .user
        .totp_enabled
}

/// An enrolled user: secret 7 enabled at step 100 with recovery codes 1 and 2.
async fn enrolled(store: &Arc<dyn Store>, name: &str) -> UserId {
    let user = create_user(store, name).await.id;
    begin(store, user, sealed(7)).await.expect("begun");
    enable(store, user, sealed(7), 100).await.expect("enabled");
    user
}

async fn totp_enrolment_is_pending_until_enabled(store: Arc<dyn Store>) {
    let user = create_user(&store, "tess").await;
    assert!(!user.totp_enabled);
    assert_eq!(store.totp(user.id).await.expect("read"), None);

    begin(&store, user.id, sealed(7)).await.expect("begun");
    let pending = store.totp(user.id).await.expect("read").expect("stored");
    assert_eq!(pending.secret, sealed(7));
    assert_eq!(pending.last_step, None);
    assert!(!enabled(&store, user.id).await, "pending is not enabled");
    assert!(
        !use_step(&store, user.id, 5).await,
        "no code counts while pending"
    );

    let user_now = enable(&store, user.id, sealed(7), 100)
        .await
        .expect("enabled");
    assert!(user_now.totp_enabled);
    assert!(enabled(&store, user.id).await);
    assert_eq!(
        store
            .totp(user.id)
            .await
            .expect("read")
            .and_then(|t| t.last_step),
        Some(100),
        "the confirming code's step is used"
    );
    assert!(matches!(
        begin(&store, user.id, sealed(8)).await,
        Err(StoreError::TotpAlreadyEnabled)
    ));
    assert!(matches!(
        enable(&store, user.id, sealed(7), 101).await,
        Err(StoreError::TotpNotPending)
    ));
    assert_eq!(
        store.totp(user.id).await.expect("read").map(|t| t.secret),
        Some(sealed(7)),
        "an enabled secret is never replaced"
    );
    assert!(matches!(
        begin(&store, UserId::generate(), sealed(1)).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn a_new_enrolment_replaces_a_pending_one_only(store: Arc<dyn Store>) {
    let user = create_user(&store, "uma").await.id;
    begin(&store, user, sealed(1)).await.expect("first");
    begin(&store, user, sealed(2))
        .await
        .expect("second replaces it");
    assert!(matches!(
        enable(&store, user, sealed(1), 10).await,
        Err(StoreError::TotpNotPending)
    ));
    assert!(
        !enabled(&store, user).await,
        "a refused enable writes nothing"
    );
    assert!(
        !use_code(&store, user, code(1)).await,
        "nor any recovery code"
    );
    enable(&store, user, sealed(2), 10)
        .await
        .expect("the pending one enables");
    assert!(matches!(
        enable(&store, UserId::generate(), sealed(2), 10).await,
        Err(StoreError::TotpNotPending | StoreError::UserNotFound)
    ));
}

async fn a_totp_step_is_accepted_once_and_only_forward(store: Arc<dyn Store>) {
    let user = enrolled(&store, "vic").await;
    assert!(
        !use_step(&store, user, 100).await,
        "the confirming step is used"
    );
    assert!(
        !use_step(&store, user, 99).await,
        "an older step never counts"
    );
    assert!(use_step(&store, user, 101).await);
    assert!(!use_step(&store, user, 101).await, "each step once");
    assert!(use_step(&store, user, 103).await);
    assert!(
        !use_step(&store, user, 102).await,
        "nor one before the last accepted"
    );
    assert!(!use_step(&store, UserId::generate(), 500).await);
}

async fn concurrent_uses_of_one_step_admit_exactly_one(store: Arc<dyn Store>) {
    let user = enrolled(&store, "wes").await;
    let attempts = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { use_step(&store, user, 200).await })
    });
    let mut admitted = 0;
    for attempt in attempts {
        if attempt.await.expect("task") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 1, "one code, one login");
}

async fn a_recovery_code_is_used_up_once(store: Arc<dyn Store>) {
    let user = enrolled(&store, "xia").await;
    let other = enrolled(&store, "yann").await;
    assert!(
        !use_code(&store, user, code(3)).await,
        "not one of its codes"
    );
    assert!(use_code(&store, user, code(1)).await);
    assert!(!use_code(&store, user, code(1)).await, "used up");
    assert!(
        use_code(&store, other, code(1)).await,
        "another user's own copy"
    );
    assert!(use_code(&store, user, code(2)).await);
}

async fn disabling_totp_removes_secret_and_codes(store: Arc<dyn Store>) {
    let user = enrolled(&store, "zoe").await;
    let disable = |user| {
        let store = Arc::clone(&store);
        async move { store.disable_totp(write(at(4), DisableTotp { user })).await }
    };
    assert!(disable(user).await.expect("disabled"), "it was enabled");
    assert!(!enabled(&store, user).await);
    assert_eq!(store.totp(user).await.expect("read"), None);
    assert!(!use_code(&store, user, code(2)).await, "codes go too");
    assert!(!use_step(&store, user, 300).await);
    assert!(
        !disable(user).await.expect("answers"),
        "nothing left to disable"
    );

    begin(&store, user, sealed(9)).await.expect("enrols again");
    assert!(
        !disable(user).await.expect("answers"),
        "a pending one was not enabled"
    );
    assert_eq!(store.totp(user).await.expect("read"), None, "but it goes");
    assert!(matches!(
        disable(UserId::generate()).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn set_password(store: &Arc<dyn Store>, user: UserId, hash: &str, keep: usize) {
    store
        .update_user(write(
            at(5),
            UpdateUser {
                id: user,
                patch: UserPatch {
                    password_hash: Some(hash.into()),
                    keep_password_history: keep,
                    ..UserPatch::default()
                },
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("password set");
}

async fn password_history_keeps_the_newest_replaced_hashes(store: Arc<dyn Store>) {
    let user = create_user(&store, "abe").await.id;
    assert!(store.password_history(user).await.expect("read").is_empty());
    let first = hash_of("abe");
    set_password(&store, user, "$h2", 2).await;
    assert_eq!(
        store.password_history(user).await.expect("read"),
        std::slice::from_ref(&first)
    );
    set_password(&store, user, "$h3", 2).await;
    assert_eq!(
        store.password_history(user).await.expect("read"),
        ["$h2".to_owned(), first]
    );
    set_password(&store, user, "$h4", 2).await;
    assert_eq!(
        store.password_history(user).await.expect("read"),
        ["$h3", "$h2"],
        "newest first, at most the kept number"
    );
    set_password(&store, user, "$h5", 1).await;
    assert_eq!(store.password_history(user).await.expect("read"), ["$h4"]);
    set_password(&store, user, "$h6", 0).await;
    assert!(
        store.password_history(user).await.expect("read").is_empty(),
        "keeping none deletes the rest"
    );
    let current = store.user_by_id(user).await.expect("read").expect("found");
    assert_eq!(current.password_hash, "$h6");
}

async fn a_login_with_a_new_password_records_the_replaced_hash(store: Arc<dyn Store>) {
    let user = create_user(&store, "bea").await.id;
    let login = |verified: String| LoginRecord {
        verified_hash: verified,
        new_password: Some(PasswordChange {
            password_hash: "$renewed".into(),
            keep_history: 3,
            password_must_change: false,
            password_expiry: None,
        }),
    };
    // A login whose verified hash is stale records nothing, history included.
    let (new, _) = new_session(Some(user), 10, 1000);
    let mut stale = plain_open(new);
    stale.login = Some(login("$stale".into()));
    assert!(matches!(
        store.open_session(write(at(10), stale)).await,
        Err(StoreError::UserChanged)
    ));
    assert!(store.password_history(user).await.expect("read").is_empty());

    let (new, _) = new_session(Some(user), 11, 1000);
    let mut open = plain_open(new);
    open.login = Some(login(hash_of("bea")));
    store
        .open_session(write(at(11), open))
        .await
        .expect("login records the new password");
    assert_eq!(
        store.password_history(user).await.expect("read"),
        [hash_of("bea")]
    );
}

async fn credentials_go_with_their_user(store: Arc<dyn Store>) {
    let user = enrolled(&store, "cai").await;
    set_password(&store, user, "$h2", 3).await;
    store
        .delete_user(write(
            at(6),
            DeleteUser {
                id: user,
                batch: 10,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(store.totp(user).await.expect("read"), None);
    assert!(store.password_history(user).await.expect("read").is_empty());
    assert!(!use_code(&store, user, code(1)).await);
}
