//! Load shedding: at most a configured number of calls are served at once across the
//! process; the call beyond is answered at once with `RESOURCE_EXHAUSTED` `OVERLOADED` and
//! a `RetryInfo`, never queued. A call holds its place until its response body ends, so an
//! open stream (a health `Watch`, later `WatchEvents`) counts for as long as it is open.
//!
//! Health `Check` is exempt: under overload the mesh must still see the replica answer, or
//! it would take a busy replica for a dead one and move its load onto the others.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, body::Body};
use tower::Service;

use super::{
    layer::{Around, AroundLayer},
    observe::{CallEnd, when_ended},
};
use crate::service::ServiceError;

/// The calls that are never shed.
const EXEMPT_METHODS: [&str; 1] = ["/grpc.health.v1.Health/Check"];

/// Load shedding over one process-wide count of calls in flight.
pub type ShedLayer = AroundLayer<Shed>;

impl ShedLayer {
    /// At most `max_in_flight` calls at once.
    pub fn new(max_in_flight: usize) -> Self {
        AroundLayer(Shed {
            permits: Arc::new(Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS))),
        })
    }
}

#[derive(Clone)]
pub struct Shed {
    permits: Arc<Semaphore>,
}

/// The place is given back when the body ends (or is dropped): dropping the permit does it.
impl CallEnd for OwnedSemaphorePermit {
    fn ended(self, _status: &Status, _trailers: Option<&mut http::HeaderMap>) {}
}

impl Around for Shed {
    fn around<S>(
        &self,
        request: Request<Body>,
        mut inner: S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
    {
        if EXEMPT_METHODS.contains(&request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        // The refusal is logged and counted once, by the observe layer, like any failed call.
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Box::pin(async { Ok(Status::from(ServiceError::Overloaded).into_http()) });
        };
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(when_ended(response, permit))
        })
    }
}
