//! Mail: how sign-up and reset tokens reach users, and the SMTP relay.

use std::{fmt, time::Duration};

use clap::{Args, ValueEnum};

use super::{Redacted, duration};
use crate::{mail::SmtpSettings, service::TokenDelivery};

/// How tokens reach users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeliverySetting {
    /// By mail, through `SSOD_SMTP_URL`.
    #[default]
    Smtp,
    /// In the response, to super-user callers only (a back end that mails them itself).
    Caller,
}

#[derive(Clone, Args)]
pub struct MailConfig {
    /// `smtp`: tokens are mailed; `caller`: returned to super-user callers only, never mailed.
    #[arg(long = "mail-delivery", env = "SSOD_MAIL_DELIVERY", value_enum, default_value_t = DeliverySetting::Smtp, global = true)]
    pub delivery: DeliverySetting,
    /// Mail relay: `smtp://host[:port]` (`?tls=required` for STARTTLS) or
    /// `smtps://host[:port]`, with `user:password@` if it needs them.
    #[arg(
        long = "smtp-url",
        env = "SSOD_SMTP_URL",
        hide_env_values = true,
        global = true
    )]
    pub smtp_url: Option<String>,
    /// Sender of the mails (`ssod <no-reply@example.com>`); required with `--smtp-url`.
    #[arg(long = "mail-from", env = "SSOD_MAIL_FROM", global = true)]
    pub from: Option<String>,
    /// Mails waiting to be sent; more are dropped with a warning.
    #[arg(
        long = "mail-queue",
        env = "SSOD_MAIL_QUEUE",
        default_value_t = 1000,
        global = true
    )]
    pub queue: usize,
    /// Tries per mail, the first included.
    #[arg(long = "mail-max-attempts", env = "SSOD_MAIL_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_attempts: u32,
    /// The wait before a mail's second try; it doubles before each further one.
    #[arg(long = "mail-retry-delay", env = "SSOD_MAIL_RETRY_DELAY", default_value = "5s", value_parser = duration, global = true)]
    pub retry_delay: Duration,
    /// Longest one SMTP exchange may take.
    #[arg(long = "mail-timeout", env = "SSOD_MAIL_TIMEOUT", default_value = "30s", value_parser = duration, global = true)]
    pub timeout: Duration,
}

impl MailConfig {
    pub fn delivery(&self) -> TokenDelivery {
        match self.delivery {
            DeliverySetting::Smtp => TokenDelivery::Mail,
            DeliverySetting::Caller => TokenDelivery::Caller,
        }
    }

    /// The relay to start, if tokens are mailed and one is configured; an error for a relay
    /// without a sender, or for sign-up by mail with no relay (nobody could confirm).
    pub fn smtp(&self, signup_on: bool) -> Result<Option<SmtpSettings>, String> {
        if self.delivery == DeliverySetting::Caller {
            return Ok(None);
        }
        let Some(url) = &self.smtp_url else {
            if signup_on {
                return Err(
                    "sign-up is on and tokens go by mail (SSOD_MAIL_DELIVERY=smtp), but no \
                     SSOD_SMTP_URL is set: nobody could confirm an account"
                        .into(),
                );
            }
            return Ok(None);
        };
        let Some(from) = &self.from else {
            return Err("SSOD_SMTP_URL needs SSOD_MAIL_FROM, the sender of the mails".into());
        };
        Ok(Some(SmtpSettings {
            url: url.clone(),
            from: from.clone(),
            queue: self.queue,
            max_attempts: self.max_attempts,
            retry_delay: self.retry_delay,
            timeout: self.timeout,
        }))
    }
}

/// The URL may carry the relay's password.
impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so a new field cannot be left out unnoticed.
        let Self {
            delivery,
            smtp_url,
            from,
            queue,
            max_attempts,
            retry_delay,
            timeout,
        } = self;
        f.debug_struct("MailConfig")
            .field("delivery", delivery)
            .field("smtp_url", &Redacted(smtp_url))
            .field("from", from)
            .field("queue", queue)
            .field("max_attempts", max_attempts)
            .field("retry_delay", retry_delay)
            .field("timeout", timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn a_relay_is_required_only_where_mail_must_go() {
        let mut mail = Config::defaults().mail;
        assert!(mail.smtp(true).is_err(), "sign-up by mail with no relay");
        assert!(
            matches!(mail.smtp(false), Ok(None)),
            "reset mails are dropped"
        );
        mail.smtp_url = Some("smtp://127.0.0.1:2525".into());
        assert!(mail.smtp(false).is_err(), "a relay needs a sender");
        mail.from = Some("ssod@example.test".into());
        assert!(matches!(mail.smtp(true), Ok(Some(_))));
        mail.delivery = DeliverySetting::Caller;
        assert!(
            matches!(mail.smtp(true), Ok(None)),
            "caller delivery mails nothing"
        );
    }
}
