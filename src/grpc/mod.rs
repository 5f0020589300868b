//! The gRPC edge: thin handlers, proto ↔ domain conversion, the request layers
//! (correlation id and observability, load shedding, deadlines, authentication and the
//! super-user gate) and the one
//! mapping of service errors to statuses.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::service::{Authentication, Caller};

mod attributes;
mod auth;
mod convert;
mod deadline;
mod end_streams;
mod events;
mod layer;
mod observe;
mod sessions;
mod shed;
mod status;
mod users;

pub use attributes::AttributeApi;
pub use auth::{AuthLayer, SUPER_USER_METHODS};
pub use deadline::DeadlineLayer;
pub use end_streams::EndStreamsLayer;
pub use events::EventApi;
pub use observe::{ObserveLayer, REQUEST_ID_HEADER};
pub use sessions::SessionApi;
pub use shed::ShedLayer;
pub use status::ERROR_DOMAIN;
pub use users::UserApi;

/// What every handler returns.
type Reply<T> = Result<Response<T>, Status>;

static MISSING: Authentication = Authentication::Missing;

/// What the authentication layer found; `Missing` if the layer did not run.
fn authentication<T>(request: &Request<T>) -> &Authentication {
    request
        .extensions()
        .get::<Authentication>()
        .unwrap_or(&MISSING)
}

/// The authenticated caller, or `UNAUTHENTICATED`.
fn caller<T>(request: &Request<T>) -> Result<Arc<Caller>, Status> {
    Ok(Arc::clone(authentication(request).caller()?))
}
