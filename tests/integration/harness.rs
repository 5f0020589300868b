//! The test harness: the real server on port 0 over a real socket, on the memory store or a
//! throwaway PostgreSQL database, with a manual clock; returns connected tonic clients.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use ssod::{
    Background,
    clock::ManualClock,
    config::Config,
    proto::{
        self, attribute_service_client::AttributeServiceClient,
        session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
    },
    server::ServeOptions,
    service::Sso,
    store::Store,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Postgres,
}

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// A fixed start so expiry arithmetic is easy to read; the clock only moves when told.
pub const START: Duration = Duration::from_secs(1_800_000_000);

pub struct TestServer {
    pub channel: Channel,
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
    /// The service the server runs, for what no client can see (the hashes it ran).
    pub sso: Arc<Sso>,
    pub config: Config,
    pub address: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ssod::AppError>>>,
}

/// A test config: the defaults, an encryption key and the bootstrap super-user.
pub fn test_config() -> Config {
    let mut config = Config::defaults();
    config.bootstrap.super_user = Some(ADMIN.into());
    config.bootstrap.super_user_password = Some(ADMIN_PASSWORD.into());
    config.encryption.keys = Some(format!("k1:{}", base64_key(7)));
    config.passwords.max_concurrent_hashes = 4;
    // Tests not about the password policy use short, easy passwords; `credentials.rs` tests
    // the product's floor.
    config.credentials.password_min_strength = 0;
    config
}

pub fn base64_key(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        if backend == Backend::Postgres {
            config.database.url = Some(crate::pg::fresh_database_url().await);
        }
        configure(&mut config);
        let store = ssod::open_store(&config).await.expect("store opens");
        Self::start_on(config, store).await
    }

    /// Starts a server over an existing store (e.g. to restart on the same data), with a
    /// listener of its own on PostgreSQL, as a process has.
    pub async fn start_on(config: Config, store: Arc<dyn Store>) -> Self {
        let background =
            Background::start(config.database.url.as_deref()).expect("listener starts");
        Self::start_in(config, store, background).await
    }

    /// As [`TestServer::start_on`], with the given lifecycle and listener.
    pub async fn start_in(config: Config, store: Arc<dyn Store>, background: Background) -> Self {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + START);
        let sso = ssod::build_service(
            &config,
            Arc::clone(&store),
            Arc::new(clock.clone()),
            &background,
        )
        .expect("service builds");
        ssod::bootstrap(&config, &sso).await.expect("bootstrap");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let options = ServeOptions {
            // The background sweeper must not race the tests' own sweeps.
            sweep_interval: Duration::from_secs(3600),
            shutdown_timeout: config.server.shutdown_timeout.min(Duration::from_secs(5)),
            health_probe_interval: Duration::from_millis(100),
            ..ssod::serve_options(&config).expect("serve options")
        };
        let task = tokio::spawn(ssod::server::serve(
            listener,
            Arc::clone(&sso),
            options,
            background.lifecycle,
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        Self {
            channel,
            clock,
            store,
            sso,
            config,
            address,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> (Config, Arc<dyn Store>) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
        (self.config.clone(), Arc::clone(&self.store))
    }

    pub fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    pub fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel.clone())
    }

    pub fn attributes(&self) -> AttributeServiceClient<Channel> {
        AttributeServiceClient::new(self.channel.clone())
    }

    pub fn clock_now(&self) -> SystemTime {
        use ssod::clock::Clock;
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn login(&self, username: &str, password: &str) -> proto::LoginResponse {
        self.try_login(username, password, None)
            .await
            .unwrap_or_else(|status| panic!("login of {username} failed: {status:?}"))
    }

    pub async fn try_login(
        &self,
        username: &str,
        password: &str,
        ust: Option<&str>,
    ) -> Result<proto::LoginResponse, Status> {
        let request = proto::LoginRequest {
            username: username.into(),
            password: password.into(),
            current_app: "tests".into(),
            remote_addr: "127.0.0.1".into(),
            user_agent: "harness".into(),
            ..Default::default()
        };
        let request = match ust {
            Some(ust) => authed(ust, request),
            None => Request::new(request),
        };
        self.users().login(request).await.map(|r| r.into_inner())
    }

    /// `GetCurrentUser` with `ust`: the quickest question whether a session still works.
    pub async fn current_user(
        &self,
        ust: &str,
    ) -> Result<tonic::Response<proto::GetCurrentUserResponse>, Status> {
        self.users()
            .get_current_user(authed(ust, proto::GetCurrentUserRequest {}))
            .await
    }

    /// `SetAttribute` of a plain, permanent value.
    pub async fn set_attribute(
        &self,
        ust: &str,
        scope: i32,
        name: &str,
        value: serde_json::Value,
    ) -> Result<tonic::Response<proto::SetAttributeResponse>, Status> {
        self.attributes()
            .set_attribute(authed(
                ust,
                proto::SetAttributeRequest {
                    scope,
                    name: name.into(),
                    value: Some(json_value(value)),
                    ..Default::default()
                },
            ))
            .await
    }

    /// `SetAttributes` of `items` with no defaults.
    pub async fn set_attributes(
        &self,
        ust: &str,
        scope: i32,
        attributes: Vec<proto::AttributeWrite>,
    ) -> Result<tonic::Response<proto::SetAttributesResponse>, Status> {
        self.attributes()
            .set_attributes(authed(
                ust,
                proto::SetAttributesRequest {
                    scope,
                    attributes,
                    ..Default::default()
                },
            ))
            .await
    }

    /// `GetAttribute` on the caller's own session or user.
    pub async fn get_attribute(
        &self,
        ust: &str,
        scope: i32,
        name: &str,
    ) -> Result<tonic::Response<proto::GetAttributeResponse>, Status> {
        self.attributes()
            .get_attribute(authed(
                ust,
                proto::GetAttributeRequest {
                    scope,
                    name: name.into(),
                    ..Default::default()
                },
            ))
            .await
    }

    /// `ListAttributeNames` on the caller's own session or user.
    pub async fn list_attribute_names(
        &self,
        ust: &str,
        scope: i32,
    ) -> Result<tonic::Response<proto::ListAttributeNamesResponse>, Status> {
        self.attributes()
            .list_attribute_names(authed(
                ust,
                proto::ListAttributeNamesRequest {
                    scope,
                    ..Default::default()
                },
            ))
            .await
    }

    /// The bootstrap super-user's UST.
    pub async fn admin(&self) -> String {
        self.login(ADMIN, ADMIN_PASSWORD).await.ust
    }

    /// Creates an approved user with the given password; returns it.
    pub async fn create_user(
        &self,
        admin_ust: &str,
        username: &str,
        password: &str,
    ) -> proto::User {
        self.users()
            .create_user(authed(
                admin_ust,
                proto::CreateUserRequest {
                    username: username.into(),
                    password: Some(password.into()),
                    ..Default::default()
                },
            ))
            .await
            .expect("create user")
            .into_inner()
            .user
            .expect("user")
    }

    /// A new user and a UST of a session of it.
    pub async fn user_session(&self, username: &str) -> (proto::User, String) {
        let admin = self.admin().await;
        let user = self.create_user(&admin, username, "user-password-1").await;
        let ust = self.login(username, "user-password-1").await.ust;
        (user, ust)
    }

    pub async fn guest(&self) -> proto::CreateSessionResponse {
        self.try_guest().await.expect("guest session")
    }

    /// `CreateSession`, which needs no credentials: the simplest call that does work.
    pub async fn try_guest(&self) -> Result<proto::CreateSessionResponse, Status> {
        self.sessions()
            .create_session(proto::CreateSessionRequest {
                current_app: "tests".into(),
                remote_addr: "127.0.0.1".into(),
                user_agent: "harness".into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A request carrying `authorization: Bearer <ust>`.
pub fn authed<T>(ust: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {ust}").parse().expect("header value");
    request.metadata_mut().insert("authorization", value);
    request
}

/// The `ErrorInfo.reason` of a status, asserting the domain.
pub fn reason(status: &Status) -> String {
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "sso");
    info.reason.clone()
}

/// Asserts a status's code and reason.
pub fn assert_error(status: &Status, code: tonic::Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

/// The fields named by `BadRequest` field violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// One item of a `SetAttributes` write: a plain, permanent value.
pub fn write(name: impl Into<String>, value: serde_json::Value) -> proto::AttributeWrite {
    proto::AttributeWrite {
        name: name.into(),
        value: Some(json_value(value)),
        ..Default::default()
    }
}

pub fn json_value(value: serde_json::Value) -> prost_types::Value {
    let text = value.to_string();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
    to_proto(parsed)
}

fn to_proto(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().expect("number")),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(to_proto).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields.into_iter().map(|(k, v)| (k, to_proto(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Runs a gRPC suite once per backend: `both!(name)` makes `name::memory` and
/// `name::postgres` from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::harness::Backend::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await;
            }
        }
    )*};
}

/// Opens a health `Watch` on `server`, sees SERVING, starts a graceful stop and sees the
/// watch turn NOT_SERVING; returns the still-open watch and the stopping server.
pub async fn watch_health_into_shutdown(
    server: TestServer,
) -> (
    tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    JoinHandle<(Config, Arc<dyn Store>)>,
) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    const SERVING: i32 = 1;
    const NOT_SERVING: i32 = 2;
    let mut watch = HealthClient::new(server.channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("a status");
    assert_eq!(first.status, SERVING);
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status within bounds")
        .expect("stream")
        .expect("a status");
    assert_eq!(next.status, NOT_SERVING);
    (watch, stopping)
}
