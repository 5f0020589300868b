//! Ends response streams at shutdown. A stream (the health `Watch`, reflection, later
//! `WatchEvents`) can stay open for ever, and the graceful drain waits for every open call:
//! without this, one watcher holds the server until the drain deadline and then sees its
//! connection cut. When the lifecycle's stream token is cancelled, a stream that is
//! waiting for its next message ends with `UNAVAILABLE` "server shutting down" instead.
//!
//! A body is cut only while its handler has nothing ready to send: a unary response is
//! ready at once, so it is never cut, and a message already produced (NOT_SERVING for a
//! health watcher) is still delivered.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::Frame;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Status, body::Body};
use tower::Service;

use super::layer::{Around, AroundLayer};

/// Ends streams once the lifecycle's stream token is cancelled.
pub type EndStreamsLayer = AroundLayer<EndStreams>;

impl EndStreamsLayer {
    /// `token`: a stream token of the server's lifecycle.
    pub fn new(token: CancellationToken) -> Self {
        AroundLayer(EndStreams { token })
    }
}

#[derive(Clone)]
pub struct EndStreams {
    token: CancellationToken,
}

impl Around for EndStreams {
    fn around<S>(
        &self,
        request: Request<Body>,
        mut inner: S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
    {
        let token = self.token.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| {
                Body::new(Ending {
                    inner: body,
                    token,
                    cancelled: None,
                    ended: false,
                })
            }))
        })
    }
}

/// A response body that ends with trailers saying the server is shutting down once its
/// token is cancelled while it waits for its next frame.
struct Ending {
    inner: Body,
    token: CancellationToken,
    /// Made on the first wait only, so a body that never waits allocates nothing.
    cancelled: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    ended: bool,
}

impl http_body::Body for Ending {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let cancelled = this
            .cancelled
            .get_or_insert_with(|| Box::pin(this.token.clone().cancelled_owned()));
        ready!(cancelled.as_mut().poll(cx));
        this.ended = true;
        let mut trailers = http::HeaderMap::new();
        Poll::Ready(Some(
            super::status::shutting_down()
                .add_header(&mut trailers)
                .map(|()| Frame::trailers(trailers)),
        ))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
