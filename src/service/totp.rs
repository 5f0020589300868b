//! The second factor: TOTP (RFC 6238 through `totp-rs`: HMAC-SHA-1, 6 digits, 30 s steps,
//! one step of skew either way) with single-use recovery codes. The secret is sealed with the
//! key ring and opened only to check a code; each accepted code moves the user's last accepted
//! step forward in the store, atomically, so no code is accepted twice.

use crate::domain::Secret;
use std::time::SystemTime;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};
use zeroize::Zeroizing;

use super::{Caller, FieldViolation, ServiceError, ServiceResult, Sso};
use crate::{
    crypto,
    domain::{
        BeginTotp, DisableTotp, EnableTotp, SealedSecret, UseRecoveryCode, UseTotpStep, User,
        UserId, Write,
    },
};

const DIGITS: u8 = 6;
const STEP_SECONDS: u64 = 30;
/// Codes of the step before and after the current one are accepted too: clocks drift.
const SKEW_STEPS: u16 = 1;
const RECOVERY_CODES: usize = 10;
/// Longer than any code or recovery code, however typed: refused without a look-up.
const MAX_CODE_CHARS: usize = 64;

/// A new enrolment, shown once: its `Debug` leaves both out.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// Base32, as authenticator apps take it when typed.
    pub secret: Secret,
    /// The Key URI (`otpauth://totp/…`) a QR code carries.
    pub otpauth_uri: Secret,
}

/// `DisableTotp`: one's own with the password and a code, or a super-user's for another user.
#[derive(Debug)]
pub struct DisableTotpRequest {
    /// `None`: the caller's own user.
    pub user_id: Option<UserId>,
    pub password: Secret,
    pub totp_code: Secret,
}

/// Bound into the sealed secret, so it opens only as this user's TOTP secret.
fn secret_aad(user: UserId) -> Vec<u8> {
    format!("sso.v1/totp/{user}").into_bytes()
}

/// The RFC 6238 parameters every enrolment uses, over `secret`.
fn totp(secret: &[u8]) -> ServiceResult<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .build()
        .map_err(|error| ServiceError::Internal(format!("totp: {error}")))
}

/// The Key URI format's `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…`, with the
/// parameters spelt out for apps that do not assume the defaults.
fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    let issuer = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    let account = utf8_percent_encode(account, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_base32}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
}

fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Sso {
    /// A new secret for the caller's user, pending until confirmed with a code; replaces a
    /// pending one. Needs an encryption key to seal it.
    pub async fn begin_totp_enrollment(&self, caller: &Caller) -> ServiceResult<TotpEnrollment> {
        let user = caller.require_user()?;
        if user.totp_enabled {
            return Err(ServiceError::TotpAlreadyEnabled);
        }
        let secret = crypto::generate_totp_secret();
        let (key_id, ciphertext) = self.keys.seal(&secret, &secret_aad(user.id))?;
        self.stores
            .credentials
            .begin_totp(
                Write::new(
                    self.clock.now(),
                    BeginTotp {
                        user: user.id,
                        secret: SealedSecret { key_id, ciphertext },
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        let base32 = Secret::from(TotpSecret::from(secret.to_vec()).to_base32());
        let otpauth_uri = Secret::from(otpauth_uri(
            &self.policy.credentials.totp_issuer,
            &user.username,
            &base32,
        ));
        tracing::info!(user_id = %user.id, "totp enrolment begun");
        Ok(TotpEnrollment {
            secret: base32,
            otpauth_uri,
        })
    }

    /// Enables the pending enrolment once `code` proves the app has the secret; returns the
    /// recovery codes, shown this once (the store keeps their hashes).
    pub async fn confirm_totp_enrollment(
        &self,
        caller: &Caller,
        code: &str,
    ) -> ServiceResult<Vec<Secret>> {
        let user = caller.require_user()?;
        let now = self.clock.now();
        let pending = self
            .stores
            .credentials
            .totp(user.id)
            .await?
            .filter(|_| !user.totp_enabled)
            .ok_or(ServiceError::TotpNotPending)?;
        let step = self
            .matching_step(user.id, &pending.secret, code, now)?
            .ok_or(ServiceError::TotpInvalid)?;
        let codes: Vec<Secret> = (0..RECOVERY_CODES)
            .map(|_| crypto::generate_recovery_code().into())
            .collect();
        let hashes = codes
            .iter()
            .map(|code| crypto::hash_recovery_code(code))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ServiceError::Internal("a generated recovery code is malformed".into())
            })?;
        self.stores
            .credentials
            .enable_totp(
                Write::new(
                    now,
                    EnableTotp {
                        user: user.id,
                        secret: pending.secret,
                        step,
                        recovery_codes: hashes,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        tracing::info!(user_id = %user.id, "totp enabled");
        Ok(codes)
    }

    /// Disables TOTP: one's own (super-user or not) only with the password and a code or
    /// recovery code, another user's only as a super-user.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        request: DisableTotpRequest,
    ) -> ServiceResult<()> {
        let own = caller.require_user()?;
        let target = request.user_id.unwrap_or(own.id);
        if target == own.id {
            let missing: Vec<FieldViolation> = [
                ("password", request.password.is_empty()),
                ("totp_code", request.totp_code.is_empty()),
            ]
            .into_iter()
            .filter(|(_, empty)| *empty)
            .map(|(field, _)| FieldViolation::new(field, "is required to disable one's own TOTP"))
            .collect();
            if !missing.is_empty() {
                return Err(ServiceError::InvalidArgument(missing));
            }
            if request.password.chars().count() > self.policy.limits.max_password_chars {
                return Err(ServiceError::InvalidCredentials);
            }
            let record = self
                .stores
                .users
                .user_by_id(own.id)
                .await?
                .ok_or(ServiceError::UserNotFound)?;
            if !record.user.totp_enabled {
                return Err(ServiceError::TotpNotEnabled);
            }
            let matches = self
                .passwords
                .verify(&request.password, Some(&record.password_hash))
                .await?;
            if !matches {
                return Err(ServiceError::InvalidCredentials);
            }
            self.use_second_factor(&record.user, &request.totp_code, self.clock.now())
                .await?;
        } else {
            caller.require_super_user()?;
        }
        let was_enabled = self
            .stores
            .credentials
            .disable_totp(
                Write::new(self.clock.now(), DisableTotp { user: target })
                    .by(self.context(Some(caller), None)),
            )
            .await?;
        if !was_enabled {
            return Err(ServiceError::TotpNotEnabled);
        }
        tracing::info!(user_id = %target, by = %own.id, "totp disabled");
        Ok(())
    }

    /// Accepts a TOTP code of a later step than any accepted before, or an unused recovery
    /// code, using it up; anything else is `TotpInvalid`.
    pub(super) async fn use_second_factor(
        &self,
        user: &User,
        code: &str,
        now: SystemTime,
    ) -> ServiceResult<()> {
        if code.chars().count() > MAX_CODE_CHARS {
            return Err(ServiceError::TotpInvalid);
        }
        let is_totp_code =
            code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit());
        let accepted = if is_totp_code {
            let stored = self
                .stores
                .credentials
                .totp(user.id)
                .await?
                .ok_or(ServiceError::TotpInvalid)?;
            match self.matching_step(user.id, &stored.secret, code, now)? {
                Some(step) => {
                    self.stores
                        .credentials
                        .use_totp_step(Write::new(
                            now,
                            UseTotpStep {
                                user: user.id,
                                step,
                            },
                        ))
                        .await?
                }
                None => false,
            }
        } else {
            match crypto::hash_recovery_code(code) {
                Some(hash) => {
                    let used = self
                        .stores
                        .credentials
                        .use_recovery_code(Write::new(
                            now,
                            UseRecoveryCode {
                                user: user.id,
                                code: hash,
                            },
                        ))
                        .await?;
                    if used {
                        tracing::info!(user_id = %user.id, "recovery code used");
                    }
                    used
                }
                None => false,
            }
        };
        if accepted {
            Ok(())
        } else {
            Err(ServiceError::TotpInvalid)
        }
    }

    /// The time step `code` belongs to under the sealed secret, within the skew of `now`.
    fn matching_step(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        code: &str,
        now: SystemTime,
    ) -> ServiceResult<Option<u64>> {
        let secret = Zeroizing::new(self.keys.open(
            &sealed.key_id,
            &sealed.ciphertext,
            &secret_aad(user),
        )?);
        Ok(totp(&secret)?.check(code, unix_seconds(now)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test vectors (appendix B), truncated to six digits.
    #[test]
    fn codes_follow_rfc_6238() {
        let totp = totp(b"12345678901234567890").unwrap();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp.check(code, time), Some(time / STEP_SECONDS), "{time}");
        }
        // One step either way, no further.
        assert!(totp.check("287082", 59 + STEP_SECONDS).is_some());
        assert!(totp.check("287082", 59 + 2 * STEP_SECONDS).is_none());
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri("Acme SSO", "ada:lovelace", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20SSO:ada%3Alovelace?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20SSO\
             &algorithm=SHA1&digits=6&period=30"
        );
    }
}
