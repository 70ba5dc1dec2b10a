//! Slows the whole worker down when API Gateway throttles it.
//!
//! Posts run unpaced until the first 429. Then the pacer caps the send rate at a fraction of
//! the rate it measured (multiplicative decrease) and lets the cap grow back along a cubic
//! curve (as TCP CUBIC does): quickly at first, flat near the rate that was throttled, then
//! probing above it. The worker so settles near the account's limit instead of alternating
//! bursts and backoffs. Retries of throttled posts still back off on their own.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// On a 429 the cap becomes this fraction of the measured rate.
const DECREASE: f64 = 0.85;
/// Cubic growth: `cap(t) = w_max * (1 + GROWTH * (t - K)^3)`, back at `w_max` after
/// `K = cbrt((1 - DECREASE) / GROWTH)` = 1 s.
const GROWTH: f64 = 0.15;
/// One decrease per congestion event: 429s within this window of a decrease are the same event.
const DECREASE_HOLD: Duration = Duration::from_millis(250);
/// The cap never goes below this, so a worker always makes progress.
const MIN_RATE: f64 = 10.0;
/// Rates are measured over windows of this length.
const WINDOW: Duration = Duration::from_millis(250);
/// Below this many successes in a window, the success rate says little; use the send rate.
const MIN_SAMPLE: u64 = 20;

/// Seconds from a decrease until the cubic curve is back at the rate that was throttled.
fn cubic_k() -> f64 {
    ((1.0 - DECREASE) / GROWTH).cbrt()
}

pub struct Pacer {
    state: Mutex<State>,
}

struct State {
    /// Posts per second allowed; `None` until the first throttle.
    rate: Option<f64>,
    /// The rate that was throttled at the last decrease.
    w_max: f64,
    last_decrease: Option<Instant>,
    /// When the next paced post may start.
    next_slot: Instant,
    /// A 429 has set the pace.
    throttled: bool,
    /// The shares of the account's rate that jobs carried in (see [`Pacer::carry`]).
    carried: f64,
    meter: Meter,
}

/// Sends and successes per window: the current window and the last complete one.
struct Meter {
    start: Instant,
    sent: u64,
    succeeded: u64,
    /// The last complete window: sends, successes, and its length in seconds.
    last: Option<(u64, u64, f64)>,
}

impl Meter {
    fn roll(&mut self, now: Instant) {
        let elapsed = now - self.start;
        if elapsed >= WINDOW {
            self.last = Some((self.sent, self.succeeded, elapsed.as_secs_f64()));
            self.start = now;
            self.sent = 0;
            self.succeeded = 0;
        }
    }

    /// The best estimate of what the endpoint accepts: the success rate when there were
    /// enough successes to measure, else the send rate. Measured over the last complete window
    /// and the current one together: a window that has only just begun holds a few
    /// milliseconds of posts, and on its own would make a handful of them look like the rate
    /// (at 10,000/s, 20 successes in 2 ms read as 400/s, and the cap collapsed to that).
    fn rate(&self, now: Instant) -> f64 {
        let current = (now - self.start).as_secs_f64();
        let (sent, succeeded, secs) = match self.last {
            Some((sent, succeeded, secs)) => {
                (sent + self.sent, succeeded + self.succeeded, secs + current)
            }
            None => (self.sent, self.succeeded, current),
        };
        let secs = secs.max(0.05);
        if succeeded >= MIN_SAMPLE {
            succeeded as f64 / secs
        } else {
            sent as f64 / secs
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                rate: None,
                w_max: 0.0,
                last_decrease: None,
                next_slot: now,
                throttled: false,
                carried: 0.0,
                meter: Meter {
                    start: now,
                    sent: 0,
                    succeeded: 0,
                    last: None,
                },
            }),
        }
    }

    /// Starts the pace at `share` posts per second more (a split room's part carries its share
    /// of the account's rate) and lets it grow from there, as after a throttle, until API
    /// Gateway throttles. The shares of a batch's parts add up; once a 429 has set the pace,
    /// shares no longer change it: what it measured is better than any share.
    pub fn carry(&self, share: f64) {
        let mut state = self.lock();
        if state.throttled {
            return;
        }
        let now = Instant::now();
        state.carried += share.max(MIN_RATE);
        state.w_max = state.carried;
        state.rate = Some(state.carried);
        // At the top of the cubic curve: flat at first, then probing above the share.
        let top = Duration::from_secs_f64(cubic_k());
        state.last_decrease = Some(now.checked_sub(top).unwrap_or(now));
    }

    /// The current cap in posts per second, if throttling has set one.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }

    /// Waits for this post's turn; `false`, at once and without taking a turn, if the turn
    /// would come after `until` (the queue of paced posts never outlasts the deadline).
    pub async fn acquire(&self, until: Instant) -> bool {
        let slot = {
            let mut state = self.lock();
            let now = Instant::now();
            state.meter.roll(now);
            let Some(rate) = state.rate else {
                state.meter.sent += 1;
                return true;
            };
            let slot = state.next_slot.max(now);
            if slot >= until {
                return false;
            }
            state.meter.sent += 1;
            state.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }

    pub fn on_success(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        state.meter.roll(now);
        state.meter.succeeded += 1;
        if let (Some(_), Some(at)) = (state.rate, state.last_decrease) {
            let t = (now - at).as_secs_f64();
            let cap = state.w_max * (1.0 + GROWTH * (t - cubic_k()).powi(3));
            state.rate = Some(cap.max(MIN_RATE));
        }
    }

    pub fn on_throttled(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|at| now - at < DECREASE_HOLD)
        {
            return;
        }
        state.throttled = true;
        state.meter.roll(now);
        let measured = state.meter.rate(now);
        let w_max = measured
            .min(state.rate.unwrap_or(f64::INFINITY))
            .max(MIN_RATE);
        state.w_max = w_max;
        state.rate = Some((w_max * DECREASE).max(MIN_RATE));
        state.last_decrease = Some(now);
        state.next_slot = state.next_slot.max(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    async fn succeed_for(pacer: &Pacer, per_second: u64, duration: Duration) {
        let step = Duration::from_secs(1) / per_second as u32;
        let end = Instant::now() + duration;
        while Instant::now() < end {
            assert!(pacer.acquire(far()).await);
            pacer.on_success();
            tokio::time::advance(step).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_until_throttled_then_capped_below_the_measured_rate() {
        let pacer = Pacer::new();
        succeed_for(&pacer, 1000, Duration::from_secs(1)).await;
        assert_eq!(pacer.rate(), None);

        pacer.on_throttled();
        let capped = pacer.rate().unwrap();
        assert!((800.0..=900.0).contains(&capped), "cap {capped}");
        // A second 429 in the same event does not cut again.
        pacer.on_throttled();
        assert_eq!(pacer.rate(), Some(capped));

        // Paced: 100 posts take about 100 / cap seconds.
        let start = Instant::now();
        for _ in 0..100 {
            assert!(pacer.acquire(far()).await);
        }
        let took = start.elapsed().as_secs_f64();
        assert!((took - 99.0 / capped).abs() < 0.01, "took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_grows_back_to_the_throttled_rate_in_a_second_then_probes_above() {
        let pacer = Pacer::new();
        succeed_for(&pacer, 1000, Duration::from_secs(1)).await;
        pacer.on_throttled();
        tokio::time::advance(Duration::from_millis(1000)).await;
        pacer.on_success();
        let at_one_second = pacer.rate().unwrap();
        assert!((990.0..=1010.0).contains(&at_one_second), "{at_one_second}");
        tokio::time::advance(Duration::from_millis(1000)).await;
        pacer.on_success();
        assert!(pacer.rate().unwrap() > 1100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_just_after_a_window_rolls_does_not_collapse_the_cap() {
        let pacer = Pacer::new();
        // 10,000/s for a second (windows roll every 250 ms, the last one at 1 s), then a 429
        // two milliseconds into the new window, after the 20 successes it holds.
        succeed_for(&pacer, 10_000, Duration::from_millis(1000)).await;
        succeed_for(&pacer, 10_000, Duration::from_millis(2)).await;
        pacer.on_throttled();
        let capped = pacer.rate().unwrap();
        assert!(capped > 5_000.0, "collapsed to {capped}/s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_after_the_deadline_is_refused_at_once_and_not_taken() {
        let pacer = Pacer::new();
        succeed_for(&pacer, 1000, Duration::from_secs(1)).await;
        pacer.on_throttled();
        let rate = pacer.rate().unwrap();
        // Queue a second of turns, then ask for one with only 100 ms left.
        for _ in 0..(rate as usize) {
            // Polled once, a turn is reserved; dropped, it is not waited for.
            let _ = futures::FutureExt::now_or_never(pacer.acquire(far()));
        }
        let start = Instant::now();
        assert!(!pacer.acquire(start + Duration::from_millis(100)).await);
        assert_eq!(Instant::now(), start, "refused without waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn a_carried_share_paces_from_the_start_then_grows_until_throttled() {
        let pacer = Pacer::new();
        pacer.carry(1_000.0);
        pacer.carry(1_500.0);
        assert_eq!(pacer.rate(), Some(2_500.0), "a batch's shares add up");
        // Flat near the share at first, then probing above it.
        succeed_for(&pacer, 2_500, Duration::from_millis(500)).await;
        let early = pacer.rate().unwrap();
        assert!((2_500.0..2_600.0).contains(&early), "{early}");
        succeed_for(&pacer, 2_500, Duration::from_millis(1_500)).await;
        assert!(pacer.rate().unwrap() > 3_500.0, "{:?}", pacer.rate());

        pacer.on_throttled();
        let measured = pacer.rate().unwrap();
        assert!(measured < 2_500.0, "cut from the measured rate: {measured}");
        pacer.carry(10_000.0);
        assert_eq!(
            pacer.rate(),
            Some(measured),
            "a 429's measure beats any share"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_before_any_success_uses_the_send_rate() {
        let pacer = Pacer::new();
        for _ in 0..100 {
            assert!(pacer.acquire(far()).await);
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        pacer.on_throttled();
        let capped = pacer.rate().unwrap();
        assert!(
            capped > 500.0,
            "collapsed to {capped}/s with no successes measured"
        );
    }
}
