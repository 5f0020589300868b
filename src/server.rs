//! Wiring: the gRPC services behind their layers, health, reflection, the expiry sweeper and
//! a store prober under one [`Lifecycle`], and graceful shutdown (health NOT_SERVING, stop
//! accepting, end open streams, drain with a deadline, then stop the background tasks).

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    AppError,
    grpc::{
        AttributeApi, AuthLayer, DeadlineLayer, EndStreamsLayer, EventApi, ObserveLayer,
        SessionApi, ShedLayer, UserApi,
    },
    lifecycle::Lifecycle,
    proto::{
        self, attribute_service_server::AttributeServiceServer,
        event_service_server::EventServiceServer, session_service_server::SessionServiceServer,
        user_service_server::UserServiceServer,
    },
    service::Sso,
    store::StoreHealth,
};

/// How the server runs, apart from the service itself.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub tls: Option<ServerTlsConfig>,
    pub sweep_interval: Duration,
    pub shutdown_timeout: Duration,
    /// How often the store is pinged to drive the health status.
    pub health_probe_interval: Duration,
    pub limits: ServerLimits,
}

/// The bounds on what clients may hold of the server: streams per connection, messages,
/// calls in flight, time per call and per connection.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// HTTP/2 streams per connection, advertised in the SETTINGS frame.
    pub max_concurrent_streams: u32,
    /// Streams opened and reset by the client before they were accepted, before GOAWAY.
    pub max_pending_reset_streams: usize,
    /// Streams reset by the server for the client's protocol errors, before GOAWAY.
    pub max_local_reset_streams: usize,
    /// The largest request and response message on every service.
    pub max_message_bytes: usize,
    /// Calls served at once across the process; beyond, `OVERLOADED`.
    pub max_in_flight: usize,
    /// The server-side deadline; a shorter client `grpc-timeout` wins.
    pub request_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// A connection this old is sent GOAWAY; after the grace it is closed.
    pub max_connection_age: Duration,
    pub max_connection_age_grace: Duration,
}

/// Sets a generated server's message limits, both ways.
macro_rules! with_message_limits {
    ($server:expr, $limits:expr) => {
        $server
            .max_decoding_message_size($limits.max_message_bytes)
            .max_encoding_message_size($limits.max_message_bytes)
    };
}

/// The names health answers for: the server as a whole and each service.
const HEALTH_SERVICES: [&str; 5] = [
    "",
    "sso.v1.UserService",
    "sso.v1.SessionService",
    "sso.v1.AttributeService",
    "sso.v1.EventService",
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Reflection over our services, health, and `google.rpc` error details (so grpcurl can
/// show an error's `ErrorInfo`).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Serves on `listener` until `shutdown` completes. `lifecycle` may already run tasks the
/// service depends on (the notification listener); they stop with the server's own.
pub async fn serve(
    listener: TcpListener,
    sso: Arc<Sso>,
    options: ServeOptions,
    lifecycle: Lifecycle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let limits = options.limits;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // Serving only once the store has answered.
    let reachable = ping(&sso, options.health_probe_interval).await;
    set_health(&reporter, serving_status(reachable)).await;
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|error| AppError::Startup(error.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|error| AppError::Startup(error.to_string()))?;

    lifecycle.spawn(sweep_loop(
        Arc::clone(&sso),
        options.sweep_interval,
        lifecycle.token(),
    ));
    // The prober has its own token: it must stop before the other tasks (see below).
    let stop_prober = lifecycle.token();
    let prober = lifecycle.spawn(probe_loop(
        Arc::clone(&sso),
        reporter.clone(),
        options.health_probe_interval,
        reachable,
        stop_prober.clone(),
    ));

    let mut builder = Server::builder()
        .tcp_nodelay(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_pending_accept_reset_streams(Some(limits.max_pending_reset_streams))
        .http2_max_local_error_reset_streams(Some(limits.max_local_reset_streams))
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_connection_age(limits.max_connection_age)
        .max_connection_age_grace(limits.max_connection_age_grace);
    if let Some(tls) = options.tls.clone() {
        builder = builder
            .tls_config(tls)
            .map_err(|error| AppError::Startup(error.to_string()))?;
    }
    // Outermost first: every call is observed, shed ones included; shedding comes before
    // any work (the deadline's timer, the auth layer's store look-up); the deadline bounds
    // the auth look-up too.
    let router = builder
        .layer(ObserveLayer::new())
        .layer(ShedLayer::new(limits.max_in_flight))
        .layer(DeadlineLayer::new(limits.request_timeout))
        .layer(EndStreamsLayer::new(lifecycle.stream_token()))
        .layer(AuthLayer::new(Arc::clone(&sso)))
        .add_service(with_message_limits!(health_service, limits))
        .add_service(with_message_limits!(reflection_v1, limits))
        .add_service(with_message_limits!(reflection_v1alpha, limits))
        .add_service(with_message_limits!(
            UserServiceServer::new(UserApi {
                sso: Arc::clone(&sso),
            }),
            limits
        ))
        .add_service(with_message_limits!(
            SessionServiceServer::new(SessionApi {
                sso: Arc::clone(&sso),
            }),
            limits
        ))
        .add_service(with_message_limits!(
            AttributeServiceServer::new(AttributeApi {
                sso: Arc::clone(&sso),
            }),
            limits
        ))
        .add_service(with_message_limits!(
            EventServiceServer::new(EventApi {
                sso: Arc::clone(&sso),
            }),
            limits
        ));

    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, tls = options.tls.is_some(), "serving");
    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(router.serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async move {
            let _ = accepting_stopped.await;
        },
    ));

    shutdown.await;
    tracing::info!("shutting down");
    // Order: the prober stops first so nothing turns health back on; health watchers see
    // NOT_SERVING; no new connection is accepted; open streams end, so they do not hold the
    // drain; the calls in flight drain within the deadline; then the background tasks stop;
    // then the store closes.
    stop_prober.cancel();
    let _ = prober.await;
    set_health(&reporter, ServingStatus::NotServing).await;
    let _ = stop_accepting.send(());
    lifecycle.end_streams();
    let mut server = server;
    let drained = tokio::time::timeout(options.shutdown_timeout, &mut server).await;
    if drained.is_err() {
        tracing::warn!(timeout = ?options.shutdown_timeout, "drain deadline passed; aborting calls");
        server.abort();
    }
    lifecycle.stop(options.shutdown_timeout).await;
    sso.store().close();
    match drained {
        Ok(Ok(Ok(()))) | Err(_) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Ok(Err(error))) => Err(AppError::Startup(error.to_string())),
        Ok(Err(error)) => Err(AppError::Startup(error.to_string())),
    }
}

/// Whether the store answers within `within` (at least a second): a hung store is down.
async fn ping(sso: &Sso, within: Duration) -> bool {
    let within = within.max(Duration::from_secs(1));
    matches!(
        tokio::time::timeout(within, sso.store().ping()).await,
        Ok(Ok(()))
    )
}

fn serving_status(reachable: bool) -> ServingStatus {
    if reachable {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn sweep_loop(sso: Arc<Sso>, every: Duration, stop: CancellationToken) {
    // The first sweep comes one interval after start, not at once: a replica that starts
    // (or restarts in a crash loop) does not add a sweep to the others' work.
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        // A sweep stuck on a hung store must not hold up shutdown.
        tokio::select! {
            swept = sso.sweep() => {
                if let Err(error) = swept {
                    tracing::warn!(error = %error, "expiry sweep failed");
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// NOT_SERVING while the store does not answer, so the mesh routes around this replica.
async fn probe_loop(
    sso: Arc<Sso>,
    reporter: HealthReporter,
    every: Duration,
    mut serving: bool,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        record_pool_status(sso.store().as_ref());
        let reachable = tokio::select! {
            reachable = ping(&sso, every) => reachable,
            _ = stop.cancelled() => return,
        };
        if reachable != serving {
            serving = reachable;
            if reachable {
                tracing::info!("store reachable; serving");
            } else {
                tracing::warn!("store unreachable; not serving");
            }
            set_health(&reporter, serving_status(reachable)).await;
        }
    }
}

fn record_pool_status(store: &dyn StoreHealth) {
    let Some(status) = store.pool_status() else {
        return;
    };
    let in_use = status.size.saturating_sub(status.idle);
    metrics::gauge!("ssod_db_pool_connections", "state" => "idle").set(status.idle as f64);
    metrics::gauge!("ssod_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("ssod_db_pool_max_connections").set(status.max_size as f64);
    metrics::gauge!("ssod_db_pool_waiting").set(status.waiting as f64);
}
