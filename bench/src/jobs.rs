//! The job queue of a run on the board (`--workers W` above 1, `--messages M` above 1, or
//! `--ordering per_room`): held by the endpoint process (on its plain stats port), shared by
//! the worker processes as SQS is by worker Lambdas. A worker takes one message at a time (a
//! batch of one), runs it, and says what became of it: done (deleted), or back on the queue
//! after a delay (a record the engine reported failed, as SQS redelivers it). What the engine
//! hands off (a split room's parts, continuations, retries) goes back on the board. The run is
//! over when the board holds no message, taken or not.
//!
//! With per-room order the board behaves as an SQS FIFO queue whose message group is the
//! room: a group's messages are given out in the order they were sent, none while an earlier
//! one of the group is taken or waiting out its delay, and a message that comes back keeps its
//! place at the head of its group (same body). The board also holds the jobs' progress records
//! (`/progress/*`), shared by the workers as the DynamoDB table is: a held job goes on from its
//! record whichever worker receives it next.

use async_trait::async_trait;
use bytes::Bytes;
use fanout::adapters::memory::MemoryProgress;
use fanout::domain::{Checkpoint, Job};
use fanout::ports::{Claim, JobQueue, ProgressStore, QueueError, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A message a worker took: its id (also its receipt handle), how many times it has been
/// given out, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub id: String,
    pub receives: u32,
    pub body: String,
}

/// What a worker hears when it asks for a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Job(Taken),
    /// Nothing ready now; jobs are still running or delayed.
    Wait,
    /// Nothing left and nothing running: the fan-out is over.
    Done,
}

#[derive(Default)]
pub struct Board {
    /// SQS FIFO, the room as message group.
    ordered: bool,
    state: Mutex<BoardState>,
    progress: MemoryProgress,
}

#[derive(Default)]
struct BoardState {
    /// In the order sent; a taken message stays at its place until it is done.
    messages: Vec<Message>,
    next_id: u64,
    dead_lettered: u64,
}

struct Message {
    id: String,
    group: String,
    body: String,
    visible_at: Instant,
    taken: bool,
    receives: u32,
}

impl Board {
    /// A board that keeps each room's messages in order (SQS FIFO) if `ordered`.
    pub fn new(ordered: bool) -> Self {
        Self {
            ordered,
            ..Self::default()
        }
    }

    pub fn push(&self, body: String, delay: Duration) {
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("board-{}", state.next_id);
        // A body that is no job is a group of its own (the engine dead-letters it).
        let group = Job::parse(&body).map_or_else(|_| id.clone(), |job| job.order_group());
        state.messages.push(Message {
            id,
            group,
            body,
            visible_at: Instant::now() + delay,
            taken: false,
            receives: 0,
        });
    }

    /// The next message to give out, if any: the first visible one not taken; in order, only
    /// a group's first message, and only while no other message of the group is taken or
    /// waiting out its delay ahead of it.
    pub fn take(&self) -> Take {
        let mut state = self.lock();
        if state.messages.is_empty() {
            return Take::Done;
        }
        let now = Instant::now();
        let mut locked = BTreeSet::new();
        let mut found = None;
        for (i, message) in state.messages.iter().enumerate() {
            if self.ordered && locked.contains(&message.group) {
                continue;
            }
            if !message.taken && message.visible_at <= now {
                found = Some(i);
                break;
            }
            if self.ordered {
                locked.insert(message.group.clone());
            }
        }
        let Some(i) = found else {
            return Take::Wait;
        };
        let message = &mut state.messages[i];
        message.taken = true;
        message.receives += 1;
        Take::Job(Taken {
            id: message.id.clone(),
            receives: message.receives,
            body: message.body.clone(),
        })
    }

    /// The taken message `id` is done: deleted.
    pub fn done(&self, id: &str) {
        self.lock().messages.retain(|m| m.id != id);
    }

    /// The taken message `id` comes back at its place, visible after `delay`.
    pub fn back(&self, id: &str, delay: Duration) {
        if let Some(message) = self.lock().messages.iter_mut().find(|m| m.id == id) {
            message.taken = false;
            message.visible_at = Instant::now() + delay;
        }
    }

    pub fn dead_letter(&self) {
        self.lock().dead_lettered += 1;
    }

    pub fn dead_lettered(&self) -> u64 {
        self.lock().dead_lettered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `POST /jobs?delay_ms=N` (push), `POST /jobs/take` (200 with `ID RECEIVES`, a
    /// newline and the body; 204 to wait; 410 when over), `POST /jobs/done?id=ID`,
    /// `POST /jobs/back?id=ID&delay_ms=N` and `POST /jobs/dead`; `None` for any other request.
    pub fn route(&self, path: &str, query: Option<&str>, body: Bytes) -> Option<(u16, String)> {
        let param = |name: &str| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let delay = || {
            Duration::from_millis(
                param("delay_ms")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0),
            )
        };
        match path {
            "/jobs" => {
                let body = String::from_utf8_lossy(&body).into_owned();
                self.push(body, delay());
                Some((200, String::new()))
            }
            "/jobs/take" => Some(match self.take() {
                Take::Job(taken) => (
                    200,
                    format!("{} {}\n{}", taken.id, taken.receives, taken.body),
                ),
                Take::Wait => (204, String::new()),
                Take::Done => (410, String::new()),
            }),
            "/jobs/done" => {
                self.done(param("id").unwrap_or_default());
                Some((200, String::new()))
            }
            "/jobs/back" => {
                self.back(param("id").unwrap_or_default(), delay());
                Some((200, String::new()))
            }
            "/jobs/dead" => {
                self.dead_letter();
                Some((200, String::new()))
            }
            _ => None,
        }
    }

    /// Answers `POST /progress/{claim,save,release}` (JSON bodies, see [`ProgressCall`]) from
    /// the board's progress records; `None` for any other request.
    pub async fn route_progress(&self, path: &str, body: &[u8]) -> Option<(u16, String)> {
        let call: ProgressCall = match serde_json::from_slice(body) {
            Ok(call) => call,
            Err(e) => return Some((400, e.to_string())),
        };
        let progress = &self.progress;
        Some(match path {
            "/progress/claim" => {
                match progress
                    .claim(&call.key, &call.owner, call.now, call.lease_until)
                    .await
                {
                    Ok(claim) => (200, ClaimReply::from(claim).to_json()),
                    Err(e) => (503, e.to_string()),
                }
            }
            "/progress/save" => {
                let checkpoint = call.checkpoint.unwrap_or_default();
                match progress
                    .save(&call.key, &call.owner, call.seq, &checkpoint)
                    .await
                {
                    Ok(()) => (200, String::new()),
                    Err(StoreError::Conflict(e)) => (409, e),
                    Err(e) => (503, e.to_string()),
                }
            }
            "/progress/release" => match progress.release(&call.key, &call.owner).await {
                Ok(()) => (200, String::new()),
                Err(e) => (503, e.to_string()),
            },
            _ => return None,
        })
    }
}

/// A progress-store call over the board.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressCall {
    key: String,
    owner: String,
    now: i64,
    lease_until: i64,
    seq: u64,
    checkpoint: Option<Checkpoint>,
}

/// [`Claim`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "claim", content = "checkpoint", rename_all = "lowercase")]
enum ClaimReply {
    Fresh,
    Resume(Box<Checkpoint>),
    Finished,
    Busy,
}

impl ClaimReply {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("claims serialize")
    }
}

impl From<Claim> for ClaimReply {
    fn from(claim: Claim) -> Self {
        match claim {
            Claim::Fresh => ClaimReply::Fresh,
            Claim::Resume(checkpoint) => ClaimReply::Resume(checkpoint),
            Claim::Finished => ClaimReply::Finished,
            Claim::Busy => ClaimReply::Busy,
        }
    }
}

impl From<ClaimReply> for Claim {
    fn from(reply: ClaimReply) -> Self {
        match reply {
            ClaimReply::Fresh => Claim::Fresh,
            ClaimReply::Resume(checkpoint) => Claim::Resume(checkpoint),
            ClaimReply::Finished => Claim::Finished,
            ClaimReply::Busy => Claim::Busy,
        }
    }
}

async fn call(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let request = fanout_test_support::http::request(addr, "POST", path, body);
    let response = tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .map_err(|_| std::io::Error::other("the job board did not answer"))??;
    Ok((response.status, response.body))
}

/// A worker's side of the board: the engine's [`JobQueue`] over loopback HTTP.
pub struct BoardClient {
    addr: SocketAddr,
    ordered: bool,
    /// The delays the engine asked for records it reported failed, by receipt handle (the
    /// board's message id): the worker hands them back with the message.
    retry_delays: Mutex<HashMap<String, Duration>>,
}

impl BoardClient {
    pub fn new(port: u16, ordered: bool) -> Self {
        Self {
            addr: ([127, 0, 0, 1], port).into(),
            ordered,
            retry_delays: Mutex::default(),
        }
    }

    async fn call(&self, path: &str, body: &str) -> Result<(u16, String), QueueError> {
        call(self.addr, path, body)
            .await
            .map_err(|e| QueueError::Unavailable(format!("the job board: {e}")))
    }

    pub async fn take(&self) -> Result<Take, QueueError> {
        Ok(match self.call("/jobs/take", "").await? {
            (200, text) => {
                let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
                let (id, receives) = head.split_once(' ').unwrap_or((head, "1"));
                Take::Job(Taken {
                    id: id.to_owned(),
                    receives: receives.parse().unwrap_or(1),
                    body: body.to_owned(),
                })
            }
            (410, _) => Take::Done,
            _ => Take::Wait,
        })
    }

    /// The taken message `id` is done.
    pub async fn done(&self, id: &str) -> Result<(), QueueError> {
        self.call(&format!("/jobs/done?id={id}"), "")
            .await
            .map(drop)
    }

    /// The taken message `id` comes back after the delay the engine asked for it (in
    /// `retry_later`; a second if it asked for none).
    pub async fn back(&self, id: &str) -> Result<(), QueueError> {
        let delay = self
            .retry_delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or(Duration::from_secs(1));
        let path = format!("/jobs/back?id={id}&delay_ms={}", delay.as_millis());
        self.call(&path, "").await?;
        self.retry_delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }

    pub async fn push(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        let path = format!("/jobs?delay_ms={}", delay.as_millis());
        self.call(&path, body).await.map(drop)
    }
}

#[async_trait]
impl JobQueue for BoardClient {
    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<(), QueueError> {
        self.push(&job.to_queue_body()?, delay).await
    }

    async fn dead_letter(&self, _body: &str, _reason: &str) -> Result<(), QueueError> {
        self.call("/jobs/dead", "").await.map(drop)
    }

    /// Recorded: the worker reports the message back with this delay (see [`Self::back`]).
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.retry_delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(receipt.to_owned(), delay);
        Ok(())
    }

    fn keeps_order(&self) -> bool {
        self.ordered
    }
}

/// The jobs' progress records, on the board: shared by every worker, as the DynamoDB table is.
/// Each call first waits `latency` (a DynamoDB UpdateItem's), as `MemoryProgress` does.
pub struct BoardProgress {
    addr: SocketAddr,
    latency: Duration,
}

impl BoardProgress {
    pub fn new(port: u16, latency: Duration) -> Self {
        Self {
            addr: ([127, 0, 0, 1], port).into(),
            latency,
        }
    }

    async fn call(&self, path: &str, call: &ProgressCall) -> Result<(u16, String), StoreError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let body = serde_json::to_string(call).expect("progress calls serialize");
        let (status, text) = self::call(self.addr, path, &body)
            .await
            .map_err(|e| StoreError::Unavailable(format!("the board's progress records: {e}")))?;
        match status {
            200 => Ok((status, text)),
            409 => Err(StoreError::Conflict(text)),
            _ => Err(StoreError::Unavailable(format!("{status}: {text}"))),
        }
    }
}

#[async_trait]
impl ProgressStore for BoardProgress {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, StoreError> {
        let call = ProgressCall {
            key: key.into(),
            owner: owner.into(),
            now,
            lease_until,
            ..ProgressCall::default()
        };
        let (_, text) = self.call("/progress/claim", &call).await?;
        let reply: ClaimReply = serde_json::from_str(&text)
            .map_err(|e| StoreError::Unavailable(format!("a claim's answer: {e}")))?;
        Ok(reply.into())
    }

    async fn save(
        &self,
        key: &str,
        owner: &str,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let call = ProgressCall {
            key: key.into(),
            owner: owner.into(),
            seq,
            checkpoint: Some(checkpoint.clone()),
            ..ProgressCall::default()
        };
        self.call("/progress/save", &call).await.map(drop)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let call = ProgressCall {
            key: key.into(),
            owner: owner.into(),
            ..ProgressCall::default()
        };
        self.call("/progress/release", &call).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(room: &str, id: &str) -> String {
        let mut job: serde_json::Value =
            serde_json::from_str(&crate::worker::first_job(10)).unwrap();
        job["id"] = id.into();
        job["target"]["room"] = room.into();
        let body = job.to_string();
        assert_eq!(Job::parse(&body).unwrap().order_group(), room);
        body
    }

    fn taken(take: Take) -> Taken {
        match take {
            Take::Job(taken) => taken,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_board_is_done_only_when_empty_and_idle() {
        let board = Board::default();
        assert_eq!(board.take(), Take::Done);
        board.push("a".into(), Duration::ZERO);
        board.push("b".into(), Duration::from_millis(50));
        let a = taken(board.take());
        assert_eq!(a.body, "a");
        assert_eq!(board.take(), Take::Wait, "b is delayed, a is running");
        board.done(&a.id);
        assert_eq!(board.take(), Take::Wait, "b is still delayed");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let b = taken(board.take());
        assert_eq!(b.body, "b");
        board.done(&b.id);
        assert_eq!(board.take(), Take::Done);
    }

    #[tokio::test]
    async fn unordered_messages_of_one_room_are_taken_side_by_side() {
        let board = Board::new(false);
        for id in ["m1", "m2"] {
            board.push(job("lobby", id), Duration::ZERO);
        }
        let first = taken(board.take());
        let second = taken(board.take());
        assert!(first.body.contains("m1") && second.body.contains("m2"));
    }

    #[tokio::test]
    async fn in_order_a_rooms_messages_go_one_at_a_time_and_a_held_one_keeps_its_place() {
        let board = Board::new(true);
        for (room, id) in [
            ("lobby", "m1"),
            ("lobby", "m2"),
            ("other", "o1"),
            ("lobby", "m3"),
        ] {
            board.push(job(room, id), Duration::ZERO);
        }
        let m1 = taken(board.take());
        assert!(m1.body.contains("\"m1\""));
        // The lobby is locked while m1 is taken; another room's message is not.
        let o1 = taken(board.take());
        assert!(o1.body.contains("\"o1\""));
        assert_eq!(board.take(), Take::Wait);
        // m1 held: back at the head of its group after its delay, same body, its receives
        // counted; nothing of the lobby overtakes it meanwhile.
        board.back(&m1.id, Duration::from_millis(50));
        assert_eq!(
            board.take(),
            Take::Wait,
            "m1 waits out its delay at the head"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let again = taken(board.take());
        assert_eq!(
            (&again.id, &again.body, again.receives),
            (&m1.id, &m1.body, 2)
        );
        board.done(&again.id);
        let m2 = taken(board.take());
        assert!(m2.body.contains("\"m2\""));
        assert_eq!(board.take(), Take::Wait, "m3 behind m2");
        board.done(&m2.id);
        board.done(&o1.id);
        let m3 = taken(board.take());
        assert!(m3.body.contains("\"m3\""));
        board.done(&m3.id);
        assert_eq!(board.take(), Take::Done);
    }

    #[tokio::test]
    async fn progress_records_round_trip_over_the_routes() {
        let board = Board::new(true);
        let call = |path: &'static str, call: ProgressCall| {
            let body = serde_json::to_vec(&call).unwrap();
            let board = &board;
            async move { board.route_progress(path, &body).await.unwrap() }
        };
        let claim = || ProgressCall {
            key: "k".into(),
            owner: "a".into(),
            now: 1,
            lease_until: 10,
            ..ProgressCall::default()
        };
        let (status, text) = call("/progress/claim", claim()).await;
        assert_eq!(status, 200);
        let reply: ClaimReply = serde_json::from_str(&text).unwrap();
        assert_eq!(Claim::from(reply), Claim::Fresh);
        let checkpoint = Checkpoint {
            cursor: Some("c".into()),
            ..Checkpoint::default()
        };
        let save = ProgressCall {
            seq: 1,
            checkpoint: Some(checkpoint.clone()),
            ..claim()
        };
        assert_eq!(call("/progress/save", save).await.0, 200);
        // The same write again (a retry whose answer was lost) lands; an earlier one does not.
        let again = ProgressCall {
            seq: 1,
            checkpoint: Some(checkpoint.clone()),
            ..claim()
        };
        assert_eq!(call("/progress/save", again).await.0, 200);
        let stale = ProgressCall {
            seq: 0,
            checkpoint: Some(Checkpoint::default()),
            ..claim()
        };
        assert_eq!(call("/progress/save", stale).await.0, 409);
        let (_, text) = call("/progress/claim", claim()).await;
        let reply: ClaimReply = serde_json::from_str(&text).unwrap();
        assert_eq!(Claim::from(reply), Claim::Resume(Box::new(checkpoint)));
    }
}
