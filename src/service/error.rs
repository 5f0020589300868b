//! The service layer's error: one variant per contract reason. Mapped to `tonic::Status` in
//! exactly one place (`grpc::status`).

use crate::{crypto::CryptoError, store::StoreError};

/// One invalid field of a request, reported as a `BadRequest` field violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid argument")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("limit exceeded")]
    LimitExceeded(Vec<FieldViolation>),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("a user session token is required")]
    UstMissing,
    #[error("the user session token is invalid or expired")]
    UstInvalid,
    #[error("a super-user is required")]
    SuperUserRequired,
    #[error("not the owner")]
    NotOwner,
    #[error("the user is locked")]
    UserLocked,
    #[error("the user is not approved")]
    UserNotApproved,
    #[error("the password has expired")]
    PasswordExpired,
    #[error("the password must be changed")]
    PasswordMustChange,
    /// A new password the policy refuses as too easy to guess; the violation says why.
    #[error("the password is too weak")]
    PasswordTooWeak(FieldViolation),
    /// A new password that is one of the user's recent ones.
    #[error("the password was used recently")]
    PasswordReused(FieldViolation),
    /// The password was right; the user has TOTP and the login sent no code.
    #[error("a TOTP code is required")]
    TotpRequired,
    /// A TOTP or recovery code that is wrong or was used already.
    #[error("the TOTP code is invalid")]
    TotpInvalid,
    #[error("TOTP is enabled already")]
    TotpAlreadyEnabled,
    /// Confirming with no pending enrolment, or one that another enrolment replaced.
    #[error("no TOTP enrolment is pending")]
    TotpNotPending,
    #[error("TOTP is not enabled")]
    TotpNotEnabled,
    #[error("the application is not allowed")]
    AppNotAllowed,
    #[error("the username is taken")]
    UsernameTaken,
    #[error("user not found")]
    UserNotFound,
    #[error("session not found")]
    SessionNotFound,
    #[error("attribute not found")]
    AttributeNotFound,
    #[error("encryption is unavailable")]
    EncryptionUnavailable,
    /// A locked-out login, when failures are revealed; `retry_after` is the time left.
    #[error("too many failed attempts; retry later")]
    TooManyAttempts { retry_after: std::time::Duration },
    /// Refused at once rather than queued; the client may retry after a while.
    #[error("the server is overloaded; retry later")]
    Overloaded,
    /// The store holds as many guest sessions as allowed; room returns as they expire and
    /// are swept.
    #[error("too many guest sessions; retry later")]
    TooManyGuestSessions,
    /// The user holds as many live sessions as allowed, under the `refuse` policy.
    #[error("the user has the most sessions allowed; end one first")]
    SessionLimitReached,
    /// A watch's cursor names an event past the retention (or none this server recorded).
    #[error("the cursor is older than the event retention; start again from a later event")]
    CursorExpired,
    #[error("sign-up is disabled")]
    SignUpDisabled,
    #[error("the token is invalid, used or expired")]
    TokenInvalid,
    #[error("the user has not confirmed its sign-up")]
    UserNotConfirmed,
    /// The cause is logged, never sent.
    #[error("store unavailable")]
    StoreUnavailable(String),
    /// The cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn limit(field: &str, description: impl Into<String>) -> Self {
        Self::LimitExceeded(vec![FieldViolation::new(field, description)])
    }

    pub fn too_weak(field: &str, description: impl Into<String>) -> Self {
        Self::PasswordTooWeak(FieldViolation::new(field, description))
    }

    /// The field problems the status carries as `BadRequest` violations.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidArgument(violations) | Self::LimitExceeded(violations) => violations,
            Self::PasswordTooWeak(violation) | Self::PasswordReused(violation) => {
                std::slice::from_ref(violation)
            }
            _ => &[],
        }
    }

    /// The contract's `ErrorInfo.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::UstMissing => "UST_MISSING",
            Self::UstInvalid => "UST_INVALID",
            Self::SuperUserRequired => "SUPER_USER_REQUIRED",
            Self::NotOwner => "NOT_OWNER",
            Self::UserLocked => "USER_LOCKED",
            Self::UserNotApproved => "USER_NOT_APPROVED",
            Self::PasswordExpired => "PASSWORD_EXPIRED",
            Self::PasswordMustChange => "PASSWORD_MUST_CHANGE",
            Self::PasswordTooWeak(_) => "PASSWORD_TOO_WEAK",
            Self::PasswordReused(_) => "PASSWORD_REUSED",
            Self::TotpRequired => "TOTP_REQUIRED",
            Self::TotpInvalid => "TOTP_INVALID",
            Self::TotpAlreadyEnabled => "TOTP_ALREADY_ENABLED",
            Self::TotpNotPending => "TOTP_NOT_PENDING",
            Self::TotpNotEnabled => "TOTP_NOT_ENABLED",
            Self::AppNotAllowed => "APP_NOT_ALLOWED",
            Self::UsernameTaken => "USERNAME_TAKEN",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::SessionNotFound => "SESSION_NOT_FOUND",
            Self::AttributeNotFound => "ATTRIBUTE_NOT_FOUND",
            Self::EncryptionUnavailable => "ENCRYPTION_UNAVAILABLE",
            Self::TooManyAttempts { .. } => "TOO_MANY_ATTEMPTS",
            Self::Overloaded => "OVERLOADED",
            Self::TooManyGuestSessions => "LIMIT_EXCEEDED",
            Self::SessionLimitReached => "SESSION_LIMIT_REACHED",
            Self::CursorExpired => "CURSOR_EXPIRED",
            Self::SignUpDisabled => "SIGNUP_DISABLED",
            Self::TokenInvalid => "TOKEN_INVALID",
            Self::UserNotConfirmed => "USER_NOT_CONFIRMED",
            Self::StoreUnavailable(_) => "STORE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UsernameTaken => Self::UsernameTaken,
            StoreError::UserNotFound => Self::UserNotFound,
            StoreError::TotpAlreadyEnabled => Self::TotpAlreadyEnabled,
            StoreError::TotpNotPending => Self::TotpNotPending,
            StoreError::SessionNotFound => Self::SessionNotFound,
            // A login raced a lock or password reset: the password no longer opens a session.
            StoreError::UserChanged => Self::InvalidCredentials,
            StoreError::TooManyAttributes { count, limit } => Self::limit(
                "attributes",
                format!("the owner would hold {count} attributes; at most {limit} are allowed"),
            ),
            StoreError::TooManyAttributeBytes { bytes, limit } => Self::limit(
                "attributes",
                format!("the owner's values would take {bytes} bytes; at most {limit} are allowed"),
            ),
            StoreError::TooManyGuestSessions { limit } => {
                tracing::warn!(limit, "guest session limit reached");
                Self::TooManyGuestSessions
            }
            StoreError::SessionLimitReached { limit } => {
                tracing::info!(limit, "login refused at the user's session limit");
                Self::SessionLimitReached
            }
            StoreError::CursorExpired => Self::CursorExpired,
            StoreError::Unavailable(cause) => Self::StoreUnavailable(cause),
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<CryptoError> for ServiceError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::NoKeys | CryptoError::UnknownKey(_) => Self::EncryptionUnavailable,
            CryptoError::Overloaded => Self::Overloaded,
            other => Self::Internal(other.to_string()),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
