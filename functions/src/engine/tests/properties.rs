//! Property: whatever the schedule of faults, and a crash of any one invocation at any point,
//! every member gets the message at least once, and no one gets it more often than the bound
//! allows: the posts in flight plus the checkpoint window. On a queue that keeps order, the
//! same for three messages of a room, which every member sees in order.

use super::sim::{Sqs, faulty_on};
use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Fault {
    Posts(Option<PostError>),
    Pages,
    Enqueue,
    /// Checkpoints take 200 ms to write.
    SlowCheckpoints,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Posts(Some(PostError::Server(500)))),
        Just(Fault::Posts(Some(PostError::Throttled))),
        Just(Fault::Posts(Some(PostError::Transport("reset".into())))),
        Just(Fault::Posts(None)),
        Just(Fault::Pages),
        Just(Fault::Enqueue),
        Just(Fault::SlowCheckpoints),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    members: usize,
    page_size: usize,
    concurrency: usize,
    checkpoint_every: usize,
    /// (start, length) in milliseconds from the first invocation, and what breaks.
    faults: Vec<(u64, u64, Fault)>,
    /// Which invocation is killed, and after how many milliseconds.
    crash: Option<(usize, u64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..150,
        1usize..40,
        1usize..12,
        prop_oneof![Just(0usize), 1usize..30],
        prop::collection::vec((0u64..60_000, 1u64..40_000, fault()), 0..4),
        prop::option::of((1usize..4, 0u64..400)),
    )
        .prop_map(
            |(members, page_size, concurrency, checkpoint_every, faults, crash)| Case {
                members,
                page_size,
                concurrency,
                checkpoint_every,
                faults,
                crash,
            },
        )
}

/// The messages each run sends to the room: one, or three on a queue that keeps order.
fn messages(ordered: bool) -> Vec<String> {
    let count = if ordered { 3 } else { 1 };
    (1..=count).map(|i| format!("m{i}")).collect()
}

async fn check(case: Case, ordered: bool) -> Result<usize, TestCaseError> {
    let queue = match ordered {
        true => MemoryQueue::keeping_order(),
        false => MemoryQueue::new(),
    };
    let (f, faults) = faulty_on(
        queue,
        case.page_size,
        EngineConfig {
            checkpoint_every: case.checkpoint_every,
            post_timeout: Duration::from_millis(500),
            deadline_margin: Duration::from_secs(2),
            handoff_reserve: Duration::from_secs(1),
            ..config(case.concurrency)
        },
    );
    let members = f.join("room-a", case.members).await;
    let start = Instant::now();
    faults.set(|s| {
        for (from, length, fault) in &case.faults {
            let window = (
                start + Duration::from_millis(*from),
                start + Duration::from_millis(from + length),
            );
            match fault {
                Fault::Posts(error) => s.posts.push((window.0, window.1, error.clone())),
                Fault::Pages => s.pages_down.push(window),
                Fault::Enqueue => s.enqueue_down.push(window),
                Fault::SlowCheckpoints => s.progress_slow.push(window),
            }
        }
    });
    let mut sqs = match ordered {
        true => Sqs::fifo(Duration::from_secs(10)),
        false => Sqs::new(Duration::from_secs(10)),
    };
    let sent = messages(ordered);
    for id in &sent {
        sqs.send(job(id, json!({"room":"room-a"})), Duration::ZERO);
    }

    let stats = sqs
        .run(&f, |invocation| {
            case.crash
                .filter(|(at, _)| *at == invocation)
                .map(|(_, after)| Duration::from_millis(after))
        })
        .await;

    let received = f.received();
    let missing: Vec<_> = members
        .iter()
        .filter(|id| received.get(*id).copied().unwrap_or(0) < sent.len())
        .collect();
    let duplicates: usize = received.values().map(|n| n - sent.len().min(*n)).sum();
    if ordered {
        for member in &members {
            let seen = super::order::seen_in_order(&f, member);
            prop_assert_eq!(&seen, &sent, "{} saw them out of order", member);
        }
        prop_assert_eq!(sqs.handed_on, 0);
    }
    let bound = if sqs.crashes > 0 {
        case.concurrency + f.engine.config().checkpoint_window()
    } else {
        0
    };
    prop_assert!(missing.is_empty(), "skipped {missing:?} ({stats:?})");
    prop_assert!(
        duplicates <= bound,
        "{duplicates} duplicates, bound {bound}"
    );
    prop_assert_eq!(stats.abandoned, 0);
    prop_assert_eq!(sqs.overran, 0, "an invocation ran past its deadline");
    Ok(sqs.crashes)
}

#[test]
fn no_one_is_skipped_and_duplicates_stay_within_the_bound() {
    property(false);
}

#[test]
fn in_order_no_one_is_skipped_and_duplicates_stay_within_the_bound() {
    property(true);
}

fn property(ordered: bool) {
    let crashed = std::sync::atomic::AtomicUsize::new(0);
    // A fixed seed: CI sees the same schedules every run (a failure is reproducible).
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig {
            cases: 96,
            ..ProptestConfig::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&case(), |case| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let crashes = runtime.block_on(check(case, ordered))?;
            crashed.fetch_add(crashes, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    // The schedules did exercise crashes, not only faults.
    assert!(crashed.into_inner() > 5);
}
