//! The password policy (strength floor and history) and the second factor's issuer name.

use clap::Args;

use crate::service::CredentialPolicy;

#[derive(Clone, Debug, Args)]
pub struct CredentialsConfig {
    /// Least zxcvbn score (0–4) of a new password; 0 turns the estimate off.
    #[arg(long = "password-min-strength", env = "SSOD_PASSWORD_MIN_STRENGTH", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=4), global = true)]
    pub password_min_strength: u8,
    /// A new password may not be one of the user's last this many passwords (the current one
    /// included); as many replaced Argon2id hashes are kept per user. 0 = no history.
    #[arg(long = "password-history", env = "SSOD_PASSWORD_HISTORY", default_value_t = 0, value_parser = clap::value_parser!(u16), global = true)]
    pub password_history: u16,
    /// The issuer an authenticator app shows beside a TOTP enrolment (the `otpauth://` URI).
    #[arg(long = "totp-issuer", env = "SSOD_TOTP_ISSUER", default_value = "ssod", value_parser = issuer, global = true)]
    pub totp_issuer: String,
}

/// The Key URI format separates issuer and account with a colon, so an issuer has none.
fn issuer(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.contains(':') || text.chars().any(char::is_control) {
        return Err("a TOTP issuer is non-empty printable text without ':'".into());
    }
    Ok(text.to_owned())
}

impl CredentialsConfig {
    pub fn policy(&self) -> CredentialPolicy {
        CredentialPolicy {
            password_min_strength: self.password_min_strength,
            password_history: usize::from(self.password_history),
            totp_issuer: self.totp_issuer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let defaults = crate::config::Config::defaults().credentials.policy();
        assert_eq!(
            defaults,
            CredentialPolicy {
                password_min_strength: 2,
                password_history: 0,
                totp_issuer: "ssod".into(),
            }
        );
    }

    #[test]
    fn an_issuer_with_a_colon_is_refused() {
        assert!(issuer("Acme: SSO").is_err());
        assert!(issuer(" ").is_err());
        assert_eq!(issuer(" Acme SSO ").as_deref(), Ok("Acme SSO"));
    }
}
