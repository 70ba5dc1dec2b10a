//! One job run: claim the job's progress record, post from where it stands, checkpoint as it
//! goes, and hand back what is left. Every call to the store, the progress record and the
//! queue is bounded by the batch's deadlines.

use super::batch::{Batch, Engine, JobFailure, Ran};
use super::deliver::{self, Post};
use super::feed::Feed;
use super::handoff::{self, Planned, Policy, by, with_retries};
use super::hold;
use super::stats::FanoutStats;
use crate::config::settings;
use crate::domain::frame::MAX_FRAME_BYTES;
use crate::domain::{Checkpoint, Handoff, Job, Rest, Segment, Split, Target, now_epoch_millis};
use crate::ports::{Claim, Page, QueueError, StoreError};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::timeout_at;
use tracing::{Instrument, debug, warn};

fn progress_failure(error: StoreError) -> JobFailure {
    match error {
        StoreError::Conflict(_) => JobFailure::LeaseLost,
        other => JobFailure::Progress(other),
    }
}

impl Engine {
    pub(super) async fn run_job(
        &self,
        batch: &Batch,
        owner: &str,
        job: Job,
    ) -> Result<Ran, JobFailure> {
        // Posts are signed with the worker's credentials: they go to its own API only, never
        // to a host a message names.
        let endpoint = self.endpoint.clone();
        if let Some(named) = &job.endpoint
            && named.trim_end_matches('/') != endpoint.trim_end_matches('/')
        {
            let shown: String = named.chars().take(200).collect();
            let reason = format!(
                "the job names the management endpoint {shown:?}, not this worker's: \
                 a job cannot send posts elsewhere"
            );
            return self
                .park(batch, &job.to_json(), &reason)
                .await
                .map(Ran::from);
        }
        // Checked once per job, not found post by post as 413s.
        let frame = job.render(self.config.delivery_mode);
        if frame.len() > MAX_FRAME_BYTES {
            let reason = format!(
                "the frame is {} bytes; API Gateway posts at most {MAX_FRAME_BYTES}",
                frame.len()
            );
            return self
                .park(batch, &job.to_json(), &reason)
                .await
                .map(Ran::from);
        }
        let key = job.progress_key();
        let claim = by(
            batch.stop_at,
            self.progress
                .claim(&key, owner, self.now_ms(), batch.lease_until),
        )
        .await
        .map_err(JobFailure::Progress)?;
        let mut stats = FanoutStats::default();
        let mut checkpoint = match claim {
            Claim::Busy => return Err(JobFailure::Busy),
            Claim::Finished => {
                debug!("the job is already done");
                return Ok(stats.into());
            }
            Claim::Fresh => Checkpoint::default(),
            Claim::Resume(checkpoint) => {
                stats.resumed += 1;
                *checkpoint
            }
        };
        // A part of a split room starts at its share of the account's rate (only a job that
        // runs adds its share). Another producer's pace counts within what a split could carry:
        // it cannot hold the batch below the smallest share, nor lift it above the account.
        if let Some(pace) = job.pace {
            let rate = self.config.account_post_rate.max(1);
            let least = (rate / settings::ROOM_SPLIT_WAYS.max as u32).max(1);
            batch.pacer.carry(f64::from(pace.clamp(least, rate)));
        }
        if self.ordered()
            && let Some(held) = checkpoint.handoff.take()
        {
            // The job's last run held it: go on from what it left.
            checkpoint = hold::resume(held, checkpoint.retry);
        }
        let retries = checkpoint.retry.clone().unwrap_or_default();
        if checkpoint.handoff.is_none()
            && let Some(plan) = checkpoint.split
        {
            // An earlier run died splitting the job: enqueue exactly its parts again.
            stats += self.split(batch, owner, &key, &job, plan).await?;
            return Ok(stats.into());
        }
        let handoff = match checkpoint.handoff {
            // An earlier run died handing off: hand off exactly that again.
            Some(handoff) => handoff,
            None if self.splits_scan(&job) => {
                let plan = Split::Scan {
                    total: self.config.scan_segments,
                };
                stats += self.split(batch, owner, &key, &job, plan).await?;
                return Ok(stats.into());
            }
            None => {
                let mut first = None;
                if self.may_split_room(&job, &checkpoint) {
                    match self.fetch_by(batch, &job, None).await {
                        Ok(page) if page.next.is_some() => {
                            stats.pages += 1;
                            let plan = Split::Room {
                                ways: self.config.room_split_ways.max(1),
                            };
                            stats += self.split(batch, owner, &key, &job, plan).await?;
                            return Ok(stats.into());
                        }
                        Ok(page) => first = Some(page),
                        // The run reads it again, and hands the room back if it still fails.
                        Err(error) => warn!(%error, "could not read the room's first page"),
                    }
                }
                let run = Run {
                    batch,
                    owner,
                    key: &key,
                    job: &job,
                };
                let (delivered, handoff) = self
                    .deliver(&run, endpoint, frame, checkpoint, first)
                    .await?;
                stats += delivered;
                handoff
            }
        };
        let ended = if self.ordered() {
            self.hold(batch, owner, &key, &job, handoff, retries).await
        } else {
            self.hand_off(batch, owner, &key, &job, handoff)
                .await
                .map(Ran::from)
        };
        match ended {
            Ok(mut ran) => {
                ran.stats += stats;
                Ok(ran)
            }
            Err(failure) => {
                // SQS redelivers it soon: let that run take the record at once.
                self.release_by(batch, owner, &key).await;
                Err(failure)
            }
        }
    }

    /// Writes what a run ends with (a hand-off, a held job's rest), retried until `finish_by`.
    pub(super) async fn save_by(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), JobFailure> {
        with_retries(
            batch.finish_by,
            self.config.backoff_base,
            StoreError::is_transient,
            || self.save(key, owner, checkpoint),
        )
        .await
        .map_err(progress_failure)
    }

    /// Gives the record up before the lease ends, so that the job's next receive need not wait
    /// for it. Best effort: without it, that receive waits out the lease.
    pub(super) async fn release_by(&self, batch: &Batch, owner: &str, key: &str) {
        let release = self.progress.release(key, owner);
        if let Err(error) = by::<_, StoreError, _>(batch.finish_by, release).await {
            warn!(%error, "could not release the progress record");
        }
    }

    /// Writes a checkpoint, numbered after every earlier write of this process.
    pub(super) fn save<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        checkpoint: &'a Checkpoint,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + 'a {
        let seq = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.progress.save(key, owner, seq, checkpoint)
    }

    /// Reads a page of the job's targets. A `connections` job is its own single page; its
    /// cursor is the last id taken.
    async fn fetch(&self, job: &Job, cursor: Option<&str>) -> Result<Page, StoreError> {
        match &job.target {
            Target::Room(room) => {
                self.store
                    .room_page(room, cursor, job.until.as_deref())
                    .await
            }
            Target::All => {
                self.store
                    .scan_page(job.segment.unwrap_or(Segment::WHOLE), cursor)
                    .await
            }
            Target::Connections { .. } => Ok(Page {
                ids: handoff::ids_after(job, cursor),
                next: None,
            }),
        }
    }

    /// The cursor that goes on right after `id` in the job's targets.
    fn cursor_after(&self, job: &Job, id: &str) -> String {
        match &job.target {
            Target::Room(room) => self.store.cursor_after(Some(room), id),
            Target::All => self.store.cursor_after(None, id),
            Target::Connections { .. } => id.to_owned(),
        }
    }

    /// Posts to the job's targets from `checkpoint` (or from `first`, the first page if it was
    /// read already), until they are all taken or the batch stops; returns what to hand back.
    async fn deliver(
        &self,
        run: &Run<'_>,
        endpoint: Arc<str>,
        frame: Bytes,
        checkpoint: Checkpoint,
        first: Option<Page>,
    ) -> Result<(FanoutStats, Handoff), JobFailure> {
        let (batch, job) = (run.batch, run.job);
        let start = checkpoint.cursor.clone().or_else(|| job.cursor.clone());
        // What every checkpoint of this run carries on besides its position.
        let carried = Checkpoint {
            cursor: start.clone(),
            read_all: checkpoint.read_all,
            retry: checkpoint.retry.clone(),
            ..Checkpoint::default()
        };
        let feed = Arc::new(Feed::new(
            checkpoint.pending,
            self.config.checkpoint_window(),
        ));
        let mut stats = FanoutStats::default();
        let mut failed = false;
        let mut next = None;
        // A held job read to its end has only its pending ids left, whatever the time.
        let mut all_read = checkpoint.read_all;
        if !all_read && !batch.stopping() {
            let page = match first {
                Some(page) => Ok(page),
                None => self.fetch_by(batch, job, start.as_deref()).await,
            };
            match page {
                Ok(page) => {
                    stats.pages += 1;
                    all_read = page.next.is_none();
                    next = page.next;
                    feed.push(page.ids);
                }
                Err(error) => {
                    warn!(%error, "could not read the first page");
                    failed = true;
                }
            }
        }
        let concurrency = self.config.concurrency.max(1);
        let lanes = if all_read {
            concurrency.min(feed.queued())
        } else {
            concurrency
        };
        let post = Arc::new(Post {
            gateway: self.gateway.clone(),
            store: self.store.clone(),
            pacer: batch.pacer.clone(),
            permits: batch.permits.clone(),
            endpoint,
            frame,
            config: self.config.clone(),
            stop_at: batch.stop_at,
            cutoff: batch.cutoff,
        });
        let mut tasks = JoinSet::new();
        for _ in 0..lanes {
            tasks.spawn(deliver::lane(post.clone(), feed.clone()).in_current_span());
        }
        let paging = async {
            let mut stats = FanoutStats::default();
            while let Some(cursor) = next.take() {
                // Fetch the next page while this one is posted; feed it once this one is all
                // taken.
                let prefetch = async {
                    if batch.stopping() {
                        None
                    } else {
                        Some(self.fetch_by(batch, job, Some(&cursor)).await)
                    }
                };
                let (prefetched, drained) = tokio::join!(prefetch, feed.drained(batch.stop_at));
                match prefetched {
                    Some(Ok(page)) if drained && !batch.stopping() => {
                        stats.pages += 1;
                        all_read = page.next.is_none();
                        next = page.next;
                        feed.push(page.ids);
                    }
                    Some(Err(error)) => {
                        warn!(%error, "page read failed mid-job; the rest goes back, later");
                        failed = true;
                        break;
                    }
                    _ => break,
                }
            }
            feed.close();
            // Lanes end by the cutoff on their own; the join is bounded all the same.
            let joined = timeout_at(batch.finish_by, async {
                while let Some(done) = tasks.join_next().await {
                    match done {
                        Ok(lane) => stats += lane,
                        Err(error) => warn!(%error, "delivery lane failed"),
                    }
                }
            })
            .await;
            if joined.is_err() {
                warn!("lanes outlived the cutoff; aborting them");
                tasks.abort_all();
            }
            feed.finish();
            stats
        };
        let (delivered, checkpoints) =
            tokio::join!(paging, self.checkpointer(run, &carried, &feed));
        stats += delivered;
        let checkpoints = checkpoints?;
        stats.checkpoints += checkpoints;
        if stats.delivered > 0 {
            let latency = now_epoch_millis().saturating_sub(job.sent_at.max(0));
            stats.fanout_latency_ms = Some(latency.unsigned_abs());
        }
        let left = feed.leftovers();
        // After a 403 nothing is worth trying at once: it all waits, as a failure does.
        let forbidden = stats.forbidden > 0;
        let mut handoff = Handoff {
            rest: None,
            later: left.later,
            throttled: left.throttled,
            transient: left.transient,
            forbidden,
            planned_at: self.now_ms(),
        };
        // A `connections` job's untaken ids stay in the job, behind a cursor like a room's:
        // handing them back by name could pass DynamoDB's 400 KB item limit in a held record.
        if !(all_read && left.untaken.is_empty()) {
            let cursor = match &left.last_taken {
                Some(id) => Some(self.cursor_after(job, id)),
                None => start,
            };
            handoff.rest = Some(Rest {
                cursor,
                after_failure: failed || forbidden,
            });
        }
        if forbidden {
            let later = std::mem::take(&mut handoff.later);
            handoff.transient.extend(later);
        }
        Ok((stats, handoff))
    }

    async fn fetch_by(
        &self,
        batch: &Batch,
        job: &Job,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        by(batch.stop_at, self.fetch(job, cursor)).await
    }

    /// Writes a checkpoint every half window of takes, so lanes rarely wait for one; returns
    /// how many it wrote, or [`JobFailure::LeaseLost`] if another run took the record.
    async fn checkpointer(
        &self,
        run: &Run<'_>,
        carried: &Checkpoint,
        feed: &Feed,
    ) -> Result<u64, JobFailure> {
        let window = self.config.checkpoint_window();
        let (mut saved, mut written) = (0, 0);
        loop {
            feed.taken_beyond(saved + window / 2).await;
            if feed.finished() || feed.halted() {
                return Ok(written);
            }
            let snapshot = feed.snapshot();
            let checkpoint = Checkpoint {
                cursor: match &snapshot.last_taken {
                    Some(id) => Some(self.cursor_after(run.job, id)),
                    None => carried.cursor.clone(),
                },
                pending: snapshot.pending,
                ..carried.clone()
            };
            let result = with_retries(
                run.batch.cutoff,
                self.config.backoff_base,
                StoreError::is_transient,
                || self.save(run.key, run.owner, &checkpoint),
            )
            .await;
            match result {
                Ok(()) => {
                    saved = snapshot.taken_count;
                    written += 1;
                    feed.allow(saved, window);
                }
                Err(StoreError::Conflict(reason)) => {
                    warn!(%reason, "another run took the job over; stopping");
                    feed.halt();
                    feed.until_finished().await;
                    return Err(JobFailure::LeaseLost);
                }
                Err(error) => {
                    // Lanes wait at the window's end; the deadline ends the run.
                    warn!(%error, "could not write a checkpoint");
                    feed.until_finished().await;
                    return Ok(written);
                }
            }
        }
    }

    /// Writes what the run hands back ahead, enqueues it, and marks the job finished.
    async fn hand_off(
        &self,
        batch: &Batch,
        owner: &str,
        key: &str,
        job: &Job,
        handoff: Handoff,
    ) -> Result<FanoutStats, JobFailure> {
        let mut stats = FanoutStats::default();
        if !handoff.is_empty() {
            let ahead = Checkpoint {
                handoff: Some(handoff.clone()),
                ..Checkpoint::default()
            };
            self.save_by(batch, owner, key, &ahead).await?;
            let policy = Policy {
                // As of when it was planned: a redone hand-off enqueues the same jobs.
                now_ms: match handoff.planned_at {
                    0 => self.now_ms(),
                    at => at,
                },
                retry_budget: self.config.retry_budget,
                retry_delay_base: self.config.retry_delay_base,
            };
            for planned in handoff::plan(job, &handoff, &policy) {
                match planned {
                    Planned::Enqueue { job, delay } => {
                        self.enqueue_by(batch, &job, delay).await?;
                        stats.continuations += 1;
                    }
                    Planned::DeadLetter { job, reason, ids } => {
                        stats += self.give_up_on(batch, &job, &reason, ids).await?;
                    }
                }
            }
        }
        self.mark_finished(batch, owner, key).await;
        Ok(stats)
    }

    /// Parks deliveries given up past the retry budget (`ids` of them, in `job`) in the
    /// dead-letter queue with the reason.
    pub(super) async fn give_up_on(
        &self,
        batch: &Batch,
        job: &Job,
        reason: &str,
        ids: u64,
    ) -> Result<FanoutStats, JobFailure> {
        warn!(ids, %reason, "giving up on deliveries; to the dead-letter queue");
        let body = job.to_json();
        with_retries(
            batch.finish_by,
            self.config.backoff_base,
            QueueError::is_transient,
            || self.queue.dead_letter(&body, reason),
        )
        .await
        .map_err(JobFailure::Handoff)?;
        Ok(FanoutStats {
            dead_lettered: 1,
            abandoned: ids,
            ..FanoutStats::default()
        })
    }

    pub(super) async fn enqueue_by(
        &self,
        batch: &Batch,
        job: &Job,
        delay: Duration,
    ) -> Result<(), JobFailure> {
        with_retries(
            batch.finish_by,
            self.config.backoff_base,
            QueueError::is_transient,
            || self.queue.enqueue(job, delay),
        )
        .await
        .map_err(JobFailure::Handoff)
    }

    /// Best effort: a job whose record is not marked finished is only ever redelivered by an
    /// SQS duplicate, which then hands off the same jobs again (no-ops by their hops) or, with
    /// nothing to hand off, re-posts at most the last checkpoint's pending ids and window.
    pub(super) async fn mark_finished(&self, batch: &Batch, owner: &str, key: &str) {
        let done = Checkpoint {
            finished: true,
            ..Checkpoint::default()
        };
        let result = with_retries(
            batch.finish_by,
            self.config.backoff_base,
            StoreError::is_transient,
            || self.save(key, owner, &done),
        )
        .await;
        if let Err(error) = result {
            warn!(%error, "could not mark the job finished");
        }
    }
}

/// Who is running which job, for the checkpointer.
pub(super) struct Run<'a> {
    pub batch: &'a Batch,
    pub owner: &'a str,
    pub key: &'a str,
    pub job: &'a Job,
}
