//! TLS to PostgreSQL: each `sslmode` with libpq's meaning, against a cluster with `ssl = on`
//! and a certificate for `localhost` only (see `pg.rs`), and against the plain cluster.
//! Whether a connection is encrypted is read from the server's `pg_stat_ssl`.

use std::time::Duration;

use ssod::store::{
    StoreError, StoreHealth,
    postgres::{PgSettings, PostgresStore},
};
use tokio_postgres::NoTls;

use crate::pg::{TlsDatabase, fresh_tls_database};

fn settings() -> PgSettings {
    PgSettings {
        create_timeout: Duration::from_secs(5),
        ..PgSettings::default()
    }
}

/// Connects a store with `options`, and answers whether its connection is encrypted; the
/// store's error if it could not connect.
async fn connect(database: &TlsDatabase, host: &str, options: &str) -> Result<bool, StoreError> {
    let probe = format!("ssod_tls_{}", uuid::Uuid::new_v4().simple());
    let url = database.url(host, &format!("{options}&application_name={probe}"));
    let store = PostgresStore::connect(&url, settings())?;
    store.ping().await?;
    let admin = database.url("127.0.0.1", "sslmode=disable");
    let (client, connection) = tokio_postgres::connect(&admin, NoTls)
        .await
        .expect("admin connects");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&probe],
        )
        .await
        .expect("the store's connection is listed");
    Ok(row.get(0))
}

fn assert_refused(result: Result<bool, StoreError>, what: &str) {
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected the connection refused, got {other:?}"),
    }
}

#[tokio::test]
async fn disable_connects_in_plain_text_to_a_tls_server() {
    let database = fresh_tls_database().await;
    let encrypted = connect(&database, "localhost", "sslmode=disable").await;
    assert!(!encrypted.expect("connects"));
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let database = fresh_tls_database().await;
    // 127.0.0.1 is not in the certificate, and no root is given: require does not care.
    let encrypted = connect(&database, "127.0.0.1", "sslmode=require").await;
    assert!(encrypted.expect("connects"));
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let url = crate::pg::fresh_database_url().await;
    let store =
        PostgresStore::connect(&format!("{url}?sslmode=require"), settings()).expect("pool");
    let error = store
        .ping()
        .await
        .expect_err("the plain server offers no TLS");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn prefer_uses_tls_where_offered_and_plain_text_elsewhere() {
    let database = fresh_tls_database().await;
    let encrypted = connect(&database, "127.0.0.1", "sslmode=prefer").await;
    assert!(encrypted.expect("connects"));
    let url = crate::pg::fresh_database_url().await;
    let store = PostgresStore::connect(&format!("{url}?sslmode=prefer"), settings()).expect("pool");
    store.ping().await.expect("falls back to plain text");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_name() {
    let database = fresh_tls_database().await;
    let right = format!(
        "sslmode=verify-ca&sslrootcert={}",
        database.ca_file.display()
    );
    // The name is not checked: 127.0.0.1 is not in the certificate.
    let encrypted = connect(&database, "127.0.0.1", &right).await;
    assert!(encrypted.expect("the right CA is trusted"));
    let wrong = format!(
        "sslmode=verify-ca&sslrootcert={}",
        database.wrong_ca_file.display()
    );
    assert_refused(connect(&database, "127.0.0.1", &wrong).await, "wrong CA");
}

#[tokio::test]
async fn require_with_a_root_certificate_checks_the_chain_like_libpq() {
    let database = fresh_tls_database().await;
    let right = format!("sslmode=require&sslrootcert={}", database.ca_file.display());
    assert!(
        connect(&database, "127.0.0.1", &right)
            .await
            .expect("right CA")
    );
    let wrong = format!(
        "sslmode=require&sslrootcert={}",
        database.wrong_ca_file.display()
    );
    assert_refused(connect(&database, "127.0.0.1", &wrong).await, "wrong CA");
}

#[tokio::test]
async fn verify_full_also_checks_the_host_name() {
    let database = fresh_tls_database().await;
    let options = format!(
        "sslmode=verify-full&sslrootcert={}",
        database.ca_file.display()
    );
    let encrypted = connect(&database, "localhost", &options).await;
    assert!(encrypted.expect("localhost is the certificate's name"));
    assert_refused(
        connect(&database, "127.0.0.1", &options).await,
        "a name not in the certificate",
    );
    let wrong = format!(
        "sslmode=verify-full&sslrootcert={}",
        database.wrong_ca_file.display()
    );
    assert_refused(connect(&database, "localhost", &wrong).await, "wrong CA");
}

#[tokio::test]
async fn a_key_value_connection_string_takes_the_same_parameters() {
    let database = fresh_tls_database().await;
    let url = format!(
        "host=localhost port={} user=postgres dbname={} sslmode=verify-full sslrootcert='{}'",
        database.port,
        database.name,
        database.ca_file.display()
    );
    let store = PostgresStore::connect(&url, settings()).expect("pool");
    store.ping().await.expect("verified connection");
}
