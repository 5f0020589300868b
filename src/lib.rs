//! ssod: a single-sign-on session service over gRPC.
//!
//! Data flows one way: a request enters [`grpc`] (validated and converted from proto types
//! into [`domain`] types, with the caller resolved by the authentication layer), is decided
//! by [`service`] (every business rule), and is persisted by a [`store::Store`] (in memory
//! or PostgreSQL). Time comes from a [`clock::Clock`], keys from a [`crypto::KeyRing`]:
//! both are injected so tests control them. [`server`] wires it together with health,
//! reflection, metrics and graceful shutdown; [`config`] is the one typed configuration.

pub mod clock;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod service;
pub mod store;

pub mod proto {
    tonic::include_proto!("sso.v1");
    // `Debug` of the messages that carry secrets (prost skips its own for them; build.rs).
    include!(concat!(env!("OUT_DIR"), "/redacting_debug.rs"));

    pub(crate) mod redacted;

    /// Serialised descriptors of the sso.v1 protos and their imports, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sso_descriptor.bin"));
}

pub mod config;
pub mod server;
pub mod telemetry;

use std::{
    io::{BufRead, IsTerminal, Write as _},
    path::Path,
    sync::Arc,
};

use zeroize::Zeroizing;

use crate::{
    clock::{Clock, SystemClock},
    config::{Cli, Command, Config, SchemaMode},
    crypto::{KeyRing, PasswordHasherPool},
    lifecycle::Lifecycle,
    mail::Mailer,
    server::ServeOptions,
    service::{Dependencies, SignUpMode, Sso, TokenDelivery},
    store::{
        Store,
        cache::AuthCache,
        memory::MemoryStore,
        postgres::{PostgresStore, events, listener::Listener},
    },
};

/// Why the process could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("start-up: {0}")]
    Startup(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the command line: serve (the default), migrate, or create a super-user.
pub async fn run(cli: Cli) -> Result<(), AppError> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let store = open_store(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
            let background = Background::start(config.database.url.as_deref())?;
            let sso = build_service(&config, store, Arc::new(SystemClock), &background)?;
            bootstrap(&config, &sso).await?;
            server::serve(
                listener,
                sso,
                serve_options(&config)?,
                background.lifecycle,
                shutdown_signal(),
            )
            .await
        }
        Command::Migrate => {
            require_database(&config)?;
            let mut migrate = config;
            migrate.database.schema = SchemaMode::Migrate;
            open_store(&migrate).await.map(drop)
        }
        Command::CreateSuperUser {
            username,
            password_stdin,
        } => {
            require_database(&config)?;
            let password = if password_stdin {
                let mut line = Zeroizing::new(String::new());
                std::io::stdin().lock().read_line(&mut line)?;
                Some(Zeroizing::new(
                    line.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            } else {
                None
            };
            let store = open_store(&config).await?;
            let sso = build_service(
                &config,
                store,
                Arc::new(SystemClock),
                &Background::start(None)?,
            )?;
            match sso
                .bootstrap_super_user(&username, password.map(Into::into))
                .await
                .map_err(super_user_error)?
            {
                Some((user, generated)) => {
                    announce_super_user(
                        &user.username,
                        generated.map(Zeroizing::new),
                        config.bootstrap.super_user_password_file.as_deref(),
                    );
                    Ok(())
                }
                None => Err(AppError::Config(format!(
                    "a user named {username:?} exists"
                ))),
            }
        }
    }
}

fn require_database(config: &Config) -> Result<(), AppError> {
    match config.database.url {
        Some(_) => Ok(()),
        None => Err(AppError::Config(
            "this command needs SSOD_DATABASE_URL (or --database-url)".into(),
        )),
    }
}

/// The embedded store, or PostgreSQL when a URL is configured: migrated (or, with
/// `--schema check`, checked) before it is used.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    let Some(url) = &config.database.url else {
        return Ok(Arc::new(MemoryStore::new()));
    };
    let store = PostgresStore::connect(url, config.database.pg_settings())?;
    match config.database.schema {
        SchemaMode::Migrate => {
            let applied = store.migrate().await?;
            tracing::info!(applied = ?applied, "schema migrated");
            // Refuses a schema that a newer ssod has moved past.
            store.check_schema().await?;
        }
        SchemaMode::Check => store.check_schema().await?,
    }
    Ok(Arc::new(store))
}

/// What runs beside the service for the life of the process: the lifecycle of its background
/// tasks (which `server::serve` then takes over) and, on PostgreSQL, the one connection that
/// receives `NOTIFY`s.
pub struct Background {
    pub lifecycle: Lifecycle,
    pub listener: Option<Listener>,
}

impl Background {
    /// A lifecycle, and a listener on `database_url` when one is given (no I/O yet).
    pub fn start(database_url: Option<&str>) -> Result<Self, AppError> {
        let lifecycle = Lifecycle::new();
        let listener = database_url
            .map(|url| Listener::start(url, &lifecycle))
            .transpose()?;
        Ok(Self {
            lifecycle,
            listener,
        })
    }
}

/// The service over an injected store and clock, with the configured key ring and policy.
/// With a listener, the UST cache goes in front of the store ([`store::cache`]), following
/// the listener on the background lifecycle.
pub fn build_service(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    background: &Background,
) -> Result<Arc<Sso>, AppError> {
    let keys = match &config.encryption.keys {
        Some(spec) => KeyRing::parse(spec).map_err(|error| AppError::Config(error.to_string()))?,
        None if config.database.url.is_none() => {
            tracing::warn!(
                "no SSOD_ENCRYPTION_KEYS: using an ephemeral key; encrypted values die with the process"
            );
            KeyRing::ephemeral()
        }
        None => {
            tracing::warn!("no SSOD_ENCRYPTION_KEYS: encrypted attributes are refused");
            KeyRing::default()
        }
    };
    let passwords = PasswordHasherPool::new(config.passwords.hasher_settings())
        .map_err(|error| AppError::Startup(error.to_string()))?;
    // Event watches wake when the store records events (memory) or when a NOTIFY says some
    // replica did (PostgreSQL); without either they poll.
    let event_wakeups = store.event_wakeups().or_else(|| {
        background.listener.as_ref().map(|listener| {
            let (wakeups, follow) =
                events::follow_notifications(listener, background.lifecycle.token());
            background.lifecycle.spawn(follow);
            wakeups
        })
    });
    let mut stores = store::Stores::new(store);
    let cache = config.cache.settings().map_err(AppError::Config)?;
    if let (Some(settings), Some(listener)) = (cache, &background.listener) {
        let cache = Arc::new(AuthCache::new(settings, &stores));
        background
            .lifecycle
            .spawn(cache.follow(listener, background.lifecycle.token()));
        stores = cache.wrap(stores);
    }
    let policy = config.policy();
    let signup_on = policy.accounts.sign_up != SignUpMode::Off;
    let mailer = match config.mail.smtp(signup_on).map_err(AppError::Config)? {
        Some(settings) => Mailer::start(settings, &background.lifecycle)
            .map_err(|error| AppError::Config(error.to_string()))?,
        None => {
            if config.mail.delivery() == TokenDelivery::Mail {
                tracing::warn!("no SSOD_SMTP_URL: password reset mails are not sent");
            }
            Mailer::without_relay()
        }
    };
    let sso = Arc::new(Sso::new(Dependencies {
        stores,
        clock,
        keys,
        passwords,
        policy,
        event_wakeups,
        mailer,
    }));
    background
        .lifecycle
        .spawn(sso.act_writer(background.lifecycle.token()));
    background
        .lifecycle
        .spawn(sso.audit_log(background.lifecycle.token()));
    Ok(sso)
}

/// Creates the configured start-up super-user if it does not exist yet.
pub async fn bootstrap(config: &Config, sso: &Sso) -> Result<(), AppError> {
    let Some(username) = &config.bootstrap.super_user else {
        return Ok(());
    };
    let password = config.bootstrap.password().map_err(AppError::Config)?;
    let created = sso
        .bootstrap_super_user(username, password.map(Into::into))
        .await
        .map_err(super_user_error)?;
    if let Some((user, generated)) = created {
        announce_super_user(
            &user.username,
            generated.map(Zeroizing::new),
            config.bootstrap.super_user_password_file.as_deref(),
        );
    }
    Ok(())
}

/// A start-up super-user's password the policy refuses is a configuration error that says
/// why (zxcvbn's advice, never the password).
fn super_user_error(error: service::ServiceError) -> AppError {
    match error.field_violations() {
        [violation, ..] => AppError::Config(format!(
            "the super-user's password is refused: {error}: {}",
            violation.description
        )),
        [] => AppError::Service(error),
    }
}

/// A generated password is shown once, only where the operator alone sees it, never in a log
/// line: on stderr when it is a terminal (in a container stderr is the log stream), else in
/// the password file when one is named and does not exist yet, else nowhere.
fn announce_super_user(
    username: &str,
    generated: Option<Zeroizing<String>>,
    password_file: Option<&Path>,
) {
    tracing::info!(username, "super-user created");
    let Some(password) = generated else {
        return;
    };
    if std::io::stderr().is_terminal() {
        eprintln!(
            "ssod: created super-user {username:?} with generated password: {}",
            password.as_str()
        );
        return;
    }
    let not_shown = |why: &str| {
        tracing::warn!(
            username,
            why,
            "generated super-user password not shown: give it one with ChangePassword as \
             another super-user (`ssod create-super-user --username NAME --password-stdin` \
             makes one), or name a new SSOD_SUPER_USER_PASSWORD_FILE next time"
        );
    };
    let Some(path) = password_file else {
        not_shown("stderr is not a terminal");
        return;
    };
    match write_new_secret_file(path, &password) {
        Ok(()) => {
            tracing::info!(username, file = %path.display(), "generated super-user password written to its file");
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            not_shown("the password file exists and is never overwritten");
        }
        // Not fatal: the user exists now, so failing start-up would change nothing but
        // restart into a server that no longer generates (a read-only Secret mount, say).
        Err(error) => not_shown(&format!("the password file cannot be written: {error}")),
    }
}

/// Creates `path` readable by its owner only and writes `secret` and a newline; an existing
/// file is an `AlreadyExists` error, never overwritten.
fn write_new_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

pub fn serve_options(config: &Config) -> Result<ServeOptions, AppError> {
    let tls = config.tls.server_tls()?;
    Ok(ServeOptions {
        tls,
        sweep_interval: config.sessions.sweep_interval,
        shutdown_timeout: config.server.shutdown_timeout,
        health_probe_interval: config.server.health_probe_interval,
        limits: config
            .server
            .limits(&config.limits.policy())
            .map_err(AppError::Config)?,
    })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
