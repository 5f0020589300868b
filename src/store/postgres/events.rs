//! The audit log in PostgreSQL (`0008_events.sql`). Writes fold their events into their own
//! statements (see [`sql::events`]); this holds the records those statements read, and the
//! log's reads.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value, value::RawValue};
use tokio::sync::{broadcast, watch};
use tokio_postgres::types::Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    PostgresStore, Retry,
    error::from_pg,
    listener::Listener,
    rows::{self, to_i64},
    sql,
};
use crate::{
    domain::{Event, EventContext, EventFeed, EventId, EventQuery, NewEvent, Write},
    store::{EventStore, StoreError, StoreResult},
};

/// The `ssod_events` channel: the migration's trigger notifies it when events commit.
pub const CHANNEL: &str = "ssod_events";

/// Events as the `jsonb` array `jsonb_populate_recordset(NULL::events, …)` reads, serialized
/// once: the parameter a statement binds.
pub(super) type Records = Json<Box<RawValue>>;

/// One event as a record of that array: an `events` row but for its id. Templates leave
/// `user_id` and `session_id` to the statement. Serialized straight from borrowed fields, on
/// the path of every write (and of every super-user's `VerifySession`).
#[derive(Serialize)]
struct Record<'a> {
    time: &'a str,
    r#type: &'static str,
    cid: &'a str,
    actor_user_id: Option<Uuid>,
    actor_session_id: Option<Uuid>,
    current_app: &'a str,
    remote_addr: &'a str,
    user_agent: &'a str,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    reason: &'a str,
    details: &'a Map<String, Value>,
}

impl<'a> Record<'a> {
    fn new(time: &'a str, context: &'a EventContext, event: &'a NewEvent) -> Self {
        Self {
            time,
            r#type: event.kind.as_str(),
            cid: &context.cid,
            actor_user_id: context.actor_user.map(|id| id.0),
            actor_session_id: context.actor_session.map(|id| id.0),
            current_app: &context.current_app,
            remote_addr: &context.remote_addr,
            user_agent: &context.user_agent,
            user_id: event.user.map(|id| id.0),
            session_id: event.session.map(|id| id.0),
            reason: &event.reason,
            details: &event.details,
        }
    }
}

fn record_time(now: SystemTime) -> String {
    humantime::format_rfc3339_micros(now).to_string()
}

fn serialized(records: &[Record<'_>]) -> Records {
    // Strings, ids and a map of JSON values always serialize.
    Json(serde_json::value::to_raw_value(records).unwrap_or_default())
}

/// The records of a write's events.
pub(super) fn write_records<C>(write: &Write<C>, events: &[NewEvent]) -> Records {
    let time = record_time(write.now);
    let records: Vec<Record<'_>> = events
        .iter()
        .map(|event| Record::new(&time, &write.context, event))
        .collect();
    serialized(&records)
}

/// No events: for a statement that records them only on some runs.
pub(super) fn no_records() -> Records {
    serialized(&[])
}

/// An id as the statements' two `int8` parameters.
fn id_parameters(id: EventId) -> (i64, i64) {
    (
        i64::try_from(id.transaction).unwrap_or(i64::MAX),
        i64::try_from(id.sequence).unwrap_or(i64::MAX),
    )
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append_events(&self, batches: Vec<Write<Vec<NewEvent>>>) -> StoreResult<()> {
        let times: Vec<String> = batches.iter().map(|batch| record_time(batch.now)).collect();
        let records: Vec<Record<'_>> = batches
            .iter()
            .zip(&times)
            .flat_map(|(batch, time)| {
                batch
                    .command
                    .iter()
                    .map(|event| Record::new(time, &batch.context, event))
            })
            .collect();
        // Never: a second run would record the events twice.
        self.execute(
            Retry::Never,
            sql::events::APPEND_EVENTS,
            &[&serialized(&records)],
        )
        .await
        .map(drop)
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>> {
        let (transaction, sequence) = match query.after.map(id_parameters) {
            Some((transaction, sequence)) => (Some(transaction), sequence),
            None => (None, 0),
        };
        let types: Vec<&str> = query.types.iter().map(|kind| kind.as_str()).collect();
        let rows = self
            .query(
                Retry::Safe,
                sql::events::LIST_EVENTS,
                &[
                    &transaction,
                    &sequence,
                    &types,
                    &query.user.map(|id| id.0),
                    &query.session.map(|id| id.0),
                    &query.start,
                    &query.end,
                    &to_i64(query.limit),
                ],
            )
            .await?;
        rows.iter()
            .filter_map(|row| rows::event(row, 0).transpose())
            .collect()
    }

    async fn event_feed(&self, after: EventId, limit: usize) -> StoreResult<EventFeed> {
        let (transaction, sequence) = id_parameters(after);
        let rows = self
            .query(
                Retry::Safe,
                sql::events::FEED,
                &[&transaction, &sequence, &to_i64(limit)],
            )
            .await?;
        let mut feed = EventFeed::default();
        for row in &rows {
            // The horizon row always exists; the zero cursor means "the oldest kept".
            let expired: bool = row.try_get(1).map_err(from_pg)?;
            if expired && after != EventId::default() {
                return Err(StoreError::CursorExpired);
            }
            feed.pending = row.try_get(0).map_err(from_pg)?;
            if let Some(event) = rows::event(row, sql::FEED_STATE.width())? {
                feed.events.push(event);
            }
        }
        Ok(feed)
    }

    async fn event_stored(&self, id: EventId) -> StoreResult<bool> {
        let (transaction, sequence) = id_parameters(id);
        let row = self
            .query_one(
                Retry::Safe,
                sql::events::EVENT_EXISTS,
                &[&transaction, &sequence],
            )
            .await?;
        row.try_get(0).map_err(from_pg)
    }

    async fn event_head(&self) -> StoreResult<EventId> {
        let row = self.query_opt(Retry::Safe, sql::events::HEAD, &[]).await?;
        let Some(row) = row else {
            return Ok(EventId::default());
        };
        let transaction: i64 = row.try_get(0).map_err(from_pg)?;
        let sequence: i64 = row.try_get(1).map_err(from_pg)?;
        Ok(EventId {
            transaction: rows::to_u64(transaction),
            sequence: rows::to_u64(sequence),
        })
    }
}

/// Wake-ups for event watches, from the process's listener: bumped by every notification on
/// [`CHANNEL`], by every change of the listener's state (a reconnected listener may have
/// missed some) and by a lagging subscription. The future forwards them until `stop`.
pub fn follow_notifications(
    listener: &Listener,
    stop: CancellationToken,
) -> (
    watch::Receiver<u64>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (wake, wakeups) = watch::channel(0u64);
    let mut notifications = listener.subscribe();
    let mut state = listener.state();
    let follow = async move {
        loop {
            tokio::select! {
                received = notifications.recv() => match received {
                    Ok(notification) if &*notification.channel != CHANNEL => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                changed = state.changed() => if changed.is_err() {
                    return;
                },
                _ = stop.cancelled() => return,
            }
            wake.send_modify(|count| *count += 1);
        }
    };
    (wakeups, follow)
}
