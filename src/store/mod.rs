//! Persistence, one trait per capability ([`StoreHealth`], [`UserStore`], [`SessionStore`],
//! [`AttributeStore`], [`ThrottleStore`], [`CredentialStore`], [`EventStore`], [`AccountTokenStore`]) summed into [`Store`]. They are shaped for a transactional SQL store:
//! every operation that must be atomic is one call, expiry is decided by the `now` passed in
//! (the injectable clock's time), and nothing asks the caller to read a row to decide whether
//! to write it.

use std::{sync::Arc, time::SystemTime};

use async_trait::async_trait;

use crate::domain::{
    AccountTokenPurpose, BeginTotp, ClaimLogin, DeleteAttributes, DeleteSession, DeleteSessions,
    DeleteUser, DisableTotp, EnableTotp, Event, EventFeed, EventId, EventQuery,
    ForgetLoginFailures, IssuePasswordReset, LoginClaim, NewEvent, OpenSession, Owner, PurgeCounts,
    PurgeExpired, RedeemAccountToken, RenewOnUse, RenewSession, Session, SessionId,
    SessionWithUser, SetAttributeExpiry, SetAttributes, SignUp, SignedUp, StoredAttribute,
    TokenHash, TotpRecord, UpdateUser, UseRecoveryCode, UseTotpStep, User, UserId, UserPage,
    UserQuery, UserRecord, Username, Write,
};

pub mod cache;
pub mod memory;
pub mod postgres;

/// What can go wrong in a store; mapped to service errors in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("user not found")]
    UserNotFound,
    #[error("session not found")]
    SessionNotFound,
    #[error("the user changed since its password was verified")]
    UserChanged,
    #[error("owner would hold {count} attributes, limit is {limit}")]
    TooManyAttributes { count: usize, limit: usize },
    #[error("owner would hold {bytes} bytes of attribute values, limit is {limit}")]
    TooManyAttributeBytes { bytes: usize, limit: usize },
    #[error("the store holds {limit} guest sessions, the limit")]
    TooManyGuestSessions { limit: usize },
    #[error("the user holds {limit} live sessions, the limit")]
    SessionLimitReached { limit: usize },
    #[error("the user has TOTP enabled already")]
    TotpAlreadyEnabled,
    #[error("the user has no pending TOTP enrolment with that secret")]
    TotpNotPending,
    /// Events after a watcher's cursor are no longer all stored.
    #[error("events after the cursor have been dropped")]
    CursorExpired,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Connection-pool figures, for the metrics endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Open connections, idle or in use.
    pub size: usize,
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

/// Whether the store answers, and its connections: what health checks, metrics and shutdown
/// need.
#[async_trait]
pub trait StoreHealth: Send + Sync + 'static {
    /// Answers while the store is reachable; drives the health status.
    async fn ping(&self) -> StoreResult<()>;

    /// Connection-pool figures; `None` for a store without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Releases connections at shutdown; later calls fail as unavailable.
    fn close(&self) {}
}

/// Users. Writes that reach into other tables (ending sessions, cascading deletes) are still
/// one call here, so each stays one transaction.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; usernames are unique by their key ([`Username::key_of`] of the
    /// shown name, computed here in Rust, never by the database's locale).
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    /// By key: any spelling that folds to the same key finds the user.
    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage>;
    /// Applies `patch` and ends the chosen sessions of the user in one transaction.
    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User>;
    /// Deletes the user with its sessions and all their attributes; false if absent.
    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool>;
}

/// Sessions, with the attributes they carry in and the logins they record.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// One transaction: insert the session and its attributes, end the replaced session,
    /// record the login (a new password in it ends the user's other sessions) and keep the
    /// user within `session_limit`. `SessionNotFound` if the replaced session is gone,
    /// `UserNotFound` if the user is, `UserChanged` if the login record's conditions no longer
    /// hold, `TooManyGuestSessions` if a new guest session would pass `max_guest_sessions`,
    /// `SessionLimitReached` if the user holds its limit of live sessions under the `Refuse`
    /// policy (under `EndOldest` the oldest end instead, by creation time). Guest sessions are
    /// counted while they are stored: an expired one counts until the sweep. A user's live
    /// sessions are counted under the user's lock, so concurrent logins on any replica never
    /// leave more than the limit.
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session>;
    /// The hot path: one indexed look-up of an unexpired session and its user, in one
    /// statement. With `renew`, a session whose renewal is due ([`RenewOnUse::is_due`]) is
    /// renewed in that same statement and comes back renewed; any other comes back as stored.
    /// Without it, nothing is written. A decorator that answers from elsewhere (a cache) must
    /// forward a look-up whose session is due, or the renewal is lost.
    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        renew: Option<&RenewOnUse>,
    ) -> StoreResult<Option<SessionWithUser>>;
    async fn session_by_id(
        &self,
        id: SessionId,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>>;
    /// Sets an unexpired session's expiry and renewal time; `None` if it is gone.
    async fn renew_session(&self, write: Write<RenewSession>) -> StoreResult<Option<Session>>;
    /// A user's unexpired sessions ordered by id, after `after`, at most `limit`.
    async fn list_sessions(
        &self,
        user: UserId,
        after: Option<SessionId>,
        limit: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<Session>>;
    /// Deletes a session and its attributes; false if absent or expired.
    async fn delete_session(&self, write: Write<DeleteSession>) -> StoreResult<bool>;
    /// Deletes every selected session (expired ones too) in batches of at most `batch`, each
    /// its own statement; counts the unexpired ones.
    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64>;
    /// Deletes expired sessions and attributes, and the failed-login counters forgotten
    /// under `throttle` (see [`ThrottleStore`]), in batches of at most `batch` rows. The
    /// counters ride on this sweep rather than one of their own so that one pass, one
    /// schedule and one `PurgeExpired` keep every table bounded.
    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts>;
}

/// Attributes of sessions and users. The owner must exist (`SessionNotFound` /
/// `UserNotFound` otherwise).
#[async_trait]
pub trait AttributeStore: Send + Sync + 'static {
    /// Upserts all items (their names distinct) in one atomic write, replacing expired rows
    /// too; refuses with `TooManyAttributes` if the owner would then hold more than
    /// `max_per_owner` live ones, or `TooManyAttributeBytes` if their values would take more
    /// than `max_bytes_per_owner`. Exact under concurrency: writers of one owner are
    /// serialised, each counting what the others committed.
    async fn set_attributes(
        &self,
        write: Write<SetAttributes>,
    ) -> StoreResult<Vec<StoredAttribute>>;
    /// Unexpired attributes by name (all when `names` is `None`), sorted by name.
    async fn get_attributes(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>>;
    /// Unexpired attribute names (only among `names` when given), sorted.
    async fn attribute_names(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<String>>;
    /// Deletes the named attributes; counts the unexpired ones among them.
    async fn delete_attributes(&self, write: Write<DeleteAttributes>) -> StoreResult<u64>;
    /// Sets an unexpired attribute's expiry; `None` if it is absent.
    async fn set_attribute_expiry(
        &self,
        write: Write<SetAttributeExpiry>,
    ) -> StoreResult<Option<StoredAttribute>>;
}

/// Brute-force throttling: failed-login counters per username key and per client address,
/// shared by every replica of a shared store. A claim is atomic: however many attempts claim
/// at once, no more than the limit are admitted.
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// Refuses while the user or the address is locked out, counting nothing. Otherwise counts
    /// the attempt as a failure of both and admits it; the user's claim that reaches its limit
    /// starts the user's lockout at once (its own check still runs), while an address that
    /// already has its limit of failures in the window refuses and starts its lockout. A
    /// counter forgotten at `now` (`ThrottleLimits::user_forgotten`, `address_forgotten`)
    /// counts from zero, swept or not.
    async fn claim_login(&self, write: Write<ClaimLogin>) -> StoreResult<LoginClaim>;
    /// Deletes the user's failures and lockout history, and gives back the address's place
    /// of an admitted claim if its window is still the current one.
    async fn forget_login_failures(&self, write: Write<ForgetLoginFailures>) -> StoreResult<()>;
}

/// Second factors and password history. Whether TOTP is enabled is the user's
/// `totp_enabled`, which only these writes change, each under the user's lock; a user's
/// credentials go with the user.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The user's stored TOTP secret, pending or enabled.
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>>;
    /// Stores a pending secret, replacing a pending one: `TotpAlreadyEnabled` if the user has
    /// TOTP enabled, `UserNotFound` if it does not exist.
    async fn begin_totp(&self, write: Write<BeginTotp>) -> StoreResult<()>;
    /// Enables TOTP with the pending secret and stores the recovery codes, in one
    /// transaction; returns the user. `TotpNotPending` if that secret is not the user's
    /// pending one (replaced, or already enabled), `UserNotFound` if the user is gone.
    async fn enable_totp(&self, write: Write<EnableTotp>) -> StoreResult<User>;
    /// Atomic: true for the one call that moves the user's last accepted step forward to
    /// `step`; false if TOTP is not enabled or a code of this or a later step was accepted.
    async fn use_totp_step(&self, write: Write<UseTotpStep>) -> StoreResult<bool>;
    /// Atomic: true for the one call that uses up this recovery code of the user.
    async fn use_recovery_code(&self, write: Write<UseRecoveryCode>) -> StoreResult<bool>;
    /// Deletes the secret and the recovery codes and clears `totp_enabled`, in one
    /// transaction; whether TOTP was enabled. `UserNotFound` if the user does not exist.
    async fn disable_totp(&self, write: Write<DisableTotp>) -> StoreResult<bool>;
    /// The user's replaced password hashes, newest first: as many as the last password
    /// change said to keep ([`crate::domain::PasswordChange::keep_history`]).
    async fn password_history(&self, user: UserId) -> StoreResult<Vec<String>>;
}

/// The audit log. The events of a change are written by the change's own write (see
/// [`Write`]); this records the rest and reads them all back.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Records events that change nothing else (a failed login, a super-user's read of a
    /// session), each batch with its own time and context, in one write.
    async fn append_events(&self, batches: Vec<Write<Vec<NewEvent>>>) -> StoreResult<()>;
    /// Committed events matching `query`, in id order, at most `query.limit`.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>>;
    /// A watcher's next read: at most `limit` settled events after `after`, in id order.
    /// Settled: no event with a smaller id can commit later, so a watcher that passes an id
    /// never misses one below it. `CursorExpired` when events after `after` have been
    /// dropped (by the retention, or the memory store's bound), so the watcher would miss
    /// them; never for the zero id (the oldest kept).
    async fn event_feed(&self, after: EventId, limit: usize) -> StoreResult<EventFeed>;
    /// The last settled event's id (a zero id for an empty log): where "from now on" starts.
    async fn event_head(&self) -> StoreResult<EventId>;
    /// Whether the event is still stored: a watcher's cursor whose event is gone has passed
    /// the retention.
    async fn event_stored(&self, id: EventId) -> StoreResult<bool>;
    /// A counter the store bumps whenever it records events, when it can tell (the memory
    /// store); `None` when wake-ups come from elsewhere (PostgreSQL: `NOTIFY` through the
    /// process's listener).
    fn event_wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Sign-up confirmation and password reset tokens, stored only as hashes. A token belongs to
/// a username key and is bound to the password hash its user had when it was issued: it
/// redeems only before its expiry and while the user under that key still has that hash (so
/// a password change or the user's deletion invalidates it), and its redemption consumes it.
/// A key holds at most one token of each purpose (a new one replaces the old). Expired tokens
/// are deleted by [`SessionStore::purge_expired`], the one sweep.
#[async_trait]
pub trait AccountTokenStore: Send + Sync + 'static {
    /// Inserts the unconfirmed user and its confirmation token in one transaction; when the
    /// username key is taken, inserts nothing and names the owner.
    async fn sign_up(&self, write: Write<SignUp>) -> StoreResult<SignedUp>;
    /// Issues a reset token under the key (see [`IssuePasswordReset`]); returns the key's
    /// user if it may reset its password (confirmed, approved, not locked), the one whose
    /// password the token is bound to. The same one write for a known and an unknown name.
    async fn issue_password_reset(
        &self,
        write: Write<IssuePasswordReset>,
    ) -> StoreResult<Option<User>>;
    /// The user of a token of `purpose` that redeems at `now`; nothing is consumed.
    async fn account_token_user(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: SystemTime,
    ) -> StoreResult<Option<UserRecord>>;
    /// Consumes the token and applies the redemption in one transaction: confirms the user,
    /// or sets its password and ends all its sessions. `None` (nothing written) when the
    /// token is unknown, used, expired, of the other purpose, or bound to a password its
    /// user no longer has (or to none).
    async fn redeem_account_token(
        &self,
        write: Write<RedeemAccountToken>,
    ) -> StoreResult<Option<User>>;
}

/// A whole store: every capability. `now` is always the caller's clock: rows whose expiry is
/// at or before it are treated as absent by every read, count and limit, even before a sweep.
pub trait Store:
    StoreHealth
    + UserStore
    + SessionStore
    + AttributeStore
    + ThrottleStore
    + CredentialStore
    + EventStore
    + AccountTokenStore
{
}

impl<
    T: StoreHealth
        + UserStore
        + SessionStore
        + AttributeStore
        + ThrottleStore
        + CredentialStore
        + EventStore
        + AccountTokenStore
        + ?Sized,
> Store for T
{
}

/// One handle per capability, all usually the same store: a decorator (a cache of sessions,
/// say) replaces one handle and leaves the others untouched, so it implements one trait
/// rather than forwarding every method of [`Store`].
#[derive(Clone)]
pub struct Stores {
    pub health: Arc<dyn StoreHealth>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub attributes: Arc<dyn AttributeStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub credentials: Arc<dyn CredentialStore>,
    pub events: Arc<dyn EventStore>,
    pub account_tokens: Arc<dyn AccountTokenStore>,
}

impl Stores {
    /// Every capability from one store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            health: store.clone(),
            users: store.clone(),
            sessions: store.clone(),
            attributes: store.clone(),
            throttle: store.clone(),
            credentials: store.clone(),
            events: store.clone(),
            account_tokens: store,
        }
    }
}

/// The per-owner limits, applied to what an owner would hold after a write: its live
/// attributes and the bytes of their values. The count is checked first, by every store.
pub(crate) fn check_owner_limits(
    live: usize,
    bytes: usize,
    max_live: usize,
    max_bytes: usize,
) -> StoreResult<()> {
    if live > max_live {
        return Err(StoreError::TooManyAttributes {
            count: live,
            limit: max_live,
        });
    }
    if bytes > max_bytes {
        return Err(StoreError::TooManyAttributeBytes {
            bytes,
            limit: max_bytes,
        });
    }
    Ok(())
}

/// An attribute is live until its expiry.
pub fn is_live(expires_at: Option<SystemTime>, now: SystemTime) -> bool {
    expires_at.is_none_or(|at| at > now)
}
