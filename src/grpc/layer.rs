//! The tower plumbing our request layers share, written once: readiness goes to the inner
//! service, and each call takes the inner service that was polled ready. A layer only says
//! what it does around one call ([`Around`]).

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

/// What a layer does around one call, given the request and the inner service to call.
pub trait Around: Clone + Send + Sync + 'static {
    fn around<S>(
        &self,
        request: Request<Body>,
        inner: S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send + 'static;
}

/// A tower layer made of an [`Around`].
#[derive(Clone)]
pub struct AroundLayer<A>(pub A);

impl<S, A: Clone> Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner,
            around: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<S, A> Service<Request<Body>> for AroundService<S, A>
where
    A: Around,
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // A clone is not ready: the call goes to the original, which was polled ready
        // (tower's readiness contract), and the clone stays for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        self.around.around(request, ready)
    }
}
