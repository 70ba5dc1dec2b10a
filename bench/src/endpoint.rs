//! The simulated API Gateway management API: `POST /{stage}/@connections/{id}` over HTTP/1.1 on
//! loopback, run as its own process so the worker's memory and CPU are the worker's alone.
//!
//! Each call waits a latency drawn from a distribution, then answers like API Gateway: 429
//! `LimitExceededException` beyond an account-style token bucket, 410 `GoneException` for the
//! members that are gone (decided by the id's hash), 200 otherwise. It counts deliveries per
//! member and message (so the report can name the lost and the duplicated), the order in which
//! each member got the room's messages (`--messages`: an inversion is a frame whose message
//! number is below one the member already got), calls in flight, and 429s, and
//! serves the counts at `GET /stats` (`?full=1` adds the per-member analysis) on a plain-HTTP
//! port of its own. With `--tls`, the worker's port speaks HTTPS (see [`crate::tls`]).

use crate::clock::epoch_us;
use crate::ids::{IdSpace, is_gone};
use crate::jobs::Board;
use crate::latency::Latency;
use crate::proc_stats;
use crate::throttle::TokenBucket;
use crate::tls;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How early the endpoint may aim its timers to make up for their lateness.
const MAX_TIMER_OFFSET_US: i64 = 5_000;
const TIMER_OFFSET_SCALE: u64 = 1024;

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub members: u64,
    /// Messages to the room (`bench-message-1` to `-M`).
    pub messages: u32,
    /// The job board keeps each room's messages in order (SQS FIFO).
    pub ordered: bool,
    pub latency: Latency,
    /// Requests per second and burst; `None` for no throttle.
    pub throttle: Option<(f64, f64)>,
    pub gone_fraction: f64,
    pub stage: String,
}

struct State {
    config: EndpointConfig,
    ids: IdSpace,
    /// The job queue of a run with several workers.
    jobs: Board,
    /// 200s per member and message, at `index * messages + message - 1`.
    delivered: Vec<AtomicU32>,
    /// Per member, the highest message number it got (0 before the first).
    last_message: Vec<AtomicU32>,
    /// Frames whose message number was below one their member had already got.
    inversions: AtomicU64,
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
    tls_failures: AtomicU64,
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
pub use crate::endpoint_stats::{EndpointStats, FullStats, TIMELINE_STEP};
const TIMELINE_STEPS: usize = 20 * 60 * 10;

impl State {
    fn stats(&self, full: bool) -> EndpointStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EndpointStats {
            members: self.config.members,
            calls: load(&self.calls),
            ok_calls: load(&self.ok_calls),
            messages: self.config.messages,
            distinct_delivered: load(&self.distinct),
            inversions: load(&self.inversions),
            gone_calls: load(&self.gone_calls),
            throttled: load(&self.throttled),
            foreign: load(&self.foreign),
            unsigned: load(&self.unsigned),
            in_flight: load(&self.in_flight),
            max_in_flight: load(&self.max_in_flight),
            connections: load(&self.connections),
            tls_failures: load(&self.tls_failures),
            dead_lettered: self.jobs.dead_lettered(),
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
        let messages = self.config.messages.max(1) as usize;
        for (index, counts) in self.delivered.chunks(messages).enumerate() {
            let gone = is_gone(&self.ids.id_of(index as u64), self.config.gone_fraction);
            if gone {
                full.gone_members += 1;
            }
            let mut duplicated = false;
            for count in counts {
                let count = count.load(Ordering::Relaxed);
                if count > 1 {
                    full.duplicates += u64::from(count - 1);
                    duplicated = true;
                }
                if !gone && count == 0 {
                    full.lost += 1;
                }
            }
            full.duplicated_members += u64::from(duplicated);
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

/// Serves until killed; prints `listening PORT STATS_PORT` on stdout once bound. With
/// `cert_file`, serves HTTPS on PORT with a fresh certificate, written there first.
pub async fn serve(
    config: EndpointConfig,
    port: u16,
    cert_file: Option<&Path>,
) -> std::io::Result<()> {
    let listener = listen(port)?;
    let stats = listen(0)?;
    let tls = cert_file.map(tls::write_self_signed).transpose()?;
    println!(
        "listening {} {}",
        listener.local_addr()?.port(),
        stats.local_addr()?.port()
    );
    serve_on(config, listener, stats, tls).await;
    Ok(())
}

fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    // A deep accept queue: the naive strategy opens thousands of connections at once.
    socket.listen(65_535)
}

/// Serves the worker on `listener` (over TLS with `tls`) and `GET /stats` on `stats`, plain
/// HTTP: the orchestrator polls it without TLS, and its polls are not the worker's connections.
pub async fn serve_on(
    config: EndpointConfig,
    listener: TcpListener,
    stats: TcpListener,
    tls: Option<TlsAcceptor>,
) {
    let now = Instant::now();
    let state = Arc::new(State {
        ids: IdSpace::new(config.members),
        jobs: Board::new(config.ordered),
        delivered: (0..config.members * u64::from(config.messages.max(1)))
            .map(|_| AtomicU32::new(0))
            .collect(),
        last_message: (0..config.members).map(|_| AtomicU32::new(0)).collect(),
        inversions: AtomicU64::new(0),
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
        tls_failures: AtomicU64::new(0),
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
    tokio::spawn(accept(stats, state.clone(), None, false));
    accept(listener, state, tls, true).await;
}

/// Accepts until killed; counts the connections of the worker's listener.
async fn accept(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>, worker: bool) {
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
        if worker {
            state.connections.fetch_add(1, Ordering::Relaxed);
        }
        let (state, tls) = (state.clone(), tls.clone());
        // The handshake in the connection's task: a slow one must not hold up the accepts.
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, state).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => serve_connection(stream, state).await,
                    Err(_) => {
                        state.tls_failures.fetch_add(1, Ordering::Relaxed);
                    }
                },
            }
        });
    }
}

async fn serve_connection<S>(stream: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, request).await) }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
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
    if path.starts_with("/jobs") && request.method() == Method::POST {
        let query = request.uri().query().map(str::to_owned);
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        let routed = state
            .jobs
            .route(&path, query.as_deref(), body.unwrap_or_default());
        let (status, body) = routed.unwrap_or((404, String::new()));
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response");
    }
    if path.starts_with("/progress/") && request.method() == Method::POST {
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        let routed = state
            .jobs
            .route_progress(&path, &body.unwrap_or_default())
            .await;
        let (status, body) = routed.unwrap_or((404, String::new()));
        return Response::builder()
            .status(status)
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
    // Read the frame, as API Gateway would, so the connection stays reusable; its message id
    // says which of the room's messages it is.
    let frame = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = message_number(&frame, state.config.messages);

    let latency = state.config.latency.sample(&mut rand::rng());
    let outcome = decide(state, &id, message, arrived);
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
fn decide(state: &State, id: &str, message: u32, now: Instant) -> Outcome {
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
    let Some(index) = state.ids.index_of(id) else {
        state.foreign.fetch_add(1, Ordering::Relaxed);
        return Outcome::Foreign;
    };
    if is_gone(id, state.config.gone_fraction) {
        state.gone_calls.fetch_add(1, Ordering::Relaxed);
        return Outcome::Gone;
    }
    state.ok_calls.fetch_add(1, Ordering::Relaxed);
    let slot = index * u64::from(state.config.messages.max(1)) + u64::from(message - 1);
    if state.delivered[slot as usize].fetch_add(1, Ordering::Relaxed) == 0 {
        state.distinct.fetch_add(1, Ordering::Relaxed);
    }
    let before = state.last_message[index as usize].fetch_max(message, Ordering::Relaxed);
    if before > message {
        state.inversions.fetch_add(1, Ordering::Relaxed);
    }
    Outcome::Delivered
}

/// The number of the room's message a frame carries (its envelope's `"id"`,
/// `bench-message-K`), within 1 to `messages`; 1 if it names none.
fn message_number(frame: &[u8], messages: u32) -> u32 {
    let needle = format!("\"id\":\"{}", crate::worker::MESSAGE_ID_PREFIX);
    let needle = needle.as_bytes();
    let number = frame
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| {
            frame[at + needle.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u32, |n, b| {
                    n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
                })
        })
        .unwrap_or(1);
    number.clamp(1, messages.max(1))
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
    fn frames_name_their_message() {
        let job = fanout::domain::Job::parse(&crate::worker::message_job(100, 17)).unwrap();
        let frame = job.render(fanout::domain::DeliveryMode::Envelope);
        assert_eq!(message_number(&frame, 200), 17);
        assert_eq!(
            message_number(&frame, 10),
            10,
            "clamped to the messages sent"
        );
        assert_eq!(message_number(b"{}", 5), 1);
    }

    #[test]
    fn escaped_ids_decode() {
        assert_eq!(percent_decode("ab%3D"), "ab=");
        assert_eq!(percent_decode("a%2Bb%2F"), "a+b/");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
