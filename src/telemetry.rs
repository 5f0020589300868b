//! Logging: human-readable by default, JSON on request. Every line inside a call carries the
//! `rpc` span with its cid.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, filter::LevelFilter, fmt};

use crate::config::LogFormat;

/// Drivers whose debug output carries query parameters (password hashes, token hashes,
/// attribute values): kept at info at most unless the filter names them explicitly.
const PARAMETER_LOGGERS: &[&str] = &["tokio_postgres"];

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(directives(filter)).unwrap_or_else(|_| EnvFilter::new("info"));
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

/// The filter with the parameter loggers capped: at the filter's default level, but never
/// more verbose than info (so `warn` keeps the driver's notices out too).
fn directives(filter: &str) -> String {
    let default = filter
        .rsplit(',')
        .find_map(|directive| directive.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::OFF);
    let cap = default.min(LevelFilter::INFO);
    let mut directives = filter.to_owned();
    for target in PARAMETER_LOGGERS {
        if !filter.contains(target) {
            directives.push_str(&format!(",{target}={cap}"));
        }
    }
    directives
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn parameter_loggers_never_log_more_than_the_default_nor_above_info() {
        assert_eq!(directives("debug"), "debug,tokio_postgres=info");
        assert_eq!(directives("warn"), "warn,tokio_postgres=warn");
        assert_eq!(
            directives("info,ssod=debug"),
            "info,ssod=debug,tokio_postgres=info"
        );
        assert_eq!(directives("ssod=trace"), "ssod=trace,tokio_postgres=off");
        assert_eq!(
            directives("warn,tokio_postgres=debug"),
            "warn,tokio_postgres=debug"
        );
    }
}
