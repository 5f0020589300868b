//! The Prometheus endpoint: request counts and latencies per RPC and code (recorded by the
//! observe layer), sweeper deletions, login outcomes.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Serves `/metrics` on `address`; logs and carries on if it cannot.
pub fn install(address: SocketAddr) {
    let installed = PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
        .and_then(|builder| builder.install());
    match installed {
        Ok(()) => tracing::info!(%address, "metrics endpoint listening"),
        Err(error) => tracing::warn!(error = %error, "metrics endpoint not started"),
    }
}
