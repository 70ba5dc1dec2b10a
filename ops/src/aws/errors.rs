//! An SDK call's failure as the operator reads it: what could not be done, and the error with
//! its sources.

use crate::backend::OpsError;
use fanout::adapters::aws::describe;

/// [`OpsError::Unavailable`]: `what`, then the error and its sources.
pub(super) fn unavailable(what: &str, error: &(dyn std::error::Error + 'static)) -> OpsError {
    OpsError::Unavailable(format!("{what}: {}", describe(error)))
}
