//! The worker's side of the queue: receive a batch, delete what was processed. Two sources:
//! [`LocalQueue`], an in-memory queue with the SQS semantics the pipeline relies on (standard
//! or FIFO), and [`SqsSource`], a real SQS queue (moto in tests).

mod groups;
mod local;
mod message;
mod source;
mod sqs;

pub use local::{LocalQueue, Parked, QueueSettings, Redriven};
pub use source::{JobSource, MAX_VISIBILITY_TIMEOUT, QueueDepths};
pub use sqs::SqsSource;
