//! The connection store on DynamoDB: the `connections` table and the `memberships` table.

use super::aws::describe;
use crate::domain::{Allowance, Connection, RoomName, Segment};
use crate::ports::{Allowances, ConnectionStore, Join, Page, StaleDelete, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// The DynamoDB connections table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// `CONNECTIONS_TABLE`.
    pub table: String,
    /// `MEMBERSHIPS_TABLE`: each room's members, keyed by `room` then `connectionId`.
    pub memberships_table: String,
    /// `PAGE_LIMIT`: items per Query/Scan page; unset reads DynamoDB's full 1 MB pages.
    pub page_limit: Option<i32>,
}

/// The connection store on DynamoDB: one item per connection in `connections`
/// (`connectionId` the key; Scan for everyone) and one per connection and room in
/// `memberships` (`room`, then `connectionId`; Query for a room, strongly consistent, so a
/// member whose join returned before a page is read is on it). Cursors are the
/// LastEvaluatedKey as JSON, so a cursor can also be made for any connection id
/// ([`ConnectionStore::cursor_after`]).
pub struct DynamoStore {
    client: Client,
    config: TableConfig,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoStore {
    pub fn new(sdk: &aws_config::SdkConfig, config: TableConfig) -> Self {
        Self {
            client: Client::new(sdk),
            config,
        }
    }

    pub fn from_client(client: Client, config: TableConfig) -> Self {
        Self { client, config }
    }

    /// Creates the tables as Terraform does (on-demand), for local runs and tests; a table
    /// that already exists is fine. Waits until they are ACTIVE.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        self.create(&self.config.table, &["connectionId"]).await?;
        self.create(&self.config.memberships_table, &["room", "connectionId"])
            .await
    }

    /// Creates one table keyed by `key` (the hash key, then the range key, all strings).
    async fn create(&self, table: &str, key: &[&str]) -> Result<(), StoreError> {
        let mut create = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for (position, name) in key.iter().enumerate() {
            let kind = if position == 0 {
                KeyType::Hash
            } else {
                KeyType::Range
            };
            create = create
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(*name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("name and type are set"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*name)
                        .key_type(kind)
                        .build()
                        .expect("name and type are set"),
                );
        }
        if let Err(error) = create.send().await {
            let exists = error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception());
            if !exists {
                return Err(unavailable(error));
            }
        }
        // A new table takes a moment in AWS (none in moto).
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(unavailable)?;
            if described.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become ACTIVE within a minute"
        )))
    }

    fn key(connection_id: &str) -> Item {
        HashMap::from([(
            "connectionId".to_owned(),
            AttributeValue::S(connection_id.to_owned()),
        )])
    }

    fn membership_key(room: &RoomName, connection_id: &str) -> Item {
        HashMap::from([
            ("room".to_owned(), AttributeValue::S(room.to_string())),
            (
                "connectionId".to_owned(),
                AttributeValue::S(connection_id.to_owned()),
            ),
        ])
    }

    async fn put_membership(
        &self,
        connection: &Connection,
        room: &RoomName,
    ) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(connection.membership(room))
            .map_err(|error| StoreError::Malformed(error.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.config.memberships_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_membership(
        &self,
        room: &RoomName,
        connection_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.config.memberships_table)
            .set_key(Some(Self::membership_key(room, connection_id)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes the memberships of a connection whose item a delete returned (`ALL_OLD`), a
    /// few at a time: a connection may be in up to `MAX_ROOMS_PER_CONNECTION` rooms, and the
    /// worker does this on a 410 while the room's posts wait for its lane. Each is tried; one
    /// that fails stays until its TTL (a post to it meanwhile answers 410), and the first
    /// failure is returned.
    async fn delete_memberships(&self, old: Option<Item>) -> Result<(), StoreError> {
        const AT_ONCE: usize = 8;
        let Some(old) = old else { return Ok(()) };
        let Connection {
            connection_id,
            rooms,
            ..
        } = serde_dynamo::from_item(old)
            .map_err(|error| StoreError::Malformed(error.to_string()))?;
        let id = connection_id.as_str();
        let deleted: Vec<Result<(), StoreError>> = futures::stream::iter(rooms)
            .map(move |room| async move { self.delete_membership(&room, id).await })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        deleted.into_iter().collect()
    }
}

pub(super) fn unavailable(error: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(describe(&error))
}

/// A conditional write's outcome: `true` written, `false` its condition did not hold.
pub(super) fn conditional<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

/// A page cursor is DynamoDB's LastEvaluatedKey (string attributes only, since every key
/// attribute here is a string) as a JSON object.
fn encode_cursor(key: Option<Item>) -> Result<Option<String>, StoreError> {
    let Some(key) = key else { return Ok(None) };
    let mut plain = BTreeMap::new();
    for (name, value) in key {
        let AttributeValue::S(text) = value else {
            return Err(StoreError::Malformed(format!(
                "key attribute {name} is not a string"
            )));
        };
        plain.insert(name, text);
    }
    Ok(Some(
        serde_json::to_string(&plain).expect("a map of strings serializes"),
    ))
}

fn decode_cursor(cursor: Option<&str>) -> Result<Option<Item>, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let plain: HashMap<String, String> = serde_json::from_str(cursor)
        .map_err(|error| StoreError::BadCursor(format!("{cursor:?}: {error}")))?;
    Ok(Some(
        plain
            .into_iter()
            .map(|(name, text)| (name, AttributeValue::S(text)))
            .collect(),
    ))
}

fn page(items: Option<Vec<Item>>, last_key: Option<Item>) -> Result<Page, StoreError> {
    let ids = items
        .unwrap_or_default()
        .into_iter()
        .map(|mut item| match item.remove("connectionId") {
            Some(AttributeValue::S(id)) => Ok(id),
            _ => Err(StoreError::Malformed(
                "item without a string connectionId".into(),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(Page {
        ids,
        next: encode_cursor(last_key)?,
    })
}

/// One conditional UpdateItem: the allowance is replaced only if it is still the one the
/// sender read, and only on an item that exists (UpdateItem would otherwise create one).
#[async_trait]
impl Allowances for DynamoStore {
    async fn swap_allowance(
        &self,
        connection_id: &str,
        expected: Option<Allowance>,
        new: Allowance,
    ) -> Result<bool, StoreError> {
        let number = |n: i64| AttributeValue::N(n.to_string());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(connection_id)))
            .update_expression("SET #allowance = :new")
            .expression_attribute_names("#id", "connectionId")
            .expression_attribute_names("#allowance", "allowance")
            .expression_attribute_values(
                ":new",
                AttributeValue::M(HashMap::from([
                    ("milli".to_owned(), number(new.milli)),
                    ("at".to_owned(), number(new.at)),
                ])),
            );
        update = match expected {
            None => update
                .condition_expression("attribute_exists(#id) AND attribute_not_exists(#allowance)"),
            Some(old) => update
                .condition_expression(
                    "attribute_exists(#id) AND #allowance.#milli = :milli AND #allowance.#at = :at",
                )
                .expression_attribute_names("#milli", "milli")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":milli", number(old.milli))
                .expression_attribute_values(":at", number(old.at)),
        };
        conditional(update.send().await)
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put(&self, connection: &Connection) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(connection)
            .map_err(|error| StoreError::Malformed(error.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        for room in &connection.rooms {
            self.put_membership(connection, room).await?;
        }
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(connection_id)))
            // The sender usually connected moments ago.
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output
            .item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|error| StoreError::Malformed(error.to_string()))
            })
            .transpose()
    }

    async fn join(
        &self,
        connection: &Connection,
        room: &RoomName,
        max_rooms: usize,
    ) -> Result<Join, StoreError> {
        let added = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(&connection.connection_id)))
            .update_expression("ADD #rooms :room")
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(#rooms) OR contains(#rooms, :name) OR size(#rooms) < :max)",
            )
            .expression_attribute_names("#id", "connectionId")
            .expression_attribute_names("#rooms", "rooms")
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.to_string()]))
            .expression_attribute_values(":name", AttributeValue::S(room.to_string()))
            .expression_attribute_values(":max", AttributeValue::N(max_rooms.to_string()))
            .send()
            .await;
        if !conditional(added)? {
            // Refused: gone, or full. One read tells which.
            return Ok(match self.get(&connection.connection_id).await? {
                None => Join::NotConnected,
                Some(_) => Join::TooManyRooms,
            });
        }
        self.put_membership(connection, room).await?;
        Ok(Join::Joined)
    }

    async fn leave(&self, connection_id: &str, room: &RoomName) -> Result<(), StoreError> {
        self.delete_membership(room, connection_id).await?;
        let removed = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(connection_id)))
            .update_expression("DELETE #rooms :room")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", "connectionId")
            .expression_attribute_names("#rooms", "rooms")
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.to_string()]))
            .send()
            .await;
        // A connection that is gone has left every room.
        conditional(removed).map(|_| ())
    }

    async fn delete(&self, connection_id: &str) -> Result<(), StoreError> {
        // DeleteItem on a missing key succeeds: deleting twice is fine.
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(connection_id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        self.delete_memberships(deleted.attributes).await
    }

    async fn delete_stale(
        &self,
        connection_id: &str,
        connected_before: i64,
    ) -> Result<StaleDelete, StoreError> {
        // Absent is gone too: the delete of a missing item is a no-op that succeeds.
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(connection_id)))
            .condition_expression("attribute_not_exists(#connectedAt) OR #connectedAt < :before")
            .expression_attribute_names("#connectedAt", "connectedAt")
            .expression_attribute_values(":before", AttributeValue::N(connected_before.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match deleted {
            Ok(output) => {
                self.delete_memberships(output.attributes).await?;
                Ok(StaleDelete::Gone)
            }
            // Its condition failed (it is too young), or the call did.
            Err(error) => {
                conditional::<(), _>(Err(error))?;
                Ok(StaleDelete::TooYoung)
            }
        }
    }

    async fn room_page(
        &self,
        room: &RoomName,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Page, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.config.memberships_table)
            .consistent_read(true)
            .projection_expression("#id")
            .expression_attribute_names("#id", "connectionId")
            .expression_attribute_names("#room", "room")
            .expression_attribute_values(":room", AttributeValue::S(room.to_string()));
        // The sort key is connectionId: a part of a split room reads its range only.
        query = match until {
            Some(until) => query
                .key_condition_expression("#room = :room AND #id <= :until")
                .expression_attribute_values(":until", AttributeValue::S(until.to_owned())),
            None => query.key_condition_expression("#room = :room"),
        };
        let start = decode_cursor(cursor)?;
        // A start at or past the range's end is an empty range. DynamoDB would refuse it ("the
        // provided starting key is outside query boundaries"); the worker's own parts never
        // make one, a producer's job might.
        let started_at = start
            .as_ref()
            .and_then(|key| match key.get("connectionId") {
                Some(AttributeValue::S(id)) => Some(id.as_str()),
                _ => None,
            });
        if let (Some(from), Some(until)) = (started_at, until)
            && from >= until
        {
            return Ok(Page::default());
        }
        let output = query
            .set_limit(self.config.page_limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        page(output.items, output.last_evaluated_key)
    }

    async fn scan_page(&self, segment: Segment, cursor: Option<&str>) -> Result<Page, StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.config.table)
            .projection_expression("connectionId")
            .set_limit(self.config.page_limit)
            .set_exclusive_start_key(decode_cursor(cursor)?);
        if segment.total > 1 {
            scan = scan
                .segment(segment.index as i32)
                .total_segments(segment.total as i32);
        }
        let output = scan.send().await.map_err(unavailable)?;
        page(output.items, output.last_evaluated_key)
    }

    fn cursor_after(&self, room: Option<&RoomName>, connection_id: &str) -> String {
        // The LastEvaluatedKey DynamoDB would have returned with this item last: the
        // connections table's key, or the memberships table's (room, then connectionId).
        let mut key = BTreeMap::from([("connectionId", connection_id.to_owned())]);
        if let Some(room) = room {
            key.insert("room", room.to_string());
        }
        serde_json::to_string(&key).expect("a map of strings serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key: Item = HashMap::from([
            ("connectionId".into(), AttributeValue::S("abc=".into())),
            ("room".into(), AttributeValue::S("lobby".into())),
        ]);
        let cursor = encode_cursor(Some(key.clone())).unwrap().unwrap();
        assert_eq!(decode_cursor(Some(&cursor)).unwrap(), Some(key));
        assert!(matches!(
            decode_cursor(Some("c00042")),
            Err(StoreError::BadCursor(_))
        ));
        assert_eq!(encode_cursor(None).unwrap(), None);
    }
}
