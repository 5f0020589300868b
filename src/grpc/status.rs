//! The one place where service errors become gRPC statuses: canonical code, one
//! `google.rpc.ErrorInfo` (domain `sso`), `BadRequest` field violations for field problems.
//! Internal causes are logged here and never sent.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation as ProtoViolation, StatusExt};

use crate::service::ServiceError;

pub const ERROR_DOMAIN: &str = "sso";

/// Work refused for overload usually clears within a second: a hash takes tens of
/// milliseconds and the queue is short.
const OVERLOAD_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Guest sessions make room only as they expire and the sweep (every minute by default)
/// removes them.
const GUEST_LIMIT_RETRY_DELAY: Duration = Duration::from_secs(60);

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = match &error {
            ServiceError::InvalidArgument(_)
            | ServiceError::LimitExceeded(_)
            | ServiceError::PasswordTooWeak(_)
            | ServiceError::PasswordReused(_)
            | ServiceError::TokenInvalid => Code::InvalidArgument,
            ServiceError::InvalidCredentials
            | ServiceError::TotpRequired
            | ServiceError::TotpInvalid
            | ServiceError::TooManyAttempts { .. }
            | ServiceError::UstMissing
            | ServiceError::UstInvalid => Code::Unauthenticated,
            ServiceError::SuperUserRequired
            | ServiceError::NotOwner
            | ServiceError::UserLocked
            | ServiceError::UserNotApproved
            | ServiceError::UserNotConfirmed
            | ServiceError::SignUpDisabled
            | ServiceError::AppNotAllowed => Code::PermissionDenied,
            ServiceError::PasswordExpired
            | ServiceError::PasswordMustChange
            | ServiceError::EncryptionUnavailable
            | ServiceError::TotpAlreadyEnabled
            | ServiceError::TotpNotPending
            | ServiceError::TotpNotEnabled
            | ServiceError::CursorExpired => Code::FailedPrecondition,
            ServiceError::UsernameTaken => Code::AlreadyExists,
            ServiceError::UserNotFound
            | ServiceError::SessionNotFound
            | ServiceError::AttributeNotFound => Code::NotFound,
            ServiceError::Overloaded
            | ServiceError::TooManyGuestSessions
            | ServiceError::SessionLimitReached => Code::ResourceExhausted,
            ServiceError::StoreUnavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        };
        match &error {
            ServiceError::StoreUnavailable(cause) => {
                tracing::error!(cause = %cause, "store unavailable");
            }
            ServiceError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            _ => {}
        }
        let mut details =
            ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, HashMap::new());
        let violations = error.field_violations();
        if let Some(delay) = retry_after(&error) {
            details.set_retry_info(Some(delay));
        }
        if !violations.is_empty() {
            details.set_bad_request(
                violations
                    .iter()
                    .map(|v| ProtoViolation::new(v.field.clone(), v.description.clone()))
                    .collect::<Vec<_>>(),
            );
        }
        Status::with_error_details(code, message(&error), details)
    }
}

/// How long a refused client should wait before trying again.
fn retry_after(error: &ServiceError) -> Option<Duration> {
    match error {
        ServiceError::Overloaded => Some(OVERLOAD_RETRY_DELAY),
        ServiceError::TooManyAttempts { retry_after } => Some(*retry_after),
        ServiceError::TooManyGuestSessions => Some(GUEST_LIMIT_RETRY_DELAY),
        _ => None,
    }
}

/// A message for people: the error, plus the field problems.
fn message(error: &ServiceError) -> String {
    let violations = error.field_violations();
    if violations.is_empty() {
        return error.to_string();
    }
    let fields: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    format!("{error}: {}", fields.join("; "))
}

/// How a stream still open at shutdown ends: `UNAVAILABLE`, so the client retries on
/// another replica.
pub fn shutting_down() -> Status {
    let details = ErrorDetails::with_error_info("SHUTTING_DOWN", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::Unavailable, "server shutting down", details)
}

/// Errors that tonic itself raises (unknown method, undecodable message, oversized message)
/// carry no details; this gives them the contract's `ErrorInfo`, keeping their code.
pub fn with_error_info(status: Status) -> Status {
    if !status.details().is_empty() || status.code() == Code::Ok {
        return status;
    }
    let reason = match status.code() {
        Code::InvalidArgument
        | Code::Unimplemented
        | Code::OutOfRange
        | Code::ResourceExhausted => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    };
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(status.code(), status.message(), details)
}

/// A call that passed its deadline (the client's `grpc-timeout` or the server's request
/// timeout, whichever is shorter).
pub fn deadline_exceeded() -> Status {
    let details = ErrorDetails::with_error_info("DEADLINE_EXCEEDED", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::DeadlineExceeded, "deadline exceeded", details)
}
