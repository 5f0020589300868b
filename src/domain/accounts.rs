//! Self-service accounts: the single-use tokens of sign-up confirmation and password reset.
//! A token is 256 random bits; stores see only its SHA-256 ([`TokenHash`]), as for USTs.

use std::time::SystemTime;

use super::{PasswordChange, TokenHash, User};

/// What a token is good for; a token of one purpose never redeems the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountTokenPurpose {
    ConfirmSignUp,
    ResetPassword,
}

impl AccountTokenPurpose {
    /// The stable spelling the stores persist.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfirmSignUp => "confirm_sign_up",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A token to store: its hash and when it stops being accepted.
#[derive(Clone, Copy, Debug)]
pub struct NewAccountToken {
    pub hash: TokenHash,
    pub expires_at: SystemTime,
}

/// What a sign-up did: created the user, or found its username taken by `owner` (`None`
/// when the owner was deleted before it could be read).
#[derive(Clone, Debug)]
pub enum SignedUp {
    Created(User),
    Taken { owner: Option<User> },
}

/// What redeeming a token does, in the same transaction as consuming it.
#[derive(Clone, Debug)]
pub enum Redemption {
    /// Marks the user confirmed.
    ConfirmSignUp,
    /// Sets the password and ends every session of the user.
    ResetPassword(PasswordChange),
}

impl Redemption {
    pub fn purpose(&self) -> AccountTokenPurpose {
        match self {
            Self::ConfirmSignUp => AccountTokenPurpose::ConfirmSignUp,
            Self::ResetPassword(_) => AccountTokenPurpose::ResetPassword,
        }
    }
}
