//! Attributes in memory.

use std::{collections::HashSet, time::SystemTime};

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::{
    domain::{
        DeleteAttributes, NewAttribute, Owner, SetAttributeExpiry, SetAttributes, StoredAttribute,
        Write,
    },
    store::{AttributeStore, StoreError, StoreResult, check_owner_limits, is_live},
};

impl State {
    fn owner_exists(&self, owner: Owner, now: SystemTime) -> StoreResult<()> {
        match owner {
            Owner::Session(id) if self.live_session(id, now).is_none() => {
                Err(StoreError::SessionNotFound)
            }
            Owner::User(id) if !self.users.contains_key(&id) => Err(StoreError::UserNotFound),
            _ => Ok(()),
        }
    }

    /// Upserts into an owner's map after checking the per-owner limits (count and bytes of
    /// live values) against the result, under the store's lock.
    pub(super) fn upsert_attributes(
        &mut self,
        owner: Owner,
        items: Vec<NewAttribute>,
        max_per_owner: usize,
        max_bytes_per_owner: usize,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let map = self.attributes.entry(owner).or_default();
        let replaced: HashSet<&str> = items.iter().map(|item| item.name.as_str()).collect();
        let (others, other_bytes) = map
            .values()
            .filter(|attribute| {
                is_live(attribute.expires_at, now) && !replaced.contains(attribute.name.as_str())
            })
            .fold((0, 0), |(count, bytes), attribute| {
                (count + 1, bytes + attribute.value.stored_len())
            });
        let bytes_after = other_bytes
            + items
                .iter()
                .map(|item| item.value.stored_len())
                .sum::<usize>();
        check_owner_limits(
            others + items.len(),
            bytes_after,
            max_per_owner,
            max_bytes_per_owner,
        )?;
        let written = items
            .into_iter()
            .map(|item| {
                let created_at = map
                    .get(&item.name)
                    .filter(|old| is_live(old.expires_at, now))
                    .map_or(now, |old| old.created_at);
                let attribute = StoredAttribute {
                    name: item.name,
                    value: item.value,
                    created_at,
                    modified_at: now,
                    expires_at: item.expires_at,
                };
                map.insert(attribute.name.clone(), attribute.clone());
                attribute
            })
            .collect();
        Ok(written)
    }

    fn live_attributes<'a>(
        &'a self,
        owner: Owner,
        names: Option<&'a [String]>,
        now: SystemTime,
    ) -> impl Iterator<Item = &'a StoredAttribute> + 'a {
        self.attributes
            .get(&owner)
            .into_iter()
            .flat_map(|map| map.values())
            .filter(move |attribute| is_live(attribute.expires_at, now))
            .filter(move |attribute| names.is_none_or(|names| names.contains(&attribute.name)))
    }
}

#[async_trait]
impl AttributeStore for MemoryStore {
    async fn set_attributes(
        &self,
        write: Write<SetAttributes>,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributes {
                    owner,
                    items,
                    max_per_owner,
                    max_bytes_per_owner,
                },
            ..
        } = write;
        let mut state = self.lock()?;
        state.owner_exists(owner, now)?;
        state.upsert_attributes(owner, items, max_per_owner, max_bytes_per_owner, now)
    }

    async fn get_attributes(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let state = self.lock()?;
        Ok(state.live_attributes(owner, names, now).cloned().collect())
    }

    async fn attribute_names(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<String>> {
        let state = self.lock()?;
        Ok(state
            .live_attributes(owner, names, now)
            .map(|attribute| attribute.name.clone())
            .collect())
    }

    async fn delete_attributes(&self, write: Write<DeleteAttributes>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteAttributes { owner, names },
            ..
        } = write;
        let mut state = self.lock()?;
        let Some(map) = state.attributes.get_mut(&owner) else {
            return Ok(0);
        };
        Ok(names
            .iter()
            .filter_map(|name| map.remove(name))
            .filter(|attribute| is_live(attribute.expires_at, now))
            .count() as u64)
    }

    async fn set_attribute_expiry(
        &self,
        write: Write<SetAttributeExpiry>,
    ) -> StoreResult<Option<StoredAttribute>> {
        let Write {
            now,
            command:
                SetAttributeExpiry {
                    owner,
                    name,
                    expires_at,
                },
            ..
        } = write;
        let mut state = self.lock()?;
        Ok(state
            .attributes
            .get_mut(&owner)
            .and_then(|map| map.get_mut(&name))
            .filter(|attribute| is_live(attribute.expires_at, now))
            .map(|attribute| {
                attribute.expires_at = expires_at;
                attribute.modified_at = now;
                attribute.clone()
            }))
    }
}
