//! # fanout: a serverless WebSocket fan-out pipeline
//!
//! Clients connect to an API Gateway WebSocket API and join a room. `sendmessage` validates a
//! message and puts one job on SQS; a batch worker pages through the room's connections and
//! posts to each through the management API, with bounded parallelism, retries and
//! continuations, deleting connections that are gone.
//!
//! The crate is laid out as ports and adapters:
//!
//! - [`domain`]: rooms, connections, jobs and frames, and their validation. Pure.
//! - [`ports`]: the traits the logic needs: [`ports::ConnectionStore`], [`ports::JobQueue`],
//!   [`ports::ConnectionGateway`].
//! - [`engine`]: the fan-out engine the worker runs.
//! - [`auth`]: the `$connect` authorizer's JWT verification, the issuer's keys (JWKS) and the
//!   rooms a token grants.
//! - [`handlers`]: one per Lambda (typed event in, typed response out), written against the
//!   ports only, so the same handlers run in Lambda and in the local stack.
//! - [`adapters`]: the ports on DynamoDB, SQS and the management API (real SDKs), and in memory;
//!   the issuer's JWKS over HTTP; the authorizer's secret from Secrets Manager.
//! - [`config`]: configuration from environment variables, validated at start-up.
//! - [`metrics`]: CloudWatch embedded metric format lines for the worker.
//! - [`runtime`]: what every Lambda binary does at start (logging, SDK configuration).
//!
//! The binaries in `src/bin/` are thin: build configuration and clients once, then
//! `lambda_runtime::run` a handler.

pub mod adapters;
pub mod auth;
pub mod config;
pub mod domain;
pub mod engine;
pub mod handlers;
pub mod metrics;
pub mod ports;
pub mod runtime;
