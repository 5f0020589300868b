//! Self-service accounts: sign-up and its confirmation, and password reset. Each flow hands
//! its user a single-use token: by mail (queued, sent off the request path), or with caller
//! delivery in the response to a super-user caller, a back end that delivers it itself.

use crate::domain::Secret;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{Caller, ClientInfo, ServiceError, ServiceResult, Sso, passwords::NewPassword};
use crate::{
    crypto,
    domain::{
        AccountTokenPurpose, ApprovalStatus, IssuePasswordReset, NewAccountToken, Profile,
        RedeemAccountToken, Redemption, SignUp, SignedUp, TokenHash, User, UserId, UserRecord,
        Username, Write,
    },
    mail::Mail,
};

/// Who may sign up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignUpMode {
    Off,
    /// Anyone; the account works once confirmed.
    Open,
    /// Anyone; the account works once confirmed and approved by a super-user.
    Approval,
}

/// How tokens reach users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenDelivery {
    Mail,
    /// In the response to super-user callers only; never mailed.
    Caller,
}

/// The rules of sign-up and of the tokens.
#[derive(Clone, Debug)]
pub struct AccountsPolicy {
    pub sign_up: SignUpMode,
    pub delivery: TokenDelivery,
    pub token_ttl: Duration,
    /// Link templates for the mails, with `{token}`; `None`: the mail carries the token.
    pub confirm_url: Option<String>,
    pub reset_url: Option<String>,
}

/// A sign-up; its `Debug` leaves the password out.
#[derive(Debug)]
pub struct SignUpRequest {
    pub username: String,
    pub password: Secret,
    pub profile: Profile,
    pub client: ClientInfo,
}

/// A sign-up's answer; its `Debug` leaves the token out.
#[derive(Debug)]
pub struct SignUpOutcome {
    pub user: User,
    /// Only for a super-user caller under caller delivery.
    pub confirmation_token: Option<Secret>,
}

/// Where a token goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Back in the response.
    Caller,
    Mail,
    /// Nowhere: caller delivery, and a caller that is not a super-user.
    Nowhere,
}

/// A fresh token and its hash.
struct Token {
    text: Secret,
    hash: TokenHash,
}

impl Token {
    fn generate() -> Self {
        let text = Zeroizing::new(crypto::generate_account_token());
        let hash = crypto::hash_account_token(&text);
        Self {
            text: text.into(),
            hash,
        }
    }
}

impl Sso {
    /// Creates an unconfirmed user (pending approval under [`SignUpMode::Approval`]) and sends
    /// it its confirmation token. A taken username answers the same as a new one, with a user
    /// that was not stored, and the owner of the name is told by mail, so sign-up cannot be
    /// used to find out which usernames exist; a super-user caller (who may list users
    /// anyway) gets `UsernameTaken` instead.
    pub async fn sign_up(
        &self,
        caller: Option<&Caller>,
        request: SignUpRequest,
    ) -> ServiceResult<SignUpOutcome> {
        let approval_status = match self.policy.accounts.sign_up {
            SignUpMode::Off => return Err(ServiceError::SignUpDisabled),
            SignUpMode::Open => ApprovalStatus::Approved,
            SignUpMode::Approval => ApprovalStatus::Pending,
        };
        self.check_client(&request.client)?;
        let context = self.context(caller, Some(&request.client));
        let username = self.username(&request.username)?.into_string();
        self.check_profile(&request.profile)?;
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(),
            username,
            profile: request.profile,
            is_super_user: false,
            is_locked: false,
            approval_status,
            password_must_change: false,
            password_expiry: self.policy.password_max_age.map(|age| now + age),
            created_at: now,
            last_login_at: None,
            is_confirmed: false,
            totp_enabled: false,
        };
        // A new user has no password the history could refuse.
        let new_password = NewPassword {
            field: "password",
            password: &request.password,
            user: &user,
            current_hash: None,
        };
        let password_hash = self
            .password_change(new_password, false, None, now)
            .await?
            .password_hash;
        let token = Token::generate();
        let signed_up = self
            .stores
            .account_tokens
            .sign_up(
                Write::new(
                    now,
                    SignUp {
                        record: UserRecord {
                            user: user.clone(),
                            password_hash,
                        },
                        confirmation: NewAccountToken {
                            hash: token.hash,
                            expires_at: now + self.policy.accounts.token_ttl,
                        },
                    },
                )
                .by(context),
            )
            .await?;
        let route = self.token_route(caller);
        match signed_up {
            SignedUp::Created(user) => {
                tracing::info!(
                    user_id = %user.id,
                    approval_status = user.approval_status.as_str(),
                    "signed up"
                );
                let confirmation_token = self.hand_over(route, token.text, |token| {
                    self.confirmation_mail(&user, token)
                });
                Ok(SignUpOutcome {
                    user,
                    confirmation_token,
                })
            }
            SignedUp::Taken { .. } if caller.is_some_and(Caller::is_super_user) => {
                Err(ServiceError::UsernameTaken)
            }
            SignedUp::Taken { owner } => {
                tracing::info!(
                    owner_id = ?owner.as_ref().map(|owner| owner.id),
                    "sign-up of a taken username answered as if it were new"
                );
                if let (Some(owner), Route::Mail) = (owner, route)
                    && let Some(mail) = taken_username_mail(&owner)
                {
                    self.mailer.send(mail);
                }
                Ok(SignUpOutcome {
                    user,
                    confirmation_token: None,
                })
            }
        }
    }

    /// Confirms the user of a sign-up token; the token is used up.
    pub async fn confirm_sign_up(&self, token: &str) -> ServiceResult<User> {
        let user = self
            .redeem(token, AccountTokenPurpose::ConfirmSignUp, |_| async {
                Ok(Redemption::ConfirmSignUp)
            })
            .await?;
        tracing::info!(user_id = %user.id, "sign-up confirmed");
        Ok(user)
    }

    /// Issues a password reset token to a known user who may reset its password, replacing
    /// any older one, and sends it. Answers the same for every username, and does the same
    /// work for each: the one store statement that issues the token finds the user or not;
    /// the mail is only queued. Returns the token only to a super-user caller under caller
    /// delivery.
    pub async fn request_password_reset(
        &self,
        caller: Option<&Caller>,
        username: &str,
        client: ClientInfo,
    ) -> ServiceResult<Option<Secret>> {
        self.check_client(&client)?;
        let context = self.context(caller, Some(&client));
        // A name no user can have is looked up all the same, under a key no user has.
        let user_key = Username::parse(username, self.policy.limits.max_username_chars)
            .map(|username| username.key().to_owned())
            .unwrap_or_default();
        let token = Token::generate();
        let now = self.clock.now();
        let issued = self
            .stores
            .account_tokens
            .issue_password_reset(
                Write::new(
                    now,
                    IssuePasswordReset {
                        user_key,
                        token: NewAccountToken {
                            hash: token.hash,
                            expires_at: now + self.policy.accounts.token_ttl,
                        },
                    },
                )
                .by(context),
            )
            .await?;
        let Some(user) = issued else {
            return Ok(None);
        };
        tracing::info!(user_id = %user.id, "password reset requested");
        let route = self.token_route(caller);
        Ok(self.hand_over(route, token.text, |token| self.reset_mail(&user, token)))
    }

    /// Sets the password of a reset token's user, through the same rules and hashing as any
    /// password change, and ends every session of that user; the token is used up.
    pub async fn reset_password(&self, token: &str, new_password: Secret) -> ServiceResult<()> {
        let user = self
            .redeem(
                token,
                AccountTokenPurpose::ResetPassword,
                |record| async move {
                    let new_password = NewPassword {
                        field: "new_password",
                        password: &new_password,
                        user: &record.user,
                        current_hash: Some(&record.password_hash),
                    };
                    let change = self
                        .password_change(new_password, false, None, self.clock.now())
                        .await?;
                    Ok(Redemption::ResetPassword(change))
                },
            )
            .await?;
        tracing::info!(user_id = %user.id, "password reset");
        Ok(())
    }

    /// Finds the user of a live token, decides the redemption (which may refuse, using up
    /// nothing), then consumes the token and applies it in one store write.
    async fn redeem<Decide, Deciding>(
        &self,
        token: &str,
        purpose: AccountTokenPurpose,
        decide: Decide,
    ) -> ServiceResult<User>
    where
        Decide: FnOnce(UserRecord) -> Deciding,
        Deciding: Future<Output = ServiceResult<Redemption>>,
    {
        // A malformed token cannot be one this server issued: no look-up.
        if !crypto::is_well_formed_account_token(token) {
            return Err(ServiceError::TokenInvalid);
        }
        let hash = crypto::hash_account_token(token);
        let store = &self.stores.account_tokens;
        let record = store
            .account_token_user(&hash, purpose, self.clock.now())
            .await?
            .ok_or(ServiceError::TokenInvalid)?;
        let redemption = decide(record).await?;
        store
            .redeem_account_token(
                Write::new(self.clock.now(), RedeemAccountToken { hash, redemption })
                    .by(self.context(None, None)),
            )
            .await?
            .ok_or(ServiceError::TokenInvalid)
    }

    fn token_route(&self, caller: Option<&Caller>) -> Route {
        match self.policy.accounts.delivery {
            TokenDelivery::Mail => Route::Mail,
            TokenDelivery::Caller if caller.is_some_and(Caller::is_super_user) => Route::Caller,
            TokenDelivery::Caller => Route::Nowhere,
        }
    }

    /// Sends the token where `route` says: returns it for the caller, or queues the mail
    /// `compose` makes of it.
    fn hand_over(
        &self,
        route: Route,
        token: Secret,
        compose: impl FnOnce(&str) -> Option<Mail>,
    ) -> Option<Secret> {
        match route {
            Route::Caller => Some(token),
            Route::Mail => {
                if let Some(mail) = compose(&token) {
                    self.mailer.send(mail);
                }
                None
            }
            Route::Nowhere => None,
        }
    }

    fn confirmation_mail(&self, user: &User, token: &str) -> Option<Mail> {
        let action = match &self.policy.accounts.confirm_url {
            Some(template) => format!(
                "To confirm it, open this link:\n\n{}\n",
                template.replace("{token}", token)
            ),
            None => format!("To confirm it, use this confirmation token:\n\n{token}\n"),
        };
        mail_to(
            user,
            "Confirm your account",
            format!(
                "Hello {},\n\nan account named {} was signed up with this address. {action}\n\
                 It works once, within {}. If you did not sign up, ignore this mail.\n",
                greeting(user),
                user.username,
                humantime::format_duration(self.policy.accounts.token_ttl),
            ),
        )
    }

    fn reset_mail(&self, user: &User, token: &str) -> Option<Mail> {
        let action = match &self.policy.accounts.reset_url {
            Some(template) => format!(
                "To choose a new password, open this link:\n\n{}\n",
                template.replace("{token}", token)
            ),
            None => format!("To choose a new password, use this reset token:\n\n{token}\n"),
        };
        mail_to(
            user,
            "Reset your password",
            format!(
                "Hello {},\n\na password reset was requested for your account {}. {action}\n\
                 It works once, within {}, and ends every session of your account. If you did \
                 not ask for it, ignore this mail: your password stays as it is.\n",
                greeting(user),
                user.username,
                humantime::format_duration(self.policy.accounts.token_ttl),
            ),
        )
    }
}

/// Told to the owner of a username that someone tried to sign up with: carries no token.
fn taken_username_mail(owner: &User) -> Option<Mail> {
    mail_to(
        owner,
        "Someone tried to sign up with your username",
        format!(
            "Hello {},\n\nsomeone tried to sign up with your username {}. If it was you, you \
             already have an account: log in, or reset your password if you forgot it. \
             Otherwise, ignore this mail; nothing changed.\n",
            greeting(owner),
            owner.username
        ),
    )
}

/// A mail to `user`, or none (logged) when the user has no address.
fn mail_to(user: &User, subject: &str, body: String) -> Option<Mail> {
    if user.profile.email.is_empty() {
        tracing::warn!(user_id = %user.id, "user has no email address: mail not sent");
        return None;
    }
    Some(Mail {
        user_id: user.id,
        to: user.profile.email.clone(),
        subject: subject.to_owned(),
        body: Zeroizing::new(body),
    })
}

fn greeting(user: &User) -> &str {
    if user.profile.display_name.is_empty() {
        &user.username
    } else {
        &user.profile.display_name
    }
}
