//! Abuse resistance over the real server: floods are refused at once, never queued without
//! bound.

use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    both,
    harness::{ADMIN, ADMIN_PASSWORD, Backend, TestServer, assert_error},
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
