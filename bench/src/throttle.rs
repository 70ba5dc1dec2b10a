//! The endpoint's 429s.

use tokio::time::Instant;

/// API Gateway's account-level throttle: a token bucket of `burst` tokens refilled at `rate`
/// per second; a call without a token gets 429.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full, as an idle account's does.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_allows_the_burst_then_the_rate_and_never_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10.0, start);
        assert_eq!((0..20).filter(|_| bucket.try_take(start)).count(), 10);
        // 50 ms at 100/s refills 5 tokens.
        let later = start + Duration::from_millis(50);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
        // A long idle period refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(much_later)).count(), 10);
        // Over one second of steady calls, about `rate` get through.
        let mut granted = 0;
        for ms in 1..=1000 {
            let now = much_later + Duration::from_millis(ms);
            granted += (0..5).filter(|_| bucket.try_take(now)).count();
        }
        assert!((99..=101).contains(&granted), "{granted}");
    }
}
