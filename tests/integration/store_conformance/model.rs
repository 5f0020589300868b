//! Model-based testing: random sequences of store operations run against the memory store
//! (the model) and PostgreSQL, which must give identical answers step by step. The
//! hand-written conformance tests pin what each operation means; this finds the
//! combinations nobody wrote down (rotation after a sweep, limits after deletes, ...).

use ssod::domain::SessionEndReason;
use std::{sync::Arc, time::Duration};

use proptest::{prelude::*, test_runner::TestRunner};
use ssod::{
    crypto,
    domain::{
        DeleteAttributes, DeleteSession, DeleteSessions, DeleteUser, EndSessions, EventQuery,
        NewAttribute, NewSession, OpenSession, Owner, RenewOnUse, RenewSession, Session, SessionId,
        SessionPolicy, SessionSelector, SetAttributeExpiry, SetAttributes, StoredAttribute,
        StoredValue, UpdateUser, UserId, UserPatch, UserQuery,
    },
    store::{Store, StoreError},
};

use super::{at, memory_store, postgres_store, purge, user_record, write};

/// Sequences to run, and the most operations in one.
const SEQUENCES: u32 = 48;
const MAX_OPERATIONS: usize = 40;

/// A few names, so operations collide: `U0` and `u0` are one username.
const USERNAMES: [&str; 4] = ["u0", "u1", "U0", "u2"];
const ATTRIBUTE_NAMES: [&str; 4] = ["a", "b", "cart", "theme"];
/// Limits low enough for random sequences to reach them.
const MAX_GUESTS: usize = 4;
const MAX_BYTES: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Who {
    Session(u8),
    User(u8),
}

#[derive(Clone, Debug)]
enum Operation {
    CreateUser(u8),
    Open {
        user: Option<u8>,
        lifetime: u16,
        replaces: Option<u8>,
        carry: Vec<u8>,
    },
    Set {
        owner: Who,
        items: Vec<(u8, u8, Option<u16>)>,
        max_per_owner: u8,
    },
    Get(Who, Option<Vec<u8>>),
    Names(Who),
    DeleteAttributes(Who, Vec<u8>),
    SetExpiry(Who, u8, Option<u16>),
    Renew(u8, u16),
    /// A look-up, as a use that renews once the last renewal is this many seconds old.
    ByToken(u8, Option<u16>),
    ById(u8),
    List(u8, u8),
    DeleteSession(u8),
    DeleteSessions(u8, u8),
    Lock(u8, bool),
    DeleteUser(u8),
    ListUsers(u8),
    Advance(u16),
    Purge(u8),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => (0u8..8).prop_map(Who::Session),
        1 => (0u8..5).prop_map(Who::User),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    let names = || proptest::collection::vec(0u8..4, 0..4);
    prop_oneof![
        2 => (0u8..4).prop_map(Operation::CreateUser),
        4 => (
            proptest::option::of(0u8..5),
            1u16..600,
            proptest::option::of(0u8..8),
            names()
        )
            .prop_map(|(user, lifetime, replaces, carry)| Operation::Open {
                user,
                lifetime,
                replaces,
                carry
            }),
        4 => (
            who(),
            proptest::collection::vec((0u8..4, any::<u8>(), proptest::option::of(1u16..600)), 0..5),
            1u8..6
        )
            .prop_map(|(owner, items, max_per_owner)| Operation::Set {
                owner,
                items,
                max_per_owner
            }),
        2 => (who(), proptest::option::of(names())).prop_map(|(w, n)| Operation::Get(w, n)),
        1 => who().prop_map(Operation::Names),
        1 => (who(), names()).prop_map(|(w, n)| Operation::DeleteAttributes(w, n)),
        1 => (who(), 0u8..4, proptest::option::of(1u16..600))
            .prop_map(|(w, n, t)| Operation::SetExpiry(w, n, t)),
        1 => (0u8..8, 1u16..600).prop_map(|(s, t)| Operation::Renew(s, t)),
        2 => (0u8..8, proptest::option::of(0u16..300))
            .prop_map(|(session, interval)| Operation::ByToken(session, interval)),
        1 => (0u8..8).prop_map(Operation::ById),
        1 => (0u8..5, 1u8..4).prop_map(|(u, l)| Operation::List(u, l)),
        1 => (0u8..8).prop_map(Operation::DeleteSession),
        1 => (0u8..3, 0u8..5).prop_map(|(k, u)| Operation::DeleteSessions(k, u)),
        1 => (0u8..5, any::<bool>()).prop_map(|(u, l)| Operation::Lock(u, l)),
        1 => (0u8..5).prop_map(Operation::DeleteUser),
        1 => (1u8..4).prop_map(Operation::ListUsers),
        2 => (1u16..400).prop_map(Operation::Advance),
        1 => (1u8..4).prop_map(Operation::Purge),
    ]
}

/// Ids and tokens made once per sequence, so both stores see the very same writes.
struct World {
    users: Vec<UserId>,
    sessions: Vec<NewSession>,
    now: u64,
}

impl World {
    fn user(&self, index: u8) -> UserId {
        self.users
            .get(usize::from(index))
            .copied()
            .unwrap_or(UserId(uuid::Uuid::nil()))
    }

    fn session(&self, index: u8) -> SessionId {
        self.sessions
            .get(usize::from(index))
            .map_or(SessionId(uuid::Uuid::nil()), |new| new.session.id)
    }

    fn owner(&self, who: Who) -> Owner {
        match who {
            Who::Session(index) => Owner::Session(self.session(index)),
            Who::User(index) => Owner::User(self.user(index)),
        }
    }
}

fn names_of(indexes: &[u8]) -> Vec<String> {
    indexes
        .iter()
        .map(|&index| ATTRIBUTE_NAMES[usize::from(index) % 4].to_string())
        .collect()
}

/// What a store answered, in a form both stores must share: errors by kind only (the
/// PostgreSQL store's messages carry driver text).
fn answer<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(StoreError::TooManyAttributes { limit, .. }) => format!("TooManyAttributes({limit})"),
        Err(StoreError::Unavailable(_)) => "Unavailable".into(),
        Err(StoreError::Internal(cause)) => format!("Internal({cause})"),
        Err(other) => format!("{other:?}"),
    }
}

/// Attributes with their values spelled out: their `Debug` hides values, by design.
fn shown(attributes: Vec<StoredAttribute>) -> Vec<(StoredAttribute, String)> {
    attributes
        .into_iter()
        .map(|attribute| {
            let value = match &attribute.value {
                StoredValue::Plain(json) => json.clone(),
                StoredValue::Sealed { key_id, ciphertext } => format!("{key_id}:{ciphertext:?}"),
            };
            (attribute, value)
        })
        .collect()
}

/// Prepares the operation's write in `world` (new ids), then applies it to `store`.
async fn apply(store: &Arc<dyn Store>, world: &World, operation: &Operation) -> String {
    let now = at(world.now);
    match operation {
        Operation::CreateUser(index) => {
            let mut record = user_record(USERNAMES[usize::from(*index)]);
            record.user.id = *world.users.last().expect("prepared");
            record.user.created_at = now;
            answer(store.create_user(write(now, record)).await)
        }
        Operation::Open {
            replaces, carry, ..
        } => {
            let new = world.sessions.last().cloned().expect("prepared");
            let attributes = names_of(carry)
                .into_iter()
                .map(|name| NewAttribute {
                    value: StoredValue::Plain(format!("\"carried {name}\"")),
                    name,
                    expires_at: None,
                })
                .collect();
            let open = OpenSession {
                new,
                attributes,
                // Only an earlier session: the service never asks a session to replace itself.
                replaces: replaces
                    .filter(|&index| usize::from(index) + 1 < world.sessions.len())
                    .map(|index| world.session(index)),
                login: None,
                max_guest_sessions: MAX_GUESTS,
                session_limit: None,
            };
            answer(store.open_session(write(now, open)).await)
        }
        Operation::Set {
            owner,
            items,
            max_per_owner,
        } => {
            // Names are unique within one write: the service refuses a name given twice.
            let mut seen = std::collections::HashSet::new();
            let items = items
                .iter()
                .filter(|(name, _, _)| seen.insert(usize::from(*name) % 4))
                .map(|(name, value, lifetime)| NewAttribute {
                    name: ATTRIBUTE_NAMES[usize::from(*name) % 4].to_string(),
                    value: StoredValue::Plain(value.to_string()),
                    expires_at: lifetime.map(|secs| at(world.now + u64::from(secs))),
                })
                .collect();
            let command = SetAttributes {
                owner: world.owner(*owner),
                items,
                max_per_owner: usize::from(*max_per_owner),
                max_bytes_per_owner: MAX_BYTES,
            };
            answer(store.set_attributes(write(now, command)).await.map(shown))
        }
        Operation::Get(owner, names) => {
            let names = names.as_deref().map(names_of);
            answer(
                store
                    .get_attributes(world.owner(*owner), names.as_deref(), now)
                    .await
                    .map(shown),
            )
        }
        Operation::Names(owner) => {
            answer(store.attribute_names(world.owner(*owner), None, now).await)
        }
        Operation::DeleteAttributes(owner, names) => {
            let command = DeleteAttributes {
                owner: world.owner(*owner),
                names: names_of(names),
            };
            answer(store.delete_attributes(write(now, command)).await)
        }
        Operation::SetExpiry(owner, name, lifetime) => {
            let command = SetAttributeExpiry {
                owner: world.owner(*owner),
                name: ATTRIBUTE_NAMES[usize::from(*name) % 4].to_string(),
                expires_at: lifetime.map(|secs| at(world.now + u64::from(secs))),
            };
            answer(
                store
                    .set_attribute_expiry(write(now, command))
                    .await
                    .map(|found| found.map(|attribute| shown(vec![attribute]))),
            )
        }
        Operation::Renew(session, lifetime) => {
            let command = RenewSession {
                id: world.session(*session),
                expires_at: at(world.now + u64::from(*lifetime)),
            };
            answer(store.renew_session(write(now, command)).await)
        }
        Operation::ByToken(session, interval) => {
            let hash = world
                .sessions
                .get(usize::from(*session))
                .map_or(crypto::hash_ust("none"), |new| new.token_hash);
            let renew = interval.map(|interval| RenewOnUse {
                renewed_before: now - Duration::from_secs(u64::from(interval)),
                lifetimes: SessionPolicy {
                    idle_timeout: Duration::from_secs(200),
                    guest_idle_timeout: Duration::from_secs(100),
                    max_lifetime: Duration::from_secs(600),
                },
            });
            answer(store.session_by_token(&hash, now, renew.as_ref()).await)
        }
        Operation::ById(session) => answer(store.session_by_id(world.session(*session), now).await),
        Operation::List(user, limit) => answer(
            store
                .list_sessions(world.user(*user), None, usize::from(*limit), now)
                .await,
        ),
        Operation::DeleteSession(session) => {
            let command = DeleteSession {
                id: world.session(*session),
                reason: SessionEndReason::Revoked,
            };
            answer(store.delete_session(write(now, command)).await)
        }
        Operation::DeleteSessions(kind, user) => {
            let selector = match kind {
                0 => SessionSelector::User(world.user(*user)),
                1 => SessionSelector::Guests,
                _ => SessionSelector::All,
            };
            answer(
                store
                    .delete_sessions(write(now, DeleteSessions { selector, batch: 2 }))
                    .await,
            )
        }
        Operation::Lock(user, locked) => {
            let patch = UserPatch {
                is_locked: Some(*locked),
                ..UserPatch::default()
            };
            let command = UpdateUser {
                id: world.user(*user),
                end_sessions: if patch.ends_sessions() {
                    EndSessions::All
                } else {
                    EndSessions::None
                },
                patch,
            };
            answer(store.update_user(write(now, command)).await)
        }
        Operation::DeleteUser(user) => {
            let command = DeleteUser {
                id: world.user(*user),
                batch: 2,
            };
            answer(store.delete_user(write(now, command)).await)
        }
        Operation::ListUsers(limit) => {
            let query = UserQuery {
                limit: usize::from(*limit),
                ..UserQuery::default()
            };
            answer(store.list_users(&query).await.map(|page| {
                let names: Vec<String> = page.users.into_iter().map(|u| u.username).collect();
                (names, page.total_size)
            }))
        }
        Operation::Advance(_) => String::new(),
        Operation::Purge(batch) => answer(
            store
                .purge_expired(write(now, purge(usize::from(*batch))))
                .await,
        ),
    }
}

/// Makes the ids an operation needs before both stores apply it.
fn prepare(world: &mut World, operation: &Operation) {
    match operation {
        Operation::CreateUser(_) => world.users.push(UserId::generate()),
        Operation::Open { user, lifetime, .. } => {
            let user_id = user.map(|index| world.user(index));
            let ust = crypto::generate_ust();
            world.sessions.push(NewSession {
                session: Session {
                    id: SessionId::generate(),
                    user_id,
                    current_app: "app".into(),
                    remote_addr: "192.0.2.1".into(),
                    user_agent: "model".into(),
                    created_at: at(world.now),
                    expires_at: at(world.now + u64::from(*lifetime)),
                    last_renewed_at: at(world.now),
                },
                token_hash: crypto::hash_ust(&ust),
            });
        }
        Operation::Advance(secs) => world.now += u64::from(*secs),
        _ => {}
    }
}

async fn run_on_both(operations: Vec<Operation>) -> Result<(), TestCaseError> {
    let model = memory_store();
    let postgres = postgres_store().await;
    let mut world = World {
        users: Vec::new(),
        sessions: Vec::new(),
        now: 0,
    };
    for (step, operation) in operations.iter().enumerate() {
        prepare(&mut world, operation);
        let expected = apply(&model, &world, operation).await;
        let found = apply(&postgres, &world, operation).await;
        prop_assert_eq!(
            &found,
            &expected,
            "step {} {:?} differs (postgres left, memory right)",
            step,
            operation
        );
    }
    // Both recorded the same events. Sorted: events of one statement (the sessions one delete
    // ended) may come in another order.
    prop_assert_eq!(
        recorded(&postgres).await,
        recorded(&model).await,
        "the event logs differ (postgres left, memory right)"
    );
    Ok(())
}

/// Every event of a store as text, sorted.
async fn recorded(store: &Arc<dyn Store>) -> Vec<String> {
    let query = EventQuery {
        limit: 100_000,
        ..EventQuery::default()
    };
    let events = store.list_events(&query).await.expect("listed");
    let mut shown: Vec<String> = events
        .into_iter()
        .map(|event| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?}",
                event.time,
                event.event.kind,
                event.event.user,
                event.event.session,
                event.event.reason,
                event.event.details
            )
        })
        .collect();
    shown.sort();
    shown
}

#[test]
fn random_operation_sequences_agree_on_memory_and_postgres() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(ProptestConfig {
        cases: SEQUENCES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let sequences = proptest::collection::vec(operation(), 1..MAX_OPERATIONS);
    runner
        .run(&sequences, |operations| {
            runtime.block_on(run_on_both(operations))
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    // Proof that something ran: the figure the closing note quotes.
    println!("model test: {SEQUENCES} sequences of up to {MAX_OPERATIONS} operations agreed");
}
