//! What each Lambda binary reads, as one bundle per function, and the list of variables
//! each one reads, derived from that code so that it cannot drift.

use super::components::{dead_letter_queue_url, jwks_url, jwt_secret_arn, queue_url};
use super::settings;
use super::source::{ConfigError, Source, duration, endpoint};
use crate::adapters::dynamodb::TableConfig;
use crate::adapters::history_table::HistoryTableConfig;
use crate::adapters::progress_table::ProgressTableConfig;
use crate::auth::{JwksConfig, VerifierConfig};
use crate::domain::history::HistoryConfig;
use crate::engine::EngineConfig;
use crate::handlers::connect::ConnectConfig;
use crate::handlers::publish::PublishConfig;
use crate::handlers::recover::RecoverConfig;
use crate::handlers::rooms::RoomsConfig;
use crate::handlers::sendmessage::SendConfig;
use crate::metrics::EmfConfig;

/// What the connect Lambda reads.
pub struct ConnectSettings {
    pub table: TableConfig,
    pub connect: ConnectConfig,
}

impl ConnectSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            connect: ConnectConfig::from_env(env)?,
        })
    }
}

/// What the rooms Lambda (`join`, `leave`) reads.
pub struct RoomsSettings {
    pub table: TableConfig,
    pub rooms: RoomsConfig,
}

impl RoomsSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            rooms: RoomsConfig::from_env(env)?,
        })
    }
}

/// What the sendmessage Lambda reads.
pub struct SendSettings {
    pub table: TableConfig,
    pub history_table: HistoryTableConfig,
    pub queue_url: String,
    pub send: SendConfig,
    pub metrics: EmfConfig,
}

impl SendSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            history_table: HistoryTableConfig::from_env(env)?,
            queue_url: queue_url(env)?,
            send: SendConfig::from_env(env)?,
            metrics: EmfConfig::from_env(env, Function::SendMessage.binary()),
        })
    }
}

/// What the publish Lambda reads.
pub struct PublishSettings {
    pub history_table: HistoryTableConfig,
    pub queue_url: String,
    pub publish: PublishConfig,
    pub metrics: EmfConfig,
}

impl PublishSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            history_table: HistoryTableConfig::from_env(env)?,
            queue_url: queue_url(env)?,
            publish: PublishConfig::from_env(env)?,
            metrics: EmfConfig::from_env(env, Function::Publish.binary()),
        })
    }
}

/// What the recover Lambda reads.
pub struct RecoverSettings {
    pub table: TableConfig,
    pub history_table: HistoryTableConfig,
    pub recover: RecoverConfig,
    /// This API's management endpoint, where the recovered frames are posted.
    pub management_endpoint: String,
    pub metrics: EmfConfig,
}

impl RecoverSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            history_table: HistoryTableConfig::from_env(env)?,
            recover: RecoverConfig {
                history: HistoryConfig::from_env(env)?,
                ..RecoverConfig::default()
            },
            management_endpoint: management_endpoint(env)?,
            metrics: EmfConfig::from_env(env, Function::Recover.binary()),
        })
    }
}

/// What the worker Lambda reads.
pub struct WorkerSettings {
    pub table: TableConfig,
    pub progress: ProgressTableConfig,
    pub queue_url: String,
    pub dead_letter_url: String,
    pub engine: EngineConfig,
    /// This API's management endpoint: the worker posts only there, never to an endpoint a job
    /// names (a closed job boundary: docs/contracts.md).
    pub management_endpoint: String,
    pub metrics: EmfConfig,
}

impl WorkerSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            progress: ProgressTableConfig::from_env(env)?,
            queue_url: queue_url(env)?,
            dead_letter_url: dead_letter_queue_url(env)?,
            engine: EngineConfig::from_env(env)?,
            management_endpoint: management_endpoint(env)?,
            metrics: EmfConfig::from_env(env, Function::Worker.binary()),
        })
    }
}

/// `MANAGEMENT_ENDPOINT`, required.
fn management_endpoint(env: &impl Source) -> Result<String, ConfigError> {
    endpoint(env, "MANAGEMENT_ENDPOINT")?.ok_or(ConfigError::Missing {
        var: "MANAGEMENT_ENDPOINT",
        what: "this API's management endpoint, https://{api-id}.execute-api.{region}.amazonaws.com/{stage}",
    })
}

/// Where the authorizer's keys come from: exactly one of `JWKS_URL` and `JWT_SECRET_ARN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizerKeys {
    /// `JWKS_URL` (and `JWKS_REFRESH_SECONDS`): RS256 and ES256 tokens from an OIDC issuer.
    Jwks(JwksConfig),
    /// `JWT_SECRET_ARN`: HS256 tokens signed with a secret kept in Secrets Manager, read at
    /// cold start.
    Secret { arn: String },
}

/// What the `$connect` authorizer Lambda reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSettings {
    pub verifier: VerifierConfig,
    pub keys: AuthorizerKeys,
}

impl AuthorizerSettings {
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_LEEWAY_SECONDS`, and `JWKS_URL` (with
    /// `JWKS_REFRESH_SECONDS`) or `JWT_SECRET_ARN`.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let verifier = VerifierConfig::from_env(env)?;
        // Read before the choice below, so that every variable is asked for whatever is set.
        let refresh = duration(env, &settings::JWKS_REFRESH_SECONDS)?;
        let keys = match (jwks_url(env)?, jwt_secret_arn(env)?) {
            (Some(url), None) => AuthorizerKeys::Jwks(JwksConfig {
                refresh,
                ..JwksConfig::new(url)
            }),
            (None, Some(arn)) => AuthorizerKeys::Secret { arn },
            (Some(_), Some(arn)) => {
                return Err(ConfigError::Invalid {
                    var: "JWT_SECRET_ARN",
                    value: arn,
                    reason: "JWKS_URL is set too; set exactly one: JWKS_URL for RS256/ES256 tokens from an OIDC issuer, JWT_SECRET_ARN for HS256 tokens with a shared secret".into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::MissingOneOf {
                    vars: &["JWKS_URL", "JWT_SECRET_ARN"],
                    what: "JWKS_URL for RS256/ES256 tokens from an OIDC issuer, or JWT_SECRET_ARN for HS256 tokens with a secret in Secrets Manager",
                });
            }
        };
        Ok(Self { verifier, keys })
    }
}

/// Read by every binary's logging (`runtime::init_logging`); Lambda itself sets
/// `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`.
pub const LOGGING_VARS: &[&str] = &["RUST_LOG"];

/// Variables Lambda sets in every function's environment; a deployment must not set them.
pub const RESERVED_VARS: &[&str] = &["AWS_LAMBDA_FUNCTION_NAME"];

/// The Lambda functions this crate builds, one `[[bin]]` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Connect,
    Disconnect,
    SendMessage,
    Default,
    Worker,
    Authorizer,
    Recover,
    Publish,
    Rooms,
}

/// An environment variable a function reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvVar {
    pub name: String,
    /// Start-up fails without it.
    pub required: bool,
}

impl Function {
    pub const ALL: [Function; 9] = [
        Function::Connect,
        Function::Disconnect,
        Function::SendMessage,
        Function::Default,
        Function::Worker,
        Function::Authorizer,
        Function::Recover,
        Function::Publish,
        Function::Rooms,
    ];

    /// The binary's name: the `[[bin]]` in Cargo.toml and the zip `cargo lambda build` writes.
    pub fn binary(self) -> &'static str {
        match self {
            Function::Connect => "connect",
            Function::Disconnect => "disconnect",
            Function::SendMessage => "sendmessage",
            Function::Default => "default",
            Function::Worker => "worker",
            Function::Authorizer => "authorizer",
            Function::Recover => "recover",
            Function::Publish => "publish",
            Function::Rooms => "rooms",
        }
    }

    /// Reads the function's settings as its binary does at start-up.
    pub fn read_settings(self, env: &impl Source) -> Result<(), ConfigError> {
        match self {
            Function::Connect => ConnectSettings::from_env(env).map(drop),
            Function::Disconnect => TableConfig::from_env(env).map(drop),
            Function::SendMessage => SendSettings::from_env(env).map(drop),
            Function::Default => Ok(()),
            Function::Worker => WorkerSettings::from_env(env).map(drop),
            Function::Authorizer => AuthorizerSettings::from_env(env).map(drop),
            Function::Recover => RecoverSettings::from_env(env).map(drop),
            Function::Publish => PublishSettings::from_env(env).map(drop),
            Function::Rooms => RoomsSettings::from_env(env).map(drop),
        }
    }

    /// Every variable the binary reads, found by reading its settings the way it does (so the
    /// list cannot drift from the code), less those Lambda reserves, plus the logging ones.
    pub fn env_vars(self) -> Vec<EnvVar> {
        let mut required = std::collections::BTreeSet::new();
        let asked = loop {
            let recorder = Recorder {
                present: &required,
                asked: Default::default(),
            };
            let result = self.read_settings(&recorder);
            let asked = recorder.asked.into_inner();
            match result {
                Err(ConfigError::Missing { var, .. }) if !required.contains(var) => {
                    required.insert(var);
                }
                _ => break asked,
            }
        };
        let mut vars: Vec<EnvVar> = asked
            .into_iter()
            .chain(LOGGING_VARS.iter().copied().map(str::to_owned))
            .filter(|name| !RESERVED_VARS.contains(&name.as_str()))
            .map(|name| EnvVar {
                required: required.contains(name.as_str()),
                name,
            })
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }
}

/// A source that records what is asked for and has a placeholder for the required variables
/// found so far: an https URL, which every required variable accepts (names and URLs alike).
struct Recorder<'a> {
    present: &'a std::collections::BTreeSet<&'static str>,
    asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Source for Recorder<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.present
            .contains(name)
            .then(|| "https://placeholder.invalid".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_management_endpoint_is_required_and_must_be_a_plain_url() {
        let missing = management_endpoint(&[("X", "y")]).unwrap_err();
        assert!(
            missing.to_string().contains("MANAGEMENT_ENDPOINT"),
            "{missing}"
        );
        for unsigned in [
            "example.com",
            "https://user@x.example/prod",
            "https://x.example/prod?stage=1",
            "https://x.example/prod#top",
        ] {
            let url = management_endpoint(&[("MANAGEMENT_ENDPOINT", unsigned)]).unwrap_err();
            assert!(url.to_string().contains("MANAGEMENT_ENDPOINT"), "{url}");
        }
    }

    #[test]
    fn metrics_name_the_function_that_wrote_them_outside_lambda_too() {
        let env = [
            ("CONNECTIONS_TABLE", "t"),
            ("MEMBERSHIPS_TABLE", "m"),
            ("HISTORY_TABLE", "h"),
            ("FANOUT_QUEUE_URL", "https://sqs.example/q"),
        ];
        let send = SendSettings::from_env(&env).unwrap();
        assert_eq!(send.metrics.function, "sendmessage");
        let named = [
            ("CONNECTIONS_TABLE", "t"),
            ("MEMBERSHIPS_TABLE", "m"),
            ("HISTORY_TABLE", "h"),
            ("FANOUT_QUEUE_URL", "https://sqs.example/q"),
            ("AWS_LAMBDA_FUNCTION_NAME", "chat-prod-sendmessage"),
        ];
        let send = SendSettings::from_env(&named).unwrap();
        assert_eq!(send.metrics.function, "chat-prod-sendmessage");
    }

    #[test]
    fn each_function_lists_what_its_binary_reads() {
        let names = |function: Function| -> Vec<(String, bool)> {
            function
                .env_vars()
                .into_iter()
                .map(|var| (var.name, var.required))
                .collect()
        };
        let owned = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
        };
        assert_eq!(names(Function::Default), owned(&[("RUST_LOG", false)]));
        assert_eq!(
            names(Function::Connect),
            owned(&[
                ("CONNECTIONS_TABLE", true),
                ("CONNECTION_TTL_SECONDS", false),
                ("MEMBERSHIPS_TABLE", true),
                ("PAGE_LIMIT", false),
                ("RUST_LOG", false),
            ])
        );
        let worker = names(Function::Worker);
        for expected in [
            ("CONNECTIONS_TABLE", true),
            ("FANOUT_QUEUE_URL", true),
            ("MAX_POST_ATTEMPTS", false),
            ("BACKOFF_BASE_MS", false),
            ("BACKOFF_CAP_MS", false),
            ("SCAN_SEGMENTS", false),
            ("RETRY_BUDGET_SECONDS", false),
            ("PROGRESS_TABLE", true),
            ("DEAD_LETTER_QUEUE_URL", true),
            ("MANAGEMENT_ENDPOINT", true),
            ("PAGE_LIMIT", false),
            ("METRICS_NAMESPACE", false),
            ("WORKSPACE", false),
        ] {
            assert!(
                worker.contains(&((expected.0).to_owned(), expected.1)),
                "{expected:?} in {worker:?}"
            );
        }
        assert!(
            !worker
                .iter()
                .any(|(name, _)| name == "AWS_LAMBDA_FUNCTION_NAME")
        );
    }

    #[test]
    fn the_authorizer_lists_both_key_sources_as_optional() {
        let vars: Vec<(String, bool)> = Function::Authorizer
            .env_vars()
            .into_iter()
            .map(|var| (var.name, var.required))
            .collect();
        let expected: Vec<(String, bool)> = [
            ("JWKS_REFRESH_SECONDS", false),
            ("JWKS_URL", false),
            ("JWT_AUDIENCE", true),
            ("JWT_ISSUER", true),
            ("JWT_LEEWAY_SECONDS", false),
            ("JWT_SECRET_ARN", false),
            ("RUST_LOG", false),
        ]
        .iter()
        .map(|(n, r)| ((*n).to_owned(), *r))
        .collect();
        assert_eq!(vars, expected);
    }

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:fanout-jwt-AbCdEf";
    const JWKS: &str =
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json";

    #[test]
    fn the_authorizer_reads_one_key_source() {
        let jwks = AuthorizerSettings::from_env(&[
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "client-1"),
            ("JWKS_URL", JWKS),
            ("JWKS_REFRESH_SECONDS", "120"),
            ("JWT_LEEWAY_SECONDS", "10"),
        ])
        .unwrap();
        assert_eq!(jwks.verifier.issuer, "https://issuer.example");
        assert_eq!(jwks.verifier.audience, "client-1");
        assert_eq!(jwks.verifier.leeway, std::time::Duration::from_secs(10));
        let AuthorizerKeys::Jwks(config) = jwks.keys else {
            panic!("{:?}", jwks.keys)
        };
        assert_eq!((config.url.as_str(), config.refresh.as_secs()), (JWKS, 120));

        let secret = AuthorizerSettings::from_env(&[
            ("JWT_ISSUER", "fanout"),
            ("JWT_AUDIENCE", "fanout"),
            ("JWT_SECRET_ARN", ARN),
        ])
        .unwrap();
        assert_eq!(secret.keys, AuthorizerKeys::Secret { arn: ARN.into() });
        assert_eq!(secret.verifier.leeway, std::time::Duration::from_secs(30));
    }

    #[test]
    fn the_authorizer_refuses_bad_settings_naming_the_variable() {
        let base = |extra: &[(&'static str, &'static str)]| {
            let mut env = vec![("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")];
            env.extend_from_slice(extra);
            env
        };
        for (env, var) in [
            (base(&[]), "JWKS_URL or JWT_SECRET_ARN"),
            (
                base(&[("JWKS_URL", JWKS), ("JWT_SECRET_ARN", ARN)]),
                "JWT_SECRET_ARN",
            ),
            (
                base(&[("JWKS_URL", "http://issuer.example/jwks")]),
                "JWKS_URL",
            ),
            (base(&[("JWKS_URL", "https://")]), "JWKS_URL"),
            (base(&[("JWT_SECRET_ARN", "my-secret")]), "JWT_SECRET_ARN"),
            (
                base(&[("JWT_SECRET_ARN", ARN), ("JWT_LEEWAY_SECONDS", "3600")]),
                "JWT_LEEWAY_SECONDS",
            ),
            (
                base(&[("JWKS_URL", JWKS), ("JWKS_REFRESH_SECONDS", "0")]),
                "JWKS_REFRESH_SECONDS",
            ),
            (
                vec![("JWT_AUDIENCE", "a"), ("JWKS_URL", JWKS)],
                "JWT_ISSUER",
            ),
            (
                vec![("JWT_ISSUER", "i"), ("JWKS_URL", JWKS)],
                "JWT_AUDIENCE",
            ),
        ] {
            let error = AuthorizerSettings::from_env(&VecSource(&env)).unwrap_err();
            assert!(error.to_string().contains(var), "{env:?}: {error}");
        }
    }

    /// A list of variables built at run time.
    struct VecSource<'a>(&'a [(&'static str, &'static str)]);

    impl Source for VecSource<'_> {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }
}
