//! Regression tests from a review that tried to break the guarantees of docs/architecture.md
//! ("What holds under faults"): each one injects what broke a guarantee once.

use super::sim::{Sqs, faulty};
use super::*;
use crate::domain::Checkpoint;
use crate::ports::{Claim, ProgressStore, StoreError};

const ROOM: &str = "room-a";

fn room_job(id: &str) -> String {
    job(id, json!({ "room": ROOM }))
}

/// Ids that were delivered, are still queued in a `connections` job, or are parked in the
/// dead-letter queue: everything that is not silently lost. `rooms` says whether a `room` job
/// (which covers ids by cursor) is still queued.
fn accounted(f: &Fixture) -> (BTreeSet<String>, usize) {
    let mut ids = f.received_ids();
    let mut rooms = 0;
    for job in f.queue.drain() {
        match job.target {
            Target::Connections { ids: more, .. } => ids.extend(more),
            _ => rooms += 1,
        }
    }
    for dead in f.queue.dead_letters() {
        if let Ok(job) = Job::parse(&dead.body)
            && let Target::Connections { ids: more, .. } = job.target
        {
            ids.extend(more);
        }
    }
    (ids, rooms)
}

/// A progress store whose claim answers only at `ready_at` (a slow DynamoDB call, SDK retries).
struct SlowClaim(Arc<MemoryProgress>, Instant);

#[async_trait]
impl ProgressStore for SlowClaim {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Claim, StoreError> {
        tokio::time::sleep_until(self.1).await;
        self.0.claim(key, owner, now, until).await
    }
    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.0.save(key, owner, seq, checkpoint).await
    }
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.0.release(key, owner).await
    }
}

/// Once broken: run.rs `deliver` skips the first page read when the batch is already stopping,
/// and for a `connections` target only `untaken` page ids go back; a page never read is never
/// untaken, so the job's ids are neither posted, handed back nor dead-lettered, and the job is
/// marked finished. A claim that answers right at `stop_at` is enough.
#[tokio::test(start_paused = true)]
async fn a_connections_job_claimed_at_stop_at_is_handed_back_not_dropped() {
    let healthy = fixture(10, config(4));
    let members = healthy.join(ROOM, 3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let stop_at = deadline - healthy.engine.config().deadline_margin;
    let f = Fixture {
        engine: Engine::new(
            healthy.store.clone(),
            healthy.gateway.clone(),
            healthy.queue.clone(),
            Arc::new(SlowClaim(healthy.progress.clone(), stop_at)),
            config(4),
            ENDPOINT,
        ),
        ..healthy
    };
    let body = job(
        "m1",
        json!({"connections": members.iter().cloned().collect::<Vec<_>>()}),
    );

    let report = f.run_until(&[body], deadline).await;

    let finished = f.progress.checkpoint("m1").is_some_and(|c| c.finished);
    let (ids, _) = accounted(&f);
    assert!(
        !report.failed_message_ids.is_empty() || ids == members,
        "acked (failed: {:?}), record finished: {finished}, yet delivered/queued/parked only {ids:?} of {members:?}",
        report.failed_message_ids
    );
}

/// The same, with no slow call at all: a worker whose Lambda timeout is not above
/// DEADLINE_MARGIN_MS (terraform checks neither against the other). Every `connections` job
/// is acked and lost; every `room` job is handed back, unchanged, at delay 0, forever.
#[tokio::test(start_paused = true)]
async fn an_invocation_with_no_time_reports_its_jobs_instead_of_spinning() {
    let f = fixture(10, config(4));
    let members = f.join(ROOM, 3).await;
    let connections = job(
        "m1",
        json!({"connections": members.iter().cloned().collect::<Vec<_>>()}),
    );
    // A 3 s invocation, the default 5 s margin.
    let deadline = Instant::now() + Duration::from_secs(3);

    let report = f.run_until(&[connections, room_job("m2")], deadline).await;

    let queued = f.queue.drain_with_delays();
    let spins = queued.iter().any(|(job, delay)| {
        matches!(job.target, Target::Room(_)) && job.cursor.is_none() && delay.is_zero()
    });
    let delivered = f.received_ids();
    assert!(
        report.failed_message_ids.len() == 2 || (delivered == members && !spins),
        "failed {:?}; delivered {delivered:?}; queued {:?}",
        report.failed_message_ids,
        queued
            .iter()
            .map(|(j, d)| (j.target.clone(), j.cursor.clone(), *d))
            .collect::<Vec<_>>()
    );
}

/// Once broken: 429s (and posts abandoned at the cutoff) go back as `Later`: same attempt, delay
/// 0, no `retrySince`, so `retry()` and its budget are never reached. A connection or an
/// account that is throttled for good is re-enqueued at once, every invocation, forever: it
/// never reaches the dead-letter queue, and every hop leaves a progress record.
#[tokio::test(start_paused = true)]
async fn permanent_429s_end_in_the_dead_letter_queue_after_the_budget() {
    let (f, faults) = faulty(10, config(4));
    f.join(ROOM, 5).await;
    let forever = Instant::now() + Duration::from_secs(24 * 3600);
    faults.set(|s| s.posts = vec![(Instant::now(), forever, Some(PostError::Throttled))]);
    let budget = f.engine.config().retry_budget;
    let start = Instant::now();
    let mut bodies = vec![room_job("m1")];
    let mut invocations = 0;
    // Twice the retry budget of 20 s invocations.
    while !bodies.is_empty() && start.elapsed() < budget * 2 {
        invocations += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        f.run_until(&bodies, deadline).await;
        tokio::time::sleep_until(deadline).await;
        let queued = f.queue.drain_with_delays();
        let longest = queued.iter().map(|(_, d)| *d).max().unwrap_or_default();
        tokio::time::sleep(longest).await;
        bodies = queued.iter().map(|(job, _)| job.to_json()).collect();
    }
    let attempts: Vec<u32> = bodies
        .iter()
        .map(|b| Job::parse(b).unwrap().attempt)
        .collect();
    assert!(
        bodies.is_empty() || !f.queue.dead_letters().is_empty(),
        "after {:?} ({invocations} invocations, budget {budget:?}) still {} jobs queued at attempts {attempts:?}, \
         {} progress records, nothing dead-lettered",
        start.elapsed(),
        bodies.len(),
        f.progress.len()
    );
}

/// A run whose checkpoint and hand-off writes fail (a progress-store outage starting mid-run,
/// no crash) is reported failed; its redelivery resumes from the last checkpoint that landed,
/// and posts again to at most what a crash would: the posts in flight and the window.
#[tokio::test(start_paused = true)]
async fn a_progress_outage_mid_run_duplicates_no_more_than_a_crash() {
    let (f, faults) = faulty(25, config(8));
    let members = f.join(ROOM, 400).await;
    let outage = faults.clone();
    tokio::spawn(async move {
        // 400 posts take 500 ms: the store goes down mid-run and comes back after the deadline.
        tokio::time::sleep(Duration::from_millis(150)).await;
        outage.set(|s| s.progress_fails = true);
        tokio::time::sleep(Duration::from_secs(40)).await;
        outage.set(|s| s.progress_fails = false);
    });
    let mut sqs = Sqs::new(Duration::from_secs(20));
    sqs.send(room_job("m1"), Duration::ZERO);

    let stats = sqs.run(&f, |_| None).await;

    assert_eq!(sqs.crashes, 0);
    let received = f.received();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let missing = members
        .iter()
        .filter(|id| !received.contains_key(*id))
        .count();
    assert_eq!(missing, 0);
    let bound = 8 + f.engine.config().checkpoint_window();
    assert!(
        duplicates <= bound,
        "{duplicates} members got it twice, bound {bound} (resumed {}, invocations {})",
        stats.resumed,
        sqs.invocations
    );
}

/// The duplicate bound is per job: an `all` message split into Scan segments puts several jobs
/// of one message into one batch, each with its own checkpoint window, so one crash re-posts
/// up to (FANOUT_CONCURRENCY + CHECKPOINT_EVERY) for each of them.
#[tokio::test(start_paused = true)]
async fn one_crash_of_a_batch_of_scan_segments_stays_within_the_bound_per_job() {
    let concurrency = 8;
    let mut worst = (0, 0);
    for crash_ms in (100..=400).step_by(20) {
        let (f, faults) = faulty(
            25,
            EngineConfig {
                scan_segments: 4,
                ..config(concurrency)
            },
        );
        f.join(ROOM, 800).await;
        let always = (Instant::now(), Instant::now() + Duration::from_secs(3600));
        faults.set(|s| s.progress_slow.push(always));
        let mut sqs = Sqs::new(Duration::from_secs(60));
        sqs.send(job("m1", json!({"all": true})), Duration::ZERO);
        // Invocation 1 splits; invocation 2 runs the four segments together: kill it.
        sqs.run(&f, |invocation| {
            (invocation == 2).then(|| Duration::from_millis(crash_ms))
        })
        .await;
        let duplicates: usize = f.received().values().map(|n| n - 1).sum();
        if duplicates > worst.0 {
            worst = (duplicates, crash_ms);
        }
    }
    let bound = 4 * (concurrency + config(concurrency).checkpoint_window());
    assert!(
        worst.0 <= bound,
        "{} duplicates after one crash (at {} ms), bound {bound}",
        worst.0,
        worst.1
    );
}

/// A failure's retry budget starts with that failure: one unreadable page early in a fan-out
/// must not start the clock for members who never failed, while a retry of the same ids keeps
/// its clock.
#[test]
fn a_hand_off_starts_the_retry_clock_only_for_what_failed() {
    let minute = 60_000;
    let mut room = Job::parse(&room_job("m1")).unwrap();
    // This room job is the rest of a room after a page read failed at t = 0.
    (room.attempt, room.retry_since) = (1, Some(0));
    let policy = handoff::Policy {
        now_ms: 2 * minute,
        retry_budget: Duration::from_secs(60),
        retry_delay_base: Duration::from_secs(1),
    };
    let handoff = crate::domain::Handoff {
        rest: Some(crate::domain::Rest {
            cursor: Some("room-a-0009".into()),
            after_failure: false,
        }),
        later: vec!["a".into()],
        transient: vec!["b".into()],
        ..crate::domain::Handoff::default()
    };
    let planned = handoff::plan(&room, &handoff, &policy);
    let enqueued: Vec<&Job> = planned
        .iter()
        .map(|p| match p {
            handoff::Planned::Enqueue { job, .. } => job,
            handoff::Planned::DeadLetter { reason, .. } => panic!("dead-lettered: {reason}"),
        })
        .collect();
    assert_eq!(enqueued.len(), 3);
    assert_eq!(
        (enqueued[0].attempt, enqueued[0].retry_since),
        (0, None),
        "the rest"
    );
    assert_eq!(
        (enqueued[1].attempt, enqueued[1].retry_since),
        (0, None),
        "later"
    );
    assert_eq!(
        (enqueued[2].attempt, enqueued[2].retry_since),
        (1, Some(2 * minute)),
        "a first failure starts its own clock"
    );

    // A retry of the same ids keeps its clock, and past the budget parks them.
    let retry = enqueued[2].clone();
    let later = handoff::Policy {
        now_ms: 4 * minute,
        ..policy
    };
    let again = crate::domain::Handoff {
        transient: vec!["b".into()],
        ..crate::domain::Handoff::default()
    };
    assert!(matches!(
        handoff::plan(&retry, &again, &later).as_slice(),
        [handoff::Planned::DeadLetter { ids: 1, .. }]
    ));
}

/// Once broken (test harness): sim.rs keeps `pages_down` windows but `Store::page_fault` never
/// reads them, so the property test's `Fault::Pages` injects nothing: the proptest has never
/// run a page-read failure.
#[tokio::test(start_paused = true)]
async fn the_simulated_page_outage_is_injected() {
    let (f, faults) = faulty(10, config(4));
    f.join(ROOM, 30).await;
    let now = Instant::now();
    faults.set(|s| s.pages_down = vec![(now, now + Duration::from_secs(3600))]);

    let report = f.run(&[room_job("m1")]).await;

    assert_eq!(
        report.stats.delivered, 0,
        "every page read was to fail for an hour, yet {} posts were made",
        report.stats.delivered
    );
}

/// Once broken (validation): a job `id` longer than DynamoDB's 2,048-byte partition key
/// is valid to `Job::parse`, but every claim of its progress record fails with a
/// ValidationException, which `DynamoProgress` maps to `Unavailable`: the job is treated as a
/// progress-store outage (reported failed, shortened visibility) on every receive until the
/// redrive policy parks it, without a reason, instead of going to the dead-letter queue at
/// once. The progress store here rejects long keys as DynamoDB does.
#[tokio::test(start_paused = true)]
async fn an_id_longer_than_a_dynamodb_key_is_dead_lettered_at_once() {
    struct KeyLimit(Arc<MemoryProgress>);
    fn check(key: &str) -> Result<(), StoreError> {
        if key.len() > 2048 {
            // What DynamoProgress makes of a ValidationException.
            return Err(StoreError::Unavailable(
                "ValidationException: key too large".into(),
            ));
        }
        Ok(())
    }
    #[async_trait]
    impl ProgressStore for KeyLimit {
        async fn claim(
            &self,
            key: &str,
            owner: &str,
            now: i64,
            until: i64,
        ) -> Result<Claim, StoreError> {
            check(key)?;
            self.0.claim(key, owner, now, until).await
        }
        async fn save(
            &self,
            key: &str,
            owner: &str,
            seq: u64,
            c: &Checkpoint,
        ) -> Result<(), StoreError> {
            check(key)?;
            self.0.save(key, owner, seq, c).await
        }
        async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
            check(key)?;
            self.0.release(key, owner).await
        }
    }
    let healthy = fixture(10, config(4));
    healthy.join(ROOM, 3).await;
    let f = Fixture {
        engine: Engine::new(
            healthy.store.clone(),
            healthy.gateway.clone(),
            healthy.queue.clone(),
            Arc::new(KeyLimit(healthy.progress.clone())),
            config(4),
            ENDPOINT,
        ),
        ..healthy
    };
    let long_id = "x".repeat(3000);

    let report = f.run(&[room_job(&long_id)]).await;

    assert!(
        report.failed_message_ids.is_empty() && f.queue.dead_letters().len() == 1,
        "reported failed {:?} (SQS redelivers it until maxReceiveCount), dead letters {}",
        report.failed_message_ids,
        f.queue.dead_letters().len()
    );
}

/// Once broken: a `connections` job's untaken ids went back as the whole job with a cursor
/// (a full message could then not be sent again, and a retry job lost its attempt and clock).
/// Its rest goes back by name, in jobs that fit a message, keeping the job's attempt and
/// `retrySince`; everyone gets the message once.
#[tokio::test(start_paused = true)]
async fn a_connections_jobs_rest_goes_back_by_name_with_its_retry_clock() {
    let f = fixture(50, config(16));
    let all: Vec<String> = (0..20_000).map(|i| format!("Cx{i:012}A=")).collect();
    let template = Job::parse(&job("m1", json!({"connections": ["x"], "room": ROOM}))).unwrap();
    let ids = chunk_for_queue(&template, all).swap_remove(0);
    let mut retry = Job::parse(&job("m1", json!({"connections": ids, "room": ROOM}))).unwrap();
    retry.attempt = 3;
    retry.retry_since = Some(f.engine.now_ms() - 1_000);
    retry.hop = Some("r0".into());
    assert!(retry.to_json().len() > MAX_JOB_BYTES - 1_024);

    // 10 ms a post, 16 at once: a 3 s run posts about 5,000 of them.
    let report = f
        .run_until(&[retry.to_json()], Instant::now() + Duration::from_secs(8))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");

    let handed_back = f.queue.drain_with_delays();
    assert!(!handed_back.is_empty());
    for (back, _) in &handed_back {
        assert!(back.to_json().len() <= MAX_JOB_BYTES);
        assert_eq!(back.cursor, None, "{:?}", back.hop);
        assert_eq!(
            (back.attempt, back.retry_since),
            (retry.attempt, retry.retry_since),
            "{:?}",
            back.hop
        );
    }
    let bodies: Vec<String> = handed_back.iter().map(|(back, _)| back.to_json()).collect();
    let report = f.run(&bodies).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    f.drain_queue().await;
    assert_exactly_once(&f, &ids.into_iter().collect());
}
