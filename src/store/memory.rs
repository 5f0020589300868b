//! The embedded store: everything in one process, behind one std mutex. The mutex is never
//! held across an `.await` (no method awaits while holding it), so a std mutex is cheaper
//! than tokio's and cannot deadlock the runtime.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;

use super::{
    AttributeStore, SessionStore, StoreError, StoreHealth, StoreResult, UserStore, is_live,
};
use crate::domain::{
    ApprovalStatus, DeleteAttributes, DeleteSession, DeleteSessions, DeleteUser, EndSessions,
    NewAttribute, OpenSession, Owner, PurgeCounts, PurgeExpired, RenewSession, Session, SessionId,
    SessionSelector, SessionWithUser, SetAttributeExpiry, SetAttributes, StoredAttribute,
    TokenHash, UpdateUser, User, UserId, UserPage, UserPatch, UserQuery, UserRecord, Write,
};

/// The in-memory store. Data lives as long as the process.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserRecord>,
    /// Lower-cased username → id: the case-insensitive unique index.
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

    fn with_user(&self, session: &Session) -> SessionWithUser {
        SessionWithUser {
            session: session.clone(),
            user: session
                .user_id
                .and_then(|id| self.users.get(&id))
                .map(|record| record.user.clone()),
        }
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

    fn owner_exists(&self, owner: Owner, now: SystemTime) -> StoreResult<()> {
        match owner {
            Owner::Session(id) if self.live_session(id, now).is_none() => {
                Err(StoreError::SessionNotFound)
            }
            Owner::User(id) if !self.users.contains_key(&id) => Err(StoreError::UserNotFound),
            _ => Ok(()),
        }
    }

    /// Upserts into an owner's map after checking the per-owner limit against the result.
    fn upsert_attributes(
        &mut self,
        owner: Owner,
        items: Vec<NewAttribute>,
        max_per_owner: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let map = self.attributes.entry(owner).or_default();
        let live_after = map
            .iter()
            .filter(|(name, attribute)| {
                is_live(attribute.expires_at, now) && !items.iter().any(|item| &item.name == *name)
            })
            .count()
            + items.len();
        if live_after > max_per_owner {
            return Err(StoreError::TooManyAttributes {
                count: live_after,
                limit: max_per_owner,
            });
        }
        let written = items
            .into_iter()
            .map(|item| {
                let created_at = map
                    .get(&item.name)
                    .filter(|old| is_live(old.expires_at, now))
                    .map_or(now, |old| old.created_at);
                let attribute = StoredAttribute {
                    name: item.name,
                    value: item.value,
                    created_at,
                    modified_at: now,
                    expires_at: item.expires_at,
                };
                map.insert(attribute.name.clone(), attribute.clone());
                attribute
            })
            .collect();
        Ok(written)
    }

    fn live_attributes<'a>(
        &'a self,
        owner: Owner,
        names: Option<&'a [String]>,
        now: SystemTime,
    ) -> impl Iterator<Item = &'a StoredAttribute> + 'a {
        self.attributes
            .get(&owner)
            .into_iter()
            .flat_map(|map| map.values())
            .filter(move |attribute| is_live(attribute.expires_at, now))
            .filter(move |attribute| names.is_none_or(|names| names.contains(&attribute.name)))
    }
}

fn apply_patch(user: &mut User, patch: &UserPatch) {
    let profile = &mut user.profile;
    let text_fields = [
        (&mut profile.email, &patch.email),
        (&mut profile.display_name, &patch.display_name),
        (&mut profile.first_name, &patch.first_name),
        (&mut profile.middle_name, &patch.middle_name),
        (&mut profile.last_name, &patch.last_name),
    ];
    for (field, value) in text_fields {
        if let Some(value) = value {
            field.clone_from(value);
        }
    }
    if let Some(value) = patch.is_super_user {
        user.is_super_user = value;
    }
    if let Some(value) = patch.is_locked {
        user.is_locked = value;
    }
    if let Some(value) = patch.approval_status {
        user.approval_status = value;
    }
    if let Some(value) = patch.password_must_change {
        user.password_must_change = value;
    }
    if let Some(value) = patch.password_expiry {
        user.password_expiry = value;
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        self.lock().map(drop)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User> {
        let Write {
            command: record, ..
        } = write;
        let mut state = self.lock()?;
        let key = record.user.username.to_lowercase();
        if state.usernames.contains_key(&key) {
            return Err(StoreError::UsernameTaken);
        }
        let user = record.user.clone();
        state.usernames.insert(key, user.id);
        state.users.insert(user.id, record);
        Ok(user)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let state = self.lock()?;
        Ok(state
            .usernames
            .get(&username.to_lowercase())
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let state = self.lock()?;
        let prefix = query.username_prefix.to_lowercase();
        let mut matching: Vec<(String, &User)> = state
            .users
            .values()
            .map(|record| (record.user.username.to_lowercase(), &record.user))
            .filter(|(key, user)| {
                key.starts_with(&prefix)
                    && query
                        .approval_status
                        .is_none_or(|status| user.approval_status == status)
            })
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let total_size = matching.len() as u64;
        let users = matching
            .into_iter()
            .filter(|(key, _)| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|after| *key > after.to_lowercase())
            })
            .take(query.limit)
            .map(|(_, user)| user.clone())
            .collect();
        Ok(UserPage { users, total_size })
    }

    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User> {
        let Write {
            command:
                UpdateUser {
                    id,
                    patch,
                    end_sessions,
                },
            ..
        } = write;
        let mut state = self.lock()?;
        let record = state.users.get_mut(&id).ok_or(StoreError::UserNotFound)?;
        apply_patch(&mut record.user, &patch);
        if let Some(hash) = &patch.password_hash {
            record.password_hash.clone_from(hash);
        }
        let user = record.user.clone();
        let keep = match end_sessions {
            EndSessions::None => return Ok(user),
            EndSessions::All => None,
            EndSessions::AllBut(keep) => Some(keep),
        };
        state.remove_sessions(SystemTime::UNIX_EPOCH, |session| {
            session.user_id == Some(id) && Some(session.id) != keep
        });
        Ok(user)
    }

    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool> {
        let Write {
            command: DeleteUser { id },
            ..
        } = write;
        let mut state = self.lock()?;
        let Some(record) = state.users.remove(&id) else {
            return Ok(false);
        };
        state.usernames.remove(&record.user.username.to_lowercase());
        state.attributes.remove(&Owner::User(id));
        state.remove_sessions(SystemTime::UNIX_EPOCH, |session| {
            session.user_id == Some(id)
        });
        Ok(true)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session> {
        let Write { now, command: open } = write;
        let mut state = self.lock()?;
        let session = open.new.session.clone();
        if let Some(user_id) = session.user_id {
            let record = state.users.get(&user_id).ok_or(StoreError::UserNotFound)?;
            if let Some(login) = &open.login {
                let user = &record.user;
                if record.password_hash != login.verified_hash
                    || user.is_locked
                    || user.approval_status != ApprovalStatus::Approved
                {
                    return Err(StoreError::UserChanged);
                }
            }
        }
        if let Some(replaced) = open.replaces
            && state.live_session(replaced, now).is_none()
        {
            return Err(StoreError::SessionNotFound);
        }
        let owner = Owner::Session(session.id);
        state.sessions.insert(
            session.id,
            StoredSession {
                session: session.clone(),
                token_hash: open.new.token_hash,
            },
        );
        state.tokens.insert(open.new.token_hash, session.id);
        // Carried attributes came from a session within the limit, so no limit applies here.
        state.upsert_attributes(owner, open.attributes, usize::MAX, now)?;
        if let Some(replaced) = open.replaces {
            state.remove_session(replaced);
        }
        if let (Some(login), Some(user_id)) = (open.login, session.user_id)
            && let Some(record) = state.users.get_mut(&user_id)
        {
            record.user.last_login_at = Some(session.created_at);
            if let Some(change) = login.new_password {
                record.password_hash = change.password_hash;
                record.user.password_must_change = change.password_must_change;
                record.user.password_expiry = change.password_expiry;
            }
        }
        Ok(session)
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        let state = self.lock()?;
        Ok(state
            .tokens
            .get(hash)
            .and_then(|id| state.live_session(*id, now))
            .map(|session| state.with_user(session)))
    }

    async fn session_by_id(
        &self,
        id: SessionId,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        let state = self.lock()?;
        Ok(state
            .live_session(id, now)
            .map(|session| state.with_user(session)))
    }

    async fn renew_session(&self, write: Write<RenewSession>) -> StoreResult<Option<Session>> {
        let Write {
            now,
            command: RenewSession { id, expires_at },
        } = write;
        let mut state = self.lock()?;
        Ok(state
            .sessions
            .get_mut(&id)
            .filter(|stored| stored.session.expires_at > now)
            .map(|stored| {
                stored.session.expires_at = expires_at;
                stored.session.last_renewed_at = now;
                stored.session.clone()
            }))
    }

    async fn list_sessions(
        &self,
        user: UserId,
        after: Option<SessionId>,
        limit: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<Session>> {
        let state = self.lock()?;
        let mut sessions: Vec<Session> = state
            .sessions
            .values()
            .map(|stored| &stored.session)
            .filter(|session| {
                session.user_id == Some(user)
                    && session.expires_at > now
                    && after.is_none_or(|after| session.id > after)
            })
            .cloned()
            .collect();
        sessions.sort_by_key(|session| session.id);
        sessions.truncate(limit);
        Ok(sessions)
    }

    async fn delete_session(&self, write: Write<DeleteSession>) -> StoreResult<bool> {
        let Write {
            now,
            command: DeleteSession { id },
        } = write;
        let mut state = self.lock()?;
        Ok(state
            .remove_session(id)
            .is_some_and(|session| session.expires_at > now))
    }

    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteSessions { selector },
        } = write;
        let mut state = self.lock()?;
        Ok(state.remove_sessions(now, |session| match selector {
            SessionSelector::User(id) => session.user_id == Some(id),
            SessionSelector::Guests => session.user_id.is_none(),
            SessionSelector::All => true,
        }))
    }

    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        let now = write.now;
        let mut state = self.lock()?;
        let mut attributes = 0;
        for map in state.attributes.values_mut() {
            let before = map.len();
            map.retain(|_, attribute| is_live(attribute.expires_at, now));
            attributes += (before - map.len()) as u64;
        }
        state.attributes.retain(|_, map| !map.is_empty());
        let expired: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|stored| stored.session.expires_at <= now)
            .map(|stored| stored.session.id)
            .collect();
        for id in &expired {
            let owned = state
                .attributes
                .get(&Owner::Session(*id))
                .map_or(0, BTreeMap::len);
            attributes += owned as u64;
            state.remove_session(*id);
        }
        Ok(PurgeCounts {
            sessions: expired.len() as u64,
            attributes,
        })
    }
}

#[async_trait]
impl AttributeStore for MemoryStore {
    async fn set_attributes(
        &self,
        write: Write<SetAttributes>,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributes {
                    owner,
                    items,
                    max_per_owner,
                },
        } = write;
        let mut state = self.lock()?;
        state.owner_exists(owner, now)?;
        state.upsert_attributes(owner, items, max_per_owner, now)
    }

    async fn get_attributes(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let state = self.lock()?;
        Ok(state.live_attributes(owner, names, now).cloned().collect())
    }

    async fn attribute_names(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<String>> {
        let state = self.lock()?;
        Ok(state
            .live_attributes(owner, names, now)
            .map(|attribute| attribute.name.clone())
            .collect())
    }

    async fn delete_attributes(&self, write: Write<DeleteAttributes>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteAttributes { owner, names },
        } = write;
        let mut state = self.lock()?;
        let Some(map) = state.attributes.get_mut(&owner) else {
            return Ok(0);
        };
        Ok(names
            .iter()
            .filter_map(|name| map.remove(name))
            .filter(|attribute| is_live(attribute.expires_at, now))
            .count() as u64)
    }

    async fn set_attribute_expiry(
        &self,
        write: Write<SetAttributeExpiry>,
    ) -> StoreResult<Option<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributeExpiry {
                    owner,
                    name,
                    expires_at,
                },
        } = write;
        let mut state = self.lock()?;
        Ok(state
            .attributes
            .get_mut(&owner)
            .and_then(|map| map.get_mut(&name))
            .filter(|attribute| is_live(attribute.expires_at, now))
            .map(|attribute| {
                attribute.expires_at = expires_at;
                attribute.modified_at = now;
                attribute.clone()
            }))
    }
}
