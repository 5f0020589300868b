//! The outermost layer: gives every call a correlation id (`x-request-id`, generated when
//! absent, echoed in the response), opens one span carrying it, counts and times the call
//! per method and status code, and logs every non-OK status once.
//!
//! A call ends when its status is sent: in the headers of a trailers-only response (every
//! error a handler returns), else in the trailers after the body. So the body of a
//! response is watched to its end: a stream is recorded with its final status and its
//! whole duration, and a body dropped before its status (the client went away) counts
//! as `CANCELLED`.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll, ready},
    time::Instant,
};

use prost::Message;
use prost_types::FileDescriptorSet;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use tonic::{Code, Status, body::Body};
use tower::Service;

use super::layer::{Around, AroundLayer};
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

/// The outermost layer: correlation id, span, metrics and the failed-call log line.
pub type ObserveLayer = AroundLayer<Observe>;

impl ObserveLayer {
    pub fn new() -> Self {
        AroundLayer(Observe)
    }
}

#[derive(Clone, Copy)]
pub struct Observe;

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

/// The status of a trailers-only response (every error a handler returns); `None` when the
/// status comes in the trailers, after the body.
fn status_of(response: &Response<Body>) -> Option<Status> {
    Status::from_header_map(response.headers())
}

/// Runs `end` once the call of `response` has ended. A trailers-only response (an error
/// answered before any message) has ended already: its status is in the headers, and its
/// empty body is passed on as it is, so HTTP/2 still sends the headers with END_STREAM — a
/// body that only ends when polled would put the status in headers followed by an empty
/// DATA frame, which strict clients (grpc-go, grpc-core, grpc-js) take for a broken call.
pub(super) fn when_ended<E: CallEnd>(response: Response<Body>, end: E) -> Response<Body> {
    match status_of(&response) {
        Some(status) => {
            end.ended(&status, None);
            response
        }
        None => response.map(|body| UntilEnd::wrap(body, end)),
    }
}

/// A call to be recorded once, when its status is known.
struct Call {
    method: String,
    started: Instant,
    span: tracing::Span,
}

impl Call {
    /// Counts and times the call, and logs it (once, at info level when it failed).
    fn finish(self, status: &Status) {
        let code = status.code();
        let elapsed = self.started.elapsed();
        let labels = [("method", self.method), ("code", (code as i32).to_string())];
        metrics::counter!("ssod_requests_total", &labels).increment(1);
        metrics::histogram!("ssod_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
        let elapsed_ms = elapsed.as_millis() as u64;
        self.span.in_scope(|| {
            if code == Code::Ok {
                tracing::debug!(elapsed_ms, "ok");
            } else {
                tracing::info!(code = ?code, error = status.message(), elapsed_ms, "failed");
            }
        });
    }
}

/// What happens once when a call ends: when the trailers carry its status, when its body
/// fails, or when the body is dropped before either (`CANCELLED`: the client went away).
/// `trailers` are those that carried the status, for an end that adds to them.
pub(super) trait CallEnd: Send + Unpin + 'static {
    fn ended(self, status: &Status, trailers: Option<&mut http::HeaderMap>);
}

impl CallEnd for Call {
    fn ended(self, status: &Status, trailers: Option<&mut http::HeaderMap>) {
        self.finish(status);
        // An error the handler did not make (tonic's own) still gets ErrorInfo; our own
        // details always encode, so a failure here changes nothing.
        if let Some(trailers) = trailers
            && status.code() != Code::Ok
            && status.details().is_empty()
        {
            let _ = super::status::with_error_info(status.clone()).add_header(trailers);
        }
    }
}

/// A response body that runs its [`CallEnd`] once, at the end of the call: a stream's end
/// is its last frame, not its headers.
pub(super) struct UntilEnd<E: CallEnd> {
    inner: Body,
    /// `None` once run.
    end: Option<E>,
}

impl<E: CallEnd> UntilEnd<E> {
    pub(super) fn wrap(inner: Body, end: E) -> Body {
        Body::new(Self {
            inner,
            end: Some(end),
        })
    }

    fn end(&mut self, status: &Status, trailers: Option<&mut http::HeaderMap>) {
        if let Some(end) = self.end.take() {
            end.ended(status, trailers);
        }
    }
}

impl<E: CallEnd> http_body::Body for UntilEnd<E> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match polled {
            Some(Ok(frame)) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    let status = Status::from_header_map(&trailers)
                        .unwrap_or_else(|| Status::unknown("response without a status"));
                    self.end(&status, Some(&mut trailers));
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Some(Err(status)) => {
                self.end(&status, None);
                Poll::Ready(Some(Err(status)))
            }
            None => {
                self.end(&Status::unknown("response without a status"), None);
                Poll::Ready(None)
            }
        }
    }

    /// Not before the end has run: an empty body must still be polled to its end.
    fn is_end_stream(&self) -> bool {
        self.end.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<E: CallEnd> Drop for UntilEnd<E> {
    fn drop(&mut self) {
        self.end(
            &Status::cancelled("the call ended before its status was sent"),
            None,
        );
    }
}

impl Around for Observe {
    fn around<S>(
        &self,
        mut request: Request<Body>,
        mut inner: S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
    {
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
                let call = Call {
                    method,
                    started: Instant::now(),
                    span: tracing::Span::current(),
                };
                // Every event the call records carries its cid.
                let cid_text = cid.to_str().unwrap_or_default().to_owned();
                let mut response = crate::service::with_cid(cid_text, inner.call(request)).await?;
                if let Some(status) = status_of(&response)
                    && status.code() != Code::Ok
                    && status.details().is_empty()
                {
                    response = super::status::with_error_info(status).into_http();
                }
                let mut response = when_ended(response, call);
                response.headers_mut().insert(REQUEST_ID_HEADER, cid);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
