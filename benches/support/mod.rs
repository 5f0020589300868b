//! What the benchmarks share: the real `ssod` binary as a subprocess on a free 127.0.0.1
//! port (optionally under a wrapper such as valgrind), the database to run it on, its
//! metrics, and a description of the machine and its load.

#![allow(dead_code)] // each bench uses its own part

#[path = "../../tests/integration/pg.rs"]
pub mod pg;

use std::{
    collections::VecDeque,
    future::Future,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use ssod::proto;
use tonic::{
    Request,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub const ADDR: &str = "127.0.0.1";
pub const ADMIN_PASSWORD: &str = "bench-admin-password-1";
/// The longest any one call may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started ssod has to answer health with SERVING.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Prints the date, the machine and the binary under test.
pub fn print_machine(bench: &str) {
    let cpus = command_output("nproc", &[]).unwrap_or_else(|| "?".into());
    let arch = command_output("uname", &["-m"]).unwrap_or_else(|| "?".into());
    let kernel = command_output("uname", &["-sr"]).unwrap_or_else(|| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "ssod {bench} bench, {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kib: u64 = info
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "?".into());
    println!("machine: {cpus} CPUs (nproc), {arch}, {model}, {memory} RAM, {kernel}");
    println!(
        "client and server share these CPUs; ssod is {} (release profile)",
        env!("CARGO_BIN_EXE_ssod")
    );
    if let Ok(tunables) = std::env::var("GLIBC_TUNABLES") {
        println!("ssod runs with GLIBC_TUNABLES={tunables}");
    }
}

pub async fn database_url() -> String {
    match std::env::var("SSOD_BENCH_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => pg::fresh_database_url().await,
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

/// The text of ssod's Prometheus endpoint at `address`.
pub async fn scrape(address: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

/// The sum of a metric's samples (every label set) in a scrape.
pub fn metric(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

// Measuring.

#[derive(Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub end: Instant,
}

#[derive(Default)]
pub struct Tally {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// One task: calls `op` back to back until the window ends; counts the calls that started
/// and finished inside the measured part.
pub async fn drive<Op, Fut>(window: Window, mut op: Op) -> Tally
where
    Op: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut tally = Tally::default();
    let mut k = 0u64;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let result = op(k).await;
        k += 1;
        let finished = Instant::now();
        if started >= window.measure_from && finished <= window.end {
            let micros = finished.duration_since(started).as_micros();
            tally
                .latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
            if let Err(error) = result {
                tally.errors += 1;
                tally.first_error.get_or_insert(error);
            }
        }
    }
    tally
}

/// The `p`th percentile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let at = (sorted_us.len() * p / 100).min(sorted_us.len() - 1);
    f64::from(sorted_us[at]) / 1000.0
}

// The server subprocess.

/// Drains the server's stderr: the line count and the last few lines.
#[derive(Default)]
struct LogTail {
    lines: u64,
    last: VecDeque<String>,
}

/// The `ssod` subprocess; killed on drop (a panic included) unless it was stopped.
pub struct Server {
    child: Child,
    pub address: SocketAddr,
    log: Arc<Mutex<LogTail>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

pub fn free_address() -> SocketAddr {
    let listener = TcpListener::bind((ADDR, 0)).expect("bind a free port");
    listener.local_addr().expect("local address")
}

impl Server {
    /// `launch`: the program and its arguments (ssod, or a wrapper such as valgrind followed
    /// by ssod); `settings`: extra `SSOD_*` variables for this run.
    fn spawn(
        launch: &[String],
        database_url: Option<&str>,
        admin: &str,
        settings: &[(&str, &str)],
    ) -> Server {
        let address = free_address();
        let key = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode([42u8; 32])
        };
        let (program, args) = launch.split_first().expect("a program to launch");
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SSOD_LISTEN", address.to_string())
            .env("SSOD_SUPER_USER", admin)
            .env("SSOD_SUPER_USER_PASSWORD", ADMIN_PASSWORD)
            .env("SSOD_ENCRYPTION_KEYS", format!("bench:{key}"))
            .env("SSOD_LOG", "warn")
            // The benches' fixed passwords are not meant to pass the strength floor.
            .env("SSOD_PASSWORD_MIN_STRENGTH", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            command.env("SSOD_DATABASE_URL", url);
        }
        command.envs(settings.iter().copied());
        // Passed through for allocator experiments (e.g. `glibc.malloc.mmap_threshold`).
        if let Ok(tunables) = std::env::var("GLIBC_TUNABLES") {
            command.env("GLIBC_TUNABLES", tunables);
        }
        let mut child = command.spawn().expect("ssod starts");
        let log = Arc::new(Mutex::new(LogTail::default()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut tail = sink.lock().expect("log tail");
                tail.lines += 1;
                if tail.last.len() == 5 {
                    tail.last.pop_front();
                }
                tail.last.push_back(line);
            }
        });
        Server {
            child,
            address,
            log,
            reader: Some(reader),
        }
    }

    /// Starts this build's ssod and waits until health answers SERVING; a few tries, in case
    /// another process took the free port first.
    pub async fn start(
        database_url: Option<&str>,
        admin: &str,
        settings: &[(&str, &str)],
    ) -> Server {
        let launch = [env!("CARGO_BIN_EXE_ssod").to_owned()];
        Server::start_with(&launch, READY_WITHIN, database_url, admin, settings).await
    }

    /// [`Server::start`] with another launch command (another build of ssod, or ssod under a
    /// wrapper) and another bound for it to serve.
    pub async fn start_with(
        launch: &[String],
        ready_within: Duration,
        database_url: Option<&str>,
        admin: &str,
        settings: &[(&str, &str)],
    ) -> Server {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let mut server = Server::spawn(launch, database_url, admin, settings);
            match server.ready(ready_within).await {
                Ok(()) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!("ssod did not start:\n{}", failures.join("\n"));
    }

    async fn ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ssod exited ({status}): {}", self.log_tail()));
            }
            if let Ok(channel) = self.channel().await {
                let serving = HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                    .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
                if serving {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not serving after {within:?}: {}", self.log_tail()))
    }

    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        self.channel_with_timeout(CALL_TIMEOUT).await
    }

    /// A connection whose calls fail after `timeout`.
    pub async fn channel_with_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.address))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .connect()
            .await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let tail = self.log.lock().expect("log tail");
        format!(
            "{} stderr lines{}{}",
            tail.lines,
            if tail.last.is_empty() { "" } else { "; last: " },
            tail.last.iter().cloned().collect::<Vec<_>>().join(" | ")
        )
    }

    /// SIGTERM, then waits (bounded) for a graceful exit; SIGKILL if it does not come.
    pub fn stop(mut self) -> String {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let outcome = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break format!("exited after SIGTERM ({status})"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "killed: no exit within 15 s of SIGTERM".to_owned();
                }
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        format!("{outcome}; {}", self.log_tail())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The stores a bench runs on: both, or the one `--store memory|postgres` names.
pub fn stores_from_args() -> Vec<&'static str> {
    let mut stores = vec!["memory", "postgres"];
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [flag, store] = args.as_slice()
        && flag == "--store"
    {
        stores.retain(|known| known == store);
    }
    stores
}

/// `message` with `ust` as its bearer token.
pub fn authed<T>(ust: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ust}").parse().expect("header"),
    );
    request
}

/// A login from application `app`.
pub fn login_request(username: &str, password: &str, app: &str) -> proto::LoginRequest {
    proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: app.into(),
        ..Default::default()
    }
}
