//! Sessions in memory.

use std::{collections::BTreeMap, ops::Bound, time::SystemTime};

use async_trait::async_trait;

use super::{MemoryStore, State, StoredSession};
use crate::{
    domain::{
        ApprovalStatus, DeleteSession, DeleteSessions, OpenSession, Owner, PurgeCounts,
        PurgeExpired, RenewOnUse, RenewSession, Session, SessionId, SessionLimit,
        SessionLimitPolicy, SessionSelector, SessionWithUser, TokenHash, UserId, Write,
        commands::user_changed_template,
    },
    store::{SessionStore, StoreError, StoreResult, is_live},
};

/// How many of `sessions` were live at `now`.
pub(super) fn count_live(sessions: &[Session], now: SystemTime) -> u64 {
    sessions
        .iter()
        .filter(|session| session.expires_at > now)
        .count() as u64
}

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
        let Write {
            now,
            command: open,
            context,
        } = write;
        let mut state = self.lock()?;
        let session = open.new.session.clone();
        // Every check before any change, so a refusal changes nothing; then the changes in
        // PostgreSQL's order.
        if let Some(replaced) = open.replaces
            && state.live_session(replaced, now).is_none()
        {
            return Err(StoreError::SessionNotFound);
        }
        // The user's sessions that end with this one's opening, and why.
        let mut doomed = Vec::new();
        let mut doomed_templates = Vec::new();
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
                    doomed.retain(|id| Some(*id) != open.replaces);
                    doomed_templates = user_changed_template();
                } else if let Some(limit) = open.session_limit {
                    doomed = state.oldest_to_end(user_id, open.replaces, limit, now)?;
                    doomed_templates = OpenSession::limit_templates();
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
        let opened_events = open.opened_events();
        let replaced_templates = open.replaced_templates();
        state.insert_session(StoredSession {
            session: session.clone(),
            token_hash: open.new.token_hash,
        });
        // Carried attributes came from a session within the limits, so none applies here.
        state.upsert_attributes(owner, open.attributes, usize::MAX, usize::MAX, now)?;
        // Events in PostgreSQL's order: the replaced session, the user's, the opening.
        if let Some(replaced) = open.replaces
            && let Some(ended) = state.remove_session(replaced)
        {
            state.record_ended(now, &context, &replaced_templates, &[ended]);
        }
        let ended = state.remove_sessions(doomed);
        state.record_ended(now, &context, &doomed_templates, &ended);
        state.events.record(now, &context, opened_events);
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
            ..
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
            command,
            context,
        } = write;
        let mut state = self.lock()?;
        let Some(ended) = state.remove_session(command.id) else {
            return Ok(false);
        };
        state.record_ended(
            now,
            &context,
            &command.templates(),
            std::slice::from_ref(&ended),
        );
        Ok(ended.expires_at > now)
    }

    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64> {
        let Write {
            now,
            // One pass, linear in the selected sessions: no statement timeout to stay under.
            command,
            context,
        } = write;
        let mut state = self.lock()?;
        let doomed = state.selected_sessions(command.selector);
        let live = count_live(&state.remove_sessions(doomed), now);
        let summary = command.summary().detail("count", live);
        state.events.record(now, &context, vec![summary]);
        Ok(live)
    }

    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        let Write {
            now,
            command: purge,
            context,
        } = write;
        let throttle = purge.throttle;
        let mut state = self.lock()?;
        let events = purge
            .events_before(now)
            .map_or(0, |before| state.events.trim(before));
        let login_failures = state.throttle.purge(&throttle, now);
        let account_tokens = state.account_tokens.purge(now);
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
        let mut swept = Vec::with_capacity(expired.len());
        for id in &expired {
            let owned = state
                .attributes
                .get(&Owner::Session(*id))
                .map_or(0, BTreeMap::len);
            attributes += owned as u64;
            swept.extend(state.remove_session(*id));
        }
        state.record_ended(now, &context, &PurgeExpired::templates(), &swept);
        Ok(PurgeCounts {
            sessions: expired.len() as u64,
            attributes,
            login_failures,
            events,
            account_tokens,
        })
    }
}
