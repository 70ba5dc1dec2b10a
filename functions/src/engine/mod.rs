//! The fan-out engine: turns jobs into posts, page by page, within one shared in-flight limit,
//! and hands whatever it cannot finish back to the queue so no one is skipped.
//!
//! - [`Engine::run_batch`] runs every job of an SQS batch concurrently under one
//!   [`tokio::sync::Semaphore`] (`FANOUT_CONCURRENCY`) and one [`pacer::Pacer`], and returns
//!   before the deadline whatever hangs (see [`deliver`]).
//! - A job run ([`run`]) claims the job's progress record, reads its targets a page at a time
//!   (prefetching the next), posts through lanes that carry on across pages, and checkpoints
//!   as it goes, so a job delivered again resumes instead of starting over.
//! - Near the deadline it stops and hands back ([`handoff`]) the rest of the target (a cursor),
//!   the posts it did not make, and transient failures as a later attempt after a growing
//!   delay; past the retry budget, those go to the dead-letter queue with their ids.
//! - A job that cannot be processed at all is reported for SQS to redeliver, soon; one that
//!   never could be (invalid, too large a frame) goes to the dead-letter queue with the reason.

pub mod backoff;
mod batch;
mod config;
mod deliver;
mod feed;
mod handoff;
mod hold;
mod pacer;
mod run;
mod split;
mod stats;

pub use batch::{BatchItem, BatchReport, Engine, JobFailure};
pub use config::EngineConfig;
pub use pacer::Pacer;
pub use stats::FanoutStats;

#[cfg(test)]
mod tests;
