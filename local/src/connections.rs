//! The live WebSocket connections, by API Gateway-style connection id: what the
//! `@connections` API posts to, reads and closes, and the close codes they are closed with.
//!
//! # A client that stops reading
//!
//! Each connection's outbound frames wait in a queue of its own, bounded in bytes
//! (`--max-outbound-bytes`): a frame counts from when it is queued until the socket has taken
//! it (or it is discarded). Two things end a connection whose client does not read:
//!
//! - **The byte budget.** A frame that would take the queue over the budget is not queued: the
//!   connection is closed at once as a slow consumer (1001 "Going away", with the reason
//!   [`SLOW_CONSUMER`]), its queued frames are discarded, and the post is answered
//!   `410 GoneException`, as is every later one. The worker deletes a connection that answers
//!   410 and goes on with the rest of the room.
//!
//!   Not `429 LimitExceededException`, as this stack answered before: API Gateway answers 429
//!   for its account-wide throttle, and the worker treats it that way. Its pacer slows every
//!   post of the fan-out, and the member is tried again later, so one client that does not read
//!   would slow a room of thousands, and keep its memory pinned while it is retried. A 410 is
//!   about that one connection and final. Nor is the frame dropped with a `200`: the client
//!   would miss a message on a connection that looks healthy, whereas a closed connection tells
//!   it to reconnect (and its application to catch up).
//! - **The write timeout** (`--write-timeout`, enforced by the emulator's writer): a socket
//!   write that does not finish in time means the client's TCP window stayed shut. The
//!   connection leaves the registry at once (posts answer 410, counted as
//!   [`Registry::forget`]), its writer ends without touching the socket again, the read loop is
//!   told to stop, `$disconnect` runs and the socket is dropped. No close frame is sent: there
//!   is no room for one.
//!
//! So a client that never reads holds at most the budget, plus what the kernel buffers, for
//! at most the write timeout once its buffers are full.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use base64::Engine as _;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use tokio::sync::Notify;

// The close codes API Gateway sends, which [`Registry::close`] puts in its close frames.
/// `DELETE @connections/{id}`, and the answer to a client's own close.
pub const CLOSE_NORMAL: u16 = 1000;
/// Idle timeout, maximum connection duration, shutdown, a slow consumer.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// A frame or message over the limits.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The reason in the 1001 close frame of a connection closed for not reading.
pub const SLOW_CONSUMER: &str = "Going away: slow consumer";

/// One open socket.
pub struct LiveConnection {
    pub id: String,
    pub connected_at: SystemTime,
    pub source_ip: SocketAddr,
    pub user_agent: Option<String>,
    last_active: RwLock<SystemTime>,
    outbound: Outbound,
}

impl LiveConnection {
    pub fn last_active(&self) -> SystemTime {
        *self.last_active.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn touch(&self) {
        *self.last_active.write().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
    }

    /// The next thing for the socket: queued frames in order, then the close frame if one was
    /// asked for; `None` once the outbound queue is shut. Waits until there is something. For
    /// the connection's one writer.
    pub async fn next_outbound(&self) -> Option<Outgoing> {
        loop {
            {
                let mut queue = self.outbound.lock();
                if queue.shut {
                    return None;
                }
                if let Some(frame) = queue.frames.pop_front() {
                    return Some(Outgoing::Frame(frame));
                }
                if let Some(close) = queue.close.take() {
                    return Some(Outgoing::Close(close));
                }
            }
            // One consumer: a permit stored by a push in between wakes this at once.
            self.outbound.wake.notified().await;
        }
    }

    /// The socket took a frame of `bytes` (what [`payload_len`] says of it): the budget has
    /// them back.
    pub fn written(&self, bytes: usize) {
        let mut queue = self.outbound.lock();
        queue.bytes = queue.bytes.saturating_sub(bytes);
    }

    /// The writer is gone: nothing is queued from now on (a post answers 410), and what was
    /// queued is freed. Idempotent.
    pub fn shut_outbound(&self) {
        let mut queue = self.outbound.lock();
        queue.shut = true;
        queue.frames = VecDeque::new();
        queue.close = None;
        queue.bytes = 0;
        drop(queue);
        self.outbound.wake.notify_one();
    }

    /// Bytes queued for the socket, the frame being written included.
    pub fn outbound_bytes(&self) -> usize {
        self.outbound.lock().bytes
    }

    /// Whether a close was asked for (or the writer is gone).
    pub fn is_closing(&self) -> bool {
        let queue = self.outbound.lock();
        queue.closing || queue.shut
    }
}

/// What the writer takes from [`LiveConnection::next_outbound`].
#[derive(Debug, PartialEq)]
pub enum Outgoing {
    Frame(Message),
    /// The last thing to write.
    Close(CloseFrame),
}

/// The bytes a frame counts for against the budget: its payload.
pub fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) => data.len(),
        Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(_) => 0,
    }
}

/// One connection's frames waiting for its writer.
struct Outbound {
    queue: Mutex<Queue>,
    wake: Notify,
    /// `--max-outbound-bytes`.
    budget: usize,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Message>,
    /// Bytes of `frames`, plus the frame the writer is writing.
    bytes: usize,
    /// Set once a close is asked for: nothing more is queued.
    closing: bool,
    /// The close frame to write after `frames`, until the writer takes it.
    close: Option<CloseFrame>,
    /// The writer is gone.
    shut: bool,
}

/// Why [`Outbound::push`] did not queue a frame.
enum Refused {
    Closing,
    OverBudget,
}

impl Outbound {
    fn new(budget: usize) -> Self {
        Self {
            queue: Mutex::default(),
            wake: Notify::new(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, message: Message) -> Result<(), Refused> {
        let len = payload_len(&message);
        let mut queue = self.lock();
        if queue.closing || queue.shut {
            return Err(Refused::Closing);
        }
        if queue.bytes.saturating_add(len) > self.budget {
            return Err(Refused::OverBudget);
        }
        queue.bytes += len;
        queue.frames.push_back(message);
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    /// A close after the frames already queued (they go first, as API Gateway sends what it
    /// accepted before a DELETE). Whether this asked for it (not already closing).
    fn close_after_queued(&self, frame: CloseFrame) -> bool {
        let mut queue = self.lock();
        if queue.closing || queue.shut {
            return false;
        }
        queue.closing = true;
        queue.close = Some(frame);
        drop(queue);
        self.wake.notify_one();
        true
    }

    /// A close in place of the frames queued, which are discarded: for a slow consumer. The
    /// frame being written, if any, goes first (the writer's write timeout bounds it).
    fn close_now(&self, frame: CloseFrame) {
        let mut queue = self.lock();
        if queue.shut {
            return;
        }
        let discarded: usize = queue.frames.drain(..).map(|f| payload_len(&f)).sum();
        queue.frames = VecDeque::new();
        queue.bytes = queue.bytes.saturating_sub(discarded);
        queue.closing = true;
        queue.close = Some(frame);
        drop(queue);
        self.wake.notify_one();
    }
}

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No such connection, or it is closing.
    Gone,
    /// The frame would have taken the connection's outbound queue over its budget: the client
    /// is not reading. The connection is now closing (1001, [`SLOW_CONSUMER`]) and gone.
    SlowConsumer,
}

#[derive(Default)]
pub struct Registry {
    /// The connections the management API can reach. A connection leaves as soon as it starts
    /// closing, so a post after a DELETE answers 410 at once, as in API Gateway.
    connections: RwLock<HashMap<String, Arc<LiveConnection>>>,
    /// Socket tasks still running (closing ones included, until their `$disconnect` ran).
    sockets: AtomicUsize,
    /// Wakes whoever waits for every socket task to finish (shutdown).
    all_finished: Notify,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a socket whose outbound queue holds at most `max_outbound_bytes`; its writer
    /// takes the frames from [`LiveConnection::next_outbound`].
    pub fn open(
        &self,
        id: String,
        source_ip: SocketAddr,
        user_agent: Option<String>,
        max_outbound_bytes: usize,
    ) -> Arc<LiveConnection> {
        let now = SystemTime::now();
        let connection = Arc::new(LiveConnection {
            id: id.clone(),
            connected_at: now,
            source_ip,
            user_agent,
            last_active: RwLock::new(now),
            outbound: Outbound::new(max_outbound_bytes),
        });
        self.sockets.fetch_add(1, Ordering::SeqCst);
        self.write().insert(id, connection.clone());
        connection
    }

    /// A socket task is done, `$disconnect` included, and its socket dropped.
    pub fn finished(&self) {
        if self.sockets.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.all_finished.notify_waiters();
        }
    }

    /// Socket tasks still running: open connections, and closing ones until their
    /// `$disconnect` ran and their socket is dropped.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::SeqCst)
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveConnection>> {
        self.read().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a frame for one client: text if it is UTF-8, as API Gateway does. A frame over
    /// the connection's byte budget closes it as a slow consumer (see the module's docs).
    pub fn send(&self, id: &str, data: Bytes) -> Result<(), SendError> {
        let connection = self.get(id).ok_or(SendError::Gone)?;
        let message = match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(data),
        };
        match connection.outbound.push(message) {
            Ok(()) => Ok(()),
            Err(Refused::Closing) => Err(SendError::Gone),
            Err(Refused::OverBudget) => {
                self.remove(&connection);
                connection
                    .outbound
                    .close_now(close_frame(CLOSE_GOING_AWAY, SLOW_CONSUMER));
                tracing::info!(
                    connection_id = %id,
                    queued_bytes = connection.outbound_bytes(),
                    "closing a slow consumer: its outbound queue is full"
                );
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Closes one client's socket with this code, after the frames already queued; from now
    /// on it is gone.
    pub fn close(&self, id: &str, code: u16, reason: &'static str) -> Result<(), SendError> {
        let connection = self.write().remove(id).ok_or(SendError::Gone)?;
        connection
            .outbound
            .close_after_queued(close_frame(code, reason));
        Ok(())
    }

    /// Takes a connection out without a close frame (its socket cannot take one): from now on
    /// it is gone. Whether it was still there.
    pub fn forget(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }

    /// Closes every socket (shutdown), then waits until their tasks finish or `timeout`.
    pub async fn close_all(&self, code: u16, reason: &'static str, timeout: std::time::Duration) {
        let all: Vec<_> = self
            .write()
            .drain()
            .map(|(_, connection)| connection)
            .collect();
        for connection in &all {
            connection
                .outbound
                .close_after_queued(close_frame(code, reason));
        }
        let wait = async {
            loop {
                let finished = self.all_finished.notified();
                if self.sockets.load(Ordering::SeqCst) == 0 {
                    return;
                }
                finished.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }

    /// Removes `connection` if it is still the one registered under its id.
    fn remove(&self, connection: &Arc<LiveConnection>) {
        let mut connections = self.write();
        if connections
            .get(&connection.id)
            .is_some_and(|registered| Arc::ptr_eq(registered, connection))
        {
            connections.remove(&connection.id);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LiveConnection>>> {
        self.connections.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LiveConnection>>> {
        self.connections.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// A connection id in API Gateway's style: 16 characters of base64, like `Dx4sXe1ZoAMCJvw=`.
pub fn new_connection_id() -> String {
    let bytes: [u8; 11] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BUDGET: usize = 1000;

    fn open(registry: &Registry, id: &str) -> Arc<LiveConnection> {
        registry.open(id.into(), "127.0.0.1:1".parse().unwrap(), None, BUDGET)
    }

    /// What the writer would take next, without waiting.
    async fn next(connection: &LiveConnection) -> Option<Outgoing> {
        tokio::time::timeout(Duration::from_millis(50), connection.next_outbound())
            .await
            .expect("something to write")
    }

    #[test]
    fn ids_look_like_api_gateways() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert_ne!(id, new_connection_id());
    }

    #[tokio::test]
    async fn sends_to_open_connections_and_reports_the_rest() {
        let registry = Registry::new();
        let connection = open(&registry, "a");
        registry.send("a", Bytes::from_static(b"hi")).unwrap();
        assert_eq!(
            next(&connection).await,
            Some(Outgoing::Frame(Message::Text("hi".into())))
        );
        registry.send("a", Bytes::from_static(&[0xff])).unwrap();
        assert_eq!(
            next(&connection).await,
            Some(Outgoing::Frame(Message::Binary(Bytes::from_static(&[
                0xff
            ]))))
        );
        assert_eq!(registry.send("b", Bytes::new()), Err(SendError::Gone));
        registry.close("a", CLOSE_NORMAL, "").unwrap();
        assert!(registry.is_empty());
        assert_eq!(
            registry.send("a", Bytes::new()),
            Err(SendError::Gone),
            "gone once closing"
        );
        assert_eq!(registry.close("a", CLOSE_NORMAL, ""), Err(SendError::Gone));
    }

    #[tokio::test]
    async fn queued_frames_count_against_the_budget_until_written() {
        let registry = Registry::new();
        let connection = open(&registry, "a");
        let frame = Bytes::from(vec![b'x'; 400]);
        registry.send("a", frame.clone()).unwrap();
        registry.send("a", frame.clone()).unwrap();
        assert_eq!(connection.outbound_bytes(), 800);
        // Taken by the writer but not written yet: still counted.
        let Some(Outgoing::Frame(first)) = next(&connection).await else {
            panic!("a frame first")
        };
        assert_eq!(connection.outbound_bytes(), 800);
        connection.written(payload_len(&first));
        assert_eq!(connection.outbound_bytes(), 400);
        // 400 queued + 600 is exactly the budget.
        registry
            .send("a", Bytes::from(vec![b'y'; 600]))
            .expect("up to the budget is fine");
        assert_eq!(connection.outbound_bytes(), 1000);
    }

    #[tokio::test]
    async fn a_frame_over_the_budget_closes_the_connection_as_a_slow_consumer() {
        let registry = Registry::new();
        let connection = open(&registry, "slow");
        let _other = open(&registry, "fine");
        registry.send("slow", Bytes::from(vec![b'x'; 600])).unwrap();
        // The writer is stuck writing the first frame; two more wait behind it.
        let Some(Outgoing::Frame(_)) = next(&connection).await else {
            panic!("a frame first")
        };
        registry.send("slow", Bytes::from(vec![b'x'; 300])).unwrap();
        assert_eq!(
            registry.send("slow", Bytes::from(vec![b'x'; 101])),
            Err(SendError::SlowConsumer)
        );
        // Gone at once: out of the registry, later posts answer 410, and the queued frame is
        // discarded; only the one being written still counts.
        assert!(registry.get("slow").is_none());
        assert_eq!(
            registry.send("slow", Bytes::from_static(b"x")),
            Err(SendError::Gone)
        );
        assert_eq!(connection.outbound_bytes(), 600);
        assert!(connection.is_closing());
        // The writer's next (and last) write is the close frame.
        assert_eq!(
            next(&connection).await,
            Some(Outgoing::Close(close_frame(
                CLOSE_GOING_AWAY,
                SLOW_CONSUMER
            )))
        );
        // The others are untouched.
        registry
            .send("fine", Bytes::from(vec![b'x'; 1000]))
            .unwrap();
        assert_eq!(registry.len(), 1);
    }

    #[tokio::test]
    async fn a_close_goes_out_after_what_was_queued_before_it() {
        let registry = Registry::new();
        let connection = open(&registry, "a");
        registry.send("a", Bytes::from_static(b"bye")).unwrap();
        registry.close("a", CLOSE_NORMAL, "").unwrap();
        assert_eq!(
            next(&connection).await,
            Some(Outgoing::Frame(Message::Text("bye".into())))
        );
        assert_eq!(
            next(&connection).await,
            Some(Outgoing::Close(close_frame(CLOSE_NORMAL, "")))
        );
    }

    #[tokio::test]
    async fn a_shut_queue_frees_its_frames_and_takes_no_more() {
        let registry = Registry::new();
        let connection = open(&registry, "a");
        registry.send("a", Bytes::from(vec![b'x'; 500])).unwrap();
        assert!(registry.forget("a"));
        assert!(!registry.forget("a"));
        connection.shut_outbound();
        assert_eq!(connection.outbound_bytes(), 0);
        assert_eq!(next(&connection).await, None);
        assert!(connection.outbound.push(Message::Text("x".into())).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn close_all_does_not_wait_on_a_full_queue() {
        let registry = Registry::new();
        let connection = open(&registry, "a");
        registry.send("a", Bytes::from(vec![b'x'; BUDGET])).unwrap();
        // Nothing reads: close_all still returns by its timeout, and the close is queued.
        registry
            .close_all(CLOSE_GOING_AWAY, "Going away", Duration::from_secs(1))
            .await;
        assert!(connection.is_closing());
        assert!(registry.is_empty());
        assert_eq!(registry.sockets(), 1, "its task has not finished");
        registry.finished();
        assert_eq!(registry.sockets(), 0);
    }
}
