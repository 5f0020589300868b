//! Business rules: login and rotation, renewal, ownership, limits, encryption. Handlers call
//! this layer with validated domain values; this layer calls the store.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    clock::Clock,
    crypto::{self, KeyRing, PasswordHasherPool},
    domain::{
        Limits, RenewOnUse, Session, SessionLimit, SessionPolicy, SessionWithUser, ThrottleLimits,
        User,
    },
    mail::Mailer,
    store::{StoreHealth, Stores},
};

mod accounts;
mod attributes;
mod error;
mod events;
mod login;
mod passwords;
mod sessions;
mod throttle;
mod totp;
mod users;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod redaction_tests;

pub use accounts::{AccountsPolicy, SignUpMode, SignUpOutcome, SignUpRequest, TokenDelivery};
pub use attributes::{AttributeWrite, OwnerRef, Scope, WriteDefaults};
pub use error::{FieldViolation, ServiceError, ServiceResult};
pub use events::{EventFilter, EventStream, EventsPage, WatchMessage, with_cid};
pub use login::{LoginOutcome, LoginRequest};
pub use passwords::ChangePassword;
pub use sessions::SessionsPage;
pub use totp::{DisableTotpRequest, TotpEnrollment};
pub use users::{NewUser, UserField, UserRef, UserUpdate, UsersPage};

/// Rules that come from configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    pub sessions: SessionPolicy,
    pub limits: Limits,
    /// Session attribute names that move to the new session on login.
    pub persistent_on_login: Vec<String>,
    /// Session attribute names that move to a new guest session on logout.
    pub persistent_on_logout: Vec<String>,
    /// Accepted `current_app` values; empty accepts any.
    pub allowed_apps: Vec<String>,
    /// Say why a correct password was refused (locked, unapproved, expired) instead of
    /// reporting invalid credentials.
    pub reveal_login_failures: bool,
    /// A new password expires after this; `None`: never.
    pub password_max_age: Option<Duration>,
    /// Login warns when the password expires within this.
    pub password_expiry_warning: Duration,
    /// Rows deleted per statement by the expiry sweep and bulk revocation.
    pub sweep_batch: usize,
    /// When failed logins lock a username or an address out.
    pub throttle: ThrottleLimits,
    /// Guest sessions the store may hold at once.
    pub max_guest_sessions: usize,
    /// Live sessions per user, and what a login past them does; `None`: no limit.
    pub session_limit: Option<SessionLimit>,
    /// Use renews: the least time between two renewals of one session by the calls its UST
    /// authenticates; `None`: use never renews (only `RenewSession` does).
    pub renew_on_use: Option<Duration>,
    /// Events older than this are deleted by the sweep.
    pub event_retention: Duration,
    /// An idle event watch sends a heartbeat after this long without a message.
    pub event_heartbeat: Duration,
    /// A super-user's reads of one session record one `session.read` per this long (per
    /// reading session and method); `None`: every read.
    pub session_read_interval: Option<Duration>,
    /// Sign-up, and the tokens of its confirmation and of password reset.
    pub accounts: AccountsPolicy,
    /// The password policy (strength floor, history) and the TOTP issuer.
    pub credentials: CredentialPolicy,
}

/// What a new password must be, and how TOTP enrolments name the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// Least zxcvbn score (0–4); 0 skips the estimate.
    pub password_min_strength: u8,
    /// How many of the user's last passwords, the current one included, a new one may not be.
    pub password_history: usize,
    /// The issuer in `otpauth://` URIs.
    pub totp_issuer: String,
}

/// Who is calling: the session its UST names, and that session's user (none for a guest).
#[derive(Clone, Debug)]
pub struct Caller {
    pub session: Session,
    pub user: Option<User>,
}

impl Caller {
    pub fn is_super_user(&self) -> bool {
        self.user.as_ref().is_some_and(|user| user.is_super_user)
    }

    pub fn require_super_user(&self) -> ServiceResult<()> {
        if self.is_super_user() {
            Ok(())
        } else {
            Err(ServiceError::SuperUserRequired)
        }
    }

    /// The caller's user; a guest session has none.
    pub fn require_user(&self) -> ServiceResult<&User> {
        self.user.as_ref().ok_or(ServiceError::UserNotFound)
    }
}

/// What the authentication layer learned from the `authorization` metadata.
#[derive(Clone, Debug)]
pub enum Authentication {
    Missing,
    Invalid,
    Valid(Arc<Caller>),
    /// The store could not be asked; the cause is logged, never sent.
    Unavailable(String),
}

impl Authentication {
    pub fn caller(&self) -> ServiceResult<&Arc<Caller>> {
        match self {
            Self::Valid(caller) => Ok(caller),
            Self::Missing => Err(ServiceError::UstMissing),
            Self::Invalid => Err(ServiceError::UstInvalid),
            Self::Unavailable(cause) => Err(ServiceError::StoreUnavailable(cause.clone())),
        }
    }
}

/// Where a request comes from, as the client reports it.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub current_app: String,
    pub remote_addr: String,
    pub user_agent: String,
}

/// A page request; `size` 0 means the default.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub size: usize,
    pub token: String,
}

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

impl PageRequest {
    fn limit(&self) -> usize {
        match self.size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        }
    }

    /// The cursor of a page token, which must have been issued for the same `filter`: a
    /// token reused with another filter would page through a listing it was not made for.
    fn cursor(&self, filter: &str) -> ServiceResult<Option<String>> {
        if self.token.is_empty() {
            return Ok(None);
        }
        let foreign = || ServiceError::invalid("page_token", "not a token this server issued");
        let (issued_for, cursor): (String, String) = URL_SAFE_NO_PAD
            .decode(&self.token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(foreign)?;
        if issued_for != filter_digest(filter) {
            return Err(ServiceError::invalid(
                "page_token",
                "issued for another filter; start again without a token",
            ));
        }
        if !crate::domain::limits::is_printable(&cursor) {
            return Err(foreign());
        }
        Ok(Some(cursor))
    }
}

/// An opaque page token: the filter it pages through and where the next page starts.
fn page_token(filter: &str, cursor: &str) -> String {
    let token = serde_json::json!([filter_digest(filter), cursor]);
    URL_SAFE_NO_PAD.encode(token.to_string())
}

/// A short digest of a listing's filter, so tokens stay small whatever the filter holds.
fn filter_digest(filter: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(filter.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// What the service is built from; tests inject a manual clock, a store and keys of their own.
pub struct Dependencies {
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyRing,
    pub passwords: PasswordHasherPool,
    pub policy: Policy,
    /// Bumped whenever events may have been recorded (by any replica): wakes event watches.
    /// `None`: watches poll.
    pub event_wakeups: Option<tokio::sync::watch::Receiver<u64>>,
    /// Where sign-up and reset mails go.
    pub mailer: Mailer,
}

/// The service: every RPC's rules, over an injectable store, clock and key ring.
pub struct Sso {
    stores: Stores,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    passwords: PasswordHasherPool,
    policy: Policy,
    event_wakeups: Option<tokio::sync::watch::Receiver<u64>>,
    /// Acts (events that change nothing) waiting for the background writer.
    acts: events::ActQueue,
    /// When each session was last recorded as read, if reads are recorded once per interval.
    recent_reads: Option<events::RecentReads>,
    mailer: Mailer,
}

impl Sso {
    pub fn new(dependencies: Dependencies) -> Self {
        let Dependencies {
            stores,
            clock,
            keys,
            passwords,
            policy,
            event_wakeups,
            mailer,
        } = dependencies;
        let recent_reads = policy.session_read_interval.map(events::RecentReads::new);
        Self {
            stores,
            clock,
            keys,
            passwords,
            policy,
            event_wakeups,
            acts: events::ActQueue::new(),
            recent_reads,
            mailer,
        }
    }

    /// The hasher pool: tests read how many hashes ran.
    pub fn password_hasher(&self) -> &PasswordHasherPool {
        &self.passwords
    }

    /// The store's health capability: for the prober, the pool metrics and shutdown.
    pub fn store(&self) -> &Arc<dyn StoreHealth> {
        &self.stores.health
    }

    /// Resolves a UST to its caller: the hot path, one store look-up. A session whose user
    /// is locked or whose password has expired does not authenticate. The call this
    /// authenticates is a use of the session: the same look-up renews it when due.
    pub async fn authenticate(&self, ust: &str) -> ServiceResult<Caller> {
        let now = self.clock.now();
        let renew = self.policy.renew_on_use.map(|interval| RenewOnUse {
            // A clock this close to the epoch has nothing renewed before it.
            renewed_before: now.checked_sub(interval).unwrap_or(SystemTime::UNIX_EPOCH),
            lifetimes: self.policy.sessions,
        });
        self.live_session_by_ust(ust, now, renew.as_ref())
            .await?
            .ok_or(ServiceError::UstInvalid)
    }

    /// Resolves an authenticated caller again, from the store: a long-lived call (a stream)
    /// asks this now and then, and ends once the session was revoked or expired or its user
    /// locked (`UstInvalid`). Never renews the session.
    pub async fn recheck(&self, caller: &Caller) -> ServiceResult<Caller> {
        let now = self.clock.now();
        let found = self
            .stores
            .sessions
            .session_by_id(caller.session.id, now)
            .await?;
        found
            .and_then(|found| usable(found, now))
            .ok_or(ServiceError::UstInvalid)
    }

    /// The usable session a UST names, renewed by this look-up when `renew` says so.
    async fn live_session_by_ust(
        &self,
        ust: &str,
        now: SystemTime,
        renew: Option<&RenewOnUse>,
    ) -> ServiceResult<Option<Caller>> {
        if !crypto::is_well_formed_ust(ust) {
            return Ok(None);
        }
        let found = self
            .stores
            .sessions
            .session_by_token(&crypto::hash_ust(ust), now, renew)
            .await?;
        Ok(found.and_then(|found| usable(found, now)))
    }

    fn check_app(&self, app: &str) -> ServiceResult<()> {
        if self.policy.allowed_apps.is_empty()
            || self
                .policy
                .allowed_apps
                .iter()
                .any(|allowed| allowed == app)
        {
            Ok(())
        } else {
            Err(ServiceError::AppNotAllowed)
        }
    }

    fn check_client(&self, client: &ClientInfo) -> ServiceResult<()> {
        let max = self.policy.limits.max_client_field_chars;
        for (field, value) in [
            ("current_app", &client.current_app),
            ("remote_addr", &client.remote_addr),
            ("user_agent", &client.user_agent),
        ] {
            check_text(field, value, max)?;
        }
        self.check_app(&client.current_app)
    }
}

/// A stored session counts only while its user may use it: not locked, approved, and with a
/// password that has not expired.
fn usable(found: SessionWithUser, now: SystemTime) -> Option<Caller> {
    match &found.user {
        Some(user) if !user.may_authenticate(now) => None,
        _ => Some(Caller {
            session: found.session,
            user: found.user,
        }),
    }
}

/// Free text from clients: printable and bounded.
fn check_text(field: &str, value: &str, max_chars: usize) -> ServiceResult<()> {
    if !crate::domain::limits::is_printable(value) {
        return Err(ServiceError::invalid(field, "must be printable text"));
    }
    if value.chars().count() > max_chars {
        return Err(ServiceError::limit(
            field,
            format!("at most {max_chars} characters"),
        ));
    }
    Ok(())
}
