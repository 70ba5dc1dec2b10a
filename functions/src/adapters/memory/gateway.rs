use crate::ports::{ConnectionGateway, PostError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A management API in memory: records every frame posted, answers 410 for connections marked
/// gone, and can be scripted to fail. It measures the number of posts in flight at once, so
/// tests can assert the engine's concurrency limit instead of trusting it.
#[derive(Default)]
pub struct MemoryGateway {
    latency: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    calls: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    delivered: HashMap<String, Vec<Bytes>>,
    gone: HashSet<String>,
    scripted: HashMap<String, VecDeque<PostError>>,
    behaviour: GatewayBehaviour,
}

/// Failures applied to every connection, in call order.
#[derive(Debug, Clone, Default)]
pub struct GatewayBehaviour {
    /// The next this-many calls answer 429.
    pub throttle_next: usize,
}

impl MemoryGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every post takes this long (on tokio's clock, so paused-time tests stay instant).
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// Posts to these connections answer 410.
    pub fn mark_gone(&self, connection_id: &str) {
        self.lock().gone.insert(connection_id.to_owned());
    }

    /// The next posts to this connection fail with these errors, in order.
    pub fn script(&self, connection_id: &str, errors: impl IntoIterator<Item = PostError>) {
        self.lock()
            .scripted
            .entry(connection_id.to_owned())
            .or_default()
            .extend(errors);
    }

    pub fn set_behaviour(&self, behaviour: GatewayBehaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Frames delivered to each connection.
    pub fn deliveries(&self) -> HashMap<String, Vec<Bytes>> {
        self.lock().delivered.clone()
    }

    pub fn delivered_to(&self, connection_id: &str) -> Vec<Bytes> {
        self.lock()
            .delivered
            .get(connection_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets what was delivered (not the scripts or gone marks).
    pub fn clear_deliveries(&self) {
        self.lock().delivered.clear();
    }

    /// The most posts that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every call, successful or not.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer(&self, connection_id: &str, frame: Bytes) -> Result<(), PostError> {
        let mut state = self.lock();
        if let Some(error) = state
            .scripted
            .get_mut(connection_id)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        if state.gone.contains(connection_id) {
            return Err(PostError::Gone);
        }
        if state.behaviour.throttle_next > 0 {
            state.behaviour.throttle_next -= 1;
            return Err(PostError::Throttled);
        }
        state
            .delivered
            .entry(connection_id.to_owned())
            .or_default()
            .push(frame);
        Ok(())
    }
}

/// Decrements the in-flight count even if the post's future is dropped mid-flight.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl ConnectionGateway for MemoryGateway {
    async fn post(
        &self,
        _endpoint: &str,
        connection_id: &str,
        frame: Bytes,
    ) -> Result<(), PostError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&self.in_flight);
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.answer(connection_id, frame)
    }
}
