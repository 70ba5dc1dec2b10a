//! How long the simulated management API takes per call: a fixed latency or a log-normal one,
//! written `fixed:20ms`, `lognormal:20ms[:P99]` or `none` (durations as `humantime` reads them).

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a call takes, from the request's arrival to the response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    /// Log-normal: `median * exp(sigma * Z)`; `sigma` follows from the p99.
    LogNormal {
        median: Duration,
        p99: Duration,
    },
}

/// z such that P(Z < z) = 0.99 for a standard normal Z.
const Z99: f64 = 2.326_347_874;

/// The longest a log-normal draw may be, in medians: the tail is cut there.
const MAX_MEDIANS: f64 = 500.0;

impl Latency {
    pub fn median(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::LogNormal { median, .. } => median,
        }
    }

    /// The mean, which bounds throughput as `concurrency / mean` (the median bounds it only for a
    /// fixed latency).
    pub fn mean(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::LogNormal { median, .. } => {
                median.mul_f64((self.sigma() * self.sigma() / 2.0).exp())
            }
        }
    }

    fn sigma(&self) -> f64 {
        match *self {
            Latency::Fixed(_) => 0.0,
            Latency::LogNormal { median, p99 } => {
                (p99.as_secs_f64() / median.as_secs_f64().max(1e-9))
                    .ln()
                    .max(0.0)
                    / Z99
            }
        }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::LogNormal { median, .. } => {
                // `exp(sigma * Z)`: log-normal with mu 0, in medians.
                let medians = LogNormal::new(0.0, self.sigma())
                    .expect("sigma is finite and not negative")
                    .sample(rng);
                median.mul_f64(medians.min(MAX_MEDIANS))
            }
        }
    }
}

impl FromStr for Latency {
    type Err = String;

    /// `fixed:20ms`, `lognormal:20ms` (p99 = 5 x median), `lognormal:20ms:100ms` (median, p99),
    /// `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let duration =
            |d: &str| humantime::parse_duration(d).map_err(|e| format!("bad duration {d:?}: {e}"));
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(Latency::Fixed(Duration::ZERO)),
            ["fixed", d] => Ok(Latency::Fixed(duration(d)?)),
            ["lognormal", m] => {
                let median = duration(m)?;
                Ok(Latency::LogNormal {
                    median,
                    p99: median * 5,
                })
            }
            ["lognormal", m, p] => {
                let (median, p99) = (duration(m)?, duration(p)?);
                if p99 < median {
                    return Err(format!("p99 {p99:?} is below the median {median:?}"));
                }
                Ok(Latency::LogNormal { median, p99 })
            }
            _ => Err(format!(
                "unknown latency {s:?}: use fixed:20ms, lognormal:20ms, lognormal:20ms:100ms or none"
            )),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(d) if d.is_zero() => f.write_str("none"),
            Latency::Fixed(d) => write!(f, "fixed:{}", fmt_duration(d)),
            Latency::LogNormal { median, p99 } => {
                write!(
                    f,
                    "lognormal:{}:{}",
                    fmt_duration(median),
                    fmt_duration(p99)
                )
            }
        }
    }
}

/// In milliseconds, fractional if need be (`20ms`, `0.5ms`): `humantime` reads both back.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms.fract() == 0.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse_and_the_lognormal_has_the_asked_median_and_tail() {
        assert_eq!(
            "fixed:20ms".parse::<Latency>().unwrap(),
            Latency::Fixed(Duration::from_millis(20))
        );
        assert_eq!(
            "none".parse::<Latency>().unwrap(),
            Latency::Fixed(Duration::ZERO)
        );
        let latency: Latency = "lognormal:20ms:100ms".parse().unwrap();
        assert_eq!(latency.to_string(), "lognormal:20ms:100ms");
        assert_eq!("lognormal:20ms".parse::<Latency>().unwrap(), latency);
        assert!("lognormal:20ms:10ms".parse::<Latency>().is_err());
        assert!("gaussian:1s".parse::<Latency>().is_err());

        let mut rng = rand::rng();
        let mut samples: Vec<f64> = (0..20_000)
            .map(|_| latency.sample(&mut rng).as_secs_f64() * 1e3)
            .collect();
        samples.sort_by(f64::total_cmp);
        let (median, p99) = (samples[10_000], samples[19_800]);
        assert!((18.5..21.5).contains(&median), "median {median}");
        assert!((85.0..115.0).contains(&p99), "p99 {p99}");
        let mean = latency.mean().as_secs_f64() * 1e3;
        assert!((25.0..26.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn displayed_latencies_parse_back() {
        for text in [
            "none",
            "fixed:20ms",
            "fixed:0.5ms",
            "lognormal:20ms:100ms",
            "lognormal:1.25ms:7ms",
        ] {
            let latency: Latency = text.parse().unwrap();
            assert_eq!(latency.to_string(), text);
            assert_eq!(latency.to_string().parse::<Latency>().unwrap(), latency);
        }
        assert_eq!(
            "fixed:500us".parse::<Latency>().unwrap().to_string(),
            "fixed:0.5ms"
        );
    }
}
