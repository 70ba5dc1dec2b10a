//! The live WebSocket connections, by API Gateway-style connection id: what the
//! `@connections` API posts to, reads and closes, and the close codes they are closed with.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use base64::Engine as _;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::sync::{Notify, mpsc};

// The close codes API Gateway sends, which [`Registry::close`] puts in its close frames.
/// `DELETE @connections/{id}`, and the answer to a client's own close.
pub const CLOSE_NORMAL: u16 = 1000;
/// Idle timeout, maximum connection duration, shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// A frame or message over the limits.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Frames queued to one client before a post answers 429: a slow reader must not make the
/// server hold unbounded memory.
pub const OUTBOUND_QUEUE: usize = 1024;

/// One open socket.
pub struct LiveConnection {
    pub id: String,
    pub connected_at: SystemTime,
    pub source_ip: SocketAddr,
    pub user_agent: Option<String>,
    last_active: RwLock<SystemTime>,
    outbound: mpsc::Sender<Message>,
}

impl LiveConnection {
    pub fn last_active(&self) -> SystemTime {
        *self.last_active.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn touch(&self) {
        *self.last_active.write().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
    }
}

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No such connection, or it is closing.
    Gone,
    /// The client is not reading fast enough.
    Backlogged,
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

    /// Registers a socket and returns the receiving end of its outbound queue.
    pub fn open(
        &self,
        id: String,
        source_ip: SocketAddr,
        user_agent: Option<String>,
    ) -> (Arc<LiveConnection>, mpsc::Receiver<Message>) {
        let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
        let now = SystemTime::now();
        let connection = Arc::new(LiveConnection {
            id: id.clone(),
            connected_at: now,
            source_ip,
            user_agent,
            last_active: RwLock::new(now),
            outbound,
        });
        self.sockets.fetch_add(1, Ordering::SeqCst);
        self.write().insert(id, connection.clone());
        (connection, receiver)
    }

    /// A socket task is done, `$disconnect` included.
    pub fn finished(&self) {
        if self.sockets.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.all_finished.notify_waiters();
        }
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

    /// Queues a frame for one client: text if it is UTF-8, as API Gateway does.
    pub fn send(&self, id: &str, data: Bytes) -> Result<(), SendError> {
        let connection = self.get(id).ok_or(SendError::Gone)?;
        let message = match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(data),
        };
        connection
            .outbound
            .try_send(message)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => SendError::Backlogged,
                mpsc::error::TrySendError::Closed(_) => SendError::Gone,
            })
    }

    /// Closes one client's socket with this code; from now on it is gone.
    pub fn close(&self, id: &str, code: u16, reason: &'static str) -> Result<(), SendError> {
        let connection = self.write().remove(id).ok_or(SendError::Gone)?;
        close(&connection, code, reason);
        Ok(())
    }

    /// Closes every socket (shutdown), then waits until their tasks finish or `timeout`.
    pub async fn close_all(&self, code: u16, reason: &'static str, timeout: std::time::Duration) {
        let all: Vec<_> = self
            .write()
            .drain()
            .map(|(_, connection)| connection)
            .collect();
        for connection in &all {
            close(connection, code, reason);
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LiveConnection>>> {
        self.connections.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LiveConnection>>> {
        self.connections.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn close(connection: &LiveConnection, code: u16, reason: &'static str) {
    // A close must get through even when the data queue is full, so it may wait in a task.
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    if let Err(mpsc::error::TrySendError::Full(frame)) = connection.outbound.try_send(frame) {
        let outbound = connection.outbound.clone();
        tokio::spawn(async move {
            let _ = outbound.send(frame).await;
        });
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
        let (_, mut receiver) = registry.open("a".into(), "127.0.0.1:1".parse().unwrap(), None);
        registry.send("a", Bytes::from_static(b"hi")).unwrap();
        assert_eq!(receiver.recv().await, Some(Message::Text("hi".into())));
        registry.send("a", Bytes::from_static(&[0xff])).unwrap();
        assert_eq!(
            receiver.recv().await,
            Some(Message::Binary(Bytes::from_static(&[0xff])))
        );
        assert_eq!(registry.send("b", Bytes::new()), Err(SendError::Gone));
        for _ in 0..OUTBOUND_QUEUE {
            registry.send("a", Bytes::from_static(b"x")).unwrap();
        }
        assert_eq!(
            registry.send("a", Bytes::from_static(b"x")),
            Err(SendError::Backlogged)
        );
        registry.close("a", CLOSE_NORMAL, "").unwrap();
        assert!(registry.is_empty());
        assert_eq!(
            registry.send("a", Bytes::new()),
            Err(SendError::Gone),
            "gone once closing"
        );
        drop(receiver);
    }
}
