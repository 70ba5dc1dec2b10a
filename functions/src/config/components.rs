//! Each component's settings read from the environment: the components own their settings
//! structs; this module only reads them.

use super::settings as s;
use super::source::{ConfigError, Source, duration, given, number, required};
use crate::adapters::dynamodb::TableConfig;
use crate::adapters::history_table::HistoryTableConfig;
use crate::adapters::progress_table::ProgressTableConfig;
use crate::auth::VerifierConfig;
use crate::domain::history::HistoryConfig;
use crate::domain::{DeliveryMode, RateLimit};
use crate::engine::EngineConfig;
use crate::handlers::connect::ConnectConfig;
use crate::handlers::publish::PublishConfig;
use crate::handlers::rooms::RoomsConfig;
use crate::handlers::sendmessage::SendConfig;
use crate::metrics::EmfConfig;
use std::time::Duration;

impl TableConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: required(
                env,
                "CONNECTIONS_TABLE",
                "the DynamoDB connections table name",
            )?,
            memberships_table: required(
                env,
                "MEMBERSHIPS_TABLE",
                "the DynamoDB memberships table name",
            )?,
            page_limit: given(env, &s::PAGE_LIMIT)?
                .map(|limit| limit.try_into().expect("PAGE_LIMIT's bounds fit a u32")),
        })
    }
}

impl ConnectConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl: duration(env, &s::CONNECTION_TTL_SECONDS)?,
        })
    }
}

impl RoomsConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            max_rooms: number(env, &s::MAX_ROOMS_PER_CONNECTION)?,
        })
    }
}

impl SendConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            max_data_bytes: max_data_bytes(env)?,
            rate_limit: {
                let per_second = number(env, &s::RATE_LIMIT_PER_SECOND)?;
                let burst = number(env, &s::RATE_LIMIT_BURST)?;
                // 0 turns the limit off: no write per message.
                (per_second > 0).then_some(RateLimit { per_second, burst })
            },
            history: HistoryConfig::from_env(env)?,
        })
    }
}

impl PublishConfig {
    /// `MAX_DATA_BYTES`, `HISTORY_SIZE` and `HISTORY_TTL_SECONDS`, as sendmessage reads them.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            max_data_bytes: max_data_bytes(env)?,
            history: HistoryConfig::from_env(env)?,
        })
    }
}

/// `MAX_DATA_BYTES`: sendmessage's and publish's limit alike.
fn max_data_bytes(env: &impl Source) -> Result<usize, ConfigError> {
    number(env, &s::MAX_DATA_BYTES)
}

impl HistoryConfig {
    /// `HISTORY_SIZE`, `HISTORY_TTL_SECONDS`.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            size: number(env, &s::HISTORY_SIZE)?,
            ttl: duration(env, &s::HISTORY_TTL_SECONDS)?,
        })
    }
}

impl HistoryTableConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: required(
                env,
                "HISTORY_TABLE",
                "the DynamoDB table of rooms' sequences and history",
            )?,
        })
    }
}

impl VerifierConfig {
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_LEEWAY_SECONDS`.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let issuer = required(
            env,
            "JWT_ISSUER",
            "the issuer tokens must name in iss, e.g. https://cognito-idp.{region}.amazonaws.com/{user-pool-id}",
        )?;
        let audience = required(
            env,
            "JWT_AUDIENCE",
            "the audience tokens must name in aud (for Cognito ID tokens, the app client id)",
        )?;
        let leeway = duration(env, &s::JWT_LEEWAY_SECONDS)?;
        Ok(Self {
            leeway,
            ..Self::new(issuer, audience)
        })
    }
}

/// `JWKS_URL`, if set: the issuer's key set, over https (keys fetched in the clear could be
/// swapped on the way).
pub(super) fn jwks_url(env: &impl Source) -> Result<Option<String>, ConfigError> {
    let Some(url) = env.var("JWKS_URL") else {
        return Ok(None);
    };
    let host = url.strip_prefix("https://").unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(ConfigError::Invalid {
            var: "JWKS_URL",
            value: url,
            reason: "expected an https URL such as https://cognito-idp.eu-west-1.amazonaws.com/{user-pool-id}/.well-known/jwks.json".into(),
        });
    }
    Ok(Some(url))
}

/// `JWT_SECRET_ARN`, if set: the Secrets Manager secret holding the HS256 key.
pub(super) fn jwt_secret_arn(env: &impl Source) -> Result<Option<String>, ConfigError> {
    let Some(arn) = env.var("JWT_SECRET_ARN") else {
        return Ok(None);
    };
    let fields: Vec<&str> = arn.splitn(7, ':').collect();
    if fields.len() != 7
        || fields[0] != "arn"
        || fields[2] != "secretsmanager"
        || fields[5] != "secret"
    {
        return Err(ConfigError::Invalid {
            var: "JWT_SECRET_ARN",
            value: arn,
            reason: "expected a Secrets Manager secret ARN, arn:aws:secretsmanager:{region}:{account}:secret:{name}".into(),
        });
    }
    Ok(Some(arn))
}

impl EmfConfig {
    /// `METRICS_NAMESPACE`, `WORKSPACE`, and the function's name from Lambda's
    /// `AWS_LAMBDA_FUNCTION_NAME`; outside Lambda, `binary` (the reader's own name).
    pub fn from_env(env: &impl Source, binary: &str) -> Self {
        Self {
            namespace: env
                .var("METRICS_NAMESPACE")
                .unwrap_or_else(|| EmfConfig::DEFAULT_NAMESPACE.into()),
            workspace: env.var("WORKSPACE").unwrap_or_else(|| "default".into()),
            function: env
                .var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| binary.into()),
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
            ttl: duration(env, &s::PROGRESS_TTL_SECONDS)?,
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
    /// `SCAN_SEGMENTS`, `ROOM_SPLIT_WAYS`, `ACCOUNT_POST_RATE`,
    /// `RETRY_BUDGET_SECONDS`, `RETRY_DELAY_BASE_MS`,
    /// `GONE_GRACE_SECONDS`, `CHECKPOINT_EVERY`.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut config = EngineConfig {
            concurrency: number(env, &s::FANOUT_CONCURRENCY)?,
            post_timeout: duration(env, &s::POST_TIMEOUT_MS)?,
            max_post_attempts: number(env, &s::MAX_POST_ATTEMPTS)?,
            backoff_base: duration(env, &s::BACKOFF_BASE_MS)?,
            backoff_cap: duration(env, &s::BACKOFF_CAP_MS)?,
            deadline_margin: duration(env, &s::DEADLINE_MARGIN_MS)?,
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
                None => EngineConfig::default().delivery_mode,
            },
            scan_segments: number(env, &s::SCAN_SEGMENTS)?,
            room_split_ways: number(env, &s::ROOM_SPLIT_WAYS)?,
            account_post_rate: number(env, &s::ACCOUNT_POST_RATE)?,
            handoff_reserve: Duration::ZERO,
            retry_budget: duration(env, &s::RETRY_BUDGET_SECONDS)?,
            retry_delay_base: duration(env, &s::RETRY_DELAY_BASE_MS)?,
            gone_grace: duration(env, &s::GONE_GRACE_SECONDS)?,
            checkpoint_every: number(env, &s::CHECKPOINT_EVERY)?,
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
        let reserve = &s::HANDOFF_RESERVE_MS;
        config.handoff_reserve = match given(env, reserve)? {
            Some(value) => reserve.duration(value),
            None => reserve.default_duration().min(config.deadline_margin / 2),
        };
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
        assert!(zero.to_string().contains("from 1 to 1000"), "{zero}");

        let mode = EngineConfig::from_env(&[("DELIVERY_MODE", "loud")]).unwrap_err();
        assert!(mode.to_string().contains("DELIVERY_MODE"), "{mode}");

        let too_big = SendConfig::from_env(&[("MAX_DATA_BYTES", "200000")]).unwrap_err();
        assert!(too_big.to_string().contains("MAX_DATA_BYTES"), "{too_big}");

        let margin = EngineConfig::from_env(&[("DEADLINE_MARGIN_MS", "1000")]).unwrap_err();
        assert!(margin.to_string().contains("POST_TIMEOUT_MS"), "{margin}");
    }

    #[test]
    fn reads_every_setting() {
        let env = [
            ("CONNECTIONS_TABLE", "t"),
            ("MEMBERSHIPS_TABLE", "m"),
            ("PAGE_LIMIT", "25"),
            ("FANOUT_CONCURRENCY", "64"),
            ("DELIVERY_MODE", "raw"),
        ];
        let table = TableConfig::from_env(&env).unwrap();
        assert_eq!(
            (
                table.table.as_str(),
                table.memberships_table.as_str(),
                table.page_limit
            ),
            ("t", "m", Some(25))
        );
        let engine = EngineConfig::from_env(&env).unwrap();
        assert_eq!(engine.concurrency, 64);
        assert_eq!(engine.delivery_mode, DeliveryMode::Raw);
    }
}
