//! `sso.v1.SessionService`: thin handlers over the service layer.

use std::sync::Arc;

use tonic::{Request, Response};

use super::{Reply, caller, convert};
use crate::{
    domain::SessionSelector,
    proto::{self, delete_user_sessions_request::Selector, session_service_server::SessionService},
    service::{PageRequest, ServiceError, Sso},
};

pub struct SessionApi {
    pub sso: Arc<Sso>,
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn create_session(
        &self,
        request: Request<proto::CreateSessionRequest>,
    ) -> Reply<proto::CreateSessionResponse> {
        let message = request.into_inner();
        let client = convert::client(message.current_app, message.remote_addr, message.user_agent);
        let (ust, session) = self.sso.create_session(client).await?;
        Ok(Response::new(proto::CreateSessionResponse {
            ust,
            session: Some(session.into()),
        }))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Reply<proto::GetSessionResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let client = convert::client(message.current_app, message.remote_addr, String::new());
        let session = self
            .sso
            .get_session(&caller, &message.target_ust, &client)
            .await?;
        Ok(Response::new(proto::GetSessionResponse {
            session: Some(session.into()),
        }))
    }

    async fn verify_session(
        &self,
        request: Request<proto::VerifySessionRequest>,
    ) -> Reply<proto::VerifySessionResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let client = convert::client(message.current_app, message.remote_addr, String::new());
        let session = self
            .sso
            .verify_session(&caller, &message.target_ust, &client)
            .await?;
        Ok(Response::new(proto::VerifySessionResponse {
            valid: session.is_some(),
            session: session.map(Into::into),
        }))
    }

    async fn get_current_session(
        &self,
        request: Request<proto::GetCurrentSessionRequest>,
    ) -> Reply<proto::GetCurrentSessionResponse> {
        let caller = caller(&request)?;
        let (session, user) = self.sso.current_session(&caller);
        Ok(Response::new(proto::GetCurrentSessionResponse {
            session: Some(session.into()),
            user: user.map(Into::into),
        }))
    }

    async fn revoke_other_sessions(
        &self,
        request: Request<proto::RevokeOtherSessionsRequest>,
    ) -> Reply<proto::RevokeOtherSessionsResponse> {
        let caller = caller(&request)?;
        let deleted = self.sso.revoke_other_sessions(&caller).await?;
        Ok(Response::new(proto::RevokeOtherSessionsResponse {
            deleted_count: convert::count(deleted),
        }))
    }

    async fn renew_session(
        &self,
        request: Request<proto::RenewSessionRequest>,
    ) -> Reply<proto::RenewSessionResponse> {
        let caller = caller(&request)?;
        let session = self.sso.renew_session(&caller).await?;
        Ok(Response::new(proto::RenewSessionResponse {
            session: Some(session.into()),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Reply<proto::ListSessionsResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let user = convert::optional_user_id("user_id", &message.user_id)?;
        let page = PageRequest {
            size: convert::page_size(message.page_size)?,
            token: message.page_token,
        };
        let found = self.sso.list_sessions(&caller, user, page).await?;
        Ok(Response::new(proto::ListSessionsResponse {
            sessions: found.sessions.into_iter().map(Into::into).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn delete_session(
        &self,
        request: Request<proto::DeleteSessionRequest>,
    ) -> Reply<proto::DeleteSessionResponse> {
        let caller = caller(&request)?;
        let id = convert::optional_session_id("session_id", &request.get_ref().session_id)?;
        self.sso.delete_session(&caller, id).await?;
        Ok(Response::new(proto::DeleteSessionResponse {}))
    }

    async fn delete_user_sessions(
        &self,
        request: Request<proto::DeleteUserSessionsRequest>,
    ) -> Reply<proto::DeleteUserSessionsResponse> {
        let caller = caller(&request)?;
        let selector = match request.into_inner().selector {
            Some(Selector::UserId(id)) => SessionSelector::User(convert::user_id("user_id", &id)?),
            Some(Selector::GuestsOnly(true)) => SessionSelector::Guests,
            Some(Selector::All(true)) => SessionSelector::All,
            _ => {
                return Err(ServiceError::invalid(
                    "selector",
                    "exactly one of user_id, guests_only=true or all=true is required",
                )
                .into());
            }
        };
        let deleted = self.sso.delete_sessions(&caller, selector).await?;
        Ok(Response::new(proto::DeleteUserSessionsResponse {
            deleted_count: convert::count(deleted),
        }))
    }

    async fn purge_expired(
        &self,
        request: Request<proto::PurgeExpiredRequest>,
    ) -> Reply<proto::PurgeExpiredResponse> {
        let caller = caller(&request)?;
        let counts = self.sso.purge_expired(&caller).await?;
        Ok(Response::new(proto::PurgeExpiredResponse {
            sessions_deleted: convert::count(counts.sessions),
            attributes_deleted: convert::count(counts.attributes),
        }))
    }
}
