//! Login and logout: credentials, rotation of the presented session, and what survives
//! either way.

use crate::domain::Secret;
use std::time::SystemTime;

use super::{Authentication, ClientInfo, ServiceError, ServiceResult, Sso, passwords::NewPassword};
use crate::domain::{
    ApprovalStatus, DeleteSession, EventContext, EventType, LoginRecord, NewAttribute, NewEvent,
    Owner, Session, SessionEndReason, SessionId, User, UserId, UserRecord, Username, Write,
};

/// Where a session's holder calls from, as it reported when the session opened.
fn session_client(session: &Session) -> ClientInfo {
    ClientInfo {
        current_app: session.current_app.clone(),
        remote_addr: session.remote_addr.clone(),
        user_agent: session.user_agent.clone(),
    }
}

/// A login attempt; its `Debug` leaves the passwords out.
#[derive(Debug)]
pub struct LoginRequest {
    pub username: String,
    pub password: Secret,
    pub client: ClientInfo,
    pub new_password: Option<Secret>,
    /// A TOTP code or a recovery code, for a user with TOTP enabled.
    pub totp_code: Option<Secret>,
    /// The metadata's UST; a live session there (a guest's or a user's) is rotated into the
    /// new session.
    pub rotate: Authentication,
}

/// A login's result; its `Debug` leaves the UST out.
pub struct LoginOutcome {
    pub ust: String,
    pub session: Session,
    pub user: User,
    pub password_expiry_warning: bool,
}

impl std::fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginOutcome")
            .field("ust", &"[redacted]")
            .field("session", &self.session)
            .field("user", &self.user)
            .field("password_expiry_warning", &self.password_expiry_warning)
            .finish()
    }
}

impl Sso {
    pub async fn login(&self, request: LoginRequest) -> ServiceResult<LoginOutcome> {
        let client = request.client.clone();
        // The user the username names, once known: a failure's event names it.
        let mut subject = None;
        let outcome = self.try_login(request, &mut subject).await;
        let error = match outcome {
            Ok(outcome) => {
                metrics::counter!("ssod_logins_total", "outcome" => "success").increment(1);
                return Ok(outcome);
            }
            Err(error) => error,
        };
        metrics::counter!(
            "ssod_logins_total",
            "outcome" => "failure",
            "reason" => error.reason()
        )
        .increment(1);
        // The audit trail keeps the true reason; the client is told only what the policy
        // reveals.
        if !matches!(
            error,
            ServiceError::StoreUnavailable(_)
                | ServiceError::Internal(_)
                | ServiceError::Overloaded
        ) {
            let event = NewEvent::new(EventType::LoginFailed)
                .user(subject)
                .reason(error.reason());
            self.record_act(self.context(None, Some(&client)), vec![event])
                .await?;
        }
        let hidden = matches!(
            error,
            ServiceError::UserLocked
                | ServiceError::UserNotConfirmed
                | ServiceError::UserNotApproved
                | ServiceError::PasswordExpired
                | ServiceError::TooManyAttempts { .. }
        );
        Err(if hidden && !self.policy.reveal_login_failures {
            ServiceError::InvalidCredentials
        } else {
            error
        })
    }

    async fn try_login(
        &self,
        request: LoginRequest,
        subject: &mut Option<UserId>,
    ) -> ServiceResult<LoginOutcome> {
        self.check_client(&request.client)?;
        let limits = &self.policy.limits;
        // Refused before any work: no user can have such a name or password, so answering at
        // once reveals nothing about accounts.
        let username = Username::parse(&request.username, limits.max_username_chars).ok();
        let Some(username) =
            username.filter(|_| request.password.chars().count() <= limits.max_password_chars)
        else {
            return Err(ServiceError::InvalidCredentials);
        };
        let now = self.clock.now();
        let record = self.stores.users.user_by_username(&username).await?;
        *subject = record.as_ref().map(|record| record.user.id);
        // A hashing place first, then the claim: an attempt refused as overloaded has claimed
        // nothing, and an admitted claim is sure of its hash.
        let place = self.passwords.reserve()?;
        let address = self.claim_login(&username, &request.client, now).await?;
        let hash = record.as_ref().map(|record| record.password_hash.as_str());
        let matches = self
            .passwords
            .verify_in(place, &request.password, hash)
            .await?;
        // A wrong password (or an unknown user) leaves its claim counted as a failure.
        let Some(UserRecord {
            mut user,
            password_hash: verified_hash,
        }) = record.filter(|_| matches)
        else {
            return Err(ServiceError::InvalidCredentials);
        };
        let changes_password = request.new_password.is_some();
        match (user.totp_enabled, &request.totp_code) {
            (false, None) => {
                self.forget_login_failures(&username, address, now).await?;
                self.check_may_log_in(&user, changes_password, now)?;
            }
            (false, Some(_)) => {
                self.forget_login_failures(&username, address, now).await?;
                return Err(ServiceError::invalid(
                    "totp_code",
                    "the user has no TOTP enrolment",
                ));
            }
            // The claim stays counted as a failure until a code proves the second factor:
            // forgetting failures on a right password alone would let someone who knows it
            // reset the count between guesses of the code.
            (true, None) => return Err(ServiceError::TotpRequired),
            (true, Some(code)) => {
                // Refusals first, so a recovery code is not used up by a login that fails.
                self.check_may_log_in(&user, changes_password, now)?;
                self.use_second_factor(&user, code, now).await?;
                self.forget_login_failures(&username, address, now).await?;
            }
        }

        let new_password = match &request.new_password {
            Some(new_password) => {
                if new_password.as_str() == request.password.as_str() {
                    return Err(ServiceError::too_weak(
                        "new_password",
                        "the new password must differ from the old one",
                    ));
                }
                Some(
                    self.password_change(
                        NewPassword {
                            field: "new_password",
                            password: new_password,
                            user: &user,
                            current_hash: Some(&verified_hash),
                        },
                        false,
                        None,
                        now,
                    )
                    .await?,
                )
            }
            None => None,
        };
        // Whoever's session the browser presents (a guest's, this user's or another user's),
        // it ends here: one browser, one session, under a new key.
        let rotated = match &request.rotate {
            Authentication::Valid(caller) => Some(caller.session.id),
            _ => None,
        };
        let session = self.new_session(Some(user.id), request.client, now);
        let attributes = match rotated {
            Some(rotated) => {
                self.carry_attributes(rotated, session.id, &self.policy.persistent_on_login, now)
                    .await?
            }
            None => Vec::new(),
        };
        let login = LoginRecord {
            verified_hash,
            new_password: new_password.clone(),
        };
        let context = self.context(None, Some(&session_client(&session)));
        let opened = self
            .open_session(
                session.clone(),
                attributes,
                rotated,
                Some(login.clone()),
                now,
                context.clone(),
            )
            .await;
        let (ust, session) = match opened {
            // The presented session ended meanwhile: there is nothing to rotate.
            Err(ServiceError::SessionNotFound) if rotated.is_some() => {
                self.open_session(session, Vec::new(), None, Some(login), now, context)
                    .await?
            }
            other => other?,
        };
        user.last_login_at = Some(now);
        if let Some(change) = new_password {
            user.password_must_change = change.password_must_change;
            user.password_expiry = change.password_expiry;
        }
        let password_expiry_warning = user
            .password_expiry
            .is_some_and(|expiry| expiry <= now + self.policy.password_expiry_warning);
        tracing::info!(user_id = %user.id, session_id = %session.id, "login");
        Ok(LoginOutcome {
            ust,
            session,
            user,
            password_expiry_warning,
        })
    }

    /// Refusals after a correct password. Locked, unconfirmed, unapproved and
    /// expired-password users get invalid credentials unless the policy says to reveal why
    /// ([`Sso::login`] decides).
    fn check_may_log_in(
        &self,
        user: &User,
        changes_password: bool,
        now: SystemTime,
    ) -> ServiceResult<()> {
        let refusal = if user.is_locked {
            Some(ServiceError::UserLocked)
        } else if !user.is_confirmed {
            Some(ServiceError::UserNotConfirmed)
        } else if user.approval_status != ApprovalStatus::Approved {
            Some(ServiceError::UserNotApproved)
        } else if user.password_expired(now) && !changes_password {
            Some(ServiceError::PasswordExpired)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tracing::info!(user_id = %user.id, reason = refusal.reason(), "login refused");
            return Err(refusal);
        }
        if user.password_must_change && !changes_password {
            return Err(ServiceError::PasswordMustChange);
        }
        Ok(())
    }

    /// Ends the caller's session. Where persistent-on-logout attributes are configured and the
    /// session had any, a new guest session carries them and its UST is returned. Answers OK
    /// for a missing, unknown or expired UST, but not when the store cannot be asked: the
    /// client must not believe a session ended that did not.
    pub async fn logout(&self, authentication: &Authentication) -> ServiceResult<Option<String>> {
        let caller = match authentication {
            Authentication::Valid(caller) => caller,
            Authentication::Unavailable(cause) => {
                return Err(ServiceError::StoreUnavailable(cause.clone()));
            }
            Authentication::Missing | Authentication::Invalid => return Ok(None),
        };
        let now = self.clock.now();
        let old = &caller.session;
        let guest = self.new_session(None, session_client(old), now);
        let attributes = self
            .carry_attributes(old.id, guest.id, &self.policy.persistent_on_logout, now)
            .await?;
        let context = self.context(Some(caller), None);
        if attributes.is_empty() {
            self.end_session(old.id, now, context).await?;
            return Ok(None);
        }
        match self
            .open_session(guest, attributes, Some(old.id), None, now, context.clone())
            .await
        {
            Ok((ust, _)) => Ok(Some(ust)),
            // Ended meanwhile (expired or deleted): logging out is done.
            Err(ServiceError::SessionNotFound) => Ok(None),
            // No room for the guest session: the session still ends, and the refusal tells
            // the client that what it carried was dropped.
            Err(ServiceError::TooManyGuestSessions) => {
                self.end_session(old.id, now, context).await?;
                Err(ServiceError::TooManyGuestSessions)
            }
            Err(error) => Err(error),
        }
    }

    /// Ends a session by logging it out.
    async fn end_session(
        &self,
        id: SessionId,
        now: SystemTime,
        context: EventContext,
    ) -> ServiceResult<()> {
        let command = DeleteSession {
            id,
            reason: SessionEndReason::Logout,
        };
        self.stores
            .sessions
            .delete_session(Write::new(now, command).by(context))
            .await?;
        Ok(())
    }

    /// Reads the named attributes of a session that is about to be replaced and re-seals
    /// them for the new session (ciphertexts are bound to their owner). One that cannot be
    /// re-sealed (its key left the ring) is dropped with a warning: losing it is better than
    /// failing every login or logout of that browser, or keeping its session alive.
    async fn carry_attributes(
        &self,
        from: SessionId,
        to: SessionId,
        names: &[String],
        now: SystemTime,
    ) -> ServiceResult<Vec<NewAttribute>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self
            .stores
            .attributes
            .get_attributes(Owner::Session(from), Some(names), now)
            .await?;
        let mut carried = Vec::with_capacity(stored.len());
        for attribute in stored {
            let name = attribute.name.clone();
            match self.reseal(attribute, Owner::Session(from), Owner::Session(to)) {
                Ok(attribute) => carried.push(attribute),
                Err(error) => tracing::warn!(
                    session_id = %from,
                    attribute = %name,
                    error = %error,
                    "persistent attribute dropped: it cannot be re-sealed"
                ),
            }
        }
        Ok(carried)
    }
}
