//! `sso.v1.UserService`: thin handlers over the service layer.

use std::sync::Arc;

use crate::domain::Secret;
use tonic::{Request, Response};

use super::{Reply, authentication, caller, convert};
use crate::{
    domain::Profile,
    proto::{self, user_service_server::UserService},
    service::{
        Caller, ChangePassword, DisableTotpRequest, LoginRequest, NewUser, PageRequest,
        ServiceError, ServiceResult, SignUpRequest, Sso, UserField, UserRef, UserUpdate,
    },
};

pub struct UserApi {
    pub sso: Arc<Sso>,
}

fn user_reply<T>(
    user: impl Into<proto::User>,
    wrap: impl FnOnce(Option<proto::User>) -> T,
) -> Reply<T> {
    Ok(Response::new(wrap(Some(user.into()))))
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn login(&self, request: Request<proto::LoginRequest>) -> Reply<proto::LoginResponse> {
        let rotate = authentication(&request).clone();
        let message = request.into_inner();
        let outcome = self
            .sso
            .login(LoginRequest {
                username: message.username,
                password: Secret::from(message.password),
                client: convert::client(
                    message.current_app,
                    message.remote_addr,
                    message.user_agent,
                ),
                new_password: message.new_password.map(Secret::from),
                totp_code: convert::optional_code(message.totp_code),
                rotate,
            })
            .await?;
        Ok(Response::new(proto::LoginResponse {
            ust: outcome.ust,
            session: Some(outcome.session.into()),
            user: Some(outcome.user.into()),
            password_expiry_warning: outcome.password_expiry_warning,
        }))
    }

    async fn logout(&self, request: Request<proto::LogoutRequest>) -> Reply<proto::LogoutResponse> {
        let guest_ust = self.sso.logout(authentication(&request)).await?;
        Ok(Response::new(proto::LogoutResponse {
            guest_ust: guest_ust.unwrap_or_default(),
        }))
    }

    async fn create_user(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Reply<proto::CreateUserResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let new = NewUser {
            username: message.username,
            password: message.password.map(Secret::from),
            profile: Profile {
                email: message.email,
                display_name: message.display_name,
                first_name: message.first_name,
                middle_name: message.middle_name,
                last_name: message.last_name,
            },
            is_super_user: message.is_super_user,
            is_approved: message.is_approved,
            password_must_change: message.password_must_change,
        };
        let (user, generated_password) = self.sso.create_user(&caller, new).await?;
        Ok(Response::new(proto::CreateUserResponse {
            user: Some(user.into()),
            generated_password: generated_password.unwrap_or_default(),
        }))
    }

    async fn get_current_user(
        &self,
        request: Request<proto::GetCurrentUserRequest>,
    ) -> Reply<proto::GetCurrentUserResponse> {
        let caller = caller(&request)?;
        user_reply(self.sso.current_user(&caller)?, |user| {
            proto::GetCurrentUserResponse { user }
        })
    }

    async fn get_user(
        &self,
        request: Request<proto::GetUserRequest>,
    ) -> Reply<proto::GetUserResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let target = match (message.user_id.is_empty(), message.username.is_empty()) {
            (false, true) => UserRef::Id(convert::user_id("user_id", &message.user_id)?),
            (true, false) => UserRef::Username(message.username),
            _ => {
                return Err(ServiceError::invalid(
                    "user_id",
                    "exactly one of user_id and username is required",
                )
                .into());
            }
        };
        user_reply(self.sso.get_user(&caller, target).await?, |user| {
            proto::GetUserResponse { user }
        })
    }

    async fn list_users(
        &self,
        request: Request<proto::ListUsersRequest>,
    ) -> Reply<proto::ListUsersResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let page = PageRequest {
            size: convert::page_size(message.page_size)?,
            token: message.page_token,
        };
        let status = convert::approval_status("approval_status", message.approval_status)?;
        let found = self
            .sso
            .list_users(&caller, page, message.username_prefix, status)
            .await?;
        Ok(Response::new(proto::ListUsersResponse {
            users: found.users.into_iter().map(Into::into).collect(),
            next_page_token: found.next_page_token,
            total_size: i32::try_from(found.total_size).unwrap_or(i32::MAX),
        }))
    }

    async fn update_user(
        &self,
        request: Request<proto::UpdateUserRequest>,
    ) -> Reply<proto::UpdateUserResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let update = user_update(message)?;
        user_reply(self.sso.update_user(&caller, update).await?, |user| {
            proto::UpdateUserResponse { user }
        })
    }

    async fn delete_user(
        &self,
        request: Request<proto::DeleteUserRequest>,
    ) -> Reply<proto::DeleteUserResponse> {
        let caller = caller(&request)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id)?;
        self.sso.delete_user(&caller, id).await?;
        Ok(Response::new(proto::DeleteUserResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<proto::ChangePasswordRequest>,
    ) -> Reply<proto::ChangePasswordResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let change = ChangePassword {
            user_id: convert::optional_user_id("user_id", &message.user_id)?,
            old_password: Secret::from(message.old_password),
            new_password: Secret::from(message.new_password),
            must_change: message.must_change,
            password_expiry: message
                .password_expiry
                .map(|expiry| convert::system_time("password_expiry", expiry))
                .transpose()?,
        };
        self.sso.change_password(&caller, change).await?;
        Ok(Response::new(proto::ChangePasswordResponse {}))
    }

    async fn lock_user(
        &self,
        request: Request<proto::LockUserRequest>,
    ) -> Reply<proto::LockUserResponse> {
        let caller = caller(&request)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id)?;
        user_reply(self.sso.set_locked(&caller, id, true).await?, |user| {
            proto::LockUserResponse { user }
        })
    }

    async fn unlock_user(
        &self,
        request: Request<proto::UnlockUserRequest>,
    ) -> Reply<proto::UnlockUserResponse> {
        let caller = caller(&request)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id)?;
        user_reply(self.sso.set_locked(&caller, id, false).await?, |user| {
            proto::UnlockUserResponse { user }
        })
    }

    async fn approve_user(
        &self,
        request: Request<proto::ApproveUserRequest>,
    ) -> Reply<proto::ApproveUserResponse> {
        let caller = caller(&request)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id)?;
        let user = self
            .sso
            .set_approval(&caller, id, crate::domain::ApprovalStatus::Approved)
            .await?;
        user_reply(user, |user| proto::ApproveUserResponse { user })
    }

    async fn reject_user(
        &self,
        request: Request<proto::RejectUserRequest>,
    ) -> Reply<proto::RejectUserResponse> {
        let caller = caller(&request)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id)?;
        let user = self
            .sso
            .set_approval(&caller, id, crate::domain::ApprovalStatus::Rejected)
            .await?;
        user_reply(user, |user| proto::RejectUserResponse { user })
    }

    async fn begin_totp_enrollment(
        &self,
        request: Request<proto::BeginTotpEnrollmentRequest>,
    ) -> Reply<proto::BeginTotpEnrollmentResponse> {
        let caller = caller(&request)?;
        let enrollment = self.sso.begin_totp_enrollment(&caller).await?;
        Ok(Response::new(proto::BeginTotpEnrollmentResponse {
            secret: enrollment.secret.to_string(),
            otpauth_uri: enrollment.otpauth_uri.to_string(),
        }))
    }

    async fn confirm_totp_enrollment(
        &self,
        request: Request<proto::ConfirmTotpEnrollmentRequest>,
    ) -> Reply<proto::ConfirmTotpEnrollmentResponse> {
        let caller = caller(&request)?;
        let code = Secret::from(request.into_inner().totp_code);
        let codes = self.sso.confirm_totp_enrollment(&caller, &code).await?;
        Ok(Response::new(proto::ConfirmTotpEnrollmentResponse {
            recovery_codes: codes.iter().map(|code| code.to_string()).collect(),
        }))
    }

    async fn disable_totp(
        &self,
        request: Request<proto::DisableTotpRequest>,
    ) -> Reply<proto::DisableTotpResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let disable = DisableTotpRequest {
            user_id: convert::optional_user_id("user_id", &message.user_id)?,
            password: Secret::from(message.password),
            totp_code: Secret::from(message.totp_code),
        };
        self.sso.disable_totp(&caller, disable).await?;
        Ok(Response::new(proto::DisableTotpResponse {}))
    }

    async fn sign_up(
        &self,
        request: Request<proto::SignUpRequest>,
    ) -> Reply<proto::SignUpResponse> {
        let caller = optional_caller(&request);
        let message = request.into_inner();
        let outcome = self
            .sso
            .sign_up(
                caller.as_deref(),
                SignUpRequest {
                    username: message.username,
                    password: Secret::from(message.password),
                    profile: Profile {
                        email: message.email,
                        display_name: message.display_name,
                        first_name: message.first_name,
                        middle_name: message.middle_name,
                        last_name: message.last_name,
                    },
                    client: convert::client(
                        message.current_app,
                        message.remote_addr,
                        message.user_agent,
                    ),
                },
            )
            .await?;
        Ok(Response::new(proto::SignUpResponse {
            user: Some(outcome.user.into()),
            confirmation_token: revealed(outcome.confirmation_token),
        }))
    }

    async fn confirm_sign_up(
        &self,
        request: Request<proto::ConfirmSignUpRequest>,
    ) -> Reply<proto::ConfirmSignUpResponse> {
        let user = self
            .sso
            .confirm_sign_up(&request.get_ref().confirmation_token)
            .await?;
        user_reply(user, |user| proto::ConfirmSignUpResponse { user })
    }

    async fn request_password_reset(
        &self,
        request: Request<proto::RequestPasswordResetRequest>,
    ) -> Reply<proto::RequestPasswordResetResponse> {
        let caller = optional_caller(&request);
        let message = request.into_inner();
        let token = self
            .sso
            .request_password_reset(
                caller.as_deref(),
                &message.username,
                convert::client(message.current_app, message.remote_addr, message.user_agent),
            )
            .await?;
        Ok(Response::new(proto::RequestPasswordResetResponse {
            reset_token: revealed(token),
        }))
    }

    async fn reset_password(
        &self,
        request: Request<proto::ResetPasswordRequest>,
    ) -> Reply<proto::ResetPasswordResponse> {
        let message = request.into_inner();
        self.sso
            .reset_password(&message.reset_token, Secret::from(message.new_password))
            .await?;
        Ok(Response::new(proto::ResetPasswordResponse {}))
    }
}

/// The caller, for an RPC anyone may call that tells a super-user more.
fn optional_caller<T>(request: &Request<T>) -> Option<Arc<Caller>> {
    authentication(request).caller().ok().cloned()
}

/// A token for the response: empty when there is none to show.
fn revealed(token: Option<Secret>) -> String {
    token.map(|token| String::clone(&token)).unwrap_or_default()
}

/// The update mask's paths, each taking its value from `user`.
fn user_update(message: proto::UpdateUserRequest) -> ServiceResult<UserUpdate> {
    let user = message
        .user
        .ok_or_else(|| ServiceError::invalid("user", "is required"))?;
    let paths = message
        .update_mask
        .map(|mask| mask.paths)
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(ServiceError::invalid(
            "update_mask",
            "name at least one field",
        ));
    }
    let fields = paths
        .iter()
        .map(|path| {
            Ok(match path.as_str() {
                "email" => UserField::Email(user.email.clone()),
                "display_name" => UserField::DisplayName(user.display_name.clone()),
                "first_name" => UserField::FirstName(user.first_name.clone()),
                "middle_name" => UserField::MiddleName(user.middle_name.clone()),
                "last_name" => UserField::LastName(user.last_name.clone()),
                "is_super_user" => UserField::IsSuperUser(user.is_super_user),
                "is_locked" => UserField::IsLocked(user.is_locked),
                "approval_status" => UserField::ApprovalStatus(
                    convert::approval_status("user.approval_status", user.approval_status)?
                        .ok_or_else(|| {
                            ServiceError::invalid("user.approval_status", "must be specified")
                        })?,
                ),
                "password_must_change" => UserField::PasswordMustChange(user.password_must_change),
                "password_expiry" => UserField::PasswordExpiry(
                    user.password_expiry
                        .map(|expiry| convert::system_time("user.password_expiry", expiry))
                        .transpose()?,
                ),
                other => {
                    return Err(ServiceError::invalid(
                        "update_mask",
                        format!("{other:?} is not an updatable field"),
                    ));
                }
            })
        })
        .collect::<ServiceResult<Vec<_>>>()?;
    Ok(UserUpdate {
        user_id: convert::optional_user_id("user.user_id", &user.user_id)?,
        fields,
    })
}
