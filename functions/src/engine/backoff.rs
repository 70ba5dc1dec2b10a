//! Exponential backoff with full jitter (the AWS Architecture Blog's "Full Jitter"): spreads
//! retries of many throttled posts instead of sending them back in lockstep.

use rand::Rng;
use std::time::Duration;

/// The wait before retry number `retry` (1 for the first retry).
pub fn full_jitter(base: Duration, cap: Duration, retry: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
        .min(cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let (base, cap) = (Duration::from_millis(10), Duration::from_millis(100));
        for _ in 0..200 {
            assert!(full_jitter(base, cap, 1) <= Duration::from_millis(10));
            assert!(full_jitter(base, cap, 3) <= Duration::from_millis(40));
            assert!(full_jitter(base, cap, 30) <= cap);
        }
    }
}
