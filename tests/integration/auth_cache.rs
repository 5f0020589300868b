//! The UST cache on PostgreSQL (`store::cache`): what migration 7's triggers announce, that
//! every way of ending a session or changing a user is refused at once by the process that
//! made it and, through `NOTIFY`, by another process, and that the cache fails closed while
//! its listener is down.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream};
use ssod::{
    domain::{
        DeleteSession, DeleteSessions, DeleteUser, EndSessions, LoginRecord, OpenSession,
        RenewSession, SessionSelector, UpdateUser, UserPatch,
    },
    store::{
        Store,
        cache::CHANNEL,
        postgres::{PgSettings, PostgresStore},
    },
};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store_conformance::{
    at, create_user, hash_of, new_session, open, plain_open, purge, write,
};

/// A connection that `LISTEN`s on the cache's channel, and what it receives.
struct Listening {
    client: tokio_postgres::Client,
    received: mpsc::UnboundedReceiver<String>,
    marks: u32,
}

impl Listening {
    async fn start(url: &str) -> Self {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
        let (forward, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(notification) = message {
                    let _ = forward.send(notification.payload().to_owned());
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .expect("listen");
        Self {
            client,
            received,
            marks: 0,
        }
    }

    /// Everything announced since the last call. A mark sent now arrives after whatever
    /// committed before it (PostgreSQL delivers in commit order), so this waits for nothing
    /// but the mark.
    async fn announced(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("mark {}", self.marks);
        self.client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &mark])
            .await
            .expect("notify");
        let mut payloads = Vec::new();
        loop {
            let payload = tokio::time::timeout(Duration::from_secs(30), self.received.recv())
                .await
                .expect("the mark within 30 s")
                .expect("connection open");
            if payload == mark {
                return payloads;
            }
            payloads.push(payload);
        }
    }
}

#[tokio::test]
async fn the_triggers_announce_ended_sessions_and_changed_users_but_not_renewals_or_sweeps() {
    let url = crate::pg::fresh_database_url().await;
    let postgres = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    postgres.migrate().await.expect("migrations apply");
    let store: Arc<dyn Store> = Arc::new(postgres);
    let mut listening = Listening::start(&url).await;

    let user = create_user(&store, "ann").await;
    let (first, _) = open(&store, Some(user.id), 0, 100).await;
    let (second, _) = open(&store, Some(user.id), 0, 100).await;
    let (expiring, _) = open(&store, Some(user.id), 0, 5).await;
    assert_eq!(listening.announced().await, Vec::<String>::new(), "inserts");

    store
        .renew_session(write(
            at(1),
            RenewSession {
                id: first.id,
                expires_at: at(200),
            },
        ))
        .await
        .expect("renewed");
    let swept = store
        .purge_expired(write(at(10), purge(100)))
        .await
        .expect("swept");
    assert_eq!(swept.sessions, 1, "{expiring:?} swept");
    assert_eq!(
        listening.announced().await,
        Vec::<String>::new(),
        "a renewal and the sweep"
    );

    let deleted = store
        .delete_session(write(at(11), DeleteSession { id: first.id }))
        .await
        .expect("deleted");
    assert!(deleted);
    assert_eq!(listening.announced().await, [format!("s:{}", first.id)]);

    // A login's update of its user, and the guest it rotates.
    let (guest, _) = open(&store, None, 0, 100).await;
    let (new, _) = new_session(Some(user.id), 12, 100);
    store
        .open_session(write(
            at(12),
            OpenSession {
                replaces: Some(guest.id),
                login: Some(LoginRecord {
                    verified_hash: hash_of("ann"),
                    new_password: None,
                }),
                ..plain_open(new)
            },
        ))
        .await
        .expect("logged in");
    assert_eq!(
        listening.announced().await,
        [format!("u:{}", user.id), format!("s:{}", guest.id)]
    );

    // A lock that ends the user's sessions: the user, then its sessions.
    store
        .update_user(write(
            at(13),
            UpdateUser {
                id: user.id,
                patch: UserPatch {
                    is_locked: Some(true),
                    ..UserPatch::default()
                },
                end_sessions: EndSessions::All,
            },
        ))
        .await
        .expect("locked");
    let announced = listening.announced().await;
    assert_eq!(announced[0], format!("u:{}", user.id));
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert!(
        announced[1].contains(&second.id.to_string()),
        "{announced:?}"
    );

    // An update that changes nothing announces nothing.
    store
        .update_user(write(
            at(14),
            UpdateUser {
                id: user.id,
                patch: UserPatch::default(),
                end_sessions: EndSessions::None,
            },
        ))
        .await
        .expect("updated");
    assert_eq!(listening.announced().await, Vec::<String>::new());

    // More ids than a payload holds: everything.
    for _ in 0..200 {
        open(&store, None, 0, 100).await;
    }
    let revoked = store
        .delete_sessions(write(
            at(15),
            DeleteSessions {
                selector: SessionSelector::Guests,
                batch: 1000,
            },
        ))
        .await
        .expect("revoked");
    assert_eq!(revoked, 200);
    assert_eq!(listening.announced().await, ["*"]);

    // A deleted user: the user, and the sessions the cascade takes with it.
    let (last, _) = open(&store, Some(user.id), 20, 100).await;
    store
        .delete_user(write(
            at(21),
            DeleteUser {
                id: user.id,
                batch: 10,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(
        listening.announced().await,
        [format!("s:{}", last.id), format!("u:{}", user.id)]
    );
}
