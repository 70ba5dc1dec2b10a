//! The publish endpoint's idempotency keys on DynamoDB, in the history table: a key is the item
//! `room = "#publish/{key}"`, `offset = 0` (no room name has a `#`), with `leaseUntil` (epoch
//! milliseconds), `expiresAt` (epoch seconds, the table's TTL), and once its message has its
//! place, `job` (the job as queued) and `enqueued`.

use super::dynamodb::{conditional, unavailable};
use super::history_table::{HistoryTableConfig, Item, number, read_number, read_text};
use crate::domain::{IdempotencyKey, Job};
use crate::ports::{KeyState, PublishLog, Settled, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub struct DynamoPublishLog {
    client: Client,
    config: HistoryTableConfig,
}

impl DynamoPublishLog {
    pub fn new(sdk: &aws_config::SdkConfig, config: HistoryTableConfig) -> Self {
        Self {
            client: Client::new(sdk),
            config,
        }
    }

    fn key(key: &IdempotencyKey) -> Item {
        HashMap::from([
            (
                "room".to_owned(),
                AttributeValue::S(format!("#publish/{}", key.as_str())),
            ),
            ("offset".to_owned(), number(0_u64)),
        ])
    }

    /// What a claim that lost found, read strongly consistent: the other publish's claim.
    async fn holder(&self, key: &IdempotencyKey, now_ms: i64) -> Result<KeyState, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        // Gone since (released, or expired and swept): held for a moment, by whoever removed it.
        let Some(item) = got.item else {
            return Ok(KeyState::Held {
                lease_until_ms: now_ms,
            });
        };
        let lease_until_ms = read_number(&item, "leaseUntil")?;
        Ok(match read_text(&item, "job")? {
            None => KeyState::Held { lease_until_ms },
            Some(job) => KeyState::Placed {
                job: Box::new(Job::parse(&job).map_err(|error| {
                    StoreError::Malformed(format!("the job kept under {key:?}: {error}"))
                })?),
                enqueued: matches!(item.get("enqueued"), Some(AttributeValue::Bool(true))),
                lease_until_ms,
            },
        })
    }
}

#[async_trait]
impl PublishLog for DynamoPublishLog {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now_ms: i64,
        lease_until_ms: i64,
        expires_at: i64,
    ) -> Result<KeyState, StoreError> {
        let mut item = Self::key(key);
        item.insert("leaseUntil".into(), number(lease_until_ms));
        item.insert("expiresAt".into(), number(expires_at));
        let put = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#lease) OR #exp <= :now OR (attribute_not_exists(#job) AND #lease <= :now_ms)",
            )
            .expression_attribute_names("#lease", "leaseUntil")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#job", "job")
            .expression_attribute_values(":now", number(now_ms.div_euclid(1000)))
            .expression_attribute_values(":now_ms", number(now_ms))
            .send()
            .await;
        if conditional(put)? {
            return Ok(KeyState::Claimed);
        }
        self.holder(key, now_ms).await
    }

    async fn place(
        &self,
        key: &IdempotencyKey,
        job: &Job,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let placed = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #job = :job, #enqueued = :false")
            .condition_expression("#lease = :mine AND attribute_not_exists(#job)")
            .expression_attribute_names("#job", "job")
            .expression_attribute_names("#enqueued", "enqueued")
            .expression_attribute_names("#lease", "leaseUntil")
            .expression_attribute_values(":job", AttributeValue::S(job.to_json()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":mine", number(lease_until_ms))
            .send()
            .await;
        conditional(placed)
    }

    async fn settle(&self, key: &IdempotencyKey, how: Settled) -> Result<(), StoreError> {
        let (attribute, value) = match how {
            Settled::Enqueued => ("enqueued", AttributeValue::Bool(true)),
            Settled::Unsure => ("leaseUntil", number(0_u64)),
        };
        let settled = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #attr = :value")
            // Never brings back a key that expired or was released.
            .condition_expression("attribute_exists(#job)")
            .expression_attribute_names("#job", "job")
            .expression_attribute_names("#attr", attribute)
            .expression_attribute_values(":value", value)
            .send()
            .await;
        conditional(settled).map(drop)
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
