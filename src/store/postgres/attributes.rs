//! Attributes in PostgreSQL: the same statements on each owner's table.

use std::{collections::HashMap, time::SystemTime};

use async_trait::async_trait;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    PostgresStore, Retry,
    error::from_pg,
    rows::{self, AttributeArrays, to_i64, to_u64},
    sql::{self, attributes::AttributeSql},
};
use crate::{
    domain::{DeleteAttributes, Owner, SetAttributeExpiry, SetAttributes, StoredAttribute, Write},
    store::{AttributeStore, StoreError, StoreResult, check_owner_limits},
};

impl PostgresStore {
    /// Runs an owner's attribute query: `all_sql` (`$1` owner, `$2` now) when `names` is
    /// `None`, else `named_sql` (with `$3` the names).
    async fn owner_rows(
        &self,
        all_sql: &'static str,
        named_sql: &'static str,
        owner_id: Uuid,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<Row>> {
        match names {
            None => self.query(Retry::Safe, all_sql, &[&owner_id, &now]).await,
            Some(names) => {
                self.query(Retry::Safe, named_sql, &[&owner_id, &now, &names])
                    .await
            }
        }
    }
}

fn to_usize(count: i64) -> usize {
    usize::try_from(to_u64(count)).unwrap_or(usize::MAX)
}

fn attribute_sql(owner: Owner) -> (&'static AttributeSql, Uuid) {
    match owner {
        Owner::Session(id) => (&sql::attributes::SESSION_ATTRIBUTES, id.0),
        Owner::User(id) => (&sql::attributes::USER_ATTRIBUTES, id.0),
    }
}

#[async_trait]
impl AttributeStore for PostgresStore {
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
        let (table, owner_id) = attribute_sql(owner);
        let arrays = AttributeArrays::new(&items);
        // Safe: an upsert of the given values; a second run writes and answers the same.
        let rows = self
            .query(
                Retry::Safe,
                table.set,
                &[
                    &owner_id,
                    &now,
                    &arrays.names,
                    &arrays.values,
                    &arrays.key_ids,
                    &arrays.expires_at,
                    &to_i64(max_per_owner),
                    &to_i64(max_bytes_per_owner),
                ],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Err(match owner {
                Owner::Session(_) => StoreError::SessionNotFound,
                Owner::User(_) => StoreError::UserNotFound,
            });
        };
        // The function refused exactly when these figures pass a limit; this says which.
        check_owner_limits(
            to_usize(first.try_get(0).map_err(from_pg)?),
            to_usize(first.try_get(1).map_err(from_pg)?),
            max_per_owner,
            max_bytes_per_owner,
        )?;
        let mut written = HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(attribute) = rows::attribute(row, sql::OWNER_TOTALS.width())? {
                written.insert(attribute.name.clone(), attribute);
            }
        }
        // In the order given, one per item, like the memory store.
        items
            .iter()
            .map(|item| {
                written.get(&item.name).cloned().ok_or_else(|| {
                    StoreError::Internal("upsert returned fewer rows than written".into())
                })
            })
            .collect()
    }

    async fn get_attributes(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<StoredAttribute>> {
        let (table, owner_id) = attribute_sql(owner);
        let rows = self
            .owner_rows(table.select_all, table.select_named, owner_id, names, now)
            .await?;
        rows::attributes(&rows)
    }

    async fn attribute_names(
        &self,
        owner: Owner,
        names: Option<&[String]>,
        now: SystemTime,
    ) -> StoreResult<Vec<String>> {
        let (table, owner_id) = attribute_sql(owner);
        let rows = self
            .owner_rows(table.names_all, table.names_named, owner_id, names, now)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(from_pg))
            .collect()
    }

    async fn delete_attributes(&self, write: Write<DeleteAttributes>) -> StoreResult<u64> {
        let Write {
            now,
            command: DeleteAttributes { owner, names },
            ..
        } = write;
        let (table, owner_id) = attribute_sql(owner);
        // Never: a second run would count nothing deleted.
        let row = self
            .query_one(Retry::Never, table.delete, &[&owner_id, &names, &now])
            .await?;
        Ok(to_u64(row.try_get(0).map_err(from_pg)?))
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
        let (table, owner_id) = attribute_sql(owner);
        // Safe: it sets the given expiry and modification time; a second run sets the same.
        let row = self
            .query_opt(
                Retry::Safe,
                table.set_expiry,
                &[&owner_id, &name, &expires_at, &now],
            )
            .await?;
        match row {
            Some(row) => rows::attribute(&row, 0),
            None => Ok(None),
        }
    }
}
