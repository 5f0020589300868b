//! Where and how the server listens, stops and reports.

use std::{net::SocketAddr, time::Duration};

use bytesize::ByteSize;
use clap::{Args, ValueEnum};

use super::duration;
use crate::{domain::Limits, server::ServerLimits};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct ServerConfig {
    /// gRPC listen address.
    #[arg(
        long,
        env = "SSOD_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: SocketAddr,
    /// How long shutdown waits for in-flight calls.
    #[arg(long, env = "SSOD_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration, global = true)]
    pub shutdown_timeout: Duration,
    /// How often the store is pinged: health turns NOT_SERVING while it does not answer.
    #[arg(long, env = "SSOD_HEALTH_PROBE_INTERVAL", default_value = "2s", value_parser = duration, global = true)]
    pub health_probe_interval: Duration,
    /// Prometheus metrics address (`/metrics`); absent = no metrics endpoint.
    #[arg(long, env = "SSOD_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "SSOD_LOG", default_value = "info", global = true)]
    pub log: String,
    #[arg(long, env = "SSOD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// HTTP/2 streams (calls) open at once on one connection, advertised in SETTINGS.
    #[arg(
        long,
        env = "SSOD_MAX_CONCURRENT_STREAMS",
        default_value_t = 200,
        global = true
    )]
    pub max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server accepts them, before the
    /// connection is closed (the "rapid reset" attack).
    #[arg(
        long,
        env = "SSOD_MAX_PENDING_RESET_STREAMS",
        default_value_t = 20,
        global = true
    )]
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset for a client's protocol errors before the connection is
    /// closed.
    #[arg(
        long,
        env = "SSOD_MAX_LOCAL_RESET_STREAMS",
        default_value_t = 1024,
        global = true
    )]
    pub max_local_reset_streams: usize,
    /// The largest request or response message (`8MiB`, `512KiB`, plain bytes).
    #[arg(
        long,
        env = "SSOD_MAX_MESSAGE_BYTES",
        default_value = "8MiB",
        global = true
    )]
    pub max_message_bytes: ByteSize,
    /// Calls served at once across the process; more are refused at once (`OVERLOADED`).
    #[arg(
        long,
        env = "SSOD_MAX_IN_FLIGHT",
        default_value_t = 4096,
        global = true
    )]
    pub max_in_flight: usize,
    /// Server-side deadline of a call whose client sends a longer or no `grpc-timeout`.
    #[arg(long, env = "SSOD_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration, global = true)]
    pub request_timeout: Duration,
    /// How often an HTTP/2 ping checks an idle connection's peer.
    #[arg(long, env = "SSOD_KEEPALIVE_INTERVAL", default_value = "60s", value_parser = duration, global = true)]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "SSOD_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = duration, global = true)]
    pub keepalive_timeout: Duration,
    /// Age at which a connection is asked to close (GOAWAY), so clients reconnect and a
    /// mesh rebalances.
    #[arg(long, env = "SSOD_MAX_CONNECTION_AGE", default_value = "30m", value_parser = duration, global = true)]
    pub max_connection_age: Duration,
    /// How long calls may still run on a connection past its age before it is closed.
    #[arg(long, env = "SSOD_MAX_CONNECTION_AGE_GRACE", default_value = "5m", value_parser = duration, global = true)]
    pub max_connection_age_grace: Duration,
}

/// Room one attribute takes in a message beyond its value and its name: field tags and
/// lengths, the scope and owner of a write, an expiration, the encrypt flag, and in a
/// response its three timestamps (a `Timestamp` is at most 17 bytes with its tag).
const ATTRIBUTE_FRAMING_BYTES: u64 = 128;

/// The largest write the attribute limits admit: a `SetAttributes` of the most items, their
/// values bounded by the owner's byte limit, each name up to 4 bytes of UTF-8 a character,
/// counted twice for the response that echoes it (an `Attribute` in a map). A read of all
/// of an owner's attributes can be larger when the per-owner count allows more than one
/// write's items; the README gives the arithmetic.
fn largest_attribute_message(limits: &Limits) -> u64 {
    let items = limits.max_items_per_write as u64;
    let values = (limits.max_bytes_per_owner as u64).min(items * limits.max_value_bytes as u64);
    let name_bytes = 4 * limits.max_name_chars as u64;
    values + items * (2 * name_bytes + ATTRIBUTE_FRAMING_BYTES)
}

impl ServerConfig {
    /// The transport's limits; refuses a message limit too small for what the attribute
    /// limits admit, which would otherwise be refused for its size.
    pub fn limits(&self, attributes: &Limits) -> Result<ServerLimits, String> {
        if self.max_in_flight == 0 || self.max_concurrent_streams == 0 {
            return Err(
                "SSOD_MAX_IN_FLIGHT and SSOD_MAX_CONCURRENT_STREAMS must be at least 1".into(),
            );
        }
        let needed = largest_attribute_message(attributes);
        let max_message_bytes = self.max_message_bytes.as_u64();
        if max_message_bytes < needed {
            return Err(format!(
                "SSOD_MAX_MESSAGE_BYTES ({max_message_bytes} bytes) is below the {needed} bytes \
                 the largest write at the attribute limits needs"
            ));
        }
        Ok(ServerLimits {
            max_concurrent_streams: self.max_concurrent_streams,
            max_pending_reset_streams: self.max_pending_reset_streams,
            max_local_reset_streams: self.max_local_reset_streams,
            max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
            max_in_flight: self.max_in_flight,
            request_timeout: self.request_timeout,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
            max_connection_age: self.max_connection_age,
            max_connection_age_grace: self.max_connection_age_grace,
        })
    }
}
