//! What each Lambda binary reads, as one bundle per function, and the list of variables
//! each one reads, derived from that code so that it cannot drift.

use super::{ConfigError, Source, dead_letter_queue_url, queue_url};
use crate::adapters::dynamodb::TableConfig;
use crate::adapters::progress_table::ProgressTableConfig;
use crate::engine::EngineConfig;
use crate::handlers::connect::ConnectConfig;
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

/// What the sendmessage Lambda reads.
pub struct SendSettings {
    pub table: TableConfig,
    pub queue_url: String,
    pub send: SendConfig,
}

impl SendSettings {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: TableConfig::from_env(env)?,
            queue_url: queue_url(env)?,
            send: SendConfig::from_env(env)?,
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
            metrics: EmfConfig::from_env(env),
        })
    }
}

/// Read by every binary's logging (`runtime::init_logging`); Lambda itself sets
/// `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`.
pub const LOGGING_VARS: &[&str] = &["RUST_LOG"];

/// Variables Lambda sets in every function's environment; a deployment must not set them.
pub const RESERVED_VARS: &[&str] = &["AWS_LAMBDA_FUNCTION_NAME"];

/// The Lambda functions this crate builds, one `[[bin]]` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Connect,
    Disconnect,
    SendMessage,
    Default,
    Worker,
}

/// An environment variable a function reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvVar {
    pub name: String,
    /// Start-up fails without it.
    pub required: bool,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::Connect,
        Function::Disconnect,
        Function::SendMessage,
        Function::Default,
        Function::Worker,
    ];

    /// The binary's name: the `[[bin]]` in Cargo.toml and the zip `cargo lambda build` writes.
    pub fn binary(self) -> &'static str {
        match self {
            Function::Connect => "connect",
            Function::Disconnect => "disconnect",
            Function::SendMessage => "sendmessage",
            Function::Default => "default",
            Function::Worker => "worker",
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
/// found so far.
struct Recorder<'a> {
    present: &'a std::collections::BTreeSet<&'static str>,
    asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Source for Recorder<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.present
            .contains(name)
            .then(|| "placeholder".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ("PAGE_LIMIT", false),
                ("ROOM_INDEX_NAME", false),
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
}
