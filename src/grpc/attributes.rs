//! `sso.v1.AttributeService`: thin handlers over the service layer.

use std::sync::Arc;

use tonic::{Request, Response};

use super::{Reply, caller, convert};
use crate::{
    proto::{self, attribute_service_server::AttributeService},
    service::{AttributeWrite, ServiceError, Sso, WriteDefaults},
};

pub struct AttributeApi {
    pub sso: Arc<Sso>,
}

#[tonic::async_trait]
impl AttributeService for AttributeApi {
    async fn set_attribute(
        &self,
        request: Request<proto::SetAttributeRequest>,
    ) -> Reply<proto::SetAttributeResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let write = AttributeWrite {
            field: String::new(),
            name: message.name,
            value: convert::required_json("value", message.value)?,
            expiration: None,
            encrypt: None,
        };
        // The request's own expiration and encryption are the write's defaults, so that a
        // refusal names the request's `expiration` field.
        let defaults = WriteDefaults {
            expiration: convert::duration("expiration", message.expiration)?,
            encrypt: message.encrypt,
        };
        let attribute = self
            .sso
            .set_attributes(&caller, owner, vec![write], defaults)
            .await?
            .pop()
            .ok_or_else(|| ServiceError::Internal("upsert returned no row".into()))?;
        Ok(Response::new(proto::SetAttributeResponse {
            attribute: Some(attribute.into()),
        }))
    }

    async fn set_attributes(
        &self,
        request: Request<proto::SetAttributesRequest>,
    ) -> Reply<proto::SetAttributesResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let defaults = WriteDefaults {
            expiration: convert::duration("expiration", message.expiration)?,
            encrypt: message.encrypt,
        };
        let writes = message
            .attributes
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let field = format!("attributes[{index}]");
                Ok(AttributeWrite {
                    name: item.name,
                    value: convert::required_json(&format!("{field}.value"), item.value)?,
                    expiration: convert::duration(&format!("{field}.expiration"), item.expiration)?,
                    encrypt: item.encrypt,
                    field,
                })
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let attributes = self
            .sso
            .set_attributes(&caller, owner, writes, defaults)
            .await?;
        Ok(Response::new(proto::SetAttributesResponse {
            attributes: attributes.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_attribute(
        &self,
        request: Request<proto::GetAttributeRequest>,
    ) -> Reply<proto::GetAttributeResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let attribute = self.sso.get_attribute(&caller, owner, message.name).await?;
        Ok(Response::new(proto::GetAttributeResponse {
            attribute: Some(attribute.into()),
        }))
    }

    async fn get_attributes(
        &self,
        request: Request<proto::GetAttributesRequest>,
    ) -> Reply<proto::GetAttributesResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let names = (!message.names.is_empty()).then_some(message.names.as_slice());
        let attributes = self.sso.get_attributes(&caller, owner, names).await?;
        Ok(Response::new(proto::GetAttributesResponse {
            attributes: attributes
                .into_iter()
                .map(|attribute| (attribute.name.clone(), attribute.into()))
                .collect(),
        }))
    }

    async fn list_attribute_names(
        &self,
        request: Request<proto::ListAttributeNamesRequest>,
    ) -> Reply<proto::ListAttributeNamesResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let names = self.sso.attribute_names(&caller, owner, None).await?;
        Ok(Response::new(proto::ListAttributeNamesResponse { names }))
    }

    async fn attribute_exists(
        &self,
        request: Request<proto::AttributeExistsRequest>,
    ) -> Reply<proto::AttributeExistsResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let found = self
            .sso
            .attribute_names(&caller, owner, Some(&[message.name]))
            .await?;
        Ok(Response::new(proto::AttributeExistsResponse {
            exists: !found.is_empty(),
        }))
    }

    async fn attributes_exist(
        &self,
        request: Request<proto::AttributesExistRequest>,
    ) -> Reply<proto::AttributesExistResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let found = self
            .sso
            .attribute_names(&caller, owner, Some(&message.names))
            .await?;
        let exists = message
            .names
            .into_iter()
            .map(|name| {
                let present = found.contains(&name);
                (name, present)
            })
            .collect();
        Ok(Response::new(proto::AttributesExistResponse { exists }))
    }

    async fn delete_attribute(
        &self,
        request: Request<proto::DeleteAttributeRequest>,
    ) -> Reply<proto::DeleteAttributeResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let deleted = self
            .sso
            .delete_attributes(&caller, owner, &[message.name])
            .await?;
        Ok(Response::new(proto::DeleteAttributeResponse {
            deleted: deleted > 0,
        }))
    }

    async fn delete_attributes(
        &self,
        request: Request<proto::DeleteAttributesRequest>,
    ) -> Reply<proto::DeleteAttributesResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let deleted = self
            .sso
            .delete_attributes(&caller, owner, &message.names)
            .await?;
        Ok(Response::new(proto::DeleteAttributesResponse {
            deleted_count: convert::count(deleted),
        }))
    }

    async fn set_attribute_expiry(
        &self,
        request: Request<proto::SetAttributeExpiryRequest>,
    ) -> Reply<proto::SetAttributeExpiryResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let owner = convert::owner(message.scope, &message.owner_id)?;
        let expiration = convert::duration("expiration", message.expiration)?;
        let attribute = self
            .sso
            .set_attribute_expiry(&caller, owner, &message.name, expiration)
            .await?;
        Ok(Response::new(proto::SetAttributeExpiryResponse {
            attribute: Some(attribute.into()),
        }))
    }
}
