//! A throwaway PostgreSQL for the tests: every call to [`fresh_database_url`] creates a new,
//! empty database, so tests are independent and run in parallel.
//!
//! With `SSOD_TEST_DATABASE_URL` set (a server where that user may `CREATE DATABASE`), the
//! databases are created there and left behind: point it at a disposable server. Otherwise
//! the first call starts one cluster for this test process with `initdb` and `pg_ctl` (from
//! PATH, else the newest `/usr/lib/postgresql/*/bin`) in a fresh temporary directory,
//! listening on 127.0.0.1 at a free port with its socket in that directory, tuned for speed
//! (`fsync=off`). PostgreSQL refuses to run as root, so under root (CI) it runs as the
//! `postgres` system user, created if missing. A watchdog process stops the cluster and
//! removes the directory once this process has exited, however it exits.
//!
//! [`fresh_tls_database`] does the same on a second cluster, started on first use and shared
//! likewise, with `ssl = on` and a certificate for `localhost` (only) made here by a CA made
//! here; it is always started locally, whatever `SSOD_TEST_DATABASE_URL` says.
//! [`ReplicatedPair`] is a primary with a synchronous standby, two more clusters made the
//! same way, for failover tests.
//!
//! The cluster is started with blocking `std::process` calls behind a `OnceLock`: each
//! `#[tokio::test]` has its own runtime, so nothing about the cluster may belong to one.

use std::{
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use tokio_postgres::{NoTls, error::SqlState};

const INSTALL_HINT: &str = "the PostgreSQL tests need a server: set SSOD_TEST_DATABASE_URL to a \
     PostgreSQL URL whose user may CREATE DATABASE, or install the server binaries \
     (`apt-get install postgresql`) so that initdb and pg_ctl are on PATH or under \
     /usr/lib/postgresql/*/bin";

/// The cluster, or why it could not start: a failure is remembered, so the other tests fail
/// at once with the same message instead of each trying again.
static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
/// The TLS-enabled cluster, likewise.
static TLS_CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// A new, empty database on the test server; its URL.
pub async fn fresh_database_url() -> String {
    let admin_url = match std::env::var("SSOD_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => shared(&CLUSTER, || Cluster::start(None)).admin_url.clone(),
    };
    create_database(&admin_url).await
}

/// A database on the TLS-enabled cluster, which also accepts plain connections.
pub struct TlsDatabase {
    /// Its port on 127.0.0.1 (the certificate names only `localhost`).
    pub port: u16,
    /// Its name.
    pub name: String,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// The PEM file of another CA, which signed nothing the server has.
    pub wrong_ca_file: PathBuf,
}

impl TlsDatabase {
    /// A URL for this database at `host`, with `options` as its query (`sslmode=…&…`).
    pub fn url(&self, host: &str, options: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{}?{options}",
            self.port, self.name
        )
    }
}

/// A new, empty database on the TLS-enabled cluster.
pub async fn fresh_tls_database() -> TlsDatabase {
    let cluster = shared(&TLS_CLUSTER, || Cluster::start(Some(TlsFiles::make())));
    let url = create_database(&cluster.admin_url).await;
    let tls = cluster.tls.as_ref().expect("the TLS cluster has its files");
    TlsDatabase {
        port: cluster.port,
        name: url.rsplit('/').next().expect("a database").to_owned(),
        ca_file: tls.ca_file.clone(),
        wrong_ca_file: tls.wrong_ca_file.clone(),
    }
}

/// The cluster in `cell`, started by `start` on first use.
fn shared(
    cell: &'static OnceLock<Result<Cluster, String>>,
    start: fn() -> Cluster,
) -> &'static Cluster {
    let started = cell.get_or_init(|| {
        std::panic::catch_unwind(start).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "the test cluster did not start".into())
        })
    });
    match started {
        Ok(cluster) => cluster,
        Err(why) => panic!("{why}"),
    }
}

/// A new, empty database on the server at `admin_url`; its URL.
async fn create_database(admin_url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test PostgreSQL server: {error}"));
    let connection = tokio::spawn(connection);
    let mut attempts = 0;
    let name = loop {
        let name = format!(
            "ssod_test_{}_{}",
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        match client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
        {
            Ok(()) => break name,
            // Left over from an earlier process with the same pid on a shared server.
            Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) && attempts < 100 => {
                attempts += 1;
            }
            Err(error) => panic!("cannot create test database {name}: {error}"),
        }
    };
    drop(client);
    let _ = connection.await;
    with_database(admin_url, &name)
}

/// A direct connection to `url`, to look at what the server wrote; it closes when the client
/// is dropped.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test PostgreSQL server: {error}"));
    tokio::spawn(connection);
    client
}

/// The shared buffers (hit and read) that `EXPLAIN (ANALYZE, BUFFERS)` counts for `execute`
/// (an `EXECUTE` of a prepared statement) at its top node, with the whole plan to show when
/// that is too many. Run inside a transaction that rolls back when `execute` writes.
pub async fn pages_touched(
    client: &tokio_postgres::Client,
    execute: &str,
) -> (u64, serde_json::Value) {
    let explained = client
        .query_one(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"),
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("EXPLAIN {execute}: {error}"));
    let plan: serde_json::Value = explained.get(0);
    let top = &plan[0]["Plan"];
    let pages = ["Shared Hit Blocks", "Shared Read Blocks"]
        .iter()
        .map(|key| top[*key].as_u64().expect("buffer counts"))
        .sum();
    (pages, plan)
}

/// `url` with its database replaced by `database`, for URL and `key=value` forms alike.
pub fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| url.starts_with(**scheme))
        .map(|scheme| scheme.len())
    else {
        // key=value: a later key overrides an earlier one.
        return format!("{url} dbname={database}");
    };
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |at| scheme_end + at);
    format!("{}/{database}{query}", &base[..authority_end])
}

/// A server certificate for `localhost`, its key, its CA, and an unrelated CA, as PEM text;
/// written into the cluster's directory when it starts.
struct TlsFiles {
    ca: String,
    wrong_ca: String,
    certificate: String,
    key: String,
    ca_file: PathBuf,
    wrong_ca_file: PathBuf,
}

impl TlsFiles {
    fn make() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let new_ca = || {
            let key = KeyPair::generate().expect("ca key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let certificate = params.self_signed(&key).expect("ca certificate");
            (certificate, key)
        };
        let (ca, ca_key) = new_ca();
        let (wrong_ca, _) = new_ca();
        let key = KeyPair::generate().expect("server key");
        let certificate = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        TlsFiles {
            ca: ca.pem(),
            wrong_ca: wrong_ca.pem(),
            certificate: certificate.pem(),
            key: key.serialize_pem(),
            ca_file: PathBuf::new(),
            wrong_ca_file: PathBuf::new(),
        }
    }

    /// Writes the files into `dir` (readable by the server) and the settings that use them.
    fn install(&mut self, as_root: bool, dir: &Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        self.ca_file = dir.join("ca.pem");
        self.wrong_ca_file = dir.join("wrong-ca.pem");
        let certificate_file = dir.join("server.pem");
        let key_file = dir.join("server.key");
        for (path, text) in [
            (&self.ca_file, &self.ca),
            (&self.wrong_ca_file, &self.wrong_ca),
            (&certificate_file, &self.certificate),
            (&key_file, &self.key),
        ] {
            std::fs::write(path, text)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        }
        // The server refuses a key that others can read.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("key permissions");
        if as_root {
            run(
                Command::new("chown")
                    .arg("postgres:")
                    .arg(&certificate_file)
                    .arg(&key_file),
                "chown the server's certificate",
            );
        }
        format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            certificate_file.display(),
            key_file.display()
        )
    }
}

struct Cluster {
    admin_url: String,
    port: u16,
    tls: Option<TlsFiles>,
    /// Stops the cluster once this process is gone; kept so it is owned, never waited for.
    _watchdog: Child,
}

impl Cluster {
    fn start(mut tls: Option<TlsFiles>) -> Cluster {
        let bin = postgres_bin_dir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let as_root = is_root();
        let dir = cluster_dir(as_root, "pg");
        let data = dir.join("data");
        initdb(as_root, &bin, &dir);
        let mut settings = test_settings(&dir);
        if let Some(tls) = &mut tls {
            settings.push_str(&tls.install(as_root, &dir));
        }
        append(&data.join("postgresql.conf"), &settings);
        let port = start_on_free_port(as_root, &bin, &dir);
        let watchdog = spawn_watchdog(as_root, &bin, &dir);
        Cluster {
            admin_url: admin_url(port),
            port,
            tls,
            _watchdog: watchdog,
        }
    }
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// A fresh directory for one cluster (its data in `data`, its socket and log beside it),
/// owned by `postgres` when we are root.
fn cluster_dir(as_root: bool, tag: &str) -> PathBuf {
    if as_root {
        ensure_postgres_user();
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("ssod-{tag}-{}-{nanos}", std::process::id()));
    // create_dir, not create_dir_all: a directory that already exists is not ours.
    std::fs::create_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    if as_root {
        run(
            Command::new("chown").arg("postgres:").arg(&dir),
            "chown the cluster directory",
        );
    }
    dir
}

/// `initdb` into `dir/data`.
fn initdb(as_root: bool, bin: &Path, dir: &Path) {
    let data = dir.join("data");
    let initdb = |locale: &[&str]| {
        pg_command(as_root, &bin.join("initdb"), dir)
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .args(locale)
            .output()
            .unwrap_or_else(|error| panic!("cannot run initdb: {error}"))
    };
    // A UTF-8 locale so lower() folds non-ASCII letters as Rust does; C when absent.
    let mut output = initdb(&["--locale=C.UTF-8"]);
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&data);
        output = initdb(&["--no-locale"]);
    }
    if !output.status.success() {
        panic!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The tests' server settings: local only, its socket in `dir`, tuned for speed.
fn test_settings(dir: &Path) -> String {
    format!(
        "\n# ssod tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
         max_connections = 300\nmax_parallel_workers_per_gather = 0\n",
        dir.display()
    )
}

/// Starts the cluster in `dir/data` on a free port; returns the port.
fn start_on_free_port(as_root: bool, bin: &Path, dir: &Path) -> u16 {
    let log = dir.join("postgres.log");
    let mut last_failure = String::new();
    // A free port can be taken between finding and binding it: try a few.
    for _ in 0..5 {
        let port = free_port();
        let status = pg_command(as_root, &bin.join("pg_ctl"), dir)
            .arg("--pgdata")
            .arg(dir.join("data"))
            .arg("--log")
            .arg(&log)
            .args(["--wait", "--timeout=60", "-o"])
            .arg(format!("-p {port}"))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|error| panic!("cannot run pg_ctl: {error}"));
        if status.success() {
            return port;
        }
        last_failure = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!("PostgreSQL did not start: {last_failure}");
}

/// Waits for this process to end, then stops the cluster and removes its directory. In its
/// own process group, so a Ctrl-C of the tests does not kill it before it has cleaned up.
fn spawn_watchdog(as_root: bool, bin: &Path, dir: &Path) -> Child {
    let run_as = if as_root {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {run_as}'{pg_ctl}' --pgdata '{data}' -m immediate stop >/dev/null 2>&1; \
         rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start the cluster watchdog: {error}"))
}

/// A PostgreSQL program, run as `postgres` when we are root.
fn pg_command(as_root: bool, program: &Path, dir: &Path) -> Command {
    let mut command = if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    // The postgres user may not be able to enter our working directory.
    command.current_dir(dir).process_group(0);
    command
}

/// The directory of `initdb`, `pg_ctl` and `psql`: PATH first, else the newest Debian-style
/// install.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|initdb| initdb.is_file())
            // Through symlinks, so pg_ctl and postgres come from the same installation.
            .and_then(|initdb| std::fs::canonicalize(initdb).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
    });
    let installed = || {
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version: f64 = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| bin.join("initdb").is_file())
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, bin)| bin)
    };
    on_path
        .filter(|bin| bin.join("pg_ctl").is_file())
        .or_else(installed)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn ensure_postgres_user() {
    let exists = Command::new("id")
        .arg("-u")
        .arg("postgres")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !exists {
        run(
            Command::new("useradd").args(["--system", "--no-create-home", "postgres"]),
            "create the postgres system user (PostgreSQL refuses to run as root)",
        );
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot {what}: {error}"));
    assert!(
        output.status.success(),
        "cannot {what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free port: {error}"))
}

/// The standby's name, which the primary waits for on every commit.
const STANDBY_NAME: &str = "ssod_standby";

/// A primary and a synchronous standby streaming from it, each a cluster of its own on its
/// own port and directory, for failover tests: with the standby named in
/// `synchronous_standby_names` and `synchronous_commit = on`, a commit is acknowledged only
/// once the standby has its WAL, so promoting the standby loses no acknowledged write.
/// Blocking, like [`Cluster`]; dropping it stops both (their watchdogs clean up).
pub struct ReplicatedPair {
    pub primary_port: u16,
    pub standby_port: u16,
    bin: PathBuf,
    as_root: bool,
    primary_dir: PathBuf,
    standby_dir: PathBuf,
    _watchdogs: [Child; 2],
}

impl ReplicatedPair {
    /// Starts the primary, clones it with `pg_basebackup -R`, starts the standby and waits
    /// until the primary reports it as its synchronous standby.
    pub fn start() -> ReplicatedPair {
        let bin = postgres_bin_dir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let as_root = is_root();
        let primary_dir = cluster_dir(as_root, "pg-primary");
        initdb(as_root, &bin, &primary_dir);
        let primary_data = primary_dir.join("data");
        append(
            &primary_data.join("postgresql.conf"),
            &format!(
                "{}wal_level = replica\nmax_wal_senders = 4\n\
                 synchronous_standby_names = '{STANDBY_NAME}'\nsynchronous_commit = on\n",
                test_settings(&primary_dir)
            ),
        );
        append(
            &primary_data.join("pg_hba.conf"),
            "host replication replicator 127.0.0.1/32 trust\n",
        );
        let primary_port = start_on_free_port(as_root, &bin, &primary_dir);
        let primary_watchdog = spawn_watchdog(as_root, &bin, &primary_dir);
        psql(
            as_root,
            &bin,
            &primary_dir,
            primary_port,
            // Local: no standby is there yet to confirm the commit.
            "SET synchronous_commit = local; CREATE ROLE replicator WITH REPLICATION LOGIN",
        );

        let standby_dir = cluster_dir(as_root, "pg-standby");
        let standby_data = standby_dir.join("data");
        run(
            pg_command(as_root, &bin.join("pg_basebackup"), &standby_dir)
                .arg("--dbname")
                .arg(format!(
                    "host=127.0.0.1 port={primary_port} user=replicator \
                     application_name={STANDBY_NAME}"
                ))
                .arg("--pgdata")
                .arg(&standby_data)
                .args([
                    "--write-recovery-conf",
                    "--checkpoint=fast",
                    "--wal-method=stream",
                    "--no-sync",
                ]),
            "clone the primary with pg_basebackup",
        );
        // The clone carries the primary's settings: its own socket directory, and no
        // synchronous standby of its own, or its commits would wait forever once promoted.
        append(
            &standby_data.join("postgresql.conf"),
            &format!(
                "unix_socket_directories = '{}'\nsynchronous_standby_names = ''\n\
                 cluster_name = '{STANDBY_NAME}'\n",
                standby_dir.display()
            ),
        );
        let standby_port = start_on_free_port(as_root, &bin, &standby_dir);
        let standby_watchdog = spawn_watchdog(as_root, &bin, &standby_dir);
        let pair = ReplicatedPair {
            primary_port,
            standby_port,
            bin,
            as_root,
            primary_dir,
            standby_dir,
            _watchdogs: [primary_watchdog, standby_watchdog],
        };
        pair.wait_for_synchronous_standby();
        pair
    }

    /// The superuser URL of the primary's `postgres` database.
    pub fn primary_admin_url(&self) -> String {
        admin_url(self.primary_port)
    }

    /// A URL of `database` on the standby.
    pub fn standby_url(&self, database: &str) -> String {
        with_database(&admin_url(self.standby_port), database)
    }

    /// A multi-host URL of `database` that connects to whichever of the two is the primary.
    pub fn multi_host_url(&self, database: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/{database}\
             ?target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// Kills the primary as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_primary(&self) {
        self.pg_ctl(
            &self.primary_dir,
            &["-m", "immediate", "stop"],
            "stop the primary",
        );
    }

    /// Promotes the standby and waits until it accepts writes.
    pub fn promote_standby(&self) {
        self.pg_ctl(
            &self.standby_dir,
            &["--wait", "promote"],
            "promote the standby",
        );
    }

    fn pg_ctl(&self, dir: &Path, args: &[&str], what: &str) {
        run(&mut self.pg_ctl_command(dir, args), what);
    }

    fn pg_ctl_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = pg_command(self.as_root, &self.bin.join("pg_ctl"), dir);
        command.arg("--pgdata").arg(dir.join("data")).args(args);
        command
    }

    fn wait_for_synchronous_standby(&self) {
        let query = format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        );
        for _ in 0..300 {
            let state = psql(
                self.as_root,
                &self.bin,
                &self.primary_dir,
                self.primary_port,
                &query,
            );
            if state.trim() == "sync" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the standby did not become the primary's synchronous standby");
    }
}

impl Drop for ReplicatedPair {
    fn drop(&mut self) {
        for dir in [&self.primary_dir, &self.standby_dir] {
            // The primary may be stopped already; the watchdogs remove the directories.
            let _ = self
                .pg_ctl_command(dir, &["-m", "immediate", "stop"])
                .output();
        }
    }
}

/// Runs `sql` with `psql` as `postgres` on the server at `port`; returns its unaligned output.
fn psql(as_root: bool, bin: &Path, dir: &Path, port: u16, sql: &str) -> String {
    let output = pg_command(as_root, &bin.join("psql"), dir)
        .args([
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--host=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .args(["--username=postgres", "--dbname=postgres", "--command"])
        .arg(sql)
        .output()
        .unwrap_or_else(|error| panic!("cannot run psql: {error}"));
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgresql://h1,h2/db", "x"),
        "postgresql://h1,h2/x"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    assert_eq!(
        with_database("host=h user=u", "x"),
        "host=h user=u dbname=x"
    );
}
