//! Store writes: every write is one command in one [`Write`] envelope. Reads take plain
//! arguments.

use std::time::SystemTime;

use super::{
    EndSessions, LoginRecord, NewAttribute, NewSession, Owner, SessionId, SessionLimit,
    SessionSelector, UserId, UserPatch,
};

/// One write: a command and the time it happens (the injectable clock's; expiry is decided by
/// it). The audit outbox will add the events the write records here, so that each store
/// inserts them in the write's own transaction instead of a second, non-atomic call.
#[derive(Clone, Debug)]
pub struct Write<C> {
    pub now: SystemTime,
    pub command: C,
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

/// Deletes one session and its attributes.
#[derive(Clone, Copy, Debug)]
pub struct DeleteSession {
    pub id: SessionId,
}

/// Deletes every selected session, expired or not, at most `batch` per statement.
#[derive(Clone, Copy, Debug)]
pub struct DeleteSessions {
    pub selector: SessionSelector,
    pub batch: usize,
}

/// Deletes what expired at the write's `now`, at most `batch` rows per statement: sessions,
/// attributes, and the failed-login counters `throttle` says are forgotten.
#[derive(Clone, Copy, Debug)]
pub struct PurgeExpired {
    pub batch: usize,
    pub throttle: super::ThrottleLimits,
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
