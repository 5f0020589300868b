//! The shared `LISTEN` connection: it receives what other connections `NOTIFY`, and after its
//! connection is killed it says so (down, then up with a new epoch) and receives again.

use std::time::Duration;

use ssod::{
    lifecycle::Lifecycle,
    store::postgres::listener::{APPLICATION_NAME, Listener, Listening, Notification},
};
use tokio::sync::{broadcast, watch};

use crate::pg;

const CHANNEL: &str = "ssod_listener_test";

async fn until(
    state: &mut watch::Receiver<Listening>,
    wanted: impl Fn(Listening) -> bool,
) -> Listening {
    let seen = tokio::time::timeout(Duration::from_secs(30), state.wait_for(|now| wanted(*now)))
        .await
        .expect("listener state within 30 s")
        .expect("listener alive");
    *seen
}

/// Sends `payload` until it arrives: a `NOTIFY` sent before the `LISTEN` took effect is lost,
/// which is exactly what subscribers are told to expect.
async fn delivered(
    sender: &tokio_postgres::Client,
    received: &mut broadcast::Receiver<Notification>,
    payload: &str,
) -> Notification {
    for _ in 0..300 {
        sender
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .expect("notify");
        if let Ok(Ok(notification)) =
            tokio::time::timeout(Duration::from_millis(100), received.recv()).await
        {
            return notification;
        }
    }
    panic!("{payload} never arrived");
}

#[tokio::test]
async fn notifications_arrive_and_survive_a_killed_connection() {
    let url = pg::fresh_database_url().await;
    let lifecycle = Lifecycle::new();
    let listener = Listener::start_on(&url, &[CHANNEL], &lifecycle).expect("listener starts");
    let mut state = listener.state();
    let mut received = listener.subscribe();
    let sender = pg::connect(&url).await;

    let Listening::Up { epoch: first } = until(&mut state, |s| s != Listening::Down).await else {
        unreachable!()
    };
    let notification = delivered(&sender, &mut received, "one").await;
    assert_eq!(&*notification.channel, CHANNEL);
    assert_eq!(&*notification.payload, "one");

    let killed: i64 = sender
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 1, "one listener connection per process");
    until(&mut state, |s| s == Listening::Down).await;
    let Listening::Up { epoch: second } = until(&mut state, |s| s != Listening::Down).await else {
        unreachable!()
    };
    assert!(second > first, "a reconnect is a new epoch");
    // What was queued before the kill may still be read; skip to the new payload.
    loop {
        let notification = delivered(&sender, &mut received, "two").await;
        if &*notification.payload == "two" {
            break;
        }
    }

    lifecycle.stop(Duration::from_secs(5)).await;
    assert_eq!(*state.borrow(), Listening::Down, "stopping takes it down");
}
