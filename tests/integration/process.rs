//! The real binary as a user runs it: JSON logs at debug level that never carry a secret,
//! the cid on every line of a call, the Prometheus endpoint, and a clean exit on SIGTERM.

use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ssod::proto::{
    self, AttributeScope, attribute_service_client::AttributeServiceClient,
    session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, transport::Channel};

use crate::{
    both,
    harness::{Backend, authed, base64_key, json_value},
};

pub(crate) fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

pub(crate) struct Process {
    child: Child,
    /// Drains stderr as it comes: a full pipe would block the server's logging.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Process {
    pub(crate) fn start(envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ssod"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("ssod starts");
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Self {
            child,
            stderr: Some(stderr),
        }
    }

    /// Sends SIGTERM, waits for the exit, returns (success, stderr).
    pub(crate) fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "ssod did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().expect("stderr reader"));
        (status.success(), stderr.unwrap_or_default())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub(crate) async fn connect(address: SocketAddr) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
        {
            return channel;
        }
        assert!(Instant::now() < deadline, "ssod did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn scrape(address: SocketAddr) -> String {
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

async fn debug_logs_carry_cids_and_no_secrets_and_metrics_are_scraped(backend: Backend) {
    let grpc_address = free_address();
    let metrics = free_address();
    let admin_password = "admin-secret-password-9";
    let user_password = "user-secret-password-7";
    let plaintext = "plaintext-only-the-client-may-see";
    let mut envs = vec![
        ("SSOD_LISTEN", grpc_address.to_string()),
        ("SSOD_METRICS_LISTEN", metrics.to_string()),
        ("SSOD_LOG", "debug".into()),
        ("SSOD_LOG_FORMAT", "json".into()),
        ("SSOD_SUPER_USER", "admin".into()),
        ("SSOD_SUPER_USER_PASSWORD", admin_password.into()),
        ("SSOD_ENCRYPTION_KEYS", format!("k1:{}", base64_key(3))),
        ("SSOD_PERSISTENT_ON_LOGIN", "cart".into()),
        ("SSOD_HEALTH_PROBE_INTERVAL", "100ms".into()),
    ];
    if backend == Backend::Postgres {
        envs.push(("SSOD_DATABASE_URL", crate::pg::fresh_database_url().await));
    }
    let server = Process::start(&envs);
    let channel = connect(grpc_address).await;
    let mut users = UserServiceClient::new(channel.clone());
    let mut sessions = SessionServiceClient::new(channel.clone());
    let mut attributes = AttributeServiceClient::new(channel);
    let login = |username: &str, password: &str| proto::LoginRequest {
        username: username.into(),
        password: password.into(),
        current_app: "logs".into(),
        ..Default::default()
    };

    let admin = users
        .login(login("admin", admin_password))
        .await
        .expect("admin login")
        .into_inner()
        .ust;
    let created = users
        .create_user(authed(
            &admin,
            proto::CreateUserRequest {
                username: "logged".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner();
    let generated = created.generated_password;
    users
        .change_password(authed(
            &admin,
            proto::ChangePasswordRequest {
                user_id: created.user.expect("user").user_id,
                new_password: user_password.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("reset");
    let guest = sessions
        .create_session(proto::CreateSessionRequest::default())
        .await
        .expect("guest")
        .into_inner()
        .ust;
    attributes
        .set_attribute(authed(
            &guest,
            proto::SetAttributeRequest {
                scope: AttributeScope::Session as i32,
                name: "cart".into(),
                value: Some(json_value(serde_json::json!(plaintext))),
                encrypt: true,
                ..Default::default()
            },
        ))
        .await
        .expect("encrypted attribute");
    let mut rotated = Request::new(login("logged", user_password));
    rotated.metadata_mut().insert(
        "authorization",
        format!("Bearer {guest}").parse().expect("header"),
    );
    rotated
        .metadata_mut()
        .insert("x-request-id", "cid-of-the-login".parse().expect("header"));
    let user = users
        .login(rotated)
        .await
        .expect("user login")
        .into_inner()
        .ust;
    let value = attributes
        .get_attribute(authed(
            &user,
            proto::GetAttributeRequest {
                scope: AttributeScope::Session as i32,
                name: "cart".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        value.attribute.expect("attribute").value,
        Some(json_value(serde_json::json!(plaintext)))
    );
    sessions
        .get_session(authed(
            &admin,
            proto::GetSessionRequest {
                target_ust: user.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("get session");
    users
        .login(login("logged", "wrong-password-5"))
        .await
        .expect_err("a failed login");
    users
        .logout(authed(&user, proto::LogoutRequest {}))
        .await
        .expect("logout");

    // Unknown methods: UNIMPLEMENTED with the contract's ErrorInfo, and one metrics label.
    for path in ["/attacker.Path/One", "/sso.v1.UserService/Nope"] {
        let mut grpc = tonic::client::Grpc::new(
            Channel::from_shared(format!("http://{grpc_address}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect"),
        );
        grpc.ready().await.expect("ready");
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let status = grpc
            .unary(
                Request::new(()),
                http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await
            .expect_err("unknown method");
        crate::harness::assert_error(&status, tonic::Code::Unimplemented, "INVALID_ARGUMENT");
    }
    // The background sweep first runs one interval after start; this one is asked for.
    sessions
        .purge_expired(authed(&admin, proto::PurgeExpiredRequest {}))
        .await
        .expect("sweep");
    let scraped = scrape(metrics).await;
    assert!(
        scraped.contains("method=\"unknown\",code=\"12\""),
        "unknown methods share a label"
    );
    assert!(
        !scraped.contains("attacker") && !scraped.contains("Nope"),
        "paths are not labels"
    );
    if backend == Backend::Postgres {
        for gauge in [
            "ssod_db_pool_connections{state=\"idle\"}",
            "ssod_db_pool_max_connections 16",
        ] {
            assert!(scraped.contains(gauge), "metrics lack {gauge}:\n{scraped}");
        }
    }
    for expected in [
        "ssod_requests_total{method=\"/sso.v1.UserService/Login\",code=\"0\"}",
        "ssod_requests_total{method=\"/sso.v1.UserService/Login\",code=\"16\"}",
        "ssod_request_duration_seconds_bucket{method=\"/sso.v1.SessionService/GetSession\",code=\"0\",le=\"",
        "ssod_logins_total{outcome=\"success\"} 2",
        "ssod_logins_total{outcome=\"failure\",reason=\"INVALID_CREDENTIALS\"} 1",
        "ssod_swept_total{kind=\"sessions\"}",
        "ssod_swept_total{kind=\"events\"}",
    ] {
        assert!(
            scraped.contains(expected),
            "metrics lack {expected}:\n{scraped}"
        );
    }

    let (exited_cleanly, logs) = server.terminate();
    assert!(exited_cleanly, "exit status after SIGTERM; logs:\n{logs}");
    for secret in [
        admin_password,
        user_password,
        &generated,
        plaintext,
        &admin,
        &guest,
        &user,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    assert!(!logs.contains("ssod_ust_"), "a UST reached the logs");
    assert!(
        !logs.contains("$argon2id$"),
        "a password hash reached the logs"
    );
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.len() > 10,
        "debug logging produced {} lines",
        lines.len()
    );
    let login_lines: Vec<_> = lines
        .iter()
        .filter(|line| line["span"]["cid"] == "cid-of-the-login")
        .collect();
    assert!(
        login_lines
            .iter()
            .any(|line| line["fields"]["message"] == "login"),
        "the login line carries the client's cid"
    );
    // Connection-level lines (h2) have no call; every line of a call has its cid.
    let call_lines: Vec<_> = lines
        .iter()
        .filter(|line| line["span"]["name"] == "rpc" || line["target"] == "ssod::grpc::observe")
        .collect();
    assert!(call_lines.len() >= 12, "one observe line per call at least");
    for line in call_lines {
        assert!(
            line["span"]["cid"].is_string(),
            "a line of a call lacks its cid: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "stopped"),
        "graceful stop logged"
    );
    // Every event is also a line of target ssod::audit.
    let audit: Vec<_> = lines
        .iter()
        .filter(|line| line["target"] == "ssod::audit")
        .collect();
    assert!(
        audit
            .iter()
            .any(|line| line["fields"]["type"] == "login.succeeded"
                && line["fields"]["cid"] == "cid-of-the-login"),
        "the login's event is an audit line: {audit:?}"
    );
    for kind in [
        "user.created",
        "password.changed",
        "session.read",
        "login.failed",
        "logout",
    ] {
        assert!(
            audit.iter().any(|line| line["fields"]["type"] == kind),
            "no audit line of {kind}"
        );
    }
}

both!(debug_logs_carry_cids_and_no_secrets_and_metrics_are_scraped);

/// The value of the first sample whose line starts with `prefix`.
fn sample(scraped: &str, prefix: &str) -> Option<f64> {
    scraped
        .lines()
        .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
}

/// A stream is recorded when it ends, with its final status and whole duration: a health
/// watch the client drops counts as CANCELLED, one that shutdown ends as UNAVAILABLE (both
/// logged once); a unary call as OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_recorded_when_they_end() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    const WATCH: &str = "/grpc.health.v1.Health/Watch";
    let grpc_address = free_address();
    let metrics = free_address();
    let server = Process::start(&[
        ("SSOD_LISTEN", grpc_address.to_string()),
        ("SSOD_METRICS_LISTEN", metrics.to_string()),
        ("SSOD_LOG", "debug".into()),
        ("SSOD_LOG_FORMAT", "json".into()),
    ]);
    let mut health = HealthClient::new(connect(grpc_address).await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("check");
    let mut dropped = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    dropped.message().await.expect("stream").expect("a status");
    let open = Duration::from_millis(1500);
    tokio::time::sleep(open).await;
    assert!(
        !scrape(metrics).await.contains(WATCH),
        "an open stream is not recorded yet"
    );
    drop(dropped);

    let cancelled = format!("ssod_requests_total{{method=\"{WATCH}\",code=\"1\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let scraped = loop {
        let scraped = scrape(metrics).await;
        if scraped.contains(&cancelled) {
            break scraped;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped watch was not recorded:\n{scraped}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&scraped, &cancelled), Some(1.0));
    assert_eq!(
        sample(
            &scraped,
            "ssod_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"0\"}"
        ),
        Some(1.0)
    );
    assert!(!scraped.contains(&format!("method=\"{WATCH}\",code=\"0\"")));
    let duration = sample(
        &scraped,
        &format!("ssod_request_duration_seconds_sum{{method=\"{WATCH}\",code=\"1\"}}"),
    )
    .expect("the watch's duration");
    assert!(
        duration >= open.as_secs_f64(),
        "timed to its end, not to its headers: {duration}"
    );

    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    watch.message().await.expect("stream").expect("a status");
    let watching = tokio::spawn(async move {
        let mut statuses = Vec::new();
        loop {
            match watch.message().await {
                Ok(Some(message)) => statuses.push(message.status),
                Ok(None) => return (statuses, None),
                Err(status) => return (statuses, Some(status)),
            }
        }
    });
    let (exited_cleanly, logs) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("terminate");
    assert!(exited_cleanly, "exit status after SIGTERM; logs:\n{logs}");
    let (statuses, end) = watching.await.expect("watcher");
    assert_eq!(statuses, [2], "NOT_SERVING, then the end");
    let end = end.expect("the watch ends with a status");
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");

    let failed: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "failed" && line["span"]["method"] == WATCH)
        .collect();
    let codes: Vec<_> = failed.iter().map(|line| &line["fields"]["code"]).collect();
    assert_eq!(
        codes,
        ["Cancelled", "Unavailable"],
        "one line per failed call:\n{logs}"
    );
}

fn run_to_end(envs: &[(&str, String)], args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssod"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("ssod runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ssod {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), reader.join().expect("stderr reader"))
}

/// `ssod migrate`, `ssod create-super-user` (password from stdin, or generated and shown
/// once), and serving in schema-check mode, as an operator runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_subcommands_on_postgres() {
    let url = crate::pg::fresh_database_url().await;
    let database = [("SSOD_DATABASE_URL", url.clone())];

    let (checked, logs) = run_to_end(
        &[
            ("SSOD_DATABASE_URL", url.clone()),
            ("SSOD_SCHEMA", "check".into()),
        ],
        &["serve"],
        "",
    );
    assert!(
        !checked,
        "serving on an unmigrated schema in check mode must fail"
    );
    assert!(
        logs.contains("ssod migrate"),
        "the refusal says what to run: {logs}"
    );

    let (migrated, logs) = run_to_end(&database, &["migrate"], "");
    assert!(migrated, "migrate: {logs}");
    let (again, logs) = run_to_end(&database, &["migrate"], "");
    assert!(again, "migrate is idempotent: {logs}");

    let (created, logs) = run_to_end(
        &database,
        &[
            "create-super-user",
            "--username",
            "root-from-stdin",
            "--password-stdin",
        ],
        "stdin-password-1\n",
    );
    assert!(created, "create-super-user: {logs}");
    assert!(
        !logs.contains("stdin-password-1"),
        "the given password is never echoed"
    );
    // stderr is a pipe here, as in a container: a generated password goes to the named file,
    // created for the owner alone, and never to stderr.
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("root-password");
    let with_file = [
        ("SSOD_DATABASE_URL", url.clone()),
        (
            "SSOD_SUPER_USER_PASSWORD_FILE",
            password_file.display().to_string(),
        ),
    ];
    let (generated, logs) = run_to_end(
        &with_file,
        &["create-super-user", "--username", "root-generated"],
        "",
    );
    assert!(generated, "create-super-user: {logs}");
    let password = std::fs::read_to_string(&password_file)
        .expect("the generated password is in the file")
        .trim_end()
        .to_owned();
    assert!(password.len() >= 16, "{password:?}");
    assert!(
        !logs.contains(&password),
        "the password reached stderr: {logs}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    let (unshown, logs) = run_to_end(
        &with_file,
        &["create-super-user", "--username", "root-unshown"],
        "",
    );
    assert!(unshown, "create-super-user: {logs}");
    assert_eq!(
        std::fs::read_to_string(&password_file)
            .expect("still there")
            .trim_end(),
        password,
        "an existing file is never overwritten"
    );
    assert!(!logs.contains("generated password:"), "{logs}");
    assert!(
        logs.contains("ChangePassword"),
        "says how to set one: {logs}"
    );
    let (duplicate, _) = run_to_end(
        &database,
        &["create-super-user", "--username", "ROOT-GENERATED"],
        "",
    );
    assert!(!duplicate, "an existing name is refused");

    let (both, logs) = run_to_end(
        &[
            ("SSOD_DATABASE_URL", url.clone()),
            ("SSOD_SUPER_USER", "boot".into()),
            ("SSOD_SUPER_USER_PASSWORD", "boot-password-3".into()),
            (
                "SSOD_SUPER_USER_PASSWORD_FILE",
                password_file.display().to_string(),
            ),
        ],
        &["serve"],
        "",
    );
    assert!(!both, "a password and a password file at once are refused");
    assert!(logs.contains("not both"), "{logs}");

    // The start-up super-user's password from a mounted file: its first line.
    let mounted = dir.path().join("mounted");
    std::fs::write(&mounted, "mounted-password-4\n").expect("write");
    let grpc_address = free_address();
    let server = Process::start(&[
        ("SSOD_DATABASE_URL", url),
        ("SSOD_SCHEMA", "check".into()),
        ("SSOD_LISTEN", grpc_address.to_string()),
        ("SSOD_SUPER_USER", "boot".into()),
        (
            "SSOD_SUPER_USER_PASSWORD_FILE",
            mounted.display().to_string(),
        ),
    ]);
    let mut users = UserServiceClient::new(connect(grpc_address).await);
    for (username, password) in [
        ("root-from-stdin", "stdin-password-1"),
        ("root-generated", password.as_str()),
        ("boot", "mounted-password-4"),
    ] {
        let login = users
            .login(proto::LoginRequest {
                username: username.into(),
                password: password.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("{username} logs in: {status:?}"))
            .into_inner();
        assert!(login.user.expect("user").is_super_user);
    }
    let (stopped, _) = server.terminate();
    assert!(stopped);
}

/// A database that accepts connections and never answers fails start-up within the
/// configured bounds instead of hanging.
#[test]
fn a_silent_database_fails_start_up_within_bounds() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address");
    // Accept and hold connections without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let (ok, logs) = run_to_end(
        &[
            (
                "SSOD_DATABASE_URL",
                format!("postgres://ssod@{address}/ssod?connect_timeout=1"),
            ),
            ("SSOD_DB_CREATE_TIMEOUT", "1s".into()),
            ("SSOD_LISTEN", "127.0.0.1:0".into()),
        ],
        &["serve"],
        "",
    );
    assert!(!ok, "start-up must fail: {logs}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it failed, but slowly"
    );
    assert!(
        logs.contains("unavailable"),
        "the error says the store is unavailable: {logs}"
    );
}
