//! What every Lambda binary does at start-up.

use crate::domain::now_epoch_millis;
use lambda_runtime::tracing::subscriber::filter::{FilterExt, FilterFn, LevelFilter};
use lambda_runtime::tracing::subscriber::layer::{Filter, SubscriberExt};
use lambda_runtime::tracing::subscriber::util::SubscriberInitExt;
use lambda_runtime::tracing::subscriber::{EnvFilter, Layer, Registry, fmt};
use lambda_runtime::tracing::{Level, Metadata};
use std::str::FromStr;
use std::time::Duration;
use tokio::time::Instant;

/// The runtime's targets (`lambda_runtime`, `lambda_runtime_api_client`) log at most at info,
/// whatever level or directive is asked: at trace the runtime logs every raw event, `?token=`
/// and `Authorization` included.
const RUNTIME_TARGETS: &str = "lambda_runtime";

/// Logs as Lambda's advanced logging controls ask, as the runtime's `init_default_subscriber`
/// does (the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else info; `RUST_LOG`'s
/// directives; JSON when `AWS_LAMBDA_LOG_FORMAT` says so), but with the runtime's own logs
/// capped at info.
pub fn init_logging() {
    let level = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|var| LevelFilter::from_str(&std::env::var(var).ok()?).ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = log_filter(level, &std::env::var("RUST_LOG").unwrap_or_default());
    let layer = fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    if format.eq_ignore_ascii_case("json") {
        Registry::default()
            .with(layer.json().with_filter(filter))
            .init();
    } else {
        Registry::default().with(layer.with_filter(filter)).init();
    }
}

/// `level` for whatever `directives` (`RUST_LOG` style; bad ones are skipped) do not name, and
/// never more than info for the runtime's targets, however a directive names them.
fn log_filter(level: LevelFilter, directives: &str) -> impl Filter<Registry> + use<> {
    let asked = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives);
    let runtime_capped: fn(&Metadata<'_>) -> bool =
        |meta| !meta.target().starts_with(RUNTIME_TARGETS) || *meta.level() <= Level::INFO;
    asked.and(FilterFn::new(runtime_capped))
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
    use lambda_runtime::tracing::enabled;

    fn enabled_at(level: LevelFilter, directives: &str, target_is_runtime: bool) -> bool {
        let layer = fmt::layer().with_filter(log_filter(level, directives));
        with_default(
            &Dispatch::new(Registry::default().with(layer)),
            || match target_is_runtime {
                true => enabled!(target: "lambda_runtime::layers::api_response", Level::TRACE),
                false => enabled!(target: "fanout::handlers", Level::TRACE),
            },
        )
    }

    #[test]
    fn the_runtime_never_logs_raw_events_whatever_is_asked() {
        for directives in [
            "trace",
            "TRACE",
            "lambda_runtime=trace",
            "lambda_runtime::layers=trace",
            "lambda_runtime::layers::api_response=trace",
            "[{body}]=trace",
        ] {
            assert!(
                !enabled_at(LevelFilter::TRACE, directives, true),
                "{directives}"
            );
        }
        assert!(!enabled_at(LevelFilter::TRACE, "", true));
        assert!(enabled_at(LevelFilter::TRACE, "", false));
        assert!(enabled_at(LevelFilter::INFO, "fanout=trace", false));
        assert!(!enabled_at(LevelFilter::INFO, "", false));
        assert!(!enabled_at(LevelFilter::INFO, "not a filter", false));
    }
}
