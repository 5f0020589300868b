//! The audit trail: the context every write carries, events that record acts rather than
//! changes, and reading the log (`ListEvents`, `WatchEvents`).
//!
//! The events of a change travel in its [`Write`] and are inserted by the store in the
//! change's own transaction. An act that changes nothing (a failed login, a super-user's
//! read of a session) has no write to ride in; it goes to a bounded queue that a background
//! task writes in batches, one statement per batch, so recording it adds no round trip to
//! the call. The price: an act recorded in the last moments before a crash may be lost
//! (a graceful shutdown writes the queue out first). When the queue is full the call writes
//! its act itself, so memory stays bounded and no act is dropped.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Caller, ClientInfo, PageRequest, ServiceError, ServiceResult, Sso, page_token};
use crate::domain::{
    Event, EventContext, EventFeed, EventId, EventQuery, EventType, NewEvent, SessionId, UserId,
    Write,
};

tokio::task_local! {
    /// The cid (`x-request-id`) of the call this task serves; set by the gRPC edge around
    /// each call, read by every write the call makes.
    static CID: String;
}

/// Runs `call` with `cid` as the cid of every event it records.
pub async fn with_cid<F: Future>(cid: String, call: F) -> F::Output {
    CID.scope(cid, call).await
}

fn current_cid() -> String {
    CID.try_with(Clone::clone).unwrap_or_default()
}

/// Acts queued for the background writer; beyond it a call writes its own.
const QUEUED_ACTS: usize = 4096;
/// Acts written per statement.
const ACTS_PER_WRITE: usize = 256;
/// Wait before retrying a batch the store refused.
const ACT_RETRY: Duration = Duration::from_secs(1);

/// Events read per step of a watch.
const WATCH_PAGE: usize = 256;
/// How soon a watcher looks again while later events are not settled yet (a transaction
/// below them is still open), with no wake-up to wait for.
const UNSETTLED_RETRY: Duration = Duration::from_millis(50);
/// How often a watcher looks anyway: notifications are hints and can be lost.
const WATCH_POLL: Duration = Duration::from_secs(1);
/// Longest the audit log lines wait at shutdown for committed events to settle.
const AUDIT_DRAIN: Duration = Duration::from_secs(5);
/// How often a watch checks that its caller's session still stands.
const WATCH_RECHECK: Duration = Duration::from_secs(30);

/// The queue of acts and, until the background writer takes it, its receiving end.
pub(super) struct ActQueue {
    sender: mpsc::Sender<Write<Vec<NewEvent>>>,
    receiver: Mutex<Option<mpsc::Receiver<Write<Vec<NewEvent>>>>>,
}

impl ActQueue {
    pub(super) fn new() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUED_ACTS);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

/// What a watch sends: each event once, in id order, and a heartbeat after a quiet spell.
#[derive(Debug)]
pub enum WatchMessage {
    Event(Box<Event>),
    /// Nothing happened for the heartbeat interval; keeps proxies from closing the stream.
    Heartbeat,
}

pub type EventStream = Pin<Box<dyn Stream<Item = ServiceResult<WatchMessage>> + Send>>;

/// A page of events.
#[derive(Debug)]
pub struct EventsPage {
    pub events: Vec<Event>,
    pub next_page_token: String,
}

/// `ListEvents`' filter, validated.
#[derive(Debug, Default)]
pub struct EventFilter {
    pub types: Vec<EventType>,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
}

impl Sso {
    /// The context of the events the current call records: its cid, the caller (if any) as
    /// the actor, and where it calls from (the client it reported, else its session's).
    pub(super) fn context(
        &self,
        caller: Option<&Caller>,
        client: Option<&ClientInfo>,
    ) -> EventContext {
        let session = caller.map(|caller| &caller.session);
        let (current_app, remote_addr, user_agent) = match (client, session) {
            (Some(client), _) => (&client.current_app, &client.remote_addr, &client.user_agent),
            (None, Some(session)) => (
                &session.current_app,
                &session.remote_addr,
                &session.user_agent,
            ),
            (None, None) => return self.anonymous_context(),
        };
        EventContext {
            cid: current_cid(),
            actor_user: caller.and_then(|caller| caller.user.as_ref().map(|user| user.id)),
            actor_session: session.map(|session| session.id),
            current_app: current_app.clone(),
            remote_addr: remote_addr.clone(),
            user_agent: user_agent.clone(),
        }
    }

    fn anonymous_context(&self) -> EventContext {
        EventContext {
            cid: current_cid(),
            ..EventContext::default()
        }
    }

    /// Records acts that change nothing (see the module documentation).
    pub(super) async fn record_act(
        &self,
        context: EventContext,
        events: Vec<NewEvent>,
    ) -> ServiceResult<()> {
        let act = Write::new(self.clock.now(), events).by(context);
        match self.acts.sender.try_send(act) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(act) | mpsc::error::TrySendError::Closed(act)) => {
                Ok(self.stores.events.append_events(vec![act]).await?)
            }
        }
    }

    /// The background writer of queued acts, until `stop`; then it writes what is queued and
    /// returns. Runs once per service (a second call returns at once).
    pub fn act_writer(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let sso = Arc::clone(self);
        let receiver = sso
            .acts
            .receiver
            .lock()
            .ok()
            .and_then(|mut receiver| receiver.take());
        async move {
            let Some(mut receiver) = receiver else {
                return;
            };
            let mut unwritten = Vec::new();
            loop {
                let first = tokio::select! {
                    biased;
                    _ = stop.cancelled() => None,
                    first = receiver.recv() => first,
                };
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < ACTS_PER_WRITE
                    && let Ok(next) = receiver.try_recv()
                {
                    batch.push(next);
                }
                if let Err(batch) = sso.write_acts(batch, &stop).await {
                    unwritten = batch;
                    break;
                }
            }
            // Shutting down: what is queued still goes out, in one last write.
            receiver.close();
            while let Ok(act) = receiver.try_recv() {
                unwritten.push(act);
            }
            if !unwritten.is_empty()
                && let Err(error) = sso.stores.events.append_events(unwritten).await
            {
                tracing::error!(error = %error, "audit acts lost at shutdown");
            }
        }
    }

    /// Writes a batch of acts, retrying while the store refuses; gives the batch back if
    /// `stop` comes first.
    async fn write_acts(
        &self,
        batch: Vec<Write<Vec<NewEvent>>>,
        stop: &CancellationToken,
    ) -> Result<(), Vec<Write<Vec<NewEvent>>>> {
        loop {
            let Err(error) = self.stores.events.append_events(batch.clone()).await else {
                return Ok(());
            };
            tracing::warn!(error = %error, acts = batch.len(), "audit acts not written; retrying");
            if stop
                .run_until_cancelled(tokio::time::sleep(ACT_RETRY))
                .await
                .is_none()
            {
                return Err(batch);
            }
        }
    }

    /// Stored events, oldest first (super-user).
    pub async fn list_events(
        &self,
        caller: &Caller,
        filter: EventFilter,
        page: PageRequest,
    ) -> ServiceResult<EventsPage> {
        caller.require_super_user()?;
        let types: Vec<&str> = filter.types.iter().map(|kind| kind.as_str()).collect();
        let description = serde_json::json!([
            types,
            filter.user.map(|user| user.to_string()),
            filter.session.map(|session| session.to_string()),
            filter
                .start
                .map(|time| humantime::format_rfc3339_micros(time).to_string()),
            filter
                .end
                .map(|time| humantime::format_rfc3339_micros(time).to_string()),
        ])
        .to_string();
        let after = page
            .cursor(&description)?
            .map(|cursor| {
                EventId::parse(&cursor).ok_or_else(|| {
                    ServiceError::invalid("page_token", "not a token this server issued")
                })
            })
            .transpose()?;
        let limit = page.limit();
        let query = EventQuery {
            after,
            types: filter.types,
            user: filter.user,
            session: filter.session,
            start: filter.start,
            end: filter.end,
            limit: limit + 1,
        };
        let mut events = self.stores.events.list_events(&query).await?;
        let next_page_token = if events.len() > limit {
            events.truncate(limit);
            events
                .last()
                .map(|event| page_token(&description, &event.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(EventsPage {
            events,
            next_page_token,
        })
    }

    /// The events after `after` (none: from now on), then live ones as they settle, of the
    /// given types (empty: all); each once, in id order (super-user), with a heartbeat after
    /// each quiet spell of the configured length. The stream reads the log a page at a time,
    /// only when its consumer has taken the last page, so a slow consumer costs one page of
    /// memory and catches up from the store. A cursor whose event is gone is past the
    /// retention (`CursorExpired`). It ends with `UstInvalid` once the caller's session no
    /// longer stands.
    pub async fn watch_events(
        self: &Arc<Self>,
        caller: &Caller,
        after: Option<EventId>,
        types: Vec<EventType>,
    ) -> ServiceResult<EventStream> {
        caller.require_super_user()?;
        let cursor = match after {
            // The zero id is before every event: everything still stored.
            Some(after) if after == EventId::default() => after,
            Some(after) => {
                if !self.stores.events.event_stored(after).await? {
                    return Err(ServiceError::CursorExpired);
                }
                after
            }
            None => self.stores.events.event_head().await?,
        };
        let watch = Watch::new(Arc::clone(self), caller.clone(), cursor, types);
        Ok(Box::pin(futures::stream::unfold(watch, Watch::next)))
    }

    /// Writes every event recorded from now on (by any replica) as a log line of target
    /// `ssod::audit`, and counts it, until `stop`. It reads the log like a watch, so a line
    /// shows exactly what is stored; with several replicas each writes every event (its
    /// `event_id` tells duplicates apart).
    pub fn audit_log(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let sso = Arc::clone(self);
        async move {
            let start = tokio::select! {
                head = sso.stores.events.event_head() => head,
                _ = stop.cancelled() => return,
            };
            let mut follower = Follower::new(sso, start.unwrap_or_default());
            loop {
                let page = tokio::select! {
                    page = follower.next_page(WATCH_RECHECK) => page,
                    _ = stop.cancelled() => break,
                };
                match page {
                    Ok(page) => page.iter().flatten().for_each(log_event),
                    // Only a log more than the retention behind: go on from the newest.
                    Err(ServiceError::CursorExpired) => {
                        tracing::warn!(
                            "audit log lines skipped: the retention trimmed events before they were written"
                        );
                        if let Ok(head) = follower.sso.stores.events.event_head().await {
                            follower.cursor = head;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "audit log lines paused: the event log cannot be read");
                        if stop
                            .run_until_cancelled(tokio::time::sleep(ACT_RETRY))
                            .await
                            .is_none()
                        {
                            break;
                        }
                    }
                }
            }
            // Shutting down: what has committed by now is still written, once it settles
            // (an older transaction of the cluster may hold it back a moment).
            let deadline = tokio::time::Instant::now() + AUDIT_DRAIN;
            while let Ok(Some(page)) = follower.next_before(deadline).await {
                page.iter().for_each(log_event);
            }
        }
    }

    /// `session.read`: a super-user looked at a session (unless this reader's last record of
    /// it by `method` is more recent than the read interval).
    pub(super) async fn record_session_read(
        &self,
        caller: &Caller,
        client: &ClientInfo,
        session: &crate::domain::Session,
        method: &'static str,
    ) -> ServiceResult<()> {
        if let Some(recent) = &self.recent_reads
            && !recent.claim((caller.session.id, session.id, method), self.clock.now())
        {
            return Ok(());
        }
        let event = NewEvent::new(EventType::SessionRead)
            .user(session.user_id)
            .session(Some(session.id))
            .detail("method", method);
        self.record_act(self.context(Some(caller), Some(client)), vec![event])
            .await
    }
}

/// Who read which session by which method: the key of [`RecentReads`].
type Read = (SessionId, SessionId, &'static str);

/// Sessions' last recorded reads, when a super-user's repeated reads of a session are
/// recorded once per interval (`SSOD_AUDIT_READ_INTERVAL`): an application that verifies the
/// same USTs many times a second would otherwise write an event per call. Bounded: a read
/// forgotten early (past the capacity) is only recorded again.
pub(super) struct RecentReads {
    interval: Duration,
    recorded: moka::sync::Cache<Read, SystemTime>,
}

/// Reads remembered at once.
const RECENT_READS: u64 = 100_000;

impl RecentReads {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            recorded: moka::sync::Cache::builder()
                .max_capacity(RECENT_READS)
                .time_to_live(interval)
                .build(),
        }
    }

    /// Whether `read` at `now` is to be recorded; if so, it is the last recorded from now
    /// on. Atomic per key, so concurrent reads record once.
    fn claim(&self, read: Read, now: SystemTime) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let recent = |last: SystemTime| now < last + self.interval;
        // The common case, a read recorded lately, takes no entry lock.
        if self.recorded.get(&read).is_some_and(recent) {
            return false;
        }
        let result = self
            .recorded
            .entry(read)
            .and_compute_with(|last| match last {
                Some(last) if recent(*last.value()) => Op::Nop,
                _ => Op::Put(now),
            });
        !matches!(result, CompResult::Unchanged(_) | CompResult::StillNone(_))
    }
}

/// One event as a log line of target `ssod::audit`, and in the count of recorded events.
fn log_event(event: &Event) {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let context = &event.context;
    tracing::info!(
        target: "ssod::audit",
        event_id = %event.id,
        time = %humantime::format_rfc3339_micros(event.time),
        r#type = event.event.kind.as_str(),
        cid = %context.cid,
        actor_user_id = %id(context.actor_user.map(|user| user.0)),
        actor_session_id = %id(context.actor_session.map(|session| session.0)),
        user_id = %id(event.event.user.map(|user| user.0)),
        session_id = %id(event.event.session.map(|session| session.0)),
        current_app = %context.current_app,
        remote_addr = %context.remote_addr,
        user_agent = %context.user_agent,
        reason = %event.event.reason,
        details = %serde_json::Value::Object(event.event.details.clone()),
        "event"
    );
    metrics::counter!("ssod_events_recorded_total", "type" => event.event.kind.as_str())
        .increment(1);
}

/// Reads the log after a cursor, a page at a time, waiting for new events: what a watch
/// and the audit log line writer share.
struct Follower {
    sso: Arc<Sso>,
    cursor: EventId,
    wakeups: Option<watch::Receiver<u64>>,
}

impl Follower {
    fn new(sso: Arc<Sso>, cursor: EventId) -> Self {
        let wakeups = sso.event_wakeups.clone();
        Self {
            sso,
            cursor,
            wakeups,
        }
    }

    /// A page of settled events after the cursor, which moves past them.
    async fn read(&mut self) -> ServiceResult<EventFeed> {
        let feed = self
            .sso
            .stores
            .events
            .event_feed(self.cursor, WATCH_PAGE)
            .await?;
        if let Some(last) = feed.events.last() {
            self.cursor = last.id;
        }
        Ok(feed)
    }

    /// The next events after the cursor, waiting only while some are stored but not settled
    /// yet, and not past `deadline`; `None` when there is nothing more to wait for.
    async fn next_before(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Vec<Event>>> {
        loop {
            let feed = self.read().await?;
            if !feed.events.is_empty() {
                return Ok(Some(feed.events));
            }
            if !feed.pending || tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(UNSETTLED_RETRY).await;
        }
    }

    /// The next settled events after the cursor, which moves past them; waits for some, but
    /// not beyond `within` (then `None`).
    async fn next_page(&mut self, within: Duration) -> ServiceResult<Option<Vec<Event>>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Marks the wake-ups seen before reading, so one that comes during the read is
            // not lost.
            if let Some(wakeups) = &mut self.wakeups {
                wakeups.mark_unchanged();
            }
            let feed = self.read().await?;
            if !feed.events.is_empty() {
                return Ok(Some(feed.events));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let wait = if feed.pending {
                UNSETTLED_RETRY
            } else {
                WATCH_POLL
            }
            .min(left);
            match &mut self.wakeups {
                Some(wakeups) => {
                    if let Ok(Err(_)) = tokio::time::timeout(wait, wakeups.changed()).await {
                        // Nobody wakes this follower any more: it polls.
                        self.wakeups = None;
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// One watch's state between the messages it sends.
struct Watch {
    follower: Follower,
    caller: Caller,
    types: Vec<EventType>,
    /// Read but not sent yet.
    page: std::vec::IntoIter<Event>,
    last_recheck: tokio::time::Instant,
    /// An error was sent: the stream ends.
    failed: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        metrics::gauge!("ssod_event_streams_open").decrement(1.0);
    }
}

impl Watch {
    fn new(sso: Arc<Sso>, caller: Caller, cursor: EventId, types: Vec<EventType>) -> Self {
        metrics::gauge!("ssod_event_streams_open").increment(1.0);
        Self {
            follower: Follower::new(sso, cursor),
            caller,
            types,
            page: Vec::new().into_iter(),
            last_recheck: tokio::time::Instant::now(),
            failed: false,
        }
    }

    async fn next(mut self) -> Option<(ServiceResult<WatchMessage>, Self)> {
        if self.failed {
            return None;
        }
        let message = self.next_message().await;
        self.failed = message.is_err();
        Some((message, self))
    }

    async fn next_message(&mut self) -> ServiceResult<WatchMessage> {
        let sso = Arc::clone(&self.follower.sso);
        let heartbeat = sso.policy.event_heartbeat;
        let quiet_since = tokio::time::Instant::now();
        loop {
            for event in self.page.by_ref() {
                if self.types.is_empty() || self.types.contains(&event.event.kind) {
                    let lag = sso
                        .clock
                        .now()
                        .duration_since(event.time)
                        .unwrap_or_default();
                    metrics::histogram!("ssod_event_stream_lag_seconds").record(lag.as_secs_f64());
                    return Ok(WatchMessage::Event(Box::new(event)));
                }
            }
            if self.last_recheck.elapsed() >= WATCH_RECHECK {
                sso.recheck(&self.caller).await?.require_super_user()?;
                self.last_recheck = tokio::time::Instant::now();
            }
            let quiet_for = heartbeat.saturating_sub(quiet_since.elapsed());
            match self
                .follower
                .next_page(quiet_for.min(WATCH_RECHECK))
                .await?
            {
                Some(page) => self.page = page.into_iter(),
                None if quiet_since.elapsed() >= heartbeat => return Ok(WatchMessage::Heartbeat),
                None => {}
            }
        }
    }
}
