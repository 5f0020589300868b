//! Users: login and logout, accounts, passwords.

use std::time::SystemTime;

use zeroize::Zeroizing;

use super::{
    Authentication, Caller, ClientInfo, PageRequest, ServiceError, ServiceResult, Sso, check_text,
    page_token,
};
use crate::{
    crypto,
    domain::{
        ApprovalStatus, EndSessions, LoginRecord, NewAttribute, NewSession, OpenSession, Owner,
        PasswordChange, Profile, Session, SessionId, User, UserId, UserPatch, UserQuery,
        UserRecord,
    },
};

/// A login attempt. No `Debug`: it holds passwords.
pub struct LoginRequest {
    pub username: String,
    pub password: Zeroizing<String>,
    pub client: ClientInfo,
    pub new_password: Option<Zeroizing<String>>,
    /// The metadata's UST; a guest session there is rotated into the new session.
    pub rotate: Authentication,
}

/// No `Debug`: it holds the UST.
pub struct LoginOutcome {
    pub ust: String,
    pub session: Session,
    pub user: User,
    pub password_expiry_warning: bool,
}

/// No `Debug`: it may hold a password.
pub struct NewUser {
    pub username: String,
    pub password: Option<Zeroizing<String>>,
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

/// No `Debug`: it holds passwords.
pub struct ChangePassword {
    /// `None`: the caller's own user.
    pub user_id: Option<UserId>,
    pub old_password: Zeroizing<String>,
    pub new_password: Zeroizing<String>,
    pub must_change: Option<bool>,
    pub password_expiry: Option<SystemTime>,
}

#[derive(Debug)]
pub struct UsersPage {
    pub users: Vec<User>,
    pub next_page_token: String,
    pub total_size: u64,
}

impl Sso {
    pub async fn login(&self, request: LoginRequest) -> ServiceResult<LoginOutcome> {
        let outcome = self.try_login(request).await;
        match &outcome {
            Ok(_) => metrics::counter!("ssod_logins_total", "outcome" => "success").increment(1),
            Err(error) => metrics::counter!(
                "ssod_logins_total",
                "outcome" => "failure",
                "reason" => error.reason()
            )
            .increment(1),
        }
        outcome
    }

    async fn try_login(&self, request: LoginRequest) -> ServiceResult<LoginOutcome> {
        self.check_client(&request.client)?;
        let limits = &self.policy.limits;
        // Bounded before any work: no such user or password can exist.
        if request.password.chars().count() > limits.max_password_chars
            || request.username.chars().count() > limits.max_username_chars
        {
            return Err(ServiceError::InvalidCredentials);
        }
        let now = self.clock.now();
        let record = self.store.user_by_username(&request.username).await?;
        let hash = record.as_ref().map(|record| record.password_hash.as_str());
        let matches = self.passwords.verify(&request.password, hash).await?;
        let Some(UserRecord {
            mut user,
            password_hash: verified_hash,
        }) = record.filter(|_| matches)
        else {
            return Err(ServiceError::InvalidCredentials);
        };
        self.check_may_log_in(&user, request.new_password.is_some(), now)?;

        let new_password = match &request.new_password {
            Some(new_password) => {
                if new_password.as_str() == request.password.as_str() {
                    return Err(ServiceError::PasswordTooWeak(
                        "the new password must differ from the old one".into(),
                    ));
                }
                Some(
                    self.password_change(&user, new_password, false, None, now)
                        .await?,
                )
            }
            None => None,
        };
        let guest = match &request.rotate {
            Authentication::Valid(caller) if caller.user.is_none() => Some(caller.session.id),
            _ => None,
        };
        let session = self.new_session(Some(user.id), request.client, now);
        let attributes = match guest {
            Some(guest) => {
                self.carry_attributes(guest, session.id, &self.policy.persistent_on_login, now)
                    .await?
            }
            None => Vec::new(),
        };
        let login = LoginRecord {
            verified_hash,
            new_password: new_password.clone(),
        };
        let opened = self
            .open_session(session.clone(), attributes, guest, Some(login.clone()), now)
            .await;
        let (ust, session) = match opened {
            // The guest session ended meanwhile: there is nothing to rotate.
            Err(ServiceError::SessionNotFound) if guest.is_some() => {
                self.open_session(session, Vec::new(), None, Some(login), now)
                    .await?
            }
            other => other?,
        };
        user.last_login_at = Some(now);
        if let Some(change) = new_password {
            user.password_must_change = change.password_must_change;
            user.password_expiry = change.password_expiry;
        }
        let password_expiry_warning = user
            .password_expiry
            .is_some_and(|expiry| expiry <= now + self.policy.password_expiry_warning);
        tracing::info!(user_id = %user.id, session_id = %session.id, "login");
        Ok(LoginOutcome {
            ust,
            session,
            user,
            password_expiry_warning,
        })
    }

    /// Refusals after a correct password. Locked, unapproved and expired-password users get
    /// invalid credentials unless the policy says to reveal why.
    fn check_may_log_in(
        &self,
        user: &User,
        changes_password: bool,
        now: SystemTime,
    ) -> ServiceResult<()> {
        let refusal = if user.is_locked {
            Some(ServiceError::UserLocked)
        } else if user.approval_status != ApprovalStatus::Approved {
            Some(ServiceError::UserNotApproved)
        } else if user.password_expired(now) && !changes_password {
            Some(ServiceError::PasswordExpired)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tracing::info!(user_id = %user.id, reason = refusal.reason(), "login refused");
            return Err(if self.policy.reveal_login_failures {
                refusal
            } else {
                ServiceError::InvalidCredentials
            });
        }
        if user.password_must_change && !changes_password {
            return Err(ServiceError::PasswordMustChange);
        }
        Ok(())
    }

    /// Ends the caller's session. Where persistent-on-logout attributes are configured and the
    /// session had any, a new guest session carries them and its UST is returned. Answers OK
    /// for a missing, unknown or expired UST, but not when the store cannot be asked: the
    /// client must not believe a session ended that did not.
    pub async fn logout(&self, authentication: &Authentication) -> ServiceResult<Option<String>> {
        let caller = match authentication {
            Authentication::Valid(caller) => caller,
            Authentication::Unavailable(cause) => {
                return Err(ServiceError::StoreUnavailable(cause.clone()));
            }
            Authentication::Missing | Authentication::Invalid => return Ok(None),
        };
        let now = self.clock.now();
        let old = &caller.session;
        let client = ClientInfo {
            current_app: old.current_app.clone(),
            remote_addr: old.remote_addr.clone(),
            user_agent: old.user_agent.clone(),
        };
        let guest = self.new_session(None, client, now);
        let carried = self
            .carry_attributes(old.id, guest.id, &self.policy.persistent_on_logout, now)
            .await;
        let attributes = match carried {
            Ok(attributes) => attributes,
            // Ending the session matters more than keeping its attributes.
            Err(ServiceError::StoreUnavailable(cause)) => {
                return Err(ServiceError::StoreUnavailable(cause));
            }
            Err(error) => {
                tracing::warn!(error = %error, "persistent attributes not carried at logout");
                Vec::new()
            }
        };
        if attributes.is_empty() {
            self.store.delete_session(old.id, now).await?;
            return Ok(None);
        }
        match self
            .open_session(guest, attributes, Some(old.id), None, now)
            .await
        {
            Ok((ust, _)) => Ok(Some(ust)),
            // Ended meanwhile (expired or deleted): logging out is done.
            Err(ServiceError::SessionNotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        new: NewUser,
    ) -> ServiceResult<(User, Option<String>)> {
        caller.require_super_user()?;
        self.insert_user(new).await
    }

    /// Creates the start-up super-user unless a user of that name exists; returns it with
    /// the generated password when none was given.
    pub async fn bootstrap_super_user(
        &self,
        username: &str,
        password: Option<Zeroizing<String>>,
    ) -> ServiceResult<Option<(User, Option<String>)>> {
        if self.store.user_by_username(username).await?.is_some() {
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
        match self.insert_user(new).await {
            Ok(created) => Ok(Some(created)),
            // Another replica created it first.
            Err(ServiceError::UsernameTaken) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn insert_user(&self, new: NewUser) -> ServiceResult<(User, Option<String>)> {
        self.check_username(&new.username)?;
        self.check_profile(&new.profile)?;
        let generated = new.password.is_none().then(crypto::generate_password);
        let password = match (&new.password, &generated) {
            (Some(given), _) => given.clone(),
            (None, generated) => Zeroizing::new(generated.clone().unwrap_or_default()),
        };
        self.check_password_strength(&password, &new.username)?;
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(),
            username: new.username,
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
        };
        let password_hash = self.passwords.hash(&password).await?;
        let user = self
            .store
            .create_user(UserRecord {
                user,
                password_hash,
            })
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
            UserRef::Id(id) => self.store.user_by_id(id).await?,
            UserRef::Username(name) => self.store.user_by_username(&name).await?,
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
        let limit = page.limit();
        let query = UserQuery {
            username_prefix,
            approval_status,
            after: page.cursor()?,
            limit: limit + 1,
        };
        let mut found = self.store.list_users(&query).await?;
        let next_page_token = if found.users.len() > limit {
            found.users.truncate(limit);
            found
                .users
                .last()
                .map(|user| page_token(&user.username))
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

    /// Applies a patch; one that locks or un-approves the user also ends its sessions, and a
    /// super-user may not lock, un-approve or demote itself (it would lose its own access).
    async fn apply_patch(
        &self,
        caller: &Caller,
        target: UserId,
        patch: UserPatch,
    ) -> ServiceResult<User> {
        let is_self = caller.user.as_ref().is_some_and(|user| user.id == target);
        if is_self && (patch.ends_sessions() || patch.is_super_user == Some(false)) {
            return Err(ServiceError::invalid(
                "user_id",
                "a super-user cannot lock, reject or demote itself",
            ));
        }
        let end = if patch.ends_sessions() {
            EndSessions::All
        } else {
            EndSessions::None
        };
        Ok(self.store.update_user(target, &patch, end).await?)
    }

    pub async fn delete_user(&self, caller: &Caller, id: UserId) -> ServiceResult<()> {
        caller.require_super_user()?;
        if caller.user.as_ref().is_some_and(|user| user.id == id) {
            return Err(ServiceError::invalid(
                "user_id",
                "a super-user cannot delete itself",
            ));
        }
        if !self.store.delete_user(id).await? {
            return Err(ServiceError::UserNotFound);
        }
        tracing::info!(user_id = %id, "user deleted");
        Ok(())
    }

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
                .store
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
            self.store
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
        self.store
            .update_user(target, &patch, EndSessions::AllBut(caller.session.id))
            .await?;
        tracing::info!(user_id = %target, "password changed");
        Ok(())
    }

    /// Locking ends all of the user's sessions.
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
        self.apply_patch(caller, id, patch).await
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

    pub(super) fn new_session(
        &self,
        user_id: Option<UserId>,
        client: ClientInfo,
        now: SystemTime,
    ) -> Session {
        Session {
            id: SessionId::generate(),
            user_id,
            current_app: client.current_app,
            remote_addr: client.remote_addr,
            user_agent: client.user_agent,
            created_at: now,
            expires_at: self.policy.sessions.expiry(now, now),
            last_renewed_at: now,
        }
    }

    /// Mints a UST and opens a session for it in one store transaction.
    pub(super) async fn open_session(
        &self,
        session: Session,
        attributes: Vec<NewAttribute>,
        replaces: Option<SessionId>,
        login: Option<LoginRecord>,
        now: SystemTime,
    ) -> ServiceResult<(String, Session)> {
        let ust = crypto::generate_ust();
        let open = OpenSession {
            new: NewSession {
                session,
                token_hash: crypto::hash_ust(&ust),
            },
            attributes,
            replaces,
            login,
        };
        let session = self.store.open_session(open, now).await?;
        Ok((ust, session))
    }

    async fn password_change(
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

    fn check_password_strength(&self, password: &str, username: &str) -> ServiceResult<()> {
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

    fn check_username(&self, username: &str) -> ServiceResult<()> {
        let max = self.policy.limits.max_username_chars;
        if username.is_empty()
            || username
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::invalid(
                "username",
                "must be non-empty printable text without white space",
            ));
        }
        check_text("username", username, max)
    }

    fn check_profile(&self, profile: &Profile) -> ServiceResult<()> {
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

    /// Reads the named attributes of a session that is about to be replaced and re-seals
    /// them for the new session (ciphertexts are bound to their owner).
    async fn carry_attributes(
        &self,
        from: SessionId,
        to: SessionId,
        names: &[String],
        now: SystemTime,
    ) -> ServiceResult<Vec<NewAttribute>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self
            .store
            .get_attributes(Owner::Session(from), Some(names), now)
            .await?;
        stored
            .into_iter()
            .map(|attribute| self.reseal(attribute, Owner::Session(from), Owner::Session(to)))
            .collect()
    }
}

fn checked(field: &str, value: String, max_chars: usize) -> ServiceResult<String> {
    check_text(field, &value, max_chars)?;
    Ok(value)
}
