//! Configuration from environment variables, read once at start-up. Every error names the
//! variable and says what it accepts.

mod components;
mod lambdas;
pub mod settings;
mod source;

pub use components::{dead_letter_queue_url, queue_url};
pub use lambdas::{
    AuthorizerKeys, AuthorizerSettings, ConnectSettings, EnvVar, Function, LOGGING_VARS,
    PublishSettings, RESERVED_VARS, RecoverSettings, RoomsSettings, SendSettings, WorkerSettings,
};
pub use source::{ConfigError, ProcessEnv, Source};
