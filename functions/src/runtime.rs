//! What every Lambda binary does at start-up.

use crate::domain::now_epoch_millis;
use std::time::Duration;
use tokio::time::Instant;

/// Logs as Lambda's advanced logging controls ask (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`).
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// The invocation's deadline (epoch milliseconds, from the Lambda context) on tokio's clock.
pub fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    let now_ms = now_epoch_millis().unsigned_abs();
    Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}

/// A Lambda binary's start-up failed: the message names what to fix.
pub fn startup_error(error: impl std::fmt::Display) -> lambda_runtime::Error {
    format!("configuration error: {error}").into()
}
