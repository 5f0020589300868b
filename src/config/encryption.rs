//! The keys that encrypt attribute values.

use std::fmt;

use clap::Args;

use super::Redacted;

#[derive(Clone, Args)]
pub struct EncryptionConfig {
    /// Comma-separated `id:base64` 256-bit keys; the first encrypts, all decrypt.
    #[arg(
        long = "encryption-keys",
        env = "SSOD_ENCRYPTION_KEYS",
        hide_env_values = true,
        global = true
    )]
    pub keys: Option<String>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { keys } = self;
        f.debug_struct("EncryptionConfig")
            .field("keys", &Redacted(keys))
            .finish()
    }
}
