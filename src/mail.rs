//! Outgoing mail, off the request path: the service hands a [`Mail`] to the [`Mailer`], which
//! only queues it (bounded; a full queue drops the mail with a warning rather than hold the
//! call), and one background task sends the queue over SMTP with `lettre`, retrying a
//! failed send a bounded number of times with a doubling delay. A mail that cannot be sent
//! is logged by user id and SMTP status, never with its body: the body carries a token.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::{domain::UserId, lifecycle::Lifecycle};

/// One mail to one user. Its `Debug` leaves the body out.
pub struct Mail {
    /// Whom it concerns, for the logs (never the address's owner's token).
    pub user_id: UserId,
    pub to: String,
    pub subject: String,
    pub body: Zeroizing<String>,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("user_id", &self.user_id)
            .field("subject", &self.subject)
            .field("body", &"[redacted]")
            .finish()
    }
}

/// How the relay is reached and how hard a send is tried. Its `Debug` leaves the URL out: it
/// may carry the relay's credentials.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://` (STARTTLS with `?tls=required`) or `smtps://`, with optional
    /// `user:password@`.
    pub url: String,
    pub from: String,
    /// Mails waiting to be sent; more are dropped.
    pub queue: usize,
    /// Tries per mail, the first included.
    pub max_attempts: u32,
    /// The wait before the second try; it doubles before each further one.
    pub retry_delay: Duration,
    /// Longest an SMTP exchange may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &"[redacted]")
            .field("from", &self.from)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay", &self.retry_delay)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The URL is not named: it may carry credentials.
    #[error("invalid SMTP URL (smtp://host[:port][?tls=required] or smtps://host[:port])")]
    InvalidUrl,
    #[error("invalid sender address {0:?}")]
    InvalidSender(String),
}

/// Where mail goes: a queue to the sender task, or nowhere (no relay configured).
#[derive(Clone, Debug)]
pub struct Mailer {
    queue: Option<mpsc::Sender<Mail>>,
}

impl Mailer {
    /// A mailer with no relay: each mail is dropped with a warning.
    pub fn without_relay() -> Self {
        Self { queue: None }
    }

    /// Checks the settings, then starts the sender task on `lifecycle`; it stops when the
    /// lifecycle does, dropping what is still queued (with a warning).
    pub fn start(settings: SmtpSettings, lifecycle: &Lifecycle) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|_| MailError::InvalidUrl)?
            .timeout(Some(settings.timeout))
            .build();
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| MailError::InvalidSender(settings.from.clone()))?;
        let (queue, receiver) = mpsc::channel(settings.queue.max(1));
        let sender = Sender {
            transport,
            from,
            max_attempts: settings.max_attempts.max(1),
            retry_delay: settings.retry_delay,
        };
        lifecycle.spawn(sender.run(receiver, lifecycle.token()));
        Ok(Self { queue: Some(queue) })
    }

    /// Queues `mail` and returns at once: the request never waits for the relay.
    pub fn send(&self, mail: Mail) {
        let user_id = mail.user_id;
        let Some(queue) = &self.queue else {
            tracing::warn!(user_id = %user_id, subject = %mail.subject, "no SSOD_SMTP_URL: mail not sent");
            return;
        };
        match queue.try_send(mail) {
            Ok(()) => metrics::counter!("ssod_mails_total", "outcome" => "queued").increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("ssod_mails_total", "outcome" => "dropped").increment(1);
                tracing::warn!(user_id = %user_id, "mail queue full: mail dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!(user_id = %user_id, "mail sender stopped: mail dropped");
            }
        }
    }
}

/// The background task that empties the queue.
struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_attempts: u32,
    retry_delay: Duration,
}

impl Sender {
    async fn run(self, mut receiver: mpsc::Receiver<Mail>, stop: CancellationToken) {
        loop {
            let mail = tokio::select! {
                () = stop.cancelled() => break,
                mail = receiver.recv() => match mail {
                    Some(mail) => mail,
                    None => break,
                },
            };
            let user_id = mail.user_id;
            tokio::select! {
                () = stop.cancelled() => {
                    tracing::warn!(user_id = %user_id, "shutting down: mail not sent");
                    break;
                }
                () = self.deliver(mail) => {}
            }
        }
        receiver.close();
        let mut dropped = 0;
        while receiver.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(dropped, "shutting down: queued mails not sent");
        }
    }

    /// Tries to send `mail` up to `max_attempts` times, waiting `retry_delay`, then twice
    /// that, and so on between tries; a permanent refusal (5xx) is not retried.
    async fn deliver(&self, mail: Mail) {
        let user_id = mail.user_id;
        let message = match self.message(mail) {
            Ok(message) => message,
            Err(why) => {
                metrics::counter!("ssod_mails_total", "outcome" => "failed").increment(1);
                tracing::warn!(user_id = %user_id, why, "mail not sent");
                return;
            }
        };
        let mut delay = self.retry_delay;
        for attempt in 1..=self.max_attempts {
            let error = match self.transport.send(message.clone()).await {
                Ok(_) => {
                    metrics::counter!("ssod_mails_total", "outcome" => "sent").increment(1);
                    tracing::info!(user_id = %user_id, attempt, "mail sent");
                    return;
                }
                Err(error) => error,
            };
            // The status and the kind only: a relay's message text is not ours to log.
            let status = error.status().map(|code| code.to_string());
            let last = attempt == self.max_attempts || error.is_permanent();
            tracing::warn!(
                user_id = %user_id,
                attempt,
                status = status.as_deref().unwrap_or("none"),
                permanent = error.is_permanent(),
                timeout = error.is_timeout(),
                will_retry = !last,
                "mail send failed"
            );
            if last {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        metrics::counter!("ssod_mails_total", "outcome" => "failed").increment(1);
        tracing::error!(user_id = %user_id, "mail not sent: giving up");
    }

    fn message(&self, mail: Mail) -> Result<Message, &'static str> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| "the user's email is not a mail address")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(String::clone(&mail.body))
            .map_err(|_| "the mail cannot be built")
    }
}
