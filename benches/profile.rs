//! A fixed hot-path workload for instruction-count profiles (issue 9 item 5); run by
//! `benches/profile.sh`, which builds the binaries and summarises the profiles:
//!
//! ```sh
//! cargo bench --bench profile -- --ssod target/release/ssod --out target/profile/after \
//!     [--calls 2000] [--concurrency 4] [--set SSOD_AUTH_CACHE_TTL=0]
//! ```
//!
//! Starts `--ssod` (any build of it, e.g. one from before the hot-path work) under
//! `valgrind --tool=callgrind` on a fresh PostgreSQL database (the integration tests'
//! throwaway cluster, or `SSOD_TEST_DATABASE_URL`'s server), logs a super-user and one user
//! session in, warms every RPC up, and then, for each of `Health/Check` (the floor: what any
//! call costs in HTTP/2, tonic and tokio), `VerifySession` (the super-user verifying the
//! user's UST), `GetAttribute` and `SetAttribute` (on the user's own session),
//! zeroes callgrind's counters, makes `--calls` calls from `--concurrency` tasks over one
//! HTTP/2 connection, and dumps the counts to `<out>/<rpc>.callgrind`. Each dump holds the
//! instructions ssod executed, on every thread, while that RPC's calls ran (PostgreSQL and
//! this client are other processes and are not counted). Prints the totals and the
//! instructions per call.
//!
//! Instruction counts do not depend on the machine's load, so before/after comparisons hold
//! on a busy machine; they are not times (a cache miss or a system call's wait costs no
//! instructions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use ssod::proto::{
    self, AttributeScope, attribute_service_client::AttributeServiceClient,
    session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use support::{ADMIN_PASSWORD, Server, authed, login_request, pg};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The `current_app` of the profile's calls.
const APP: &str = "profile";
const ADMIN: &str = "profile-admin";
const USER: &str = "profile-user";
const USER_PASSWORD: &str = "profile-user-password-1";
/// Calls of each RPC before any is counted: connections, prepared statements, caches.
const WARM_UP_CALLS: usize = 200;
/// ssod under callgrind runs tens of times slower than natively (a login's Argon2id takes
/// seconds): bounds for it to start and for one call.
const READY_WITHIN: Duration = Duration::from_secs(300);
const CALL_WITHIN: Duration = Duration::from_secs(300);
/// `health_check` (service "") is the floor: what any call costs in HTTP/2, tonic and tokio.
const RPCS: [&str; 4] = [
    "health_check",
    "verify_session",
    "get_attribute",
    "set_attribute",
];

struct Args {
    ssod: PathBuf,
    out: PathBuf,
    calls: usize,
    concurrency: usize,
    settings: Vec<(String, String)>,
}

const USAGE: &str = "usage: cargo bench --bench profile -- --ssod PATH --out DIR \
     [--calls N (2000)] [--concurrency N (4)] [--set SSOD_NAME=VALUE]...";

fn parse_args() -> Result<Args, String> {
    let (mut ssod, mut out) = (None, None);
    let (mut calls, mut concurrency, mut settings) = (2000, 4, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let count = |text: &str| {
            text.parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| format!("{flag} {text:?}: a number from 1 to 1000000"))
        };
        match flag.as_str() {
            "--ssod" => ssod = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--calls" => calls = count(&value)?,
            "--concurrency" => concurrency = count(&value)?,
            "--set" => {
                let (name, setting) = value
                    .split_once('=')
                    .filter(|(name, _)| name.starts_with("SSOD_"))
                    .ok_or_else(|| format!("--set {value:?}: SSOD_NAME=VALUE"))?;
                settings.push((name.to_owned(), setting.to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        ssod: ssod.ok_or("--ssod is required")?,
        out: out.ok_or("--out is required")?,
        calls,
        concurrency,
        settings,
    })
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("profile: {message}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(profile(args));
    std::process::ExitCode::SUCCESS
}

/// The logged-in sessions the calls use.
struct Sessions {
    admin: String,
    user: String,
}

async fn set_up(channel: &Channel) -> Sessions {
    let mut users = UserServiceClient::new(channel.clone());
    let admin = users
        .login(login_request(ADMIN, ADMIN_PASSWORD, APP))
        .await
        .expect("super-user login")
        .into_inner()
        .ust;
    users
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: USER.into(),
                password: Some(USER_PASSWORD.into()),
                ..Default::default()
            },
        ))
        .await
        .expect("create the user");
    let user = users
        .login(login_request(USER, USER_PASSWORD, APP))
        .await
        .expect("user login")
        .into_inner()
        .ust;
    Sessions { admin, user }
}

/// One call of `rpc`; `k` varies what a write writes.
async fn call(channel: &Channel, sessions: &Sessions, rpc: &str, k: usize) {
    let value = prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(k as f64)),
    };
    match rpc {
        "health_check" => {
            HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .expect("Health/Check");
        }
        "verify_session" => {
            let valid = SessionServiceClient::new(channel.clone())
                .verify_session(authed(
                    &sessions.admin,
                    proto::VerifySessionRequest {
                        target_ust: sessions.user.clone(),
                        current_app: APP.into(),
                        remote_addr: "127.0.0.1".into(),
                    },
                ))
                .await
                .expect("VerifySession")
                .into_inner()
                .valid;
            assert!(valid, "the user's session verifies");
        }
        "get_attribute" => {
            AttributeServiceClient::new(channel.clone())
                .get_attribute(authed(
                    &sessions.user,
                    proto::GetAttributeRequest {
                        scope: AttributeScope::Session as i32,
                        owner_id: String::new(),
                        name: "profile".into(),
                    },
                ))
                .await
                .expect("GetAttribute");
        }
        "set_attribute" => {
            AttributeServiceClient::new(channel.clone())
                .set_attribute(authed(
                    &sessions.user,
                    proto::SetAttributeRequest {
                        scope: AttributeScope::Session as i32,
                        name: format!("name-{:02}", k % 100),
                        value: Some(value),
                        ..Default::default()
                    },
                ))
                .await
                .expect("SetAttribute");
        }
        other => unreachable!("no RPC {other}"),
    }
}

/// `calls` calls of `rpc` from `concurrency` tasks.
async fn calls(
    channel: &Channel,
    sessions: &Sessions,
    rpc: &str,
    calls: usize,
    concurrency: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(0..calls)
        .for_each_concurrent(concurrency, |k| call(channel, sessions, rpc, k))
        .await;
}

fn callgrind_control(pid: u32, args: &[&str]) {
    let output = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .expect("callgrind_control runs");
    assert!(
        output.status.success(),
        "callgrind_control {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `summary:` (total instructions) of a callgrind dump.
fn total_instructions(dump: &Path) -> u64 {
    std::fs::read_to_string(dump)
        .expect("the dump")
        .lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|total| total.trim().parse().ok())
        .expect("a summary line")
}

async fn profile(args: Args) {
    std::fs::create_dir_all(&args.out).expect("the output directory");
    let out = args.out.canonicalize().expect("the output directory");
    // Dumps are numbered parts of this file; each is renamed after its RPC once written.
    let base = out.join("callgrind.out");
    let launch = [
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        // Every dump names its files and functions in full: compressed names refer to
        // earlier dumps, which callgrind_annotate cannot follow.
        "--compress-strings=no".to_owned(),
        format!("--callgrind-out-file={}", base.display()),
        args.ssod.display().to_string(),
    ];
    let settings: Vec<(&str, &str)> = args
        .settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let url = pg::fresh_database_url().await;
    let server = Server::start_with(&launch, READY_WITHIN, Some(&url), ADMIN, &settings).await;
    let channel = server
        .channel_with_timeout(CALL_WITHIN)
        .await
        .expect("connect to ssod");
    let sessions = set_up(&channel).await;
    AttributeServiceClient::new(channel.clone())
        .set_attribute(authed(
            &sessions.user,
            proto::SetAttributeRequest {
                scope: AttributeScope::Session as i32,
                name: "profile".into(),
                value: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("dark".into())),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("SetAttribute profile");
    for rpc in RPCS {
        calls(&channel, &sessions, rpc, WARM_UP_CALLS, args.concurrency).await;
    }
    println!(
        "ssod {} under callgrind, settings {:?}; {} calls per RPC from {} tasks on one \
         connection, after {WARM_UP_CALLS} of each to warm up",
        args.ssod.display(),
        args.settings,
        args.calls,
        args.concurrency
    );
    println!("{:<16} {:>16} {:>12}", "rpc", "instructions", "per call");
    for (part, rpc) in RPCS.iter().enumerate() {
        callgrind_control(server.pid(), &["--zero"]);
        calls(&channel, &sessions, rpc, args.calls, args.concurrency).await;
        callgrind_control(server.pid(), &[&format!("--dump={rpc}")]);
        let dump = out.join(format!("{rpc}.callgrind"));
        std::fs::rename(base.with_extension(format!("out.{}", part + 1)), &dump)
            .expect("the dump of this RPC");
        let total = total_instructions(&dump);
        println!("{rpc:<16} {total:>16} {:>12}", total / args.calls as u64);
    }
    drop(channel);
    println!("ssod {}", server.stop());
}
