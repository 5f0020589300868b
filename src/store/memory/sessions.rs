//! Sessions in memory.

use std::{collections::BTreeMap, ops::Bound, time::SystemTime};

use async_trait::async_trait;

use super::{MemoryStore, State, StoredSession};
use crate::{
    domain::{
        ApprovalStatus, DeleteSession, DeleteSessions, OpenSession, Owner, PurgeCounts,
        PurgeExpired, RenewOnUse, RenewSession, Session, SessionId, SessionLimit,
        SessionLimitPolicy, SessionSelector, SessionWithUser, TokenHash, UserId, Write,
    },
    store::{SessionStore, StoreError, StoreResult, is_live},
};

impl State {
    /// The live sessions of `user` a new one must end to stay within `limit`, oldest first
    /// (the one it replaces is ending anyway); `SessionLimitReached` if the policy refuses.
    fn oldest_to_end(
        &self,
        user: UserId,
        replaces: Option<SessionId>,
        limit: SessionLimit,
        now: SystemTime,
    ) -> StoreResult<Vec<SessionId>> {
        let mut live: Vec<&Session> = self
            .user_sessions
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|id| Some(**id) != replaces)
            .filter_map(|id| self.live_session(*id, now))
            .collect();
        let excess = (live.len() + 1).saturating_sub(limit.max.get());
        if excess == 0 {
            return Ok(Vec::new());
        }
        match limit.policy {
            SessionLimitPolicy::Refuse => Err(StoreError::SessionLimitReached {
                limit: limit.max.get(),
            }),
            SessionLimitPolicy::EndOldest => {
                live.sort_by_key(|session| (session.created_at, session.id));
                Ok(live[..excess].iter().map(|session| session.id).collect())
            }
        }
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
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session> {
        let Write { now, command: open } = write;
        let mut state = self.lock()?;
        let session = open.new.session.clone();
        // Every check before any change, so a refusal changes nothing; then the changes in
        // PostgreSQL's order.
        if let Some(replaced) = open.replaces
            && state.live_session(replaced, now).is_none()
        {
            return Err(StoreError::SessionNotFound);
        }
        // The user's sessions that end with this one's opening.
        let mut doomed = Vec::new();
        match session.user_id {
            Some(user_id) => {
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
                let ends_other_sessions = open
                    .login
                    .as_ref()
                    .is_some_and(|login| login.new_password.is_some());
                if ends_other_sessions {
                    doomed = state.selected_sessions(SessionSelector::User(user_id));
                } else if let Some(limit) = open.session_limit {
                    doomed = state.oldest_to_end(user_id, open.replaces, limit, now)?;
                }
            }
            None => {
                // A guest that replaces a guest takes its place rather than adding one.
                let replaced_guest = open
                    .replaces
                    .is_some_and(|replaced| state.guest_sessions.contains(&replaced));
                let guests = state.guest_sessions.len() - usize::from(replaced_guest);
                if guests >= open.max_guest_sessions {
                    return Err(StoreError::TooManyGuestSessions {
                        limit: open.max_guest_sessions,
                    });
                }
            }
        }
        let owner = Owner::Session(session.id);
        state.insert_session(StoredSession {
            session: session.clone(),
            token_hash: open.new.token_hash,
        });
        // Carried attributes came from a session within the limits, so none applies here.
        state.upsert_attributes(owner, open.attributes, usize::MAX, usize::MAX, now)?;
        if let Some(replaced) = open.replaces {
            state.remove_session(replaced);
        }
        state.remove_sessions(now, doomed);
        if let (Some(login), Some(user_id)) = (open.login, session.user_id)
            && let Some(record) = state.users.get_mut(&user_id)
        {
            record.user.last_login_at = Some(session.created_at);
            if let Some(change) = login.new_password {
                record.user.password_must_change = change.password_must_change;
                record.user.password_expiry = change.password_expiry;
                state.replace_password(user_id, change.password_hash, change.keep_history);
            }
        }
        Ok(session)
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        renew: Option<&RenewOnUse>,
    ) -> StoreResult<Option<SessionWithUser>> {
        let mut state = self.lock()?;
        let Some(mut found) = state
            .tokens
            .get(hash)
            .and_then(|id| state.live_session(*id, now))
            .map(|session| state.with_user(session))
        else {
            return Ok(None);
        };
        if let Some(renew) = renew.filter(|renew| renew.is_due(&found, now))
            && let Some(stored) = state.sessions.get_mut(&found.session.id)
        {
            renew.renew(&mut stored.session, now);
            found.session = stored.session.clone();
        }
        Ok(Some(found))
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
        let Some(ids) = state.user_sessions.get(&user) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(ids
            .range((from, Bound::Unbounded))
            .filter_map(|id| state.live_session(*id, now))
            .take(limit)
            .cloned()
            .collect())
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
            // One pass, linear in the selected sessions: no statement timeout to stay under.
            command: DeleteSessions { selector, .. },
        } = write;
        let mut state = self.lock()?;
        let doomed = state.selected_sessions(selector);
        Ok(state.remove_sessions(now, doomed))
    }

    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        let Write {
            now,
            command: PurgeExpired { throttle, .. },
        } = write;
        let mut state = self.lock()?;
        let login_failures = state.throttle.purge(&throttle, now);
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
            login_failures,
        })
    }
}
