//! A room's sequence and its history (docs/contracts.md, "Offsets, history and recovery").
//!
//! Every message accepted for a room takes the room's next `offset` within the room's `epoch`;
//! the room keeps its last `HISTORY_SIZE` messages, none older than `HISTORY_TTL_SECONDS`. A
//! client that reconnects with the last offset and epoch it saw recovers what it missed, or is
//! told that history no longer reaches back (`complete: false`).
//!
//! Recovery is complete when the client's own last message (offset F) or the one after it is
//! still kept, in the same epoch: messages expire and are trimmed oldest first, so everything
//! after a kept message is kept too. An offset missing between kept ones was taken by a send
//! that failed before its message was written (it was never delivered) or is being written
//! right now (it is delivered live): nothing to recover either way.

use crate::config::settings;
use crate::domain::message::ClientFrame;
use crate::domain::{ClientError, ErrorCode, RoomName};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The longest epoch accepted from a client or a job.
pub const MAX_EPOCH_BYTES: usize = 64;

/// How much a room keeps (`HISTORY_SIZE`, `HISTORY_TTL_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The last this-many messages of a room are kept; 0 keeps none (offsets still number the
    /// messages, and every recovery is incomplete).
    pub size: u64,
    /// None older than this.
    pub ttl: std::time::Duration,
}

impl HistoryConfig {
    /// A room's sequence outlives its last message's expiry by this much, so a client that
    /// saw that message and reconnects later is told "nothing new", not "another epoch".
    pub const SEQUENCE_GRACE_SECONDS: i64 = 24 * 3_600;

    /// When an entry accepted at `sent_at_ms` expires (epoch seconds).
    pub fn entry_expiry(&self, sent_at_ms: i64) -> i64 {
        sent_at_ms
            .div_euclid(1000)
            .saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// Until when a sequence that took an offset at `now_ms` is kept (epoch seconds).
    pub fn sequence_expiry(&self, now_ms: i64) -> i64 {
        self.entry_expiry(now_ms)
            .saturating_add(Self::SEQUENCE_GRACE_SECONDS)
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            size: settings::HISTORY_SIZE.default_value(),
            ttl: settings::HISTORY_TTL_SECONDS.default_duration(),
        }
    }
}

/// Where a room's sequence stands: the last offset taken, in its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

/// A fresh epoch for a room whose sequence (re)starts: random, so that a client holding an
/// offset of an earlier sequence of the same room can tell.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether a client's or a producer's epoch can be one of ours: 1 to 64 ASCII letters and
/// digits.
pub fn is_epoch(epoch: &str) -> bool {
    (1..=MAX_EPOCH_BYTES).contains(&epoch.len()) && epoch.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One message kept in its room's history: what its delivered frames carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub offset: u64,
    pub epoch: String,
    /// The message id, as in its ack and frames.
    pub id: String,
    pub payload: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub sent_at: i64,
    /// Epoch seconds after which the entry is expired (DynamoDB's TTL attribute; reads filter
    /// by it, since the TTL deletes late).
    pub expires_at: i64,
}

impl PartialEq for HistoryEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.offset, &self.epoch, &self.id, self.payload.get())
            == (other.offset, &other.epoch, &other.id, other.payload.get())
            && (&self.sender, &self.user, self.sent_at, self.expires_at)
                == (&other.sender, &other.user, other.sent_at, other.expires_at)
    }
}

impl HistoryEntry {
    /// A job's message as its room keeps it; `None` for a job with no offset.
    pub fn of(job: &crate::domain::Job, expires_at: i64) -> Option<Self> {
        Some(Self {
            offset: job.offset?,
            epoch: job.epoch.clone()?,
            id: job.id.clone(),
            payload: job.payload.clone(),
            sender: job.sender.clone(),
            user: job.user.clone(),
            sent_at: job.sent_at,
            expires_at,
        })
    }

    /// The frame a member receives for it.
    pub fn frame(&self, room: &RoomName) -> String {
        crate::domain::Frame::Message {
            id: &self.id,
            room: Some(room.as_str()),
            from: self.sender.as_deref(),
            user: self.user.as_deref(),
            sent_at: self.sent_at,
            offset: Some(self.offset),
            epoch: Some(&self.epoch),
            data: &self.payload,
        }
        .to_json()
    }

    /// Whether the entry is still kept at `now` (epoch milliseconds).
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at.saturating_mul(1000) > now_ms
    }
}

/// What a client asks to recover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recover {
    /// Everything after the offset it last saw, in that epoch (`offset` 0: from the start).
    Since { offset: u64, epoch: String },
    /// The room's last `n` messages: its state on joining.
    Last(u64),
}

/// A `{"action":"recover",...}` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverRequest {
    /// The room named, if any; it must be the connection's.
    pub room: Option<RoomName>,
    pub what: Recover,
}

const RECOVER_USAGE: &str = "send {\"action\":\"recover\",\"offset\":O,\"epoch\":\"E\"} with the last offset and epoch you saw, or {\"action\":\"recover\",\"last\":N}";

/// Reads a `recover` frame. `last` is capped at `max_last` (the history's size).
pub fn parse_recover(
    body: Option<&str>,
    is_base64: bool,
    max_last: u64,
) -> Result<RecoverRequest, ClientError> {
    let frame = ClientFrame::parse(body, is_base64)?;
    let invalid = |what: &str| {
        ClientError::new(
            ErrorCode::InvalidMessage,
            format!("{what}; {RECOVER_USAGE}"),
        )
    };
    let field = |name: &str| frame.field(name).map(RawValue::get);
    let room = frame.room()?;
    let number = |name: &str, raw: &str| -> Result<u64, ClientError> {
        serde_json::from_str::<u64>(raw)
            .map_err(|_| invalid(&format!("\"{name}\" must be a whole number from 0")))
    };
    let what = match (field("offset"), field("epoch"), field("last")) {
        (Some(offset), Some(epoch), None) => {
            let offset = number("offset", offset)?;
            let epoch: String = serde_json::from_str(epoch)
                .ok()
                .filter(|epoch: &String| is_epoch(epoch))
                .ok_or_else(|| {
                    invalid("\"epoch\" must be the epoch string of a frame you received")
                })?;
            Recover::Since { offset, epoch }
        }
        // More than the room keeps gets what it keeps.
        (None, None, Some(last)) => Recover::Last(number("last", last)?.min(max_last)),
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(invalid("\"offset\" and \"epoch\" go together"));
        }
        (None, None, None) => return Err(invalid("nothing to recover")),
        _ => return Err(invalid("either \"offset\" and \"epoch\", or \"last\"")),
    };
    Ok(RecoverRequest { room, what })
}

/// One recovery's reading of a room's history: which offsets to read, which of those read go
/// to the client, and whether what it got is complete.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The room's position when the recovery began; `None`: the room has no sequence.
    top: Option<Position>,
    /// Offsets to read, inclusive; `None`: nothing to read.
    range: Option<(u64, u64)>,
    /// Entries above this go to the client.
    after: u64,
    /// How completeness is decided.
    rule: Rule,
    /// Entries read and sent so far.
    sent: u64,
    /// Whether an entry the rule needs was read.
    anchored: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Complete as it stands.
    Known(bool),
    /// Complete if this offset or the next one is among the entries read: the client's own
    /// last offset, or the one before the last messages asked for.
    Anchor(u64),
}

impl Recovery {
    /// Plans a recovery of `what` from a room at `top` whose history keeps `size` messages.
    pub fn plan(top: Option<Position>, what: &Recover, size: u64) -> Self {
        let mut recovery = Self {
            top: top.clone(),
            range: None,
            after: 0,
            rule: Rule::Known(false),
            sent: 0,
            anchored: false,
        };
        let Some(top) = top else {
            // No sequence: nothing was ever kept, or it all expired. A client with an epoch
            // saw a sequence that is gone; one asking for the last messages has them all.
            recovery.rule = Rule::Known(matches!(what, Recover::Last(_)));
            return recovery;
        };
        // The oldest offset the history may still keep.
        let floor = top.offset.saturating_sub(size) + 1;
        match what {
            Recover::Since { offset, epoch } => {
                if *epoch != top.epoch || *offset > top.offset || size == 0 {
                    return recovery;
                }
                recovery.after = *offset;
                if *offset == top.offset {
                    recovery.rule = Rule::Known(true);
                    return recovery;
                }
                // Read from the client's own offset: it anchors completeness.
                let from = (*offset).max(floor).max(1);
                recovery.range = Some((from, top.offset));
                recovery.rule = Rule::Anchor(*offset);
            }
            Recover::Last(n) => {
                let n = (*n).min(size).min(top.offset);
                if n == 0 {
                    recovery.rule = Rule::Known(true);
                    return recovery;
                }
                // Anchored like a client's offset, on the one before the first asked for
                // (read when history may still keep it, not sent): an offset missing after it
                // was a send that failed, not a message lost.
                let from = top.offset - n + 1;
                recovery.after = from - 1;
                recovery.range = Some(((from - 1).max(floor).max(1), top.offset));
                recovery.rule = Rule::Anchor(from - 1);
            }
        }
        recovery
    }

    /// The offsets to read, inclusive, if any.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.range
    }

    /// The epoch to read in.
    pub fn epoch(&self) -> Option<&str> {
        self.top.as_ref().map(|top| top.epoch.as_str())
    }

    /// Entries expire by their `sentAt`, taken before the offset: two sends racing can take
    /// offsets in one order and times in the other, the few seconds a send takes at most
    /// apart, so an entry may expire a little before the one under it. An anchor counts only
    /// with this long left (epoch seconds), when every entry after it is surely still kept.
    pub const ANCHOR_MARGIN_SECONDS: i64 = 60;

    /// Takes note of an entry read (in offset order), kept until `expires_at`, at `now` (epoch
    /// seconds); whether it goes to the client.
    pub fn read(&mut self, offset: u64, expires_at: i64, now: i64) -> bool {
        if let Rule::Anchor(anchor) = self.rule
            && (offset == anchor || offset == anchor + 1)
            && expires_at.saturating_sub(now) >= Self::ANCHOR_MARGIN_SECONDS
        {
            self.anchored = true;
        }
        let send = offset > self.after;
        self.sent += u64::from(send);
        send
    }

    /// The frame that ends the recovery: `from` the offset asked after, `to` the room's top.
    pub fn finish(&self, room: &RoomName) -> Recovered {
        let complete = match self.rule {
            Rule::Known(complete) => complete,
            Rule::Anchor(_) => self.anchored,
        };
        Recovered {
            room: room.clone(),
            from: self.after,
            to: self.top.as_ref().map_or(0, |top| top.offset),
            epoch: self.top.as_ref().map(|top| top.epoch.clone()),
            complete,
            count: self.sent,
        }
    }
}

/// The `{"type":"recovered",...}` frame's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovered {
    pub room: RoomName,
    /// Messages after this offset were asked for.
    pub from: u64,
    /// The room's last offset when the recovery began (0: no sequence); later ones come live.
    pub to: u64,
    /// The room's epoch (absent: no sequence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// False when history no longer reaches back: the client must reload its state.
    pub complete: bool,
    /// Messages sent before this frame.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Option<Position> {
        Some(Position {
            offset,
            epoch: "e1".into(),
        })
    }

    fn since(offset: u64, epoch: &str) -> Recover {
        Recover::Since {
            offset,
            epoch: epoch.into(),
        }
    }

    /// Reads `kept` (ascending) through the plan; what was sent, and the final frame.
    fn run(top: Option<Position>, what: Recover, size: u64, kept: &[u64]) -> (Vec<u64>, Recovered) {
        let mut recovery = Recovery::plan(top, &what, size);
        let mut sent = Vec::new();
        if let Some((from, to)) = recovery.range() {
            for &offset in kept.iter().filter(|o| (from..=to).contains(*o)) {
                if recovery.read(offset, i64::MAX, 0) {
                    sent.push(offset);
                }
            }
        }
        (sent, recovery.finish(&RoomName::parse("r").unwrap()))
    }

    #[test]
    fn a_client_whose_last_offset_is_kept_gets_everything_after_it() {
        let kept: Vec<u64> = (1..=10).collect();
        let (sent, done) = run(at(10), since(6, "e1"), 100, &kept);
        assert_eq!(sent, [7, 8, 9, 10]);
        assert!(done.complete);
        assert_eq!((done.from, done.to, done.count), (6, 10, 4));
    }

    #[test]
    fn a_gap_in_the_middle_is_a_send_that_never_landed_not_a_loss() {
        let (sent, done) = run(at(10), since(6, "e1"), 100, &[6, 7, 9, 10]);
        assert_eq!(sent, [7, 9, 10]);
        assert!(done.complete);
    }

    #[test]
    fn history_that_no_longer_reaches_back_is_incomplete() {
        // Expired: 5 and 6 are gone, 7 on are kept.
        let (sent, done) = run(at(10), since(5, "e1"), 100, &[7, 8, 9, 10]);
        assert_eq!(sent, [7, 8, 9, 10], "what is kept still comes");
        assert!(!done.complete);
        // Trimmed by size: the window is 6..=10.
        let kept: Vec<u64> = (1..=10).collect();
        let (sent, done) = run(at(10), since(2, "e1"), 5, &kept);
        assert_eq!(sent, [6, 7, 8, 9, 10]);
        assert!(!done.complete);
        // The client's own message expired but the next one is kept: nothing missed.
        let (_, done) = run(at(10), since(6, "e1"), 100, &[7, 8, 9, 10]);
        assert!(done.complete);
    }

    #[test]
    fn another_epoch_or_no_sequence_or_no_history_is_incomplete_with_nothing_sent() {
        let kept: Vec<u64> = (1..=10).collect();
        for (top, what, size) in [
            (at(10), since(6, "e0"), 100),
            (None, since(6, "e1"), 100),
            (at(10), since(6, "e1"), 0),
            (at(10), since(11, "e1"), 100),
        ] {
            let (sent, done) = run(top.clone(), what.clone(), size, &kept);
            assert!(sent.is_empty() && !done.complete, "{top:?} {what:?} {size}");
        }
    }

    #[test]
    fn nothing_new_is_complete_without_a_read() {
        let recovery = Recovery::plan(at(10), &since(10, "e1"), 100);
        assert_eq!(recovery.range(), None);
        assert!(recovery.finish(&RoomName::parse("r").unwrap()).complete);
        let (sent, done) = run(at(3), since(0, "e1"), 100, &[1, 2, 3]);
        assert_eq!((sent, done.complete), (vec![1, 2, 3], true));
    }

    #[test]
    fn an_anchor_about_to_expire_does_not_vouch_for_what_follows() {
        let mut recovery = Recovery::plan(at(10), &since(6, "e1"), 100);
        let margin = Recovery::ANCHOR_MARGIN_SECONDS;
        assert!(
            !recovery.read(6, 1_000 + margin - 1, 1_000),
            "the anchor is not sent"
        );
        // 7 is gone: a send that failed, or one that raced 6 and expired just before it.
        for offset in 8..=10 {
            assert!(recovery.read(offset, 5_000, 1_000));
        }
        let done = recovery.finish(&RoomName::parse("r").unwrap());
        assert!(!done.complete, "7 may have expired just before 6: {done:?}");
        let mut recovery = Recovery::plan(at(10), &since(6, "e1"), 100);
        recovery.read(6, 1_000 + margin, 1_000);
        assert!(recovery.finish(&RoomName::parse("r").unwrap()).complete);
    }

    #[test]
    fn the_last_n_are_the_rooms_state_on_joining() {
        let kept: Vec<u64> = (1..=10).collect();
        let (sent, done) = run(at(10), Recover::Last(3), 100, &kept);
        assert_eq!((sent, done.complete, done.from), (vec![8, 9, 10], true, 7));
        let (sent, done) = run(at(2), Recover::Last(5), 100, &kept);
        assert_eq!(
            (sent, done.complete),
            (vec![1, 2], true),
            "fewer than asked"
        );
        // 9 is a send that failed (never delivered): nothing is missing.
        let (sent, done) = run(at(10), Recover::Last(3), 100, &[8, 10]);
        assert_eq!((sent, done.complete), (vec![8, 10], true));
        let (sent, done) = run(at(10), Recover::Last(3), 100, &[7, 9, 10]);
        assert_eq!(
            (sent, done.complete),
            (vec![9, 10], true),
            "7 anchors, not sent"
        );
        // 8 trimmed or expired, and 7 with it: history no longer reaches back.
        let (sent, done) = run(at(10), Recover::Last(3), 100, &[9, 10]);
        assert_eq!((sent, done.complete), (vec![9, 10], false));
        // All that history keeps: the first one kept anchors it.
        let (sent, done) = run(at(10), Recover::Last(3), 3, &[8, 9, 10]);
        assert_eq!((sent, done.complete), (vec![8, 9, 10], true));
        let (sent, done) = run(None, Recover::Last(3), 100, &[]);
        assert_eq!((sent.len(), done.complete, done.to), (0, true, 0));
    }

    #[test]
    fn recover_frames_are_read_strictly() {
        let parse = |body: &str| parse_recover(Some(body), false, 100);
        assert_eq!(
            parse(r#"{"action":"recover","offset":4,"epoch":"ab12"}"#).unwrap(),
            RecoverRequest {
                room: None,
                what: since(4, "ab12")
            }
        );
        assert_eq!(
            parse(r#"{"action":"recover","room":"lobby","last":20}"#)
                .unwrap()
                .what,
            Recover::Last(20)
        );
        for bad in [
            r#"{"action":"recover"}"#,
            r#"{"action":"recover","offset":4}"#,
            r#"{"action":"recover","epoch":"a"}"#,
            r#"{"action":"recover","offset":-1,"epoch":"a"}"#,
            r#"{"action":"recover","offset":1.5,"epoch":"a"}"#,
            r#"{"action":"recover","offset":1,"epoch":"a b"}"#,
            r#"{"action":"recover","offset":1,"epoch":""}"#,
            r#"{"action":"recover","offset":1,"epoch":"a","last":2}"#,
            r#"{"action":"recover","last":"5"}"#,
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidMessage, "{bad}: {error}");
        }
        let error = parse(r#"{"action":"recover","last":5,"room":"no room"}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRoom, "{error}");
        assert_eq!(
            parse(r#"{"action":"recover","last":101}"#).unwrap().what,
            Recover::Last(100),
            "more than history keeps asks for what it keeps"
        );
        let long = format!(
            r#"{{"action":"recover","offset":1,"epoch":"{}"}}"#,
            "a".repeat(65)
        );
        assert!(parse(&long).is_err());
    }
}
