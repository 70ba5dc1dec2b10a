//! What the endpoint reports at `GET /stats`: its counts, and (`?full=1`) the per-member
//! analysis and the timeline.

use serde::Serialize;
use std::time::Duration;

/// The timeline's resolution.
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);

/// What `GET /stats` returns.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EndpointStats {
    pub members: u64,
    /// Messages to the room (`--messages`).
    pub messages: u32,
    pub calls: u64,
    /// 200s, duplicates included.
    pub ok_calls: u64,
    /// Members that got at least one 200, per message: (member, message) pairs delivered.
    pub distinct_delivered: u64,
    /// 200s whose message number was below one their member had already got: a member saw
    /// the room's messages out of order.
    pub inversions: u64,
    /// 410s.
    pub gone_calls: u64,
    /// 429s.
    pub throttled: u64,
    /// Calls for ids that are not members.
    pub foreign: u64,
    /// Calls without a SigV4 `Authorization` header.
    pub unsigned: u64,
    pub in_flight: u64,
    pub max_in_flight: u64,
    /// TCP connections accepted: about the worker's concurrency when its pool reuses them.
    pub connections: u64,
    /// TLS handshakes that failed (with `--tls`): a worker that does not trust the certificate.
    pub tls_failures: u64,
    /// Jobs the workers sharing the board sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Epoch microseconds of the first call and of the last 200.
    pub first_call_us: u64,
    pub last_ok_us: u64,
    pub last_response_us: u64,
    /// Mean latency drawn from the distribution, and mean time from a call's arrival to its
    /// response (the drawn latency plus the endpoint's own delay), in milliseconds.
    pub mean_drawn_ms: f64,
    pub mean_served_ms: f64,
    /// Calls in flight at the endpoint, averaged over the run (Little's law: total service
    /// time / elapsed). Below the worker's concurrency, the gap is time spent in the worker or
    /// on the wire, not waiting for the endpoint.
    pub mean_in_flight: f64,
    /// How early the endpoint aimed its timers at the end, in milliseconds.
    pub timer_offset_ms: f64,
    pub cpu_s: f64,
    /// With `?full=1`: members that are gone (410 by design), members neither gone nor
    /// delivered, and extra 200s beyond one per member.
    pub full: Option<FullStats>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FullStats {
    /// 200s and 429s per 100 ms from the first call to the last.
    pub timeline_ok: Vec<u32>,
    pub timeline_throttled: Vec<u32>,
    pub gone_members: u64,
    /// (member, message) pairs neither gone nor delivered.
    pub lost: u64,
    pub duplicates: u64,
    /// Members that got some message more than once.
    pub duplicated_members: u64,
}
