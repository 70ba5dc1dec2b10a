//! Big rooms split into ranges of ids for parallel workers (see `engine::split`).

use super::*;
use crate::domain::{Checkpoint, Split};
use crate::ports::ProgressStore;
use base64::Engine as _;

/// Members with ids shaped like API Gateway's (16 characters of base64), pseudo-random but
/// the same every run.
async fn join_like_api_gateway(f: &Fixture, room: &str, count: usize) -> BTreeSet<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ crate::domain::job::stable_hash(room.as_bytes());
    let ids = std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = [0u8; 11];
        bytes[..8].copy_from_slice(&state.to_be_bytes());
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    });
    let joined = f.join_ids(room, ids.take(count)).await;
    assert_eq!(joined.len(), count, "no id twice");
    joined
}

fn split_config(ways: u32) -> EngineConfig {
    EngineConfig {
        room_split_ways: ways,
        account_post_rate: 100_000,
        ..config(16)
    }
}

#[tokio::test(start_paused = true)]
async fn a_big_room_is_split_into_even_parts_that_reach_everyone_once() {
    let f = fixture(100, split_config(4));
    let members = join_like_api_gateway(&f, "big", 2_000).await;
    let others = join_like_api_gateway(&f, "other", 50).await;

    let report = f.run(&[job("m1", json!({"room":"big"}))]).await;
    assert_eq!(report.stats.rooms_split, 1);
    assert_eq!(report.stats.continuations, 4);
    assert_eq!(report.stats.pages, 1, "one page said the room is big");
    assert_eq!(report.stats.delivered, 0, "the parts post, not the planner");

    let parts = f.queue.drain();
    assert_eq!(parts.len(), 4);
    let mut hops = BTreeSet::new();
    for part in &parts {
        assert_eq!(part.pace, Some(25_000), "a quarter of the account's rate");
        assert!(hops.insert(part.hop.clone()));
    }
    assert_eq!(parts[0].cursor, None);
    assert_eq!(parts[3].until, None);
    // Each part on its own, as on a worker of its own: about a quarter of the room each.
    for part in &parts {
        let before = f.gateway.deliveries().len();
        let report = f.run(&[part.to_json()]).await;
        let delivered = f.gateway.deliveries().len() - before;
        assert_eq!(report.stats.delivered as usize, delivered);
        assert!((350..650).contains(&delivered), "a part posted {delivered}");
    }
    assert!(f.queue.is_empty());
    assert_exactly_once(&f, &members);
    assert!(f.received_ids().is_disjoint(&others));
}

#[tokio::test(start_paused = true)]
async fn a_room_that_fits_in_one_page_stays_one_job_with_one_read() {
    let f = fixture(100, split_config(4));
    let members = join_like_api_gateway(&f, "small", 100).await;

    let report = f.run(&[job("m1", json!({"room":"small"}))]).await;

    assert_eq!(report.stats.rooms_split, 0);
    assert_eq!(
        report.stats.pages, 1,
        "the planner's read is the job's first page"
    );
    assert_eq!(report.stats.continuations, 0);
    assert!(f.queue.is_empty());
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_split_redone_enqueues_the_same_parts_which_run_once() {
    let first = fixture(100, split_config(8));
    let members = join_like_api_gateway(&first, "big", 1_500).await;
    let again = fixture(100, split_config(8));
    join_like_api_gateway(&again, "big", 1_500).await;
    let body = job("m1", json!({"room":"big"}));
    first.run(std::slice::from_ref(&body)).await;
    again.run(std::slice::from_ref(&body)).await;

    // A crash between the parts' enqueues and the record's finished mark redoes the split:
    // the same parts, under the same hops, as a duplicate of each.
    let parts: Vec<String> = first.queue.drain().iter().map(Job::to_json).collect();
    let redone: Vec<String> = again.queue.drain().iter().map(Job::to_json).collect();
    assert_eq!(parts, redone);
    first.run(&parts).await;
    first.run(&redone).await;
    assert_exactly_once(&first, &members);
}

#[tokio::test(start_paused = true)]
async fn a_split_redone_with_another_number_of_parts_skips_no_one() {
    let f = fixture(100, split_config(4));
    let members = join_like_api_gateway(&f, "big", 1_200).await;
    let body = job("m1", json!({"room":"big"}));
    f.run(std::slice::from_ref(&body)).await;
    // The planner enqueued two of its four parts and crashed before its record was marked
    // finished; the deploy that followed split rooms in two, and the job came back to it. (Its
    // own record is another store's here, so that it is not found finished.)
    let first_two: Vec<String> = f.queue.drain().iter().take(2).map(Job::to_json).collect();
    let two_ways = Engine::new(
        f.store.clone(),
        f.gateway.clone(),
        f.queue.clone(),
        Arc::new(MemoryProgress::new()),
        split_config(2),
        ENDPOINT,
    );
    let redone = two_ways
        .run_batch(
            vec![BatchItem {
                message_id: "again".into(),
                body,
                ..BatchItem::default()
            }],
            Instant::now() + Duration::from_secs(60),
        )
        .await;
    assert!(redone.failed_message_ids.is_empty());
    let halves: Vec<String> = f.queue.drain().iter().map(Job::to_json).collect();
    assert_eq!(halves.len(), 2);
    // The parts run against one progress store: the halves are not taken for the quarters.
    f.run(&first_two).await;
    f.run(&halves).await;
    let got = f.received_ids();
    assert!(members.is_subset(&got), "no one skipped");
}

#[tokio::test(start_paused = true)]
async fn a_part_cut_by_the_deadline_continues_within_its_range() {
    let f = fixture(50, split_config(2));
    let members = join_like_api_gateway(&f, "big", 600).await;
    f.run(&[job("m1", json!({"room":"big"}))]).await;
    let parts: Vec<String> = f.queue.drain().iter().map(Job::to_json).collect();

    // 300 posts at 16 in flight and 10 ms each need about 190 ms; stop after about 100.
    let deadline = Instant::now() + f.engine.config().deadline_margin + Duration::from_millis(100);
    let report = f.run_until(&parts[..1], deadline).await;
    assert!(report.stats.delivered > 0);
    // The rest of the part, and the posts in flight at the stop as a `connections` job.
    let handed_back = f.queue.drain();
    let rest: Vec<&Job> = handed_back
        .iter()
        .filter(|job| matches!(job.target, Target::Room(_)))
        .collect();
    assert_eq!(rest.len(), 1);
    let part: Job = Job::parse(&parts[0]).unwrap();
    assert_eq!(rest[0].until, part.until, "the rest of the part only");
    assert_eq!(rest[0].pace, part.pace);
    assert!(rest[0].cursor.is_some());

    let mut next: Vec<String> = handed_back.iter().map(Job::to_json).collect();
    next.push(parts[1].clone());
    f.run(&next).await;
    f.drain_queue().await;
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn parts_start_at_their_share_of_the_account_rate() {
    let f = fixture(
        100,
        EngineConfig {
            room_split_ways: 4,
            account_post_rate: 400,
            ..config(64)
        },
    );
    let members = join_like_api_gateway(&f, "big", 400).await;
    f.run(&[job("m1", json!({"room":"big"}))]).await;
    let parts: Vec<String> = f.queue.drain().iter().map(Job::to_json).collect();

    // About 100 members a part at 64 in flight and 10 ms a post: unpaced, 20 ms. At 100/s,
    // growing from there, most of a second.
    let start = Instant::now();
    f.run(&parts[..1]).await;
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    f.run(&parts[1..]).await;
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_part_whose_cursor_is_past_its_end_posts_nothing_and_finishes() {
    let f = fixture(100, split_config(4));
    join_like_api_gateway(&f, "big", 300).await;
    let hostile = json!({"v":1,"id":"m1","target":{"room":"big"},"payload":1,"sentAt":1,
        "cursor":"zzzz","until":"AAAA","hop":"p1"})
    .to_string();

    let report = f.run(&[hostile]).await;

    assert!(report.failed_message_ids.is_empty());
    assert_eq!(report.stats.delivered, 0);
    assert!(f.queue.is_empty());
}

/// A job that died splitting (its plan saved, some parts enqueued, not marked finished) comes
/// back to a deploy with other settings: `engine` with `config`, on the fixture's store and
/// queue and a progress store holding just that plan (the dead run's lease over).
async fn redeliver_mid_split(
    f: &Fixture,
    body: &str,
    plan: Split,
    config: EngineConfig,
) -> BatchReport {
    let key = Job::parse(body).unwrap().progress_key();
    let progress = Arc::new(MemoryProgress::new());
    progress.claim(&key, "dead", 0, 1).await.unwrap();
    let planned = Checkpoint {
        split: Some(plan),
        ..Checkpoint::default()
    };
    progress.save(&key, "dead", 1, &planned).await.unwrap();
    let engine = Engine::new(
        f.store.clone(),
        f.gateway.clone(),
        f.queue.clone(),
        progress,
        config,
        ENDPOINT,
    );
    engine
        .run_batch(
            vec![BatchItem {
                message_id: "again".into(),
                body: body.to_owned(),
                ..BatchItem::default()
            }],
            Instant::now() + Duration::from_secs(60),
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn a_room_split_redelivered_mid_split_replays_its_plan_whatever_the_settings_now() {
    let f = fixture(100, split_config(4));
    let members = join_like_api_gateway(&f, "big", 1_200).await;
    let body = job("m1", json!({"room":"big"}));
    f.run(std::slice::from_ref(&body)).await;
    let quarters: Vec<String> = f.queue.drain().iter().map(Job::to_json).collect();
    assert_eq!(quarters.len(), 4);

    // Two quarters were enqueued before the crash; the deploy since splits in two.
    let report = redeliver_mid_split(&f, &body, Split::Room { ways: 4 }, split_config(2)).await;
    assert!(report.failed_message_ids.is_empty());
    assert_eq!(
        report.stats.delivered, 0,
        "the planner never posts beside its parts"
    );
    let replayed: Vec<String> = f.queue.drain().iter().map(Job::to_json).collect();
    assert_eq!(replayed, quarters, "exactly the saved plan's parts");
    f.run(&quarters[..2]).await;
    f.run(&replayed).await;
    assert_exactly_once(&f, &members);
}

#[tokio::test(start_paused = true)]
async fn a_scan_split_redelivered_after_scan_segments_changed_replays_its_segments() {
    let segments = |total| EngineConfig {
        scan_segments: total,
        ..config(16)
    };
    let f = fixture(50, segments(4));
    let mut everyone = join_like_api_gateway(&f, "a", 300).await;
    everyone.extend(join_like_api_gateway(&f, "b", 200).await);
    let body = job("m1", json!({"all":true}));
    f.run(std::slice::from_ref(&body)).await;
    let fourths: Vec<Job> = f.queue.drain();
    // Segments of another count are other jobs: none shares a hop (a progress record).
    let halves = fixture(50, segments(2));
    halves.run(std::slice::from_ref(&body)).await;
    let hops =
        |jobs: &[Job]| -> BTreeSet<String> { jobs.iter().filter_map(|j| j.hop.clone()).collect() };
    assert!(hops(&fourths).is_disjoint(&hops(&halves.queue.drain())));

    // One segment ran before the crash; the deploy since scans in two segments.
    f.run(&[fourths[0].to_json()]).await;
    let report = redeliver_mid_split(&f, &body, Split::Scan { total: 4 }, segments(2)).await;
    assert!(report.failed_message_ids.is_empty());
    let replayed: Vec<Job> = f.queue.drain();
    assert_eq!(replayed.len(), 4);
    assert_eq!(
        replayed.iter().map(Job::to_json).collect::<Vec<_>>(),
        fourths.iter().map(Job::to_json).collect::<Vec<_>>()
    );
    f.run(&replayed.iter().map(Job::to_json).collect::<Vec<_>>())
        .await;
    f.run(&fourths[1..].iter().map(Job::to_json).collect::<Vec<_>>())
        .await;
    assert_exactly_once(&f, &everyone);
}
