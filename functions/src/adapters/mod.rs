//! Adapters: the ports implemented on the real AWS SDKs and in memory.

pub mod aws;
pub mod dynamodb;
pub mod management;
pub mod memory;
pub mod progress_table;
pub mod sqs;
