//! The outermost layer: gives every call a correlation id (`x-request-id`, generated when
//! absent, echoed in the response), opens one span carrying it, counts and times the call
//! per method and status code, and logs every non-OK status once.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
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
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "rpc",
            cid = cid.to_str().unwrap_or_default(),
            method = %method
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
                    Some(status) => tracing::info!(
                        code = ?status.code(),
                        message = status.message(),
                        elapsed_ms = elapsed.as_millis() as u64,
                        "failed"
                    ),
                }
                response.headers_mut().insert(REQUEST_ID_HEADER, cid);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
