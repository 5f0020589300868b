//! `sso.v1.EventService`: thin handlers over the service layer.

use std::sync::Arc;

use futures::StreamExt;
use tonic::{Request, Response};

use super::{Reply, caller, convert};
use crate::{
    proto::{self, event_service_server::EventService},
    service::{EventFilter, PageRequest, Sso, WatchMessage},
};

pub struct EventApi {
    pub sso: Arc<Sso>,
}

type WatchStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<proto::WatchEventsResponse, tonic::Status>> + Send>,
>;

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Reply<proto::ListEventsResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let filter = EventFilter {
            types: convert::event_types("types", &message.types)?,
            user: convert::optional_user_id("user_id", &message.user_id)?,
            session: convert::optional_session_id("session_id", &message.session_id)?,
            start: message
                .start_time
                .map(|time| convert::system_time("start_time", time))
                .transpose()?,
            end: message
                .end_time
                .map(|time| convert::system_time("end_time", time))
                .transpose()?,
        };
        let page = PageRequest {
            size: convert::page_size(message.page_size)?,
            token: message.page_token,
        };
        let found = self.sso.list_events(&caller, filter, page).await?;
        Ok(Response::new(proto::ListEventsResponse {
            events: found.events.into_iter().map(Into::into).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    type WatchEventsStream = WatchStream;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Reply<Self::WatchEventsStream> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let after = convert::optional_event_id("after_event_id", &message.after_event_id)?;
        let types = convert::event_types("types", &message.types)?;
        let events = self.sso.watch_events(&caller, after, types).await?;
        let messages = events.map(|message| {
            message
                .map(|message| proto::WatchEventsResponse {
                    event: match message {
                        WatchMessage::Event(event) => Some((*event).into()),
                        WatchMessage::Heartbeat => None,
                    },
                })
                .map_err(Into::into)
        });
        Ok(Response::new(Box::pin(messages)))
    }
}
