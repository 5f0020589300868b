//! The embedded store: everything in one process, behind one std mutex. The mutex is never
//! held across an `.await` (no method awaits while holding it), so a std mutex is cheaper
//! than tokio's and cannot deadlock the runtime.
//!
//! One file per capability (`users.rs`, `sessions.rs`, `attributes.rs`); this one holds the
//! state, its lock, health, and the session helpers that more than one area needs.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;

use super::{StoreError, StoreHealth, StoreResult};
use crate::domain::{Owner, Session, SessionId, StoredAttribute, TokenHash, UserId, UserRecord};

mod attributes;
mod sessions;
mod users;

/// The in-memory store. Data lives as long as the process.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserRecord>,
    /// Username key ([`crate::domain::Username::key`]) → id: the unique index.
    usernames: HashMap<String, UserId>,
    sessions: HashMap<SessionId, StoredSession>,
    /// Token hash → session: the unique token index.
    tokens: HashMap<TokenHash, SessionId>,
    attributes: HashMap<Owner, BTreeMap<String, StoredAttribute>>,
}

struct StoredSession {
    session: Session,
    token_hash: TokenHash,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("memory store mutex poisoned".into()))
    }
}

impl State {
    fn live_session(&self, id: SessionId, now: SystemTime) -> Option<&Session> {
        self.sessions
            .get(&id)
            .map(|stored| &stored.session)
            .filter(|session| session.expires_at > now)
    }

    fn remove_session(&mut self, id: SessionId) -> Option<Session> {
        let stored = self.sessions.remove(&id)?;
        self.tokens.remove(&stored.token_hash);
        self.attributes.remove(&Owner::Session(id));
        Some(stored.session)
    }

    /// Removes the selected sessions; counts those that had not expired.
    fn remove_sessions(&mut self, now: SystemTime, select: impl Fn(&Session) -> bool) -> u64 {
        let doomed: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|stored| select(&stored.session))
            .map(|stored| stored.session.id)
            .collect();
        doomed
            .into_iter()
            .filter_map(|id| self.remove_session(id))
            .filter(|session| session.expires_at > now)
            .count() as u64
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        self.lock().map(drop)
    }
}
