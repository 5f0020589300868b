//! Three replicas on one PostgreSQL database under mixed concurrent load: logins, rotations of
//! guest sessions, writes to one owner from every replica near its limits, sweeps on every
//! replica at once, bulk revocation racing a login, and guest creation past the guest cap.
//!
//! Every call either succeeds or is refused at a configured limit: a deadlock, serialization
//! failure or lost connection would reach the caller as `UNAVAILABLE` or `INTERNAL` and fail
//! the test. At the end the database holds exactly what the callers were told, no limit was
//! exceeded, and every replica refuses what any replica revoked (once its notification
//! arrives: each replica has its own UST cache).
//!
//! The replicas have a manual clock each; they move together, once, before the load.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use ssod::{
    config::Config,
    proto::{self, AttributeScope, delete_user_sessions_request::Selector},
};
use tokio::task::JoinSet;
use tonic::{Code, Status};

use crate::harness::{Backend, TestServer, assert_error, authed, json_value, write};

const SESSION: i32 = AttributeScope::Session as i32;
const USER: i32 = AttributeScope::User as i32;
const REPLICAS: usize = 3;
const PASSWORD: &str = "user-password-1";
const GUEST_CAP: usize = 24;
const OWNER_ATTRIBUTES: usize = 16;
const OWNER_BYTES: usize = 1600;
/// Expired by the time the load starts: guests, and attributes per user on seven users.
const EXPIRED_GUESTS: usize = 5;
const EXPIRED_ATTRIBUTES_PER_USER: usize = 12;
const ROTATING_USERS: usize = 4;
const ROTATIONS_PER_USER: usize = 3;
const REVOKED_USERS: usize = 3;
const GUEST_ATTEMPTS_PER_REPLICA: usize = 15;
const OWNER_OPERATIONS_PER_REPLICA: usize = 30;
const SWEEPS_PER_REPLICA: usize = 3;

type Replicas = Arc<Vec<TestServer>>;

fn configure(config: &mut Config) {
    config.sessions.max_guest_sessions = GUEST_CAP;
    config.sessions.guest_idle_timeout = Duration::from_secs(1);
    config.sessions.persistent_on_login = vec!["cart".into()];
    // Small batches: concurrent sweeps and revocations interleave.
    config.sessions.sweep_batch = 10;
    config.limits.max_attributes_per_owner = OWNER_ATTRIBUTES;
    config.limits.max_bytes_per_owner = OWNER_BYTES;
}

/// The result of a call that may be refused at a configured limit (`LIMIT_EXCEEDED` with
/// `code`); any other failure fails the test.
fn unless_limited<T>(result: Result<T, Status>, code: Code) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(status) => {
            assert_error(&status, code, "LIMIT_EXCEEDED");
            None
        }
    }
}

/// A call's span, for reasoning about what must have happened before what.
#[derive(Clone, Copy)]
struct Span {
    started: Instant,
    finished: Instant,
}

/// A JSON string whose encoding is `bytes` bytes.
fn json_of(bytes: usize) -> serde_json::Value {
    serde_json::json!("x".repeat(bytes - 2))
}

/// Every replica refuses `ust`: at once where the revocation was made, and on the others once
/// its notification reaches their UST cache (milliseconds; the bound is for a hang).
async fn assert_refused_everywhere(replicas: &[TestServer], ust: &str, what: &str) {
    for (index, replica) in replicas.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match replica.current_user(ust).await {
                Err(status) => break status,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(_) => panic!("{what} still accepted by replica {index}"),
            }
        };
        assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    }
}

async fn assert_valid_everywhere(replicas: &[TestServer], ust: &str, what: &str) {
    for (index, replica) in replicas.iter().enumerate() {
        replica
            .current_user(ust)
            .await
            .unwrap_or_else(|status| panic!("{what} on replica {index}: {status:?}"));
    }
}

/// Creates guests on every replica at once, more than the cap allows; the spans of those
/// created.
async fn create_guests_past_the_cap(replicas: Replicas) -> (Vec<Span>, usize) {
    let mut tasks = JoinSet::new();
    for index in 0..REPLICAS {
        let replicas = Arc::clone(&replicas);
        tasks.spawn(async move {
            let mut created = Vec::new();
            let mut refused = 0;
            for _ in 0..GUEST_ATTEMPTS_PER_REPLICA {
                let started = Instant::now();
                match unless_limited(replicas[index].try_guest().await, Code::ResourceExhausted) {
                    Some(_) => created.push(Span {
                        started,
                        finished: Instant::now(),
                    }),
                    None => refused += 1,
                }
            }
            (created, refused)
        });
    }
    let mut created = Vec::new();
    let mut refused = 0;
    for (spans, refusals) in tasks.join_all().await {
        created.extend(spans);
        refused += refusals;
    }
    (created, refused)
}

/// Logs each guest in on another replica (a rotation) and checks on a third that its cart
/// moved and that no replica accepts the guest any more; the spans of the rotations.
async fn rotate(replicas: Replicas, users: Vec<(String, Vec<(String, String)>)>) -> Vec<Span> {
    let mut tasks = JoinSet::new();
    for (offset, (username, guests)) in users.into_iter().enumerate() {
        let replicas = Arc::clone(&replicas);
        tasks.spawn(async move {
            let mut spans = Vec::new();
            for (round, (guest, cart)) in guests.into_iter().enumerate() {
                let started = Instant::now();
                let login = replicas[(offset + round + 1) % REPLICAS]
                    .try_login(&username, PASSWORD, Some(&guest))
                    .await
                    .unwrap_or_else(|status| panic!("rotation of {username}: {status:?}"));
                spans.push(Span {
                    started,
                    finished: Instant::now(),
                });
                let moved = replicas[(offset + round + 2) % REPLICAS]
                    .get_attribute(&login.ust, SESSION, "cart")
                    .await
                    .expect("the cart moved")
                    .into_inner()
                    .attribute
                    .expect("attribute");
                assert_eq!(moved.value, Some(json_value(serde_json::json!(cart))));
                assert_refused_everywhere(&replicas, &guest, "a rotated guest").await;
                assert_valid_everywhere(&replicas, &login.ust, "a rotated-to session").await;
            }
            spans
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

/// Writes, replaces and deletes attributes of one user from a session on every replica, near
/// its count and byte limits; what each writer was told is there, and how many refusals.
async fn write_one_owner(
    replicas: Replicas,
    usts: Vec<String>,
) -> (HashMap<String, prost_types::Value>, usize) {
    let mut tasks = JoinSet::new();
    for (index, ust) in usts.into_iter().enumerate() {
        let replicas = Arc::clone(&replicas);
        tasks.spawn(async move {
            let replica = &replicas[index];
            // Names are this writer's own, so its own record of them is exact.
            let mut live: HashMap<String, prost_types::Value> = HashMap::new();
            let mut refused = 0;
            for step in 0..OWNER_OPERATIONS_PER_REPLICA {
                let name = format!("r{index}-{step}");
                let value = json_value(json_of(30 + step * 37 % 100));
                match step % 5 {
                    3 => {
                        let Some(victim) = live.keys().min().cloned() else {
                            continue;
                        };
                        let deleted = replica
                            .attributes()
                            .delete_attribute(authed(
                                &ust,
                                proto::DeleteAttributeRequest {
                                    scope: USER,
                                    name: victim.clone(),
                                    ..Default::default()
                                },
                            ))
                            .await
                            .expect("delete")
                            .into_inner()
                            .deleted;
                        assert!(deleted, "{victim} was there");
                        live.remove(&victim);
                    }
                    4 => {
                        let items = vec![
                            write(format!("{name}a"), json_of(40)),
                            write(format!("{name}b"), json_of(20)),
                        ];
                        let written = unless_limited(
                            replica.set_attributes(&ust, USER, items).await,
                            Code::InvalidArgument,
                        );
                        match written {
                            Some(response) => {
                                for attribute in response.into_inner().attributes {
                                    live.insert(attribute.name, attribute.value.expect("value"));
                                }
                            }
                            None => refused += 1,
                        }
                    }
                    _ => {
                        let written = unless_limited(
                            replica
                                .attributes()
                                .set_attribute(authed(
                                    &ust,
                                    proto::SetAttributeRequest {
                                        scope: USER,
                                        name: name.clone(),
                                        value: Some(value.clone()),
                                        ..Default::default()
                                    },
                                ))
                                .await,
                            Code::InvalidArgument,
                        );
                        match written {
                            Some(_) => {
                                live.insert(name, value);
                            }
                            None => refused += 1,
                        }
                    }
                }
            }
            (live, refused)
        });
    }
    let mut expected = HashMap::new();
    let mut refused = 0;
    for (live, refusals) in tasks.join_all().await {
        expected.extend(live);
        refused += refusals;
    }
    (expected, refused)
}

/// `PurgeExpired` on every replica at once, a few times; the spans and totals.
async fn sweep_everywhere(replicas: Replicas, admin: String) -> (Vec<Span>, i64, i64) {
    let mut tasks = JoinSet::new();
    for index in 0..REPLICAS {
        let replicas = Arc::clone(&replicas);
        let admin = admin.clone();
        tasks.spawn(async move {
            let mut results = Vec::new();
            for _ in 0..SWEEPS_PER_REPLICA {
                let started = Instant::now();
                let swept = replicas[index]
                    .sessions()
                    .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
                    .await
                    .expect("sweep")
                    .into_inner();
                let span = Span {
                    started,
                    finished: Instant::now(),
                };
                results.push((span, swept.sessions_deleted, swept.attributes_deleted));
            }
            results
        });
    }
    let mut spans = Vec::new();
    let (mut sessions, mut attributes) = (0, 0);
    for (span, sessions_deleted, attributes_deleted) in tasks.join_all().await.into_iter().flatten()
    {
        spans.push(span);
        sessions += sessions_deleted;
        attributes += attributes_deleted;
    }
    (spans, sessions, attributes)
}

/// For each user: a session on every replica, then `DeleteUserSessions` on one replica while
/// another logs the user in; every replica then refuses the sessions that came before, and
/// accepts one that comes after.
async fn revoke_while_logging_in(replicas: Replicas, admin: String, users: Vec<proto::User>) {
    let mut tasks = JoinSet::new();
    for (offset, user) in users.into_iter().enumerate() {
        let replicas = Arc::clone(&replicas);
        let admin = admin.clone();
        tasks.spawn(async move {
            let mut before = Vec::new();
            for replica in replicas.iter() {
                before.push(replica.login(&user.username, PASSWORD).await.ust);
            }
            let mut revoking = replicas[offset % REPLICAS].sessions();
            let revoke = revoking.delete_user_sessions(authed(
                &admin,
                proto::DeleteUserSessionsRequest {
                    selector: Some(Selector::UserId(user.user_id.clone())),
                },
            ));
            // Committed before or after the revocation: either is right, neither may fail.
            let racing = replicas[(offset + 1) % REPLICAS].login(&user.username, PASSWORD);
            let (revoked, _racing) = tokio::join!(revoke, racing);
            let revoked = revoked.expect("revocation").into_inner().deleted_count;
            assert!(revoked >= before.len() as i64, "{revoked} sessions revoked");
            for ust in &before {
                assert_refused_everywhere(&replicas, ust, "a revoked session").await;
            }
            let after = replicas[(offset + 2) % REPLICAS]
                .login(&user.username, PASSWORD)
                .await
                .ust;
            assert_valid_everywhere(&replicas, &after, "a session after the revocation").await;
        });
    }
    tasks.join_all().await;
}

/// Guest sessions in the database: counted rows, and the count the triggers keep.
async fn guests_in_the_database(url: &str) -> (i64, i64) {
    let client = crate::pg::connect(url).await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM sessions WHERE user_id IS NULL", &[])
        .await
        .expect("guest rows")
        .get(0);
    let kept: i64 = client
        .query_one("SELECT sessions FROM guest_sessions_count", &[])
        .await
        .expect("guest count")
        .get(0);
    (rows, kept)
}

/// The count and bytes of a user's attributes as the store measures them.
async fn owner_usage(url: &str, user_id: &str) -> (i64, i64) {
    let client = crate::pg::connect(url).await;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(octet_length(value)), 0)::int8 \
             FROM user_attributes WHERE user_id::text = $1",
            &[&user_id],
        )
        .await
        .expect("usage");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_under_mixed_load_keep_every_limit_and_promise() {
    let first = TestServer::start_with(Backend::Postgres, configure).await;
    let config = first.config.clone();
    let url = config.database.url.clone().expect("postgres url");
    let mut replicas = vec![first];
    for _ in 1..REPLICAS {
        let store = ssod::open_store(&config).await.expect("store opens");
        replicas.push(TestServer::start_on(config.clone(), store).await);
    }
    let replicas: Replicas = Arc::new(replicas);
    let admin = replicas[0].admin().await;

    let mut users = Vec::new();
    for index in 0..1 + ROTATING_USERS + REVOKED_USERS {
        let replica = &replicas[index % REPLICAS];
        users.push(
            replica
                .create_user(&admin, &format!("user{index}"), PASSWORD)
                .await,
        );
    }
    let shared = users[0].clone();
    let rotating = users[1..=ROTATING_USERS].to_vec();
    let revoked = users[1 + ROTATING_USERS..].to_vec();

    // What the sweeps will find: attributes and guests that expire before the load starts.
    for (index, user) in users[1..].iter().enumerate() {
        let items = (0..EXPIRED_ATTRIBUTES_PER_USER)
            .map(|item| write(format!("expiring-{item}"), serde_json::json!(item)))
            .collect();
        replicas[index % REPLICAS]
            .attributes()
            .set_attributes(authed(
                &admin,
                proto::SetAttributesRequest {
                    scope: USER,
                    owner_id: user.user_id.clone(),
                    attributes: items,
                    expiration: Some(prost_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            ))
            .await
            .expect("expiring attributes");
    }
    for index in 0..EXPIRED_GUESTS {
        replicas[index % REPLICAS].guest().await;
    }
    for replica in replicas.iter() {
        replica.advance(Duration::from_secs(2));
    }

    // Guests to rotate, each with a cart that moves on login.
    let mut rotations = Vec::new();
    for (offset, user) in rotating.iter().enumerate() {
        let mut guests = Vec::new();
        for round in 0..ROTATIONS_PER_USER {
            let replica = &replicas[(offset + round) % REPLICAS];
            let guest = replica.guest().await.ust;
            let cart = format!("cart-{offset}-{round}");
            replica
                .set_attribute(&guest, SESSION, "cart", serde_json::json!(cart))
                .await
                .expect("cart");
            guests.push((guest, cart));
        }
        rotations.push((user.username.clone(), guests));
    }
    let guests_before_load = EXPIRED_GUESTS + ROTATING_USERS * ROTATIONS_PER_USER;
    let mut shared_usts = Vec::new();
    for replica in replicas.iter() {
        shared_usts.push(replica.login(&shared.username, PASSWORD).await.ust);
    }

    let load_started = Instant::now();
    let (
        (created_guests, refused_guests),
        rotated,
        (expected_attributes, refused_writes),
        (sweeps, swept_sessions, swept_attributes),
        (),
    ) = tokio::join!(
        create_guests_past_the_cap(Arc::clone(&replicas)),
        rotate(Arc::clone(&replicas), rotations),
        write_one_owner(Arc::clone(&replicas), shared_usts.clone()),
        sweep_everywhere(Arc::clone(&replicas), admin.clone()),
        revoke_while_logging_in(Arc::clone(&replicas), admin.clone(), revoked),
    );
    let load_time = load_started.elapsed();

    // Sweeps: every expired row deleted exactly once, however the replicas interleaved.
    assert_eq!(swept_sessions, EXPIRED_GUESTS as i64);
    assert_eq!(
        swept_attributes,
        ((ROTATING_USERS + REVOKED_USERS) * EXPIRED_ATTRIBUTES_PER_USER) as i64
    );
    let (_, after_sessions, after_attributes) =
        sweep_everywhere(Arc::clone(&replicas), admin.clone()).await;
    assert_eq!((after_sessions, after_attributes), (0, 0), "nothing left");

    // The guest cap: when each guest was created, the guests certainly there (created before
    // its call began, less every ending that may have come first) were fewer than the cap.
    assert!(refused_guests > 0, "the guests reached the cap");
    for guest in &created_guests {
        let present = guests_before_load
            + created_guests
                .iter()
                .filter(|other| other.finished < guest.started)
                .count()
            + 1;
        let ended = rotated
            .iter()
            .filter(|rotation| rotation.started < guest.finished)
            .count()
            + if sweeps.iter().any(|sweep| sweep.started < guest.finished) {
                EXPIRED_GUESTS
            } else {
                0
            };
        assert!(
            present.saturating_sub(ended) <= GUEST_CAP,
            "{present} guests created and at most {ended} ended when one more was created"
        );
    }
    let expected_guests =
        (guests_before_load + created_guests.len() - rotated.len() - EXPIRED_GUESTS) as i64;
    let (guest_rows, guest_count) = guests_in_the_database(&url).await;
    assert_eq!(
        guest_rows, expected_guests,
        "guests as the callers were told"
    );
    assert_eq!(guest_count, guest_rows, "the kept count");
    assert!(guest_rows <= GUEST_CAP as i64);

    // The shared owner: exactly what its writers were told, within both limits.
    assert!(refused_writes > 0, "the writers reached the owner's limits");
    for (index, ust) in shared_usts.iter().enumerate() {
        let stored = replicas[index]
            .attributes()
            .get_attributes(authed(
                ust,
                proto::GetAttributesRequest {
                    scope: USER,
                    ..Default::default()
                },
            ))
            .await
            .expect("read back")
            .into_inner()
            .attributes;
        let stored: HashMap<String, prost_types::Value> = stored
            .into_iter()
            .map(|(name, attribute)| (name, attribute.value.expect("value")))
            .collect();
        assert_eq!(stored, expected_attributes, "as replica {index} reads it");
    }
    let (count, bytes) = owner_usage(&url, &shared.user_id).await;
    assert_eq!(count, expected_attributes.len() as i64);
    assert!(count <= OWNER_ATTRIBUTES as i64, "{count} attributes");
    assert!(bytes <= OWNER_BYTES as i64, "{bytes} bytes");

    println!(
        "replicas: load {load_time:?}; guests created {} refused {refused_guests} (cap \
         {GUEST_CAP}, {guest_rows} left); owner writes refused {refused_writes}, final \
         {count} attributes, {bytes} bytes; swept {swept_sessions} sessions and \
         {swept_attributes} attributes in {} sweeps",
        created_guests.len(),
        sweeps.len()
    );
}
