//! User administration: creating, reading, listing, updating, locking, approving and
//! deleting accounts.

use crate::domain::Secret;
use std::time::SystemTime;

use super::{
    Caller, PageRequest, ServiceError, ServiceResult, Sso, check_text, page_token,
    passwords::NewPassword,
};
use crate::{
    crypto,
    domain::{
        ApprovalStatus, DeleteUser, EndSessions, EventContext, Profile, UpdateUser, User, UserId,
        UserPatch, UserQuery, UserRecord, Username, UsernameError, Write,
    },
};

/// A user to create; its `Debug` leaves the password out.
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub password: Option<Secret>,
    pub profile: Profile,
    pub is_super_user: bool,
    /// Absent: approved.
    pub is_approved: Option<bool>,
    pub password_must_change: bool,
}

#[derive(Debug)]
pub enum UserRef {
    Id(UserId),
    Username(String),
}

/// One field an update sets, chosen by the update mask.
#[derive(Clone, Debug, PartialEq)]
pub enum UserField {
    Email(String),
    DisplayName(String),
    FirstName(String),
    MiddleName(String),
    LastName(String),
    IsSuperUser(bool),
    IsLocked(bool),
    ApprovalStatus(ApprovalStatus),
    PasswordMustChange(bool),
    PasswordExpiry(Option<SystemTime>),
}

impl UserField {
    /// Profile fields a user may change about itself; the rest need a super-user.
    fn is_profile(&self) -> bool {
        matches!(
            self,
            Self::Email(_)
                | Self::DisplayName(_)
                | Self::FirstName(_)
                | Self::MiddleName(_)
                | Self::LastName(_)
        )
    }
}

#[derive(Debug)]
pub struct UserUpdate {
    /// `None`: the caller's own user.
    pub user_id: Option<UserId>,
    pub fields: Vec<UserField>,
}

#[derive(Debug)]
pub struct UsersPage {
    pub users: Vec<User>,
    pub next_page_token: String,
    pub total_size: u64,
}

impl Sso {
    pub async fn create_user(
        &self,
        caller: &Caller,
        new: NewUser,
    ) -> ServiceResult<(User, Option<String>)> {
        caller.require_super_user()?;
        self.insert_user(new, self.context(Some(caller), None))
            .await
    }

    /// Creates the start-up super-user unless a user of that name exists; returns it with
    /// the generated password when none was given.
    pub async fn bootstrap_super_user(
        &self,
        username: &str,
        password: Option<Secret>,
    ) -> ServiceResult<Option<(User, Option<String>)>> {
        let name = self.username(username)?;
        if self.stores.users.user_by_username(&name).await?.is_some() {
            return Ok(None);
        }
        let new = NewUser {
            username: username.to_owned(),
            password,
            profile: Profile::default(),
            is_super_user: true,
            is_approved: None,
            password_must_change: false,
        };
        match self.insert_user(new, self.context(None, None)).await {
            Ok(created) => Ok(Some(created)),
            // Another replica created it first.
            Err(ServiceError::UsernameTaken) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn insert_user(
        &self,
        new: NewUser,
        context: EventContext,
    ) -> ServiceResult<(User, Option<String>)> {
        let username = self.username(&new.username)?.into_string();
        self.check_profile(&new.profile)?;
        let generated = new.password.is_none().then(crypto::generate_password);
        let password = match (&new.password, &generated) {
            (Some(given), _) => given.clone(),
            (None, generated) => Secret::from(generated.clone().unwrap_or_default()),
        };
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(),
            username,
            profile: new.profile,
            is_super_user: new.is_super_user,
            is_locked: false,
            approval_status: if new.is_approved.unwrap_or(true) {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Pending
            },
            password_must_change: new.password_must_change,
            password_expiry: self.policy.password_max_age.map(|age| now + age),
            created_at: now,
            last_login_at: None,
            is_confirmed: true,
            totp_enabled: false,
        };
        // A new user has no password the history could refuse.
        let new_password = NewPassword {
            field: "password",
            password: &password,
            user: &user,
            current_hash: None,
        };
        let change = self.password_change(new_password, false, None, now).await?;
        let user = self
            .stores
            .users
            .create_user(
                Write::new(
                    now,
                    UserRecord {
                        user,
                        password_hash: change.password_hash,
                    },
                )
                .by(context),
            )
            .await?;
        tracing::info!(user_id = %user.id, is_super_user = user.is_super_user, "user created");
        Ok((user, generated))
    }

    pub fn current_user(&self, caller: &Caller) -> ServiceResult<User> {
        caller.require_user().cloned()
    }

    pub async fn get_user(&self, caller: &Caller, user: UserRef) -> ServiceResult<User> {
        caller.require_super_user()?;
        let record = match user {
            UserRef::Id(id) => self.stores.users.user_by_id(id).await?,
            UserRef::Username(name) => {
                let name = self.username(&name)?;
                self.stores.users.user_by_username(&name).await?
            }
        };
        record
            .map(|record| record.user)
            .ok_or(ServiceError::UserNotFound)
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        page: PageRequest,
        username_prefix: String,
        approval_status: Option<ApprovalStatus>,
    ) -> ServiceResult<UsersPage> {
        caller.require_super_user()?;
        check_text(
            "username_prefix",
            &username_prefix,
            self.policy.limits.max_username_chars,
        )?;
        // Folded like the keys it is compared with, so the prefix is case-insensitive by the
        // same rule in every store.
        let username_prefix = Username::key_of(&username_prefix);
        let filter = serde_json::json!([username_prefix, approval_status.map(|s| s.as_str())]);
        let filter = filter.to_string();
        let limit = page.limit();
        let query = UserQuery {
            username_prefix,
            approval_status,
            after: page.cursor(&filter)?,
            limit: limit + 1,
        };
        let mut found = self.stores.users.list_users(&query).await?;
        let next_page_token = if found.users.len() > limit {
            found.users.truncate(limit);
            found
                .users
                .last()
                .map(|user| page_token(&filter, &Username::key_of(&user.username)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(UsersPage {
            users: found.users,
            next_page_token,
            total_size: found.total_size,
        })
    }

    pub async fn update_user(&self, caller: &Caller, update: UserUpdate) -> ServiceResult<User> {
        let own = caller.require_user()?.id;
        let target = update.user_id.unwrap_or(own);
        if target != own || update.fields.iter().any(|field| !field.is_profile()) {
            caller.require_super_user()?;
        }
        let mut patch = UserPatch::default();
        let max = self.policy.limits.max_profile_field_chars;
        for field in update.fields {
            match field {
                UserField::Email(value) => patch.email = Some(checked("email", value, max)?),
                UserField::DisplayName(value) => {
                    patch.display_name = Some(checked("display_name", value, max)?);
                }
                UserField::FirstName(value) => {
                    patch.first_name = Some(checked("first_name", value, max)?);
                }
                UserField::MiddleName(value) => {
                    patch.middle_name = Some(checked("middle_name", value, max)?);
                }
                UserField::LastName(value) => {
                    patch.last_name = Some(checked("last_name", value, max)?);
                }
                UserField::IsSuperUser(value) => patch.is_super_user = Some(value),
                UserField::IsLocked(value) => patch.is_locked = Some(value),
                UserField::ApprovalStatus(value) => patch.approval_status = Some(value),
                UserField::PasswordMustChange(value) => patch.password_must_change = Some(value),
                UserField::PasswordExpiry(value) => patch.password_expiry = Some(value),
            }
        }
        self.apply_patch(caller, target, patch).await
    }

    /// Applies a patch. One that locks or un-approves the user or requires a password change
    /// also ends its sessions; one that sets the password's expiry ends them if the password
    /// had expired, so that its sessions stay unusable. A super-user may not lock, un-approve
    /// or demote itself (it would lose its own access).
    async fn apply_patch(
        &self,
        caller: &Caller,
        target: UserId,
        patch: UserPatch,
    ) -> ServiceResult<User> {
        let is_self = caller.user.as_ref().is_some_and(|user| user.id == target);
        if is_self && (patch.revokes_access() || patch.is_super_user == Some(false)) {
            return Err(ServiceError::invalid(
                "user_id",
                "a super-user cannot lock, reject or demote itself",
            ));
        }
        let end = if patch.ends_sessions() {
            EndSessions::All
        } else if patch.password_expiry.is_some() {
            EndSessions::AllIfPasswordExpired
        } else {
            EndSessions::None
        };
        let update = UpdateUser {
            id: target,
            patch,
            end_sessions: end,
        };
        Ok(self
            .stores
            .users
            .update_user(Write::new(self.clock.now(), update).by(self.context(Some(caller), None)))
            .await?)
    }

    pub async fn delete_user(&self, caller: &Caller, id: UserId) -> ServiceResult<()> {
        caller.require_super_user()?;
        if caller.user.as_ref().is_some_and(|user| user.id == id) {
            return Err(ServiceError::invalid(
                "user_id",
                "a super-user cannot delete itself",
            ));
        }
        let deleted = self
            .stores
            .users
            .delete_user(
                Write::new(
                    self.clock.now(),
                    DeleteUser {
                        id,
                        batch: self.policy.sweep_batch,
                    },
                )
                .by(self.context(Some(caller), None)),
            )
            .await?;
        if !deleted {
            return Err(ServiceError::UserNotFound);
        }
        tracing::info!(user_id = %id, "user deleted");
        Ok(())
    }

    /// Locking ends all of the user's sessions; unlocking also forgets its failed logins and
    /// lockout history (brute-force throttling).
    pub async fn set_locked(
        &self,
        caller: &Caller,
        id: UserId,
        locked: bool,
    ) -> ServiceResult<User> {
        caller.require_super_user()?;
        let patch = UserPatch {
            is_locked: Some(locked),
            ..UserPatch::default()
        };
        let user = self.apply_patch(caller, id, patch).await?;
        if !locked {
            self.forget_user_failures(&user).await?;
        }
        Ok(user)
    }

    /// Rejecting ends all of the user's sessions.
    pub async fn set_approval(
        &self,
        caller: &Caller,
        id: UserId,
        status: ApprovalStatus,
    ) -> ServiceResult<User> {
        caller.require_super_user()?;
        let patch = UserPatch {
            approval_status: Some(status),
            ..UserPatch::default()
        };
        self.apply_patch(caller, id, patch).await
    }

    /// A username from a request, normalised; refused as an invalid `username` field.
    pub(super) fn username(&self, text: &str) -> ServiceResult<Username> {
        Username::parse(text, self.policy.limits.max_username_chars).map_err(|error| match error {
            UsernameError::TooLong(_) => ServiceError::limit("username", error.to_string()),
            _ => ServiceError::invalid("username", error.to_string()),
        })
    }

    pub(super) fn check_profile(&self, profile: &Profile) -> ServiceResult<()> {
        let max = self.policy.limits.max_profile_field_chars;
        for (field, value) in [
            ("email", &profile.email),
            ("display_name", &profile.display_name),
            ("first_name", &profile.first_name),
            ("middle_name", &profile.middle_name),
            ("last_name", &profile.last_name),
        ] {
            check_text(field, value, max)?;
        }
        Ok(())
    }
}

fn checked(field: &str, value: String, max_chars: usize) -> ServiceResult<String> {
    check_text(field, &value, max_chars)?;
    Ok(value)
}
