//! Where connections, rooms' history, jobs and the worker's progress records live: in memory
//! (the embedded default), or DynamoDB and SQS through the real SDKs (moto, or AWS itself).

use crate::options::{BackendKind, MessageOrder, Options};
use crate::queue::{JobSource, LocalQueue, QueueSettings, SqsSource};
use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use fanout::adapters::aws::describe;
use fanout::adapters::dynamodb::DynamoStore;
use fanout::adapters::dynamodb::TableConfig;
use fanout::adapters::history_table::{DynamoHistory, HistoryTableConfig};
use fanout::adapters::memory::{MemoryHistory, MemoryProgress, MemoryPublishLog, MemoryStore};
use fanout::adapters::progress_table::{DynamoProgress, ProgressTableConfig};
use fanout::adapters::publish_log_table::DynamoPublishLog;
use fanout::adapters::sqs::SqsQueue;
use fanout::config::settings;
use fanout::domain::history::HistoryConfig;
use fanout::ports::{Allowances, ConnectionStore, History, JobQueue, ProgressStore, PublishLog};
use std::sync::Arc;

/// The store, both ends of the queue, and the progress records.
pub struct Backend {
    pub store: Arc<dyn ConnectionStore>,
    /// The connections' sending allowances: the same table as `store`.
    pub allowances: Arc<dyn Allowances>,
    /// Rooms' sequences and history (`HISTORY_TABLE` in AWS).
    pub history: Arc<dyn History>,
    /// The publish endpoint's idempotency keys (in the history table in AWS).
    pub publish_keys: Arc<dyn PublishLog>,
    pub queue: Arc<dyn JobQueue>,
    pub source: Arc<dyn JobSource>,
    /// The worker's job progress records (`PROGRESS_TABLE` in AWS).
    pub progress: Arc<dyn ProgressStore>,
    /// The in-memory queue, when that is the queue (tests put raw jobs on it).
    pub local_queue: Option<Arc<LocalQueue>>,
    /// For the start-up banner.
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(String);

/// `auto` resolves to `aws` when any endpoint is configured.
pub fn choose(options: &Options) -> BackendKind {
    match options.backend {
        BackendKind::Auto => {
            let env_endpoint = [
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_DYNAMODB",
                "AWS_ENDPOINT_URL_SQS",
            ]
            .iter()
            .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty()));
            if options.endpoint_url.is_some() || env_endpoint {
                BackendKind::Aws
            } else {
                BackendKind::Memory
            }
        }
        chosen => chosen,
    }
}

pub fn memory(options: &Options, history: &HistoryConfig) -> Backend {
    let fifo = options.ordering == MessageOrder::PerRoom;
    let queue = Arc::new(LocalQueue::new(QueueSettings {
        fifo,
        visibility_timeout: options.visibility_timeout(),
        max_receive_count: options.max_receive_count(),
        max_depth: usize::try_from(options.max_queue_depth).unwrap_or(usize::MAX),
    }));
    let store = Arc::new(match options.page_limit {
        Some(limit) => MemoryStore::with_page_size(limit as usize),
        None => MemoryStore::new(),
    });
    Backend {
        store: store.clone(),
        allowances: store,
        history: Arc::new(MemoryHistory::new(history.size)),
        publish_keys: Arc::new(MemoryPublishLog::default()),
        queue: queue.clone(),
        source: queue.clone(),
        progress: Arc::new(MemoryProgress::new()),
        local_queue: Some(queue),
        description: if fifo {
            "store: memory, queue: memory, FIFO by room".into()
        } else {
            "store: memory, queue: memory".into()
        },
    }
}

/// The SDK configuration for the aws backend: the standard chain, with `--endpoint-url`.
pub async fn sdk_config(options: &Options) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(fanout::adapters::aws::https_client());
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

pub async fn aws(sdk: &SdkConfig, options: &Options) -> Result<Backend, BackendError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let table = TableConfig {
        table: options.table.clone(),
        memberships_table: options.memberships_table(),
        page_limit: options.page_limit.map(|limit| limit as i32),
    };
    let store = DynamoStore::from_client(aws_sdk_dynamodb::Client::new(sdk), table);
    if options.create_resources {
        store.create_table().await.map_err(|error| {
            BackendError(format!("could not create table {}: {error}", options.table))
        })?;
    }
    let progress = DynamoProgress::new(
        sdk,
        ProgressTableConfig {
            table: options.progress_table.clone(),
            ttl: settings::PROGRESS_TTL_SECONDS.default_duration(),
        },
    );
    if options.create_resources {
        progress.create_table().await.map_err(|error| {
            BackendError(format!(
                "could not create table {}: {error}",
                options.progress_table
            ))
        })?;
    }
    let history_table = options.history_table();
    let history = DynamoHistory::new(
        sdk,
        HistoryTableConfig {
            table: history_table.clone(),
        },
    );
    if options.create_resources {
        history.create_table().await.map_err(|error| {
            BackendError(format!("could not create table {history_table}: {error}"))
        })?;
    }
    let (queue_url, dlq_url) = queues(&sqs, options).await?;
    let store = Arc::new(store);
    Ok(Backend {
        store: store.clone(),
        allowances: store,
        history: Arc::new(history),
        publish_keys: Arc::new(DynamoPublishLog::new(
            sdk,
            HistoryTableConfig {
                table: history_table.clone(),
            },
        )),
        queue: Arc::new(
            SqsQueue::from_client(sqs.clone(), queue_url.clone())
                .with_dead_letter_queue(dlq_url.clone()),
        ),
        source: Arc::new(SqsSource::new(sqs, queue_url.clone(), Some(dlq_url))),
        progress: Arc::new(progress),
        local_queue: None,
        description: format!(
            "store: DynamoDB tables {}, {} and {history_table}, queue: SQS {queue_url}",
            options.table, options.progress_table
        ),
    })
}

/// The queue's and dead-letter queue's URLs, creating them (with the redrive policy) if asked.
/// Both must exist: the worker parks what it gives up on in the dead-letter queue. With
/// `--ordering per_room` both are FIFO (a FIFO queue's dead-letter queue must be), as the
/// Terraform stack makes them.
async fn queues(
    client: &aws_sdk_sqs::Client,
    options: &Options,
) -> Result<(String, String), BackendError> {
    let (queue_name, dlq_name) = options.queue_names();
    let fifo = options.ordering == MessageOrder::PerRoom;
    let failed = |what: &str, error: &(dyn std::error::Error + 'static)| {
        BackendError(format!("{what}: {}", describe(error)))
    };
    if options.create_resources {
        let mut create_dlq = client.create_queue().queue_name(&dlq_name);
        if fifo {
            create_dlq = create_dlq.attributes(QueueAttributeName::FifoQueue, "true");
        }
        let dlq_url = create_dlq
            .send()
            .await
            .map_err(|e| failed(&format!("could not create queue {dlq_name}"), &e))?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| failed("could not read the dead-letter queue's ARN", &e))?
            .attributes
            .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": options.max_receive_count(),
        });
        let mut create = client
            .create_queue()
            .queue_name(&queue_name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                options.visibility_timeout().as_secs().to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            // SQS deletes a message past retention without dead-lettering it; the local stack
            // has no retention setting to check against its delays and budget (Terraform
            // does), so it keeps messages as long as SQS allows.
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600");
        if fifo {
            // As terraform/queue.tf: every job is sent with its own deduplication id (two equal
            // bodies are two messages), deduplicated and throttled per room.
            create = create
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
                .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
                .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId");
        }
        let queue_url = create
            .send()
            .await
            .map_err(|e| failed(&format!("could not create queue {queue_name}"), &e))?
            .queue_url
            .unwrap_or_default();
        return Ok((queue_url, dlq_url));
    }
    let url = |name: String| async move {
        client
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map(|output| output.queue_url.unwrap_or_default())
    };
    let queue_url = url(queue_name.clone()).await.map_err(|e| {
        failed(
            &format!("queue {queue_name} not found (pass --create-resources to create it)"),
            &e,
        )
    })?;
    let dlq_url = url(dlq_name.clone()).await.map_err(|e| {
        failed(
            &format!(
                "dead-letter queue {dlq_name} not found (pass --create-resources to create it)"
            ),
            &e,
        )
    })?;
    Ok((queue_url, dlq_url))
}
