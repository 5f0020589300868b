//! The server's own limits, through the real server: the streams per connection it
//! advertises, calls in flight shed with `OVERLOADED` (health checks exempt), the message
//! size limit, the deadline, and the start-up check and defaults of each setting.
//!
//! Some calls go over a raw HTTP/2 connection (the `h2` crate): it shows exactly what the
//! server advertises, and sends a `grpc-timeout` without the client-side timer tonic's
//! channel would race against the server's deadline.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use bytesize::ByteSize;
use h2::client::SendRequest;
use prost::Message;
use ssod::{AppError, config::Config, proto};
use tonic::{Code, Status};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

const SERVING: i32 = 1;
const SESSION: i32 = proto::AttributeScope::Session as i32;

/// A raw HTTP/2 connection to the server.
async fn raw_connection(address: SocketAddr) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Starts a gRPC call on `path` and waits for its response headers. With `message`, the
/// request is that one message; without, the request stays open with no message (a call
/// stuck waiting for its client), and its stream is returned to keep it open.
async fn raw_call(
    send: SendRequest<Bytes>,
    path: &str,
    grpc_timeout: Option<&str>,
    message: Option<&[u8]>,
) -> (http::Response<h2::RecvStream>, h2::SendStream<Bytes>) {
    let mut send = send.ready().await.expect("connection ready");
    let mut request = http::Request::post(format!("http://ssod{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = grpc_timeout {
        request = request.header("grpc-timeout", timeout);
    }
    let request = request.body(()).expect("request");
    let (response, mut stream) = send.send_request(request, false).expect("send request");
    if let Some(message) = message {
        let mut frame = vec![0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        stream.send_data(frame.into(), true).expect("send message");
    }
    let response = tokio::time::timeout(Duration::from_secs(20), response)
        .await
        .expect("response headers within bounds")
        .expect("response headers");
    (response, stream)
}

/// The status of a trailers-only response.
fn status_in_headers(response: &http::Response<h2::RecvStream>) -> Status {
    Status::from_header_map(response.headers()).expect("a trailers-only status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_advertises_its_stream_limit_in_its_settings() {
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.server.max_concurrent_streams = 7;
    })
    .await;
    let send = raw_connection(server.address).await;
    // Once a response has come, the server's SETTINGS (its first frame) have been read.
    let (response, _stream) = raw_call(
        send.clone(),
        "/grpc.health.v1.Health/Check",
        None,
        Some(&HealthCheckRequest::default().encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), http::StatusCode::OK);
    let advertised = send.current_max_send_streams();
    println!("SETTINGS_MAX_CONCURRENT_STREAMS advertised: {advertised}");
    assert_eq!(advertised, 7);
}

async fn health_check(server: &TestServer) -> i32 {
    HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health check answers")
        .into_inner()
        .status
}

fn assert_overloaded(status: &Status) {
    assert_error(status, Code::ResourceExhausted, "OVERLOADED");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some(), "{status:?}");
}

/// Calls until one is admitted (a place frees when the server sees the stream end); every
/// refusal meanwhile must be the overload one.
async fn admitted_eventually(server: &TestServer) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match server.try_guest().await {
                Ok(_) => return,
                Err(status) => assert_overloaded(&status),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a place frees within bounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_in_flight_limit_are_shed_while_health_checks_answer() {
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.server.max_in_flight = 2;
    })
    .await;
    let mut watches = Vec::new();
    for _ in 0..2 {
        let mut watch = HealthClient::new(server.channel.clone())
            .watch(HealthCheckRequest::default())
            .await
            .expect("watch admitted")
            .into_inner();
        let first = watch.message().await.expect("stream").expect("a status");
        assert_eq!(first.status, SERVING);
        watches.push(watch);
    }

    let refused = server.try_guest().await.expect_err("shed");
    assert_overloaded(&refused);
    let refused = HealthClient::new(server.channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .expect_err("a third watch is shed too");
    assert_overloaded(&refused);
    assert_eq!(health_check(&server).await, SERVING, "Check is exempt");

    drop(watches.pop());
    admitted_eventually(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_deadline_shorter_than_the_servers_ends_the_call_and_frees_its_place() {
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.server.max_in_flight = 1;
        config.server.request_timeout = Duration::from_secs(3600);
    })
    .await;
    let send = raw_connection(server.address).await;
    let (response, _open) = raw_call(
        send,
        "/sso.v1.SessionService/CreateSession",
        Some("100m"),
        None,
    )
    .await;
    let status = status_in_headers(&response);
    assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    admitted_eventually(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_bounds_a_call_without_a_client_deadline() {
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.server.request_timeout = Duration::from_millis(100);
    })
    .await;
    let send = raw_connection(server.address).await;
    let (response, _open) =
        raw_call(send, "/sso.v1.SessionService/CreateSession", None, None).await;
    assert_error(
        &status_in_headers(&response),
        Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
    );
    // A stream outlives the request timeout: it is bounded otherwise (see `deadline.rs`).
    let mut watch = HealthClient::new(server.channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch
            .message()
            .await
            .expect("stream")
            .expect("status")
            .status,
        SERVING
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health_check(&server).await, SERVING);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), watch.message())
            .await
            .is_err(),
        "the watch is still open, waiting for a change"
    );
}

/// The smallest message limit the start-up check admits with one attribute per owner of at
/// most 64 KiB: a 64 KiB value, a 191-character name counted twice at 4 bytes a character,
/// and framing.
const SMALLEST_MESSAGE_LIMIT: u64 = 65_536 + 2 * 4 * 191 + 128;

/// Attribute limits whose largest message is one attribute at the limits.
fn one_attribute_per_owner(config: &mut Config) {
    config.limits.max_attributes_per_owner = 1;
    config.limits.max_attributes_per_write = 1;
    config.limits.max_bytes_per_owner = 64 * 1024;
}

/// At the smallest limit the check admits, an attribute at every limit still goes in and
/// comes back; a message one byte over the limit is refused by tonic (`OUT_OF_RANGE`, with
/// the `ErrorInfo` the observe layer adds), one exactly at it is decoded.
async fn messages_above_the_limit_are_refused_and_attributes_at_the_limits_fit(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        one_attribute_per_owner(config);
        config.server.max_message_bytes = ByteSize::b(SMALLEST_MESSAGE_LIMIT);
    })
    .await;
    let ust = server.guest().await.ust;
    let name = "𝄞".repeat(191);
    let value = "v".repeat(64 * 1024 - 2);
    server
        .set_attribute(&ust, SESSION, &name, serde_json::json!(value))
        .await
        .expect("an attribute at every limit is accepted");
    let all = server
        .attributes()
        .get_attributes(authed(
            &ust,
            proto::GetAttributesRequest {
                scope: SESSION,
                ..Default::default()
            },
        ))
        .await
        .expect("and comes back")
        .into_inner();
    assert!(all.attributes.contains_key(&name));

    let request_of = |chars: usize| proto::SetAttributeRequest {
        scope: SESSION,
        name: "big".into(),
        value: Some(crate::harness::json_value(serde_json::json!(
            "v".repeat(chars)
        ))),
        ..Default::default()
    };
    let mut chars = 60_000;
    while (request_of(chars).encoded_len() as u64) < SMALLEST_MESSAGE_LIMIT {
        chars += 1;
    }
    assert_eq!(
        request_of(chars).encoded_len() as u64,
        SMALLEST_MESSAGE_LIMIT
    );
    let at_limit = server
        .attributes()
        .set_attribute(authed(&ust, request_of(chars)))
        .await
        .expect_err("decoded, then refused for the value's size");
    assert_error(&at_limit, Code::InvalidArgument, "LIMIT_EXCEEDED");
    let over = server
        .attributes()
        .set_attribute(authed(&ust, request_of(chars + 1)))
        .await
        .expect_err("refused for the message's size");
    assert_error(&over, Code::OutOfRange, "INVALID_ARGUMENT");
}

both!(messages_above_the_limit_are_refused_and_attributes_at_the_limits_fit);

#[test]
fn a_message_limit_too_small_for_the_attribute_limits_is_refused_at_start_up() {
    let mut config = Config::defaults();
    // The defaults' largest write: 1,000 items holding the owner's 4 MiB.
    let defaults = 4 * 1024 * 1024 + 1000 * (2 * 4 * 191 + 128);
    config.server.max_message_bytes = ByteSize::b(defaults - 1);
    assert!(matches!(
        ssod::serve_options(&config),
        Err(AppError::Config(_))
    ));
    config.server.max_message_bytes = ByteSize::b(defaults);
    ssod::serve_options(&config).expect("the defaults' largest message");
    one_attribute_per_owner(&mut config);
    config.server.max_message_bytes = ByteSize::b(SMALLEST_MESSAGE_LIMIT - 1);
    match ssod::serve_options(&config) {
        Err(AppError::Config(message)) => {
            assert!(message.contains("SSOD_MAX_MESSAGE_BYTES"), "{message}")
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    config.server.max_message_bytes = ByteSize::b(SMALLEST_MESSAGE_LIMIT);
    ssod::serve_options(&config).expect("just enough");
    // Smaller attribute limits allow a smaller message limit.
    config.limits.max_attribute_value_bytes = 1024;
    config.server.max_message_bytes = "4KiB".parse().expect("size");
    ssod::serve_options(&config).expect("enough for 1 KiB values");
    config.server.max_in_flight = 0;
    assert!(matches!(
        ssod::serve_options(&config),
        Err(AppError::Config(_))
    ));
}

#[test]
fn the_server_limits_have_the_documented_defaults() {
    let config = Config::defaults();
    let server = &config.server;
    assert_eq!(server.max_concurrent_streams, 200);
    assert_eq!(server.max_message_bytes, ByteSize::mib(8));
    assert_eq!(server.max_in_flight, 4096);
    assert_eq!(server.request_timeout, Duration::from_secs(30));
    assert_eq!(server.max_pending_reset_streams, 20);
    assert_eq!(server.max_local_reset_streams, 1024);
    assert_eq!(server.keepalive_interval, Duration::from_secs(60));
    assert_eq!(server.keepalive_timeout, Duration::from_secs(20));
    assert_eq!(server.max_connection_age, Duration::from_secs(30 * 60));
    assert_eq!(server.max_connection_age_grace, Duration::from_secs(5 * 60));
    let limits = ssod::serve_options(&config)
        .expect("the defaults pass the start-up check")
        .limits;
    assert_eq!(limits.max_message_bytes, 8 * 1024 * 1024);
}

/// Refusals leave as trailers-only responses (the status in HEADERS with END_STREAM), as
/// strict clients (grpc-go, grpc-core, grpc-js) require, through every layer: the gate's
/// refusal before any handler, and a handler's own error.
async fn refusals_are_trailers_only_responses(backend: Backend) {
    let server = TestServer::start(backend).await;
    let empty = proto::GetCurrentUserRequest {}.encode_to_vec();
    for path in [
        "/sso.v1.SessionService/GetSession",
        "/sso.v1.UserService/GetCurrentUser",
    ] {
        let send = raw_connection(server.address).await;
        let (response, _stream) = raw_call(send, path, None, Some(&empty)).await;
        assert_eq!(
            response.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(b"16".as_slice()),
            "{path}"
        );
        assert!(
            response.body().is_end_stream(),
            "{path}: the status must end the stream in its HEADERS frame"
        );
    }
}

both!(refusals_are_trailers_only_responses);
