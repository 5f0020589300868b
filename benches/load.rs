//! Load figures for the README, and the comparisons of issue 9 in one command:
//! `cargo bench --bench load`.
//!
//! ```sh
//! cargo bench --bench load                                        # the issue's sizes (~6 min)
//! cargo bench --bench load -- --store postgres --sessions 20000 --cache-capacity 10000 --seconds 2
//! ```
//!
//! Starts the real `ssod` binary (built by cargo for this bench, release profile) as a
//! subprocess on a free 127.0.0.1 port and drives it with `--concurrency` tasks spread over
//! `--channels` HTTP/2 connections. Every timed workload runs for a 1 s warm-up and then
//! `--seconds` measured; only calls that start and finish inside the measured window count.
//! `req/s` counts successful calls; latencies are of every counted call.
//!
//! Workloads: `Health/Check` (service ""); `VerifySession` (a super-user's UST verifying a
//! logged-in user's UST, one per task, or a bulk-loaded session's UST picked at random);
//! `GetAttribute` and `SetAttribute` on the caller's own session (each task has its own
//! session; names cycle over 100 so the per-owner limit is never hit); `SetAttribute` with
//! every task writing one row of one session (the hot row); `SetAttributes` of 100 items on
//! the caller's own session; `Login` (Argon2id-bound, at `--login-concurrency`, at most 3 s);
//! and a mixed run of all of these.
//!
//! On PostgreSQL one run measures, side by side, what issue 9 compares, and prints the
//! ratios with their targets at the end:
//!
//! - database "1k": `deploy/capacity/load.sql` bulk-loads 1,000 sessions (with their users
//!   and attributes). Two ssod processes serve it: one with the defaults (the UST cache on:
//!   `SSOD_AUTH_CACHE_TTL=10s`, `SSOD_AUTH_CACHE_CAPACITY=100000`), one with
//!   `SSOD_AUTH_CACHE_TTL=0` (no cache: every UST is looked up in PostgreSQL). The raw
//!   baselines run through tokio-postgres at the same concurrency with a pool of ssod's
//!   default size (16), against the same database, table and sessions:
//!   - `raw_upsert`: one autocommitted single-row `INSERT … ON CONFLICT DO UPDATE` of the
//!     same columns (the targets' denominator), each task on its own session, and
//!     `raw_upsert_hot_row`, every task on one row;
//!   - `raw_write`: what ssod's store runs per write (`ssod::store::postgres::sql`): one
//!     statement calling `ssod_set_session_attributes`, which locks the owner row, counts
//!     its other live attributes and upserts;
//!   - `raw_write_auth`: the same plus the UST look-up (renewing when due) that ssod's auth
//!     layer does first without the cache: all the database work of one uncached
//!     `SetAttribute`.
//! - database "large": `--sessions` (1,000,000) bulk-loaded the same way. An ssod with
//!   `SSOD_AUTH_CACHE_TTL=0` verifies random loaded sessions (p50 against the same on "1k");
//!   then an ssod with the cache at `--cache-capacity` (ssod's default, 100,000) and
//!   `SSOD_AUTH_CACHE_TTL=1h` (so entries stay while the bench fills it on a slow machine)
//!   verifies that many distinct loaded sessions once each, runs the mixed workload, and
//!   reports its peak resident memory (`VmHWM` in `/proc`) and cache entries.
//!
//! A third ssod on "1k" runs `verify_session_cached` with `SSOD_AUDIT_READ_INTERVAL=1m`
//! (a reader's repeated reads of a session recorded once a minute), beside its own
//! `health_check`: what the default `session.read` per call costs the cached path.
//!
//! The `cpu` columns are cores used during the measured window, from `/proc`: the ssod
//! process, this bench process, and everything else on the machine (PostgreSQL mostly).
//! `events/s` (PostgreSQL) counts the audit events stored while measured, by the database's
//! event sequence: a super-user's `VerifySession` and every login record some.
//!
//! PostgreSQL: two fresh databases on the integration tests' throwaway cluster
//! (`tests/integration/pg.rs`; `fsync=off`, `synchronous_commit=off`, so writes are not
//! durable-write figures), or on `SSOD_TEST_DATABASE_URL`'s server (its user may
//! `CREATE DATABASE`; the databases are left behind). The bulk load runs `psql` (from
//! PostgreSQL's bin directory, else PATH).
//!
//! All traffic goes to 127.0.0.1; every loop is bounded by time; each server subprocess is
//! stopped with SIGTERM at the end of its part and killed by a drop guard otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{
    ADDR, ADMIN_PASSWORD, CALL_TIMEOUT, Server, Window, command_output, drive, free_address,
    load_average, metric, pg, scrape,
};

use std::{
    future::Future,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
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
/// Items per `SetAttributes` call.
const BATCH: u64 = 100;
/// Sessions bulk-loaded into the small table, the denominator of the table-size comparison.
const SMALL_TABLE: u64 = 1000;
/// The cache's entry lifetime while it is filled and measured for memory (ssod's maximum).
const FILL_TTL: &str = "1h";
/// `SSOD_AUDIT_READ_INTERVAL` of the run that records repeated reads once per interval.
const READ_INTERVAL: &str = "1m";
/// A bound for filling the cache, for a machine far slower than expected.
const FILL_WITHIN: Duration = Duration::from_secs(1800);
const APP: &str = "bench";
const AGENT: &str = "ssod-load-bench";
const USER_PASSWORD: &str = "bench-user-password-1";

// The issue's targets.
const VERIFY_CACHED_PER_HEALTH: f64 = 0.8;
const PER_HEALTH: f64 = 0.5;
const PER_RAW_UPSERT: f64 = 0.8;
const BATCH_SPEED_UP: f64 = 20.0;
const LARGE_TABLE_P50: f64 = 1.25;
const PEAK_RSS_MIB: f64 = 128.0;

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

#[derive(Clone, Debug)]
struct Args {
    seconds: u64,
    concurrency: usize,
    channels: usize,
    login_concurrency: usize,
    stores: Vec<StoreKind>,
    /// Sessions bulk-loaded into the large table.
    sessions: u64,
    /// `SSOD_AUTH_CACHE_CAPACITY` of the memory run, and how many USTs fill it.
    cache_capacity: u64,
}

const USAGE: &str = "usage: cargo bench --bench load [-- [--seconds N (5)] \
     [--concurrency N (32)] [--channels N (4)] [--login-concurrency N (4)] \
     [--store memory|postgres|both (both)] [--sessions N (1000000)] \
     [--cache-capacity N (100000)]]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        seconds: 5,
        concurrency: 32,
        channels: 4,
        login_concurrency: 4,
        stores: vec![StoreKind::Memory, StoreKind::Postgres],
        sessions: 1_000_000,
        cache_capacity: 100_000,
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
            "--sessions" => {
                parsed.sessions = number(&flag, &value()?, SMALL_TABLE, 100_000_000)?;
            }
            "--cache-capacity" => {
                parsed.cache_capacity = number(&flag, &value()?, 1, 10_000_000)?;
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
    if parsed.concurrency <= parsed.login_concurrency {
        return Err("--concurrency must exceed --login-concurrency (the mixed run)".into());
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
    println!("load average at the start: {}", load_average());
    for store in args.stores.clone() {
        match store {
            StoreKind::Memory => run_memory(&args).await,
            StoreKind::Postgres => run_postgres(&args).await,
        }
    }
    println!();
    println!(
        "load average at the end (other work on the machine counts): {}",
        load_average()
    );
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

/// A field of `/proc/<pid>/status` in KiB: `VmRSS` (resident now) or `VmHWM` (its peak).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A process's resident memory now, in MiB.
fn rss(pid: u32) -> Option<String> {
    status_kib(pid, "VmRSS").map(|kib| format!("{} MiB", kib / 1024))
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
    /// Audit events stored per second while measured (PostgreSQL).
    events_per_second: Option<f64>,
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
    /// The server's database, where the events it records are counted.
    database: Option<Pool>,
}

const HEADER: &str = "workload                 conc  requests      req/s   p50 ms   p99 ms  \
                      errors   cpu: ssod  bench  other   ssod rss   events/s";

/// How many events the database has numbered so far (its event sequence, which every stored
/// event takes a number from).
async fn events_numbered(database: &Pool) -> Option<i64> {
    let client = database.get().await.ok()?;
    let row = client
        .query_one("SELECT last_value FROM event_sequence", &[])
        .await
        .ok()?;
    row.try_get(0).ok()
}

fn print_row(row: &Row) {
    let cpu = row.cpu.map_or_else(
        || "          ?      ?      ?".to_owned(),
        |(server, bench, other)| format!("{server:11.2} {bench:6.2} {other:6.2}"),
    );
    let rss = row.rss.as_deref().unwrap_or("?");
    let events = row
        .events_per_second
        .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}"));
    println!(
        "{:<23} {:>5} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>7} {cpu} {rss:>10} {events:>10}",
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
    let database = context.database.clone();
    let monitor = async move {
        let numbered = async || match &database {
            Some(database) => events_numbered(database).await,
            None => None,
        };
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = (cpu_sample(server_pid), numbered().await);
        tokio::time::sleep_until(window.end.into()).await;
        let after = (cpu_sample(server_pid), numbered().await);
        let events = before.1.zip(after.1).map(|(before, after)| after - before);
        (before.0.zip(after.0), events)
    };
    let bound = WARM_UP + Duration::from_secs(seconds) + CALL_TIMEOUT + Duration::from_secs(5);
    let ((samples, events), tallies) = tokio::time::timeout(
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
        events_per_second: events.map(|events| events as f64 / seconds as f64),
        first_error,
    };
    print_row(&row);
    row
}

// The workloads.

/// A call in flight.
type Call = futures::future::BoxFuture<'static, Result<(), String>>;
/// What one task does on its `k`th call.
type Op = Box<dyn FnMut(u64) -> Call + Send>;

/// Whose UST a `VerifySession` workload verifies.
#[derive(Clone, Copy)]
enum Verified {
    /// The task's own logged-in session (so always the same few: cached when the cache is on).
    Fixture,
    /// A bulk-loaded session picked at random among the first so many.
    Loaded(u64),
}

/// Which row a `SetAttribute` workload writes.
#[derive(Clone, Copy)]
enum Rows {
    /// The task's own session, names cycling over [`NAMES`].
    Spread,
    /// One name of one session, for every task.
    HotRow,
}

/// One ssod process under load: its clients and the sessions its tasks use.
struct Target {
    server: Server,
    channels: Vec<Channel>,
    fixture: Fixture,
    context: Context,
    seconds: u64,
    concurrency: usize,
    login_concurrency: usize,
}

impl Target {
    /// Starts ssod with `settings` on `database_url` (the embedded store when `None`), logs
    /// one session per task in and prints what it is.
    async fn start(
        args: &Args,
        database_url: Option<&str>,
        settings: &[(&str, &str)],
        what: &str,
    ) -> Target {
        let suffix = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|elapsed| elapsed.subsec_micros())
                .unwrap_or_default()
        );
        let admin = format!("bench-admin-{suffix}");
        let server = Server::start(database_url, &admin, settings).await;
        let mut channels = Vec::with_capacity(args.channels);
        for _ in 0..args.channels {
            channels.push(server.channel().await.expect("connect to ssod"));
        }
        let fixture = setup(&channels[0], &admin, args, &suffix).await;
        println!();
        println!(
            "-- ssod {what}: pid {} on {}, SSOD_LOG=warn; {} sessions of one user, one per \
             task; rss after set-up {}; load average {}",
            server.pid(),
            server.address,
            fixture.sessions.len(),
            rss(server.pid()).unwrap_or_else(|| "?".into()),
            load_average()
        );
        println!("{HEADER}");
        let context = Context {
            server_pid: server.pid(),
            ticks_per_second: clock_ticks_per_second(),
            database: database_url.map(raw_pool),
        };
        Target {
            server,
            channels,
            fixture,
            context,
            seconds: args.seconds,
            concurrency: args.concurrency,
            login_concurrency: args.login_concurrency,
        }
    }

    fn channel(&self, task: usize) -> Channel {
        self.channels[task % self.channels.len()].clone()
    }

    fn session(&self, task: usize) -> &UserSession {
        &self.fixture.sessions[task % self.fixture.sessions.len()]
    }

    /// `make(task)` at `--concurrency` for `--seconds`; prints and returns the row.
    async fn run(&self, name: &str, make: impl FnMut(usize) -> Op) -> Row {
        run(&self.context, name, self.concurrency, self.seconds, make).await
    }

    fn health_op(&self, task: usize) -> Op {
        let client = HealthClient::new(self.channel(task));
        Box::new(move |_| {
            let mut client = client.clone();
            Box::pin(async move {
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
            })
        })
    }

    fn verify_op(&self, task: usize, verified: Verified) -> Op {
        let client = SessionServiceClient::new(self.channel(task));
        let admin = self.fixture.admin.clone();
        let own = self.session(task).ust.clone();
        Box::new(move |_| {
            let target = match verified {
                Verified::Fixture => own.clone(),
                Verified::Loaded(count) => loaded_ust(rand::random::<u64>() % count + 1),
            };
            Box::pin(verify(client.clone(), admin.clone(), target))
        })
    }

    fn get_attribute_op(&self, task: usize) -> Op {
        let client = AttributeServiceClient::new(self.channel(task));
        let header = self.session(task).header.clone();
        Box::new(move |_| {
            let mut client = client.clone();
            let request = authed(
                &header,
                proto::GetAttributeRequest {
                    scope: AttributeScope::Session as i32,
                    owner_id: String::new(),
                    name: "profile".into(),
                },
            );
            Box::pin(async move {
                client
                    .get_attribute(request)
                    .await
                    .map(drop)
                    .map_err(status_text)
            })
        })
    }

    fn set_attribute_op(&self, task: usize, rows: Rows) -> Op {
        let client = AttributeServiceClient::new(self.channel(task));
        let header = match rows {
            Rows::Spread => self.session(task),
            Rows::HotRow => self.session(0),
        }
        .header
        .clone();
        Box::new(move |k| {
            let mut client = client.clone();
            let name = match rows {
                Rows::Spread => attribute_name(task, k),
                Rows::HotRow => "hot".into(),
            };
            let request = authed(
                &header,
                proto::SetAttributeRequest {
                    scope: AttributeScope::Session as i32,
                    name,
                    value: Some(small_object(k)),
                    ..Default::default()
                },
            );
            Box::pin(async move {
                client
                    .set_attribute(request)
                    .await
                    .map(drop)
                    .map_err(status_text)
            })
        })
    }

    /// `SetAttributes` of [`BATCH`] items (the same names each time) on the task's session.
    fn set_attributes_op(&self, task: usize) -> Op {
        let client = AttributeServiceClient::new(self.channel(task));
        let header = self.session(task).header.clone();
        Box::new(move |k| {
            let mut client = client.clone();
            let request = authed(
                &header,
                proto::SetAttributesRequest {
                    scope: AttributeScope::Session as i32,
                    attributes: (0..BATCH)
                        .map(|n| proto::AttributeWrite {
                            name: format!("batch-{n:02}"),
                            value: Some(small_object(k)),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            );
            Box::pin(async move {
                let written = client
                    .set_attributes(request)
                    .await
                    .map_err(status_text)?
                    .into_inner()
                    .attributes
                    .len();
                if written as u64 == BATCH {
                    Ok(())
                } else {
                    Err(format!("{written} attributes written of {BATCH}"))
                }
            })
        })
    }

    fn login_op(&self, task: usize) -> Op {
        let client = UserServiceClient::new(self.channel(task));
        let username = self.fixture.username.clone();
        Box::new(move |_| {
            let mut client = client.clone();
            let request = login_request(&username, USER_PASSWORD);
            Box::pin(async move { client.login(request).await.map(drop).map_err(status_text) })
        })
    }

    async fn health(&self) -> Row {
        self.run("health_check", |task| self.health_op(task)).await
    }

    async fn verify(&self, name: &str, verified: Verified) -> Row {
        self.run(name, |task| self.verify_op(task, verified)).await
    }

    async fn get_attribute(&self, name: &str) -> Row {
        self.run(name, |task| self.get_attribute_op(task)).await
    }

    async fn set_attribute(&self, name: &str, rows: Rows) -> Row {
        self.run(name, |task| self.set_attribute_op(task, rows))
            .await
    }

    async fn set_attributes(&self) -> Row {
        self.run("set_attributes_100", |task| self.set_attributes_op(task))
            .await
    }

    async fn login(&self) -> Row {
        run(
            &self.context,
            "login",
            self.login_concurrency,
            self.seconds.min(LOGIN_SECONDS),
            |task| self.login_op(task),
        )
        .await
    }

    /// Logins at `--login-concurrency`; the other tasks verify random loaded sessions (of
    /// `loaded`), read, write, and write batches, a quarter each.
    async fn mixed(&self, loaded: u64) -> Row {
        self.run("mixed", |task| {
            if task < self.login_concurrency {
                return self.login_op(task);
            }
            match task % 4 {
                0 => self.verify_op(task, Verified::Loaded(loaded)),
                1 => self.get_attribute_op(task),
                2 => self.set_attribute_op(task, Rows::Spread),
                _ => self.set_attributes_op(task),
            }
        })
        .await
    }

    /// Verifies loaded sessions 1 to `count` once each, so that the cache holds them; prints
    /// what it did.
    async fn fill_cache(&self, count: u64) {
        let next = Arc::new(AtomicU64::new(1));
        let started = Instant::now();
        let deadline = started + FILL_WITHIN;
        let tasks: Vec<_> = (0..self.concurrency)
            .map(|task| {
                let client = SessionServiceClient::new(self.channel(task));
                let admin = self.fixture.admin.clone();
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    let (mut done, mut errors) = (0u64, 0u64);
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n > count || Instant::now() >= deadline {
                            break (done, errors);
                        }
                        done += 1;
                        if verify(client.clone(), admin.clone(), loaded_ust(n))
                            .await
                            .is_err()
                        {
                            errors += 1;
                        }
                    }
                })
            })
            .collect();
        let (mut done, mut errors) = (0, 0);
        for task in futures::future::join_all(tasks).await {
            let (task_done, task_errors) = task.expect("a fill task");
            done += task_done;
            errors += task_errors;
        }
        println!(
            "cache fill: {done} distinct loaded sessions verified once each in {:.1} s \
             ({errors} errors); ssod rss {}",
            started.elapsed().as_secs_f64(),
            rss(self.server.pid()).unwrap_or_else(|| "?".into())
        );
    }

    fn stop(self) {
        drop(self.channels);
        println!("ssod {}", self.server.stop());
    }
}

async fn verify(
    mut client: SessionServiceClient<Channel>,
    admin: MetadataValue<Ascii>,
    target: String,
) -> Result<(), String> {
    let request = authed(
        &admin,
        proto::VerifySessionRequest {
            target_ust: target,
            current_app: APP.into(),
            remote_addr: ADDR.into(),
        },
    );
    let response = client.verify_session(request).await.map_err(status_text)?;
    if response.into_inner().valid {
        Ok(())
    } else {
        Err("valid = false".into())
    }
}

/// The UST of bulk-loaded session `n`: `capacity_ust(n)` in `deploy/capacity/load.sql`.
fn loaded_ust(n: u64) -> String {
    let digest = Sha256::digest(n.to_be_bytes());
    format!("ssod_ust_{}", URL_SAFE_NO_PAD.encode(digest))
}

/// `1k`, `20k`, `1m`: a table size as the rows name it.
fn table_label(sessions: u64) -> String {
    if sessions.is_multiple_of(1_000_000) {
        format!("{}m", sessions / 1_000_000)
    } else if sessions.is_multiple_of(1000) {
        format!("{}k", sessions / 1000)
    } else {
        sessions.to_string()
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    numerator / denominator.max(f64::MIN_POSITIVE)
}

async fn run_memory(args: &Args) {
    println!();
    println!("== store: memory ==");
    let target = Target::start(args, None, &[], "on the embedded store").await;
    let health = target.health().await;
    let verify = target.verify("verify_session", Verified::Fixture).await;
    target.get_attribute("get_attribute").await;
    target.set_attribute("set_attribute", Rows::Spread).await;
    target
        .set_attribute("set_attribute_hot_row", Rows::HotRow)
        .await;
    target.set_attributes().await;
    target.login().await;
    println!(
        "verify/health = {:.2} (target >= {PER_HEALTH:.2})",
        ratio(verify.rate(), health.rate())
    );
    target.stop();
}

async fn run_postgres(args: &Args) {
    println!();
    println!("== store: postgres ==");
    let small = pg::fresh_database_url().await;
    bulk_load(&small, SMALL_TABLE).await;
    let raw = raw_pool(&small);
    describe_postgres(&raw).await;
    let small_label = table_label(SMALL_TABLE);

    let cached = Target::start(
        args,
        Some(&small),
        &[],
        &format!(
            "with the UST cache at its defaults (SSOD_AUTH_CACHE_TTL=10s, \
             SSOD_AUTH_CACHE_CAPACITY=100000), table of {small_label}"
        ),
    )
    .await;
    let health = cached.health().await;
    let verify_cached = cached
        .verify("verify_session_cached", Verified::Fixture)
        .await;
    let get_cached = cached.get_attribute("get_attribute").await;
    let set = cached.set_attribute("set_attribute", Rows::Spread).await;
    let set_hot = cached
        .set_attribute("set_attribute_hot_row", Rows::HotRow)
        .await;
    let batch = cached.set_attributes().await;
    let raw_upsert = cached
        .run("raw_upsert", |task| {
            raw_upsert_op(&raw, cached.session(task).session_id, task, Rows::Spread)
        })
        .await;
    let raw_upsert_hot = cached
        .run("raw_upsert_hot_row", |task| {
            raw_upsert_op(&raw, cached.session(0).session_id, task, Rows::HotRow)
        })
        .await;
    let raw_write = cached
        .run("raw_write", |task| {
            raw_write_op(&raw, cached.session(task).session_id, task)
        })
        .await;
    let raw_write_auth = cached
        .run("raw_write_auth", |task| {
            raw_write_auth_op(&raw, cached.session(task), task)
        })
        .await;
    cached.login().await;
    cached.stop();

    // The same verifications with repeated reads recorded once a minute: what the audit
    // trail's session.read per call costs the cached path.
    let reads_once = Target::start(
        args,
        Some(&small),
        &[("SSOD_AUDIT_READ_INTERVAL", READ_INTERVAL)],
        &format!(
            "with the UST cache at its defaults and SSOD_AUDIT_READ_INTERVAL={READ_INTERVAL}, \
             table of {small_label}"
        ),
    )
    .await;
    let health_reads_once = reads_once.health().await;
    let verify_reads_once = reads_once
        .verify("verify_session_cached", Verified::Fixture)
        .await;
    reads_once.stop();

    let uncached = Target::start(
        args,
        Some(&small),
        &[("SSOD_AUTH_CACHE_TTL", "0")],
        &format!("with SSOD_AUTH_CACHE_TTL=0 (no cache), table of {small_label}"),
    )
    .await;
    let health_uncached = uncached.health().await;
    let verify_uncached = uncached.verify("verify_session", Verified::Fixture).await;
    let get_uncached = uncached.get_attribute("get_attribute").await;
    let verify_small = uncached
        .verify(
            &format!("verify_loaded_{small_label}"),
            Verified::Loaded(SMALL_TABLE),
        )
        .await;
    uncached.stop();

    let large = pg::fresh_database_url().await;
    bulk_load(&large, args.sessions).await;
    let large_label = table_label(args.sessions);
    let uncached_large = Target::start(
        args,
        Some(&large),
        &[("SSOD_AUTH_CACHE_TTL", "0")],
        &format!("with SSOD_AUTH_CACHE_TTL=0 (no cache), table of {large_label}"),
    )
    .await;
    let verify_large = uncached_large
        .verify(
            &format!("verify_loaded_{large_label}"),
            Verified::Loaded(args.sessions),
        )
        .await;
    uncached_large.stop();

    let metrics = free_address();
    let (capacity, metrics_listen) = (args.cache_capacity.to_string(), metrics.to_string());
    let full = Target::start(
        args,
        Some(&large),
        &[
            ("SSOD_AUTH_CACHE_CAPACITY", capacity.as_str()),
            ("SSOD_AUTH_CACHE_TTL", FILL_TTL),
            ("SSOD_METRICS_LISTEN", metrics_listen.as_str()),
        ],
        &format!(
            "with SSOD_AUTH_CACHE_CAPACITY={capacity} SSOD_AUTH_CACHE_TTL={FILL_TTL}, \
             table of {large_label}"
        ),
    )
    .await;
    full.fill_cache(args.cache_capacity.min(args.sessions))
        .await;
    let mixed = full.mixed(args.sessions).await;
    let peak_mib = status_kib(full.server.pid(), "VmHWM").map(|kib| kib as f64 / 1024.0);
    let scraped = scrape(metrics).await;
    let entries = metric(&scraped, "ssod_auth_cache_entries");
    println!(
        "after the mixed run: cache entries {entries} (ssod_auth_cache_entries), hits {}, \
         misses {}; ssod peak rss (VmHWM) {}",
        metric(&scraped, "ssod_auth_cache_hits_total"),
        metric(&scraped, "ssod_auth_cache_misses_total"),
        peak_mib.map_or_else(|| "?".into(), |mib| format!("{mib:.1} MiB"))
    );
    full.stop();

    println!();
    println!(
        "== issue 9's comparisons on PostgreSQL, each side measured above in this run \
         (load average now {}) ==",
        load_average()
    );
    let with_cache = "cache on, defaults";
    let without_cache = "SSOD_AUTH_CACHE_TTL=0";
    print_comparisons(&[
        Comparison::ratio(
            format!("verify_session_cached/health_check ({with_cache}, cache warm)"),
            ratio(verify_cached.rate(), health.rate()),
            Goal::AtLeast(VERIFY_CACHED_PER_HEALTH),
        ),
        Comparison::ratio(
            format!(
                "verify_session_cached/health_check (SSOD_AUDIT_READ_INTERVAL={READ_INTERVAL})"
            ),
            ratio(verify_reads_once.rate(), health_reads_once.rate()),
            Goal::Informational,
        ),
        Comparison::ratio(
            format!("verify_session/health_check ({without_cache})"),
            ratio(verify_uncached.rate(), health_uncached.rate()),
            Goal::AtLeast(PER_HEALTH),
        ),
        Comparison::ratio(
            format!("get_attribute/health_check ({with_cache})"),
            ratio(get_cached.rate(), health.rate()),
            Goal::AtLeast(PER_HEALTH),
        ),
        Comparison::ratio(
            format!("get_attribute/health_check ({without_cache})"),
            ratio(get_uncached.rate(), health_uncached.rate()),
            Goal::AtLeast(PER_HEALTH),
        ),
        Comparison::ratio(
            "set_attribute/raw_upsert (many owners)".into(),
            ratio(set.rate(), raw_upsert.rate()),
            Goal::AtLeast(PER_RAW_UPSERT),
        ),
        Comparison::ratio(
            "set_attribute_hot_row/raw_upsert_hot_row (one row)".into(),
            ratio(set_hot.rate(), raw_upsert_hot.rate()),
            Goal::AtLeast(PER_RAW_UPSERT),
        ),
        Comparison::ratio(
            "set_attribute/raw_write (ssod's own write statement, raw)".into(),
            ratio(set.rate(), raw_write.rate()),
            Goal::Informational,
        ),
        Comparison::ratio(
            "set_attribute/raw_write_auth (its look-up and write, raw)".into(),
            ratio(set.rate(), raw_write_auth.rate()),
            Goal::Informational,
        ),
        Comparison::ratio(
            format!("attributes/s: set_attributes_100 x {BATCH} / set_attribute"),
            ratio(batch.rate() * BATCH as f64, set.rate()),
            Goal::AtLeast(BATCH_SPEED_UP),
        ),
        Comparison::ratio(
            format!(
                "verify p50: verify_loaded_{large_label}/verify_loaded_{small_label} \
                 ({without_cache})"
            ),
            ratio(verify_large.p50_ms, verify_small.p50_ms),
            Goal::AtMost(LARGE_TABLE_P50),
        ),
        Comparison {
            what: format!("peak rss (VmHWM) after the mixed run, cache of {capacity} filled (MiB)"),
            value: peak_mib.unwrap_or(f64::NAN),
            goal: Goal::AtMost(PEAK_RSS_MIB),
        },
    ]);
    if mixed.errors > 0 {
        println!("(the mixed run had {} errors)", mixed.errors);
    }
}

/// A target for a figure.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
    Informational,
}

struct Comparison {
    what: String,
    value: f64,
    goal: Goal,
}

impl Comparison {
    fn ratio(what: String, value: f64, goal: Goal) -> Comparison {
        Comparison { what, value, goal }
    }
}

fn print_comparisons(comparisons: &[Comparison]) {
    println!("{:<74} {:>8}  {:>9}  met", "comparison", "value", "target");
    for Comparison { what, value, goal } in comparisons {
        let (target, met) = match *goal {
            Goal::AtLeast(bound) => (format!(">= {bound:.2}"), Some(*value >= bound)),
            Goal::AtMost(bound) => (format!("<= {bound:.2}"), Some(*value <= bound)),
            Goal::Informational => ("-".to_owned(), None),
        };
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("{what:<74} {value:>8.2}  {target:>9}  {met}");
    }
}

/// Applies ssod's migrations to `url` (`ssod migrate`) and bulk-loads `sessions` sessions
/// with `deploy/capacity/load.sql` through `psql`, their clock an hour ahead so that every
/// loaded session stays live through the run; prints how long it took.
async fn bulk_load(url: &str, sessions: u64) {
    let url = url.to_owned();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_ssod"))
            .arg("migrate")
            .env("SSOD_DATABASE_URL", &url)
            .env("SSOD_LOG", "warn")
            .output()
            .expect("ssod migrate runs");
        assert!(
            migrate.status.success(),
            "ssod migrate: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let psql = pg::postgres_bin_dir()
            .map(|bin| bin.join("psql"))
            .filter(|psql| psql.is_file())
            .unwrap_or_else(|| "psql".into());
        let t0 = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/capacity/load.sql");
        let load = std::process::Command::new(&psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-v")
            .arg(format!("sessions={sessions}"))
            .arg("-v")
            .arg(format!("t0={t0}"))
            .arg("-f")
            .arg(&script)
            .arg(&url)
            .output()
            .unwrap_or_else(|error| panic!("{} runs: {error}", psql.display()));
        assert!(
            load.status.success(),
            "{} -f {}: {}",
            psql.display(),
            script.display(),
            String::from_utf8_lossy(&load.stderr)
        );
    })
    .await
    .expect("the bulk load");
    println!(
        "bulk-loaded {sessions} sessions ({} users, their attributes) with \
         deploy/capacity/load.sql in {:.1} s",
        sessions / 5,
        started.elapsed().as_secs_f64()
    );
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

async fn describe_postgres(pool: &Pool) {
    let url_source = if std::env::var("SSOD_TEST_DATABASE_URL").is_ok_and(|v| !v.trim().is_empty())
    {
        "SSOD_TEST_DATABASE_URL's server"
    } else {
        "the test harness's throwaway cluster"
    };
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

/// A raw single-row upsert per call: the targets' denominator.
fn raw_upsert_op(pool: &Pool, session_id: Uuid, task: usize, rows: Rows) -> Op {
    let pool = pool.clone();
    Box::new(move |k| {
        let pool = pool.clone();
        let name = match rows {
            Rows::Spread => attribute_name(task, k),
            Rows::HotRow => "hot".into(),
        };
        Box::pin(async move {
            let now = SystemTime::now();
            let client = pool.get().await.map_err(pg_error)?;
            let upsert = client.prepare_cached(RAW_UPSERT).await.map_err(pg_error)?;
            let value = small_object_json(k);
            client
                .query_one(&upsert, &[&session_id, &name, &value, &now])
                .await
                .map(drop)
                .map_err(pg_error)
        })
    })
}

fn raw_write_op(pool: &Pool, session_id: Uuid, task: usize) -> Op {
    let pool = pool.clone();
    Box::new(move |k| {
        let pool = pool.clone();
        Box::pin(async move {
            raw_write(
                &pool,
                session_id,
                attribute_name(task, k),
                small_object_json(k),
            )
            .await
        })
    })
}

fn raw_write_auth_op(pool: &Pool, session: &UserSession, task: usize) -> Op {
    let pool = pool.clone();
    let token_hash = Sha256::digest(session.ust.as_bytes()).to_vec();
    let session_id = session.session_id;
    Box::new(move |k| {
        let pool = pool.clone();
        let token_hash = token_hash.clone();
        Box::pin(async move {
            {
                // The auth layer's look-up, on its own pooled connection, with ssod's
                // default lifetimes and renewal interval.
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
                attribute_name(task, k),
                small_object_json(k),
            )
            .await
        })
    })
}
