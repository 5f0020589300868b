//! The `ssod` binary: parse the configuration, set up logging, run the library.

use clap::Parser;

/// mimalloc returns freed memory to the OS; glibc's malloc kept every Argon2id block (19 MiB
/// per hash) and grew to hundreds of MiB under logins.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ssod::config::Cli::parse();
    ssod::telemetry::init(cli.config.server.log_format, &cli.config.server.log);
    if let Some(address) = cli.config.server.metrics_listen {
        ssod::metrics::install(address);
    }
    match ssod::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "ssod failed");
            eprintln!("ssod: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
