//! The audit trail: how long events are kept, and how often an idle watch hears from the
//! server.

use std::time::Duration;

use clap::Args;

use super::duration;

#[derive(Clone, Debug, Args)]
pub struct EventsConfig {
    /// How long events are kept; the expiry sweep deletes older ones.
    #[arg(long = "event-retention", env = "SSOD_EVENT_RETENTION", default_value = "90days", value_parser = duration, global = true)]
    pub retention: Duration,
    /// An idle `WatchEvents` stream gets a heartbeat (a message without an event) after this
    /// long without a message, so proxies keep it open.
    #[arg(long = "event-heartbeat", env = "SSOD_EVENT_HEARTBEAT", default_value = "15s", value_parser = duration, global = true)]
    pub heartbeat: Duration,
    /// A super-user's repeated reads of one session (`VerifySession`, `GetSession`) record
    /// one `session.read` per reading session, read session and method in this long; `0`
    /// records every read.
    #[arg(long = "audit-read-interval", env = "SSOD_AUDIT_READ_INTERVAL", default_value = "0s", value_parser = duration, global = true)]
    pub read_interval: Duration,
}

/// The event rules of the service policy; field names are the policy's.
pub struct EventRules {
    pub event_retention: Duration,
    pub event_heartbeat: Duration,
    pub session_read_interval: Option<Duration>,
}

impl EventsConfig {
    pub fn policy(&self) -> EventRules {
        EventRules {
            event_retention: self.retention,
            // A heartbeat every instant would be a busy loop.
            event_heartbeat: self.heartbeat.max(Duration::from_secs(1)),
            session_read_interval: (!self.read_interval.is_zero()).then_some(self.read_interval),
        }
    }
}
