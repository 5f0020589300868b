//! Users in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::{
    domain::{
        DeleteUser, EndSessions, Owner, SessionSelector, UpdateUser, User, UserId, UserPage,
        UserPatch, UserQuery, UserRecord, Username, Write,
        commands::{user_changed_template, user_created},
    },
    store::{StoreError, StoreResult, UserStore},
};

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, write: Write<UserRecord>) -> StoreResult<User> {
        let Write {
            now,
            command: record,
            context,
        } = write;
        let mut state = self.lock()?;
        let key = Username::key_of(&record.user.username);
        if state.usernames.contains_key(&key) {
            return Err(StoreError::UsernameTaken);
        }
        let user = record.user.clone();
        state.usernames.insert(key, user.id);
        state.users.insert(user.id, record);
        state
            .events
            .record(now, &context, vec![user_created(&user)]);
        Ok(user)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &Username) -> StoreResult<Option<UserRecord>> {
        let state = self.lock()?;
        Ok(state
            .usernames
            .get(username.key())
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let state = self.lock()?;
        let mut matching: Vec<(String, &User)> = state
            .users
            .values()
            .map(|record| (Username::key_of(&record.user.username), &record.user))
            .filter(|(key, user)| {
                key.starts_with(&query.username_prefix)
                    && query
                        .approval_status
                        .is_none_or(|status| user.approval_status == status)
            })
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let total_size = matching.len() as u64;
        let users = matching
            .into_iter()
            .filter(|(key, _)| query.after.as_ref().is_none_or(|after| key > after))
            .take(query.limit)
            .map(|(_, user)| user.clone())
            .collect();
        Ok(UserPage { users, total_size })
    }

    async fn update_user(&self, write: Write<UpdateUser>) -> StoreResult<User> {
        let Write {
            now,
            command: update,
            context,
        } = write;
        let events = update.events();
        let UpdateUser {
            id,
            patch,
            end_sessions,
        } = update;
        let mut state = self.lock()?;
        let record = state.users.get_mut(&id).ok_or(StoreError::UserNotFound)?;
        let was_expired = record.user.password_expired(now);
        apply_patch(&mut record.user, &patch);
        let user = record.user.clone();
        if let Some(hash) = patch.password_hash {
            state.replace_password(id, hash, patch.keep_password_history);
        }
        state.events.record(now, &context, events);
        let keep = match end_sessions {
            EndSessions::AllIfPasswordExpired if was_expired => None,
            EndSessions::None | EndSessions::AllIfPasswordExpired => return Ok(user),
            EndSessions::All => None,
            EndSessions::AllBut(keep) => Some(keep),
        };
        let mut doomed = state.selected_sessions(SessionSelector::User(id));
        doomed.retain(|session| Some(*session) != keep);
        let ended = state.remove_sessions(doomed);
        state.record_ended(now, &context, &user_changed_template(), &ended);
        Ok(user)
    }

    async fn delete_user(&self, write: Write<DeleteUser>) -> StoreResult<bool> {
        let Write {
            now,
            command,
            context,
        } = write;
        let id = command.id;
        let mut state = self.lock()?;
        let Some(record) = state.users.remove(&id) else {
            return Ok(false);
        };
        state
            .usernames
            .remove(&Username::key_of(&record.user.username));
        state.attributes.remove(&Owner::User(id));
        state.forget_credentials(id);
        let doomed = state.selected_sessions(SessionSelector::User(id));
        let live = super::sessions::count_live(&state.remove_sessions(doomed), now);
        state
            .events
            .record(now, &context, vec![command.event(live)]);
        Ok(true)
    }
}

fn apply_patch(user: &mut User, patch: &UserPatch) {
    let profile = &mut user.profile;
    let text_fields = [
        (&mut profile.email, &patch.email),
        (&mut profile.display_name, &patch.display_name),
        (&mut profile.first_name, &patch.first_name),
        (&mut profile.middle_name, &patch.middle_name),
        (&mut profile.last_name, &patch.last_name),
    ];
    for (field, value) in text_fields {
        if let Some(value) = value {
            field.clone_from(value);
        }
    }
    if let Some(value) = patch.is_super_user {
        user.is_super_user = value;
    }
    if let Some(value) = patch.is_locked {
        user.is_locked = value;
    }
    if let Some(value) = patch.approval_status {
        user.approval_status = value;
    }
    if let Some(value) = patch.password_must_change {
        user.password_must_change = value;
    }
    if let Some(value) = patch.password_expiry {
        user.password_expiry = value;
    }
}
