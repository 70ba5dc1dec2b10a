//! The dead-letter queue on SQS: reading it without taking (receive, then release), and
//! moving its messages back to the fan-out queue, some by receive, send and delete, or all by
//! `StartMessageMoveTask`.

use super::errors::unavailable;
use super::queues::queue_arn;
use crate::backend::{DeadLetter, OpsError};
use crate::progress::Progress;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use fanout::adapters::aws::describe;
use fanout::adapters::sqs::{is_fifo, order_group_of};
use fanout::domain::Job;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// How long a message read by `dlq list` stays invisible before it is released (it is released
/// at once when the listing ends; this bounds a listing that is interrupted).
const PEEK_VISIBILITY_SECONDS: i32 = 30;
/// How long messages being moved by `dlq redrive --max` stay invisible: enough to send and
/// delete them.
const MOVE_VISIBILITY_SECONDS: i32 = 60;
/// The longest a listing of the dead-letter queue may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// How many messages `dlq show` reads looking for one.
pub(super) const SHOW_MAX: usize = 1_000;
/// How often a move task's progress is read.
const MOVE_POLL: Duration = Duration::from_secs(1);

/// `dlq list`: reads up to `max` messages of the dead-letter queue at `url` (which holds about
/// `total`), oldest first, and makes them visible again.
pub(super) async fn peek(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    total: u64,
    max: usize,
    progress: &Progress,
) -> Result<Vec<DeadLetter>, OpsError> {
    let bar = progress.bar("reading the DLQ", Some(total.min(max as u64)));
    let letters = receive(sqs, url, max, PEEK_VISIBILITY_SECONDS, &bar).await;
    bar.finish_and_clear();
    let letters = letters?;
    let (messages, receipts): (Vec<DeadLetter>, Vec<String>) = letters.into_iter().unzip();
    release(sqs, url, receipts).await;
    Ok(messages)
}

/// Receives up to `max` messages of the dead-letter queue, keeps them invisible for
/// `visibility` seconds, and returns them with their receipt handles (at most one per message
/// id), oldest first.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: usize,
    visibility: i32,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<(DeadLetter, String)>, OpsError> {
    let mut seen: HashMap<String, (DeadLetter, String)> = HashMap::new();
    let give_up = Instant::now() + LIST_TIMEOUT;
    while seen.len() < max && Instant::now() < give_up {
        let want = (max - seen.len()).min(10) as i32;
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(want)
            // Long polling asks every SQS server: an empty answer means none is visible.
            .wait_time_seconds(1)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("reason")
            .send()
            .await
            .map_err(|e| unavailable("could not read the dead-letter queue", &e))?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            if let Some((letter, receipt)) = dead_letter(message) {
                seen.entry(letter.id.clone()).or_insert((letter, receipt));
            }
        }
        bar.set_position(seen.len() as u64);
    }
    let mut letters: Vec<(DeadLetter, String)> = seen.into_values().collect();
    letters.sort_by(|a, b| (a.0.parked_at_ms, &a.0.id).cmp(&(b.0.parked_at_ms, &b.0.id)));
    Ok(letters)
}

/// Makes messages received for a listing visible again at once (best effort: otherwise they
/// come back after [`PEEK_VISIBILITY_SECONDS`]).
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, receipts: Vec<String>) {
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        let _ = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await;
    }
}

/// `redrive --max N`: receive from the dead-letter queue at `dlq`, send to the fan-out queue
/// at `queue`, delete from the dead-letter queue, ten at a time, until `max` moved or there is
/// nothing else. A body that is not a job a worker would run stays, named once with why (at
/// most `max` of them: a DLQ full of them ends the command, not an endless read): the worker
/// would only park it again. Returns how many moved, and those.
pub(super) async fn move_some(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    max: u64,
    progress: &Progress,
) -> Result<(u64, Vec<String>), OpsError> {
    let bar = progress.bar("redriving", Some(max));
    let mut moved = 0u64;
    let mut not_jobs = Vec::new();
    let mut seen_not_jobs = HashSet::new();
    while moved < max && (not_jobs.len() as u64) < max {
        let want = (max - moved).min(10) as usize;
        let batch = receive(
            sqs,
            dlq,
            want,
            MOVE_VISIBILITY_SECONDS,
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .map_err(|error| partial(moved, error))?;
        if batch.is_empty() {
            break;
        }
        let mut jobs = Vec::with_capacity(batch.len());
        let mut new_not_jobs = false;
        for (letter, receipt) in batch {
            match Job::parse(&letter.body) {
                Ok(_) => jobs.push((letter, receipt)),
                Err(why) => {
                    if seen_not_jobs.insert(letter.id.clone()) {
                        not_jobs.push(format!("{}: {why}", letter.id));
                        new_not_jobs = true;
                    }
                }
            }
        }
        let batch = jobs;
        if batch.is_empty() {
            // Only what is not a job came back: go on while it is news, else that is all.
            match new_not_jobs {
                true => continue,
                false => break,
            }
        }
        let fifo = is_fifo(queue);
        let entries = batch
            .iter()
            .enumerate()
            .filter_map(|(i, (letter, _))| {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&letter.body);
                // A FIFO queue (`ordering = "per_room"`) wants a group and a deduplication id:
                // the job's room, after the room's messages sent since; a fresh id, since a
                // redrive is a new send that the original's id must not swallow.
                let entry = match fifo {
                    true => entry
                        .message_group_id(order_group_of(&letter.body))
                        .message_deduplication_id(uuid::Uuid::now_v7().to_string()),
                    false => entry,
                };
                entry.build().ok()
            })
            .collect();
        let sent = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                partial(
                    moved,
                    unavailable("could not send to the fan-out queue", &e),
                )
            })?;
        let failed: Vec<String> = sent
            .failed()
            .iter()
            .map(|entry| {
                format!(
                    "{}: {}",
                    entry.code(),
                    entry.message().unwrap_or("no message")
                )
            })
            .collect();
        let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
            .successful()
            .iter()
            .filter_map(|entry| {
                let (_, receipt) = batch.get(entry.id().parse::<usize>().ok()?)?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(entry.id())
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        let sent_count = deletes.len() as u64;
        if !deletes.is_empty() {
            sqs.delete_message_batch()
                .queue_url(dlq)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| {
                    partial(
                        moved,
                        unavailable(
                            "sent to the fan-out queue but could not delete from the \
                             dead-letter queue (they will be there again, and delivered once: \
                             their progress records remember them)",
                            &e,
                        ),
                    )
                })?;
        }
        moved += sent_count;
        bar.set_position(moved);
        if !failed.is_empty() {
            return Err(partial(
                moved,
                OpsError::Unavailable(format!(
                    "SQS refused {} of the messages (they stay in the dead-letter queue): {}",
                    failed.len(),
                    failed.join("; ")
                )),
            ));
        }
    }
    bar.finish_and_clear();
    Ok((moved, not_jobs))
}

/// `redrive` without `--max`: SQS's `StartMessageMoveTask` from the dead-letter queue at `dlq`
/// to the fan-out queue at `queue`, followed until it ends or `wait` passes.
pub(super) async fn move_all(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    wait: Duration,
    progress: &Progress,
) -> Result<(u64, String), OpsError> {
    let (source, destination) = (queue_arn(sqs, dlq).await?, queue_arn(sqs, queue).await?);
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .send()
        .await
        .map_err(|e| {
            OpsError::Unavailable(format!(
                "StartMessageMoveTask failed: {}; `dlq redrive --max N` moves N messages by \
                 receive, send and delete instead",
                describe(&e)
            ))
        })?;
    let handle = started.task_handle.unwrap_or_default();
    let bar = progress.bar("redriving", None);
    let give_up = Instant::now() + wait;
    loop {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(10)
            .send()
            .await
            .map_err(|e| unavailable("could not follow the move task", &e))?;
        let task = tasks
            .results()
            .iter()
            .find(|task| handle.is_empty() || task.task_handle().is_none_or(|h| h == handle));
        let Some(task) = task else {
            return Err(OpsError::Unavailable(format!(
                "SQS lists no move task {handle} from {source}"
            )));
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved()).unwrap_or(0);
        if let Some(total) = task
            .approximate_number_of_messages_to_move()
            .and_then(|total| u64::try_from(total).ok())
        {
            bar.set_length(total);
        }
        bar.set_position(moved);
        let status = task.status().unwrap_or("UNKNOWN").to_owned();
        match status.as_str() {
            "COMPLETED" => {
                bar.finish_and_clear();
                return Ok((moved, status));
            }
            "FAILED" | "CANCELLED" | "CANCELLING" => {
                return Err(OpsError::Unavailable(format!(
                    "the move task {handle} ended {status} after moving {moved}: {}",
                    task.failure_reason().unwrap_or("no reason given")
                )));
            }
            _ if Instant::now() >= give_up => {
                bar.abandon();
                return Ok((moved, status));
            }
            _ => tokio::time::sleep(MOVE_POLL).await,
        }
    }
}

/// An error after some messages were moved says how many.
fn partial(moved: u64, error: OpsError) -> OpsError {
    if moved == 0 {
        return error;
    }
    OpsError::Unavailable(format!("{error} (after moving {moved})"))
}

/// A received message as a [`DeadLetter`], with its receipt handle.
fn dead_letter(message: Message) -> Option<(DeadLetter, String)> {
    let receipt = message.receipt_handle?;
    let parked_at_ms = message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|sent| sent.parse().ok());
    let reason = message
        .message_attributes
        .as_ref()
        .and_then(|a| a.get("reason"))
        .and_then(|reason| reason.string_value.clone());
    Some((
        DeadLetter {
            id: message.message_id.unwrap_or_default(),
            reason,
            body: message.body.unwrap_or_default(),
            parked_at_ms,
        },
        receipt,
    ))
}
