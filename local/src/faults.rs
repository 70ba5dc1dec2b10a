//! Faults the management API can be told to inject, for a period: answer 500, 503, 429 or 403, or
//! hold requests without answering (`hang`), as API Gateway does in a brownout; and a latency
//! added to every request. From the command line (`--management-fault KIND@START+DURATION`,
//! `--management-latency`) or, for tests, [`crate::LocalStack::inject_management_fault`].

use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;
use tokio::time::Instant;

/// What the management API does during a fault period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `500 InternalServerErrorException`.
    InternalError,
    /// `503 ServiceUnavailableException`.
    Unavailable,
    /// `429 LimitExceededException`: throttled.
    Throttled,
    /// `403 ForbiddenException`: the worker may not post (a role without
    /// `execute-api:ManageConnections`).
    Forbidden,
    /// Holds the request without answering until the period ends, then answers 504.
    Hang,
}

impl FaultKind {
    /// The names `--management-fault` takes.
    pub const NAMES: &str = "500, 503, 429, 403 or hang";

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::InternalError => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Throttled => "429",
            FaultKind::Forbidden => "403",
            FaultKind::Hang => "hang",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "500" => Ok(FaultKind::InternalError),
            "503" => Ok(FaultKind::Unavailable),
            "429" => Ok(FaultKind::Throttled),
            "403" => Ok(FaultKind::Forbidden),
            "hang" => Ok(FaultKind::Hang),
            other => Err(format!("unknown fault '{other}': use {}", FaultKind::NAMES)),
        }
    }
}

/// One `--management-fault KIND@START+DURATION`: a fault from `start` after start-up, for
/// `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub start: Duration,
    pub duration: Duration,
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = "expected KIND@START+DURATION, for example 500@5s+30s or hang@40s+5s";
        let (kind, period) = text.split_once('@').ok_or(shape)?;
        let (start, duration) = period.split_once('+').ok_or(shape)?;
        let kind: FaultKind = kind.trim().parse()?;
        let read = |what: &str, text: &str| {
            humantime::parse_duration(text.trim())
                .map_err(|error| format!("{what} '{text}': {error} ({shape})"))
        };
        let start = read("START", start)?;
        let duration = read("DURATION", duration)?;
        if duration.is_zero() {
            return Err(format!("DURATION must be more than 0 ({shape})"));
        }
        Ok(FaultSpec {
            kind,
            start,
            duration,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Period {
    kind: FaultKind,
    start: Instant,
    end: Instant,
}

/// The management API's fault schedule and latency, shared by its handlers.
#[derive(Debug)]
pub struct ManagementFaults {
    /// Added to every request before it is answered.
    pub latency: Duration,
    periods: RwLock<Vec<Period>>,
}

impl ManagementFaults {
    /// The periods of `specs`, counted from `origin` (start-up).
    pub fn new(origin: Instant, specs: &[FaultSpec], latency: Duration) -> Self {
        let periods = specs
            .iter()
            .map(|spec| Period {
                kind: spec.kind,
                start: origin + spec.start,
                end: origin + spec.start + spec.duration,
            })
            .collect();
        Self {
            latency,
            periods: RwLock::new(periods),
        }
    }

    /// Adds a fault from now for `duration`.
    pub fn inject(&self, kind: FaultKind, duration: Duration) {
        let start = Instant::now();
        let mut periods = self.periods.write().unwrap_or_else(|p| p.into_inner());
        periods.retain(|period| period.end > start);
        periods.push(Period {
            kind,
            start,
            end: start + duration,
        });
    }

    /// Ends every fault now: the management API answers as it should again.
    pub fn clear(&self) {
        self.periods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The fault in force at `now` and when it ends: of overlapping periods, the one that
    /// started last (the later given, on a tie).
    pub fn active(&self, now: Instant) -> Option<(FaultKind, Instant)> {
        self.periods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|period| period.start <= now && now < period.end)
            .max_by_key(|period| period.start)
            .map(|period| (period.kind, period.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kind_start_and_duration() {
        assert_eq!(
            "500@5s+30s".parse::<FaultSpec>(),
            Ok(FaultSpec {
                kind: FaultKind::InternalError,
                start: Duration::from_secs(5),
                duration: Duration::from_secs(30),
            })
        );
        let hang: FaultSpec = "hang@1m30s+250ms".parse().unwrap();
        assert_eq!(
            (hang.kind, hang.start, hang.duration),
            (
                FaultKind::Hang,
                Duration::from_secs(90),
                Duration::from_millis(250)
            )
        );
        for (bad, says) in [
            ("500", "KIND@START+DURATION"),
            ("500@5s", "KIND@START+DURATION"),
            ("404@0s+1s", "use 500, 503, 429, 403 or hang"),
            ("503@5+1s", "START '5'"),
            ("429@0s+soon", "DURATION 'soon'"),
            ("hang@0s+0s", "more than 0"),
        ] {
            let error = bad.parse::<FaultSpec>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_started_period_in_force_applies() {
        let origin = Instant::now();
        let faults = ManagementFaults::new(
            origin,
            &["500@1s+10s".parse().unwrap(), "hang@3s+2s".parse().unwrap()],
            Duration::ZERO,
        );
        let at = |secs: u64| {
            faults
                .active(origin + Duration::from_secs(secs))
                .map(|f| f.0)
        };
        assert_eq!(at(0), None);
        assert_eq!(at(1), Some(FaultKind::InternalError));
        assert_eq!(at(3), Some(FaultKind::Hang));
        assert_eq!(at(5), Some(FaultKind::InternalError));
        assert_eq!(at(11), None);

        faults.inject(FaultKind::Throttled, Duration::from_secs(1));
        assert_eq!(
            faults.active(Instant::now()),
            Some((FaultKind::Throttled, origin + Duration::from_secs(1)))
        );
    }
}
