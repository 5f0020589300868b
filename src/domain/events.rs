//! Audit events: what a write records beside its change, and what the event log returns.
//!
//! A write carries an [`EventContext`] (who acts, from where, under which cid) in its
//! [`super::Write`] envelope; each store derives the events of a command from what it did
//! (one `session.ended` per session it deleted, say) and inserts them in the write's own
//! transaction. Details never hold a secret: ids, counts, reasons and field names only.
//!
//! A new flow records its events the same way: the service stamps the write
//! (`Write::new(now, command).by(self.context(caller, client))`); the command says what it
//! records (a method in `commands.rs`, shared by both stores); the memory store passes them
//! to its log under its lock, and the PostgreSQL store folds them into the write's statement
//! with `sql::events::listed!` (events it knows) or `for_rows!` (one per row a CTE returns),
//! the records made by `postgres::events::write_records`. An act that changes nothing goes
//! through `Sso::record_act` instead.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{SessionId, UserId};

/// The event types: their spelling is the contract's (`Event.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    LoginSucceeded,
    LoginFailed,
    Logout,
    SessionCreated,
    SessionEnded,
    SessionExpired,
    SessionsRevoked,
    SessionRead,
    UserCreated,
    UserUpdated,
    UserDeleted,
    UserLocked,
    UserUnlocked,
    UserApproved,
    UserRejected,
    UserLockedOut,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    SignupRequested,
    SignupConfirmed,
    TotpEnabled,
    TotpDisabled,
}

impl EventType {
    pub const ALL: [EventType; 23] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::Logout,
        Self::SessionCreated,
        Self::SessionEnded,
        Self::SessionExpired,
        Self::SessionsRevoked,
        Self::SessionRead,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeleted,
        Self::UserLocked,
        Self::UserUnlocked,
        Self::UserApproved,
        Self::UserRejected,
        Self::UserLockedOut,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::SignupRequested,
        Self::SignupConfirmed,
        Self::TotpEnabled,
        Self::TotpDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::Logout => "logout",
            Self::SessionCreated => "session.created",
            Self::SessionEnded => "session.ended",
            Self::SessionExpired => "session.expired",
            Self::SessionsRevoked => "sessions.revoked",
            Self::SessionRead => "session.read",
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserDeleted => "user.deleted",
            Self::UserLocked => "user.locked",
            Self::UserUnlocked => "user.unlocked",
            Self::UserApproved => "user.approved",
            Self::UserRejected => "user.rejected",
            Self::UserLockedOut => "user.locked_out",
            Self::PasswordChanged => "password.changed",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset => "password.reset",
            Self::SignupRequested => "signup.requested",
            Self::SignupConfirmed => "signup.confirmed",
            Self::TotpEnabled => "totp.enabled",
            Self::TotpDisabled => "totp.disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Why a session ended (`session.ended`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEndReason {
    /// Its holder logged out.
    Logout,
    /// Deleted by its user or a super-user.
    Revoked,
    /// Replaced by a new session at login (or by a guest session at logout).
    Rotated,
    /// Ended to keep its user within the session limit.
    SessionLimit,
    /// Its user was locked, rejected, deleted, or changed password.
    UserChanged,
}

impl SessionEndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Rotated => "rotated",
            Self::SessionLimit => "session_limit",
            Self::UserChanged => "user_changed",
        }
    }
}

/// Who acts and from where: the same for every event of one call. Empty for the
/// background sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventContext {
    /// The call's `x-request-id`.
    pub cid: String,
    pub actor_user: Option<UserId>,
    pub actor_session: Option<SessionId>,
    pub current_app: String,
    pub remote_addr: String,
    pub user_agent: String,
}

/// One event to record, apart from its context and time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    /// The user it is about.
    pub user: Option<UserId>,
    /// The session it is about.
    pub session: Option<SessionId>,
    pub reason: String,
    pub details: Map<String, Value>,
}

impl NewEvent {
    pub fn new(kind: EventType) -> Self {
        Self {
            kind,
            user: None,
            session: None,
            reason: String::new(),
            details: Map::new(),
        }
    }

    pub fn user(mut self, user: Option<UserId>) -> Self {
        self.user = user;
        self
    }

    pub fn session(mut self, session: Option<SessionId>) -> Self {
        self.session = session;
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// `session.ended` of a session (of `user`, none for a guest) for `reason`.
    pub fn session_ended(
        session: SessionId,
        user: Option<UserId>,
        reason: SessionEndReason,
    ) -> Self {
        Self::new(EventType::SessionEnded)
            .session(Some(session))
            .user(user)
            .reason(reason.as_str())
    }
}

/// An event's position in the log: the writing transaction's number, then the event's own
/// sequence number. Shown as two fixed-width decimal numbers, so later ids compare greater
/// as strings too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub transaction: u64,
    pub sequence: u64,
}

impl EventId {
    pub fn parse(text: &str) -> Option<Self> {
        let (transaction, sequence) = text.split_once('-')?;
        let digits = |part: &str| {
            (part.len() == 20 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        Some(Self {
            transaction: digits(transaction)?,
            sequence: digits(sequence)?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:020}-{:020}", self.transaction, self.sequence)
    }
}

/// A recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub time: SystemTime,
    pub context: EventContext,
    pub event: NewEvent,
}

/// A filter and page of the event log, in id order.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only events after this one.
    pub after: Option<EventId>,
    /// Empty: every type.
    pub types: Vec<EventType>,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    /// At or after.
    pub start: Option<SystemTime>,
    /// Before.
    pub end: Option<SystemTime>,
    pub limit: usize,
}

impl EventQuery {
    pub fn matches(&self, event: &Event) -> bool {
        self.after.is_none_or(|after| event.id > after)
            && (self.types.is_empty() || self.types.contains(&event.event.kind))
            && self.user.is_none_or(|user| event.event.user == Some(user))
            && self
                .session
                .is_none_or(|session| event.event.session == Some(session))
            && self.start.is_none_or(|start| event.time >= start)
            && self.end.is_none_or(|end| event.time < end)
    }
}

/// What a watcher reads next: settled events after its cursor, oldest first. `pending` says
/// that later events exist that are not settled yet (their transactions, or older ones, may
/// still be open), so the watcher should look again soon even without a wake-up.
#[derive(Clone, Debug, Default)]
pub struct EventFeed {
    pub events: Vec<Event>,
    pub pending: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_as_strings_like_as_numbers() {
        let ids = [
            EventId {
                transaction: 9,
                sequence: 100,
            },
            EventId {
                transaction: 10,
                sequence: 2,
            },
            EventId {
                transaction: 10,
                sequence: 11,
            },
        ];
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        for id in ids {
            assert_eq!(EventId::parse(&id.to_string()), Some(id));
        }
        assert_eq!(EventId::parse("1-2"), None);
        assert_eq!(EventId::parse(""), None);
    }

    #[test]
    fn types_parse_back() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("nope"), None);
    }
}
