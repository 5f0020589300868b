//! The audit log in memory: a bounded log written under the store's one lock, by the same
//! method call that makes the change, so a change and its events are seen together or not
//! at all. Every event is settled at once (no transaction stays open), and the oldest go
//! first once the log holds [`CAPACITY`] events.

use std::{collections::VecDeque, time::SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;

use super::MemoryStore;
use crate::{
    domain::{
        Event, EventContext, EventFeed, EventId, EventQuery, NewEvent, SessionId, UserId, Write,
    },
    store::{EventStore, StoreError, StoreResult},
};

/// Events kept; the oldest are dropped beyond it.
pub const CAPACITY: usize = 100_000;

pub(super) struct EventLog {
    events: VecDeque<Event>,
    /// The last write's number: each write's events share one, as a transaction's do.
    last_write: u64,
    last_sequence: u64,
    /// The newest event dropped (past the capacity or the retention): a watcher whose
    /// cursor is below it may have missed it.
    dropped_through: EventId,
    /// Bumped after every write that recorded events: wakes the watchers.
    wakeups: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            last_write: 0,
            last_sequence: 0,
            dropped_through: EventId::default(),
            wakeups: watch::Sender::new(0),
        }
    }
}

impl EventLog {
    /// Appends the events of one write at `now` by `context`.
    pub(super) fn record(
        &mut self,
        now: SystemTime,
        context: &EventContext,
        events: Vec<NewEvent>,
    ) {
        if events.is_empty() {
            return;
        }
        self.last_write += 1;
        for event in events {
            self.last_sequence += 1;
            if self.events.len() == CAPACITY
                && let Some(dropped) = self.events.pop_front()
            {
                self.dropped_through = self.dropped_through.max(dropped.id);
            }
            self.events.push_back(Event {
                id: EventId {
                    transaction: self.last_write,
                    sequence: self.last_sequence,
                },
                time: now,
                context: context.clone(),
                event,
            });
        }
        self.wakeups.send_modify(|count| *count += 1);
    }

    /// Deletes the events recorded before `before`; how many.
    pub(super) fn trim(&mut self, before: SystemTime) -> u64 {
        let kept = self.events.len();
        let mut dropped_through = self.dropped_through;
        self.events.retain(|event| {
            let keep = event.time >= before;
            if !keep {
                dropped_through = dropped_through.max(event.id);
            }
            keep
        });
        self.dropped_through = dropped_through;
        (kept - self.events.len()) as u64
    }

    /// Fills each template in once per deleted session (with its user) and records them.
    pub(super) fn record_for_sessions(
        &mut self,
        now: SystemTime,
        context: &EventContext,
        templates: &[NewEvent],
        sessions: &[(SessionId, Option<UserId>)],
    ) {
        let events = sessions
            .iter()
            .flat_map(|(session, user)| {
                templates
                    .iter()
                    .map(|template| template.clone().session(Some(*session)).user(*user))
            })
            .collect();
        self.record(now, context, events);
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append_events(&self, batches: Vec<Write<Vec<NewEvent>>>) -> StoreResult<()> {
        let mut state = self.lock()?;
        for batch in batches {
            state
                .events
                .record(batch.now, &batch.context, batch.command);
        }
        Ok(())
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>> {
        let state = self.lock()?;
        Ok(state
            .events
            .events
            .iter()
            .filter(|event| query.matches(event))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn event_feed(&self, after: EventId, limit: usize) -> StoreResult<EventFeed> {
        let state = self.lock()?;
        // The zero id asks for whatever is kept.
        if after != EventId::default() && after < state.events.dropped_through {
            return Err(StoreError::CursorExpired);
        }
        let log = &state.events.events;
        let start = log.partition_point(|event| event.id <= after);
        Ok(EventFeed {
            events: log.range(start..).take(limit).cloned().collect(),
            pending: false,
        })
    }

    async fn event_head(&self) -> StoreResult<EventId> {
        let state = self.lock()?;
        Ok(EventId {
            transaction: state.events.last_write,
            sequence: state.events.last_sequence,
        })
    }

    async fn event_stored(&self, id: EventId) -> StoreResult<bool> {
        let state = self.lock()?;
        let log = &state.events.events;
        Ok(log.binary_search_by(|event| event.id.cmp(&id)).is_ok())
    }

    fn event_wakeups(&self) -> Option<watch::Receiver<u64>> {
        let state = self.lock().ok()?;
        Some(state.events.wakeups.subscribe())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::EventType;

    #[tokio::test]
    async fn a_watcher_behind_the_dropped_events_is_told_so() {
        let store = MemoryStore::new();
        let act = || {
            Write::new(
                SystemTime::UNIX_EPOCH,
                vec![NewEvent::new(EventType::SessionRead)],
            )
        };
        store.append_events(vec![act()]).await.unwrap();
        let first = store.event_head().await.unwrap();
        store.append_events(vec![act()]).await.unwrap();
        let second = store.event_head().await.unwrap();
        store
            .append_events((0..CAPACITY).map(|_| act()).collect())
            .await
            .unwrap();
        assert!(
            !store.event_stored(second).await.unwrap(),
            "dropped at the bound"
        );
        assert!(
            matches!(
                store.event_feed(first, 1).await,
                Err(StoreError::CursorExpired)
            ),
            "the second event is gone after it"
        );
        let from_second = store.event_feed(second, 1).await.unwrap();
        let from_zero = store.event_feed(EventId::default(), 1).await.unwrap();
        assert_eq!(from_second.events, from_zero.events, "the oldest kept");
        assert_eq!(from_zero.events.len(), 1);
    }
}
