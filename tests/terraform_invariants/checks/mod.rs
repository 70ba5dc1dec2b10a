//! The checkers: each is a function over a parsed [`Module`](crate::model::Module) that returns
//! its violations, empty when the module satisfies the invariant. Each file ends with negative
//! tests that run its checker over inline HCL breaking the rule, so none can pass vacuously.

pub mod artifacts;
pub mod auth;
pub mod dashboard;
pub mod declarations;
pub mod environment;
pub mod first_connection;
pub mod iam;
pub mod naming;
pub mod ordering;
pub mod queue_policy;
pub mod retention;
pub mod runbooks;
pub mod settings;
pub mod settings_docs;
pub mod throttling;
pub mod visibility;
