//! The SQS job: the pipeline's event (wire contract v1, see docs/contracts.md).
//!
//! sendmessage produces one job per message; the worker produces continuation jobs (same
//! target, a `cursor`) and retry jobs (`connections` target) for the deliveries it could not
//! finish. Other producers may publish jobs too, so every field is validated on the way in.

use crate::domain::history::{MAX_EPOCH_BYTES, Position, is_epoch};
use crate::domain::{Frame, RoomName};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

/// The only job version this code reads and writes.
pub const JOB_VERSION: u32 = 1;

/// The largest job body: SQS's classic message limit, which every queue accepts.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// A job whose body would exceed the queue's message limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job of {size} bytes exceeds the queue's message limit of {limit} bytes")]
pub struct JobTooLarge {
    pub size: usize,
    pub limit: usize,
}

/// Who a job is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTarget", into = "RawTarget")]
pub enum Target {
    /// Every connection in a room, read page by page from the room index.
    Room(RoomName),
    /// Every connection in every room, read by Scan.
    All,
    /// Exactly these connections. `room` is the room the message was sent to, kept so that a
    /// retried delivery carries the same frame as the first attempt.
    Connections {
        ids: Vec<String>,
        room: Option<RoomName>,
    },
}

impl Target {
    /// The room named in delivered frames, if any.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Target::Room(room) => Some(room),
            Target::All => None,
            Target::Connections { room, .. } => room.as_ref(),
        }
    }
}

/// The JSON shape of a target: exactly one of `{"room":R}`, `{"all":true}`,
/// `{"connections":[ids]}` (the last optionally with `"room"`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<RoomName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connections: Option<Vec<String>>,
}

impl TryFrom<RawTarget> for Target {
    type Error = String;

    fn try_from(raw: RawTarget) -> Result<Self, Self::Error> {
        match (raw.room, raw.all, raw.connections) {
            (Some(room), None, None) => Ok(Target::Room(room)),
            (None, Some(true), None) => Ok(Target::All),
            (room, None, Some(ids)) => Ok(Target::Connections { ids, room }),
            _ => Err(
                "target must be exactly one of {\"room\":R}, {\"all\":true} or \
                      {\"connections\":[ids]}"
                    .to_owned(),
            ),
        }
    }
}

impl From<Target> for RawTarget {
    fn from(target: Target) -> Self {
        match target {
            Target::Room(room) => RawTarget {
                room: Some(room),
                all: None,
                connections: None,
            },
            Target::All => RawTarget {
                room: None,
                all: Some(true),
                connections: None,
            },
            Target::Connections { ids, room } => RawTarget {
                room,
                all: None,
                connections: Some(ids),
            },
        }
    }
}

/// One segment of a parallel Scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub index: u32,
    pub total: u32,
}

impl Segment {
    /// The whole table as one segment.
    pub const WHOLE: Segment = Segment { index: 0, total: 1 };
    /// DynamoDB's limit on TotalSegments.
    pub const MAX_TOTAL: u32 = 1_000_000;

    fn validate(&self) -> Result<(), String> {
        if self.total == 0 || self.total > Self::MAX_TOTAL || self.index >= self.total {
            return Err(format!(
                "segment {}/{} is out of range: need 0 <= index < total <= {}",
                self.index,
                self.total,
                Self::MAX_TOTAL
            ));
        }
        Ok(())
    }
}

/// A fan-out job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Contract version; always [`JOB_VERSION`].
    pub v: u32,
    /// The message id, carried in every delivered frame so clients can drop duplicates.
    pub id: String,
    pub target: Target,
    /// The client's `data`, kept as the exact JSON text it arrived as.
    pub payload: Box<RawValue>,
    /// The sending connection, if a client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Who the sender is, as the `$connect` authorizer verified it (the token's `sub`); `user`
    /// in every delivered frame. Absent when the stack runs without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Epoch milliseconds when the message was accepted.
    pub sent_at: i64,
    /// Where to continue paging; absent on a fresh job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The Scan segment an `all` job covers; absent means the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// Deprecated: the worker posts only to its own `MANAGEMENT_ENDPOINT`, and dead-letters a
    /// job that names another endpoint here (no signed request goes where a message says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How many times the worker has re-enqueued transient failures of this message; grows
    /// the delay before the next try. Saturates: a producer's huge value cannot overflow it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// Epoch milliseconds when these deliveries were first handed back after a transient
    /// failure: the retry budget runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_since: Option<i64>,
    /// Which hand-off of the message this job is: absent on the first job, then a name derived
    /// from the parent's hop and the hand-off's place among the parent's (see [`Job::child_hop`]).
    /// With `id` it names the job's progress record, so a job delivered twice resumes instead
    /// of repeating, and a hand-off written twice is the same job, not a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<String>,
    /// The last connection id a `room` job covers (inclusive; after `cursor`): set on the parts
    /// a big room is split into, so that they cover the room's ids once between them. Absent:
    /// to the end of the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Posts per second the job starts paced at: a split room's parts each carry their share
    /// of the account's rate, so they do not all start with a burst into its throttle. The
    /// pace grows from there until API Gateway throttles (see `engine::pacer`). Absent:
    /// unpaced until the first 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<u32>,
    /// The message's offset in its room's sequence (with `epoch`), carried in its frames.
    /// Absent on a job a producer wrote to the queue itself: delivered, but not recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The epoch of that sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_hop_path(hop: &str) -> bool {
    (1..=MAX_HOP_BYTES).contains(&hop.len()) && hop.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// FNV-1a, 64 bits: the same in every process and release, unlike std's hasher.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Why a job body was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJob {
    #[error("job is not valid JSON of the v1 job shape: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("job version {0} is not supported; this worker reads v{JOB_VERSION}")]
    Version(u32),
    #[error("job has an empty id")]
    EmptyId,
    #[error("job id is {0} bytes; at most {MAX_ID_BYTES}")]
    LongId(usize),
    #[error("{0}")]
    Segment(String),
    #[error("a segment only applies to an \"all\" target")]
    SegmentWithoutScan,
    #[error("hop {0:?} is not 1 to {MAX_HOP_BYTES} ASCII letters and digits")]
    Hop(String),
    #[error("a cursor of a \"connections\" target must be one of its ids")]
    CursorNotAnId,
    #[error(
        "a \"connections\" target has an id of {0} bytes; ids are 1 to {MAX_CONNECTION_ID_BYTES}"
    )]
    ConnectionId(usize),
    #[error("\"until\" only applies to a \"room\" target, and is 1 to {MAX_ID_BYTES} bytes")]
    Until,
    #[error("\"pace\" is posts per second, at least 1")]
    Pace,
    #[error(
        "\"offset\" (at least 1) and \"epoch\" (1 to {MAX_EPOCH_BYTES} ASCII letters and digits) go together"
    )]
    Position,
}

/// The longest message id accepted: it names the job's progress record, whose DynamoDB key
/// is limited to 2,048 bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// The longest connection id a `connections` target may name (API Gateway's are 16
/// characters): what a run hands back is held in its progress record, which DynamoDB limits to
/// 400 KB (see `Checkpoint`).
pub const MAX_CONNECTION_ID_BYTES: usize = 32;

/// The longest hop name accepted.
pub const MAX_HOP_BYTES: usize = 64;

impl Job {
    /// Parses and validates a job body from the queue.
    pub fn parse(body: &str) -> Result<Job, InvalidJob> {
        let mut job: Job = serde_json::from_str(body)?;
        if job.v != JOB_VERSION {
            return Err(InvalidJob::Version(job.v));
        }
        if job.id.is_empty() {
            return Err(InvalidJob::EmptyId);
        }
        if job.id.len() > MAX_ID_BYTES {
            return Err(InvalidJob::LongId(job.id.len()));
        }
        if let Some(segment) = job.segment {
            if job.target != Target::All {
                return Err(InvalidJob::SegmentWithoutScan);
            }
            segment.validate().map_err(InvalidJob::Segment)?;
        }
        if let Some(hop) = &job.hop
            && !is_hop_path(hop)
        {
            return Err(InvalidJob::Hop(hop.clone()));
        }
        if let Some(until) = &job.until
            && (!matches!(job.target, Target::Room(_))
                || until.is_empty()
                || until.len() > MAX_ID_BYTES)
        {
            return Err(InvalidJob::Until);
        }
        if job.pace == Some(0) {
            return Err(InvalidJob::Pace);
        }
        match (job.offset, &job.epoch) {
            (None, None) => {}
            (Some(offset), Some(epoch)) if offset >= 1 && is_epoch(epoch) => {}
            _ => return Err(InvalidJob::Position),
        }
        if let Target::Connections { ids, .. } = &mut job.target {
            if let Some(bad) = ids
                .iter()
                .find(|id| id.is_empty() || id.len() > MAX_CONNECTION_ID_BYTES)
            {
                return Err(InvalidJob::ConnectionId(bad.len()));
            }
            // A repeated id is posted once.
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            ids.retain(|id| seen.insert(id.clone()));
            if let Some(cursor) = &job.cursor
                && !ids.contains(cursor)
            {
                return Err(InvalidJob::CursorNotAnId);
            }
        }
        Ok(job)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("jobs always serialize")
    }

    /// The job as a queue message body, refused if over the queue's message limit.
    pub fn to_queue_body(&self) -> Result<String, JobTooLarge> {
        let body = self.to_json();
        if body.len() > MAX_JOB_BYTES {
            return Err(JobTooLarge {
                size: body.len(),
                limit: MAX_JOB_BYTES,
            });
        }
        Ok(body)
    }

    /// A new message's first job, as sendmessage writes it (and a backend's announcement, with
    /// no sender): a fresh id, accepted at `sent_at`, no cursor, attempt or hop, and no endpoint
    /// (the worker posts to its own).
    pub fn message(
        target: Target,
        payload: Box<RawValue>,
        sender: Option<String>,
        user: Option<String>,
        sent_at: i64,
    ) -> Job {
        Job {
            v: JOB_VERSION,
            id: uuid::Uuid::now_v7().to_string(),
            target,
            payload,
            sender,
            user,
            sent_at,
            cursor: None,
            segment: None,
            endpoint: None,
            attempt: 0,
            retry_since: None,
            hop: None,
            until: None,
            pace: None,
            offset: None,
            epoch: None,
        }
    }

    /// The same message at its place in its room's sequence.
    pub fn at(self, position: Position) -> Job {
        Job {
            offset: Some(position.offset),
            epoch: Some(position.epoch),
            ..self
        }
    }

    /// A job for the same message with another target, starting from the first page, with no
    /// range or pace of its own.
    pub fn retarget(&self, target: Target) -> Job {
        Job {
            target,
            cursor: None,
            segment: None,
            until: None,
            pace: None,
            ..self.clone()
        }
    }

    /// The key of this job's progress record: the message id and the hop. A hop has no `#`,
    /// so the key splits back at its last `#` and no two jobs share one.
    pub fn progress_key(&self) -> String {
        format!("{}#{}", self.id, self.hop.as_deref().unwrap_or(""))
    }

    /// The job's SQS FIFO message group (`ordering = "per_room"`): its room, so that a room's
    /// jobs run one at a time in the order they were accepted; a job for no room (`all`) is a
    /// group of its own, ordered against nothing. Room names are made only of characters a
    /// group id allows.
    pub fn order_group(&self) -> String {
        match self.target.room() {
            Some(room) => room.as_str().to_owned(),
            None => self.deduplication_id(),
        }
    }

    /// The job's SQS FIFO deduplication id: a digest of its progress key, so that a job sent
    /// twice within SQS's five minutes (a producer's retry after a lost answer, a hand-off
    /// redone) is queued once, whatever characters a producer's id holds.
    pub fn deduplication_id(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.progress_key().as_bytes()))
    }

    /// The hop of this job's hand-off named `step` (`c` the continuation, `r3` a retry, `s0` a
    /// Scan segment): a hash of the parent's hop and the step, so it has a fixed size however
    /// long the chain, and the same hand-off written twice gets the same name.
    pub fn child_hop(&self, step: &str) -> String {
        let parent = self.hop.as_deref().unwrap_or("");
        format!(
            "{:016x}",
            stable_hash(format!("{parent}/{step}").as_bytes())
        )
    }

    /// The bytes posted to each member.
    pub fn render(&self, mode: DeliveryMode) -> Bytes {
        match mode {
            DeliveryMode::Envelope => Frame::Message {
                id: &self.id,
                room: self.target.room().map(RoomName::as_str),
                from: self.sender.as_deref(),
                user: self.user.as_deref(),
                sent_at: self.sent_at,
                offset: self.offset,
                epoch: self.epoch.as_deref(),
                data: &self.payload,
            }
            .to_json()
            .into(),
            // The seed posted `data` itself: a JSON string goes out as its text.
            DeliveryMode::Raw => match serde_json::from_str::<String>(self.payload.get()) {
                Ok(text) => text.into(),
                Err(_) => Bytes::copy_from_slice(self.payload.get().as_bytes()),
            },
        }
    }
}

/// What members receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// `{"type":"message","id",...,"data"}`.
    #[default]
    Envelope,
    /// `data` as-is, like the seed tutorial, for existing clients.
    Raw,
}

impl FromStr for DeliveryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "envelope" => Ok(DeliveryMode::Envelope),
            "raw" => Ok(DeliveryMode::Raw),
            other => Err(format!(
                "unknown delivery mode {other:?}; use \"envelope\" or \"raw\""
            )),
        }
    }
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryMode::Envelope => "envelope",
            DeliveryMode::Raw => "raw",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(target: serde_json::Value) -> String {
        json!({"v":1,"id":"m1","target":target,"payload":{"a":[1,2]},"sender":"s1","sentAt":7})
            .to_string()
    }

    #[test]
    fn parses_each_target_shape() {
        assert_eq!(
            Job::parse(&body(json!({"room":"lobby"}))).unwrap().target,
            Target::Room(RoomName::lobby())
        );
        assert_eq!(
            Job::parse(&body(json!({"all":true}))).unwrap().target,
            Target::All
        );
        assert_eq!(
            Job::parse(&body(json!({"connections":["a","b"]})))
                .unwrap()
                .target,
            Target::Connections {
                ids: vec!["a".into(), "b".into()],
                room: None
            }
        );
    }

    #[test]
    fn refuses_ambiguous_or_malformed_jobs() {
        for target in [
            json!({}),
            json!({"all":false}),
            json!({"room":"lobby","all":true}),
            json!({"room":"bad room"}),
            json!({"rooms":"lobby"}),
            json!("lobby"),
        ] {
            assert!(
                Job::parse(&body(target.clone())).is_err(),
                "{target} accepted"
            );
        }
        assert!(matches!(Job::parse("not json"), Err(InvalidJob::Shape(_))));
        let v2 = body(json!({"all":true})).replace("\"v\":1", "\"v\":2");
        assert!(matches!(Job::parse(&v2), Err(InvalidJob::Version(2))));
        let mut job = Job::parse(&body(json!({"all":true}))).unwrap();
        job.segment = Some(Segment { index: 3, total: 3 });
        assert!(matches!(
            Job::parse(&job.to_json()),
            Err(InvalidJob::Segment(_))
        ));
        job.target = Target::Room(RoomName::lobby());
        job.segment = Some(Segment::WHOLE);
        assert!(matches!(
            Job::parse(&job.to_json()),
            Err(InvalidJob::SegmentWithoutScan)
        ));
        job.segment = None;
        for until in [String::new(), "x".repeat(MAX_ID_BYTES + 1)] {
            job.until = Some(until);
            assert!(matches!(Job::parse(&job.to_json()), Err(InvalidJob::Until)));
        }
        job.until = Some("M".into());
        assert!(Job::parse(&job.to_json()).is_ok());
        job.target = Target::All;
        assert!(matches!(Job::parse(&job.to_json()), Err(InvalidJob::Until)));
        job.until = None;
        job.pace = Some(0);
        assert!(matches!(Job::parse(&job.to_json()), Err(InvalidJob::Pace)));
        for (id, bytes) in [
            (String::new(), 0),
            (
                "x".repeat(MAX_CONNECTION_ID_BYTES + 1),
                MAX_CONNECTION_ID_BYTES + 1,
            ),
        ] {
            let target = json!({"connections": ["ok", id]});
            assert!(matches!(
                Job::parse(&body(target)),
                Err(InvalidJob::ConnectionId(n)) if n == bytes
            ));
        }
        let longest = "x".repeat(MAX_CONNECTION_ID_BYTES);
        assert!(Job::parse(&body(json!({"connections": [longest]}))).is_ok());
    }

    #[test]
    fn round_trips_through_json() {
        let mut job = Job::parse(&body(json!({"connections":["x"],"room":"r1"}))).unwrap();
        job.cursor = Some("x".into());
        job.attempt = 2;
        job.pace = Some(2_500);
        let again = Job::parse(&job.to_json()).unwrap();
        assert_eq!(again.pace, Some(2_500));
        assert_eq!(again.target, job.target);
        assert_eq!(again.cursor.as_deref(), Some("x"));
        assert_eq!(again.attempt, 2);
        assert_eq!(again.payload.get(), job.payload.get());
    }

    #[test]
    fn renders_envelope_and_raw_frames() {
        let job = Job::parse(&body(json!({"room":"lobby"}))).unwrap();
        let envelope: serde_json::Value =
            serde_json::from_slice(&job.render(DeliveryMode::Envelope)).unwrap();
        assert_eq!(
            envelope,
            json!({"type":"message","id":"m1","room":"lobby","from":"s1","sentAt":7,"data":{"a":[1,2]}})
        );
        assert_eq!(&job.render(DeliveryMode::Raw)[..], b"{\"a\":[1,2]}");
        let text = Job::parse(&body(json!({"room":"lobby"})).replace("{\"a\":[1,2]}", "\"Hello\""))
            .unwrap();
        assert_eq!(&text.render(DeliveryMode::Raw)[..], b"Hello");

        let mut signed = job.clone();
        signed.user = Some("alice".into());
        let envelope: serde_json::Value =
            serde_json::from_slice(&signed.render(DeliveryMode::Envelope)).unwrap();
        assert_eq!(
            envelope["user"], "alice",
            "the verified sender, beside from"
        );
        assert_eq!(envelope["from"], "s1");
        let again = Job::parse(&signed.to_json()).unwrap();
        assert_eq!(again.user.as_deref(), Some("alice"));
    }

    /// docs/contracts.md, which producers and clients read.
    fn contracts() -> String {
        let path = format!("{}/../docs/contracts.md", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    /// A job with every optional field set.
    fn every_field() -> Job {
        let mut job = Job::parse(&body(json!({"room":"lobby"}))).unwrap();
        job.user = Some("alice".into());
        job.cursor = Some("c".into());
        job.segment = Some(Segment { index: 0, total: 2 });
        job.endpoint = Some("https://x.example/dev".into());
        job.attempt = 1;
        job.retry_since = Some(8);
        job.hop = Some("h1".into());
        job.until = Some("z".into());
        job.pace = Some(100);
        job.offset = Some(42);
        job.epoch = Some("e1".into());
        job
    }

    fn keys(json: &[u8]) -> Vec<String> {
        let value: serde_json::Value = serde_json::from_slice(json).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// Every field a job can carry has its row in the job table of docs/contracts.md (a row
    /// may name two, as `offset`, `epoch`).
    #[test]
    fn the_contract_documents_every_job_field() {
        let contracts = contracts();
        let rows: Vec<&str> = contracts
            .split("| field | required | meaning |")
            .nth(1)
            .expect("docs/contracts.md has the job table (| field | required | meaning |)")
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.split('|').nth(1))
            .collect();
        let missing: Vec<String> = keys(every_field().to_json().as_bytes())
            .into_iter()
            .filter(|key| !rows.iter().any(|row| row.contains(&format!("`{key}`"))))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/contracts.md's job table has no row for {missing:?}"
        );
    }

    /// Every field of a delivered frame is in the sample of docs/contracts.md's "delivered
    /// frame" section.
    #[test]
    fn the_contract_documents_every_delivered_frame_field() {
        let contracts = contracts();
        let sample = contracts
            .split("(delivered frame)")
            .nth(1)
            .and_then(|section| section.split("```json\n").nth(1))
            .and_then(|block| block.split("\n```").next())
            .expect("docs/contracts.md shows a delivered frame in a ```json block");
        let missing: Vec<String> = keys(&every_field().render(DeliveryMode::Envelope))
            .into_iter()
            .filter(|key| !sample.contains(&format!("\"{key}\":")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/contracts.md's delivered frame lacks {missing:?}: {sample}"
        );
    }
}
