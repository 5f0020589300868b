//! The `ssod` binary: parse the configuration, set up logging, run the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ssod::config::Cli::parse();
    ssod::telemetry::init(cli.config.log_format, &cli.config.log);
    if let Some(address) = cli.config.metrics_listen {
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
