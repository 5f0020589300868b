//! Sign-up confirmation and password reset tokens in memory.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::{
    domain::{
        AccountTokenPurpose, IssuePasswordReset, RedeemAccountToken, Redemption, SessionSelector,
        SignUp, SignedUp, TokenHash, User, UserId, UserRecord, Username, Write,
    },
    store::{AccountTokenStore, StoreResult},
};

/// A token as stored: whose, what for, until when, and (a reset token) the password hash it
/// was issued against.
pub(super) struct StoredAccountToken {
    user: UserId,
    purpose: AccountTokenPurpose,
    expires_at: SystemTime,
    issued_for_password: Option<String>,
}

/// The tokens, by hash, with the one-per-user-and-purpose index that lets a new token
/// replace the old.
#[derive(Default)]
pub(super) struct AccountTokens {
    by_hash: std::collections::HashMap<TokenHash, StoredAccountToken>,
    by_user: std::collections::HashMap<(UserId, AccountTokenPurpose), TokenHash>,
}

impl AccountTokens {
    fn insert(&mut self, hash: TokenHash, token: StoredAccountToken) {
        if let Some(old) = self.by_user.insert((token.user, token.purpose), hash) {
            self.by_hash.remove(&old);
        }
        self.by_hash.insert(hash, token);
    }

    fn remove(&mut self, hash: &TokenHash) -> Option<StoredAccountToken> {
        let token = self.by_hash.remove(hash)?;
        self.by_user.remove(&(token.user, token.purpose));
        Some(token)
    }

    /// Every token of a user that is being deleted.
    pub(super) fn remove_user(&mut self, user: UserId) {
        for purpose in [
            AccountTokenPurpose::ConfirmSignUp,
            AccountTokenPurpose::ResetPassword,
        ] {
            if let Some(hash) = self.by_user.remove(&(user, purpose)) {
                self.by_hash.remove(&hash);
            }
        }
    }

    /// Deletes the tokens expired at `now`; how many.
    pub(super) fn purge(&mut self, now: SystemTime) -> u64 {
        let expired: Vec<TokenHash> = self
            .by_hash
            .iter()
            .filter(|(_, token)| token.expires_at <= now)
            .map(|(hash, _)| *hash)
            .collect();
        for hash in &expired {
            self.remove(hash);
        }
        expired.len() as u64
    }
}

impl State {
    /// The user of a live token of `purpose` that still redeems, and the token's hash.
    fn redeemable(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: SystemTime,
    ) -> Option<&UserRecord> {
        let token = self
            .account_tokens
            .by_hash
            .get(hash)
            .filter(|token| token.purpose == purpose && token.expires_at > now)?;
        let record = self.users.get(&token.user)?;
        match &token.issued_for_password {
            Some(password) if *password != record.password_hash => None,
            _ => Some(record),
        }
    }
}

#[async_trait]
impl AccountTokenStore for MemoryStore {
    async fn sign_up(&self, write: Write<SignUp>) -> StoreResult<SignedUp> {
        let Write {
            command: SignUp {
                record,
                confirmation,
            },
            ..
        } = write;
        let mut state = self.lock()?;
        let key = Username::key_of(&record.user.username);
        if let Some(owner) = state.usernames.get(&key).and_then(|id| state.users.get(id)) {
            return Ok(SignedUp::Taken {
                owner: Some(owner.user.clone()),
            });
        }
        let user = record.user.clone();
        state.usernames.insert(key, user.id);
        state.users.insert(user.id, record);
        state.account_tokens.insert(
            confirmation.hash,
            StoredAccountToken {
                user: user.id,
                purpose: AccountTokenPurpose::ConfirmSignUp,
                expires_at: confirmation.expires_at,
                issued_for_password: None,
            },
        );
        Ok(SignedUp::Created(user))
    }

    async fn issue_password_reset(
        &self,
        write: Write<IssuePasswordReset>,
    ) -> StoreResult<Option<User>> {
        let Write {
            command: IssuePasswordReset { user_key, token },
            ..
        } = write;
        let mut state = self.lock()?;
        let Some(record) = state
            .usernames
            .get(&user_key)
            .and_then(|id| state.users.get(id))
            .filter(|record| record.user.may_reset_password())
        else {
            return Ok(None);
        };
        let user = record.user.clone();
        let issued_for_password = Some(record.password_hash.clone());
        state.account_tokens.insert(
            token.hash,
            StoredAccountToken {
                user: user.id,
                purpose: AccountTokenPurpose::ResetPassword,
                expires_at: token.expires_at,
                issued_for_password,
            },
        );
        Ok(Some(user))
    }

    async fn account_token_user(
        &self,
        hash: &TokenHash,
        purpose: AccountTokenPurpose,
        now: SystemTime,
    ) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock()?.redeemable(hash, purpose, now).cloned())
    }

    async fn redeem_account_token(
        &self,
        write: Write<RedeemAccountToken>,
    ) -> StoreResult<Option<User>> {
        let Write {
            now,
            command: RedeemAccountToken { hash, redemption },
        } = write;
        let mut state = self.lock()?;
        let Some(id) = state
            .redeemable(&hash, redemption.purpose(), now)
            .map(|record| record.user.id)
        else {
            return Ok(None);
        };
        state.account_tokens.remove(&hash);
        let Some(record) = state.users.get_mut(&id) else {
            return Ok(None);
        };
        let ends_sessions = match redemption {
            Redemption::ConfirmSignUp => {
                record.user.is_confirmed = true;
                false
            }
            Redemption::ResetPassword(change) => {
                record.password_hash = change.password_hash;
                record.user.password_must_change = change.password_must_change;
                record.user.password_expiry = change.password_expiry;
                true
            }
        };
        let user = record.user.clone();
        if ends_sessions {
            let doomed = state.selected_sessions(SessionSelector::User(id));
            state.remove_sessions(now, doomed);
        }
        Ok(Some(user))
    }
}
