//! Load figures for the README: `cargo bench --bench load`.
//!
//! ```sh
//! cargo bench --bench load                                   # both stores, defaults
//! cargo bench --bench load -- --seconds 5 --concurrency 32 --store postgres
//! ```
//!
//! Starts the real `ssod` binary (built by cargo for this bench, release profile) as a
//! subprocess on a free 127.0.0.1 port, once per store, and drives it with `--concurrency`
//! tasks spread over `--channels` HTTP/2 connections. Every workload runs for a 1 s warm-up
//! and then `--seconds` measured; only calls that start and finish inside the measured
//! window count. `req/s` counts successful calls; latencies are of every counted call.
//!
//! Workloads: `Health/Check` (service ""), `VerifySession` (a super-user's UST verifying a
//! logged-in user's UST), `GetAttribute` and `SetAttribute` on the caller's own session
//! (each task has its own session; names cycle over 100 so the per-owner limit is never
//! hit), `SetAttribute` with every task on one shared session, and `Login` (Argon2id-bound,
//! at `--login-concurrency`, at most 3 s). On PostgreSQL, raw baselines run through
//! tokio-postgres at the same concurrency with a pool of ssod's default size (16), against
//! the same database, table and sessions:
//!
//! - `raw_upsert`: one autocommitted single-row `INSERT … ON CONFLICT DO UPDATE` of the same
//!   columns (the target's denominator);
//! - `raw_write`: what ssod's store runs per write (`ssod::store::postgres::sql`): one
//!   statement calling the `ssod_set_session_attributes` function, which locks the owner row,
//!   counts its other live attributes and upserts;
//! - `raw_write_auth`: the same plus the UST look-up (renewing when due) that ssod's auth
//!   layer does first on its own pooled connection: all the database work of one
//!   `SetAttribute`.
//!
//! The `cpu` columns are cores used during the measured window, from `/proc`: the ssod
//! process, this bench process, and everything else on the machine (PostgreSQL mostly).
//!
//! PostgreSQL is `SSOD_BENCH_DATABASE_URL` when set (the bench creates uniquely named users
//! there and leaves them behind: use a disposable database), else a fresh database on the
//! integration tests' throwaway cluster (`tests/integration/pg.rs`; `fsync=off`,
//! `synchronous_commit=off`, so writes are not durable-write figures).
//!
//! All traffic goes to 127.0.0.1; every loop is bounded by time; the server subprocess is
//! stopped with SIGTERM at the end of its store's run and killed by a drop guard otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{
    ADDR, ADMIN_PASSWORD, CALL_TIMEOUT, Server, Window, command_output, database_url, drive,
};

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime},
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use ssod::{
    proto::{
        self, AttributeScope, attribute_service_client::AttributeServiceClient,
        session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
    },
    store::postgres::sql::{attributes::SESSION_ATTRIBUTES, sessions::SESSION_BY_TOKEN_RENEWING},
};
use tokio_postgres::NoTls;
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

const WARM_UP: Duration = Duration::from_secs(1);
/// Login is Argon2id-bound (tens of ms of CPU each): it runs at most this long.
const LOGIN_SECONDS: u64 = 3;
/// ssod's default `SSOD_DB_POOL_SIZE`; the raw baselines use a pool of the same size.
const POOL_SIZE: usize = 16;
/// Attribute names cycle over this many, far below the per-owner limit of 1,000.
const NAMES: u64 = 100;
const APP: &str = "bench";
const AGENT: &str = "ssod-load-bench";
const USER_PASSWORD: &str = "bench-user-password-1";

// The raw baselines run the statements ssod's PostgreSQL store runs for a SetAttribute on a
// session (`ssod::store::postgres::sql`): the auth layer's `SESSION_BY_TOKEN_RENEWING`, then
// `SESSION_ATTRIBUTES.set`.

/// The baseline: the same upsert of one row, no transaction, no lock, no count.
const RAW_UPSERT: &str = "INSERT INTO session_attributes AS a (session_id, name, value, \
     key_id, created_at, modified_at, expires_at) VALUES ($1, $2, $3, NULL, $4, $4, NULL) \
     ON CONFLICT (session_id, name) DO UPDATE SET \
       value = excluded.value, key_id = excluded.key_id, \
       expires_at = excluded.expires_at, \
       created_at = CASE WHEN a.expires_at IS NOT NULL \
         AND a.expires_at <= excluded.modified_at \
         THEN excluded.created_at ELSE a.created_at END, \
       modified_at = excluded.modified_at \
     RETURNING a.name, a.value, a.key_id, a.created_at, a.modified_at, a.expires_at";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Memory,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
struct Args {
    seconds: u64,
    concurrency: usize,
    channels: usize,
    login_concurrency: usize,
    stores: Vec<StoreKind>,
}

const USAGE: &str = "usage: cargo bench --bench load [-- [--seconds N (5)] \
     [--concurrency N (32)] [--channels N (4)] [--login-concurrency N (4)] \
     [--store memory|postgres|both (both)]]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        seconds: 5,
        concurrency: 32,
        channels: 4,
        login_concurrency: 4,
        stores: vec![StoreKind::Memory, StoreKind::Postgres],
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            // `cargo bench` passes this to every bench binary.
            "--bench" => {}
            "-h" | "--help" => return Err(String::new()),
            "--seconds" => parsed.seconds = number(&flag, &value()?, 1, 600)?,
            "--concurrency" => parsed.concurrency = number(&flag, &value()?, 1, 1024)?,
            "--channels" => parsed.channels = number(&flag, &value()?, 1, 64)?,
            "--login-concurrency" => {
                parsed.login_concurrency = number(&flag, &value()?, 1, 64)?;
            }
            "--store" => {
                parsed.stores = match value()?.as_str() {
                    "memory" => vec![StoreKind::Memory],
                    "postgres" => vec![StoreKind::Postgres],
                    "both" => vec![StoreKind::Memory, StoreKind::Postgres],
                    other => return Err(format!("--store {other:?}: memory, postgres or both")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    text: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("{flag} {text:?}: a number from {min} to {max}")),
    }
}

fn main() -> std::process::ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("load: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            };
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(args));
    std::process::ExitCode::SUCCESS
}

async fn bench(args: Args) {
    print_machine(&args);
    for store in args.stores.clone() {
        let database_url = match store {
            StoreKind::Memory => None,
            StoreKind::Postgres => Some(database_url().await),
        };
        run_store(&args, store, database_url.as_deref()).await;
    }
}

fn print_machine(args: &Args) {
    support::print_machine("load");
    println!(
        "each workload: {:.0} s warm-up, then {} s measured (login: at most {LOGIN_SECONDS} s); \
         concurrency {} over {} HTTP/2 channels (login: {})",
        WARM_UP.as_secs_f64(),
        args.seconds,
        args.concurrency,
        args.channels,
        args.login_concurrency
    );
}

// Measuring.

/// CPU time in clock ticks: (this process's, the server's, the whole machine's busy).
#[derive(Clone, Copy)]
struct CpuSample {
    bench: u64,
    server: u64,
    machine_busy: u64,
}

fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some(total - idle)
}

fn cpu_sample(server_pid: u32) -> Option<CpuSample> {
    Some(CpuSample {
        bench: process_ticks("self")?,
        server: process_ticks(&server_pid.to_string())?,
        machine_busy: machine_busy_ticks()?,
    })
}

/// A process's resident memory now, in MiB, from `/proc`.
fn rss(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{} MiB", kib / 1024))
}

fn clock_ticks_per_second() -> f64 {
    command_output("getconf", &["CLK_TCK"])
        .and_then(|text| text.parse().ok())
        .unwrap_or(100.0)
}

/// Cores used in the window: (ssod, bench, everything else).
type CpuUse = (f64, f64, f64);

struct Row {
    name: String,
    concurrency: usize,
    seconds: u64,
    requests: usize,
    ok: usize,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    cpu: Option<CpuUse>,
    /// The server's resident memory at the end of the workload.
    rss: Option<String>,
    first_error: Option<String>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds as f64
    }
}

struct Context {
    server_pid: u32,
    ticks_per_second: f64,
}

const HEADER: &str = "workload                 conc  requests      req/s   p50 ms   p99 ms  \
                      errors   cpu: ssod  bench  other   ssod rss";

fn print_row(row: &Row) {
    let cpu = row.cpu.map_or_else(
        || "          ?      ?      ?".to_owned(),
        |(server, bench, other)| format!("{server:11.2} {bench:6.2} {other:6.2}"),
    );
    let rss = row.rss.as_deref().unwrap_or("?");
    println!(
        "{:<23} {:>5} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>7} {cpu} {rss:>10}",
        row.name,
        row.concurrency,
        row.requests,
        row.rate(),
        row.p50_ms,
        row.p99_ms,
        row.errors
    );
    if let Some(error) = &row.first_error {
        println!("    first error: {error}");
    }
}

/// Runs `concurrency` tasks made by `make` (given the task's index) for the warm-up and
/// `seconds`, prints the row and returns it.
async fn run<M, Op, Fut>(
    context: &Context,
    name: &str,
    concurrency: usize,
    seconds: u64,
    mut make: M,
) -> Row
where
    M: FnMut(usize) -> Op,
    Op: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let measure_from = Instant::now() + WARM_UP;
    let window = Window {
        measure_from,
        end: measure_from + Duration::from_secs(seconds),
    };
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| tokio::spawn(drive(window, make(i))))
        .collect();
    let server_pid = context.server_pid;
    let monitor = async move {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = cpu_sample(server_pid);
        tokio::time::sleep_until(window.end.into()).await;
        let after = cpu_sample(server_pid);
        before.zip(after)
    };
    let bound = WARM_UP + Duration::from_secs(seconds) + CALL_TIMEOUT + Duration::from_secs(5);
    let (samples, tallies) = tokio::time::timeout(
        bound,
        futures::future::join(monitor, futures::future::join_all(tasks)),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: the tasks did not finish within {bound:?}"));
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for tally in tallies {
        let tally = tally.unwrap_or_else(|error| panic!("{name}: a task failed: {error}"));
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    latencies.sort_unstable();
    let percentile = |p: usize| support::percentile_ms(&latencies, p);
    let cpu = samples.map(|(before, after)| {
        let cores = |ticks: u64| ticks as f64 / context.ticks_per_second / seconds as f64;
        let server = after.server.saturating_sub(before.server);
        let bench = after.bench.saturating_sub(before.bench);
        let busy = after.machine_busy.saturating_sub(before.machine_busy);
        (
            cores(server),
            cores(bench),
            cores(busy.saturating_sub(server + bench)),
        )
    });
    let requests = latencies.len();
    let row = Row {
        name: name.to_owned(),
        concurrency,
        seconds,
        requests,
        ok: requests - usize::try_from(errors).unwrap_or(usize::MAX).min(requests),
        errors,
        p50_ms: percentile(50),
        p99_ms: percentile(99),
        cpu,
        rss: rss(context.server_pid),
        first_error,
    };
    print_row(&row);
    row
}

// The clients' side.

fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn bearer(ust: &str) -> MetadataValue<Ascii> {
    format!("Bearer {ust}").parse().expect("header value")
}

fn authed<T>(header: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", header.clone());
    request
}

fn login_request(username: &str, password: &str) -> proto::LoginRequest {
    proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: APP.into(),
        remote_addr: ADDR.into(),
        user_agent: AGENT.into(),
        ..Default::default()
    }
}

/// A small JSON object: `{"theme": "dark", "n": n, "tags": ["a", "b"]}`.
fn small_object(n: u64) -> prost_types::Value {
    use prost_types::{ListValue, Struct, Value, value::Kind};
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let fields = [
        ("theme".to_owned(), string("dark")),
        (
            "n".to_owned(),
            Value {
                kind: Some(Kind::NumberValue(n as f64)),
            },
        ),
        (
            "tags".to_owned(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![string("a"), string("b")],
                })),
            },
        ),
    ];
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: fields.into_iter().collect(),
        })),
    }
}

/// The JSON text ssod stores for [`small_object`] (what the raw baselines write).
fn small_object_json(n: u64) -> Vec<u8> {
    format!(r#"{{"n":{n}.0,"tags":["a","b"],"theme":"dark"}}"#).into_bytes()
}

/// The name a task writes on its `k`th call: tasks start at different names so writers of
/// one shared session do not all hit the same row at once.
fn attribute_name(task: usize, k: u64) -> String {
    format!("bench-{:02}", (task as u64 * 7 + k) % NAMES)
}

/// One logged-in session of the bench user.
#[derive(Clone)]
struct UserSession {
    ust: String,
    header: MetadataValue<Ascii>,
    session_id: Uuid,
}

struct Fixture {
    username: String,
    admin: MetadataValue<Ascii>,
    /// One per task.
    sessions: Vec<UserSession>,
}

async fn setup(channel: &Channel, admin: &str, args: &Args, suffix: &str) -> Fixture {
    let mut users = UserServiceClient::new(channel.clone());
    let admin_ust = users
        .login(login_request(admin, ADMIN_PASSWORD))
        .await
        .unwrap_or_else(|status| panic!("super-user login: {}", status_text(status)))
        .into_inner()
        .ust;
    let admin = bearer(&admin_ust);
    let username = format!("bench-user-{suffix}");
    users
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: username.clone(),
                password: Some(USER_PASSWORD.into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("create the bench user: {}", status_text(status)));
    let sessions: Vec<UserSession> = futures::stream::iter(0..args.concurrency)
        .map(|_| {
            let mut users = users.clone();
            let mut attributes = AttributeServiceClient::new(channel.clone());
            let username = username.clone();
            async move {
                let login = users
                    .login(login_request(&username, USER_PASSWORD))
                    .await
                    .unwrap_or_else(|status| panic!("user login: {}", status_text(status)))
                    .into_inner();
                let session_id = login
                    .session
                    .as_ref()
                    .and_then(|session| session.session_id.parse().ok())
                    .expect("a session id");
                let header = bearer(&login.ust);
                attributes
                    .set_attribute(authed(
                        &header,
                        proto::SetAttributeRequest {
                            scope: AttributeScope::Session as i32,
                            name: "profile".into(),
                            value: Some(small_object(0)),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap_or_else(|status| panic!("set profile: {}", status_text(status)));
                UserSession {
                    ust: login.ust,
                    header,
                    session_id,
                }
            }
        })
        .buffer_unordered(args.login_concurrency)
        .collect()
        .await;
    Fixture {
        username,
        admin,
        sessions,
    }
}

fn raw_pool(url: &str) -> Pool {
    let config: tokio_postgres::Config = url.parse().expect("database url");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1)
        .build()
        .expect("pool")
}

async fn describe_postgres(pool: &Pool, url_source: &str) {
    let client = pool.get().await.expect("a raw connection");
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
    ] {
        let value: String = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .map(|row| row.get(0))
            .unwrap_or_else(|_| "?".into());
        settings.push(format!("{name}={value}"));
    }
    println!("postgresql ({url_source}): {}", settings.join(" "));
}

/// A driver or pool error, with PostgreSQL's own message when there is one.
fn pg_error(error: impl std::error::Error + 'static) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(db) = cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
        {
            return format!("{error}: {}", db.message());
        }
        source = cause.source();
    }
    error.to_string()
}

/// The raw baselines' write: the one statement ssod's store runs.
async fn raw_write(
    pool: &Pool,
    session_id: Uuid,
    name: String,
    value: Vec<u8>,
) -> Result<(), String> {
    let now = SystemTime::now();
    let client = pool.get().await.map_err(pg_error)?;
    let write = client
        .prepare_cached(SESSION_ATTRIBUTES.set)
        .await
        .map_err(pg_error)?;
    let names = vec![name.as_str()];
    let values = vec![value.as_slice()];
    let key_ids: Vec<Option<&str>> = vec![None];
    let expires_at: Vec<Option<SystemTime>> = vec![None];
    let rows = client
        .query(
            &write,
            &[
                &session_id,
                &now,
                &names,
                &values,
                &key_ids,
                &expires_at,
                &i64::from(u16::MAX),
                &i64::MAX,
            ],
        )
        .await
        .map_err(pg_error)?;
    if rows.len() != 1 {
        return Err(format!("the write returned {} rows", rows.len()));
    }
    Ok(())
}

async fn run_store(args: &Args, store: StoreKind, database_url: Option<&str>) {
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_micros())
            .unwrap_or_default()
    );
    let admin = format!("bench-admin-{suffix}");
    println!();
    println!("== store: {} ==", store.name());
    let server = Server::start(database_url, &admin, &[]).await;
    let mut channels = Vec::with_capacity(args.channels);
    for _ in 0..args.channels {
        channels.push(server.channel().await.expect("connect to ssod"));
    }
    let fixture = setup(&channels[0], &admin, args, &suffix).await;
    let raw = database_url.map(raw_pool);
    if let Some(pool) = &raw {
        let source = if std::env::var("SSOD_BENCH_DATABASE_URL").is_ok_and(|v| !v.trim().is_empty())
        {
            "SSOD_BENCH_DATABASE_URL"
        } else {
            "the test harness's throwaway cluster"
        };
        describe_postgres(pool, source).await;
    }
    println!(
        "ssod pid {} on {}, SSOD_LOG=warn; {} sessions of one user, one per task; \
         ssod rss after set-up: {}",
        server.pid(),
        server.address,
        fixture.sessions.len(),
        rss(server.pid()).unwrap_or_else(|| "?".into())
    );
    let context = Context {
        server_pid: server.pid(),
        ticks_per_second: clock_ticks_per_second(),
    };
    let (c, secs) = (args.concurrency, args.seconds);
    let channel_of = |i: usize| channels[i % channels.len()].clone();
    println!("{HEADER}");

    let health = run(&context, "health_check", c, secs, |i| {
        let client = HealthClient::new(channel_of(i));
        move |_| {
            let mut client = client.clone();
            async move {
                let response = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map_err(status_text)?;
                if response.into_inner().status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    Err("not SERVING".into())
                }
            }
        }
    })
    .await;

    let verify = run(&context, "verify_session", c, secs, |i| {
        let client = SessionServiceClient::new(channel_of(i));
        let admin = fixture.admin.clone();
        let target = fixture.sessions[i % fixture.sessions.len()].ust.clone();
        move |_| {
            let mut client = client.clone();
            let request = authed(
                &admin,
                proto::VerifySessionRequest {
                    target_ust: target.clone(),
                    current_app: APP.into(),
                    remote_addr: ADDR.into(),
                },
            );
            async move {
                let response = client.verify_session(request).await.map_err(status_text)?;
                if response.into_inner().valid {
                    Ok(())
                } else {
                    Err("valid = false".into())
                }
            }
        }
    })
    .await;

    run(&context, "get_attribute", c, secs, |i| {
        let client = AttributeServiceClient::new(channel_of(i));
        let header = fixture.sessions[i % fixture.sessions.len()].header.clone();
        move |_| {
            let mut client = client.clone();
            let request = authed(
                &header,
                proto::GetAttributeRequest {
                    scope: AttributeScope::Session as i32,
                    owner_id: String::new(),
                    name: "profile".into(),
                },
            );
            async move {
                client
                    .get_attribute(request)
                    .await
                    .map(drop)
                    .map_err(status_text)
            }
        }
    })
    .await;

    let set_attribute = |name: &'static str, shared: bool| {
        let fixture = &fixture;
        let context = &context;
        let channel_of = &channel_of;
        async move {
            run(context, name, c, secs, |i| {
                let client = AttributeServiceClient::new(channel_of(i));
                let owner = if shared {
                    0
                } else {
                    i % fixture.sessions.len()
                };
                let header = fixture.sessions[owner].header.clone();
                move |k| {
                    let mut client = client.clone();
                    let request = authed(
                        &header,
                        proto::SetAttributeRequest {
                            scope: AttributeScope::Session as i32,
                            name: attribute_name(i, k),
                            value: Some(small_object(k)),
                            ..Default::default()
                        },
                    );
                    async move {
                        client
                            .set_attribute(request)
                            .await
                            .map(drop)
                            .map_err(status_text)
                    }
                }
            })
            .await
        }
    };
    let set = set_attribute("set_attribute", false).await;

    let mut raw_rows = Vec::new();
    if let Some(pool) = &raw {
        let session_of = |i: usize| fixture.sessions[i % fixture.sessions.len()].clone();
        raw_rows.push(
            run(&context, "raw_upsert", c, secs, |i| {
                let pool = pool.clone();
                let session_id = session_of(i).session_id;
                move |k| {
                    let pool = pool.clone();
                    async move {
                        let now = SystemTime::now();
                        let client = pool.get().await.map_err(pg_error)?;
                        let upsert = client.prepare_cached(RAW_UPSERT).await.map_err(pg_error)?;
                        let value = small_object_json(k);
                        client
                            .query_one(&upsert, &[&session_id, &attribute_name(i, k), &value, &now])
                            .await
                            .map(drop)
                            .map_err(pg_error)
                    }
                }
            })
            .await,
        );
        raw_rows.push(
            run(&context, "raw_write", c, secs, |i| {
                let pool = pool.clone();
                let session_id = session_of(i).session_id;
                move |k| {
                    let pool = pool.clone();
                    async move {
                        raw_write(
                            &pool,
                            session_id,
                            attribute_name(i, k),
                            small_object_json(k),
                        )
                        .await
                    }
                }
            })
            .await,
        );
        raw_rows.push(
            run(&context, "raw_write_auth", c, secs, |i| {
                let pool = pool.clone();
                let session = session_of(i);
                let token_hash = Sha256::digest(session.ust.as_bytes()).to_vec();
                move |k| {
                    let pool = pool.clone();
                    let token_hash = token_hash.clone();
                    let session_id = session.session_id;
                    async move {
                        {
                            // The auth layer's look-up, on its own pooled connection,
                            // with ssod's default lifetimes and renewal interval.
                            let now = SystemTime::now();
                            let renewed_before = now - Duration::from_secs(60);
                            let user_expiry = now + Duration::from_secs(3600);
                            let guest_expiry = now + Duration::from_secs(1800);
                            let max_lifetime_micros: i64 = 12 * 3600 * 1_000_000;
                            let client = pool.get().await.map_err(pg_error)?;
                            let lookup = client
                                .prepare_cached(SESSION_BY_TOKEN_RENEWING)
                                .await
                                .map_err(pg_error)?;
                            client
                                .query_opt(
                                    &lookup,
                                    &[
                                        &token_hash,
                                        &now,
                                        &renewed_before,
                                        &user_expiry,
                                        &guest_expiry,
                                        &max_lifetime_micros,
                                    ],
                                )
                                .await
                                .map_err(pg_error)?
                                .ok_or("UST not found")?;
                        }
                        raw_write(
                            &pool,
                            session_id,
                            attribute_name(i, k),
                            small_object_json(k),
                        )
                        .await
                    }
                }
            })
            .await,
        );
    }

    set_attribute("set_attribute_1session", true).await;

    let username = fixture.username.clone();
    run(
        &context,
        "login",
        args.login_concurrency,
        secs.min(LOGIN_SECONDS),
        |i| {
            let client = UserServiceClient::new(channel_of(i));
            let username = username.clone();
            move |_| {
                let mut client = client.clone();
                let request = login_request(&username, USER_PASSWORD);
                async move { client.login(request).await.map(drop).map_err(status_text) }
            }
        },
    )
    .await;

    println!(
        "verify/health = {:.2} (target >= 0.50)",
        verify.rate() / health.rate().max(f64::MIN_POSITIVE)
    );
    if let Some(baseline) = raw_rows.first() {
        println!(
            "set_attribute/raw_upsert = {:.2} (target >= 0.80)",
            set.rate() / baseline.rate().max(f64::MIN_POSITIVE)
        );
        for other in &raw_rows[1..] {
            println!(
                "set_attribute/{} = {:.2} (informational: ssod's own SQL, without gRPC)",
                other.name,
                set.rate() / other.rate().max(f64::MIN_POSITIVE)
            );
        }
    }
    drop(channels);
    println!("ssod {}", server.stop());
}
