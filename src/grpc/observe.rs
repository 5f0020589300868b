//! The outermost layer: gives every call a correlation id (`x-request-id`, generated when
//! absent, echoed in the response), opens one span carrying it, counts and times the call
//! per method and status code, and logs every non-OK status once.

use std::{
    collections::HashSet,
    sync::LazyLock,
    task::{Context, Poll},
    time::Instant,
};

use prost::Message;
use prost_types::FileDescriptorSet;

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Every method this server answers, as a metrics label; anything else is `unknown`, so
/// callers cannot grow the number of series.
static KNOWN_METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut methods: HashSet<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Ok(set) = FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) {
        for file in set.file.iter().filter(|file| file.package() == "sso.v1") {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!("/sso.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
    }
    methods
});

fn method_label(path: &str) -> String {
    if KNOWN_METHODS.contains(path) {
        path.to_owned()
    } else {
        "unknown".to_owned()
    }
}
const MAX_REQUEST_ID_LEN: usize = 128;

#[derive(Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService { inner }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
}

/// A client's id is kept if it is short visible ASCII; otherwise a new UUID is used.
fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|value| {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("invalid"))
        })
}

/// The status of a trailers-only (error) response; a normal unary response carries OK in
/// its trailers, after the body.
fn status_of(response: &Response<Body>) -> Option<tonic::Status> {
    tonic::Status::from_header_map(response.headers())
}

impl<S> Service<Request<Body>> for ObserveService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let mut inner = super::take_ready(&mut self.inner);
        let cid = request_id(request.headers());
        request.headers_mut().insert(REQUEST_ID_HEADER, cid.clone());
        let path = request.uri().path().to_owned();
        let method = method_label(&path);
        let span = tracing::info_span!(
            "rpc",
            cid = cid.to_str().unwrap_or_default(),
            method = %path
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let mut response = inner.call(request).await?;
                let status = status_of(&response);
                let code = status.as_ref().map_or(0, |status| status.code() as i32);
                let elapsed = started.elapsed();
                metrics::counter!("ssod_requests_total", "method" => method.clone(), "code" => code.to_string())
                    .increment(1);
                metrics::histogram!("ssod_request_duration_seconds", "method" => method.clone(), "code" => code.to_string())
                    .record(elapsed.as_secs_f64());
                match status.filter(|status| status.code() != tonic::Code::Ok) {
                    None => tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "ok"),
                    Some(status) => {
                        tracing::info!(
                            code = ?status.code(),
                            error = status.message(),
                            elapsed_ms = elapsed.as_millis() as u64,
                            "failed"
                        );
                        if status.details().is_empty() {
                            response = super::status::with_error_info(status).into_http();
                        }
                    }
                }
                response.headers_mut().insert(REQUEST_ID_HEADER, cid);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
