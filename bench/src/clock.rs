//! The benchmark's wall clock, in epoch microseconds: the worker and the endpoint are separate
//! processes, and the report measures from the one's timestamps to the other's.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch; 0 before it.
pub fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
