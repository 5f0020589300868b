//! The store conformance suite: every test is written once against `Arc<dyn Store>` and runs
//! on both stores (`name::memory`, `name::postgres`), so the PostgreSQL store is held to the
//! in-memory store's semantics. Time is explicit: each test passes its own `now`.
//!
//! One file per capability, as the stores are split (`users.rs`, `sessions.rs`,
//! `attributes.rs`, `throttle.rs`, `credentials.rs`); this one holds the runner, the fixtures and health.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ssod::{
    crypto,
    domain::{
        ApprovalStatus, NewAttribute, NewSession, OpenSession, Owner, Profile, PurgeCounts,
        PurgeExpired, Session, SessionId, SetAttributes, StoredAttribute, StoredValue, TokenHash,
        User, UserId, UserRecord, Username, Write,
    },
    store::{
        Store,
        memory::MemoryStore,
        postgres::{PgSettings, PostgresStore},
    },
};

/// Runs each suite function on both stores: `name::memory` and `name::postgres`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(crate::store_conformance::memory_store()).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(crate::store_conformance::postgres_store().await).await;
            }
        }
    )*};
}

conformance!(ping_answers);

mod accounts;
mod attributes;
mod credentials;
mod events;
mod limits;
mod model;
mod postgres_only;
mod round_trips;
mod session_limits;
mod sessions;
mod throttle;
mod users;

pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

pub async fn postgres_store() -> Arc<dyn Store> {
    migrated_postgres_store().await
}

/// A `PostgresStore` on a fresh, migrated database.
pub async fn migrated_postgres_store() -> Arc<PostgresStore> {
    let url = crate::pg::fresh_database_url().await;
    let store = PostgresStore::connect(&url, PgSettings::default()).expect("pool builds");
    store.migrate().await.expect("migrations apply");
    Arc::new(store)
}

// Fixtures.

/// `secs` after a fixed instant (1970-01-12, far from any real clock).
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

const NEVER: u64 = 1_000_000_000;

/// A store write at `now`.
pub fn write<C>(now: SystemTime, command: C) -> Write<C> {
    Write::new(now, command)
}

pub fn user_record(username: &str) -> UserRecord {
    UserRecord {
        user: User {
            id: UserId::generate(),
            username: username.into(),
            profile: Profile {
                email: format!("{username}@example.test"),
                display_name: format!("The {username}"),
                first_name: "First".into(),
                middle_name: String::new(),
                last_name: "Last".into(),
            },
            is_super_user: false,
            is_locked: false,
            approval_status: ApprovalStatus::Approved,
            password_must_change: false,
            password_expiry: None,
            created_at: at(0),
            last_login_at: None,
            is_confirmed: true,
            totp_enabled: false,
        },
        password_hash: hash_of(username),
    }
}

/// The (fake) password hash `user_record` gives a user.
pub fn hash_of(username: &str) -> String {
    format!("$argon2id$v=19$fake${username}")
}

/// A username as the service hands it to a store: parsed, so it carries its key.
pub fn name(text: &str) -> Username {
    Username::parse(text, 191).expect("a valid username")
}

pub async fn create_user(store: &Arc<dyn Store>, username: &str) -> User {
    store
        .create_user(write(at(0), user_record(username)))
        .await
        .expect("user created")
}

/// A session created at `created` that expires at `expires`, and its UST.
pub fn new_session(user: Option<UserId>, created: u64, expires: u64) -> (NewSession, String) {
    let ust = crypto::generate_ust();
    let session = Session {
        id: SessionId::generate(),
        user_id: user,
        current_app: "app".into(),
        remote_addr: "192.0.2.1".into(),
        user_agent: "agent/1".into(),
        created_at: at(created),
        expires_at: at(expires),
        last_renewed_at: at(created),
    };
    (
        NewSession {
            session,
            token_hash: crypto::hash_ust(&ust),
        },
        ust,
    )
}

pub fn plain_open(new: NewSession) -> OpenSession {
    OpenSession {
        new,
        attributes: Vec::new(),
        replaces: None,
        login: None,
        max_guest_sessions: usize::MAX,
        session_limit: None,
    }
}

/// Opens a session at `created` (also the `now` of the call); returns it and its token hash.
pub async fn open(
    store: &Arc<dyn Store>,
    user: Option<UserId>,
    created: u64,
    expires: u64,
) -> (Session, TokenHash) {
    let (new, _) = new_session(user, created, expires);
    let hash = new.token_hash;
    let session = store
        .open_session(write(at(created), plain_open(new)))
        .await
        .expect("session opens");
    (session, hash)
}

pub fn plain(name: &str, json: &str, expires: Option<u64>) -> NewAttribute {
    NewAttribute {
        name: name.into(),
        value: StoredValue::Plain(json.into()),
        expires_at: expires.map(at),
    }
}

fn sealed(name: &str, bytes: &[u8]) -> NewAttribute {
    NewAttribute {
        name: name.into(),
        value: StoredValue::Sealed {
            key_id: "k1".into(),
            ciphertext: bytes.to_vec(),
        },
        expires_at: None,
    }
}

async fn set(
    store: &Arc<dyn Store>,
    owner: Owner,
    items: Vec<NewAttribute>,
    now: u64,
) -> Vec<StoredAttribute> {
    store
        .set_attributes(write(
            at(now),
            SetAttributes {
                owner,
                items,
                max_per_owner: 1000,
                max_bytes_per_owner: usize::MAX,
            },
        ))
        .await
        .expect("attributes set")
}

async fn names(store: &Arc<dyn Store>, owner: Owner, now: u64) -> Vec<String> {
    store
        .attribute_names(owner, None, at(now))
        .await
        .expect("names read")
}

/// Everything the store still holds, swept at the end of time: what a test left behind.
async fn leftovers(store: &Arc<dyn Store>) -> PurgeCounts {
    store
        .purge_expired(write(at(NEVER * 10), purge(1000)))
        .await
        .expect("purge")
}

/// A retention longer than any clock reaches back: the sweep deletes no event.
pub const KEEP_EVENTS: Duration = Duration::MAX;

/// A sweep of at most `batch` rows per statement, with the throttle suite's limits, keeping
/// every event.
pub fn purge(batch: usize) -> PurgeExpired {
    PurgeExpired {
        batch,
        throttle: throttle::limits(),
        event_retention: KEEP_EVENTS,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

// Users.

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}
