//! Second factors and password history in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::{
    domain::{
        BeginTotp, DisableTotp, EnableTotp, TotpRecord, UseRecoveryCode, UseTotpStep, User, UserId,
        Write,
    },
    store::{CredentialStore, StoreError, StoreResult},
};

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>> {
        Ok(self.lock()?.totp.get(&user).cloned())
    }

    async fn begin_totp(&self, write: Write<BeginTotp>) -> StoreResult<()> {
        let BeginTotp { user, secret } = write.command;
        let mut state = self.lock()?;
        let record = state.users.get(&user).ok_or(StoreError::UserNotFound)?;
        if record.user.totp_enabled {
            return Err(StoreError::TotpAlreadyEnabled);
        }
        state.totp.insert(
            user,
            TotpRecord {
                secret,
                last_step: None,
            },
        );
        Ok(())
    }

    async fn enable_totp(&self, write: Write<EnableTotp>) -> StoreResult<User> {
        let event = write.command.event();
        let Write {
            now,
            command:
                EnableTotp {
                    user,
                    secret,
                    step,
                    recovery_codes,
                },
            context,
        } = write;
        let mut state = self.lock()?;
        let enabled = state
            .users
            .get(&user)
            .ok_or(StoreError::UserNotFound)?
            .user
            .totp_enabled;
        let pending = state
            .totp
            .get_mut(&user)
            .filter(|stored| !enabled && stored.secret == secret)
            .ok_or(StoreError::TotpNotPending)?;
        pending.last_step = Some(step);
        state
            .recovery_codes
            .insert(user, recovery_codes.into_iter().collect());
        let record = state.users.get_mut(&user).ok_or(StoreError::UserNotFound)?;
        record.user.totp_enabled = true;
        let enabled = record.user.clone();
        state.events.record(now, &context, vec![event]);
        Ok(enabled)
    }

    async fn use_totp_step(&self, write: Write<UseTotpStep>) -> StoreResult<bool> {
        let UseTotpStep { user, step } = write.command;
        let mut state = self.lock()?;
        let enabled = state
            .users
            .get(&user)
            .is_some_and(|record| record.user.totp_enabled);
        let Some(stored) = state.totp.get_mut(&user).filter(|_| enabled) else {
            return Ok(false);
        };
        if stored.last_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        stored.last_step = Some(step);
        Ok(true)
    }

    async fn use_recovery_code(&self, write: Write<UseRecoveryCode>) -> StoreResult<bool> {
        let UseRecoveryCode { user, code } = write.command;
        let mut state = self.lock()?;
        Ok(state
            .recovery_codes
            .get_mut(&user)
            .is_some_and(|codes| codes.remove(&code)))
    }

    async fn disable_totp(&self, write: Write<DisableTotp>) -> StoreResult<bool> {
        let event = write.command.event();
        let Write {
            now,
            command: DisableTotp { user },
            context,
        } = write;
        let mut state = self.lock()?;
        let record = state.users.get_mut(&user).ok_or(StoreError::UserNotFound)?;
        let was_enabled = std::mem::replace(&mut record.user.totp_enabled, false);
        state.totp.remove(&user);
        state.recovery_codes.remove(&user);
        if was_enabled {
            state.events.record(now, &context, vec![event]);
        }
        Ok(was_enabled)
    }

    async fn password_history(&self, user: UserId) -> StoreResult<Vec<String>> {
        Ok(self
            .lock()?
            .password_history
            .get(&user)
            .map(|history| history.iter().cloned().collect())
            .unwrap_or_default())
    }
}
