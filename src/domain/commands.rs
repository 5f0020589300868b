//! Store writes: every write is one command in one [`Write`] envelope. Reads take plain
//! arguments.

use std::time::SystemTime;

use super::{
    EndSessions, LoginRecord, NewAttribute, NewSession, Owner, SessionId, SessionLimit,
    SessionSelector, UserId, UserPatch,
    events::{EventContext, EventType, NewEvent, SessionEndReason},
};

/// One write: a command, the time it happens (the injectable clock's; expiry is decided by
/// it) and who makes it. Each store derives the events of the command from what it did and
/// inserts them, stamped with `now` and `context`, in the write's own transaction: never a
/// second, non-atomic call.
#[derive(Clone, Debug)]
pub struct Write<C> {
    pub now: SystemTime,
    pub command: C,
    pub context: EventContext,
}

impl<C> Write<C> {
    /// A write with no actor (the background sweep); see [`Write::by`].
    pub fn new(now: SystemTime, command: C) -> Self {
        Self {
            now,
            command,
            context: EventContext::default(),
        }
    }

    /// The same write made by the given call.
    pub fn by(mut self, context: EventContext) -> Self {
        self.context = context;
        self
    }
}

/// Patches a user and ends the chosen sessions of it, in one transaction.
#[derive(Clone, Debug)]
pub struct UpdateUser {
    pub id: UserId,
    pub patch: UserPatch,
    pub end_sessions: EndSessions,
}

/// Deletes a user with its sessions and all their attributes; the sessions go first, at most
/// `batch` per statement.
#[derive(Clone, Copy, Debug)]
pub struct DeleteUser {
    pub id: UserId,
    pub batch: usize,
}

/// Opening a session in one transaction: insert it, give it attributes, end the session it
/// replaces (rotation on login, the reverse on logout), record a login and keep the user
/// within its session limit.
#[derive(Clone, Debug)]
pub struct OpenSession {
    pub new: NewSession,
    pub attributes: Vec<NewAttribute>,
    pub replaces: Option<SessionId>,
    /// Set `last_login_at` of the session's user and, when given, its new password (which
    /// ends the user's other sessions).
    pub login: Option<LoginRecord>,
    /// A new guest session is refused while the store holds this many guest sessions.
    pub max_guest_sessions: usize,
    /// A user's session: counted against the user's live sessions, under the user's lock,
    /// after the replaced session and (with a new password) the other sessions have ended.
    pub session_limit: Option<SessionLimit>,
}

/// Moves a live session's expiry; its renewal time becomes the write's `now`.
#[derive(Clone, Copy, Debug)]
pub struct RenewSession {
    pub id: SessionId,
    pub expires_at: SystemTime,
}

/// Deletes one session and its attributes. Records `session.ended` with `reason` (and, for
/// a logout, `logout`) if it was there.
#[derive(Clone, Copy, Debug)]
pub struct DeleteSession {
    pub id: SessionId,
    pub reason: SessionEndReason,
}

/// Deletes every selected session, expired or not, at most `batch` per statement.
#[derive(Clone, Copy, Debug)]
pub struct DeleteSessions {
    pub selector: SessionSelector,
    pub batch: usize,
}

/// Deletes what expired at the write's `now`, at most `batch` rows per statement: sessions,
/// attributes, the failed-login counters `throttle` says are forgotten, and events older
/// than `event_retention`.
#[derive(Clone, Copy, Debug)]
pub struct PurgeExpired {
    pub batch: usize,
    pub throttle: super::ThrottleLimits,
    pub event_retention: std::time::Duration,
}

impl PurgeExpired {
    /// Events recorded before this are past their retention at `now`; `None` while the
    /// retention reaches back before the epoch.
    pub fn events_before(&self, now: SystemTime) -> Option<SystemTime> {
        now.checked_sub(self.event_retention)
    }
}

/// Upserts an owner's attributes, all or none, within `max_per_owner` live ones holding at
/// most `max_bytes_per_owner` bytes of values.
#[derive(Clone, Debug)]
pub struct SetAttributes {
    pub owner: Owner,
    pub items: Vec<NewAttribute>,
    pub max_per_owner: usize,
    pub max_bytes_per_owner: usize,
}

/// Deletes an owner's attributes by name.
#[derive(Clone, Debug)]
pub struct DeleteAttributes {
    pub owner: Owner,
    pub names: Vec<String>,
}

/// Sets a live attribute's expiry (`None`: never).
#[derive(Clone, Debug)]
pub struct SetAttributeExpiry {
    pub owner: Owner,
    pub name: String,
    pub expires_at: Option<SystemTime>,
}

/// Claims one password check for a username key and, when the caller reported one, a client
/// address: counts it as a failure of both unless either is locked out (then nothing is
/// counted). The claim is made before the password is hashed.
#[derive(Clone, Debug)]
pub struct ClaimLogin {
    /// `Username::key()`: unknown usernames are counted like real ones.
    pub user_key: String,
    pub address: Option<String>,
    pub limits: super::ThrottleLimits,
}

/// The password was right (or a super-user unlocked the user): forgets the user's failures
/// and lockout history, and gives back the address's place an admitted claim took.
#[derive(Clone, Debug)]
pub struct ForgetLoginFailures {
    pub user_key: String,
    pub address: Option<super::AddressClaim>,
}

// The events of each command, shared by both stores so they record the same. Where an event
// names what the store found (the sessions a statement deleted), it is a template: the store
// fills in each session and its user.

impl UpdateUser {
    /// What the patch does, one event per kind of change: `user.updated` (with the fields it
    /// sets), `user.locked` / `user.unlocked`, `user.approved` / `user.rejected`,
    /// `password.changed`.
    pub fn events(&self) -> Vec<NewEvent> {
        let patch = &self.patch;
        let user = Some(self.id);
        let mut events = Vec::new();
        let mut fields = Vec::new();
        for (name, set) in [
            ("email", patch.email.is_some()),
            ("display_name", patch.display_name.is_some()),
            ("first_name", patch.first_name.is_some()),
            ("middle_name", patch.middle_name.is_some()),
            ("last_name", patch.last_name.is_some()),
            ("is_super_user", patch.is_super_user.is_some()),
            (
                "approval_status",
                patch.approval_status == Some(super::ApprovalStatus::Pending),
            ),
            (
                "password_must_change",
                patch.password_must_change.is_some() && patch.password_hash.is_none(),
            ),
            (
                "password_expiry",
                patch.password_expiry.is_some() && patch.password_hash.is_none(),
            ),
        ] {
            if set {
                fields.push(serde_json::Value::from(name));
            }
        }
        if !fields.is_empty() {
            events.push(
                NewEvent::new(EventType::UserUpdated)
                    .user(user)
                    .detail("fields", fields),
            );
        }
        match patch.is_locked {
            Some(true) => events.push(NewEvent::new(EventType::UserLocked).user(user)),
            Some(false) => events.push(NewEvent::new(EventType::UserUnlocked).user(user)),
            None => {}
        }
        match patch.approval_status {
            Some(super::ApprovalStatus::Approved) => {
                events.push(NewEvent::new(EventType::UserApproved).user(user));
            }
            Some(super::ApprovalStatus::Rejected) => {
                events.push(NewEvent::new(EventType::UserRejected).user(user));
            }
            _ => {}
        }
        if patch.password_hash.is_some() {
            events.push(NewEvent::new(EventType::PasswordChanged).user(user).detail(
                "must_change",
                patch.password_must_change.unwrap_or_default(),
            ));
        }
        events
    }
}

/// The template of `session.ended` for the sessions a user's change ends.
pub fn user_changed_template() -> Vec<NewEvent> {
    vec![NewEvent::new(EventType::SessionEnded).reason(SessionEndReason::UserChanged.as_str())]
}

/// The user a write created.
pub fn user_created(user: &super::User) -> NewEvent {
    NewEvent::new(EventType::UserCreated)
        .user(Some(user.id))
        .detail("is_super_user", user.is_super_user)
}

impl DeleteUser {
    /// `user.deleted`, with how many live sessions ended with it.
    pub fn event(&self, sessions_ended: u64) -> NewEvent {
        NewEvent::new(EventType::UserDeleted)
            .user(Some(self.id))
            .detail("sessions_ended", sessions_ended)
    }
}

impl DeleteSession {
    /// Templates for the deleted session: `session.ended`, after `logout` for a logout.
    pub fn templates(&self) -> Vec<NewEvent> {
        let ended = NewEvent::new(EventType::SessionEnded).reason(self.reason.as_str());
        match self.reason {
            SessionEndReason::Logout => vec![NewEvent::new(EventType::Logout), ended],
            _ => vec![ended],
        }
    }
}

impl DeleteSessions {
    /// The one event of a bulk revocation, before its count (`details.count`, the live
    /// sessions it ended) is known: the selector and, for one user's sessions, the user.
    pub fn summary(&self) -> NewEvent {
        let event = NewEvent::new(EventType::SessionsRevoked);
        match self.selector {
            SessionSelector::User(user) => event.user(Some(user)).detail("selector", "user"),
            SessionSelector::OtherSessionsOf { user, keep } => event
                .user(Some(user))
                .detail("selector", "other_sessions")
                .detail("kept_session_id", keep.to_string()),
            SessionSelector::Guests => event.detail("selector", "guests"),
            SessionSelector::All => event.detail("selector", "all"),
        }
    }
}

impl OpenSession {
    /// Whether this opening is a logout's: a guest session that replaces the session that
    /// logs out, to carry its persistent attributes.
    fn is_logout(&self) -> bool {
        self.new.session.user_id.is_none() && self.replaces.is_some()
    }

    /// Templates for the replaced session, if any: rotated by a login, or ended by a logout.
    pub fn replaced_templates(&self) -> Vec<NewEvent> {
        if self.is_logout() {
            vec![
                NewEvent::new(EventType::Logout),
                NewEvent::new(EventType::SessionEnded).reason(SessionEndReason::Logout.as_str()),
            ]
        } else {
            vec![NewEvent::new(EventType::SessionEnded).reason(SessionEndReason::Rotated.as_str())]
        }
    }

    /// Templates for the user's sessions the limit ends.
    pub fn limit_templates() -> Vec<NewEvent> {
        vec![NewEvent::new(EventType::SessionEnded).reason(SessionEndReason::SessionLimit.as_str())]
    }

    /// The opening's own events: `login.succeeded` (and `password.changed` with a new
    /// password) for a user's session, `session.created` for a guest's.
    pub fn opened_events(&self) -> Vec<NewEvent> {
        let session = &self.new.session;
        let Some(user) = session.user_id else {
            return vec![
                NewEvent::new(EventType::SessionCreated)
                    .session(Some(session.id))
                    .detail("guest", true),
            ];
        };
        let mut events = vec![
            NewEvent::new(EventType::LoginSucceeded)
                .user(Some(user))
                .session(Some(session.id)),
        ];
        if let Some(change) = self
            .login
            .as_ref()
            .and_then(|login| login.new_password.as_ref())
        {
            events.push(
                NewEvent::new(EventType::PasswordChanged)
                    .user(Some(user))
                    .detail("at_login", true)
                    .detail("must_change", change.password_must_change),
            );
        }
        events
    }
}

impl PurgeExpired {
    /// The template of `session.expired` for each session the sweep deletes.
    pub fn templates() -> Vec<NewEvent> {
        vec![NewEvent::new(EventType::SessionExpired)]
    }
}

impl ClaimLogin {
    /// The template of `user.locked_out` for the claim that starts a user's lockout
    /// (`details.lockout_secs`, how long it lasts, is the store's to add).
    pub fn lockout_template() -> Vec<NewEvent> {
        vec![NewEvent::new(EventType::UserLockedOut).reason("TOO_MANY_ATTEMPTS")]
    }
}

/// Signs a user up: inserts the (unconfirmed) user and its confirmation token in one
/// transaction, or neither when the username is taken.
#[derive(Clone, Debug)]
pub struct SignUp {
    pub record: super::UserRecord,
    pub confirmation: super::NewAccountToken,
}

/// Issues a password reset token under a username key, replacing the key's older reset
/// token, and bound to the password of the key's user if that user may reset its password
/// (confirmed, approved, not locked). For any other key the token is written all the same,
/// bound to no password, and never redeems: one write whether or not the user exists, so a
/// request for an unknown name does the same work. Once the bound password changes, by any
/// path, the token no longer redeems.
#[derive(Clone, Debug)]
pub struct IssuePasswordReset {
    /// `Username::key()`.
    pub user_key: String,
    pub token: super::NewAccountToken,
}

/// Consumes a live token of the redemption's purpose and applies the redemption, atomically.
#[derive(Clone, Debug)]
pub struct RedeemAccountToken {
    pub hash: super::TokenHash,
    pub redemption: super::Redemption,
}

impl SignUp {
    /// `signup.requested` of the user it creates.
    pub fn event(&self) -> NewEvent {
        let user = &self.record.user;
        NewEvent::new(EventType::SignupRequested)
            .user(Some(user.id))
            .detail("approval_status", user.approval_status.as_str())
    }
}

impl IssuePasswordReset {
    /// The template of `password.reset_requested`, recorded for every request: the store
    /// fills in the user the name belongs to, none for an unknown name. So the log shows
    /// requests for unknown names too, and every request costs the same write.
    pub fn templates() -> Vec<NewEvent> {
        vec![NewEvent::new(EventType::PasswordResetRequested)]
    }
}

impl RedeemAccountToken {
    /// The template of the redemption's event, `signup.confirmed` or `password.reset`; the
    /// store fills in the user. A reset also ends the user's sessions
    /// ([`user_changed_template`]).
    pub fn templates(&self) -> Vec<NewEvent> {
        let kind = match self.redemption {
            super::Redemption::ConfirmSignUp => EventType::SignupConfirmed,
            super::Redemption::ResetPassword(_) => EventType::PasswordReset,
        };
        vec![NewEvent::new(kind)]
    }
}

/// Stores a pending TOTP secret for a user without TOTP, replacing a pending one.
#[derive(Clone, Debug)]
pub struct BeginTotp {
    pub user: UserId,
    pub secret: super::SealedSecret,
}

/// Enables TOTP with the pending `secret` (only if it is still the pending one: a later
/// `BeginTotp` replaced it otherwise), `step` as its last accepted step, and these recovery
/// codes in place of any earlier ones.
#[derive(Clone, Debug)]
pub struct EnableTotp {
    pub user: UserId,
    pub secret: super::SealedSecret,
    pub step: u64,
    pub recovery_codes: Vec<super::RecoveryCodeHash>,
}

/// Accepts a code of time step `step` for a user with TOTP enabled, if no code of this or a
/// later step was accepted before.
#[derive(Clone, Copy, Debug)]
pub struct UseTotpStep {
    pub user: UserId,
    pub step: u64,
}

/// Accepts one of the user's recovery codes, which is used up by it.
#[derive(Clone, Copy, Debug)]
pub struct UseRecoveryCode {
    pub user: UserId,
    pub code: super::RecoveryCodeHash,
}

/// Disables TOTP: the secret (pending or enabled) and the recovery codes go.
#[derive(Clone, Copy, Debug)]
pub struct DisableTotp {
    pub user: UserId,
}

impl EnableTotp {
    /// `totp.enabled` of the user.
    pub fn event(&self) -> NewEvent {
        NewEvent::new(EventType::TotpEnabled).user(Some(self.user))
    }
}

impl DisableTotp {
    /// `totp.disabled` of the user, recorded only when TOTP was enabled.
    pub fn event(&self) -> NewEvent {
        NewEvent::new(EventType::TotpDisabled).user(Some(self.user))
    }
}
