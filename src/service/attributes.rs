//! Attributes on a session or a user: ownership, limits, expiry and encryption.

use std::{collections::HashSet, time::Duration, time::SystemTime};

use uuid::Uuid;

use super::{Caller, ServiceError, ServiceResult, Sso, check_text};
use crate::domain::{
    Attribute, DeleteAttributes, NewAttribute, Owner, SessionId, SetAttributeExpiry, SetAttributes,
    StoredAttribute, StoredValue, UserId, Write,
};

/// Whose attributes a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Session,
    User,
}

/// The owner a request names; `id` `None` is the caller's own session or user.
#[derive(Clone, Copy, Debug)]
pub struct OwnerRef {
    pub scope: Scope,
    pub id: Option<Uuid>,
}

/// One attribute to write; its own expiration and encryption, when given, override the
/// write's defaults.
#[derive(Clone)]
pub struct AttributeWrite {
    /// The request field the item came from (empty for a lone write, `attributes[3]` in a
    /// batch), so that a refusal names the item's own field.
    pub field: String,
    pub name: String,
    pub value: serde_json::Value,
    pub expiration: Option<Duration>,
    pub encrypt: Option<bool>,
}

/// The value is about to be encrypted, or might as well be: never shown.
impl std::fmt::Debug for AttributeWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttributeWrite")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("expiration", &self.expiration)
            .field("encrypt", &self.encrypt)
            .finish()
    }
}

/// The defaults of one write: `expiration` `None` is never.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteDefaults {
    pub expiration: Option<Duration>,
    pub encrypt: bool,
}

impl Sso {
    /// Upserts all items in one atomic write: all or none.
    pub async fn set_attributes(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        items: Vec<AttributeWrite>,
        defaults: WriteDefaults,
    ) -> ServiceResult<Vec<Attribute>> {
        let limits = &self.policy.limits;
        if items.is_empty() {
            return Err(ServiceError::invalid(
                "attributes",
                "at least one is required",
            ));
        }
        if items.len() > limits.max_items_per_write {
            return Err(ServiceError::limit(
                "attributes",
                format!("at most {} items in one write", limits.max_items_per_write),
            ));
        }
        let mut seen = HashSet::with_capacity(items.len());
        for item in &items {
            self.check_name_at(&item_field(&item.field, "name"), &item.name)?;
            if !seen.insert(item.name.as_str()) {
                return Err(ServiceError::invalid(
                    "attributes",
                    format!("name {:?} appears twice", item.name),
                ));
            }
        }
        let now = self.clock.now();
        let owner = self.resolve_owner(caller, owner, now).await?;
        let writes = items
            .into_iter()
            .map(|item| self.seal(owner, item, defaults, now))
            .collect::<ServiceResult<Vec<_>>>()?;
        let stored = self
            .stores
            .attributes
            .set_attributes(Write::new(
                now,
                SetAttributes {
                    owner,
                    items: writes,
                    max_per_owner: limits.max_attributes_per_owner,
                    max_bytes_per_owner: limits.max_bytes_per_owner,
                },
            ))
            .await?;
        stored
            .into_iter()
            .map(|attribute| self.unseal(owner, attribute))
            .collect()
    }

    /// Unexpired attributes, decrypted; all of them when `names` is `None`.
    pub async fn get_attributes(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        names: Option<&[String]>,
    ) -> ServiceResult<Vec<Attribute>> {
        if let Some(names) = names {
            self.check_names(names)?;
        }
        let now = self.clock.now();
        let owner = self.resolve_owner(caller, owner, now).await?;
        let stored = self
            .stores
            .attributes
            .get_attributes(owner, names, now)
            .await?;
        stored
            .into_iter()
            .map(|attribute| self.unseal(owner, attribute))
            .collect()
    }

    pub async fn get_attribute(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        name: String,
    ) -> ServiceResult<Attribute> {
        self.get_attributes(caller, owner, Some(&[name]))
            .await?
            .pop()
            .ok_or(ServiceError::AttributeNotFound)
    }

    /// Sorted names of unexpired attributes; only among `names` when given.
    pub async fn attribute_names(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        names: Option<&[String]>,
    ) -> ServiceResult<Vec<String>> {
        if let Some(names) = names {
            self.check_names(names)?;
        }
        let now = self.clock.now();
        let owner = self.resolve_owner(caller, owner, now).await?;
        Ok(self
            .stores
            .attributes
            .attribute_names(owner, names, now)
            .await?)
    }

    /// Deletes the named attributes; counts those that existed. Absent names are no error.
    pub async fn delete_attributes(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        names: &[String],
    ) -> ServiceResult<u64> {
        self.check_names(names)?;
        let now = self.clock.now();
        let owner = self.resolve_owner(caller, owner, now).await?;
        Ok(self
            .stores
            .attributes
            .delete_attributes(Write::new(
                now,
                DeleteAttributes {
                    owner,
                    names: names.to_vec(),
                },
            ))
            .await?)
    }

    pub async fn set_attribute_expiry(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        name: &str,
        expiration: Option<Duration>,
    ) -> ServiceResult<Attribute> {
        self.check_name(name)?;
        let now = self.clock.now();
        let expires_at = expiry_after(now, expiration, "expiration")?;
        let owner = self.resolve_owner(caller, owner, now).await?;
        let stored = self
            .stores
            .attributes
            .set_attribute_expiry(Write::new(
                now,
                SetAttributeExpiry {
                    owner,
                    name: name.to_owned(),
                    expires_at,
                },
            ))
            .await?
            .ok_or(ServiceError::AttributeNotFound)?;
        self.unseal(owner, stored)
    }

    /// Resolves the owner a request names and checks the caller may touch it: its own
    /// session or user, another session of its own user, or anything for a super-user.
    async fn resolve_owner(
        &self,
        caller: &Caller,
        owner: OwnerRef,
        now: SystemTime,
    ) -> ServiceResult<Owner> {
        let caller_user = caller.user.as_ref().map(|user| user.id);
        match (owner.scope, owner.id) {
            (Scope::Session, None) => Ok(Owner::Session(caller.session.id)),
            (Scope::Session, Some(id)) if id == caller.session.id.0 => {
                Ok(Owner::Session(caller.session.id))
            }
            (Scope::Session, Some(id)) => {
                let found = self
                    .stores
                    .sessions
                    .session_by_id(SessionId(id), now)
                    .await?;
                match found {
                    Some(found)
                        if caller.is_super_user()
                            || (caller_user.is_some() && found.session.user_id == caller_user) =>
                    {
                        Ok(Owner::Session(found.session.id))
                    }
                    None if caller.is_super_user() => Err(ServiceError::SessionNotFound),
                    _ => Err(ServiceError::NotOwner),
                }
            }
            (Scope::User, None) => caller_user
                .map(Owner::User)
                .ok_or(ServiceError::UserNotFound),
            (Scope::User, Some(id)) if caller_user == Some(UserId(id)) => {
                Ok(Owner::User(UserId(id)))
            }
            (Scope::User, Some(id)) => {
                if !caller.is_super_user() {
                    return Err(ServiceError::NotOwner);
                }
                match self.stores.users.user_by_id(UserId(id)).await? {
                    Some(_) => Ok(Owner::User(UserId(id))),
                    None => Err(ServiceError::UserNotFound),
                }
            }
        }
    }

    fn check_name(&self, name: &str) -> ServiceResult<()> {
        self.check_name_at("name", name)
    }

    fn check_name_at(&self, field: &str, name: &str) -> ServiceResult<()> {
        if name.is_empty() {
            return Err(ServiceError::invalid(field, "is required"));
        }
        check_text(field, name, self.policy.limits.max_name_chars)
    }

    fn check_names(&self, names: &[String]) -> ServiceResult<()> {
        let max = self.policy.limits.max_items_per_write;
        if names.len() > max {
            return Err(ServiceError::limit("names", format!("at most {max} names")));
        }
        names.iter().try_for_each(|name| self.check_name(name))
    }

    /// Serialises, bounds and, if asked, encrypts one value for its owner.
    fn seal(
        &self,
        owner: Owner,
        item: AttributeWrite,
        defaults: WriteDefaults,
        now: SystemTime,
    ) -> ServiceResult<NewAttribute> {
        let value_field = item_field(&item.field, "value");
        let json = serde_json::to_string(&item.value)
            .map_err(|error| ServiceError::invalid(&value_field, error.to_string()))?;
        let max = self.policy.limits.max_value_bytes;
        if json.len() > max {
            return Err(ServiceError::limit(
                &value_field,
                format!("a value's JSON encoding is at most {max} bytes"),
            ));
        }
        let value = if item.encrypt.unwrap_or(defaults.encrypt) {
            let (key_id, ciphertext) = self
                .keys
                .seal(json.as_bytes(), &owner.associated_data(&item.name))?;
            StoredValue::Sealed { key_id, ciphertext }
        } else {
            StoredValue::Plain(json)
        };
        let expires_at = match item.expiration {
            Some(own) => expiry_after(now, Some(own), &item_field(&item.field, "expiration"))?,
            None => expiry_after(now, defaults.expiration, "expiration")?,
        };
        Ok(NewAttribute {
            expires_at,
            name: item.name,
            value,
        })
    }

    /// Decrypts and parses a stored value.
    fn unseal(&self, owner: Owner, stored: StoredAttribute) -> ServiceResult<Attribute> {
        let (json, encrypted) = match &stored.value {
            StoredValue::Plain(json) => (json.clone().into_bytes(), false),
            StoredValue::Sealed { key_id, ciphertext } => (
                self.keys
                    .open(key_id, ciphertext, &owner.associated_data(&stored.name))?,
                true,
            ),
        };
        let value = serde_json::from_slice(&json).map_err(|error| {
            ServiceError::Internal(format!("stored value is not json: {error}"))
        })?;
        Ok(Attribute {
            name: stored.name,
            value,
            encrypted,
            created_at: stored.created_at,
            modified_at: stored.modified_at,
            expires_at: stored.expires_at,
        })
    }

    /// Re-binds a stored attribute to another owner: ciphertexts are bound to their owner, so
    /// sealed values are decrypted and sealed again.
    pub(super) fn reseal(
        &self,
        stored: StoredAttribute,
        from: Owner,
        to: Owner,
    ) -> ServiceResult<NewAttribute> {
        let value = match &stored.value {
            StoredValue::Plain(json) => StoredValue::Plain(json.clone()),
            StoredValue::Sealed { key_id, ciphertext } => {
                let plain = zeroize::Zeroizing::new(self.keys.open(
                    key_id,
                    ciphertext,
                    &from.associated_data(&stored.name),
                )?);
                let (key_id, ciphertext) =
                    self.keys.seal(&plain, &to.associated_data(&stored.name))?;
                StoredValue::Sealed { key_id, ciphertext }
            }
        };
        Ok(NewAttribute {
            name: stored.name,
            value,
            expires_at: stored.expires_at,
        })
    }
}

/// The longest expiration accepted: far beyond any real use, and far inside what every store
/// and timestamp type can represent.
const MAX_EXPIRATION: Duration = Duration::from_secs(100 * 366 * 24 * 60 * 60);

/// The shortest expiration accepted: a value that expires sooner is gone before its writer
/// could read it, and a stream of them would only churn the store.
const MIN_EXPIRATION: Duration = Duration::from_secs(1);

/// `now + ttl`; a ttl under a second or over a century is refused (absent means never).
fn expiry_after(
    now: SystemTime,
    ttl: Option<Duration>,
    field: &str,
) -> ServiceResult<Option<SystemTime>> {
    match ttl {
        None => Ok(None),
        Some(ttl) if ttl < MIN_EXPIRATION => {
            Err(ServiceError::invalid(field, "must be at least 1 s"))
        }
        Some(ttl) if ttl > MAX_EXPIRATION => {
            Err(ServiceError::invalid(field, "must be at most 100 years"))
        }
        Some(ttl) => Ok(Some(now + ttl)),
    }
}

/// The request field of an item's part: `value` of a lone write, `attributes[3].value` in a
/// batch.
fn item_field(item: &str, part: &str) -> String {
    if item.is_empty() {
        part.to_owned()
    } else {
        format!("{item}.{part}")
    }
}
