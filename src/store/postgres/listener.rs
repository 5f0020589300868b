//! One `LISTEN` connection per process, shared by everything that follows what other replicas
//! change (the UST cache's invalidations, the event stream's wake-ups). PostgreSQL delivers a
//! `NOTIFY` to every connection listening on its channel, so one connection serves any number
//! of subscribers; it lives outside the pool, because a pooled connection is handed to others.
//!
//! A notification is only a hint that something changed, and one can be lost: while the
//! connection is down, between a reconnect and its `LISTEN`, or when a subscriber falls behind
//! ([`broadcast::error::RecvError::Lagged`]). Subscribers therefore watch [`Listener::state`]:
//! any change of it (down, or up with a new epoch) means notifications may have been missed,
//! and they must assume everything changed (flush a cache, re-read a table).

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::StoreResult;
use crate::lifecycle::Lifecycle;

/// The channels the listener subscribes to; a feature that follows changes adds its own.
pub const CHANNELS: &[&str] = &[crate::store::cache::CHANNEL, super::events::CHANNEL];

/// The `application_name` of the listener's connection, so operators (and tests) can find it
/// in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "ssod-listener";

/// Notifications kept for a subscriber that has not read them yet; beyond that it lags.
const BUFFERED: usize = 4096;
/// How often an idle connection is checked, so a silently dead one is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait to connect, to `LISTEN` or for a ping's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between reconnection attempts: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_LAST: Duration = Duration::from_secs(5);

/// One `NOTIFY` as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub channel: Arc<str>,
    pub payload: Arc<str>,
}

/// Whether notifications are being received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listening {
    /// Not connected, or connected but not yet listening: notifications are being missed.
    Down,
    /// Listening on every channel since the `epoch`-th connection was made.
    Up { epoch: u64 },
}

/// A handle on the process's listener; clones share it.
#[derive(Clone, Debug)]
pub struct Listener {
    notifications: broadcast::Sender<Notification>,
    state: watch::Receiver<Listening>,
}

impl Listener {
    /// Starts listening on [`CHANNELS`] over a connection string as the store accepts it,
    /// reconnecting until the lifecycle stops. No I/O happens before this returns.
    pub fn start(url: &str, lifecycle: &Lifecycle) -> StoreResult<Self> {
        Self::start_on(url, CHANNELS, lifecycle)
    }

    /// As [`Listener::start`], on the given channels.
    pub fn start_on(
        url: &str,
        channels: &'static [&'static str],
        lifecycle: &Lifecycle,
    ) -> StoreResult<Self> {
        let (mut config, tls) = super::connection_config(url)?;
        config.application_name(APPLICATION_NAME);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(ANSWER_TIMEOUT);
        }
        let (notifications, _) = broadcast::channel(BUFFERED);
        let (state_sender, state) = watch::channel(Listening::Down);
        let connection = Connection {
            config,
            tls,
            channels,
            notifications: notifications.clone(),
            state: state_sender,
        };
        lifecycle.spawn(connection.run(lifecycle.token()));
        Ok(Self {
            notifications,
            state,
        })
    }

    /// Notifications from now on, on every channel.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }

    /// Whether notifications are being received; see the module documentation.
    pub fn state(&self) -> watch::Receiver<Listening> {
        self.state.clone()
    }
}

/// The task that owns the connection.
struct Connection {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channels: &'static [&'static str],
    notifications: broadcast::Sender<Notification>,
    state: watch::Sender<Listening>,
}

impl Connection {
    async fn run(self, stop: CancellationToken) {
        let mut epoch = 0;
        let mut wait = RECONNECT_FIRST;
        while !stop.is_cancelled() {
            epoch += 1;
            let outcome = stop
                .run_until_cancelled(self.listen(epoch, &mut wait))
                .await;
            self.state.send_replace(Listening::Down);
            metrics::gauge!("ssod_listener_up").set(0.0);
            let Some(cause) = outcome else { break };
            tracing::warn!(cause = %cause, retry_in = ?wait, "notification listener down");
            if stop
                .run_until_cancelled(tokio::time::sleep(wait))
                .await
                .is_none()
            {
                break;
            }
            wait = (wait * 2).min(RECONNECT_LAST);
        }
    }

    /// Connects, listens and forwards notifications until the connection fails; why it did.
    async fn listen(&self, epoch: u64, wait: &mut Duration) -> String {
        let connected = tokio::time::timeout(ANSWER_TIMEOUT, self.config.connect(self.tls.clone()));
        let (client, mut connection) = match connected.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => return format!("connect: {error}"),
            Err(_) => return "connect: timed out".into(),
        };
        // The connection must be polled for the client's queries to progress, and it is what
        // yields the notifications: a task drives it and forwards them.
        let (forward, mut received) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        let notification = Notification {
                            channel: notification.channel().into(),
                            payload: notification.payload().into(),
                        };
                        if forward.send(Ok(notification)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let _ = forward.send(Err(error.to_string()));
                        return;
                    }
                }
            }
            let _ = forward.send(Err("connection closed".into()));
        });
        // Aborting the driver drops the connection when this returns, whichever way.
        let _driver = AbortOnDrop(driver);

        let statements: String = self
            .channels
            .iter()
            .map(|channel| format!("LISTEN \"{channel}\";"))
            .collect();
        match tokio::time::timeout(ANSWER_TIMEOUT, client.batch_execute(&statements)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return format!("listen: {error}"),
            Err(_) => return "listen: timed out".into(),
        }
        self.state.send_replace(Listening::Up { epoch });
        metrics::gauge!("ssod_listener_up").set(1.0);
        tracing::info!(epoch, "notification listener up");
        *wait = RECONNECT_FIRST;

        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            tokio::select! {
                received = received.recv() => match received {
                    Some(Ok(notification)) => {
                        // No subscriber is not an error: nobody follows that channel yet.
                        let _ = self.notifications.send(notification);
                    }
                    Some(Err(cause)) => return cause,
                    None => return "connection task ended".into(),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(ANSWER_TIMEOUT, client.simple_query("")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return format!("ping: {error}"),
                        Err(_) => return "ping: timed out".into(),
                    }
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Channel names go into the `LISTEN` text unquoted but for the double quotes: they must
    /// be plain identifiers.
    #[test]
    fn channel_names_are_plain_identifiers() {
        for channel in CHANNELS {
            assert!(
                !channel.is_empty()
                    && channel
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{channel}"
            );
        }
    }

    #[test]
    fn tls_configuration_errors_surface_at_start() {
        let lifecycle = Lifecycle::new();
        let error = Listener::start("postgres://h/db?sslmode=bogus", &lifecycle)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("invalid database url"), "{error}");
    }
}
