//! Domain types: what the service layer reasons about. No tonic, no SQL.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

pub mod accounts;
pub mod commands;
pub mod credentials;
pub mod events;
pub mod limits;
pub mod throttle;
pub mod username;

pub use accounts::{AccountTokenPurpose, NewAccountToken, Redemption, SignedUp};
pub use commands::{BeginTotp, DisableTotp, EnableTotp, UseRecoveryCode, UseTotpStep};
pub use commands::{
    ClaimLogin, ForgetLoginFailures, IssuePasswordReset, RedeemAccountToken, SignUp,
};
pub use commands::{
    DeleteAttributes, DeleteSession, DeleteSessions, DeleteUser, OpenSession, PurgeExpired,
    RenewSession, SetAttributeExpiry, SetAttributes, UpdateUser, Write,
};
pub use credentials::{RecoveryCodeHash, SealedSecret, TotpRecord};
pub use events::{
    Event, EventContext, EventFeed, EventId, EventQuery, EventType, NewEvent, SessionEndReason,
};
pub use limits::Limits;
pub use throttle::{AddressClaim, LoginClaim, ThrottleKind, ThrottleLimits};
pub use username::{Username, UsernameError};

/// A user's id: UUIDv7, so ids sort by creation and index well.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub Uuid);

/// A session's id: UUIDv7. Unlike the UST it is not a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub Uuid);

impl UserId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl SessionId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a super-user has let a user in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    Approved,
    Rejected,
    Pending,
}

impl ApprovalStatus {
    /// The stable spelling the stores persist.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Pending => "pending",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approved" => Some(Self::Approved),
            "rejected" => Some(Self::Rejected),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// A user account as clients see it: never the password hash.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub profile: Profile,
    pub is_super_user: bool,
    pub is_locked: bool,
    pub approval_status: ApprovalStatus,
    pub password_must_change: bool,
    pub password_expiry: Option<SystemTime>,
    pub created_at: SystemTime,
    pub last_login_at: Option<SystemTime>,
    /// False only between sign-up and its confirmation: such a user may not log in.
    pub is_confirmed: bool,
    /// A confirmed TOTP enrolment: logins need a code as well as the password.
    pub totp_enabled: bool,
}

impl User {
    pub fn password_expired(&self, now: SystemTime) -> bool {
        self.password_expiry.is_some_and(|expiry| expiry <= now)
    }

    /// Who may be sent a password reset token: a user who could log in with a password (an
    /// expired one included), so never an unconfirmed, unapproved or locked one.
    pub fn may_reset_password(&self) -> bool {
        self.is_confirmed && !self.is_locked && self.approval_status == ApprovalStatus::Approved
    }

    /// Whether this user's sessions still authenticate.
    pub fn may_authenticate(&self, now: SystemTime) -> bool {
        !self.is_locked
            && self.approval_status == ApprovalStatus::Approved
            && !self.password_expired(now)
    }
}

impl UserPatch {
    /// Locking or un-approving a user takes its access away.
    pub fn revokes_access(&self) -> bool {
        self.is_locked == Some(true)
            || self
                .approval_status
                .is_some_and(|status| status != ApprovalStatus::Approved)
    }

    /// Revoking access or requiring a password change ends all of the user's sessions in the
    /// same transaction: a must-change user has no session until it has chosen a password.
    pub fn ends_sessions(&self) -> bool {
        self.revokes_access() || self.password_must_change == Some(true)
    }
}

/// The fields a user may change about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub email: String,
    pub display_name: String,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
}

/// A user together with its password hash, as the store keeps it; never leaves the service.
#[derive(Clone)]
pub struct UserRecord {
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A change to a user: `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub is_super_user: Option<bool>,
    pub is_locked: Option<bool>,
    pub approval_status: Option<ApprovalStatus>,
    pub password_hash: Option<String>,
    /// With `password_hash`: how many replaced hashes the user keeps in its password history,
    /// the one this patch replaces first; older ones are deleted in the same write.
    pub keep_password_history: usize,
    pub password_must_change: Option<bool>,
    pub password_expiry: Option<Option<SystemTime>>,
}

/// Password hashes never reach a log line, even through `{:?}`.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field(
                "profile_changes",
                &(self.email.is_some() || self.display_name.is_some()),
            )
            .field("is_super_user", &self.is_super_user)
            .field("is_locked", &self.is_locked)
            .field("approval_status", &self.approval_status)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("keep_password_history", &self.keep_password_history)
            .field("password_must_change", &self.password_must_change)
            .field("password_expiry", &self.password_expiry)
            .finish()
    }
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange")
            .field("password_hash", &"[redacted]")
            .field("keep_history", &self.keep_history)
            .field("password_must_change", &self.password_must_change)
            .field("password_expiry", &self.password_expiry)
            .finish()
    }
}

/// Which of a user's sessions a user update ends, in the same transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndSessions {
    None,
    All,
    AllBut(SessionId),
    /// All, if the user's password had expired at the write's `now` before the update: its
    /// sessions were unusable, and a new expiry must not make them usable again.
    AllIfPasswordExpired,
}

/// Filter and page of a user listing, ordered by username key ([`Username::key`]) in code
/// point order. Both bounds are keys, folded by [`Username::key_of`] before they reach a
/// store, so every store compares exactly what it indexes.
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    /// Only users whose key starts with this (a key itself: `Username::key_of(prefix)`).
    pub username_prefix: String,
    pub approval_status: Option<ApprovalStatus>,
    /// Only users whose key sorts after this key.
    pub after: Option<String>,
    pub limit: usize,
}

/// One page of users and the number of users that match the filter.
#[derive(Clone, Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total_size: u64,
}

/// A session as clients see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    /// `None` for a guest session.
    pub user_id: Option<UserId>,
    pub current_app: String,
    pub remote_addr: String,
    pub user_agent: String,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    pub last_renewed_at: SystemTime,
}

/// A secret text a caller sent or is sent once (a password, a code, a token): wiped from
/// memory when dropped and `[redacted]` in `Debug`, so a type holding one can derive `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(zeroize::Zeroizing::new(text))
    }
}

impl From<zeroize::Zeroizing<String>> for Secret {
    fn from(text: zeroize::Zeroizing<String>) -> Self {
        Self(text)
    }
}

impl std::ops::Deref for Secret {
    type Target = zeroize::Zeroizing<String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The SHA-256 of a UST: the only form in which a store ever sees a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash([redacted])")
    }
}

/// A session to insert, with the hash of its token.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub session: Session,
    pub token_hash: TokenHash,
}

/// A login to record. It lands only if the user still has the password hash the password was
/// verified against and may still log in (not locked, approved), so a lock or reset that
/// commits during the Argon2 verification is never undone by the login. With a new password
/// it also ends every other session of the user, as any password change does.
#[derive(Clone, Default)]
pub struct LoginRecord {
    pub verified_hash: String,
    pub new_password: Option<PasswordChange>,
}

impl std::fmt::Debug for LoginRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRecord")
            .field("verified_hash", &"[redacted]")
            .field("new_password", &self.new_password)
            .finish()
    }
}

/// A new password, hashed, as the password policy admitted it (`service::passwords`).
#[derive(Clone)]
pub struct PasswordChange {
    pub password_hash: String,
    /// How many replaced hashes the user keeps in its history once this lands (the one it
    /// replaces first): the history the policy checks the next new password against.
    pub keep_history: usize,
    pub password_must_change: bool,
    pub password_expiry: Option<SystemTime>,
}

/// A patch that sets the password and everything that goes with it.
impl From<PasswordChange> for UserPatch {
    fn from(change: PasswordChange) -> Self {
        Self {
            password_hash: Some(change.password_hash),
            keep_password_history: change.keep_history,
            password_must_change: Some(change.password_must_change),
            password_expiry: Some(change.password_expiry),
            ..Self::default()
        }
    }
}

/// A session found by its token, with its user (none for a guest): what authentication needs,
/// read in one query.
#[derive(Clone, Debug)]
pub struct SessionWithUser {
    pub session: Session,
    pub user: Option<User>,
}

/// Which sessions a bulk revocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSelector {
    User(UserId),
    /// A user's sessions but one: "log out my other devices".
    OtherSessionsOf {
        user: UserId,
        keep: SessionId,
    },
    Guests,
    All,
}

/// Whose attributes: a session's or a user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Session(SessionId),
    User(UserId),
}

impl Owner {
    /// Bound into each ciphertext as associated data, so a value moved to another owner or
    /// name fails to decrypt.
    pub fn associated_data(&self, name: &str) -> Vec<u8> {
        let (kind, id) = match self {
            Self::Session(id) => ("session", id.0),
            Self::User(id) => ("user", id.0),
        };
        format!("sso.v1/{kind}/{id}/{name}").into_bytes()
    }
}

/// An attribute value as stored: JSON text, or a sealed ciphertext of it.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredValue {
    Plain(String),
    Sealed { key_id: String, ciphertext: Vec<u8> },
}

impl StoredValue {
    /// The bytes the value takes in the store, as the per-owner byte limit counts them: the
    /// JSON text, or the sealed ciphertext (nonce and tag included).
    pub fn stored_len(&self) -> usize {
        match self {
            Self::Plain(json) => json.len(),
            Self::Sealed { ciphertext, .. } => ciphertext.len(),
        }
    }
}

/// Values never print, plain ones included: a value held in the clear may still be one a
/// client would rather not see in a log, and a plain value about to be sealed is a secret.
impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(text) => f
                .debug_struct("Plain")
                .field("value", &"[redacted]")
                .field("bytes", &text.len())
                .finish(),
            Self::Sealed { key_id, ciphertext } => f
                .debug_struct("Sealed")
                .field("key_id", key_id)
                .field("bytes", &ciphertext.len())
                .finish(),
        }
    }
}

/// An attribute as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAttribute {
    pub name: String,
    pub value: StoredValue,
    pub created_at: SystemTime,
    pub modified_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

/// An attribute to upsert.
#[derive(Clone, Debug)]
pub struct NewAttribute {
    pub name: String,
    pub value: StoredValue,
    pub expires_at: Option<SystemTime>,
}

/// An attribute as clients see it: the value is JSON, decrypted.
#[derive(Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: serde_json::Value,
    pub encrypted: bool,
    pub created_at: SystemTime,
    pub modified_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

/// The value is never shown: when `encrypted` it is a decrypted secret (and plain values
/// are kept out of logs alike, see [`StoredValue`]).
impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("encrypted", &self.encrypted)
            .field("created_at", &self.created_at)
            .field("modified_at", &self.modified_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub sessions: u64,
    pub attributes: u64,
    /// Forgotten failed-login counters, of usernames and addresses together.
    pub login_failures: u64,
    /// Events past their retention.
    pub events: u64,
    /// Expired sign-up confirmation and password reset tokens.
    pub account_tokens: u64,
}

/// At most `max` live sessions per user; what a login does when its user has them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimit {
    pub max: std::num::NonZeroUsize,
    pub policy: SessionLimitPolicy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// The user's oldest live sessions end to make room.
    EndOldest,
    /// The login is refused.
    Refuse,
}

/// Session lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    /// A guest's idle timeout: shorter than a user's, as nobody signed in to keep it.
    pub guest_idle_timeout: Duration,
    pub max_lifetime: Duration,
}

impl SessionPolicy {
    /// Sliding expiry: now + the idle timeout of a guest's or a user's session, never past
    /// creation + absolute lifetime.
    pub fn expiry(&self, is_guest: bool, created_at: SystemTime, now: SystemTime) -> SystemTime {
        let idle = if is_guest {
            self.guest_idle_timeout
        } else {
            self.idle_timeout
        };
        (now + idle).min(created_at + self.max_lifetime)
    }
}

/// Renewal by use, folded into a token look-up so that it costs no round trip of its own: a
/// live session found by its token whose last renewal is at or before `renewed_before` (so at
/// least the renewal interval ago) gets the expiry [`SessionPolicy::expiry`] gives at the
/// look-up's `now`, and `now` as its renewal time, in the same step. Only a session that
/// would authenticate is renewed: a guest's, or one whose user [`User::may_authenticate`].
#[derive(Clone, Copy, Debug)]
pub struct RenewOnUse {
    pub renewed_before: SystemTime,
    /// The lifetimes the new expiry follows.
    pub lifetimes: SessionPolicy,
}

impl RenewOnUse {
    /// Whether a session found at `now` is renewed by this look-up.
    pub fn is_due(&self, found: &SessionWithUser, now: SystemTime) -> bool {
        found.session.last_renewed_at <= self.renewed_before
            && found.session.expires_at > now
            && found
                .user
                .as_ref()
                .is_none_or(|user| user.may_authenticate(now))
    }

    /// The session renewed at `now`.
    pub fn renew(&self, session: &mut Session, now: SystemTime) {
        session.expires_at =
            self.lifetimes
                .expiry(session.user_id.is_none(), session.created_at, now);
        session.last_renewed_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_slides_but_is_capped_by_the_absolute_lifetime() {
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(60),
            guest_idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(150),
        };
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            policy.expiry(false, created, created),
            created + Duration::from_secs(60)
        );
        assert_eq!(
            policy.expiry(true, created, created),
            created + Duration::from_secs(30)
        );
        let later = created + Duration::from_secs(100);
        assert_eq!(
            policy.expiry(false, created, later),
            created + Duration::from_secs(150)
        );
        assert_eq!(
            policy.expiry(true, created, later + Duration::from_secs(30)),
            created + Duration::from_secs(150)
        );
    }

    #[test]
    fn associated_data_differs_by_owner_and_name() {
        let session = Owner::Session(SessionId(Uuid::nil()));
        let user = Owner::User(UserId(Uuid::nil()));
        assert_ne!(session.associated_data("a"), user.associated_data("a"));
        assert_ne!(session.associated_data("a"), session.associated_data("b"));
    }
}
