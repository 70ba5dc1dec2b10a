//! The simulated API Gateway management API: `POST /{stage}/@connections/{id}` over HTTP/1.1 on
//! loopback, run as its own process so the worker's memory and CPU are the worker's alone.
//!
//! Each call waits a latency drawn from a distribution, then answers like API Gateway: 429
//! `LimitExceededException` beyond an account-style token bucket, 410 `GoneException` for the
//! members that are gone (decided by the id's hash), 200 otherwise. It counts deliveries per
//! member (so the report can name the lost and the duplicated), calls in flight, and 429s, and
//! serves the counts at `GET /stats` (`?full=1` adds the per-member analysis).

use crate::clock::epoch_us;
use crate::ids::{id_of, index_of, is_gone};
use crate::latency::Latency;
use crate::proc_stats;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// How early the endpoint may aim its timers to make up for their lateness.
const MAX_TIMER_OFFSET_US: i64 = 5_000;
const TIMER_OFFSET_SCALE: u64 = 1024;

/// API Gateway's account-level throttle: a token bucket of `burst` tokens refilled at `rate`
/// per second; a call without a token gets 429.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full, as an idle account's does.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub members: u64,
    pub latency: Latency,
    /// Requests per second and burst; `None` for no throttle.
    pub throttle: Option<(f64, f64)>,
    pub gone_fraction: f64,
    pub stage: String,
}

struct State {
    config: EndpointConfig,
    /// 200s per member, by index.
    delivered: Vec<AtomicU32>,
    calls: AtomicU64,
    ok_calls: AtomicU64,
    distinct: AtomicU64,
    gone_calls: AtomicU64,
    throttled: AtomicU64,
    foreign: AtomicU64,
    unsigned: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    connections: AtomicU64,
    first_call_us: AtomicU64,
    last_ok_us: AtomicU64,
    last_response_us: AtomicU64,
    /// Sums over calls of the latency drawn and of the time from arrival to response.
    drawn_us: AtomicU64,
    served_us: AtomicU64,
    /// How early timers are aimed (steered by their measured lateness), in 1/1024 us.
    timer_offset: AtomicU64,
    bucket: Option<Mutex<TokenBucket>>,
    /// 200s and 429s per 100 ms since the first call.
    timeline_ok: Vec<AtomicU32>,
    timeline_throttled: Vec<AtomicU32>,
    first_call: std::sync::OnceLock<Instant>,
}

/// The timeline's resolution and length.
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);
const TIMELINE_STEPS: usize = 20 * 60 * 10;

/// What `GET /stats` returns.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EndpointStats {
    pub members: u64,
    pub calls: u64,
    /// 200s, duplicates included.
    pub ok_calls: u64,
    /// Members that got at least one 200.
    pub distinct_delivered: u64,
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
    pub lost: u64,
    pub duplicates: u64,
    /// Members that got more than one 200.
    pub duplicated_members: u64,
}

impl State {
    fn stats(&self, full: bool) -> EndpointStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EndpointStats {
            members: self.config.members,
            calls: load(&self.calls),
            ok_calls: load(&self.ok_calls),
            distinct_delivered: load(&self.distinct),
            gone_calls: load(&self.gone_calls),
            throttled: load(&self.throttled),
            foreign: load(&self.foreign),
            unsigned: load(&self.unsigned),
            in_flight: load(&self.in_flight),
            max_in_flight: load(&self.max_in_flight),
            connections: load(&self.connections),
            first_call_us: load(&self.first_call_us),
            last_ok_us: load(&self.last_ok_us),
            last_response_us: load(&self.last_response_us),
            mean_drawn_ms: load(&self.drawn_us) as f64 / 1e3 / load(&self.calls).max(1) as f64,
            mean_served_ms: load(&self.served_us) as f64 / 1e3 / load(&self.calls).max(1) as f64,
            mean_in_flight: load(&self.served_us) as f64
                / load(&self.last_response_us)
                    .saturating_sub(load(&self.first_call_us))
                    .max(1) as f64,
            timer_offset_ms: (load(&self.timer_offset) / TIMER_OFFSET_SCALE) as f64 / 1e3,
            cpu_s: proc_stats::cpu_seconds().unwrap_or(0.0),
            full: full.then(|| self.full_stats()),
        }
    }

    fn full_stats(&self) -> FullStats {
        let mut full = FullStats::default();
        for (index, count) in self.delivered.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count > 1 {
                full.duplicates += u64::from(count - 1);
                full.duplicated_members += 1;
            }
            let gone = is_gone(&id_of(index as u64), self.config.gone_fraction);
            if gone {
                full.gone_members += 1;
            } else if count == 0 {
                full.lost += 1;
            }
        }
        let series = |steps: &[AtomicU32]| -> Vec<u32> {
            steps.iter().map(|n| n.load(Ordering::Relaxed)).collect()
        };
        let (mut ok, mut throttled) = (series(&self.timeline_ok), series(&self.timeline_throttled));
        let len = ok
            .iter()
            .zip(&throttled)
            .rposition(|(a, b)| *a > 0 || *b > 0)
            .map_or(0, |last| last + 1);
        ok.truncate(len);
        throttled.truncate(len);
        full.timeline_ok = ok;
        full.timeline_throttled = throttled;
        full
    }
}

struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves until killed; prints `listening PORT` on stdout once bound.
pub async fn serve(config: EndpointConfig, port: u16) -> std::io::Result<()> {
    let now = Instant::now();
    let state = Arc::new(State {
        delivered: (0..config.members).map(|_| AtomicU32::new(0)).collect(),
        bucket: config
            .throttle
            .map(|(rate, burst)| Mutex::new(TokenBucket::new(rate, burst, now))),
        config,
        calls: AtomicU64::new(0),
        ok_calls: AtomicU64::new(0),
        distinct: AtomicU64::new(0),
        gone_calls: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        unsigned: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        max_in_flight: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        first_call_us: AtomicU64::new(0),
        last_ok_us: AtomicU64::new(0),
        last_response_us: AtomicU64::new(0),
        drawn_us: AtomicU64::new(0),
        served_us: AtomicU64::new(0),
        timer_offset: AtomicU64::new(500 * TIMER_OFFSET_SCALE),
        timeline_ok: (0..TIMELINE_STEPS).map(|_| AtomicU32::new(0)).collect(),
        timeline_throttled: (0..TIMELINE_STEPS).map(|_| AtomicU32::new(0)).collect(),
        first_call: std::sync::OnceLock::new(),
    });
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    // A deep accept queue: the naive strategy opens thousands of connections at once.
    let listener = socket.listen(65_535)?;
    println!("listening {}", listener.local_addr()?.port());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors under the naive strategy's flood: wait, then go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    error_type: Option<&str>,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(error_type) = error_type {
        builder = builder.header("x-amzn-ErrorType", error_type);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path == "/stats" {
        let full = request.uri().query().is_some_and(|q| q.contains("full=1"));
        let body = serde_json::to_vec(&state.stats(full)).expect("stats serialize");
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid response");
    }
    let id = path
        .strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(state.config.stage.as_str()))
        .and_then(|rest| rest.strip_prefix("/@connections/"))
        .map(percent_decode);
    let (Some(id), true) = (id, request.method() == Method::POST) else {
        return reply(StatusCode::NOT_FOUND, None, r#"{"message":"Not Found"}"#);
    };

    let calls = state.calls.fetch_add(1, Ordering::Relaxed);
    if calls == 0 {
        state.first_call_us.store(epoch_us(), Ordering::Relaxed);
    }
    let first_call = *state.first_call.get_or_init(|| arrived);
    let in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&state.in_flight);
    state.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
    if !request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
    {
        state.unsigned.fetch_add(1, Ordering::Relaxed);
    }
    // Read the frame, as API Gateway would, so the connection stays reusable.
    let _ = request.into_body().collect().await;

    let latency = state.config.latency.sample(&mut rand::rng());
    let outcome = decide(state, &id, arrived);
    let step = (arrived.saturating_duration_since(first_call).as_millis()
        / TIMELINE_STEP.as_millis()) as usize;
    let timeline = match outcome {
        Outcome::Delivered => Some(&state.timeline_ok),
        Outcome::Throttled => Some(&state.timeline_throttled),
        _ => None,
    };
    if let Some(slot) = timeline.and_then(|t| t.get(step)) {
        slot.fetch_add(1, Ordering::Relaxed);
    }
    // tokio's timer fires on a 1 ms tick at or after the deadline, and the thread wakes a
    // little later still: aim early by the lateness measured so far, so that calls take the
    // latency drawn on average (the simulator's timer is not what the benchmark measures).
    let offset =
        Duration::from_micros(state.timer_offset.load(Ordering::Relaxed) / TIMER_OFFSET_SCALE);
    let aim = latency.saturating_sub(offset);
    if !aim.is_zero() {
        tokio::time::sleep_until(arrived + aim).await;
    }
    let served = arrived.elapsed();
    if !latency.is_zero() {
        // Each call moves the offset by 1/1024 of its error (kept in 1/1024 us, so small errors
        // count): a small gain, as calls answered on the same tick have correlated errors.
        let error = served.as_micros() as i64 - latency.as_micros() as i64;
        let old = state.timer_offset.load(Ordering::Relaxed) as i64;
        let new = (old + error).clamp(0, MAX_TIMER_OFFSET_US * TIMER_OFFSET_SCALE as i64);
        state.timer_offset.store(new as u64, Ordering::Relaxed);
    }
    state
        .drawn_us
        .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    state
        .served_us
        .fetch_add(served.as_micros() as u64, Ordering::Relaxed);
    state
        .last_response_us
        .fetch_max(epoch_us(), Ordering::Relaxed);
    match outcome {
        Outcome::Delivered => {
            state.last_ok_us.fetch_max(epoch_us(), Ordering::Relaxed);
            reply(StatusCode::OK, None, "")
        }
        Outcome::Gone => reply(
            StatusCode::GONE,
            Some("GoneException"),
            r#"{"message":null}"#,
        ),
        Outcome::Throttled => reply(
            StatusCode::TOO_MANY_REQUESTS,
            Some("LimitExceededException"),
            r#"{"message":"Rate exceeded"}"#,
        ),
        Outcome::Foreign => reply(
            StatusCode::BAD_REQUEST,
            Some("BadRequestException"),
            r#"{"message":"Invalid connectionId"}"#,
        ),
    }
}

enum Outcome {
    Delivered,
    Gone,
    Throttled,
    Foreign,
}

/// Decided when the call arrives: the throttle first (API Gateway refuses before doing any
/// work), then the connection. A delivery counts when it is decided, as API Gateway has pushed
/// the frame by the time it answers: a caller that times out and retries makes a duplicate.
fn decide(state: &State, id: &str, now: Instant) -> Outcome {
    if let Some(bucket) = &state.bucket {
        let granted = bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_take(now);
        if !granted {
            state.throttled.fetch_add(1, Ordering::Relaxed);
            return Outcome::Throttled;
        }
    }
    let Some(index) = index_of(id).filter(|&i| i < state.config.members) else {
        state.foreign.fetch_add(1, Ordering::Relaxed);
        return Outcome::Foreign;
    };
    if is_gone(id, state.config.gone_fraction) {
        state.gone_calls.fetch_add(1, Ordering::Relaxed);
        return Outcome::Gone;
    }
    state.ok_calls.fetch_add(1, Ordering::Relaxed);
    if state.delivered[index as usize].fetch_add(1, Ordering::Relaxed) == 0 {
        state.distinct.fetch_add(1, Ordering::Relaxed);
    }
    Outcome::Delivered
}

/// Decodes `%XX` escapes (the SDK escapes `=`, `+` and `/` in connection ids).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_burst_then_the_rate_and_never_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10.0, start);
        assert_eq!((0..20).filter(|_| bucket.try_take(start)).count(), 10);
        // 50 ms at 100/s refills 5 tokens.
        let later = start + Duration::from_millis(50);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
        // A long idle period refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(much_later)).count(), 10);
        // Over one second of steady calls, about `rate` get through.
        let mut granted = 0;
        for ms in 1..=1000 {
            let now = much_later + Duration::from_millis(ms);
            granted += (0..5).filter(|_| bucket.try_take(now)).count();
        }
        assert!((99..=101).contains(&granted), "{granted}");
    }

    #[test]
    fn escaped_ids_decode() {
        assert_eq!(percent_decode("ab%3D"), "ab=");
        assert_eq!(percent_decode("a%2Bb%2F"), "a+b/");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
