//! One test per fault: each injects it and checks the guarantee it threatens (docs/
//! architecture.md, "What holds under faults").

use super::sim::{Sqs, faulty};
use super::*;

const ROOM: &str = "room-a";

fn room_job(id: &str) -> String {
    job(id, json!({ "room": ROOM }))
}

/// How many members received the message more than once, and how many never did.
fn tally(f: &Fixture, members: &BTreeSet<String>) -> (usize, usize) {
    let received = f.received();
    let duplicates = received.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let missing = members
        .iter()
        .filter(|id| !received.contains_key(*id))
        .count();
    (duplicates, missing)
}

#[tokio::test(start_paused = true)]
async fn sustained_429s_end_the_run_before_its_deadline_with_the_hand_off_written() {
    let (f, faults) = faulty(100, config(16));
    let members = f.join(ROOM, 300).await;
    let forever = Instant::now() + Duration::from_secs(3600);
    faults.set(|s| s.posts = vec![(Instant::now(), forever, Some(PostError::Throttled))]);
    let deadline = Instant::now() + Duration::from_secs(30);

    let report = f.run_until(&[room_job("m1")], deadline).await;

    assert!(
        Instant::now() < deadline,
        "returned {:?} late",
        Instant::now() - deadline
    );
    assert!(report.failed_message_ids.is_empty());
    let handed_off = f.queue.drain_with_delays();
    let mut covered_all = BTreeSet::new();
    for (job, delay) in &handed_off {
        assert_eq!(job.attempt, 0, "429s do not count as attempts");
        match &job.target {
            // Throttled: back soon, not after a growing delay; the budget's clock runs.
            Target::Connections { .. } if job.retry_since.is_some() => {
                assert!(*delay <= Duration::from_secs(1), "{delay:?}")
            }
            _ => assert_eq!(*delay, Duration::ZERO),
        }
        covered_all.extend(covered(job, &members));
    }
    assert_eq!(covered_all, members, "every member is in the hand-off");
}

#[tokio::test(start_paused = true)]
async fn a_30_second_brownout_of_5xx_delivers_everyone_once_it_ends() {
    let (f, faults) = faulty(100, config(32));
    let members = f.join(ROOM, 500).await;
    let until = Instant::now() + Duration::from_secs(30);
    faults.set(|s| s.posts = vec![(Instant::now(), until, Some(PostError::Server(500)))]);
    let mut sqs = Sqs::new(Duration::from_secs(20));
    sqs.send(room_job("m1"), Duration::ZERO);

    let stats = sqs.run(&f, |_| None).await;

    assert_eq!(tally(&f, &members), (0, 0), "everyone once");
    assert_eq!((stats.abandoned, stats.dead_lettered), (0, 0));
    assert!(f.queue.dead_letters().is_empty());
    assert_eq!(sqs.overran, 0);
}

/// A post fault that never ends, under a 300 s retry budget: run until the queue is empty;
/// the room's members, the stats and how long it took.
async fn past_the_budget(fault: PostError) -> (Fixture, BTreeSet<String>, FanoutStats, Duration) {
    let (f, faults) = faulty(
        50,
        EngineConfig {
            retry_budget: BUDGET,
            ..config(16)
        },
    );
    let members = f.join(ROOM, 120).await;
    let forever = Instant::now() + Duration::from_secs(24 * 3600);
    faults.set(|s| s.posts = vec![(Instant::now(), forever, Some(fault))]);
    let mut sqs = Sqs::new(Duration::from_secs(20));
    sqs.send(room_job("m1"), Duration::ZERO);
    let start = Instant::now();
    let stats = sqs.run(&f, |_| None).await;
    (f, members, stats, start.elapsed())
}

/// The retry budget of [`past_the_budget`].
const BUDGET: Duration = Duration::from_secs(300);

/// The members a handed-back or parked job covers: its ids, or the room after its cursor.
fn covered(job: &Job, members: &BTreeSet<String>) -> BTreeSet<String> {
    match &job.target {
        Target::Connections { ids, .. } => ids.iter().cloned().collect(),
        Target::Room(_) => {
            let cursor = job.cursor.clone().unwrap_or_default();
            members.iter().filter(|id| **id > cursor).cloned().collect()
        }
        Target::All => panic!("{job:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_fault_longer_than_the_budget_parks_the_ids_in_the_dead_letter_queue() {
    let (f, members, stats, took) = past_the_budget(PostError::Server(503)).await;

    assert!(took >= BUDGET, "gave up after {took:?}");
    assert_eq!(
        stats.abandoned, 120,
        "every member counted, none dropped silently"
    );
    let mut parked = BTreeSet::new();
    for dead in f.queue.dead_letters() {
        assert!(dead.reason.contains("retry budget"), "{}", dead.reason);
        let job = Job::parse(&dead.body).unwrap();
        assert!(
            matches!(job.target, Target::Connections { .. }),
            "{}",
            dead.body
        );
        parked.extend(covered(&job, &members));
    }
    assert_eq!(parked, members);
}

#[tokio::test(start_paused = true)]
async fn a_hung_store_or_queue_cannot_hold_the_invocation_past_its_deadline() {
    for hang in ["pages", "deletes", "enqueue"] {
        let (f, faults) = faulty(10, config(4));
        f.join(ROOM, 30).await;
        for id in ["room-a-0001", "room-a-0002"] {
            f.gateway.mark_gone(id);
        }
        faults.set(|s| match hang {
            "pages" => s.pages_hang = true,
            "deletes" => s.deletes_hang = true,
            _ => s.enqueue_hangs = true,
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        // Two jobs, so that the enqueue of a hand-off is needed even when nothing else hangs.
        f.run_until(&[room_job("m1"), job("m2", json!({"all":true}))], deadline)
            .await;
        assert!(Instant::now() < deadline, "{hang}: returned late");
    }
}

#[tokio::test(start_paused = true)]
async fn a_page_read_failing_mid_job_hands_back_the_rest_and_no_one_is_missed() {
    let (f, faults) = faulty(10, config(4));
    let members = f.join(ROOM, 100).await;
    faults.set(|s| s.pages_fail_after = Some(3));

    let report = f.run(&[room_job("m1")]).await;
    assert!(report.failed_message_ids.is_empty());
    let (continuation, delay) = f.queue.drain_with_delays().remove(0);
    assert!(continuation.cursor.is_some() && delay > Duration::ZERO);
    assert_eq!(continuation.attempt, 1);
    faults.set(|s| s.pages_fail_after = None);
    f.run(&[continuation.to_json()]).await;
    f.drain_queue().await;

    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_hand_off_that_fails_after_delivery_is_redone_not_re_sent_to_everyone() {
    let (f, faults) = faulty(10, config(4));
    let members = f.join(ROOM, 100).await;
    faults.set(|s| s.enqueue_fails = true);
    let margin = f.engine.config().deadline_margin;
    let deadline = Instant::now() + margin + Duration::from_millis(120);

    let report = f.run_until(&[room_job("m1")], deadline).await;
    assert_eq!(
        report.failed_message_ids,
        vec!["sqs-0"],
        "SQS redelivers it"
    );
    assert_eq!(
        report.stats.handoffs_failed, 1,
        "counted for the lost hand-off alarm"
    );
    let first = f.received_ids();
    assert!(!first.is_empty() && first.len() < 100);

    // The redelivery: the same message, the queue healthy again.
    faults.set(|s| s.enqueue_fails = false);
    let report = f.run(&[room_job("m1")]).await;
    assert!(report.failed_message_ids.is_empty());
    assert_eq!(
        report.stats.delivered, 0,
        "it only hands off what the first run recorded"
    );
    f.drain_queue().await;

    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn the_same_job_delivered_twice_is_posted_once() {
    let f = fixture(10, config(4));
    let members = f.join(ROOM, 40).await;

    f.run(&[room_job("m1")]).await;
    let again = f.run(&[room_job("m1")]).await;

    assert_eq!(again.stats.delivered, 0);
    assert_exactly_once(&f, &members);

    // Delivered twice at once: one run takes it, the other is told to come back later.
    let both = f.run(&[room_job("m2"), room_job("m2")]).await;
    assert_eq!(both.failed_message_ids, vec!["sqs-1"]);
    assert!(f.received().values().all(|n| *n == 2));
}

#[tokio::test(start_paused = true)]
async fn a_progress_store_outage_reports_the_job_and_brings_it_back_soon() {
    let (f, faults) = faulty(10, config(4));
    f.join(ROOM, 5).await;
    faults.set(|s| s.progress_fails = true);
    let items = vec![BatchItem {
        message_id: "sqs-0".into(),
        body: room_job("m1"),
        receipt_handle: Some("receipt".into()),
        receive_count: 3,
        group: None,
    }];

    let report = f
        .engine
        .run_batch(items, Instant::now() + Duration::from_secs(30))
        .await;

    assert_eq!(report.failed_message_ids, vec!["sqs-0"]);
    assert_eq!(
        f.gateway.calls(),
        0,
        "nothing is posted without a progress record"
    );
    let (receipt, delay) = f.queue.retried_later().remove(0);
    assert_eq!(receipt, "receipt");
    assert!(
        delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4),
        "{delay:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_job_resumes_from_the_checkpoint_within_the_duplicate_bound() {
    // Checkpoints that take as long as 20 posts: the window, not their speed, bounds the loss.
    for slow_checkpoints in [false, true] {
        let concurrency = 8;
        let (f, faults) = faulty(25, config(concurrency));
        let members = f.join(ROOM, 400).await;
        if slow_checkpoints {
            let always = (Instant::now(), Instant::now() + Duration::from_secs(3600));
            faults.set(|s| s.progress_slow.push(always));
        }
        let mut sqs = Sqs::new(Duration::from_secs(60));
        sqs.send(room_job("m1"), Duration::ZERO);

        // 400 posts at 8 in flight and 10 ms each take 500 ms: kill the first invocation
        // midway.
        sqs.run(&f, |invocation| {
            (invocation == 1).then(|| Duration::from_millis(230))
        })
        .await;

        assert_eq!(sqs.crashes, 1);
        let (duplicates, missing) = tally(&f, &members);
        assert_eq!(missing, 0, "no one skipped");
        let bound = concurrency + f.engine.config().checkpoint_window();
        assert!(
            duplicates <= bound,
            "{duplicates} duplicates, bound {bound} (slow checkpoints: {slow_checkpoints})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn posts_still_running_at_the_cutoff_are_abandoned_and_handed_back() {
    let (f, faults) = faulty(
        10,
        EngineConfig {
            post_timeout: Duration::from_millis(3_900),
            deadline_margin: Duration::from_secs(4),
            handoff_reserve: Duration::from_secs(2),
            ..config(4)
        },
    );
    let members = f.join(ROOM, 8).await;
    // Every post hangs: each would run until its timeout, past the cutoff.
    faults.set(|s| {
        s.posts = vec![(
            Instant::now(),
            Instant::now() + Duration::from_secs(3600),
            None,
        )]
    });
    let deadline = Instant::now() + Duration::from_millis(4_500);

    let report = f.run_until(&[room_job("m1")], deadline).await;

    assert!(Instant::now() < deadline);
    assert_eq!(report.stats.interrupted, 4, "the four in flight");
    let later: BTreeSet<String> = f
        .queue
        .drain()
        .into_iter()
        .flat_map(|job| match job.target {
            Target::Connections { ids, .. } => ids,
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        later, members,
        "abandoned and never-started ids all go back"
    );
}

impl Fixture {
    /// A member of `ROOM` that connected `connected_at` (epoch ms).
    async fn connected(&self, id: &str, connected_at: i64) {
        self.store
            .put(&Connection::in_room(
                id,
                RoomName::parse(ROOM).unwrap(),
                connected_at,
                0,
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_gone_connection_is_deleted_only_past_the_grace_period() {
    let f = fixture(10, config(4));
    let now = crate::domain::now_epoch_millis();
    f.connected("old", 0).await;
    f.connected("new", now).await;
    f.gateway.mark_gone("old");
    // API Gateway answers 410 until `$connect` returns; then the post goes through.
    f.gateway.script("new", [PostError::Gone]);

    let report = f.run(&[room_job("m1")]).await;

    assert_eq!(report.stats.stale, 1);
    assert_eq!(report.stats.stale_young, 1);
    assert!(!f.store.contains("old"));
    assert!(f.store.contains("new"), "its $connect may still be running");
    // Handed back at once, and tried again after the retry delay.
    let retried = f.drain_queue().await;
    assert_eq!((retried.delivered, retried.stale_young), (1, 0));
    assert_eq!(
        f.gateway.delivered_to("new").len(),
        1,
        "the member that was connecting gets the message, once"
    );
    assert!(f.queue.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_connection_still_connecting_is_retried_later_then_settled_once_it_is_gone() {
    let f = fixture(10, config(4));
    f.connected("slow", crate::domain::now_epoch_millis()).await;
    f.gateway.mark_gone("slow");

    let report = f.run(&[room_job("m1")]).await;

    assert_eq!(
        (report.stats.stale_young, report.stats.retried),
        (1, 0),
        "one try, no backoff held in the run"
    );
    assert_eq!(report.stats.stale, 0, "not settled as gone while young");
    assert!(f.store.contains("slow"));
    let retry = f.queue.drain();
    assert_eq!(
        retry.len(),
        1,
        "handed back for the retry budget: {retry:?}"
    );
    assert!(
        matches!(&retry[0].target, Target::Connections { ids, .. } if ids == &["slow"]),
        "{retry:?}"
    );

    // Its `$disconnect` ran meanwhile: the retry finds it gone and settles it.
    f.store.delete("slow").await.unwrap();
    let report = f.run(&[retry[0].to_json()]).await;
    assert_eq!((report.stats.stale, report.stats.stale_young), (1, 0));
    assert!(f.queue.drain().is_empty());
    assert!(f.queue.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn jobs_from_other_producers_cannot_break_the_worker() {
    let f = fixture(10, config(4));
    f.join(ROOM, 3).await;
    let huge = "x".repeat(MAX_FRAME_BYTES);
    let bodies = [
        // An attempt count at the top of its range still hands back.
        json!({"v":1,"id":"a","target":{"connections":["room-a-0001"]},"payload":1,"sentAt":1,"attempt":u32::MAX}).to_string(),
        // Repeated ids are posted once.
        job("b", json!({"connections":["room-a-0002","room-a-0002","room-a-0002"]})),
        // A frame API Gateway would refuse: to the dead-letter queue, with no post.
        json!({"v":1,"id":"c","target":{"room":ROOM},"payload":huge,"sentAt":1}).to_string(),
        // A hop that is not one.
        json!({"v":1,"id":"d","target":{"room":ROOM},"payload":1,"sentAt":1,"hop":"../x"}).to_string(),
        // A cursor of a connections target that is not one of its ids.
        json!({"v":1,"id":"e","target":{"connections":["room-a-0001"]},"payload":1,"sentAt":1,"cursor":"zzz"}).to_string(),
    ];
    f.gateway
        .script("room-a-0001", vec![PostError::Server(500); 5]);

    let report = f.run(&bodies).await;

    assert!(report.failed_message_ids.is_empty());
    assert_eq!(f.gateway.delivered_to("room-a-0002").len(), 1);
    let retry = f.queue.drain();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt, u32::MAX, "saturates");
    let reasons: Vec<String> = f
        .queue
        .dead_letters()
        .into_iter()
        .map(|d| d.reason)
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("frame"), "{reasons:?}");
    assert!(reasons[1].contains("hop"), "{reasons:?}");
    assert!(reasons[2].contains("cursor"), "{reasons:?}");
}

#[tokio::test(start_paused = true)]
async fn an_all_job_with_a_cursor_is_never_split_again() {
    let f = fixture(
        5,
        EngineConfig {
            scan_segments: 4,
            ..config(4)
        },
    );
    f.join(ROOM, 12).await;
    let mut resumed = Job::parse(&job("m1", json!({"all":true}))).unwrap();
    resumed.cursor = Some("room-a-0005".into());

    let report = f.run(&[resumed.to_json()]).await;

    assert_eq!(
        report.stats.delivered, 6,
        "the ids after the cursor, in one Scan"
    );
    assert!(f.queue.is_empty());
}

fn forbidden() -> Option<PostError> {
    Some(PostError::Forbidden("User is not authorized".into()))
}

#[tokio::test(start_paused = true)]
async fn a_403_stops_the_job_at_once_and_everyone_gets_it_once_the_permission_is_fixed() {
    let (f, faults) = faulty(100, config(16));
    let members = f.join(ROOM, 500).await;
    // A deploy whose role cannot post, fixed two minutes later.
    let until = Instant::now() + Duration::from_secs(120);
    faults.set(|s| s.posts = vec![(Instant::now(), until, forbidden())]);
    let mut sqs = Sqs::new(Duration::from_secs(20));

    let first = f.run(&[room_job("m1")]).await;
    assert!(
        first.failed_message_ids.is_empty(),
        "the rest is handed back, not redelivered whole"
    );
    assert!(
        first.stats.forbidden >= 1 && first.stats.forbidden <= 16,
        "the first 403 stops the job; at most the posts in flight see one: {:?}",
        first.stats
    );
    assert_eq!(first.stats.failed, 0, "a 403 is not a per-member failure");
    let handed_back = f.queue.drain_with_delays();
    assert!(!handed_back.is_empty());
    for (job, delay) in &handed_back {
        assert!(
            *delay >= Duration::from_millis(500),
            "a 403 is retried after a delay, not at once: {job:?} after {delay:?}"
        );
    }
    for (job, delay) in handed_back {
        sqs.send(job.to_json(), delay);
    }

    let stats = sqs.run(&f, |_| None).await;

    assert_eq!(tally(&f, &members), (0, 0), "everyone once");
    assert_eq!((stats.abandoned, stats.dead_lettered), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_403_that_lasts_past_the_budget_parks_the_room_with_the_reason() {
    let (f, members, stats, _) =
        past_the_budget(PostError::Forbidden("User is not authorized".into())).await;

    assert!(stats.forbidden > 0);
    assert_eq!(stats.failed, 0);
    assert!(!f.queue.dead_letters().is_empty());
    let mut parked = BTreeSet::new();
    for job in parked_after_403s(&f) {
        parked.extend(covered(&job, &members));
    }
    assert_eq!(parked, members, "every member is parked, none lost");
}

/// A `connections` job (here a retry job, third attempt) whose posts start answering 403 mid-run:
/// a 403 holds for every id, so the run stops at its first one, and what it did not deliver (the
/// refused ids, and the rest it never took, named after its cursor) goes back as the next
/// attempt, after the retry delay, on the job's retry clock, with no id lost or handed back
/// twice. Once the permission is fixed, everyone gets the message once; past the budget, the same
/// ids are parked with the 403's reason instead.
#[tokio::test(start_paused = true)]
async fn a_connections_job_stopped_by_a_403_hands_back_every_id_it_did_not_deliver() {
    for past_the_budget in [false, true] {
        let (f, faults) = faulty(100, config(4));
        let members = f.join(ROOM, 40).await;
        // Three turns of four posts go through, then the role loses its permission for a minute.
        let broken_at = Instant::now() + Duration::from_millis(25);
        let fixed_at = broken_at + Duration::from_secs(60);
        faults.set(|s| s.posts = vec![(broken_at, fixed_at, forbidden())]);
        let mut retry = Job::parse(&job(
            "m1",
            json!({"connections": members.iter().collect::<Vec<_>>(), "room": ROOM}),
        ))
        .unwrap();
        retry.hop = Some("r0".into());
        retry.attempt = 2;
        let spent = match past_the_budget {
            false => Duration::from_secs(10),
            true => f.engine.config().retry_budget + Duration::from_secs(1),
        };
        let since = f.engine.now_ms() - i64::try_from(spent.as_millis()).unwrap();
        retry.retry_since = Some(since);

        let report = f.run(&[retry.to_json()]).await;

        assert!(report.failed_message_ids.is_empty(), "{report:?}");
        let stats = &report.stats;
        assert!(
            (1..=4).contains(&stats.forbidden) && stats.failed == 0,
            "one stop, at most the posts in flight refused: {stats:?}"
        );
        let delivered = f.received_ids();
        assert!(!delivered.is_empty() && delivered.len() < members.len() - 4);
        let not_delivered: BTreeSet<String> = members.difference(&delivered).cloned().collect();
        let mut handed_back = Vec::new();
        let mut back_jobs = Vec::new();
        if past_the_budget {
            assert!(f.queue.is_empty(), "nothing is retried past the budget");
            handed_back = ids_of(parked_after_403s(&f));
            assert_eq!(stats.abandoned, handed_back.len() as u64);
        } else {
            assert!(f.queue.dead_letters().is_empty());
            for (back, delay) in f.queue.drain_with_delays() {
                assert!(
                    delay >= Duration::from_millis(500),
                    "after a 403 nothing is tried at once: {back:?} after {delay:?}"
                );
                assert_eq!(
                    (back.attempt, back.retry_since, back.cursor.as_deref()),
                    (retry.attempt + 1, Some(since), None),
                    "the next attempt, on the job's clock, by name: {back:?}"
                );
                let Target::Connections { ids, .. } = &back.target else {
                    panic!("{back:?}")
                };
                handed_back.extend(ids.iter().cloned());
                back_jobs.push(back.to_json());
            }
        }
        let mut once: Vec<String> = not_delivered.iter().cloned().collect();
        handed_back.sort();
        once.sort();
        assert_eq!(
            handed_back, once,
            "every id not delivered goes back exactly once (past the budget: {past_the_budget})"
        );
        if !past_the_budget {
            tokio::time::sleep_until(fixed_at).await;
            let report = f.run(&back_jobs).await;
            assert!(report.failed_message_ids.is_empty(), "{report:?}");
            assert_exactly_once(&f, &members);
        }
    }
}
