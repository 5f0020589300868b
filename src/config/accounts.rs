//! Self-service accounts: sign-up, and the tokens of its confirmation and of password reset.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::duration;
use crate::service::{AccountsPolicy, SignUpMode};

/// Who may sign up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SignUpSetting {
    /// Nobody: `SignUp` is refused.
    #[default]
    Off,
    /// Anyone; the account works once confirmed by mail.
    Open,
    /// Anyone; the account works once confirmed by mail and approved by a super-user.
    Approval,
}

#[derive(Clone, Debug, Args)]
pub struct AccountsConfig {
    /// Sign-up: `off`, `open` (confirmed by mail) or `approval` (confirmed, then approved by a
    /// super-user).
    #[arg(long = "signup", env = "SSOD_SIGNUP", value_enum, default_value_t = SignUpSetting::Off, global = true)]
    pub signup: SignUpSetting,
    /// Life of a sign-up confirmation or password reset token.
    #[arg(long = "token-ttl", env = "SSOD_TOKEN_TTL", default_value = "30m", value_parser = positive_duration, global = true)]
    pub token_ttl: Duration,
    /// The confirmation link in sign-up mails; `{token}` is replaced by the token. Absent: the
    /// mail carries the token alone.
    #[arg(long = "signup-confirm-url", env = "SSOD_SIGNUP_CONFIRM_URL", value_parser = link_template, global = true)]
    pub signup_confirm_url: Option<String>,
    /// The reset link in password reset mails; `{token}` is replaced by the token. Absent: the
    /// mail carries the token alone.
    #[arg(long = "password-reset-url", env = "SSOD_PASSWORD_RESET_URL", value_parser = link_template, global = true)]
    pub password_reset_url: Option<String>,
}

impl AccountsConfig {
    /// The sign-up and token rules of the service policy; `delivery` comes from the mail group.
    pub fn policy(&self, delivery: crate::service::TokenDelivery) -> AccountsPolicy {
        AccountsPolicy {
            sign_up: match self.signup {
                SignUpSetting::Off => SignUpMode::Off,
                SignUpSetting::Open => SignUpMode::Open,
                SignUpSetting::Approval => SignUpMode::Approval,
            },
            delivery,
            token_ttl: self.token_ttl,
            confirm_url: self.signup_confirm_url.clone(),
            reset_url: self.password_reset_url.clone(),
        }
    }
}

/// A token that expires at once could never be used.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err("must be longer than zero".into()),
        positive => Ok(positive),
    }
}

/// A link without `{token}` would send every user the same useless link.
fn link_template(text: &str) -> Result<String, String> {
    if text.contains("{token}") {
        Ok(text.to_owned())
    } else {
        Err("must contain {token}, where the token goes".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_templates_must_place_the_token() {
        assert!(link_template("https://app.example/reset?t={token}").is_ok());
        assert!(link_template("https://app.example/reset").is_err());
        assert!(positive_duration("0s").is_err());
    }
}
