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
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;
use tokio::time::Instant;

/// How long a message read by `dlq list` stays invisible before it is released (it is released
/// at once when the listing ends; this bounds a listing that is interrupted).
const PEEK_VISIBILITY_SECONDS: i32 = 30;
/// How long messages being moved by `dlq redrive --max` stay invisible: enough to send and
/// delete them.
pub(super) const MOVE_VISIBILITY: Duration = Duration::from_secs(60);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY_SECONDS: u64 = 12 * 3600;
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
        let want = (max - seen.len()).min(10);
        let letters = receive_some(sqs, url, want, visibility).await?;
        if letters.is_empty() {
            break;
        }
        for (letter, receipt) in letters {
            // Seen again: only its latest receipt handle releases it.
            match seen.entry(letter.id.clone()) {
                Entry::Occupied(mut known) => known.get_mut().1 = receipt,
                Entry::Vacant(new) => {
                    new.insert((letter, receipt));
                }
            }
        }
        bar.set_position(seen.len() as u64);
    }
    let mut letters: Vec<(DeadLetter, String)> = seen.into_values().collect();
    letters.sort_by(|a, b| (a.0.parked_at_ms, &a.0.id).cmp(&(b.0.parked_at_ms, &b.0.id)));
    Ok(letters)
}

/// One `ReceiveMessage` of up to `want` (at most ten) messages, kept invisible for `visibility`
/// seconds, with their receipt handles, in the order SQS gives them (a FIFO queue's group
/// order). Empty when none is visible: long polling asks every SQS server.
async fn receive_some(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
    visibility: i32,
) -> Result<Vec<(DeadLetter, String)>, OpsError> {
    let output = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(want.clamp(1, 10) as i32)
        .wait_time_seconds(1)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .message_attribute_names("reason")
        .send()
        .await
        .map_err(|e| unavailable("could not read the dead-letter queue", &e))?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(dead_letter)
        .collect())
}

/// Makes messages received for a listing visible again at once (best effort: otherwise they
/// come back after [`PEEK_VISIBILITY_SECONDS`]).
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, receipts: Vec<String>) {
    let _ = set_visibility(sqs, url, &receipts, 0).await;
}

/// Makes the messages of `receipts` invisible for `seconds` from now (0: visible at once);
/// whether SQS did so for every one.
async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipts: &[String],
    seconds: i32,
) -> Result<(), OpsError> {
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        let changed = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| unavailable("could not change a message's visibility", &e))?;
        if let Some(refused) = changed.failed().first() {
            return Err(OpsError::Unavailable(format!(
                "SQS refused to change a message's visibility: {}: {}",
                refused.code(),
                refused.message().unwrap_or("no message")
            )));
        }
    }
    Ok(())
}

/// `redrive --max N`: receive from the dead-letter queue at `dlq`, send to the fan-out queue
/// at `queue`, delete from the dead-letter queue, up to ten at a time, until `max` moved or none
/// is visible. A body that is not a job a worker would run stays, named once with why (at most
/// `max` of them: a DLQ full of them ends the command, not an endless read): the worker would
/// only park it again. Messages being moved are invisible for `hide` (enough to send and delete
/// them). Returns how many moved, and what stays.
pub(super) async fn move_some(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    max: u64,
    hide: Duration,
    progress: &Progress,
) -> Result<(u64, Vec<String>), OpsError> {
    let bar = progress.bar("redriving", Some(max));
    let mut not_jobs = NotJobs::default();
    let moved = move_jobs(sqs, queue, dlq, max, hide, &mut not_jobs, &bar).await;
    // What is not a job was received, not deleted: visible again at once, as a listing leaves
    // what it read, so that `dlq list` and `dlq show` find what this command named.
    release(sqs, dlq, not_jobs.receipts.into_values().collect()).await;
    bar.finish_and_clear();
    moved.map(|moved| (moved, not_jobs.named))
}

/// The bodies a redrive leaves in the dead-letter queue because they are not jobs.
#[derive(Default)]
struct NotJobs {
    /// Each once, with why, in the order they were first received.
    named: Vec<String>,
    /// Each one's latest receipt handle, by message id: to hide it again when it comes back,
    /// and to release it at the end (only the latest handle does).
    receipts: HashMap<String, String>,
}

/// [`move_some`]'s loop, sorting out the bodies that are not jobs into `not_jobs`.
///
/// It ends: every round receives something or ends the loop, and what it receives is a job
/// (moved, and deleted: at most `max` of them), a body not seen before (at most `max`), or one
/// that came back because the run outlasted its invisibility. That one is hidden again for as
/// long as the run has taken so far, so it comes back at most about log2(run / `hide`) times,
/// and once nothing is visible the loop ends. (Ending when a round brought nothing new instead
/// would stop early, with jobs left behind, whenever ten such bodies came back at once.)
async fn move_jobs(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    max: u64,
    hide: Duration,
    not_jobs: &mut NotJobs,
    bar: &indicatif::ProgressBar,
) -> Result<u64, OpsError> {
    let started = Instant::now();
    let mut moved = 0u64;
    while moved < max && (not_jobs.named.len() as u64) < max {
        let want = (max - moved).min(10) as usize;
        let received = receive_some(sqs, dlq, want, visibility_seconds(hide))
            .await
            .map_err(|error| partial(moved, error))?;
        if received.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(received.len());
        let mut back = Vec::new();
        for (letter, receipt) in received {
            if let Some(latest) = not_jobs.receipts.get_mut(&letter.id) {
                latest.clone_from(&receipt);
                back.push(receipt);
                continue;
            }
            match Job::parse(&letter.body) {
                Ok(_) => batch.push((letter, receipt)),
                Err(why) => {
                    not_jobs.named.push(format!("{}: {why}", letter.id));
                    not_jobs.receipts.insert(letter.id, receipt);
                }
            }
        }
        if !back.is_empty() {
            let longer = visibility_seconds(started.elapsed().max(hide));
            set_visibility(sqs, dlq, &back, longer)
                .await
                .map_err(|error| partial(moved, error))?;
        }
        if batch.is_empty() {
            continue;
        }
        let (sent, refused) = send_and_delete(sqs, queue, dlq, &batch)
            .await
            .map_err(|error| partial(moved, error))?;
        moved += sent;
        bar.set_position(moved);
        if let Some(refused) = refused {
            return Err(partial(moved, refused));
        }
    }
    Ok(moved)
}

/// A duration as a visibility timeout: whole seconds, rounded up, at most SQS's 12 hours.
fn visibility_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.min(MAX_VISIBILITY_SECONDS) as i32
}

/// Sends `batch` (jobs received from the dead-letter queue at `dlq`) to the fan-out queue at
/// `queue` and deletes from the dead-letter queue those that were sent: how many moved and why
/// SQS refused the others, if it did; or why none moved.
async fn send_and_delete(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    batch: &[(DeadLetter, String)],
) -> Result<(u64, Option<OpsError>), OpsError> {
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
        .map_err(|e| unavailable("could not send to the fan-out queue", &e))?;
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
                unavailable(
                    "sent to the fan-out queue but could not delete from the dead-letter queue \
                     (they will be there again, and delivered once: their progress records \
                     remember them)",
                    &e,
                )
            })?;
    }
    let refused = (!failed.is_empty()).then(|| {
        OpsError::Unavailable(format!(
            "SQS refused {} of the messages (they stay in the dead-letter queue): {}",
            failed.len(),
            failed.join("; ")
        ))
    });
    Ok((sent_count, refused))
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
