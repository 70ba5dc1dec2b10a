//! The publish endpoint's idempotency keys on DynamoDB, in the history table: a key is the item
//! `room = "#publish/{key}"`, `offset = 0` (no room name has a `#`), with `claimant` (the
//! publish holding it, which fences every write), `leaseUntil` (epoch milliseconds),
//! `expiresAt` (epoch seconds, the table's TTL), and once its message has its place, `job` (the
//! job as queued) and `enqueued`. A conditional write whose condition fails reads the item
//! back: the SDK retries a write whose answer was lost, and the retry finds its own write.

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

    /// The key's record, read strongly consistent.
    async fn read(&self, key: &IdempotencyKey) -> Result<Option<Record>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = got.item else {
            return Ok(None);
        };
        Ok(Some(Record {
            claimant: read_text(&item, "claimant")?.unwrap_or_default(),
            lease_until_ms: read_number(&item, "leaseUntil")?,
            job: read_text(&item, "job")?
                .map(|job| {
                    Job::parse(&job).map_err(|error| {
                        StoreError::Malformed(format!("the job kept under {key:?}: {error}"))
                    })
                })
                .transpose()?,
            enqueued: matches!(item.get("enqueued"), Some(AttributeValue::Bool(true))),
        }))
    }

    /// A conditional update of the key's item that only `claimant`, holding it, may make.
    async fn update_held(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        attribute: &str,
        value: AttributeValue,
    ) -> Result<bool, StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #attr = :value")
            .condition_expression("#claimant = :me")
            .expression_attribute_names("#attr", attribute)
            .expression_attribute_names("#claimant", "claimant")
            .expression_attribute_values(":value", value)
            .expression_attribute_values(":me", AttributeValue::S(claimant.to_owned()))
            .send()
            .await;
        conditional(updated)
    }
}

/// A key's item, read back.
struct Record {
    claimant: String,
    lease_until_ms: i64,
    job: Option<Job>,
    enqueued: bool,
}

#[async_trait]
impl PublishLog for DynamoPublishLog {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
        expires_at: i64,
    ) -> Result<KeyState, StoreError> {
        let mut item = Self::key(key);
        item.insert("claimant".into(), AttributeValue::S(claimant.to_owned()));
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
        Ok(match self.read(key).await? {
            // Gone since (released, or expired and swept): held for a moment, by whoever
            // removed it.
            None => KeyState::Held {
                lease_until_ms: now_ms,
            },
            Some(Record {
                job: Some(job),
                enqueued,
                lease_until_ms,
                ..
            }) => KeyState::Placed {
                job: Box::new(job),
                enqueued,
                lease_until_ms,
            },
            // This claim, which landed before an answer was lost.
            Some(record) if record.claimant == claimant => KeyState::Claimed,
            Some(record) => KeyState::Held {
                lease_until_ms: record.lease_until_ms,
            },
        })
    }

    async fn place(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        job: &Job,
    ) -> Result<bool, StoreError> {
        let placed = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #job = :job, #enqueued = :false")
            .condition_expression("#claimant = :me AND attribute_not_exists(#job)")
            .expression_attribute_names("#job", "job")
            .expression_attribute_names("#enqueued", "enqueued")
            .expression_attribute_names("#claimant", "claimant")
            .expression_attribute_values(":job", AttributeValue::S(job.to_json()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":me", AttributeValue::S(claimant.to_owned()))
            .send()
            .await;
        if conditional(placed)? {
            return Ok(true);
        }
        // Placed by this very call, before an answer was lost?
        Ok(self.read(key).await?.is_some_and(|record| {
            record.claimant == claimant && record.job.is_some_and(|placed| placed.id == job.id)
        }))
    }

    async fn retake(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let retaken = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #claimant = :me, #lease = :lease")
            .condition_expression(
                "attribute_exists(#job) AND #enqueued = :false AND #lease <= :now_ms",
            )
            .expression_attribute_names("#claimant", "claimant")
            .expression_attribute_names("#lease", "leaseUntil")
            .expression_attribute_names("#job", "job")
            .expression_attribute_names("#enqueued", "enqueued")
            .expression_attribute_values(":me", AttributeValue::S(claimant.to_owned()))
            .expression_attribute_values(":lease", number(lease_until_ms))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now_ms", number(now_ms))
            .send()
            .await;
        if conditional(retaken)? {
            return Ok(true);
        }
        Ok(self.read(key).await?.is_some_and(|record| {
            record.claimant == claimant && record.lease_until_ms == lease_until_ms
        }))
    }

    async fn settle(
        &self,
        key: &IdempotencyKey,
        claimant: &str,
        how: Settled,
    ) -> Result<(), StoreError> {
        let (attribute, value) = match how {
            Settled::Enqueued => ("enqueued", AttributeValue::Bool(true)),
            Settled::Unsure => ("leaseUntil", number(0_u64)),
        };
        // Not held any more: another publish took the key over, and settles it itself.
        self.update_held(key, claimant, attribute, value)
            .await
            .map(drop)
    }

    async fn release(&self, key: &IdempotencyKey, claimant: &str) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#claimant = :me")
            .expression_attribute_names("#claimant", "claimant")
            .expression_attribute_values(":me", AttributeValue::S(claimant.to_owned()))
            .send()
            .await;
        conditional(deleted).map(drop)
    }
}
