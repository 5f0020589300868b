//! Failed-login counters: claims, lockouts, windows, forgetting, and concurrent claims.

use std::{sync::Arc, time::Duration};

use ssod::{
    domain::{
        AddressClaim, ClaimLogin, ForgetLoginFailures, LoginClaim, PurgeCounts, PurgeExpired,
        ThrottleKind, ThrottleLimits,
    },
    store::Store,
};

use super::{KEEP_EVENTS, at, leftovers, purge, write};

conformance!(
    a_user_is_locked_out_by_the_claim_that_reaches_the_limit,
    lockouts_double_up_to_the_maximum,
    refused_claims_neither_count_nor_extend_a_lockout,
    forgetting_resets_failures_and_lockout_history,
    usernames_and_addresses_are_counted_apart,
    an_address_refuses_once_its_window_holds_the_limit,
    an_address_window_passes,
    a_right_password_gives_the_address_its_place_back,
    a_claim_the_user_refuses_leaves_the_address_uncounted,
    concurrent_claims_admit_no_more_than_the_user_limit,
    concurrent_claims_admit_no_more_than_the_address_limit,
    a_username_is_forgotten_once_its_last_failure_is_the_reset_time_old,
    a_running_lockout_is_not_forgotten,
    the_sweep_deletes_forgotten_counters_in_batches,
);

/// Users: 3 failures, lockouts of 60 s doubling up to 150 s, forgotten 1000 s after the
/// last failure; addresses: 4 in 100 s.
pub(super) fn limits() -> ThrottleLimits {
    ThrottleLimits {
        user_max_failures: 3,
        lockout: Duration::from_secs(60),
        max_lockout: Duration::from_secs(150),
        address_max_failures: 4,
        failure_window: Duration::from_secs(100),
        failure_reset: Duration::from_secs(1000),
    }
}

async fn claim_with(
    store: &Arc<dyn Store>,
    limits: ThrottleLimits,
    user: &str,
    address: Option<&str>,
    now: u64,
) -> LoginClaim {
    store
        .claim_login(write(
            at(now),
            ClaimLogin {
                user_key: user.into(),
                address: address.map(str::to_owned),
                limits,
            },
        ))
        .await
        .expect("claim")
}

async fn claim(store: &Arc<dyn Store>, user: &str, address: Option<&str>, now: u64) -> LoginClaim {
    claim_with(store, limits(), user, address, now).await
}

fn admitted(claim: &LoginClaim) -> bool {
    matches!(claim, LoginClaim::Admitted { .. })
}

fn refused(kind: ThrottleKind, until: u64) -> LoginClaim {
    LoginClaim::Refused {
        kind,
        until: at(until),
    }
}

/// Claims `count` attempts on `user` (no address) at `now`, asserting each is admitted.
async fn fail(store: &Arc<dyn Store>, user: &str, count: usize, now: u64) {
    for attempt in 0..count {
        let answer = claim(store, user, None, now).await;
        assert!(admitted(&answer), "attempt {attempt} at {now}: {answer:?}");
    }
}

async fn forget(store: &Arc<dyn Store>, user: &str, address: Option<AddressClaim>, now: u64) {
    store
        .forget_login_failures(write(
            at(now),
            ForgetLoginFailures {
                user_key: user.into(),
                address,
            },
        ))
        .await
        .expect("forget");
}

async fn a_user_is_locked_out_by_the_claim_that_reaches_the_limit(store: Arc<dyn Store>) {
    fail(&store, "admin", 3, 10).await;
    assert_eq!(
        claim(&store, "admin", None, 10).await,
        refused(ThrottleKind::User, 70)
    );
    assert_eq!(
        claim(&store, "admin", None, 69).await,
        refused(ThrottleKind::User, 70)
    );
    // At exactly its end the lockout is over.
    fail(&store, "admin", 1, 70).await;
}

async fn lockouts_double_up_to_the_maximum(store: Arc<dyn Store>) {
    fail(&store, "admin", 3, 0).await;
    fail(&store, "admin", 3, 60).await;
    assert_eq!(
        claim(&store, "admin", None, 60).await,
        refused(ThrottleKind::User, 180)
    );
    fail(&store, "admin", 3, 180).await;
    assert_eq!(
        claim(&store, "admin", None, 180).await,
        refused(ThrottleKind::User, 330),
        "240 s capped at 150 s"
    );
}

async fn refused_claims_neither_count_nor_extend_a_lockout(store: Arc<dyn Store>) {
    fail(&store, "admin", 3, 0).await;
    for now in [1, 20, 59] {
        for _ in 0..5 {
            assert_eq!(
                claim(&store, "admin", None, now).await,
                refused(ThrottleKind::User, 60)
            );
        }
    }
    // Nothing was counted meanwhile: the full limit again, and the next lockout is the second.
    fail(&store, "admin", 3, 60).await;
    assert_eq!(
        claim(&store, "admin", None, 60).await,
        refused(ThrottleKind::User, 180)
    );
}

async fn forgetting_resets_failures_and_lockout_history(store: Arc<dyn Store>) {
    fail(&store, "admin", 3, 0).await;
    forget(&store, "admin", None, 1).await;
    // No lockout left, the full limit again, and the next lockout is a first one.
    fail(&store, "admin", 2, 1).await;
    forget(&store, "admin", None, 1).await;
    fail(&store, "admin", 3, 1).await;
    assert_eq!(
        claim(&store, "admin", None, 1).await,
        refused(ThrottleKind::User, 61)
    );
    // Forgetting what was never counted is no error.
    forget(&store, "nobody", None, 1).await;
}

async fn usernames_and_addresses_are_counted_apart(store: Arc<dyn Store>) {
    fail(&store, "admin", 3, 0).await;
    fail(&store, "root", 2, 0).await;
    assert!(admitted(&claim(&store, "root", Some("192.0.2.1"), 0).await));
    assert!(admitted(
        &claim(&store, "other", Some("192.0.2.2"), 0).await
    ));
}

async fn an_address_refuses_once_its_window_holds_the_limit(store: Arc<dyn Store>) {
    let address = Some("192.0.2.1");
    for (index, now) in [0, 10, 20, 30].into_iter().enumerate() {
        let user = format!("user{index}");
        assert!(admitted(&claim(&store, &user, address, now).await));
    }
    // The next attempt, whatever its username, is refused and starts the address's lockout.
    assert_eq!(
        claim(&store, "fresh", address, 40).await,
        refused(ThrottleKind::Address, 100)
    );
    assert_eq!(
        claim(&store, "fresh", address, 99).await,
        refused(ThrottleKind::Address, 100)
    );
    // The refused attempts counted nothing for the username.
    fail(&store, "fresh", 3, 100).await;
    assert!(admitted(&claim(&store, "other", address, 100).await));
    assert!(admitted(
        &claim(&store, "other", Some("192.0.2.2"), 40).await
    ));
}

async fn an_address_window_passes(store: Arc<dyn Store>) {
    let address = Some("192.0.2.1");
    for user in ["a", "b", "c"] {
        assert!(admitted(&claim(&store, user, address, 0).await));
    }
    // The window that started at 0 has passed at 100: four more fit in the next one.
    for user in ["d", "e", "f", "g"] {
        assert!(admitted(&claim(&store, user, address, 100).await));
    }
    assert_eq!(
        claim(&store, "h", address, 199).await,
        refused(ThrottleKind::Address, 259)
    );
}

async fn a_right_password_gives_the_address_its_place_back(store: Arc<dyn Store>) {
    let address = Some("192.0.2.1");
    for user in ["a", "b", "c"] {
        assert!(admitted(&claim(&store, user, address, 0).await));
    }
    let LoginClaim::Admitted { address: place } = claim(&store, "d", address, 0).await else {
        panic!("the fourth claim is admitted");
    };
    let place = place.expect("an address place");
    assert_eq!(place.address, "192.0.2.1");
    forget(&store, "d", Some(place.clone()), 0).await;
    assert!(admitted(&claim(&store, "e", address, 0).await));
    assert!(matches!(
        claim(&store, "f", address, 0).await,
        LoginClaim::Refused { .. }
    ));
    // A place from a window that has passed is not given back to the next one.
    let LoginClaim::Admitted { address: Some(old) } = claim(&store, "g", address, 200).await else {
        panic!("admitted after the lockout");
    };
    for user in ["h", "i", "j"] {
        assert!(admitted(&claim(&store, user, address, 300).await));
    }
    forget(&store, "g", Some(old), 300).await;
    assert!(admitted(&claim(&store, "k", address, 300).await));
    assert_eq!(
        claim(&store, "l", address, 300).await,
        refused(ThrottleKind::Address, 360)
    );
}

async fn a_claim_the_user_refuses_leaves_the_address_uncounted(store: Arc<dyn Store>) {
    let address = Some("192.0.2.1");
    fail(&store, "admin", 3, 0).await;
    for _ in 0..10 {
        assert_eq!(
            claim(&store, "admin", address, 1).await,
            refused(ThrottleKind::User, 60)
        );
    }
    for user in ["a", "b", "c", "d"] {
        assert!(admitted(&claim(&store, user, address, 1).await));
    }
}

/// Fires `count` claims at once; returns how many were admitted.
async fn admitted_at_once(
    store: &Arc<dyn Store>,
    limits: ThrottleLimits,
    count: usize,
    user: impl Fn(usize) -> String,
    address: Option<&str>,
) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(count));
    let claims: Vec<_> = (0..count)
        .map(|index| {
            let store = Arc::clone(store);
            let start = Arc::clone(&start);
            let user = user(index);
            let address = address.map(str::to_owned);
            tokio::spawn(async move {
                start.wait().await;
                claim_with(&store, limits, &user, address.as_deref(), 0).await
            })
        })
        .collect();
    let mut admitted_count = 0;
    for claim in claims {
        if admitted(&claim.await.expect("joined")) {
            admitted_count += 1;
        }
    }
    admitted_count
}

async fn concurrent_claims_admit_no_more_than_the_user_limit(store: Arc<dyn Store>) {
    let limits = ThrottleLimits {
        user_max_failures: 10,
        ..limits()
    };
    let admitted = admitted_at_once(&store, limits, 60, |_| "admin".into(), None).await;
    assert_eq!(admitted, 10);
}

async fn concurrent_claims_admit_no_more_than_the_address_limit(store: Arc<dyn Store>) {
    let limits = ThrottleLimits {
        address_max_failures: 10,
        ..limits()
    };
    let admitted = admitted_at_once(
        &store,
        limits,
        60,
        |index| format!("user{index}"),
        Some("192.0.2.9"),
    )
    .await;
    assert_eq!(admitted, 10);
}

async fn a_username_is_forgotten_once_its_last_failure_is_the_reset_time_old(
    store: Arc<dyn Store>,
) {
    // The reset time counts from the last failure: one at 999 is still the third.
    fail(&store, "admin", 2, 0).await;
    locks_out(&store, "admin", 1, 999, 1059).await;
    // At exactly 1000 s after the last failure the count starts from zero, unswept.
    fail(&store, "root", 2, 0).await;
    locks_out(&store, "root", 3, 1000, 1060).await;
    // The lockout history goes too: the next lockout is a first one, 60 s and not 120 s.
    locks_out(&store, "admin", 3, 1999, 2059).await;
}

/// `count` admitted failures of `user` at `now`, after which it is locked out until `until`.
async fn locks_out(store: &Arc<dyn Store>, user: &str, count: usize, now: u64, until: u64) {
    fail(store, user, count, now).await;
    assert_eq!(
        claim(store, user, None, now).await,
        refused(ThrottleKind::User, until)
    );
}

async fn a_running_lockout_is_not_forgotten(store: Arc<dyn Store>) {
    // Lockouts longer than the reset time: 2000 s doubling up to 5000 s.
    let limits = ThrottleLimits {
        lockout: Duration::from_secs(2000),
        max_lockout: Duration::from_secs(5000),
        ..limits()
    };
    let sweep = |now| {
        let store = Arc::clone(&store);
        async move {
            store
                .purge_expired(write(
                    at(now),
                    PurgeExpired {
                        batch: 10,
                        throttle: limits,
                        event_retention: KEEP_EVENTS,
                    },
                ))
                .await
                .expect("swept")
                .login_failures
        }
    };
    for _ in 0..3 {
        assert!(admitted(
            &claim_with(&store, limits, "admin", None, 0).await
        ));
    }
    // The last failure is the reset time old at 1500, but the lockout runs until 2000.
    assert_eq!(sweep(1500).await, 0);
    assert_eq!(
        claim_with(&store, limits, "admin", None, 1500).await,
        refused(ThrottleKind::User, 2000)
    );
    // Once it is over, the history is forgotten: the next lockout is a first one again.
    assert_eq!(sweep(2000).await, 1);
    for _ in 0..3 {
        assert!(admitted(
            &claim_with(&store, limits, "admin", None, 2000).await
        ));
    }
    assert_eq!(
        claim_with(&store, limits, "admin", None, 2000).await,
        refused(ThrottleKind::User, 4000)
    );
}

async fn the_sweep_deletes_forgotten_counters_in_batches(store: Arc<dyn Store>) {
    let sweep = |now| {
        let store = Arc::clone(&store);
        async move {
            store
                .purge_expired(write(at(now), purge(1)))
                .await
                .expect("swept")
        }
    };
    // Forgotten at 1000: three usernames failed once at 0 from an address whose window
    // ended at 100, and an address whose window ended at 950.
    for user in ["spray1", "spray2", "spray3"] {
        assert!(admitted(&claim(&store, user, Some("192.0.2.1"), 0).await));
    }
    assert!(admitted(&claim(&store, "c", Some("192.0.2.3"), 850).await));
    // Kept at 1000: usernames that failed after 0, and an address locked out until 1020.
    assert!(admitted(&claim(&store, "recent", None, 500).await));
    for user in ["b1", "b2", "b3", "b4"] {
        assert!(admitted(&claim(&store, user, Some("192.0.2.2"), 950).await));
    }
    assert_eq!(
        claim(&store, "b5", Some("192.0.2.2"), 960).await,
        refused(ThrottleKind::Address, 1020)
    );
    assert_eq!(
        sweep(1000).await,
        PurgeCounts {
            login_failures: 5,
            ..PurgeCounts::default()
        }
    );
    assert_eq!(sweep(1000).await, PurgeCounts::default());
    // What was kept still counts: the address's lockout, and "recent"'s failure at 500.
    assert_eq!(
        claim(&store, "other", Some("192.0.2.2"), 1000).await,
        refused(ThrottleKind::Address, 1020)
    );
    locks_out(&store, "recent", 2, 1000, 1060).await;
    // "recent", "c", b1 to b4 and the locked address: nothing else was left behind.
    assert_eq!(leftovers(&store).await.login_failures, 7);
}
