//! Sessions: guest sessions, the caller's own, inspection, renewal, listing, revocation,
//! expiry sweeps.

use uuid::Uuid;

use super::{Caller, ClientInfo, PageRequest, ServiceError, ServiceResult, Sso, page_token};
use std::time::SystemTime;

use crate::{
    crypto,
    domain::{
        DeleteSession, DeleteSessions, EventContext, LoginRecord, NewAttribute, NewSession,
        OpenSession, PurgeCounts, PurgeExpired, RenewSession, Session, SessionEndReason, SessionId,
        SessionSelector, User, UserId, Write,
    },
};

#[derive(Debug)]
pub struct SessionsPage {
    pub sessions: Vec<Session>,
    pub next_page_token: String,
}

impl Sso {
    /// A guest session: a browser's session before login.
    pub async fn create_session(&self, client: ClientInfo) -> ServiceResult<(String, Session)> {
        self.check_client(&client)?;
        let now = self.clock.now();
        let context = self.context(None, Some(&client));
        let session = self.new_session(None, client, now);
        self.open_session(session, Vec::new(), None, None, now, context)
            .await
    }

    /// A super-user's view of another session; `SessionNotFound` unless it exists, has not
    /// expired and its user's password has not expired.
    pub async fn get_session(
        &self,
        caller: &Caller,
        target_ust: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Session> {
        let session = self
            .look_at_session(caller, target_ust, client)
            .await?
            .ok_or(ServiceError::SessionNotFound)?;
        self.record_session_read(caller, client, &session, "GetSession")
            .await?;
        Ok(session)
    }

    /// Like [`Sso::get_session`] but answers `None` for an invalid session. Looking at a
    /// session is not using it: the target is never renewed (the caller's own session was,
    /// by the look-up that authenticated this call).
    pub async fn verify_session(
        &self,
        caller: &Caller,
        target_ust: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Option<Session>> {
        let session = self.look_at_session(caller, target_ust, client).await?;
        if let Some(session) = &session {
            self.record_session_read(caller, client, session, "VerifySession")
                .await?;
        }
        Ok(session)
    }

    /// The session a super-user looks at, never renewed.
    async fn look_at_session(
        &self,
        caller: &Caller,
        target_ust: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Option<Session>> {
        caller.require_super_user()?;
        if target_ust.is_empty() {
            return Err(ServiceError::invalid("target_ust", "is required"));
        }
        self.check_client(client)?;
        let now = self.clock.now();
        Ok(self
            .live_session_by_ust(target_ust, now, None)
            .await?
            .map(|found| found.session))
    }

    /// What the caller's UST stands for: its session and, unless a guest's, its user, as
    /// authentication found them.
    pub fn current_session(&self, caller: &Caller) -> (Session, Option<User>) {
        (caller.session.clone(), caller.user.clone())
    }

    /// Ends every other session of the caller's user; counts the live ones ended.
    pub async fn revoke_other_sessions(&self, caller: &Caller) -> ServiceResult<u64> {
        let user = caller.require_user()?.id;
        let deleted = self
            .stores
            .sessions
            .delete_sessions(
                Write::new(
                    self.clock.now(),
                    DeleteSessions {
                        selector: SessionSelector::OtherSessionsOf {
                            user,
                            keep: caller.session.id,
                        },
                        batch: self.policy.sweep_batch,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        tracing::info!(user_id = %user, deleted, "other sessions revoked");
        Ok(deleted)
    }

    /// Sliding renewal of the caller's session: now + idle timeout, capped by the absolute
    /// lifetime.
    pub async fn renew_session(&self, caller: &Caller) -> ServiceResult<Session> {
        let now = self.clock.now();
        let session = &caller.session;
        let expires_at =
            self.policy
                .sessions
                .expiry(session.user_id.is_none(), session.created_at, now);
        self.stores
            .sessions
            .renew_session(
                Write::new(
                    now,
                    RenewSession {
                        id: session.id,
                        expires_at,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?
            .ok_or(ServiceError::UstInvalid)
    }

    /// The sessions of the caller's user, or of any user for a super-user. Never USTs.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        user_id: Option<UserId>,
        page: PageRequest,
    ) -> ServiceResult<SessionsPage> {
        let own = caller.require_user()?.id;
        let user = user_id.unwrap_or(own);
        if user != own {
            caller.require_super_user()?;
        }
        let filter = format!("sessions of {user}");
        let after = page
            .cursor(&filter)?
            .map(|cursor| {
                Uuid::parse_str(&cursor).map(SessionId).map_err(|_| {
                    ServiceError::invalid("page_token", "not a token this server issued")
                })
            })
            .transpose()?;
        let limit = page.limit();
        let mut sessions = self
            .stores
            .sessions
            .list_sessions(user, after, limit + 1, self.clock.now())
            .await?;
        let next_page_token = if sessions.len() > limit {
            sessions.truncate(limit);
            sessions
                .last()
                .map(|session| page_token(&filter, &session.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(SessionsPage {
            sessions,
            next_page_token,
        })
    }

    /// Ends the caller's session, another session of the same user, or (super-user) any.
    pub async fn delete_session(
        &self,
        caller: &Caller,
        session_id: Option<SessionId>,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let target = session_id.unwrap_or(caller.session.id);
        if target != caller.session.id && !caller.is_super_user() {
            let found = self.stores.sessions.session_by_id(target, now).await?;
            let same_user = found.is_some_and(|found| {
                found.session.user_id.is_some() && found.session.user_id == caller.session.user_id
            });
            if !same_user {
                return Err(ServiceError::NotOwner);
            }
        }
        let deleted = self
            .stores
            .sessions
            .delete_session(
                Write::new(
                    now,
                    DeleteSession {
                        id: target,
                        reason: SessionEndReason::Revoked,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::SessionNotFound)
        }
    }

    pub async fn delete_sessions(
        &self,
        caller: &Caller,
        selector: SessionSelector,
    ) -> ServiceResult<u64> {
        caller.require_super_user()?;
        let deleted = self
            .stores
            .sessions
            .delete_sessions(
                Write::new(
                    self.clock.now(),
                    DeleteSessions {
                        selector,
                        batch: self.policy.sweep_batch,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        tracing::info!(deleted, ?selector, "sessions revoked");
        Ok(deleted)
    }

    pub async fn purge_expired(&self, caller: &Caller) -> ServiceResult<PurgeCounts> {
        caller.require_super_user()?;
        self.sweep_by(self.context(Some(caller), None)).await
    }

    /// The expiry sweep of the background task; `PurgeExpired` runs the same.
    pub async fn sweep(&self) -> ServiceResult<PurgeCounts> {
        self.sweep_by(EventContext::default()).await
    }

    async fn sweep_by(&self, context: EventContext) -> ServiceResult<PurgeCounts> {
        let purge = PurgeExpired {
            batch: self.policy.sweep_batch,
            throttle: self.policy.throttle,
            event_retention: self.policy.event_retention,
        };
        let counts = self
            .stores
            .sessions
            .purge_expired(Write::new(self.clock.now(), purge).by(context))
            .await?;
        metrics::counter!("ssod_swept_total", "kind" => "sessions").increment(counts.sessions);
        metrics::counter!("ssod_swept_total", "kind" => "attributes").increment(counts.attributes);
        metrics::counter!("ssod_swept_total", "kind" => "login_failures")
            .increment(counts.login_failures);
        metrics::counter!("ssod_swept_total", "kind" => "events").increment(counts.events);
        metrics::counter!("ssod_swept_total", "kind" => "account_tokens")
            .increment(counts.account_tokens);
        if counts != PurgeCounts::default() {
            tracing::info!(
                sessions = counts.sessions,
                attributes = counts.attributes,
                login_failures = counts.login_failures,
                events = counts.events,
                account_tokens = counts.account_tokens,
                "expired rows swept"
            );
        }
        Ok(counts)
    }

    pub(super) fn new_session(
        &self,
        user_id: Option<UserId>,
        client: ClientInfo,
        now: SystemTime,
    ) -> Session {
        Session {
            id: SessionId::generate(),
            user_id,
            current_app: client.current_app,
            remote_addr: client.remote_addr,
            user_agent: client.user_agent,
            created_at: now,
            expires_at: self.policy.sessions.expiry(user_id.is_none(), now, now),
            last_renewed_at: now,
        }
    }

    /// Mints a UST and opens a session for it in one store transaction.
    pub(super) async fn open_session(
        &self,
        session: Session,
        attributes: Vec<NewAttribute>,
        replaces: Option<SessionId>,
        login: Option<LoginRecord>,
        now: SystemTime,
        context: EventContext,
    ) -> ServiceResult<(String, Session)> {
        let ust = crypto::generate_ust();
        let open = OpenSession {
            new: NewSession {
                session,
                token_hash: crypto::hash_ust(&ust),
            },
            attributes,
            replaces,
            login,
            max_guest_sessions: self.policy.max_guest_sessions,
            session_limit: self.policy.session_limit,
        };
        let session = self
            .stores
            .sessions
            .open_session(Write::new(now, open).by(context))
            .await?;
        Ok((ust, session))
    }
}
