//! What only the PostgreSQL store has: concurrent writers from many connections, the stored
//! form of tokens, migrations, the statements against the schema, reconnecting, and errors of
//! an unreachable or busy database.
//! Rows are checked with direct SQL on the same database.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use ssod::{
    domain::{
        ClaimLogin, DeleteAttributes, DeleteSessions, LoginClaim, Owner, SessionSelector,
        SetAttributes, StoredValue, ThrottleKind,
    },
    store::{
        AttributeStore, SessionStore, Store, StoreError, StoreHealth, UserStore,
        postgres::{PgSettings, PostgresStore, sql::STATEMENTS},
    },
};
use tokio_postgres::{Client, NoTls, types::Type};

use super::{
    NEVER, at, create_user, new_session, open, plain, plain_open, purge, user_record, write,
};

/// A migrated store on a fresh database, and the database's URL.
async fn database() -> (Arc<PostgresStore>, String) {
    let url = crate::pg::fresh_database_url().await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    store.migrate().await.expect("migrations apply");
    (Arc::new(store), url)
}

/// A plain connection for looking at the tables directly.
async fn sql(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_name_leave_one_row() {
    let (store, url) = database().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let (session, _) = open(&dyn_store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    warm_up(&store, &dyn_store, 16).await;
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let writers: Vec<_> = (0..50)
        .map(|index| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                store
                    .set_attributes(write(
                        at(1),
                        SetAttributes {
                            owner,
                            items: vec![plain("same", &index.to_string(), None)],
                            max_per_owner: 1000,
                            max_bytes_per_owner: usize::MAX,
                        },
                    ))
                    .await
            })
        })
        .collect();
    for writer in writers {
        let written = writer
            .await
            .expect("joined")
            .expect("every upsert succeeds");
        assert_eq!(written.len(), 1);
    }
    let row = sql(&url)
        .await
        .query_one(
            "SELECT count(*), min(convert_from(value, 'UTF8')) FROM session_attributes \
             WHERE session_id = $1",
            &[&session.id.0],
        )
        .await
        .expect("query");
    assert_eq!(
        row.get::<_, i64>(0),
        1,
        "one row, however many writers raced"
    );
    let value: String = row.get(1);
    assert!(
        value.parse::<u32>().is_ok_and(|value| value < 50),
        "{value}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_exceed_the_limit() {
    const LIMIT: usize = 10;
    const WRITERS: usize = 16;
    let (store, url) = database().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let (session, _) = open(&dyn_store, None, 0, NEVER).await;
    let user = create_user(&dyn_store, "crowded").await;
    warm_up(&store, &dyn_store, WRITERS).await;
    for (owner, table, id) in [
        (
            Owner::Session(session.id),
            "session_attributes",
            "session_id",
        ),
        (Owner::User(user.id), "user_attributes", "user_id"),
    ] {
        // Eight already there; writers of two new names each race for the last two places,
        // which only one of them can take.
        let existing = (0..8)
            .map(|index| plain(&format!("old{index}"), "0", None))
            .collect();
        store
            .set_attributes(write(
                at(0),
                SetAttributes {
                    owner,
                    items: existing,
                    max_per_owner: LIMIT,
                    max_bytes_per_owner: usize::MAX,
                },
            ))
            .await
            .expect("seeded");
        let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let writers: Vec<_> = (0..WRITERS)
            .map(|index| {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                let items = vec![
                    plain(&format!("new{index}a"), "1", None),
                    plain(&format!("new{index}b"), "1", None),
                ];
                tokio::spawn(async move {
                    start.wait().await;
                    store
                        .set_attributes(write(
                            at(1),
                            SetAttributes {
                                owner,
                                items,
                                max_per_owner: LIMIT,
                                max_bytes_per_owner: usize::MAX,
                            },
                        ))
                        .await
                })
            })
            .collect();
        let mut succeeded = 0;
        for writer in writers {
            match writer.await.expect("joined") {
                Ok(written) => {
                    assert_eq!(written.len(), 2);
                    succeeded += 1;
                }
                Err(StoreError::TooManyAttributes {
                    count: 12,
                    limit: LIMIT,
                }) => {}
                Err(error) => panic!("unexpected: {error:?}"),
            }
        }
        assert_eq!(succeeded, 1, "{table}");
        let query = format!("SELECT count(*) FROM {table} WHERE {id} = $1");
        let owner_id = match owner {
            Owner::Session(id) => id.0,
            Owner::User(id) => id.0,
        };
        let count: i64 = sql(&url)
            .await
            .query_one(&query, &[&owner_id])
            .await
            .expect("query")
            .get(0);
        assert_eq!(count, LIMIT as i64, "{table}: never over the limit");
    }
}

/// Opens `connections` pooled connections by running that many overlapping writes, so that
/// racing writers afterwards start together instead of queueing for new connections.
async fn warm_up(store: &Arc<PostgresStore>, dyn_store: &Arc<dyn Store>, connections: usize) {
    let mut owners = Vec::new();
    for _ in 0..connections {
        owners.push(open(dyn_store, None, 0, NEVER).await.0.id);
    }
    let start = Arc::new(tokio::sync::Barrier::new(connections));
    let writers: Vec<_> = owners
        .into_iter()
        .map(|id| {
            let store = Arc::clone(store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let items = (0..50)
                    .map(|index| plain(&format!("w{index}"), "0", None))
                    .collect();
                store
                    .set_attributes(write(
                        at(0),
                        SetAttributes {
                            owner: Owner::Session(id),
                            items,
                            max_per_owner: 1000,
                            max_bytes_per_owner: usize::MAX,
                        },
                    ))
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("joined").expect("warm-up write");
    }
}

#[tokio::test]
async fn tokens_are_stored_only_as_their_sha256() {
    let (store, url) = database().await;
    let (new, ust) = new_session(None, 0, NEVER);
    let id = new.session.id;
    store
        .open_session(write(
            at(0),
            ssod::domain::OpenSession {
                attributes: vec![plain("a", "1", None)],
                ..plain_open(new)
            },
        ))
        .await
        .expect("opened");
    let client = sql(&url).await;
    let row = client
        .query_one(
            "SELECT token_hash, row_to_json(s)::text FROM sessions s WHERE id = $1",
            &[&id.0],
        )
        .await
        .expect("query");
    let stored: Vec<u8> = row.get(0);
    assert_eq!(stored, Sha256::digest(ust.as_bytes()).to_vec());
    let as_text: String = row.get(1);
    assert!(
        !as_text.contains(&ust),
        "the token itself is nowhere in the row"
    );
    // Nor anywhere else in the database's tables.
    for table in ["sessions", "session_attributes", "users", "user_attributes"] {
        let found: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} t WHERE strpos(row_to_json(t)::text, $1) > 0"
                ),
                &[&ust],
            )
            .await
            .expect("query")
            .get(0);
        assert_eq!(found, 0, "{table}");
    }
}

/// Every statement of the store prepares against the migrated schema (so it parses and names
/// real tables and columns), and each one whose rows a decoder reads by position returns
/// exactly that decoder's columns, in order, with the types it reads them as.
#[tokio::test]
async fn every_statement_prepares_and_returns_its_decoders_columns() {
    let (_store, url) = database().await;
    let client = sql(&url).await;
    let mut checked = 0;
    for statement in STATEMENTS {
        let prepared = client
            .prepare(statement.sql)
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", statement.name));
        if statement.returns.is_empty() {
            continue;
        }
        let expected: Vec<(&str, &Type)> = statement
            .returns
            .iter()
            .flat_map(|columns| {
                // `u.id` comes back as `id`.
                let names = columns.list.split(',').map(|column| {
                    let column = column.trim();
                    column.rsplit('.').next().unwrap_or(column)
                });
                assert_eq!(
                    names.clone().count(),
                    columns.types.len(),
                    "{}: a column list and its types differ in length",
                    statement.name
                );
                names.zip(columns.types)
            })
            .collect();
        let returned: Vec<(&str, &Type)> = prepared
            .columns()
            .iter()
            .map(|column| (column.name(), column.type_()))
            .collect();
        assert_eq!(returned, expected, "{}", statement.name);
        checked += 1;
    }
    assert!(checked > 0, "no statement feeds a decoder");
}

#[tokio::test]
async fn migrations_are_idempotent_and_checked() {
    let url = crate::pg::fresh_database_url().await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    let error = store
        .check_schema()
        .await
        .expect_err("an empty database is not ready");
    assert!(error.to_string().contains("run `ssod migrate`"), "{error}");

    let versions = PostgresStore::migration_versions();
    assert_eq!(store.migrate().await.expect("migrated"), versions);
    assert_eq!(
        store.migrate().await.expect("migrated again"),
        Vec::<u32>::new()
    );
    store.check_schema().await.expect("current");

    let client = sql(&url).await;
    let applied: Vec<u32> = client
        .query(
            "SELECT version FROM ssod_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|row| row.get::<_, i32>(0).unsigned_abs())
        .collect();
    assert_eq!(applied, versions);

    client
        .execute(
            "INSERT INTO ssod_schema_migrations (version, name, applied_at) \
             VALUES (999, 'from the future', now())",
            &[],
        )
        .await
        .expect("insert");
    let error = store.check_schema().await.expect_err("a newer schema");
    assert!(error.to_string().contains("999"), "{error}");
    assert!(error.to_string().contains("upgrade ssod"), "{error}");

    client
        .execute("DELETE FROM ssod_schema_migrations", &[])
        .await
        .expect("delete");
    let error = store.check_schema().await.expect_err("a missing migration");
    assert!(
        error.to_string().contains(&format!("{versions:?}")),
        "{error}"
    );
    assert!(error.to_string().contains("run `ssod migrate`"), "{error}");
}

/// A database as ssod left it before usernames had a key: migration 1 only, with `users` rows.
async fn legacy_database(usernames: &[&str]) -> String {
    let url = crate::pg::fresh_database_url().await;
    let client = sql(&url).await;
    client
        .batch_execute(concat!(
            include_str!("../../../src/store/postgres/migrations/0001_initial.sql"),
            "; CREATE TABLE ssod_schema_migrations (version integer PRIMARY KEY, \
             name text NOT NULL, applied_at timestamptz NOT NULL); \
             INSERT INTO ssod_schema_migrations VALUES (1, 'initial', now());"
        ))
        .await
        .expect("migration 1 by hand");
    for username in usernames {
        client
            .execute(
                "INSERT INTO users (id, username, approval_status, password_hash, created_at) \
                 VALUES (gen_random_uuid(), $1, 'approved', 'hash', now())",
                &[username],
            )
            .await
            .expect("legacy user");
    }
    url
}

#[tokio::test]
async fn the_username_key_migration_folds_existing_names_like_ssod() {
    let url = legacy_database(&["Straße", "Élodie", "bob"]).await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    assert!(store.migrate().await.expect("migrated").contains(&4));
    let keys: Vec<(String, String)> = sql(&url)
        .await
        .query(
            "SELECT username, username_key FROM users ORDER BY username_key",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        keys,
        [
            ("bob".to_owned(), "bob".to_owned()),
            ("Straße".to_owned(), "strasse".to_owned()),
            ("Élodie".to_owned(), "élodie".to_owned()),
        ],
        "lower() would have left straße"
    );
    let found = store
        .user_by_username(&super::name("STRASSE"))
        .await
        .expect("read")
        .expect("an existing user stays reachable");
    assert_eq!(found.user.username, "Straße");
}

#[tokio::test]
async fn the_username_key_migration_refuses_names_that_now_collide() {
    let url = legacy_database(&["Straße", "STRASSE"]).await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    let error = store.migrate().await.expect_err("two users, one key");
    assert!(error.to_string().contains("rename one"), "{error}");
    let error = store.check_schema().await.expect_err("rolled back");
    // Migration 4 and every later one are still missing.
    assert!(error.to_string().contains("migrations [4,"), "{error}");
}

/// Counters from before migration 5 have no last failure: they take the migration's time
/// (or a later end of lockout), so none is forgotten sooner than it would have been.
#[tokio::test]
async fn the_reset_migration_keeps_existing_counters() {
    let url = crate::pg::fresh_database_url().await;
    sql(&url)
        .await
        .batch_execute(concat!(
            include_str!("../../../src/store/postgres/migrations/0001_initial.sql"),
            ";",
            include_str!("../../../src/store/postgres/migrations/0002_login_failures.sql"),
            ";",
            include_str!("../../../src/store/postgres/migrations/0003_guest_limits.sql"),
            ";",
            include_str!("../../../src/store/postgres/migrations/0004_username_key.sql"),
            "; CREATE TABLE ssod_schema_migrations (version integer PRIMARY KEY, \
             name text NOT NULL, applied_at timestamptz NOT NULL); \
             INSERT INTO ssod_schema_migrations VALUES (1, 'initial', now()), \
               (2, 'login_failures', now()), (3, 'guest_limits', now()), \
               (4, 'username_key', now()); \
             INSERT INTO login_failures_by_user VALUES ('counting', 2, 1, NULL), \
               ('locked', 0, 1, 'infinity');"
        ))
        .await
        .expect("migrations 1 to 4 by hand");
    let store: Arc<dyn Store> = {
        let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
        let from_5: Vec<u32> = PostgresStore::migration_versions()
            .into_iter()
            .filter(|version| *version >= 5)
            .collect();
        assert_eq!(store.migrate().await.expect("migrated"), from_5);
        Arc::new(store)
    };
    // The suite's times (before 2002) are long before the migration ran: nothing is forgotten.
    assert_eq!(
        store
            .purge_expired(write(at(NEVER), purge(10)))
            .await
            .expect("swept")
            .login_failures,
        0
    );
    let claim = |user: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .claim_login(write(
                    at(0),
                    ClaimLogin {
                        user_key: user.into(),
                        address: None,
                        limits: super::throttle::limits(),
                    },
                ))
                .await
                .expect("claim")
        }
    };
    assert!(matches!(claim("locked").await, LoginClaim::Refused { .. }));
    // Two failures and one lockout kept: the third failure starts a second lockout, 120 s.
    assert!(matches!(
        claim("counting").await,
        LoginClaim::Admitted { .. }
    ));
    assert_eq!(
        claim("counting").await,
        LoginClaim::Refused {
            kind: ThrottleKind::User,
            until: at(120)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_each_once() {
    let url = crate::pg::fresh_database_url().await;
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    let mut applied = Vec::new();
    for replica in replicas {
        applied.extend(
            replica
                .await
                .expect("joined")
                .expect("every replica succeeds"),
        );
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        PostgresStore::migration_versions(),
        "exactly one replica applied each migration"
    );
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    store.check_schema().await.expect("current");
}

#[tokio::test]
async fn data_survives_reconnecting() {
    let (store, url) = database().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let user = create_user(&dyn_store, "durable").await;
    let (session, hash) = open(&dyn_store, Some(user.id), 0, NEVER).await;
    store
        .set_attributes(write(
            at(0),
            SetAttributes {
                owner: Owner::User(user.id),
                items: vec![plain("kept", "\"yes\"", None)],
                max_per_owner: 10,
                max_bytes_per_owner: usize::MAX,
            },
        ))
        .await
        .expect("set");
    store.close();
    drop(dyn_store);
    drop(store);

    let again = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    again.check_schema().await.expect("still migrated");
    let record = again
        .user_by_username(&super::name("DURABLE"))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(record.user, user);
    let found = again
        .session_by_token(&hash, at(1), None)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.session, session);
    let attributes = again
        .get_attributes(Owner::User(user.id), None, at(1))
        .await
        .expect("read");
    assert_eq!(attributes.len(), 1);
    assert_eq!(attributes[0].value, StoredValue::Plain("\"yes\"".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_name_admit_one() {
    let (store, _) = database().await;
    let attempts: Vec<_> = ["Zed", "zed", "ZED", "zEd", "Zed", "zeD"]
        .into_iter()
        .map(|spelling| {
            let store = Arc::clone(&store);
            tokio::spawn(
                async move { store.create_user(write(at(0), user_record(spelling))).await },
            )
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.expect("joined") {
            Ok(_) => created += 1,
            Err(StoreError::UsernameTaken) => {}
            Err(error) => panic!("unexpected: {error:?}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweeps_share_the_work() {
    let (store, _) = database().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    for _ in 0..40 {
        let (session, _) = open(&dyn_store, None, 0, 10).await;
        store
            .set_attributes(write(
                at(0),
                SetAttributes {
                    owner: Owner::Session(session.id),
                    items: vec![plain("a", "1", None), plain("b", "1", Some(5))],
                    max_per_owner: 10,
                    max_bytes_per_owner: usize::MAX,
                },
            ))
            .await
            .expect("set");
    }
    let sweepers: Vec<_> = (0..3)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.purge_expired(write(at(20), purge(3))).await })
        })
        .collect();
    let (mut sessions, mut attributes) = (0, 0);
    for sweeper in sweepers {
        let counts = sweeper.await.expect("joined").expect("swept");
        sessions += counts.sessions;
        attributes += counts.attributes;
    }
    assert_eq!(
        (sessions, attributes),
        (40, 80),
        "every row counted exactly once"
    );
    assert_eq!(
        store
            .delete_sessions(write(
                at(0),
                DeleteSessions {
                    selector: SessionSelector::All,
                    batch: 1000,
                }
            ))
            .await
            .expect("deleted"),
        0
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let settings = PgSettings {
        create_timeout: Duration::from_secs(2),
        ..PgSettings::default()
    };
    let store = PostgresStore::connect(
        &format!("postgres://ssod:secret-password@127.0.0.1:{port}/ssod"),
        settings,
    )
    .expect("the pool builds without connecting");
    let error = store.ping().await.expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("secret-password"), "{error}");
    let error = store.migrate().await.expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_times_out_as_unavailable() {
    let url = crate::pg::fresh_database_url().await;
    let settings = PgSettings {
        pool_size: 1,
        wait_timeout: Duration::from_millis(200),
        ..PgSettings::default()
    };
    let store = Arc::new(PostgresStore::connect(&url, settings).expect("pool builds"));
    store.migrate().await.expect("migrated");
    let dyn_store: Arc<dyn Store> = store.clone();
    let (session, _) = open(&dyn_store, None, 0, NEVER).await;

    // Another client holds the session row, so the store's only connection waits on it.
    let mut blocker = sql(&url).await;
    let transaction = blocker.transaction().await.expect("begin");
    transaction
        .execute(
            "SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE",
            &[&session.id.0],
        )
        .await
        .expect("lock");
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .set_attributes(write(
                    at(1),
                    SetAttributes {
                        owner: Owner::Session(session.id),
                        items: vec![plain("a", "1", None)],
                        max_per_owner: 10,
                        max_bytes_per_owner: usize::MAX,
                    },
                ))
                .await
        })
    };
    // Wait until the writer holds the only connection (bounded; no fixed sleep).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !dyn_store
        .pool_status()
        .is_some_and(|status| status.size == 1 && status.idle == 0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never took the connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = store.ping().await.expect_err("no free connection");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");

    transaction.commit().await.expect("release");
    let written = writer.await.expect("joined").expect("the writer proceeds");
    assert_eq!(written.len(), 1);
    store.ping().await.expect("the connection is free again");
}

#[tokio::test]
async fn a_multi_host_url_finds_the_writable_server() {
    let (store, url) = database().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let user = create_user(&dyn_store, "failover").await;
    // The same database behind a dead first host: each new connection tries the hosts in
    // order and keeps the first that accepts writes.
    let config: tokio_postgres::Config = url.parse().expect("url parses");
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut hosts = vec!["127.0.0.1".to_owned()];
    let mut ports = vec![dead_port.to_string()];
    for (host, port) in config.get_hosts().iter().zip(config.get_ports()) {
        match host {
            tokio_postgres::config::Host::Tcp(host) => hosts.push(host.clone()),
            tokio_postgres::config::Host::Unix(path) => hosts.push(path.display().to_string()),
        }
        ports.push(port.to_string());
    }
    let mut multi_host = format!(
        "host={} port={} dbname={} target_session_attrs=read-write",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().expect("a database"),
    );
    if let Some(user) = config.get_user() {
        multi_host.push_str(&format!(" user={user}"));
    }
    if let Some(password) = config.get_password() {
        let password = String::from_utf8_lossy(password)
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        multi_host.push_str(&format!(" password='{password}'"));
    }
    let failover = PostgresStore::connect(&multi_host, PgSettings::default()).expect("pool builds");
    failover
        .check_schema()
        .await
        .expect("reaches the live host");
    let found = failover
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.user, user);
    failover
        .set_attributes(write(
            at(0),
            SetAttributes {
                owner: Owner::User(user.id),
                items: vec![plain("w", "1", None)],
                max_per_owner: 10,
                max_bytes_per_owner: usize::MAX,
            },
        ))
        .await
        .expect("writes go through");
}

/// Kills the store's connection while its statement waits for a row lock that `admin` holds
/// (the call is in flight, as when a database restarts under it), then lets the lock go.
async fn kill_the_waiting_connection(admin: Client) {
    let pid = loop {
        let waiting = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity");
        if let Some(row) = waiting {
            break row.get::<_, i32>(0);
        }
        tokio::task::yield_now().await;
    };
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate");
    admin.batch_execute("ROLLBACK").await.expect("release");
}

/// An owner with one attribute, `name`, and a connection holding both rows locked.
async fn locked_owner(store: &Arc<PostgresStore>, url: &str) -> (Owner, Client) {
    let dyn_store: Arc<dyn Store> = store.clone();
    let (session, _) = open(&dyn_store, None, 0, NEVER).await;
    let owner = Owner::Session(session.id);
    store
        .set_attributes(write(
            at(1),
            SetAttributes {
                owner,
                items: vec![plain("name", "1", None)],
                max_per_owner: 1000,
                max_bytes_per_owner: usize::MAX,
            },
        ))
        .await
        .expect("set");
    let admin = sql(url).await;
    admin
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM sessions WHERE id = '{id}' FOR UPDATE; \
             SELECT 1 FROM session_attributes WHERE session_id = '{id}' FOR UPDATE;",
            id = session.id.0
        ))
        .await
        .expect("lock the owner");
    (owner, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeatable_call_is_retried_when_its_connection_dies() {
    let (store, url) = database().await;
    let (owner, admin) = locked_owner(&store, &url).await;
    // An upsert of given values: running it twice cannot apply it twice.
    let upsert = store.set_attributes(write(
        at(2),
        SetAttributes {
            owner,
            items: vec![plain("name", "2", None)],
            max_per_owner: 1000,
            max_bytes_per_owner: usize::MAX,
        },
    ));
    let (written, ()) = tokio::join!(upsert, kill_the_waiting_connection(admin));
    let written = written.expect("retried on a fresh connection");
    assert_eq!(written[0].value, StoredValue::Plain("2".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_could_apply_twice_is_not_retried() {
    let (store, url) = database().await;
    let (owner, admin) = locked_owner(&store, &url).await;
    // A delete that counts what it deleted: a second run would count nothing.
    let delete = store.delete_attributes(write(
        at(2),
        DeleteAttributes {
            owner,
            names: vec!["name".into()],
        },
    ));
    let (deleted, ()) = tokio::join!(delete, kill_the_waiting_connection(admin));
    let error = deleted.expect_err("the connection died under the call");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    // The dead connection went with the failure: the next call works.
    store.ping().await.expect("a fresh connection");
}
