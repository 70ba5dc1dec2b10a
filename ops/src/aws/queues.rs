//! What SQS and CloudWatch say about a queue: its messages by state, its ARN, and the age of
//! its oldest message.

use super::errors::unavailable;
use crate::backend::OpsError;
use crate::resources::queue_name;
use aws_sdk_sqs::types::QueueAttributeName;
use fanout::adapters::aws::describe;
use fanout::adapters::sqs::{QueueCounts, queue_counts};
use std::time::{Duration, SystemTime};

/// How far back the age of the oldest job is looked for in CloudWatch.
const AGE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Visible, in flight (not visible) and delayed messages of a queue.
pub(super) async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts, OpsError> {
    queue_counts(sqs, url)
        .await
        .map_err(|e| unavailable(&format!("could not read the depths of {url}"), &e))
}

/// The queue's ARN.
pub(super) async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, OpsError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| unavailable(&format!("could not read the ARN of {url}"), &e))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| OpsError::Unavailable(format!("SQS gave no ARN for {url}")))
}

/// SQS's `ApproximateAgeOfOldestMessage` for the queue, its latest datapoint in CloudWatch,
/// in ms; `Err` says why there is none.
pub(super) async fn oldest_age_ms(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    queue_url: &str,
) -> Result<u64, String> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let name = queue_name(queue_url)
        .ok_or_else(|| format!("no queue name in the queue URL {queue_url}"))?;
    let now = SystemTime::now();
    let output = cloudwatch
        .get_metric_statistics()
        .namespace("AWS/SQS")
        .metric_name("ApproximateAgeOfOldestMessage")
        .dimensions(Dimension::builder().name("QueueName").value(name).build())
        .start_time(DateTime::from(now - AGE_WINDOW))
        .end_time(DateTime::from(now))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CloudWatch did not give ApproximateAgeOfOldestMessage: {}",
                describe(&e)
            )
        })?;
    output
        .datapoints()
        .iter()
        .filter_map(|point| Some((point.timestamp()?.secs(), point.maximum()?)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, seconds)| (seconds.max(0.0) * 1000.0) as u64)
        .ok_or_else(|| {
            format!(
                "CloudWatch has no ApproximateAgeOfOldestMessage for {name} in the last {} \
                 minutes (SQS sends none for a queue idle for hours)",
                AGE_WINDOW.as_secs() / 60
            )
        })
}
