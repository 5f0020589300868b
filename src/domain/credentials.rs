//! Second-factor credentials as the stores keep them: a user's TOTP secret (sealed with the
//! key ring, never in the clear) and the hashes of its recovery codes. Whether TOTP is
//! enabled is the user's `totp_enabled`; a stored secret of a user without it is a pending
//! enrolment.

/// A secret sealed with the key ring: the key's id and nonce ‖ ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

/// A TOTP secret never prints, sealed or not.
impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("bytes", &self.ciphertext.len())
            .finish()
    }
}

/// A user's stored TOTP secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpRecord {
    pub secret: SealedSecret,
    /// The time step of the last code accepted: a code is accepted only for a later step,
    /// so each is accepted at most once.
    pub last_step: Option<u64>,
}

/// The SHA-256 of a normalised recovery code: the only form a store ever sees.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoveryCodeHash(pub [u8; 32]);

impl std::fmt::Debug for RecoveryCodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodeHash([redacted])")
    }
}
