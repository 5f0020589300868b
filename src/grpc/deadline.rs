//! The server-side deadline: a call gets the shorter of the client's `grpc-timeout` and the
//! configured request timeout, and past it ends with `DEADLINE_EXCEEDED` (with `ErrorInfo`,
//! unlike tonic's own `Server::timeout`, which answers `CANCELLED` outside our layers).
//! Dropping the handler's future at the deadline frees what it held: its in-flight place,
//! its pooled connection, and a password hash still queued (the pool skips a job whose
//! caller has gone).
//!
//! The deadline runs until the response headers: a unary call's whole handler, but only
//! the start of a stream. Streams are meant to stay open; they are bounded by the in-flight
//! limit, the streams per connection and the connection's age and grace instead.

use std::time::Duration;

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use tonic::body::Body;
use tower::Service;

use super::layer::{Around, AroundLayer};

const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// tonic also ends a call at the client's `grpc-timeout`, outside our layers, with a bare
/// `CANCELLED`. Ending it this much earlier makes the answer ours (`DEADLINE_EXCEEDED` with
/// `ErrorInfo`, logged and counted): timers tick in milliseconds, and when both have fired
/// tonic polls the call, and so this layer, before its own timer.
const CLIENT_DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The server-side deadline over every call.
pub type DeadlineLayer = AroundLayer<Deadline>;

impl DeadlineLayer {
    pub fn new(server_timeout: Duration) -> Self {
        AroundLayer(Deadline { server_timeout })
    }
}

#[derive(Clone, Copy)]
pub struct Deadline {
    server_timeout: Duration,
}

/// The client's `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit); `None`
/// when absent or malformed, as tonic treats it.
fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(GRPC_TIMEOUT_HEADER)?.to_str().ok()?;
    let digits = text.get(..text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    let duration = match text.get(digits.len()..)? {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    };
    Some(duration)
}

impl Around for Deadline {
    fn around<S>(
        &self,
        request: Request<Body>,
        mut inner: S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
    {
        let deadline = client_timeout(request.headers()).map_or(self.server_timeout, |client| {
            client
                .saturating_sub(CLIENT_DEADLINE_MARGIN)
                .min(self.server_timeout)
        });
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(request)).await {
                Ok(response) => response,
                Err(_) => Ok(super::status::deadline_exceeded().into_http()),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT_HEADER, value.parse().unwrap());
        client_timeout(&headers)
    }

    #[test]
    fn grpc_timeout_units_parse_and_malformed_values_are_ignored() {
        assert_eq!(parsed("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parsed("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parsed("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parsed("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parsed("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parsed("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for malformed in ["", "S", "123456789S", "5s", "-5S", "5", "1.5S"] {
            assert_eq!(parsed(malformed), None, "{malformed:?}");
        }
        assert_eq!(client_timeout(&HeaderMap::new()), None);
    }
}
