//! A real SMTP server for the tests: a small tokio listener that speaks enough SMTP for lettre
//! (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and hands each received mail to
//! the test. It can refuse the first transactions with a temporary failure, to exercise the
//! sender's retries.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// One mail as the sink received it.
#[derive(Debug)]
pub struct ReceivedMail {
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The text with quoted-printable soft line breaks and `=3D` undone, so a long line
    /// with an `=` reads whole.
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }

    /// The account token the mail carries, if any.
    pub fn token(&self) -> Option<String> {
        let text = self.text();
        let start = text.find(ssod::crypto::ACCOUNT_TOKEN_PREFIX)?;
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        Some(token)
    }

    pub fn subject(&self) -> String {
        self.text()
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned()
    }
}

pub struct SmtpSink {
    pub address: SocketAddr,
    received: mpsc::UnboundedReceiver<ReceivedMail>,
    /// Transactions refused so far.
    refused: Arc<AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::refusing(0).await
    }

    /// A sink that answers the first `refusals` MAIL commands with `451` (try again later).
    pub async fn refusing(refusals: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (sender, received) = mpsc::unbounded_channel();
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&refused);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let _ = serve(stream, sender, counter, refusals).await;
                });
            }
        });
        Self {
            address,
            received,
            refused,
        }
    }

    /// `smtp://` to this sink, plain (no TLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// The next mail; fails the test if none comes within a generous bound.
    pub async fn next(&mut self) -> ReceivedMail {
        tokio::time::timeout(Duration::from_secs(20), self.received.recv())
            .await
            .expect("a mail arrives")
            .expect("the sink runs")
    }

    /// Transactions refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn serve(
    stream: TcpStream,
    sender: mpsc::UnboundedSender<ReceivedMail>,
    refused: Arc<AtomicUsize>,
    refusals: usize,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if command.starts_with("HELO") || command.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if command.starts_with("RSET") {
            to.clear();
            b"250 ok\r\n"
        } else if command.starts_with("MAIL FROM:") {
            to.clear();
            if refused.load(Ordering::SeqCst) < refusals {
                refused.fetch_add(1, Ordering::SeqCst);
                b"451 try again later\r\n"
            } else {
                b"250 ok\r\n"
            }
        } else if command.starts_with("RCPT TO:") {
            let address = line.trim_end()["RCPT TO:".len()..]
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            to.push(address);
            b"250 ok\r\n"
        } else if command == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let _ = sender.send(ReceivedMail {
                to: std::mem::take(&mut to),
                data,
            });
            b"250 queued\r\n"
        } else if command.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}
