//! # fanout-local: the whole pipeline on one machine
//!
//! One process runs what AWS runs, calling the same handlers as the Lambdas:
//!
//! - [`emulator`]: a WebSocket server that behaves like API Gateway's WebSocket API
//!   (`$connect` with query string and headers, route selection on `action`, route responses,
//!   `$disconnect`, frame and message limits, idle and maximum durations).
//! - [`management`]: the `@connections` API over HTTP, with API Gateway's status codes; the
//!   worker reaches it through the real aws-sdk-apigatewaymanagement client.
//! - [`faults`]: what the management API can be told to inject (500, 503, 429, hangs, latency).
//! - [`app`]: what the handlers share (store, queue, sockets, metrics, settings, limits).
//! - [`connections`]: the open sockets by connection id, each with its outbound queue bounded
//!   in bytes (a client that does not read is dropped), and the close codes they get.
//! - [`queue`]: an SQS-like queue in memory (delays, visibility timeout, redelivery, dead-letter
//!   queue; or FIFO, by room), or a real SQS queue; [`worker`]: the event source mapping's loop, whose
//!   invocations can be killed mid-run.
//! - [`backend`]: in-memory store, queue and progress records, or DynamoDB and SQS through the
//!   SDKs.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format.
//! - [`throttle`]: DynamoDB's write limit on one room's partition, emulated (`--room-write-rate`).
//! - [`access`]: who may reach the stack: loopback `Host` names, the stack's own pages (and
//!   `--allowed-origin`), the admin token, JSON POSTs, signed `@connections`.
//! - [`admin`]: the operators' API under `/admin` (status, rooms, dead-letter queue),
//!   for the ops CLI `wsfanout --local URL`.
//! - [`page`]: the browser page at `/` (`local/static/`, compiled in).
//! - [`publish`]: `POST /publish`, the backends' door, signed with SigV4 as IAM checks it.
//! - [`stack`]: the composition root: wiring, routes, start and graceful shutdown;
//!   [`options`]: the command line, where every default lives.
//!
//! Modules depend downward only: `stack` uses everything; `admin` uses `access`, `app`,
//! `options` and `queue`; `page` uses `app` and `emulator`; `publish` uses `app` and `auth`;
//! `emulator` and `management` use `app`, `connections` and `metrics` (and `management`
//! `auth`); `app` uses `access`, `auth`, `connections`, `faults`, `metrics` and `queue`;
//! `options` uses `access`, `faults` and `queue`; `auth` uses `access`; `access` and `throttle`
//! use nothing here; nothing uses `stack`.

pub mod access;
pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod connections;
pub mod emulator;
pub mod faults;
pub mod management;
pub mod metrics;
pub mod options;
pub mod page;
pub mod publish;
pub mod queue;
pub mod stack;
pub mod throttle;
pub mod worker;

pub use options::Options;
pub use stack::LocalStack;
