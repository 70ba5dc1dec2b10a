//! Configuration from environment variables, read once at start-up. Every error names the
//! variable and says what it accepts.

use crate::adapters::dynamodb::TableConfig;
use crate::adapters::progress_table::ProgressTableConfig;
use crate::domain::DeliveryMode;
use crate::engine::EngineConfig;
use crate::handlers::connect::ConnectConfig;
use crate::handlers::sendmessage::SendConfig;
use crate::metrics::EmfConfig;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {var} is required: {what}")]
    Missing {
        var: &'static str,
        what: &'static str,
    },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// Where variables come from: the process environment, or a map in tests.
pub trait Source {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

fn required(
    env: &impl Source,
    var: &'static str,
    what: &'static str,
) -> Result<String, ConfigError> {
    env.var(var).ok_or(ConfigError::Missing { var, what })
}

/// Parses an optional variable, checking it against `range`.
fn number<T>(
    env: &impl Source,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(value) = env.var(var) else {
        return Ok(default);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        var,
        value: value.clone(),
        reason,
    };
    let parsed: T = value.trim().parse().map_err(|_| {
        invalid(format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        ))
    })?;
    if !range.contains(&parsed) {
        return Err(invalid(format!(
            "must be from {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(parsed)
}

fn seconds(
    env: &impl Source,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(env, var, default, range).map(Duration::from_secs)
}

fn millis(
    env: &impl Source,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(env, var, default, range).map(Duration::from_millis)
}

/// The management endpoint must be an absolute http(s) URL without a trailing slash.
fn endpoint(env: &impl Source, var: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.var(var) else {
        return Ok(None);
    };
    let url = value.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() <= "https://".len()
    {
        return Err(ConfigError::Invalid {
            var,
            value: value.clone(),
            reason: "expected an http(s) URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod".into(),
        });
    }
    Ok(Some(url.to_owned()))
}

impl TableConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: required(
                env,
                "CONNECTIONS_TABLE",
                "the DynamoDB connections table name",
            )?,
            room_index: env
                .var("ROOM_INDEX_NAME")
                .unwrap_or_else(|| TableConfig::DEFAULT_ROOM_INDEX.into()),
            page_limit: match env.var("PAGE_LIMIT") {
                Some(_) => Some(number(env, "PAGE_LIMIT", 0, 1..=1_000_000)?),
                None => None,
            },
        })
    }
}

impl ConnectConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let ttl = number(
            env,
            "CONNECTION_TTL_SECONDS",
            Self::DEFAULT_TTL_SECONDS,
            60..=31_536_000,
        )?;
        Ok(Self {
            ttl: Duration::from_secs(ttl),
        })
    }
}

impl SendConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            max_data_bytes: number(
                env,
                "MAX_DATA_BYTES",
                Self::DEFAULT_MAX_DATA_BYTES,
                1..=Self::LIMIT_MAX_DATA_BYTES,
            )?,
        })
    }
}

impl EmfConfig {
    pub fn from_env(env: &impl Source) -> Self {
        Self {
            namespace: env
                .var("METRICS_NAMESPACE")
                .unwrap_or_else(|| EmfConfig::DEFAULT_NAMESPACE.into()),
            workspace: env.var("WORKSPACE").unwrap_or_else(|| "default".into()),
            function: env
                .var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "worker".into()),
        }
    }
}

impl ProgressTableConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: required(
                env,
                "PROGRESS_TABLE",
                "the DynamoDB table of job progress records",
            )?,
            ttl: seconds(
                env,
                "PROGRESS_TTL_SECONDS",
                Self::DEFAULT_TTL_SECONDS,
                3_600..=2_592_000,
            )?,
        })
    }
}

/// The SQS dead-letter queue the worker parks what it gives up on: `DEAD_LETTER_QUEUE_URL`.
pub fn dead_letter_queue_url(env: &impl Source) -> Result<String, ConfigError> {
    required(
        env,
        "DEAD_LETTER_QUEUE_URL",
        "the URL of the SQS dead-letter queue",
    )
}

/// The SQS fan-out queue: `FANOUT_QUEUE_URL`.
pub fn queue_url(env: &impl Source) -> Result<String, ConfigError> {
    required(env, "FANOUT_QUEUE_URL", "the URL of the SQS fan-out queue")
}

impl EngineConfig {
    /// `FANOUT_CONCURRENCY`, `POST_TIMEOUT_MS`, `MAX_POST_ATTEMPTS`, `BACKOFF_BASE_MS`,
    /// `BACKOFF_CAP_MS`, `DEADLINE_MARGIN_MS`, `HANDOFF_RESERVE_MS`, `DELIVERY_MODE`,
    /// `MANAGEMENT_ENDPOINT`, `SCAN_SEGMENTS`, `RETRY_BUDGET_SECONDS`, `RETRY_DELAY_BASE_MS`,
    /// `GONE_GRACE_SECONDS`, `CHECKPOINT_EVERY`.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let defaults = EngineConfig::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut config = EngineConfig {
            concurrency: number(env, "FANOUT_CONCURRENCY", defaults.concurrency, 1..=10_000)?,
            post_timeout: millis(
                env,
                "POST_TIMEOUT_MS",
                ms(defaults.post_timeout),
                100..=60_000,
            )?,
            max_post_attempts: number(
                env,
                "MAX_POST_ATTEMPTS",
                defaults.max_post_attempts,
                1..=20,
            )?,
            backoff_base: millis(
                env,
                "BACKOFF_BASE_MS",
                ms(defaults.backoff_base),
                1..=10_000,
            )?,
            backoff_cap: millis(env, "BACKOFF_CAP_MS", ms(defaults.backoff_cap), 1..=60_000)?,
            deadline_margin: millis(
                env,
                "DEADLINE_MARGIN_MS",
                ms(defaults.deadline_margin),
                100..=600_000,
            )?,
            delivery_mode: match env.var("DELIVERY_MODE") {
                Some(value) => {
                    value
                        .parse::<DeliveryMode>()
                        .map_err(|reason| ConfigError::Invalid {
                            var: "DELIVERY_MODE",
                            value: value.clone(),
                            reason,
                        })?
                }
                None => defaults.delivery_mode,
            },
            management_endpoint: endpoint(env, "MANAGEMENT_ENDPOINT")?,
            scan_segments: number(env, "SCAN_SEGMENTS", defaults.scan_segments, 1..=1000)?,
            handoff_reserve: Duration::ZERO,
            retry_budget: seconds(
                env,
                "RETRY_BUDGET_SECONDS",
                defaults.retry_budget.as_secs(),
                60..=86_400,
            )?,
            retry_delay_base: millis(
                env,
                "RETRY_DELAY_BASE_MS",
                ms(defaults.retry_delay_base),
                100..=60_000,
            )?,
            gone_grace: seconds(
                env,
                "GONE_GRACE_SECONDS",
                defaults.gone_grace.as_secs(),
                0..=3_600,
            )?,
            checkpoint_every: number(
                env,
                "CHECKPOINT_EVERY",
                defaults.checkpoint_every,
                0..=100_000,
            )?,
        };
        if config.deadline_margin <= config.post_timeout {
            return Err(ConfigError::Invalid {
                var: "DEADLINE_MARGIN_MS",
                value: ms(config.deadline_margin).to_string(),
                reason: format!(
                    "must exceed POST_TIMEOUT_MS ({}) so posts in flight finish before the deadline",
                    ms(config.post_timeout)
                ),
            });
        }
        // Unset, the reserve is 2 s or half the margin, whichever is less: a short margin stays
        // valid without setting both.
        let default_reserve = defaults.handoff_reserve.min(config.deadline_margin / 2);
        config.handoff_reserve =
            millis(env, "HANDOFF_RESERVE_MS", ms(default_reserve), 100..=60_000)?;
        if config.handoff_reserve >= config.deadline_margin {
            return Err(ConfigError::Invalid {
                var: "HANDOFF_RESERVE_MS",
                value: ms(config.handoff_reserve).to_string(),
                reason: format!(
                    "must be less than DEADLINE_MARGIN_MS ({}): posts stop before the hand-off's reserve begins",
                    ms(config.deadline_margin)
                ),
            });
        }
        Ok(config)
    }
}

mod lambdas;

pub use lambdas::{
    ConnectSettings, EnvVar, Function, LOGGING_VARS, RESERVED_VARS, SendSettings, WorkerSettings,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let engine = EngineConfig::from_env(&[]).unwrap();
        assert_eq!(engine.concurrency, 256);
        assert_eq!(engine.delivery_mode, DeliveryMode::Envelope);
        assert_eq!(SendConfig::from_env(&[]).unwrap(), SendConfig::default());
        assert_eq!(
            ConnectConfig::from_env(&[]).unwrap().ttl,
            Duration::from_secs(7500)
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = TableConfig::from_env(&[]).unwrap_err();
        assert!(
            missing.to_string().contains("CONNECTIONS_TABLE"),
            "{missing}"
        );

        let bad = EngineConfig::from_env(&[("FANOUT_CONCURRENCY", "lots")]).unwrap_err();
        assert!(
            bad.to_string().contains("FANOUT_CONCURRENCY=\"lots\""),
            "{bad}"
        );

        let zero = EngineConfig::from_env(&[("FANOUT_CONCURRENCY", "0")]).unwrap_err();
        assert!(zero.to_string().contains("from 1 to 10000"), "{zero}");

        let mode = EngineConfig::from_env(&[("DELIVERY_MODE", "loud")]).unwrap_err();
        assert!(mode.to_string().contains("DELIVERY_MODE"), "{mode}");

        let too_big = SendConfig::from_env(&[("MAX_DATA_BYTES", "200000")]).unwrap_err();
        assert!(too_big.to_string().contains("MAX_DATA_BYTES"), "{too_big}");

        let url = EngineConfig::from_env(&[("MANAGEMENT_ENDPOINT", "example.com")]).unwrap_err();
        assert!(url.to_string().contains("MANAGEMENT_ENDPOINT"), "{url}");

        let margin = EngineConfig::from_env(&[("DEADLINE_MARGIN_MS", "1000")]).unwrap_err();
        assert!(margin.to_string().contains("POST_TIMEOUT_MS"), "{margin}");
    }

    #[test]
    fn reads_every_setting() {
        let env = [
            ("CONNECTIONS_TABLE", "t"),
            ("PAGE_LIMIT", "25"),
            ("FANOUT_CONCURRENCY", "64"),
            ("DELIVERY_MODE", "raw"),
            ("MANAGEMENT_ENDPOINT", "https://x.example/prod/"),
        ];
        let table = TableConfig::from_env(&env).unwrap();
        assert_eq!(
            (
                table.table.as_str(),
                table.room_index.as_str(),
                table.page_limit
            ),
            ("t", "room-index", Some(25))
        );
        let engine = EngineConfig::from_env(&env).unwrap();
        assert_eq!(engine.concurrency, 64);
        assert_eq!(engine.delivery_mode, DeliveryMode::Raw);
        assert_eq!(
            engine.management_endpoint.as_deref(),
            Some("https://x.example/prod")
        );
    }
}
