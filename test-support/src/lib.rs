//! What the tests (and examples) of every crate share:
//!
//! - [`moto`]: a moto server for DynamoDB and SQS, and SDK configuration pointed at it;
//! - [`http`]: a small HTTP/1.1 client for the local stack's and the benchmark endpoint's plain
//!   endpoints;
//! - [`ws`]: a WebSocket client, as a browser or wscat would be, for the local stack, and an
//!   [`ws::Audience`] of many reading at once and counting what they receive;
//! - [`net`]: a free port, and waiting until a process listens on one;
//! - [`pages`]: every page of a room or a scan, for tests of a store's paging;
//! - [`prometheus`]: one sample of a Prometheus text exposition (the local stack's `/metrics`);
//! - [`stack_process`]: the local stack's binary in a process of its own, for the examples that
//!   measure it from outside.

pub mod http;
pub mod moto;
pub mod net;
pub mod pages;
pub mod prometheus;
pub mod stack_process;
pub mod ws;
