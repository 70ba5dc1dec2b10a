//! Adapters: the ports implemented on the real AWS SDKs (the connections, history and progress
//! tables, the queues, the management API) and in memory, the issuer's JWKS over
//! HTTP, and the authorizer's secret from Secrets Manager.

pub mod aws;
pub mod dynamodb;
pub mod history_table;
pub mod jwks;
pub mod management;
pub mod memory;
pub mod progress_table;
pub mod publish_log_table;
pub mod secrets;
pub mod sqs;
