//! Rooms' sequences and history on DynamoDB: the `history` table, keyed by `room` and `offset`.
//! Offset 0 of a room is its sequence (`seq`, the last offset taken; `epoch`; `expiresAt`),
//! taken by an atomic `ADD`; each message is the item at its offset, with its frame's fields.
//! The table's TTL removes both (`expiresAt`); reads filter by it, since the TTL deletes late.
//! The publish endpoint's idempotency keys live here too (`publish_log_table`).

use super::aws::describe;
use super::dynamodb::{conditional, unavailable};
use crate::domain::history::new_epoch;
use crate::domain::{HistoryEntry, Position, RoomName};
use crate::ports::{History, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use serde_json::value::RawValue;
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The history table: `HISTORY_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTableConfig {
    pub table: String,
}

pub struct DynamoHistory {
    client: Client,
    config: HistoryTableConfig,
}

/// The offset under which a room's sequence is kept; messages start at 1.
const SEQUENCE: u64 = 0;

/// How many times taking an offset starts over after racing another restart of an expired
/// sequence: each race is won by someone, so a second round finds a live sequence.
const RESTART_TRIES: usize = 3;

impl DynamoHistory {
    pub fn new(sdk: &aws_config::SdkConfig, config: HistoryTableConfig) -> Self {
        Self {
            client: Client::new(sdk),
            config,
        }
    }

    /// Creates the table as Terraform does (on-demand, `room` and `offset`, TTL on
    /// `expiresAt`), for local runs and tests; a table that already exists is fine.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .expect("name and type are set")
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type are set")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.config.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("room", ScalarAttributeType::S))
            .attribute_definitions(attribute("offset", ScalarAttributeType::N))
            .key_schema(key("room", KeyType::Hash))
            .key_schema(key("offset", KeyType::Range))
            .send()
            .await;
        if let Err(error) = created {
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception())
            {
                return Ok(());
            }
            return Err(StoreError::Unavailable(describe(&error)));
        }
        super::aws::enable_expiry(&self.client, &self.config.table).await;
        Ok(())
    }

    fn key(room: &RoomName, offset: u64) -> Item {
        HashMap::from([
            (
                "room".to_owned(),
                AttributeValue::S(room.as_str().to_owned()),
            ),
            ("offset".to_owned(), number(offset)),
        ])
    }

    /// Starts the room's sequence over at 1 under a fresh epoch, if it is still missing or
    /// expired at `now`: the new epoch, or `None` if another send started it first.
    async fn restart(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<Option<String>, StoreError> {
        let epoch = new_epoch();
        let mut item = Self::key(room, SEQUENCE);
        item.insert("seq".into(), number(1_u64));
        item.insert("epoch".into(), AttributeValue::S(epoch.clone()));
        item.insert("expiresAt".into(), number(keep_until));
        let put = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#seq) OR #exp <= :now")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        Ok(conditional(put)?.then_some(epoch))
    }
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn read_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text
            .parse()
            .map_err(|_| StoreError::Malformed(format!("{name} is not a number: {text:?}"))),
        other => Err(StoreError::Malformed(format!("{name}: {other:?}"))),
    }
}

pub(super) fn read_text(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
        Some(other) => Err(StoreError::Malformed(format!("{name}: {other:?}"))),
    }
}

fn required_text(item: &Item, name: &str) -> Result<String, StoreError> {
    read_text(item, name)?.ok_or_else(|| StoreError::Malformed(format!("{name} is missing")))
}

fn position(item: &Item) -> Result<Position, StoreError> {
    Ok(Position {
        offset: read_number(item, "seq")?,
        epoch: required_text(item, "epoch")?,
    })
}

fn entry(item: &Item) -> Result<HistoryEntry, StoreError> {
    let payload = required_text(item, "payload")?;
    Ok(HistoryEntry {
        offset: read_number(item, "offset")?,
        epoch: required_text(item, "epoch")?,
        id: required_text(item, "id")?,
        payload: RawValue::from_string(payload)
            .map_err(|error| StoreError::Malformed(format!("payload: {error}")))?,
        sender: read_text(item, "sender")?,
        user: read_text(item, "user")?,
        sent_at: read_number(item, "sentAt")?,
        expires_at: read_number(item, "expiresAt")?,
    })
}

#[async_trait]
impl History for DynamoHistory {
    async fn next_position(
        &self,
        room: &RoomName,
        now: i64,
        keep_until: i64,
    ) -> Result<Position, StoreError> {
        for _ in 0..RESTART_TRIES {
            let taken = self
                .client
                .update_item()
                .table_name(&self.config.table)
                .set_key(Some(Self::key(room, SEQUENCE)))
                .update_expression(
                    "ADD #seq :one SET #epoch = if_not_exists(#epoch, :fresh), #exp = :keep",
                )
                .condition_expression("attribute_not_exists(#seq) OR #exp > :now")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#epoch", "epoch")
                .expression_attribute_names("#exp", "expiresAt")
                .expression_attribute_values(":one", number(1_u64))
                .expression_attribute_values(":fresh", AttributeValue::S(new_epoch()))
                .expression_attribute_values(":keep", number(keep_until))
                .expression_attribute_values(":now", number(now))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match taken {
                Ok(output) => return position(&output.attributes.unwrap_or_default()),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Expired: start over under a new epoch, unless another send just did.
                    if let Some(epoch) = self.restart(room, now, keep_until).await? {
                        return Ok(Position { offset: 1, epoch });
                    }
                }
                Err(error) => return Err(StoreError::Unavailable(describe(&error))),
            }
        }
        Err(StoreError::Unavailable(format!(
            "room {room}'s sequence kept restarting under other sends"
        )))
    }

    async fn position(&self, room: &RoomName, now: i64) -> Result<Option<Position>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(room, SEQUENCE)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = got.item else {
            return Ok(None);
        };
        if read_number::<i64>(&item, "expiresAt")? <= now {
            return Ok(None);
        }
        position(&item).map(Some)
    }

    async fn append(&self, room: &RoomName, entry: &HistoryEntry) -> Result<(), StoreError> {
        let mut item = Self::key(room, entry.offset);
        item.insert("epoch".into(), AttributeValue::S(entry.epoch.clone()));
        item.insert("id".into(), AttributeValue::S(entry.id.clone()));
        item.insert(
            "payload".into(),
            AttributeValue::S(entry.payload.get().to_owned()),
        );
        if let Some(sender) = &entry.sender {
            item.insert("sender".into(), AttributeValue::S(sender.clone()));
        }
        if let Some(user) = &entry.user {
            item.insert("user".into(), AttributeValue::S(user.clone()));
        }
        item.insert("sentAt".into(), number(entry.sent_at));
        item.insert("expiresAt".into(), number(entry.expires_at));
        self.client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn remove(&self, room: &RoomName, offset: u64) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(room, offset)))
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn read(
        &self,
        room: &RoomName,
        epoch: &str,
        (from, to): (u64, u64),
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut entries = Vec::new();
        if from > to || limit == 0 {
            return Ok(entries);
        }
        let page_limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut start: Option<Item> = None;
        // Each page moves past what it examined: at most `to - from + 1` items in all.
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.config.table)
                .key_condition_expression("#room = :room AND #offset BETWEEN :from AND :to")
                .filter_expression("#epoch = :epoch AND #exp > :now")
                .expression_attribute_names("#room", "room")
                .expression_attribute_names("#offset", "offset")
                .expression_attribute_names("#epoch", "epoch")
                .expression_attribute_names("#exp", "expiresAt")
                .expression_attribute_values(":room", AttributeValue::S(room.as_str().to_owned()))
                .expression_attribute_values(":from", number(from.max(1)))
                .expression_attribute_values(":to", number(to))
                .expression_attribute_values(":epoch", AttributeValue::S(epoch.to_owned()))
                .expression_attribute_values(":now", number(now_ms.div_euclid(1000)))
                .limit(page_limit)
                // A recovery must see every kept message its top covers: a replica behind would
                // make one look like a send that never landed, and settle it as never sent.
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                entries.push(entry(&item)?);
                if entries.len() == limit {
                    return Ok(entries);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(entries),
            }
        }
    }
}
