//! Ordered delivery (a queue that keeps order, `ordering = "per_room"`): every member sees a
//! room's messages in the order they were accepted, through brownouts, throttling, deadlines
//! and crashes; a failure past the retry budget parks its ids and lets the room go on.

use super::sim::{Sqs, faulty_on};
use super::*;
use crate::ports::ProgressStore;

/// The message ids `connection` received, in order, each run of repeats counted once: a
/// repeat right after itself is a duplicate a client drops by id; anything else is disorder.
pub(super) fn seen_in_order(f: &Fixture, connection: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for frame in f.gateway.delivered_to(connection) {
        let frame: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        let id = frame["id"].as_str().unwrap().to_owned();
        if seen.last() != Some(&id) {
            seen.push(id);
        }
    }
    seen
}

fn message(id: &str, room: &str) -> String {
    job(id, json!({ "room": room }))
}

/// Six messages to a room of 1,500 and three to a room of 50, through a 5xx brownout, a
/// throttle and a crash, on the given queue; the fixture and the queue afterwards.
async fn through_faults(ordered: bool) -> (Fixture, Sqs, FanoutStats) {
    let queue = match ordered {
        true => MemoryQueue::keeping_order(),
        false => MemoryQueue::new(),
    };
    let (f, faults) = faulty_on(queue, 50, config(4));
    f.join("big", 1_500).await;
    f.join("small", 50).await;
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    faults.set(|s| {
        s.posts = vec![
            (at(5), at(12), Some(PostError::Server(503))),
            (at(20), at(26), Some(PostError::Throttled)),
        ];
    });
    // 1,500 posts at 4 in flight take about 4 s: a message spans invocations of 8 s (3 s of
    // work before the deadline margin).
    let mut sqs = match ordered {
        true => Sqs::fifo(Duration::from_secs(8)),
        false => Sqs::new(Duration::from_secs(8)),
    };
    for i in 1..=6 {
        sqs.send(message(&format!("big-{i}"), "big"), Duration::ZERO);
        if i <= 3 {
            sqs.send(message(&format!("small-{i}"), "small"), Duration::ZERO);
        }
    }
    let stats = sqs
        .run(&f, |invocation| {
            (invocation == 4).then(|| Duration::from_millis(1_500))
        })
        .await;
    (f, sqs, stats)
}

#[tokio::test(start_paused = true)]
async fn every_member_sees_a_rooms_messages_in_order_through_brownout_throttle_and_crash() {
    let (f, sqs, stats) = through_faults(true).await;

    let big: Vec<String> = (1..=6).map(|i| format!("big-{i}")).collect();
    let small: Vec<String> = (1..=3).map(|i| format!("small-{i}")).collect();
    for i in 0..1_500 {
        let member = format!("big-{i:04}");
        assert_eq!(seen_in_order(&f, &member), big, "{member}");
    }
    for i in 0..50 {
        let member = format!("small-{i:04}");
        assert_eq!(seen_in_order(&f, &member), small, "{member}");
    }
    assert_eq!(sqs.crashes, 1);
    assert_eq!(sqs.overran, 0);
    assert_eq!(
        sqs.handed_on, 0,
        "a job keeps its message: nothing queued behind"
    );
    assert!(stats.held > 0, "{stats:?}");
    assert!(stats.retried > 0, "the faults were hit: {stats:?}");
    assert_eq!((stats.dead_lettered, stats.abandoned), (0, 0));
    assert!(f.queue.dead_letters().is_empty());
}

/// The same run on a standard queue does show members messages out of order: the check above
/// can fail.
#[tokio::test(start_paused = true)]
async fn without_ordering_the_same_faults_reorder_messages() {
    let (f, _, _) = through_faults(false).await;

    let big: Vec<String> = (1..=6).map(|i| format!("big-{i}")).collect();
    let disordered = (0..1_500)
        .filter(|i| seen_in_order(&f, &format!("big-{i:04}")) != big)
        .count();
    assert!(disordered > 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_past_the_budget_parks_its_ids_and_the_room_goes_on_in_order() {
    let budget = Duration::from_secs(300);
    let (f, _) = faulty_on(
        MemoryQueue::keeping_order(),
        20,
        EngineConfig {
            retry_budget: budget,
            ..config(8)
        },
    );
    let members = f.join("room-a", 60).await;
    let broken = "room-a-0007";
    f.gateway
        .script(broken, std::iter::repeat_n(PostError::Server(503), 10_000));
    let mut sqs = Sqs::fifo(Duration::from_secs(20));
    sqs.send(message("m1", "room-a"), Duration::ZERO);
    sqs.send(message("m2", "room-a"), Duration::ZERO);
    let start = Instant::now();

    let stats = sqs.run(&f, |_| None).await;

    for member in members.iter().filter(|id| *id != broken) {
        assert_eq!(seen_in_order(&f, member), ["m1", "m2"], "{member}");
    }
    // m2 waited for m1 to give up, then gave up on its own.
    assert!(start.elapsed() >= budget * 2, "took {:?}", start.elapsed());
    assert_eq!((stats.abandoned, stats.dead_lettered), (2, 2));
    let mut parked = Vec::new();
    for dead in f.queue.dead_letters() {
        assert!(dead.reason.contains("retry budget"), "{}", dead.reason);
        let job = Job::parse(&dead.body).unwrap();
        let Target::Connections { ids, .. } = &job.target else {
            panic!("{}", dead.body)
        };
        assert_eq!(ids, &[broken.to_owned()]);
        parked.push(job.id);
    }
    assert_eq!(parked, ["m1", "m2"]);
    assert_eq!(sqs.handed_on, 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_runs_a_groups_records_in_turn_and_reports_those_behind_a_held_one() {
    // With SQS's MessageGroupId, and without it (grouped by the job's room).
    for with_group in [true, false] {
        batch_in_turn(with_group).await;
    }
}

async fn batch_in_turn(with_group: bool) {
    let f = fixture_on(MemoryQueue::keeping_order(), 50, config(4));
    f.join("big", 2_000).await;
    let small = f.join("small", 10).await;
    let item = |id: &str, room: &str| BatchItem {
        message_id: id.into(),
        body: message(id, room),
        receipt_handle: Some(format!("receipt-{id}")),
        receive_count: 1,
        group: with_group.then(|| room.into()),
    };
    let items = vec![item("m1", "big"), item("m2", "big"), item("s1", "small")];
    // Two seconds of work before the deadline margin: not enough for 2,000 posts at 4.
    let deadline = Instant::now() + Duration::from_secs(7);

    let report = f.engine.run_batch(items, deadline).await;

    assert_eq!(report.failed_message_ids, ["m1", "m2"]);
    assert_eq!((report.stats.held, report.stats.failed_jobs), (1, 0));
    let comeback: Vec<_> = f.queue.retried_later();
    assert_eq!(
        comeback,
        [
            ("receipt-m1".to_owned(), Duration::ZERO),
            ("receipt-m2".to_owned(), Duration::ZERO)
        ],
        "the rest of m1 goes on at once; m2 comes back with it"
    );
    let received = f.gateway.deliveries();
    assert!(
        received
            .values()
            .flatten()
            .all(|frame| !String::from_utf8_lossy(frame).contains("\"m2\"")),
        "m2 waits for m1"
    );
    for member in &small {
        assert_eq!(
            seen_in_order(&f, member),
            ["s1"],
            "another room is not held up"
        );
    }
    assert!(f.queue.is_empty(), "nothing handed on");
}

/// A steady trickle of failures, each gone on the next try, in a room that takes longer than
/// the retry budget: the clock restarts with each new failure, so nothing is given up.
#[tokio::test(start_paused = true)]
async fn failures_that_each_clear_on_the_next_try_never_run_one_clock_out() {
    let budget = Duration::from_secs(40);
    let f = fixture_on(
        MemoryQueue::keeping_order(),
        50,
        EngineConfig {
            retry_budget: budget,
            max_post_attempts: 1,
            ..config(1)
        },
    );
    // One post at a time, 10 ms each: 100 posts a second for 9,000 members.
    let members = f.join("room-a", 9_000).await;
    for id in members.iter().step_by(50) {
        f.gateway.script(id, [PostError::Server(503)]);
    }
    let mut sqs = Sqs::fifo(Duration::from_secs(6));
    sqs.send(message("m1", "room-a"), Duration::ZERO);
    let start = Instant::now();

    let stats = sqs.run(&f, |_| None).await;

    assert!(start.elapsed() > budget * 2, "took {:?}", start.elapsed());
    assert!(
        stats.held > 10 && stats.retried + stats.held > 0,
        "{stats:?}"
    );
    assert_eq!((stats.abandoned, stats.dead_lettered), (0, 0), "{stats:?}");
    for member in &members {
        assert_eq!(seen_in_order(&f, member), ["m1"], "{member}");
    }
}

/// A held job read to its end, taken up right at the stop: only its pending ids are left, and
/// it must not start the room again.
#[tokio::test(start_paused = true)]
async fn a_held_job_taken_up_at_the_stop_does_not_read_the_room_again() {
    let f = fixture_with(
        MemoryQueue::keeping_order(),
        MemoryProgress::with_latency(Duration::from_millis(300)),
        50,
        config(4),
    );
    f.join("room-a", 20).await;
    let body = message("m1", "room-a");
    let key = Job::parse(&body).unwrap().progress_key();
    // An earlier run posted to everyone but room-a-0003, which it holds for a retry.
    let held = crate::domain::Checkpoint {
        handoff: Some(crate::domain::Handoff {
            transient: vec!["room-a-0003".into()],
            planned_at: 1,
            ..crate::domain::Handoff::default()
        }),
        ..crate::domain::Checkpoint::default()
    };
    let now = f.engine.now_ms();
    f.progress
        .claim(&key, "earlier", now, now + 1)
        .await
        .unwrap();
    f.progress.save(&key, "earlier", 1, &held).await.unwrap();
    f.progress.release(&key, "earlier").await.unwrap();
    let item = BatchItem {
        message_id: "sqs-m1".into(),
        body,
        receipt_handle: Some("receipt".into()),
        receive_count: 2,
        group: Some("room-a".into()),
    };

    // The claim takes 300 ms and ends right at the stop (the deadline less its 5 s margin).
    let stop = Instant::now() + Duration::from_millis(300);
    let report = f
        .engine
        .run_batch(vec![item.clone()], stop + Duration::from_secs(5))
        .await;
    assert_eq!(report.stats.held, 1, "{:?}", report.stats);
    let report = f
        .engine
        .run_batch(vec![item], Instant::now() + Duration::from_secs(60))
        .await;

    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(f.received(), HashMap::from([("room-a-0003".to_owned(), 1)]));
}

/// A throttle that never lifts, over a room bigger than what one run hands back: every id is
/// parked once its own budget has passed, whether its last run tried it or not, and the message
/// ends (the room's next one may start).
#[tokio::test(start_paused = true)]
async fn a_throttle_that_never_lifts_parks_every_member_and_the_message_ends() {
    let budget = Duration::from_secs(120);
    let (f, faults) = faulty_on(
        MemoryQueue::keeping_order(),
        100,
        EngineConfig {
            retry_budget: budget,
            ..config(64)
        },
    );
    let members = f.join("room-a", 5_000).await;
    let forever = Instant::now() + Duration::from_secs(7 * 24 * 3600);
    faults.set(|s| s.posts = vec![(Instant::now(), forever, Some(PostError::Throttled))]);
    let mut sqs = Sqs::fifo(Duration::from_secs(20));
    sqs.send(message("m1", "room-a"), Duration::ZERO);

    let stats = sqs.run(&f, |_| None).await;

    let mut parked = BTreeSet::new();
    for dead in f.queue.dead_letters() {
        assert!(dead.reason.contains("retry budget"), "{}", dead.reason);
        let job = Job::parse(&dead.body).unwrap();
        let Target::Connections { ids, .. } = job.target else {
            panic!("{}", dead.body)
        };
        for id in ids {
            assert!(parked.insert(id), "parked twice");
        }
    }
    assert_eq!(parked, members, "every member parked, none lost");
    assert_eq!(stats.abandoned, 5_000);
    assert_eq!(stats.delivered, 0);
    assert_eq!(sqs.overran, 0);
}

/// A give-up redone (its hold not written: a store error, a crash) with other ids failing
/// parks them under another name: neither parked job shadows the other's progress record, so a
/// redrive delivers both.
#[tokio::test(start_paused = true)]
async fn a_give_up_redone_with_other_ids_parks_them_under_another_name() {
    use super::batch::Batch;
    use crate::domain::{Handoff, Retries};
    let budget = Duration::from_secs(60);
    let f = fixture_on(
        MemoryQueue::keeping_order(),
        50,
        EngineConfig {
            retry_budget: budget,
            ..config(4)
        },
    );
    let job = Job::parse(&message("m1", "room-a")).unwrap();
    let now = f.engine.now_ms();
    let long_ago = now - 61_000;
    let retries = Retries {
        attempt: 3,
        failing: ["a", "b", "c"].map(|id| (id.to_owned(), long_ago)).into(),
        pages_since: None,
    };
    let batch = Batch {
        permits: Arc::new(tokio::sync::Semaphore::new(4)),
        pacer: Arc::new(super::pacer::Pacer::new()),
        stop_at: Instant::now() + Duration::from_secs(10),
        cutoff: Instant::now() + Duration::from_secs(11),
        finish_by: Instant::now() + Duration::from_secs(12),
        lease_until: now + 13_000,
    };
    let left = |failed: &[&str]| Handoff {
        transient: failed.iter().map(|id| (*id).to_owned()).collect(),
        planned_at: now,
        ..Handoff::default()
    };
    let key = job.progress_key();

    for failed in [["a", "b"], ["a", "c"]] {
        let ran = f
            .engine
            .hold(&batch, "owner", &key, &job, left(&failed), retries.clone())
            .await
            .unwrap();
        assert_eq!(ran.stats.abandoned, 2);
    }

    let parked: Vec<Job> = f
        .queue
        .dead_letters()
        .iter()
        .map(|dead| Job::parse(&dead.body).unwrap())
        .collect();
    assert_eq!(parked.len(), 2);
    assert_ne!(
        parked[0].progress_key(),
        parked[1].progress_key(),
        "{parked:?}"
    );
}

/// A record behind a failed one comes back with it, not after a wait of its own: the room
/// waits for the failed one only.
#[tokio::test(start_paused = true)]
async fn records_behind_a_failed_one_come_back_with_it() {
    let (f, faults) = faulty_on(MemoryQueue::keeping_order(), 50, config(4));
    f.join("room-a", 10).await;
    faults.set(|s| s.progress_fails = true);
    let items = ["m1", "m2", "m3"]
        .map(|id| BatchItem {
            message_id: id.into(),
            body: message(id, "room-a"),
            receipt_handle: Some(format!("receipt-{id}")),
            receive_count: 6,
            group: Some("room-a".into()),
        })
        .to_vec();

    let report = f
        .engine
        .run_batch(items, Instant::now() + Duration::from_secs(60))
        .await;

    assert_eq!(report.failed_message_ids, ["m1", "m2", "m3"]);
    assert_eq!(report.stats.failed_jobs, 1, "only m1 ran");
    let delays: Vec<Duration> = f
        .queue
        .retried_later()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(delays.len(), 3);
    assert!(delays.iter().all(|delay| *delay == delays[0]), "{delays:?}");
    assert!(delays[0] <= Duration::from_secs(60), "{delays:?}");
    assert!(f.received().is_empty());
}

/// The hold itself not written (the progress table down from before the deadline to after
/// it): the record is reported, comes back soon, and resumes from the last checkpoint that
/// landed; members see the room's messages in order, a few again, within the bound.
#[tokio::test(start_paused = true)]
async fn a_hold_that_cannot_be_written_resumes_from_the_last_checkpoint_in_order() {
    let concurrency = 4;
    let (f, faults) = faulty_on(MemoryQueue::keeping_order(), 50, config(concurrency));
    f.join("room-a", 1_500).await;
    let t0 = Instant::now();
    // Invocations of 8 s post for 3 s; writes fail from 2.5 s until past the first deadline.
    faults.set(|s| {
        s.saves_down = vec![(
            t0 + Duration::from_millis(2_500),
            t0 + Duration::from_millis(8_500),
        )]
    });
    let mut sqs = Sqs::fifo(Duration::from_secs(8));
    sqs.send(message("m1", "room-a"), Duration::ZERO);
    sqs.send(message("m2", "room-a"), Duration::ZERO);

    let stats = sqs.run(&f, |_| None).await;

    assert!(
        stats.failed_jobs >= 1,
        "the hold was not written: {stats:?}"
    );
    let mut duplicates = 0;
    for i in 0..1_500 {
        let member = format!("room-a-{i:04}");
        assert_eq!(seen_in_order(&f, &member), ["m1", "m2"], "{member}");
        duplicates += f.gateway.delivered_to(&member).len() - 2;
    }
    let bound = concurrency + f.engine.config().checkpoint_window();
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, bound {bound}"
    );
    assert_eq!(sqs.handed_on, 0);
}

/// A held `connections` job as big as a queue message, whose first run fails every post until
/// it has handed back all it may: what is left untaken stays in the job (the record keeps a
/// cursor into it, not the ids), so the progress record stays far from DynamoDB's 400 KB item
/// limit, and the next receives deliver everything once.
#[tokio::test(start_paused = true)]
async fn a_held_connections_job_keeps_its_record_small_and_delivers_all() {
    let f = fixture_on(MemoryQueue::keeping_order(), 50, config(16));
    // API Gateway's connection ids are 16 characters.
    let all: Vec<String> = (0..20_000).map(|i| format!("Cx{i:012}A=")).collect();
    let template = Job::parse(&job("m1", json!({"connections": ["x"], "room": "room-a"}))).unwrap();
    let ids = chunk_for_queue(&template, all).swap_remove(0);
    assert!(ids.len() > 10_000, "{}", ids.len());
    for id in &ids {
        f.gateway
            .script(id, std::iter::repeat_n(PostError::Server(503), 5));
    }
    let body = job("m1", json!({"connections": ids, "room": "room-a"}));
    let key = Job::parse(&body).unwrap().progress_key();
    let item = BatchItem {
        message_id: "sqs-m1".into(),
        body,
        receipt_handle: Some("receipt".into()),
        receive_count: 1,
        group: Some("room-a".into()),
    };

    let report = f
        .engine
        .run_batch(
            vec![item.clone()],
            Instant::now() + Duration::from_secs(900),
        )
        .await;
    assert_eq!(report.stats.held, 1, "{:?}", report.stats);
    let record = f.progress.checkpoint(&key).unwrap();
    let bytes = serde_json::to_vec(&record).unwrap().len();
    assert!(bytes < 300 * 1024, "the held record is {bytes} bytes");

    for receive in 2..=10 {
        if f.progress.checkpoint(&key).is_some_and(|c| c.finished) {
            break;
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        f.engine
            .run_batch(
                vec![BatchItem {
                    receive_count: receive,
                    ..item.clone()
                }],
                Instant::now() + Duration::from_secs(900),
            )
            .await;
        let bytes = serde_json::to_vec(&f.progress.checkpoint(&key))
            .unwrap()
            .len();
        assert!(
            bytes < 300 * 1024,
            "receive {receive}: the record is {bytes} bytes"
        );
    }
    assert!(f.progress.checkpoint(&key).unwrap().finished);
    assert_exactly_once(&f, &ids.into_iter().collect());
}

/// A held `connections` job whose posts are refused (403) until past the retry budget: each
/// receive replays the refused ids, stops at the first 403 and keeps the rest behind its cursor;
/// once the budget has passed, `give_up` parks the rest by name with the refused ids and the
/// 403's reason. Every id not delivered is parked exactly once (the untaken rest among them),
/// none is lost or parked twice, nothing is handed on behind the room, and the message ends.
#[tokio::test(start_paused = true)]
async fn a_held_connections_jobs_rest_is_parked_by_name_past_the_budget() {
    let budget = Duration::from_secs(120);
    let (f, faults) = faulty_on(
        MemoryQueue::keeping_order(),
        50,
        EngineConfig {
            retry_budget: budget,
            ..config(4)
        },
    );
    let members = f.join("room-a", 60).await;
    // Three turns of four posts go through, then the role loses its permission for good.
    let t0 = Instant::now();
    let forever = t0 + Duration::from_secs(7 * 24 * 3600);
    let forbidden = PostError::Forbidden("User is not authorized".into());
    faults.set(|s| s.posts = vec![(t0 + Duration::from_millis(25), forever, Some(forbidden))]);
    let ids: Vec<&String> = members.iter().collect();
    let mut sqs = Sqs::fifo(Duration::from_secs(20));
    sqs.send(
        job("m1", json!({"connections": ids, "room": "room-a"})),
        Duration::ZERO,
    );

    let stats = sqs.run(&f, |_| None).await;

    assert!(t0.elapsed() >= budget, "parked after {:?}", t0.elapsed());
    assert!(stats.held >= 2 && stats.forbidden >= 2, "{stats:?}");
    let delivered = f.received_ids();
    assert!(
        !delivered.is_empty(),
        "the posts before the 403 went through"
    );
    let parked_jobs = parked_after_403s(&f);
    assert!(
        parked_jobs.iter().all(|job| job.id == "m1"),
        "{parked_jobs:?}"
    );
    let mut parked = ids_of(parked_jobs);
    parked.sort();
    let not_delivered: Vec<String> = members.difference(&delivered).cloned().collect();
    assert_eq!(parked, not_delivered, "parked exactly once each, none lost");
    // Not only the refused ids (at most the four in flight): the rest the runs never took.
    assert!(not_delivered.len() > 8, "{}", not_delivered.len());
    assert_eq!(stats.abandoned, parked.len() as u64);
    assert_eq!(
        sqs.handed_on, 0,
        "nothing queued behind the room's messages"
    );
    let key = Job::parse(&job("m1", json!({"connections": ["x"]})))
        .unwrap()
        .progress_key();
    assert!(
        f.progress.checkpoint(&key).is_some_and(|c| c.finished),
        "the message ends: the room's next one may start"
    );
}
