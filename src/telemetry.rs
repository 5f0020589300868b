//! Logging: human-readable by default, JSON on request. Every line inside a call carries the
//! `rpc` span with its cid.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Drivers whose debug output carries query parameters (password hashes, token hashes,
/// attribute values): kept at info unless the filter names them explicitly.
const PARAMETER_LOGGERS: &[&str] = &["tokio_postgres"];

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(format: LogFormat, filter: &str) {
    let mut directives = filter.to_owned();
    for target in PARAMETER_LOGGERS {
        if !filter.contains(target) {
            directives.push_str(&format!(",{target}=info"));
        }
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _already_installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
