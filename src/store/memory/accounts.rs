//! Sign-up confirmation and password reset tokens in memory.

use std::{collections::HashMap, time::SystemTime};

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::{
    domain::{
        AccountTokenPurpose, IssuePasswordReset, RedeemAccountToken, Redemption, SessionSelector,
        SignUp, SignedUp, TokenHash, User, UserRecord, Username, Write,
        commands::user_changed_template,
    },
    store::{AccountTokenStore, StoreError, StoreResult},
};

/// A token as stored: under which username key, what for, until when, and the password hash
/// it was issued against (none: it never redeems).
pub(super) struct StoredAccountToken {
    user_key: String,
    purpose: AccountTokenPurpose,
    expires_at: SystemTime,
    issued_for_password: Option<String>,
}

/// The tokens, by hash, with the one-per-key-and-purpose index that lets a new token
/// replace the old.
#[derive(Default)]
pub(super) struct AccountTokens {
    by_hash: HashMap<TokenHash, StoredAccountToken>,
    by_key: HashMap<(String, AccountTokenPurpose), TokenHash>,
}

impl AccountTokens {
    fn insert(&mut self, hash: TokenHash, token: StoredAccountToken) {
        if let Some(old) = self
            .by_key
            .insert((token.user_key.clone(), token.purpose), hash)
        {
            self.by_hash.remove(&old);
        }
        self.by_hash.insert(hash, token);
    }

    fn remove(&mut self, hash: &TokenHash) -> Option<StoredAccountToken> {
        let token = self.by_hash.remove(hash)?;
        self.by_key.remove(&(token.user_key.clone(), token.purpose));
        Some(token)
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
    /// The user of a token of `purpose` that redeems at `now`: unexpired, and the user under
    /// its key still has the password it was issued against.
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
        let record = self
            .usernames
            .get(&token.user_key)
            .and_then(|id| self.users.get(id))?;
        (token.issued_for_password.as_ref() == Some(&record.password_hash)).then_some(record)
    }
}

#[async_trait]
impl AccountTokenStore for MemoryStore {
    async fn sign_up(&self, write: Write<SignUp>) -> StoreResult<SignedUp> {
        let event = write.command.event();
        let Write {
            now,
            command: SignUp {
                record,
                confirmation,
            },
            context,
        } = write;
        let mut state = self.lock()?;
        let key = Username::key_of(&record.user.username);
        if let Some(owner) = state.usernames.get(&key).and_then(|id| state.users.get(id)) {
            return Ok(SignedUp::Taken {
                owner: Some(owner.user.clone()),
            });
        }
        let user = record.user.clone();
        state.account_tokens.insert(
            confirmation.hash,
            StoredAccountToken {
                user_key: key.clone(),
                purpose: AccountTokenPurpose::ConfirmSignUp,
                expires_at: confirmation.expires_at,
                issued_for_password: Some(record.password_hash.clone()),
            },
        );
        state.usernames.insert(key, user.id);
        state.users.insert(user.id, record);
        state.events.record(now, &context, vec![event]);
        Ok(SignedUp::Created(user))
    }

    async fn issue_password_reset(
        &self,
        write: Write<IssuePasswordReset>,
    ) -> StoreResult<Option<User>> {
        let Write {
            now,
            command: IssuePasswordReset { user_key, token },
            context,
        } = write;
        let mut state = self.lock()?;
        let named = state
            .usernames
            .get(&user_key)
            .and_then(|id| state.users.get(id));
        let named_id = named.map(|record| record.user.id);
        let target = named.filter(|record| record.user.may_reset_password());
        let user = target.map(|record| record.user.clone());
        let issued_for_password = target.map(|record| record.password_hash.clone());
        // Written whoever the key names, as PostgreSQL does: without a password it never
        // redeems.
        state.account_tokens.insert(
            token.hash,
            StoredAccountToken {
                user_key,
                purpose: AccountTokenPurpose::ResetPassword,
                expires_at: token.expires_at,
                issued_for_password,
            },
        );
        let requested = IssuePasswordReset::templates()
            .into_iter()
            .map(|template| template.user(named_id))
            .collect();
        state.events.record(now, &context, requested);
        Ok(user)
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
        let templates = write.command.templates();
        let Write {
            now,
            command: RedeemAccountToken { hash, redemption },
            context,
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
                record.user.password_must_change = change.password_must_change;
                record.user.password_expiry = change.password_expiry;
                state.replace_password(id, change.password_hash, change.keep_history);
                true
            }
        };
        let user = state
            .users
            .get(&id)
            .map(|record| record.user.clone())
            .ok_or(StoreError::UserNotFound)?;
        let redeemed = templates
            .into_iter()
            .map(|template| template.user(Some(id)))
            .collect();
        state.events.record(now, &context, redeemed);
        if ends_sessions {
            let doomed = state.selected_sessions(SessionSelector::User(id));
            let ended = state.remove_sessions(doomed);
            state.record_ended(now, &context, &user_changed_template(), &ended);
        }
        Ok(Some(user))
    }
}
