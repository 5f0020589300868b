//! Passwords: changing them, and the policy every new one must meet.

use crate::domain::Secret;
use std::time::SystemTime;

use super::{Caller, FieldViolation, ServiceError, ServiceResult, Sso};
use crate::domain::{EndSessions, PasswordChange, UpdateUser, User, UserId, UserPatch, Write};

/// A password change; its `Debug` leaves the passwords out.
#[derive(Debug)]
pub struct ChangePassword {
    /// `None`: the caller's own user.
    pub user_id: Option<UserId>,
    pub old_password: Secret,
    pub new_password: Secret,
    pub must_change: Option<bool>,
    pub password_expiry: Option<SystemTime>,
}

/// A password about to be set, and what the policy checks it against.
pub(crate) struct NewPassword<'a> {
    /// The request field it came in, named by a refusal's field violation.
    pub field: &'a str,
    pub password: &'a str,
    pub user: &'a User,
    /// The user's current hash; `None` for a user being created.
    pub current_hash: Option<&'a str>,
}

impl Sso {
    /// Changes a password and ends every other session of that user.
    pub async fn change_password(
        &self,
        caller: &Caller,
        change: ChangePassword,
    ) -> ServiceResult<()> {
        let own = caller.require_user()?;
        let target = change.user_id.unwrap_or(own.id);
        let sets_policy = change.must_change.is_some() || change.password_expiry.is_some();
        if sets_policy {
            caller.require_super_user()?;
        }
        let max = self.policy.limits.max_password_chars;
        if change.old_password.chars().count() > max {
            return Err(ServiceError::InvalidCredentials);
        }
        // One's own password, super-user or not, changes only with the old one.
        let record = if target == own.id {
            if change.new_password.as_str() == change.old_password.as_str() {
                return Err(ServiceError::too_weak(
                    "new_password",
                    "the new password must differ from the old one",
                ));
            }
            let record = self
                .stores
                .users
                .user_by_id(own.id)
                .await?
                .ok_or(ServiceError::UserNotFound)?;
            let matches = self
                .passwords
                .verify(&change.old_password, Some(&record.password_hash))
                .await?;
            if !matches {
                return Err(ServiceError::InvalidCredentials);
            }
            record
        } else {
            caller.require_super_user()?;
            self.stores
                .users
                .user_by_id(target)
                .await?
                .ok_or(ServiceError::UserNotFound)?
        };
        let now = self.clock.now();
        let change = self
            .password_change(
                NewPassword {
                    field: "new_password",
                    password: &change.new_password,
                    user: &record.user,
                    current_hash: Some(&record.password_hash),
                },
                change.must_change.unwrap_or(false),
                change.password_expiry,
                now,
            )
            .await?;
        let patch = UserPatch::from(change);
        // A password that must change again leaves the user no session at all, the caller's
        // included; otherwise the caller's session is the one that survives.
        let end_sessions = if patch.ends_sessions() {
            EndSessions::All
        } else {
            EndSessions::AllBut(caller.session.id)
        };
        self.stores
            .users
            .update_user(
                Write::new(
                    now,
                    UpdateUser {
                        id: target,
                        patch,
                        end_sessions,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        tracing::info!(user_id = %target, "password changed");
        Ok(())
    }

    /// The password policy: the one function every path that sets a password goes through
    /// (`CreateUser`, `ChangePassword`, `Login` with `new_password`, a reset), before
    /// anything is written. A new password must have an allowed length, differ from the
    /// username, reach the strength floor (zxcvbn, which also looks for the user's names in
    /// it) and not be one of the user's last passwords (`current_hash` and the kept history,
    /// each an Argon2 verification on the hasher pool, so the overload limits apply). Returns
    /// the new hash and what the store keeps of the history.
    pub(crate) async fn password_change(
        &self,
        new: NewPassword<'_>,
        must_change: bool,
        expiry: Option<SystemTime>,
        now: SystemTime,
    ) -> ServiceResult<PasswordChange> {
        let NewPassword {
            field,
            password: new_password,
            user,
            current_hash,
        } = new;
        self.check_password_strength(field, new_password, user)?;
        if let Some(current_hash) = current_hash {
            self.check_password_history(field, new_password, user.id, current_hash)
                .await?;
        }
        let remembered = self.policy.credentials.password_history;
        Ok(PasswordChange {
            password_hash: self.passwords.hash(new_password).await?,
            // The new password is the current one; the history holds the ones before it.
            keep_history: remembered.saturating_sub(1),
            password_must_change: must_change,
            password_expiry: expiry.or(self.policy.password_max_age.map(|age| now + age)),
        })
    }

    fn check_password_strength(
        &self,
        field: &str,
        password: &str,
        user: &User,
    ) -> ServiceResult<()> {
        let limits = &self.policy.limits;
        let chars = password.chars().count();
        if chars < limits.min_password_chars || chars > limits.max_password_chars {
            return Err(ServiceError::too_weak(
                field,
                format!(
                    "a password has {} to {} characters",
                    limits.min_password_chars, limits.max_password_chars
                ),
            ));
        }
        if password.eq_ignore_ascii_case(&user.username) {
            return Err(ServiceError::too_weak(
                field,
                "the password must differ from the username",
            ));
        }
        let floor = self.policy.credentials.password_min_strength;
        if floor == 0 {
            return Ok(());
        }
        let profile = &user.profile;
        let email_name = profile.email.split('@').next().unwrap_or_default();
        let inputs: Vec<&str> = [
            user.username.as_str(),
            profile.email.as_str(),
            email_name,
            profile.display_name.as_str(),
            profile.first_name.as_str(),
            profile.middle_name.as_str(),
            profile.last_name.as_str(),
        ]
        .into_iter()
        .filter(|input| !input.is_empty())
        .collect();
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        let score = u8::from(estimate.score());
        if score >= floor {
            return Ok(());
        }
        // zxcvbn's feedback is fixed text about patterns: it never quotes the password.
        let mut advice: Vec<String> = Vec::new();
        if let Some(feedback) = estimate.feedback() {
            advice.extend(feedback.warning().map(|warning| warning.to_string()));
            advice.extend(feedback.suggestions().iter().map(ToString::to_string));
        }
        let mut description =
            format!("too easy to guess: strength {score} of 4, at least {floor} is required");
        if !advice.is_empty() {
            description.push_str(". ");
            description.push_str(&advice.join(" "));
        }
        Err(ServiceError::too_weak(field, description))
    }

    /// Refuses one of the user's last passwords: the current one, then the kept history,
    /// newest first, as many as the policy remembers.
    async fn check_password_history(
        &self,
        field: &str,
        password: &str,
        user: UserId,
        current_hash: &str,
    ) -> ServiceResult<()> {
        let remembered = self.policy.credentials.password_history;
        if remembered == 0 {
            return Ok(());
        }
        let mut hashes = vec![current_hash.to_owned()];
        if remembered > 1 {
            let kept = self.stores.credentials.password_history(user).await?;
            hashes.extend(kept.into_iter().take(remembered - 1));
        }
        for hash in &hashes {
            if self.passwords.verify(password, Some(hash)).await? {
                return Err(ServiceError::PasswordReused(FieldViolation::new(
                    field,
                    format!("is one of the user's last {remembered} passwords"),
                )));
            }
        }
        Ok(())
    }
}
