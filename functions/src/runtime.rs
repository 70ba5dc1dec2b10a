//! What every Lambda binary does at start-up.

use crate::domain::now_epoch_millis;
use lambda_runtime::tracing::subscriber::{self, EnvFilter, filter::LevelFilter};
use std::time::Duration;
use tokio::time::Instant;

/// The runtime's own logs stay at info whatever level is asked: at trace it logs every raw
/// event, `?token=` and `Authorization` included.
const RUNTIME_TARGETS: &[&str] = &["lambda_runtime", "lambda_runtime_api_client"];

/// Logs as Lambda's advanced logging controls ask (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`; info by default), as the runtime's
/// `init_default_subscriber` does, but with the runtime's own logs capped at info.
pub fn init_logging() {
    let asked = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let collector = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(log_filter(&asked))
        .with_writer(std::io::stdout);
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    if format.eq_ignore_ascii_case("json") {
        collector.json().init();
    } else {
        collector.init();
    }
}

/// The filter for a `RUST_LOG`-style `asked` (bad directives are skipped), with the runtime's
/// targets capped at info.
fn log_filter(asked: &str) -> EnvFilter {
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(asked);
    for target in RUNTIME_TARGETS {
        if let Ok(capped) = format!("{target}=info").parse() {
            filter = filter.add_directive(capped);
        }
    }
    filter
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

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::tracing::dispatcher::{Dispatch, with_default};
    use lambda_runtime::tracing::{Level, enabled};

    fn enabled_at(asked: &str, target_is_runtime: bool) -> bool {
        let collector = subscriber::fmt()
            .with_env_filter(log_filter(asked))
            .finish();
        with_default(&Dispatch::new(collector), || match target_is_runtime {
            true => enabled!(target: "lambda_runtime::layers::api_response", Level::TRACE),
            false => enabled!(target: "fanout::handlers", Level::TRACE),
        })
    }

    #[test]
    fn the_runtime_never_logs_raw_events_whatever_the_level() {
        for asked in [
            "trace",
            "TRACE",
            "trace,lambda_runtime=trace",
            "lambda_runtime=trace",
        ] {
            assert!(!enabled_at(asked, true), "{asked}");
        }
        assert!(enabled_at("trace", false));
        assert!(!enabled_at("", false));
        assert!(!enabled_at("not a filter", false));
    }
}
