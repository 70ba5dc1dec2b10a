//! Job progress records on DynamoDB: one item per job hop, keyed `key`, holding the owner,
//! its lease and the checkpoint as JSON, removed by the table's TTL (`expiresAt`).

use super::aws::describe;
use crate::domain::Checkpoint;
use crate::ports::{Claim, ProgressStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use std::time::Duration;

/// The progress table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressTableConfig {
    /// `PROGRESS_TABLE`.
    pub table: String,
    /// `PROGRESS_TTL_SECONDS`: how long a record outlives its last write. At least as long as
    /// a message can stay in the queue, so a late redelivery still finds it.
    pub ttl: Duration,
}

pub struct DynamoProgress {
    client: Client,
    config: ProgressTableConfig,
}

impl DynamoProgress {
    pub fn new(sdk: &aws_config::SdkConfig, config: ProgressTableConfig) -> Self {
        Self {
            client: Client::new(sdk),
            config,
        }
    }

    /// Creates the table as Terraform does (on-demand, TTL on `expiresAt`), for local runs and
    /// tests; a table that already exists is fine.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let created = self
            .client
            .create_table()
            .table_name(&self.config.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("key")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("key")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("name and type are set"),
            )
            .send()
            .await;
        if let Err(error) = created {
            if !error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception())
            {
                return Err(StoreError::Unavailable(describe(&error)));
            }
            return Ok(());
        }
        super::aws::enable_expiry(&self.client, &self.config.table).await;
        Ok(())
    }

    fn expires_at(&self, now_ms: i64) -> AttributeValue {
        let ttl = i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX);
        AttributeValue::N((now_ms / 1000).saturating_add(ttl).to_string())
    }
}

fn is_conditional(error: &SdkError<UpdateItemError, HttpResponse>) -> bool {
    error
        .as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

#[async_trait]
impl ProgressStore for DynamoProgress {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression(
                "SET #owner = :owner, leaseUntil = :until, expiresAt = :expires, seq = :zero",
            )
            .condition_expression(
                "attribute_not_exists(#key) OR #owner = :owner OR leaseUntil < :now",
            )
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":expires", self.expires_at(now))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match claimed {
            Ok(output) => output.attributes,
            Err(error) if is_conditional(&error) => return Ok(Claim::Busy),
            Err(error) => return Err(StoreError::Unavailable(describe(&error))),
        };
        let checkpoint = match old.as_ref().and_then(|item| item.get("checkpoint")) {
            None => return Ok(Claim::Fresh),
            Some(AttributeValue::S(json)) => serde_json::from_str::<Checkpoint>(json)
                .map_err(|error| StoreError::Malformed(format!("checkpoint of {key}: {error}")))?,
            Some(_) => {
                return Err(StoreError::Malformed(format!(
                    "checkpoint of {key} is not a string"
                )));
            }
        };
        Ok(if checkpoint.finished {
            Claim::Finished
        } else {
            Claim::Resume(Box::new(checkpoint))
        })
    }

    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let saved = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression("SET checkpoint = :checkpoint, expiresAt = :expires, seq = :seq")
            // `<=`: the SDK's retry of a write that landed (its answer lost) writes the same
            // seq again, harmlessly; a run numbers each of its writes anew.
            .condition_expression("#owner = :owner AND (attribute_not_exists(seq) OR seq <= :seq)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":checkpoint", AttributeValue::S(checkpoint.to_json()))
            .expression_attribute_values(
                ":expires",
                self.expires_at(crate::domain::now_epoch_millis()),
            )
            .send()
            .await;
        match saved {
            Ok(_) => Ok(()),
            Err(error) if is_conditional(&error) => Err(StoreError::Conflict(format!(
                "progress record {key} is held by another run, or a later write landed"
            ))),
            Err(error) => Err(StoreError::Unavailable(describe(&error))),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression("SET leaseUntil = :zero")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match released {
            // Taken over already: nothing to give up.
            Err(error) if is_conditional(&error) => Ok(()),
            Err(error) => Err(StoreError::Unavailable(describe(&error))),
            Ok(_) => Ok(()),
        }
    }
}
