//! The connection gateway on API Gateway's management API (`POST @connections/{id}`).
//!
//! [`ManagementGateway`] is what the worker runs: each post signed with SigV4 (`aws-sigv4`'s
//! key derivation and signature, the day's key kept; credentials from the SDK's provider
//! chain) and sent over one hyper + rustls pool. It costs a third to two fifths of the CPU of the
//! SDK's per-call machinery (docs/benchmarks.md), and CPU is what a Lambda worker buys with its
//! memory size. [`SdkManagementGateway`] is the same call through
//! the SDK's client: the reference the signed path is tested against, and the benchmark's
//! baseline.

mod credentials;
mod sdk;
mod signed;
mod sigv4;
mod wire;

pub use sdk::SdkManagementGateway;
pub use signed::ManagementGateway;
