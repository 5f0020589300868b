//! Passwords: changing them, and the rules a new one must meet.

use std::time::SystemTime;

use zeroize::Zeroizing;

use super::{Caller, ServiceError, ServiceResult, Sso};
use crate::domain::{EndSessions, PasswordChange, UpdateUser, User, UserId, UserPatch, Write};

/// A password change; its `Debug` leaves the passwords out.
pub struct ChangePassword {
    /// `None`: the caller's own user.
    pub user_id: Option<UserId>,
    pub old_password: Zeroizing<String>,
    pub new_password: Zeroizing<String>,
    pub must_change: Option<bool>,
    pub password_expiry: Option<SystemTime>,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword")
            .field("user_id", &self.user_id)
            .field("old_password", &"[redacted]")
            .field("new_password", &"[redacted]")
            .field("must_change", &self.must_change)
            .field("password_expiry", &self.password_expiry)
            .finish()
    }
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
        let user = if target == own.id {
            if change.new_password.as_str() == change.old_password.as_str() {
                return Err(ServiceError::PasswordTooWeak(
                    "the new password must differ from the old one".into(),
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
            record.user
        } else {
            caller.require_super_user()?;
            self.stores
                .users
                .user_by_id(target)
                .await?
                .ok_or(ServiceError::UserNotFound)?
                .user
        };
        let now = self.clock.now();
        let change = self
            .password_change(
                &user,
                &change.new_password,
                change.must_change.unwrap_or(false),
                change.password_expiry,
                now,
            )
            .await?;
        let patch = UserPatch {
            password_hash: Some(change.password_hash),
            password_must_change: Some(change.password_must_change),
            password_expiry: Some(change.password_expiry),
            ..UserPatch::default()
        };
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

    pub(super) async fn password_change(
        &self,
        user: &User,
        new_password: &str,
        must_change: bool,
        expiry: Option<SystemTime>,
        now: SystemTime,
    ) -> ServiceResult<PasswordChange> {
        self.check_password_strength(new_password, &user.username)?;
        Ok(PasswordChange {
            password_hash: self.passwords.hash(new_password).await?,
            password_must_change: must_change,
            password_expiry: expiry.or(self.policy.password_max_age.map(|age| now + age)),
        })
    }

    pub(super) fn check_password_strength(
        &self,
        password: &str,
        username: &str,
    ) -> ServiceResult<()> {
        let limits = &self.policy.limits;
        let chars = password.chars().count();
        if chars < limits.min_password_chars || chars > limits.max_password_chars {
            return Err(ServiceError::PasswordTooWeak(format!(
                "a password has {} to {} characters",
                limits.min_password_chars, limits.max_password_chars
            )));
        }
        if password.eq_ignore_ascii_case(username) {
            return Err(ServiceError::PasswordTooWeak(
                "the password must differ from the username".into(),
            ));
        }
        Ok(())
    }
}
