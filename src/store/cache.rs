//! A cache of resolved USTs in front of the PostgreSQL store: the hot path (a UST → its
//! session and user) answered from memory, and never a session that was revoked.
//!
//! [`AuthCache`] is a decorator: it replaces [`Stores::sessions`], [`Stores::users`] and
//! [`Stores::credentials`] (whose TOTP writes change a user),
//! answers `session_by_token` from a moka cache keyed by the token hash, and passes every
//! other call through. It is not used over the embedded store, which is memory already.
//!
//! # What it never serves
//!
//! - A session at or past its `expires_at`, or one whose user's password has expired or who
//!   may not authenticate, by the `now` the caller passes (the injectable clock); moka's own
//!   timer (`ttl`) only bounds how old an entry may grow.
//! - A session that was ended, or whose user changed, through this process: every write that
//!   can end a session or change a user drops the affected entries before it returns
//!   (logout, deletion, bulk revocation, rotation, lock, rejection, user deletion, password
//!   and super-user changes, any user update, a login's update of its user, a renewal, TOTP
//!   enabled or disabled).
//! - The same through another replica, once its `NOTIFY` arrives: triggers on `sessions` and
//!   `users` (migration 7) announce ended sessions and changed users on [`CHANNEL`], and
//!   [`AuthCache::follow`] drops what they name.
//! - A session due for renewal by use (`RenewOnUse::is_due`): that look-up goes to the store,
//!   which renews it, and the renewed session is cached; so no renewal is skipped.
//! - Anything while notifications may be missed: until the listener is up, while it is
//!   down, and across a reconnection or a lag, the cache is flushed and look-ups go to the
//!   store (fail closed).
//!
//! # Races
//!
//! A miss reads the store and then admits what it read. An invalidation that lands in
//! between must win, or a session revoked during the read would be cached alive. Each
//! invalidation takes the next number of a generation counter and is remembered (the last
//! [`RECENT`] of them); a miss notes the generation before it reads and admits its result
//! only if no invalidation since then concerns it. Admission and invalidation hold one
//! lock, so nothing slips between the check and the insert; hits take no lock.
//!
//! # Side indexes
//!
//! An invalidation names a session or a user, the cache is keyed by token hash: the indexes
//! by session id and by user (guests under `None`) find the entries to drop, as neon's proxy
//! cache does. moka evicts on its own (size, age); its listener queues what it evicted, and
//! the next admission removes those from the indexes unless the key is back in the cache.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use moka::{notification::RemovalCause, sync::Cache};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    AccountTokenStore, CredentialStore, SessionStore, StoreResult, Stores, UserStore,
    postgres::listener::{Listener, Listening, Notification},
};
use crate::domain::{
    AccountTokenPurpose, BeginTotp, DeleteSession, DeleteSessions, DeleteUser, DisableTotp,
    EnableTotp, IssuePasswordReset, OpenSession, PurgeCounts, PurgeExpired, RedeemAccountToken,
    RenewOnUse, RenewSession, Session, SessionId, SessionSelector, SessionWithUser, SignUp,
    SignedUp, TokenHash, TotpRecord, UpdateUser, UseRecoveryCode, UseTotpStep, User, UserId,
    UserPage, UserQuery, UserRecord, Username, Write,
};

/// The `NOTIFY` channel of migration 7's triggers.
pub const CHANNEL: &str = "ssod_auth";

/// Invalidations remembered for misses still reading the store; a miss older than all of
/// them is not admitted.
const RECENT: usize = 1024;

/// How often the follower adds up bypassed time and reports the number of entries.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The cache's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthCacheSettings {
    /// Resolved USTs kept.
    pub capacity: u64,
    /// Longest an entry is served after it was read.
    pub ttl: Duration,
}

/// What an invalidation drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// One session.
    Session(SessionId),
    /// Every session of a user.
    User(UserId),
    /// Every guest session.
    Guests,
    /// Everything.
    All,
}

impl Invalidation {
    fn concerns(&self, found: &SessionWithUser) -> bool {
        match *self {
            Self::Session(id) => found.session.id == id,
            Self::User(id) => found.session.user_id == Some(id),
            Self::Guests => found.session.user_id.is_none(),
            Self::All => true,
        }
    }

    /// What a payload of migration 7's triggers names: `s:<id>,…` (sessions), `u:<id>,…`
    /// (users) or `*`. Anything else drops everything: a payload not understood must not
    /// leave a revoked session cached.
    pub fn parse(payload: &str) -> Vec<Self> {
        let ids = |list: &str| -> Option<Vec<Uuid>> {
            list.split(',').map(|id| Uuid::parse_str(id).ok()).collect()
        };
        let parsed = match payload.split_once(':') {
            Some(("s", list)) => ids(list).map(|ids| {
                ids.into_iter()
                    .map(|id| Self::Session(SessionId(id)))
                    .collect()
            }),
            Some(("u", list)) => {
                ids(list).map(|ids| ids.into_iter().map(|id| Self::User(UserId(id))).collect())
            }
            _ => None,
        };
        parsed.unwrap_or_else(|| vec![Self::All])
    }

    /// Bounded metric label.
    fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::User(_) => "user",
            Self::Guests => "guests",
            Self::All => "all",
        }
    }
}

/// Why entries are dropped; a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A write through this process.
    Local,
    /// A `NOTIFY` from a replica (this one's own writes come back too).
    Notification,
    /// Notifications may have been missed: the listener went down, came back, or lagged.
    Listener,
}

impl Origin {
    fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Notification => "notification",
            Self::Listener => "listener",
        }
    }
}

/// An entry moka evicted by itself, to take out of the indexes.
struct Evicted {
    hash: TokenHash,
    session: SessionId,
    user: Option<UserId>,
}

/// The side indexes and the recent invalidations: what admission and invalidation change
/// together, under one lock.
#[derive(Default)]
struct Book {
    by_session: HashMap<SessionId, (TokenHash, Option<UserId>)>,
    /// Guests under `None`.
    by_user: HashMap<Option<UserId>, HashMap<TokenHash, SessionId>>,
    /// `(generation, invalidation)`, oldest first.
    recent: VecDeque<(u64, Invalidation)>,
}

impl Book {
    fn index(&mut self, hash: TokenHash, session: &Session) {
        self.by_session.insert(session.id, (hash, session.user_id));
        self.by_user
            .entry(session.user_id)
            .or_default()
            .insert(hash, session.id);
    }

    fn unindex_session(&mut self, id: SessionId) -> Option<TokenHash> {
        let (hash, user) = self.by_session.remove(&id)?;
        if let Some(hashes) = self.by_user.get_mut(&user) {
            hashes.remove(&hash);
            if hashes.is_empty() {
                self.by_user.remove(&user);
            }
        }
        Some(hash)
    }

    fn unindex_user(&mut self, user: Option<UserId>) -> Vec<TokenHash> {
        let hashes = self.by_user.remove(&user).unwrap_or_default();
        hashes
            .into_iter()
            .map(|(hash, session)| {
                self.by_session.remove(&session);
                hash
            })
            .collect()
    }

    /// Whether an invalidation after `generation` concerns `found`; also when the memory of
    /// invalidations no longer reaches back that far.
    fn invalidated_since(&self, generation: u64, found: &SessionWithUser) -> bool {
        match self.recent.front() {
            Some(&(oldest, _)) if oldest > generation + 1 => true,
            _ => self
                .recent
                .iter()
                .rev()
                .take_while(|(at, _)| *at > generation)
                .any(|(_, invalidation)| invalidation.concerns(found)),
        }
    }
}

/// The decorator; see the module documentation.
pub struct AuthCache {
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserStore>,
    credentials: Arc<dyn CredentialStore>,
    account_tokens: Arc<dyn AccountTokenStore>,
    entries: Cache<TokenHash, Arc<SessionWithUser>>,
    book: Mutex<Book>,
    /// Filled by moka's eviction listener, which must not take `book`: moka may call it
    /// from an insert made under that lock.
    evicted: Arc<Mutex<Vec<Evicted>>>,
    /// The number of the last invalidation.
    generation: AtomicU64,
    /// Set while notifications may be missed: look-ups go to the store, nothing is admitted.
    bypassed: AtomicBool,
}

impl AuthCache {
    /// A cache over `stores`, bypassed until [`AuthCache::follow`] sees the listener up.
    pub fn new(settings: AuthCacheSettings, stores: &Stores) -> Self {
        let evicted: Arc<Mutex<Vec<Evicted>>> = Arc::default();
        let queue = Arc::clone(&evicted);
        let entries = Cache::builder()
            .max_capacity(settings.capacity)
            .time_to_live(settings.ttl)
            .eviction_listener(
                move |hash: Arc<TokenHash>, found: Arc<SessionWithUser>, cause| {
                    // Our own invalidations (`Explicit`) have unindexed already; `Replaced`
                    // keeps the key.
                    if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                        lock(&queue).push(Evicted {
                            hash: *hash,
                            session: found.session.id,
                            user: found.session.user_id,
                        });
                    }
                },
            )
            .build();
        Self {
            sessions: Arc::clone(&stores.sessions),
            users: Arc::clone(&stores.users),
            credentials: Arc::clone(&stores.credentials),
            account_tokens: Arc::clone(&stores.account_tokens),
            entries,
            book: Mutex::default(),
            evicted,
            generation: AtomicU64::new(0),
            bypassed: AtomicBool::new(true),
        }
    }

    /// `stores` with this cache in place of its sessions, users, credentials and account
    /// tokens (whose redemption changes a user and may end its sessions).
    pub fn wrap(self: &Arc<Self>, stores: Stores) -> Stores {
        Stores {
            sessions: Arc::clone(self) as Arc<dyn SessionStore>,
            users: Arc::clone(self) as Arc<dyn UserStore>,
            credentials: Arc::clone(self) as Arc<dyn CredentialStore>,
            account_tokens: Arc::clone(self) as Arc<dyn AccountTokenStore>,
            ..stores
        }
    }

    /// Drops what `invalidation` names, at once; later look-ups read the store.
    pub fn invalidate(&self, invalidation: Invalidation, origin: Origin) {
        let mut book = lock(&self.book);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if book.recent.len() == RECENT {
            book.recent.pop_front();
        }
        book.recent.push_back((generation, invalidation));
        let hashes = match invalidation {
            Invalidation::Session(id) => book.unindex_session(id).into_iter().collect(),
            Invalidation::User(id) => book.unindex_user(Some(id)),
            Invalidation::Guests => book.unindex_user(None),
            Invalidation::All => {
                book.by_session.clear();
                book.by_user.clear();
                // Entries inserted before this are never returned again.
                self.entries.invalidate_all();
                Vec::new()
            }
        };
        for hash in &hashes {
            self.entries.invalidate(hash);
        }
        drop(book);
        metrics::counter!(
            "ssod_auth_cache_invalidations_total",
            "origin" => origin.label(),
            "kind" => invalidation.kind()
        )
        .increment(1);
    }

    /// Look-ups go to the store from now on, and the cache is flushed.
    pub fn bypass(&self) {
        self.bypassed.store(true, Ordering::SeqCst);
        self.invalidate(Invalidation::All, Origin::Listener);
    }

    /// The cache serves again, from empty: whatever was read before this is dropped.
    pub fn resume(&self) {
        self.invalidate(Invalidation::All, Origin::Listener);
        self.bypassed.store(false, Ordering::SeqCst);
    }

    pub fn is_bypassed(&self) -> bool {
        self.bypassed.load(Ordering::SeqCst)
    }

    /// Entries held, roughly (moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Follows `listener` until `stop`: drops what each notification names, and flushes and
    /// bypasses the cache whenever notifications may have been missed (see the module
    /// documentation). It subscribes before this returns, so nothing announced after this
    /// call is missed; the returned task does the rest.
    pub fn follow(
        self: &Arc<Self>,
        listener: &Listener,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let cache = Arc::clone(self);
        let notifications = listener.subscribe();
        let state = listener.state();
        async move { cache.run_follower(notifications, state, stop).await }
    }

    async fn run_follower(
        &self,
        mut notifications: broadcast::Receiver<Notification>,
        mut state: watch::Receiver<Listening>,
        stop: CancellationToken,
    ) {
        // Bypassed from the start: nothing is served before the listener is up.
        let mut seen = Listening::Down;
        let mut bypassed = BypassTime {
            since: None,
            total: Duration::ZERO,
            reported_secs: 0,
        };
        bypassed.begin();
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        loop {
            let listening = *state.borrow_and_update();
            // Any change (down, or up again with a new epoch, even unseen in between) may
            // have lost notifications.
            if listening != seen {
                seen = listening;
                match listening {
                    Listening::Down => {
                        self.bypass();
                        bypassed.begin();
                        tracing::warn!(
                            "auth cache bypassed: notification listener down, every look-up \
                             reads the store"
                        );
                    }
                    Listening::Up { epoch } => {
                        self.resume();
                        bypassed.end();
                        tracing::info!(epoch, "auth cache serving: notification listener up");
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                changed = state.changed() => if changed.is_err() { break },
                received = notifications.recv() => match received {
                    Ok(notification) if &*notification.channel == CHANNEL => {
                        for invalidation in Invalidation::parse(&notification.payload) {
                            self.invalidate(invalidation, Origin::Notification);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "auth cache flushed: notifications were dropped");
                        self.invalidate(Invalidation::All, Origin::Listener);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = report.tick() => {
                    bypassed.report();
                    metrics::gauge!("ssod_auth_cache_entries").set(self.entry_count() as f64);
                }
            }
        }
        self.bypass();
        bypassed.report();
    }

    /// Caches what a miss read, unless an invalidation since `generation` concerns it.
    fn admit(&self, hash: TokenHash, generation: u64, found: &SessionWithUser) {
        let mut book = lock(&self.book);
        self.forget_evicted(&mut book);
        if self.generation.load(Ordering::SeqCst) != generation
            && book.invalidated_since(generation, found)
        {
            return;
        }
        book.index(hash, &found.session);
        self.entries.insert(hash, Arc::new(found.clone()));
    }

    /// Takes what moka evicted out of the indexes, unless its key is cached again.
    fn forget_evicted(&self, book: &mut Book) {
        let evicted = std::mem::take(&mut *lock(&self.evicted));
        for Evicted {
            hash,
            session,
            user,
        } in evicted
        {
            if self.entries.contains_key(&hash) {
                continue;
            }
            if book
                .by_session
                .get(&session)
                .is_some_and(|(indexed, _)| *indexed == hash)
            {
                book.by_session.remove(&session);
            }
            if let Some(hashes) = book.by_user.get_mut(&user) {
                hashes.remove(&hash);
                if hashes.is_empty() {
                    book.by_user.remove(&user);
                }
            }
        }
    }
}

/// Time spent bypassed, for `ssod_auth_cache_bypass_seconds_total`. The counter takes
/// whole seconds, so the total is kept here and the counter raised as it passes each second:
/// many short bypasses still add up, and a long one shows while it lasts.
struct BypassTime {
    /// Since when the cache is bypassed, if it is.
    since: Option<Instant>,
    /// Ended bypasses, and the running one up to `since`.
    total: Duration,
    reported_secs: u64,
}

impl BypassTime {
    fn begin(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            metrics::gauge!("ssod_auth_cache_bypassed").set(1.0);
        }
    }

    fn end(&mut self) {
        self.report();
        if self.since.take().is_some() {
            metrics::gauge!("ssod_auth_cache_bypassed").set(0.0);
        }
    }

    fn report(&mut self) {
        if let Some(since) = &mut self.since {
            let now = Instant::now();
            self.total += now - *since;
            *since = now;
        }
        let secs = self.total.as_secs();
        metrics::counter!("ssod_auth_cache_bypass_seconds_total")
            .increment(secs - self.reported_secs);
        self.reported_secs = secs;
    }
}

/// What may be answered from memory at `now`: a live session whose user may still
/// authenticate.
fn servable(found: &SessionWithUser, now: SystemTime) -> bool {
    found.session.expires_at > now
        && found
            .user
            .as_ref()
            .is_none_or(|user| user.may_authenticate(now))
}

/// The cache's locks guard no invariant a panic could break halfway that matters more than
/// serving on: a poisoned one is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl SessionStore for AuthCache {
    async fn open_session(&self, write: Write<OpenSession>) -> StoreResult<Session> {
        let replaced = write.command.replaces;
        // A user's new session records its login, may end the user's other sessions (a new
        // password) or its oldest (the session limit): the user's entries all go.
        let user = write.command.new.session.user_id;
        let opened = self.sessions.open_session(write).await;
        // Whatever the outcome: a failure may still have committed.
        if let Some(id) = replaced {
            self.invalidate(Invalidation::Session(id), Origin::Local);
        }
        if let Some(user) = user {
            self.invalidate(Invalidation::User(user), Origin::Local);
        }
        opened
    }

    /// A session due for renewal by use is a miss: the store renews it, and the renewed
    /// session is cached, so no renewal is ever skipped.
    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        renew: Option<&RenewOnUse>,
    ) -> StoreResult<Option<SessionWithUser>> {
        if self.is_bypassed() {
            return self.sessions.session_by_token(hash, now, renew).await;
        }
        if let Some(found) = self.entries.get(hash)
            && servable(&found, now)
            && !renew.is_some_and(|renew| renew.is_due(&found, now))
        {
            metrics::counter!("ssod_auth_cache_hits_total").increment(1);
            return Ok(Some(SessionWithUser::clone(&found)));
        }
        metrics::counter!("ssod_auth_cache_misses_total").increment(1);
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self.sessions.session_by_token(hash, now, renew).await?;
        if let Some(found) = &found
            && servable(found, now)
        {
            self.admit(*hash, generation, found);
        }
        Ok(found)
    }

    async fn session_by_id(
        &self,
        id: SessionId,
        now: SystemTime,
    ) -> StoreResult<Option<SessionWithUser>> {
        self.sessions.session_by_id(id, now).await
    }

    async fn renew_session(&self, write: Write<RenewSession>) -> StoreResult<Option<Session>> {
        let id = write.command.id;
        let renewed = self.sessions.renew_session(write).await;
        // Not for safety (an older expiry only refuses sooner) but so the caller sees it.
        self.invalidate(Invalidation::Session(id), Origin::Local);
        renewed
    }

    async fn list_sessions(
        &self,
        user: UserId,
        after: Option<SessionId>,
        limit: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<Session>> {
        self.sessions.list_sessions(user, after, limit, now).await
    }

    async fn delete_session(&self, write: Write<DeleteSession>) -> StoreResult<bool> {
        let id = write.command.id;
        let deleted = self.sessions.delete_session(write).await;
        self.invalidate(Invalidation::Session(id), Origin::Local);
        deleted
    }

    async fn delete_sessions(&self, write: Write<DeleteSessions>) -> StoreResult<u64> {
        let invalidation = match write.command.selector {
            // The kept session goes too: it is read again, unchanged.
            SessionSelector::User(user) | SessionSelector::OtherSessionsOf { user, .. } => {
                Invalidation::User(user)
            }
            SessionSelector::Guests => Invalidation::Guests,
            SessionSelector::All => Invalidation::All,
        };
        let deleted = self.sessions.delete_sessions(write).await;
        self.invalidate(invalidation, Origin::Local);
        deleted
    }

    /// Expired sessions are never served, so the sweep drops nothing.
    async fn purge_expired(&self, write: Write<PurgeExpired>) -> StoreResult<PurgeCounts> {
        self.sessions.purge_expired(write).await
    }
}

#[async_trait]
impl UserStore for AuthCache {
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User> {
        self.users.create_user(write).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.users.user_by_id(id).await
    }

    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<UserRecord>> {
        self.users.user_by_username(username).await
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        self.users.list_users(query).await
    }

    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User> {
        let id = write.command.id;
        let updated = self.users.update_user(write).await;
        self.invalidate(Invalidation::User(id), Origin::Local);
        updated
    }

    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool> {
        let id = write.command.id;
        let deleted = self.users.delete_user(write).await;
        self.invalidate(Invalidation::User(id), Origin::Local);
        deleted
    }
}

/// Enabling or disabling TOTP changes the user: its entries go, as for any user update.
#[async_trait]
impl CredentialStore for AuthCache {
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>> {
        self.credentials.totp(user).await
    }

    async fn begin_totp(&self, write: Write<BeginTotp>) -> StoreResult<()> {
        self.credentials.begin_totp(write).await
    }

    async fn enable_totp(&self, write: Write<EnableTotp>) -> StoreResult<User> {
        let user = write.command.user;
        let enabled = self.credentials.enable_totp(write).await;
        self.invalidate(Invalidation::User(user), Origin::Local);
        enabled
    }

    async fn use_totp_step(&self, write: Write<UseTotpStep>) -> StoreResult<bool> {
        self.credentials.use_totp_step(write).await
    }

    async fn use_recovery_code(&self, write: Write<UseRecoveryCode>) -> StoreResult<bool> {
        self.credentials.use_recovery_code(write).await
    }

    async fn disable_totp(&self, write: Write<DisableTotp>) -> StoreResult<bool> {
        let user = write.command.user;
        let disabled = self.credentials.disable_totp(write).await;
        self.invalidate(Invalidation::User(user), Origin::Local);
        disabled
    }

    async fn password_history(&self, user: UserId) -> StoreResult<Vec<String>> {
        self.credentials.password_history(user).await
    }
}

#[async_trait]
impl AccountTokenStore for AuthCache {
    async fn sign_up(&self, write: Write<SignUp>) -> StoreResult<SignedUp> {
        self.account_tokens.sign_up(write).await
    }

    async fn issue_password_reset(
        &self,
        write: Write<IssuePasswordReset>,
    ) -> StoreResult<Option<User>> {
        self.account_tokens.issue_password_reset(write).await
    }

    async fn account_token_user(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: SystemTime,
    ) -> StoreResult<Option<UserRecord>> {
        self.account_tokens
            .account_token_user(hash, purpose, now)
            .await
    }

    /// A redemption changes its user (and a reset ends the user's sessions): the user's
    /// entries go, whatever the outcome, since a failure may still have committed.
    async fn redeem_account_token(
        &self,
        write: Write<RedeemAccountToken>,
    ) -> StoreResult<Option<User>> {
        let redeemed = self.account_tokens.redeem_account_token(write).await;
        match &redeemed {
            Ok(Some(user)) => self.invalidate(Invalidation::User(user.id), Origin::Local),
            Ok(None) => {}
            Err(_) => self.invalidate(Invalidation::All, Origin::Local),
        }
        redeemed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::{
        crypto,
        domain::{
            ApprovalStatus, EndSessions, NewSession, Profile, SessionEndReason, SessionPolicy,
            UserPatch,
        },
        store::memory::MemoryStore,
    };

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    const SETTINGS: AuthCacheSettings = AuthCacheSettings {
        capacity: 1000,
        ttl: Duration::from_secs(3600),
    };

    /// A cache serving over a memory store, and the store itself to change behind its back:
    /// what the cache still answers after that came from memory.
    fn cache_over_memory(settings: AuthCacheSettings) -> (Arc<AuthCache>, Stores) {
        let store = Stores::new(Arc::new(MemoryStore::new()));
        let cache = Arc::new(AuthCache::new(settings, &store));
        cache.resume();
        (cache, store)
    }

    async fn user(store: &Stores, name: &str, password_expiry: Option<SystemTime>) -> User {
        let record = UserRecord {
            user: User {
                id: UserId::generate(),
                username: name.into(),
                profile: Profile::default(),
                is_super_user: false,
                is_locked: false,
                approval_status: ApprovalStatus::Approved,
                password_must_change: false,
                password_expiry,
                created_at: at(0),
                last_login_at: None,
                is_confirmed: true,
                totp_enabled: false,
            },
            password_hash: "$argon2id$fake".into(),
        };
        store
            .users
            .create_user(Write::new(at(0), record))
            .await
            .unwrap()
    }

    /// A session of `user` (a guest's for `None`) expiring at `expires`; its token hash.
    async fn session(store: &Stores, user: Option<UserId>, expires: u64) -> (Session, TokenHash) {
        let token_hash = crypto::hash_ust(&crypto::generate_ust());
        let session = Session {
            id: SessionId::generate(),
            user_id: user,
            current_app: "app".into(),
            remote_addr: "192.0.2.1".into(),
            user_agent: "agent".into(),
            created_at: at(0),
            expires_at: at(expires),
            last_renewed_at: at(0),
        };
        let opened = store
            .sessions
            .open_session(Write::new(
                at(0),
                OpenSession {
                    new: NewSession {
                        session,
                        token_hash,
                    },
                    attributes: Vec::new(),
                    replaces: None,
                    login: None,
                    max_guest_sessions: 100,
                    session_limit: None,
                },
            ))
            .await
            .unwrap();
        (opened, token_hash)
    }

    /// Deletes a session in the store only, so the cache does not hear of it.
    async fn delete_behind(store: &Stores, id: SessionId) {
        let deleted = store
            .sessions
            .delete_session(Write::new(
                at(1),
                DeleteSession {
                    id,
                    reason: SessionEndReason::Revoked,
                },
            ))
            .await
            .unwrap();
        assert!(deleted);
    }

    async fn resolves(cache: &AuthCache, hash: &TokenHash, now: SystemTime) -> bool {
        cache
            .session_by_token(hash, now, None)
            .await
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn a_cached_session_is_served_until_an_invalidation_names_it() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let owner = user(&store, "ann", None).await;
        let (first, first_hash) = session(&store, Some(owner.id), 100).await;
        let (_, guest_hash) = session(&store, None, 100).await;
        for hash in [&first_hash, &guest_hash] {
            assert!(resolves(&cache, hash, at(1)).await);
        }
        delete_behind(&store, first.id).await;
        assert!(
            resolves(&cache, &first_hash, at(1)).await,
            "served from memory"
        );
        cache.invalidate(Invalidation::Session(first.id), Origin::Notification);
        assert!(!resolves(&cache, &first_hash, at(1)).await);

        for (invalidation, of) in [
            (Invalidation::User(owner.id), Some(owner.id)),
            (Invalidation::Guests, None),
            (Invalidation::All, Some(owner.id)),
        ] {
            let (again, hash) = session(&store, of, 100).await;
            assert!(resolves(&cache, &hash, at(1)).await);
            delete_behind(&store, again.id).await;
            assert!(resolves(&cache, &hash, at(1)).await);
            cache.invalidate(invalidation, Origin::Notification);
            assert!(!resolves(&cache, &hash, at(1)).await, "{invalidation:?}");
        }
    }

    #[tokio::test]
    async fn never_served_past_its_expiry_or_its_users_password_expiry() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let owner = user(&store, "bob", Some(at(50))).await;
        let (first, hash) = session(&store, Some(owner.id), 100).await;
        let (guest, guest_hash) = session(&store, None, 30).await;
        assert!(resolves(&cache, &hash, at(1)).await);
        assert!(resolves(&cache, &guest_hash, at(1)).await);
        // Gone from the store: what still resolves comes from memory.
        delete_behind(&store, first.id).await;
        delete_behind(&store, guest.id).await;
        assert!(resolves(&cache, &hash, at(49)).await);
        assert!(resolves(&cache, &guest_hash, at(29)).await);
        assert!(!resolves(&cache, &hash, at(50)).await, "password expired");
        assert!(
            !resolves(&cache, &guest_hash, at(30)).await,
            "session expired"
        );
    }

    #[tokio::test]
    async fn a_session_due_for_renewal_reaches_the_store_and_comes_back_renewed() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let owner = user(&store, "gus", None).await;
        let (first, hash) = session(&store, Some(owner.id), 100).await;
        let lifetimes = SessionPolicy {
            idle_timeout: Duration::from_secs(100),
            guest_idle_timeout: Duration::from_secs(100),
            max_lifetime: Duration::from_secs(1000),
        };
        // Renewed at most once per 30 s.
        let renew_at = |now: u64| RenewOnUse {
            renewed_before: at(now - 30),
            lifetimes,
        };
        assert!(resolves(&cache, &hash, at(10)).await);
        let renewed = cache
            .session_by_token(&hash, at(50), Some(&renew_at(50)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            renewed.session.last_renewed_at,
            at(50),
            "renewed, not served stale"
        );
        let stored = store
            .sessions
            .session_by_id(first.id, at(50))
            .await
            .unwrap();
        assert_eq!(stored.unwrap().session.expires_at, at(150));
        // Not due again within the interval: answered from memory, renewed as it was.
        delete_behind(&store, first.id).await;
        let cached = cache
            .session_by_token(&hash, at(60), Some(&renew_at(60)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cached.session.expires_at, at(150));
    }

    #[tokio::test]
    async fn an_invalidation_during_a_miss_keeps_its_result_out() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let owner = user(&store, "cy", None).await;
        let (first, hash) = session(&store, Some(owner.id), 100).await;
        let (_, other_hash) = session(&store, Some(owner.id), 100).await;
        let read = store
            .sessions
            .session_by_token(&hash, at(1), None)
            .await
            .unwrap()
            .unwrap();
        let other = store
            .sessions
            .session_by_token(&other_hash, at(1), None)
            .await
            .unwrap()
            .unwrap();

        // A miss noted the generation, read, and an invalidation of its session landed.
        let before = cache.generation.load(Ordering::SeqCst);
        cache.invalidate(Invalidation::Session(first.id), Origin::Local);
        cache.admit(hash, before, &read);
        assert!(!cache.entries.contains_key(&hash));
        // One of another session does not concern it.
        cache.admit(other_hash, before, &other);
        assert!(cache.entries.contains_key(&other_hash));

        // A miss older than every remembered invalidation is not admitted either.
        let before = cache.generation.load(Ordering::SeqCst);
        for _ in 0..=RECENT {
            cache.invalidate(Invalidation::Session(SessionId::generate()), Origin::Local);
        }
        cache.admit(hash, before, &read);
        assert!(!cache.entries.contains_key(&hash));
        let now = cache.generation.load(Ordering::SeqCst);
        cache.admit(hash, now, &read);
        assert!(cache.entries.contains_key(&hash));
    }

    #[tokio::test]
    async fn bypassed_look_ups_read_the_store_and_cache_nothing() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let owner = user(&store, "di", None).await;
        let (first, hash) = session(&store, Some(owner.id), 100).await;
        assert!(resolves(&cache, &hash, at(1)).await);
        cache.bypass();
        assert!(cache.is_bypassed());
        assert!(resolves(&cache, &hash, at(1)).await);
        assert!(!cache.entries.contains_key(&hash));
        delete_behind(&store, first.id).await;
        cache.resume();
        assert!(!resolves(&cache, &hash, at(1)).await, "flushed, not stale");
    }

    #[tokio::test]
    async fn writes_through_the_cache_drop_what_they_change() {
        let (cache, store) = cache_over_memory(SETTINGS);
        let cached = cache.wrap(store.clone());
        let owner = user(&store, "ed", None).await;
        let (_, hash) = session(&store, Some(owner.id), 100).await;
        assert!(resolves(&cache, &hash, at(1)).await);
        // Locked through the cache: the entry goes, and the next look-up reads the store.
        cached
            .users
            .update_user(Write::new(
                at(1),
                UpdateUser {
                    id: owner.id,
                    patch: UserPatch {
                        is_locked: Some(true),
                        ..UserPatch::default()
                    },
                    end_sessions: EndSessions::None,
                },
            ))
            .await
            .unwrap();
        let found = cache
            .session_by_token(&hash, at(1), None)
            .await
            .unwrap()
            .unwrap();
        assert!(found.user.unwrap().is_locked, "read from the store again");
    }

    #[tokio::test]
    async fn enabling_totp_through_the_cache_drops_the_users_entries() {
        use crate::domain::SealedSecret;
        let (cache, store) = cache_over_memory(SETTINGS);
        let cached = cache.wrap(store.clone());
        let owner = user(&store, "fi", None).await;
        let (_, hash) = session(&store, Some(owner.id), 100).await;
        assert!(resolves(&cache, &hash, at(1)).await);
        let secret = SealedSecret {
            key_id: "k".into(),
            ciphertext: vec![1; 40],
        };
        cached
            .credentials
            .begin_totp(Write::new(
                at(1),
                BeginTotp {
                    user: owner.id,
                    secret: secret.clone(),
                },
            ))
            .await
            .unwrap();
        cached
            .credentials
            .enable_totp(Write::new(
                at(1),
                EnableTotp {
                    user: owner.id,
                    secret,
                    step: 1,
                    recovery_codes: Vec::new(),
                },
            ))
            .await
            .unwrap();
        let found = cache.session_by_token(&hash, at(1), None).await.unwrap();
        assert!(
            found.unwrap().user.unwrap().totp_enabled,
            "read from the store again"
        );
    }

    /// moka evicts by size on its own; its evictions leave the indexes, and every cached
    /// entry stays indexed, so an invalidation always finds it.
    #[tokio::test]
    async fn evictions_leave_the_indexes_and_every_entry_stays_indexed() {
        let (cache, store) = cache_over_memory(AuthCacheSettings {
            capacity: 8,
            ..SETTINGS
        });
        let owner = user(&store, "fi", None).await;
        for _ in 0..64 {
            let (_, hash) = session(&store, Some(owner.id), 100).await;
            assert!(resolves(&cache, &hash, at(1)).await);
        }
        cache.entries.run_pending_tasks();
        let (_, hash) = session(&store, None, 100).await;
        assert!(resolves(&cache, &hash, at(1)).await);
        cache.entries.run_pending_tasks();
        let book = lock(&cache.book);
        assert!(book.by_session.len() <= 8 + 1, "{}", book.by_session.len());
        for (hash, found) in &cache.entries {
            assert_eq!(
                book.by_session.get(&found.session.id).map(|(hash, _)| hash),
                Some(&*hash)
            );
        }
    }

    #[test]
    fn payloads_name_sessions_users_or_everything() {
        let session = Uuid::now_v7();
        let user = Uuid::now_v7();
        assert_eq!(
            Invalidation::parse(&format!("s:{session},{user}")),
            vec![
                Invalidation::Session(SessionId(session)),
                Invalidation::Session(SessionId(user))
            ]
        );
        assert_eq!(
            Invalidation::parse(&format!("u:{user}")),
            vec![Invalidation::User(UserId(user))]
        );
        for unknown in ["*", "", "s:", "s:nope", "x:{user}", "u"] {
            assert_eq!(
                Invalidation::parse(unknown),
                vec![Invalidation::All],
                "{unknown}"
            );
        }
    }
}
