//! Round trips to PostgreSQL per store call on the hot path, counted on the wire: the store
//! talks to the database through a proxy that counts every exchange a client waits for.
//! The token look-up (renewing or not), each attribute read and each attribute write is one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ssod::{
    domain::{
        DeleteAttributes, Owner, RenewOnUse, SessionPolicy, SetAttributeExpiry, SetAttributes,
    },
    store::{
        Store, StoreError,
        postgres::{PgSettings, PostgresStore},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf},
};
use tokio_postgres::config::Host;

use super::{NEVER, at, create_user, open, plain, write};

/// A TCP proxy in front of PostgreSQL that counts the exchanges clients start: every Sync
/// (`S`, which ends an extended-protocol query) and every simple Query (`Q`, as `BEGIN` and
/// `COMMIT` are sent) makes the client wait for the server once.
struct RoundTripCounter {
    port: u16,
    exchanges: Arc<AtomicU64>,
}

impl RoundTripCounter {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let exchanges = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&exchanges);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream.clone())
                    .await
                    .expect("connect to PostgreSQL");
                let (client_read, mut client_write) = client.into_split();
                let (mut server_read, server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::spawn(forward_counting(
                    client_read,
                    server_write,
                    Arc::clone(&counted),
                ));
            }
        });
        Self { port, exchanges }
    }

    fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::SeqCst)
    }
}

/// Forwards a client's messages to the server, counting each before it is sent on: the
/// startup message (no type byte), then typed messages `[type][length: i32][body]`.
async fn forward_counting(
    mut client: OwnedReadHalf,
    mut server: tokio::net::tcp::OwnedWriteHalf,
    exchanges: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let length = client.read_i32().await?;
    let mut startup = vec![0; usize::try_from(length - 4).expect("length")];
    client.read_exact(&mut startup).await?;
    server.write_i32(length).await?;
    server.write_all(&startup).await?;
    loop {
        let kind = client.read_u8().await?;
        let length = client.read_i32().await?;
        let mut body = vec![0; usize::try_from(length - 4).expect("length")];
        client.read_exact(&mut body).await?;
        if kind == b'S' || kind == b'Q' {
            exchanges.fetch_add(1, Ordering::SeqCst);
        }
        server.write_u8(kind).await?;
        server.write_i32(length).await?;
        server.write_all(&body).await?;
    }
}

/// A migrated store on a fresh database whose one pooled connection goes through a counter.
async fn counted_store() -> (Arc<dyn Store>, RoundTripCounter) {
    let url = crate::pg::fresh_database_url().await;
    let config: tokio_postgres::Config = url.parse().expect("a database url");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        other => panic!("the round-trip counter needs a TCP host, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let counter = RoundTripCounter::start((host, port)).await;
    let mut proxied = format!(
        "host=127.0.0.1 port={} user={} dbname={} sslmode=disable",
        counter.port,
        config.get_user().expect("a user"),
        config.get_dbname().expect("a database"),
    );
    if let Some(password) = config.get_password() {
        proxied.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
    }
    let store = PostgresStore::connect(
        &proxied,
        PgSettings {
            pool_size: 1,
            ..PgSettings::default()
        },
    )
    .expect("pool builds");
    store.migrate().await.expect("migrations apply");
    (Arc::new(store), counter)
}

/// Runs `call` twice (the first prepares its statement on the connection) and returns the
/// exchanges the second one took.
async fn exchanges_of<T, F>(counter: &RoundTripCounter, mut call: impl FnMut() -> F) -> u64
where
    F: Future<Output = T>,
{
    call().await;
    let before = counter.exchanges();
    call().await;
    counter.exchanges() - before
}

#[tokio::test]
async fn each_hot_path_call_is_one_round_trip() {
    let (store, counter) = counted_store().await;
    let user = create_user(&store, "counted").await;
    let (session, hash) = open(&store, Some(user.id), 0, NEVER).await;
    let owner = Owner::Session(session.id);
    let lifetimes = SessionPolicy {
        idle_timeout: Duration::from_secs(1000),
        guest_idle_timeout: Duration::from_secs(1000),
        max_lifetime: Duration::from_secs(NEVER),
    };
    let mut now = 0;

    // The token look-up with its user: plain, renewing, and not yet due.
    let plain_lookup = exchanges_of(&counter, || store.session_by_token(&hash, at(1), None)).await;
    let renewing = exchanges_of(&counter, || {
        now += 50;
        let renew = RenewOnUse {
            renewed_before: at(now),
            lifetimes,
        };
        let store = Arc::clone(&store);
        async move {
            let found = store
                .session_by_token(&hash, at(now), Some(&renew))
                .await
                .expect("read")
                .expect("live");
            assert_eq!(found.session.last_renewed_at, at(now), "renewed");
        }
    })
    .await;
    let not_due = exchanges_of(&counter, || {
        let renew = RenewOnUse {
            renewed_before: at(0),
            lifetimes,
        };
        let store = Arc::clone(&store);
        async move {
            let found = store
                .session_by_token(&hash, at(now), Some(&renew))
                .await
                .expect("read")
                .expect("live");
            assert!(found.user.is_some());
        }
    })
    .await;

    // Attribute writes: one item, a hundred, and one refused by the count limit.
    let set = |count: usize, max_per_owner: usize| {
        let store = Arc::clone(&store);
        async move {
            let items = (0..count)
                .map(|index| plain(&format!("a{index}"), "\"value\"", None))
                .collect();
            store
                .set_attributes(write(
                    at(200),
                    SetAttributes {
                        owner,
                        items,
                        max_per_owner,
                        max_bytes_per_owner: usize::MAX,
                    },
                ))
                .await
        }
    };
    let set_one = exchanges_of(&counter, || set(1, 1000)).await;
    let set_hundred = exchanges_of(&counter, || set(100, 1000)).await;
    let refused = exchanges_of(&counter, || async {
        assert!(matches!(
            set(101, 100).await,
            Err(StoreError::TooManyAttributes { .. })
        ));
    })
    .await;

    // Reads, an expiry and a delete.
    let names = vec!["a1".to_owned()];
    let get_one = exchanges_of(&counter, || {
        store.get_attributes(owner, Some(&names), at(201))
    })
    .await;
    let get_all = exchanges_of(&counter, || store.get_attributes(owner, None, at(201))).await;
    let list_names = exchanges_of(&counter, || store.attribute_names(owner, None, at(201))).await;
    let set_expiry = exchanges_of(&counter, || {
        store.set_attribute_expiry(write(
            at(202),
            SetAttributeExpiry {
                owner,
                name: "a2".into(),
                expires_at: Some(at(NEVER)),
            },
        ))
    })
    .await;
    let delete = exchanges_of(&counter, || {
        store.delete_attributes(write(
            at(203),
            DeleteAttributes {
                owner,
                names: names.clone(),
            },
        ))
    })
    .await;

    assert_eq!(
        [
            ("session_by_token", plain_lookup),
            ("session_by_token renewing", renewing),
            ("session_by_token not due", not_due),
            ("set_attributes of 1", set_one),
            ("set_attributes of 100", set_hundred),
            ("set_attributes refused", refused),
            ("get_attributes of 1", get_one),
            ("get_attributes of all", get_all),
            ("attribute_names", list_names),
            ("set_attribute_expiry", set_expiry),
            ("delete_attributes", delete),
        ],
        [
            ("session_by_token", 1),
            ("session_by_token renewing", 1),
            ("session_by_token not due", 1),
            ("set_attributes of 1", 1),
            ("set_attributes of 100", 1),
            ("set_attributes refused", 1),
            ("get_attributes of 1", 1),
            ("get_attributes of all", 1),
            ("attribute_names", 1),
            ("set_attribute_expiry", 1),
            ("delete_attributes", 1),
        ]
    );
}
