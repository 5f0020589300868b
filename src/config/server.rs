//! Where and how the server listens, stops and reports.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use super::duration;

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
    /// PEM server certificate chain; with `--tls-key` the server speaks TLS.
    #[arg(long, env = "SSOD_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "SSOD_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[arg(long, env = "SSOD_TLS_CLIENT_CA", requires = "tls_cert", global = true)]
    pub tls_client_ca: Option<PathBuf>,
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
}
