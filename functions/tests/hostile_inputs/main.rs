//! Hostile input: a seeded corpus of bad client frames, bad jobs and bad room names, through the
//! public API on the in-memory adapters. The property everywhere: bad input never panics and
//! never loses data. Every client frame gets an answer (status 200 and an ack or an error frame
//! with a documented code); every job record ends processed, dead-lettered with a reason, or
//! reported for redelivery; every `$connect` gets 200 or 400 with a reason.
//!
//! Deterministic: every input comes from `StdRng` with a fixed seed, so a failure names an
//! input that fails again on the next run.
//!
//! - `frame_corpus`: the frames a client can send, with the answer each must get.
//! - `frames`: those frames through `sendmessage` and `$default`.
//! - `job_fields`: a job record as its fields, and a valid one of any target.
//! - `job_corpus`: the job records a worker can be handed.
//! - `jobs`: those records, and the jobs `sendmessage` acked, through `Job::parse` and the
//!   worker's batches: processed, dead-lettered with a reason, or reported.
//! - `connect`: room names and query strings through `$connect`.
//! - `support`: the seed, generators, fixtures and the tally every topic shares.

mod connect;
mod frame_corpus;
mod frames;
mod job_corpus;
mod job_fields;
mod jobs;
mod support;
