//! The embedded store: everything in one process, behind one std mutex. The mutex is never
//! held across an `.await` (no method awaits while holding it), so a std mutex is cheaper
//! than tokio's and cannot deadlock the runtime.
//!
//! One file per capability (`users.rs`, `sessions.rs`, `attributes.rs`, `throttle.rs`,
//! `credentials.rs`, `events.rs`, `accounts.rs`); this one holds the
//! state, its lock, health, and the session helpers that more than one area needs.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;

use super::{StoreError, StoreHealth, StoreResult};
use crate::domain::{
    Owner, RecoveryCodeHash, Session, SessionId, SessionSelector, StoredAttribute, TokenHash,
    TotpRecord, UserId, UserRecord,
};

mod accounts;
mod attributes;
mod credentials;
mod events;
mod sessions;
mod throttle;
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
    /// User → its sessions in id order: listing, per-user revocation and user deletion read
    /// this instead of every session.
    user_sessions: HashMap<UserId, BTreeSet<SessionId>>,
    /// Guest sessions, expired ones too until swept: their number is what the guest limit
    /// counts, and bulk guest revocation removes exactly these.
    guest_sessions: HashSet<SessionId>,
    /// Owner → its attributes by name.
    attributes: HashMap<Owner, BTreeMap<String, StoredAttribute>>,
    throttle: throttle::Throttle,
    /// User → its TOTP secret, pending or enabled (`User::totp_enabled` says which).
    totp: HashMap<UserId, TotpRecord>,
    /// User → the hashes of its unused recovery codes.
    recovery_codes: HashMap<UserId, HashSet<RecoveryCodeHash>>,
    /// User → its replaced password hashes, newest first.
    password_history: HashMap<UserId, VecDeque<String>>,
    events: events::EventLog,
    account_tokens: accounts::AccountTokens,
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

    /// Stores a session with its token, in the index of its user or of guests. Every
    /// session enters through here and leaves through [`State::remove_session`], which keep
    /// the indexes whole.
    fn insert_session(&mut self, stored: StoredSession) {
        let id = stored.session.id;
        match stored.session.user_id {
            Some(user) => {
                self.user_sessions.entry(user).or_default().insert(id);
            }
            None => {
                self.guest_sessions.insert(id);
            }
        }
        self.tokens.insert(stored.token_hash, id);
        self.sessions.insert(id, stored);
    }

    fn remove_session(&mut self, id: SessionId) -> Option<Session> {
        let stored = self.sessions.remove(&id)?;
        self.tokens.remove(&stored.token_hash);
        self.attributes.remove(&Owner::Session(id));
        match stored.session.user_id {
            Some(user) => {
                if let Some(ids) = self.user_sessions.get_mut(&user) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.user_sessions.remove(&user);
                    }
                }
            }
            None => {
                self.guest_sessions.remove(&id);
            }
        }
        Some(stored.session)
    }

    /// The ids of the selected sessions, from the indexes.
    fn selected_sessions(&self, selector: SessionSelector) -> Vec<SessionId> {
        match selector {
            SessionSelector::User(user) => self
                .user_sessions
                .get(&user)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            SessionSelector::OtherSessionsOf { user, keep } => self
                .user_sessions
                .get(&user)
                .map(|ids| ids.iter().copied().filter(|id| *id != keep).collect())
                .unwrap_or_default(),
            SessionSelector::Guests => self.guest_sessions.iter().copied().collect(),
            SessionSelector::All => self.sessions.keys().copied().collect(),
        }
    }

    /// Sets a user's password hash; the replaced one heads its history, which keeps `keep`.
    fn replace_password(&mut self, user: UserId, hash: String, keep: usize) {
        let Some(record) = self.users.get_mut(&user) else {
            return;
        };
        let replaced = std::mem::replace(&mut record.password_hash, hash);
        let history = self.password_history.entry(user).or_default();
        history.push_front(replaced);
        history.truncate(keep);
        if history.is_empty() {
            self.password_history.remove(&user);
        }
    }

    /// A deleted user's second factors and password history go with it.
    fn forget_credentials(&mut self, user: UserId) {
        self.totp.remove(&user);
        self.recovery_codes.remove(&user);
        self.password_history.remove(&user);
    }

    /// Records each template once per session in `ended` (with its user).
    fn record_ended(
        &mut self,
        now: SystemTime,
        context: &crate::domain::EventContext,
        templates: &[crate::domain::NewEvent],
        ended: &[Session],
    ) {
        let sessions: Vec<(SessionId, Option<UserId>)> = ended
            .iter()
            .map(|session| (session.id, session.user_id))
            .collect();
        self.events
            .record_for_sessions(now, context, templates, &sessions);
    }

    /// Removes the given sessions; those it removed.
    fn remove_sessions(&mut self, ids: Vec<SessionId>) -> Vec<Session> {
        ids.into_iter()
            .filter_map(|id| self.remove_session(id))
            .collect()
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        self.lock().map(drop)
    }
}
