//! How fast one connection may send: a token bucket kept on the connection's item, so the limit
//! holds across every instance of sendmessage. Integer milli-tokens, so the stored value is
//! exact and compares equal in a conditional write.

use serde::{Deserialize, Serialize};

/// A connection's allowance as stored: `milli` thousandths of a message, as of `at` (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub milli: i64,
    pub at: i64,
}

/// Messages a second, sustained, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The allowance after one more message at `now_ms`, or `None` when the connection must
    /// wait. A connection that never sent has a full burst; a clock behind `at` (another
    /// instance's) refills nothing.
    pub fn take(&self, current: Option<Allowance>, now_ms: i64) -> Option<Allowance> {
        let full = i64::from(self.burst) * 1000;
        let refilled = match current {
            None => full,
            Some(Allowance { milli, at }) => {
                let elapsed = now_ms.saturating_sub(at).max(0);
                milli
                    .saturating_add(elapsed.saturating_mul(i64::from(self.per_second)))
                    .min(full)
            }
        };
        (refilled >= 1000).then(|| Allowance {
            milli: refilled - 1000,
            at: now_ms.max(current.map_or(i64::MIN, |c| c.at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10,
        burst: 20,
    };

    fn drain(
        limit: RateLimit,
        mut current: Option<Allowance>,
        now: i64,
    ) -> (u32, Option<Allowance>) {
        let mut sent = 0;
        while let Some(next) = limit.take(current, now) {
            current = Some(next);
            sent += 1;
        }
        (sent, current)
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let (sent, left) = drain(LIMIT, None, 1_000);
        assert_eq!(sent, 20, "a full burst at once");
        // 10 a second: one every 100 ms.
        assert_eq!(LIMIT.take(left, 1_050), None);
        let one = LIMIT.take(left, 1_100).expect("one token after 100 ms");
        assert_eq!(one.milli, 0);
        let (sent, _) = drain(LIMIT, left, 2_000);
        assert_eq!(sent, 10, "a second refills ten");
        let (sent, _) = drain(LIMIT, left, 1_000_000);
        assert_eq!(sent, 20, "never more than the burst");
    }

    #[test]
    fn a_clock_behind_the_last_send_refills_nothing_and_moves_nothing_back() {
        let (_, left) = drain(LIMIT, None, 5_000);
        assert_eq!(LIMIT.take(left, 4_000), None);
        let half = Allowance {
            milli: 1_500,
            at: 5_000,
        };
        assert_eq!(
            LIMIT.take(Some(half), 4_000),
            Some(Allowance {
                milli: 500,
                at: 5_000
            })
        );
    }

    #[test]
    fn extreme_values_saturate() {
        let huge = RateLimit {
            per_second: u32::MAX,
            burst: u32::MAX,
        };
        let after = huge.take(
            Some(Allowance {
                milli: 0,
                at: i64::MIN,
            }),
            i64::MAX,
        );
        assert!(after.is_some());
        let stored = Allowance {
            milli: i64::MAX,
            at: 0,
        };
        assert!(
            LIMIT
                .take(Some(stored), 1)
                .is_some_and(|a| a.milli == 19_000)
        );
    }
}
