//! Every job record through `Job::parse` and the worker's `Engine::run_batch` on the in-memory
//! adapters: each record ends processed, dead-lettered with a reason, or reported for
//! redelivery, never silently dropped, and what the worker hands back is a job it accepts.

use crate::frames::client_frames;
use crate::job_corpus::job_corpus;
use crate::support::{
    ENDPOINT, LOBBY, ROOM_A, SENDER, Tally, caught, describe, panic_message, report, seeded,
};
use fanout::adapters::memory::{MemoryGateway, MemoryProgress, MemoryQueue, MemoryStore};
use fanout::domain::{Connection, Job, RoomName, Target};
use fanout::engine::{BatchItem, BatchReport, Engine, EngineConfig};
use fanout::ports::{ConnectionStore, PostError};
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinError;
use tokio::time::Instant;

/// A worker on the in-memory adapters, with a store of a few rooms: small pages, a member
/// whose posts keep failing (so retries and the retry budget run) and one that is gone.
struct Worker {
    queue: Arc<MemoryQueue>,
    progress: Arc<MemoryProgress>,
    engine: Arc<Engine>,
}

async fn worker(scan_segments: u32) -> Worker {
    let store = Arc::new(MemoryStore::with_page_size(3));
    for (room, members) in [
        ("lobby", LOBBY),
        ("room-a", ROOM_A),
        ("general", &[SENDER][..]),
    ] {
        for id in members {
            store
                .put(&Connection::in_room(
                    (*id).to_owned(),
                    RoomName::parse(room).unwrap(),
                    0,
                    0,
                ))
                .await
                .unwrap();
        }
    }
    let gateway = Arc::new(MemoryGateway::new());
    gateway.mark_gone("m-gone");
    gateway.script("m-flaky", std::iter::repeat_n(PostError::Server(503), 400));
    let queue = Arc::new(MemoryQueue::new());
    let progress = Arc::new(MemoryProgress::new());
    let engine = Engine::new(
        store,
        gateway,
        queue.clone(),
        progress.clone(),
        EngineConfig {
            concurrency: 8,
            scan_segments,
            ..EngineConfig::default()
        },
        ENDPOINT,
    );
    Worker {
        queue,
        progress,
        engine: Arc::new(engine),
    }
}

/// Runs a batch on a task of its own, so that a panic is caught, with 30 seconds to go: how
/// the task ended, and the deadline it had.
async fn spawn_batch(
    engine: Arc<Engine>,
    items: Vec<BatchItem>,
) -> (Result<BatchReport, JoinError>, Instant) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = tokio::spawn(async move { engine.run_batch(items, deadline).await });
    (run.await, deadline)
}

/// The panic message if running this one record in a batch of its own panics.
async fn panics_alone(body: &str) -> Option<String> {
    let item = BatchItem {
        message_id: "alone".into(),
        body: body.to_owned(),
        ..BatchItem::default()
    };
    match spawn_batch(worker(1).await.engine, vec![item]).await {
        (Err(error), _) if error.is_panic() => Some(panic_message(&*error.into_panic())),
        _ => None,
    }
}

/// Where the records of a batch ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Buckets {
    processed: usize,
    dead_lettered: usize,
    failed: usize,
}

/// Runs one batch and sorts each record into exactly one bucket; whatever fits none, or a
/// panic, is a finding. Returns the jobs the worker handed back (continuations, retries).
async fn run_batch(
    worker: &Worker,
    records: &[(&'static str, String)],
    receive_counts: &[u32],
    buckets: &mut Buckets,
    findings: &mut Vec<String>,
) -> Vec<String> {
    let items: Vec<BatchItem> = records
        .iter()
        .enumerate()
        .map(|(i, (_, body))| BatchItem {
            message_id: format!("record-{i}"),
            body: body.clone(),
            receipt_handle: Some(format!("receipt-{i}")),
            receive_count: receive_counts[i % receive_counts.len()],
            group: None,
        })
        .collect();
    let letters_before = worker.queue.dead_letters().len();
    let report = match spawn_batch(worker.engine.clone(), items).await {
        (Ok(report), deadline) => {
            if Instant::now() > deadline {
                findings.push("run_batch returned after its deadline".into());
            }
            report
        }
        (Err(error), _) => {
            let why = if error.is_panic() {
                format!("PANIC {}", panic_message(&*error.into_panic()))
            } else {
                error.to_string()
            };
            // Which of its records does it alone?
            let mut culprits = Vec::new();
            for (kind, body) in records {
                if let Some(panic) = panics_alone(body).await {
                    culprits.push(format!("{panic} on {}", describe(kind, body)));
                }
            }
            findings.push(format!(
                "run_batch {why}: {} records of the batch lost; alone, these panic: {culprits:#?}",
                records.len()
            ));
            return Vec::new();
        }
    };

    let failed: HashSet<&str> = report
        .failed_message_ids
        .iter()
        .map(String::as_str)
        .collect();
    let mut dead = worker.queue.dead_letters().split_off(letters_before);
    let dead_total = dead.len();
    let mut batch = Buckets::default();
    for (i, (kind, body)) in records.iter().enumerate() {
        let parsed = Job::parse(body);
        if failed.contains(format!("record-{i}").as_str()) {
            batch.failed += 1;
            continue;
        }
        // An invalid body is parked as it came; a valid one that can never go out (its frame
        // is too large) as the job it parsed to.
        let parked_as = match &parsed {
            Ok(job) => job.to_json(),
            Err(_) => body.clone(),
        };
        if let Some(at) = dead.iter().position(|d| d.body == parked_as) {
            let letter = dead.remove(at);
            if letter.reason.trim().is_empty() {
                findings.push(format!(
                    "dead-lettered without a reason: {}",
                    describe(kind, body)
                ));
            }
            batch.dead_lettered += 1;
            continue;
        }
        match parsed {
            Ok(job) => {
                let finished = worker
                    .progress
                    .checkpoint(&job.progress_key())
                    .is_some_and(|checkpoint| checkpoint.finished);
                if finished {
                    batch.processed += 1;
                } else {
                    findings.push(format!(
                        "silently dropped (not failed, not dead-lettered, not finished): {}",
                        describe(kind, body)
                    ));
                }
            }
            Err(error) => findings.push(format!(
                "silently dropped an invalid job ({error}): {}",
                describe(kind, body)
            )),
        }
    }
    if batch.processed + batch.dead_lettered + batch.failed != records.len() {
        findings.push(format!(
            "{batch:?} do not add up to the batch's {} records",
            records.len()
        ));
    }
    if report.stats.failed_jobs != batch.failed as u64 {
        findings.push(format!(
            "stats.failed_jobs = {} but {} records were reported",
            report.stats.failed_jobs, batch.failed
        ));
    }
    if report.stats.dead_lettered != dead_total as u64 {
        findings.push(format!(
            "stats.dead_lettered = {} but {dead_total} dead letters",
            report.stats.dead_lettered
        ));
    }
    // Dead letters of no record: deliveries given up past the retry budget, as jobs of ids.
    for letter in dead {
        let ok = Job::parse(&letter.body)
            .is_ok_and(|job| matches!(job.target, Target::Connections { .. }))
            && !letter.reason.trim().is_empty();
        if !ok {
            findings.push(format!(
                "a dead letter of no record: {} ({})",
                describe("dead letter", &letter.body),
                letter.reason
            ));
        }
    }
    buckets.processed += batch.processed;
    buckets.dead_lettered += batch.dead_lettered;
    buckets.failed += batch.failed;

    // What the worker hands back is a valid job, or the rest of a job is lost.
    let mut handed_back = Vec::new();
    for job in worker.queue.drain() {
        let body = job.to_json();
        if let Err(error) = Job::parse(&body) {
            findings.push(format!(
                "handed back a job the worker refuses ({error}): {}",
                describe("handed back", &body)
            ));
        }
        handed_back.push(body);
    }
    handed_back
}

#[tokio::test(start_paused = true)]
async fn every_job_record_is_processed_dead_lettered_or_reported() {
    let mut rng = seeded(2);
    let mut tally = Tally::default();
    let mut findings = Vec::new();

    // Job::parse alone: an answer for every body.
    let corpus = job_corpus(&mut rng);
    for input in &corpus {
        if let Err(panic) = caught(|| Job::parse(&input.body)) {
            findings.push(format!(
                "Job::parse PANIC {panic}: {}",
                describe(input.kind, &input.body)
            ));
        }
    }

    // What sendmessage acked, through the worker too.
    let mut records: Vec<(&'static str, String)> = corpus
        .into_iter()
        .map(|input| (input.kind, input.body))
        .collect();
    let mut sent = Vec::new();
    let acked = client_frames(&mut Tally::default(), &mut sent, true).await;
    assert!(sent.is_empty(), "{sent:#?}");
    records.extend(acked.into_iter().map(|body| ("from_sendmessage", body)));
    records.shuffle(&mut rng);
    // Some records twice in a row, so mostly in one batch: the second run finds the first's
    // progress record (busy: reported; finished: nothing to do).
    for i in (0..20).map(|i| i * 37) {
        let again = records[i].clone();
        records.insert(i + 1, again);
    }

    let receive_counts = [1, 0, 2, 1_000, u32::MAX];
    let mut buckets = Buckets::default();
    let mut children = Buckets::default();
    let mut rest = &records[..];
    let mut batches = 0;
    while !rest.is_empty() {
        let size = rng.random_range(1..=10).min(rest.len());
        let (batch, tail) = rest.split_at(size);
        rest = tail;
        batches += 1;
        for (kind, _) in batch {
            tally.add(kind);
        }
        let worker = worker(if batches % 3 == 0 { 3 } else { 1 }).await;
        let handed_back =
            run_batch(&worker, batch, &receive_counts, &mut buckets, &mut findings).await;
        // One more round: what the worker handed back goes through it again.
        if !handed_back.is_empty() {
            let again: Vec<(&'static str, String)> = handed_back
                .into_iter()
                .map(|body| ("handed_back", body))
                .collect();
            run_batch(&worker, &again, &[1], &mut children, &mut findings).await;
        }
    }
    let total = buckets.processed + buckets.dead_lettered + buckets.failed;
    println!(
        "jobs: {} records in {batches} batches: {buckets:?}; handed-back jobs run again: {children:?}",
        records.len()
    );
    if total != records.len() {
        findings.push(format!(
            "{total} records in a bucket of {}: every record must be in exactly one",
            records.len()
        ));
    }
    assert!(tally.total() >= 1_000, "only {} jobs", tally.total());
    report("job records", &tally, &findings);
}

/// A job whose deliveries fail transiently and whose `retrySince` is i64::MIN (once an
/// overflow that panicked the batch). Expected: the batch returns, the record is processed
/// and, the retry budget long spent, the failed delivery goes to the dead-letter queue.
#[tokio::test(start_paused = true)]
async fn a_retry_since_in_the_far_past_does_not_panic_the_batch() {
    let body = format!(
        "{{\"v\":1,\"id\":\"far-past\",\"target\":{{\"connections\":[\"m-flaky\"]}},\
         \"payload\":1,\"sentAt\":1795780800123,\"retrySince\":{}}}",
        i64::MIN
    );
    assert!(Job::parse(&body).is_ok());
    let worker = worker(1).await;
    let mut buckets = Buckets::default();
    let mut findings = Vec::new();
    run_batch(
        &worker,
        &[("number", body)],
        &[1],
        &mut buckets,
        &mut findings,
    )
    .await;
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(buckets.processed, 1);
    let dead = worker.queue.dead_letters();
    assert_eq!(dead.len(), 1, "the budget is spent: {dead:?}");
    assert!(dead[0].body.contains("m-flaky"));
}
