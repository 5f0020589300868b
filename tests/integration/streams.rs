//! Long-lived calls: an open health `Watch` ends at shutdown with a clear status instead of
//! holding the drain to its deadline.

use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};

use crate::harness::{Backend, TestServer, assert_error};

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// The watch ends while the drain still waits on a stuck call, so it ended well before the
/// drain deadline, and it ended with `UNAVAILABLE` rather than a cut connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_ends_at_shutdown_before_the_drain_deadline() {
    let server = TestServer::start(Backend::Memory).await;
    // A unary call whose request never comes holds the drain until its deadline.
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    let stuck = tokio::spawn(async move {
        grpc.ready().await.expect("ready");
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let never = futures::stream::pending::<HealthCheckRequest>();
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let _ = grpc.streaming(Request::new(never), path, codec).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the watch ends within bounds")
        .expect_err("the watch ends with a status");
    assert_error(&ended, Code::Unavailable, "SHUTTING_DOWN");
    assert_eq!(ended.message(), "server shutting down");
    assert!(
        !stopping.is_finished(),
        "the watch ended while the drain still waited on the stuck call"
    );
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("the drain deadline ends the stuck call")
        .expect("joined");
    stuck.abort();
}
