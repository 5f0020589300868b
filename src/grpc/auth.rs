//! Authentication and the super-user gate, as an async tower layer: it must look the
//! session up in the store, so it cannot be a synchronous interceptor. It resolves the
//! `authorization: Bearer <UST>` metadata once per request, refuses the super-user-only
//! methods before their handler runs, and hands the caller to handlers in the request
//! extensions. Health and reflection pass untouched.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::service::{Authentication, ServiceError, Sso};

/// The one table of methods only a super-user may call.
pub const SUPER_USER_METHODS: &[&str] = &[
    "/sso.v1.UserService/CreateUser",
    "/sso.v1.UserService/GetUser",
    "/sso.v1.UserService/ListUsers",
    "/sso.v1.UserService/DeleteUser",
    "/sso.v1.UserService/LockUser",
    "/sso.v1.UserService/UnlockUser",
    "/sso.v1.UserService/ApproveUser",
    "/sso.v1.UserService/RejectUser",
    "/sso.v1.SessionService/GetSession",
    "/sso.v1.SessionService/VerifySession",
    "/sso.v1.SessionService/DeleteUserSessions",
    "/sso.v1.SessionService/PurgeExpired",
];

/// Only these services take a UST; everything else (health, reflection) is let through.
const SSO_PREFIX: &str = "/sso.v1.";

#[derive(Clone)]
pub struct AuthLayer {
    sso: Arc<Sso>,
}

impl AuthLayer {
    pub fn new(sso: Arc<Sso>) -> Self {
        Self { sso }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            sso: Arc::clone(&self.sso),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    sso: Arc<Sso>,
}

impl<S> Service<Request<Body>> for AuthService<S>
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
        let sso = Arc::clone(&self.sso);
        Box::pin(async move {
            let path = request.uri().path();
            if !path.starts_with(SSO_PREFIX) {
                return inner.call(request).await;
            }
            let super_user_only = SUPER_USER_METHODS.contains(&path);
            let authentication = authenticate(&sso, request.headers()).await;
            if super_user_only && let Err(refusal) = gate(&authentication) {
                return Ok(Status::from(refusal).into_http());
            }
            request.extensions_mut().insert(authentication);
            inner.call(request).await
        })
    }
}

async fn authenticate(sso: &Sso, headers: &HeaderMap) -> Authentication {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Authentication::Missing;
    };
    let Some(ust) = value.to_str().ok().and_then(bearer_token) else {
        return Authentication::Invalid;
    };
    match sso.authenticate(ust).await {
        Ok(caller) => Authentication::Valid(Arc::new(caller)),
        Err(ServiceError::StoreUnavailable(cause)) => Authentication::Unavailable(cause),
        Err(_) => Authentication::Invalid,
    }
}

/// `Bearer <token>`, the scheme matched case-insensitively.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn gate(authentication: &Authentication) -> Result<(), ServiceError> {
    authentication.caller()?.require_super_user()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{
        clock::SystemClock,
        config::Config,
        crypto::{KeyRing, PasswordHasherPool},
        service::Dependencies,
        store::memory::MemoryStore,
    };

    /// The layer over an inner service that only counts the calls that reach it.
    #[allow(clippy::type_complexity)]
    fn gated() -> (
        AuthService<
            impl Service<
                Request<Body>,
                Response = Response<Body>,
                Error = std::convert::Infallible,
                Future: Send,
            > + Clone
            + Send
            + 'static,
        >,
        Arc<AtomicUsize>,
    ) {
        let sso = Arc::new(Sso::new(Dependencies {
            stores: crate::store::Stores::new(Arc::new(MemoryStore::new())),
            clock: Arc::new(SystemClock),
            keys: KeyRing::default(),
            passwords: PasswordHasherPool::new(1).unwrap(),
            policy: Config::defaults().policy(),
        }));
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let inner = tower::service_fn(move |_request: Request<Body>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(Response::new(Body::empty())) }
        });
        (AuthLayer::new(sso).layer(inner), calls)
    }

    async fn call<S>(service: &mut S, path: &str, authorization: Option<&str>) -> Option<Status>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Error: std::fmt::Debug,
    {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = service
            .call(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        Status::from_header_map(response.headers())
    }

    #[tokio::test]
    async fn the_gate_refuses_before_the_inner_service_runs() {
        let (mut service, calls) = gated();
        for method in SUPER_USER_METHODS {
            let refused = call(&mut service, method, None).await.expect("refused");
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{method}");
            let refused = call(&mut service, method, Some("Bearer ssod_ust_unknown"))
                .await
                .expect("refused");
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{method}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "no refused call reached a handler"
        );
        // Methods outside the table, health and reflection go through; their handlers decide.
        for path in [
            "/sso.v1.UserService/Logout",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(call(&mut service, path, None).await.is_none(), "{path}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn every_super_user_method_names_an_sso_rpc() {
        for method in SUPER_USER_METHODS {
            assert!(method.starts_with(SSO_PREFIX), "{method}");
        }
    }
}
