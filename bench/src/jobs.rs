//! The job queue of a run with several workers: held by the endpoint process (on its plain
//! stats port), shared by the worker processes as SQS is by worker Lambdas. A worker takes one
//! job at a time (a batch of one), runs it, and says it is done; what it hands off (a split
//! room's parts, continuations, retries) goes back on the board. The run is over when the
//! board is empty and no job is running.

use async_trait::async_trait;
use bytes::Bytes;
use fanout::domain::Job;
use fanout::ports::{JobQueue, QueueError};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a worker hears when it asks for a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Job(String),
    /// Nothing ready now; jobs are still running or delayed.
    Wait,
    /// Nothing left and nothing running: the fan-out is over.
    Done,
}

#[derive(Default)]
pub struct Board {
    state: Mutex<BoardState>,
}

#[derive(Default)]
struct BoardState {
    ready: VecDeque<(Instant, String)>,
    running: u64,
    dead_lettered: u64,
}

impl Board {
    pub fn push(&self, body: String, delay: Duration) {
        let mut state = self.lock();
        state.ready.push_back((Instant::now() + delay, body));
    }

    pub fn take(&self) -> Take {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(at) = state.ready.iter().position(|(visible, _)| *visible <= now) {
            let (_, body) = state.ready.remove(at).expect("found");
            state.running += 1;
            return Take::Job(body);
        }
        if state.ready.is_empty() && state.running == 0 {
            Take::Done
        } else {
            Take::Wait
        }
    }

    pub fn done(&self) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
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

    /// Answers `POST /jobs?delay_ms=N` (push), `POST /jobs/take`, `POST /jobs/done` and
    /// `POST /jobs/dead`; `None` for any other request.
    pub fn route(&self, path: &str, query: Option<&str>, body: Bytes) -> Option<(u16, String)> {
        match path {
            "/jobs" => {
                let delay_ms = query
                    .and_then(|q| q.strip_prefix("delay_ms="))
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&body).into_owned();
                self.push(body, Duration::from_millis(delay_ms));
                Some((200, String::new()))
            }
            "/jobs/take" => Some(match self.take() {
                Take::Job(body) => (200, body),
                Take::Wait => (204, String::new()),
                Take::Done => (410, String::new()),
            }),
            "/jobs/done" => {
                self.done();
                Some((200, String::new()))
            }
            "/jobs/dead" => {
                self.dead_letter();
                Some((200, String::new()))
            }
            _ => None,
        }
    }
}

/// A worker's side of the board: the engine's [`JobQueue`] over loopback HTTP.
pub struct BoardClient {
    addr: SocketAddr,
}

impl BoardClient {
    pub fn new(port: u16) -> Self {
        Self {
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

    async fn call(&self, path: &str, body: &str) -> Result<(u16, String), QueueError> {
        let request = fanout_test_support::http::request(self.addr, "POST", path, body);
        let response = tokio::time::timeout(Duration::from_secs(2), request)
            .await
            .map_err(|_| QueueError::Unavailable("the job board did not answer".into()))?
            .map_err(|e| QueueError::Unavailable(format!("the job board: {e}")))?;
        Ok((response.status, response.body))
    }

    pub async fn take(&self) -> Result<Take, QueueError> {
        Ok(match self.call("/jobs/take", "").await? {
            (200, body) => Take::Job(body),
            (410, _) => Take::Done,
            _ => Take::Wait,
        })
    }

    pub async fn done(&self) -> Result<(), QueueError> {
        self.call("/jobs/done", "").await.map(drop)
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

    async fn retry_later(&self, _receipt: &str, _delay: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_board_is_done_only_when_empty_and_idle() {
        let board = Board::default();
        assert_eq!(board.take(), Take::Done);
        board.push("a".into(), Duration::ZERO);
        board.push("b".into(), Duration::from_millis(50));
        assert_eq!(board.take(), Take::Job("a".into()));
        assert_eq!(board.take(), Take::Wait, "b is delayed, a is running");
        board.done();
        assert_eq!(board.take(), Take::Wait, "b is still delayed");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(board.take(), Take::Job("b".into()));
        board.done();
        assert_eq!(board.take(), Take::Done);
    }
}
