//! The one definition of each numeric setting: its environment variable, default, bounds, unit
//! and meaning. The parser (`components.rs`), the components' `Default`s and the local stack's
//! flags read these; tests hold Terraform's variables (their defaults and validations) and the
//! docs' tables to them, so none of those can drift from the code.

use crate::domain::frame::MAX_FRAME_BYTES;
use std::ops::RangeInclusive;
use std::time::Duration;

/// What a setting's number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Seconds,
    Millis,
}

/// A setting read from one environment variable, a whole number within `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub var: &'static str,
    /// The value when the variable is unset; `None`: unset means none (see `meaning`).
    pub default: Option<u64>,
    pub min: u64,
    pub max: u64,
    pub unit: Unit,
    /// One line: what it sets.
    pub meaning: &'static str,
}

impl Setting {
    pub const fn bounds(&self) -> RangeInclusive<u64> {
        self.min..=self.max
    }

    /// The default of a setting that has one (a const use of a setting without fails to build).
    pub const fn default_value(&self) -> u64 {
        match self.default {
            Some(value) => value,
            None => panic!("this setting has no default"),
        }
    }

    /// `value` in the setting's unit as a duration; a count is not one.
    pub const fn duration(&self, value: u64) -> Duration {
        match self.unit {
            Unit::Seconds => Duration::from_secs(value),
            Unit::Millis => Duration::from_millis(value),
            Unit::Count | Unit::Bytes => panic!("this setting is not a duration"),
        }
    }

    pub const fn default_duration(&self) -> Duration {
        self.duration(self.default_value())
    }

    /// The bounds as clap's ranged value parsers take them.
    pub const fn flag_range(&self) -> RangeInclusive<i64> {
        self.min as i64..=self.max as i64
    }
}

/// Every setting, in the order of docs/architecture.md's table.
pub const ALL: &[&Setting] = &[
    &PAGE_LIMIT,
    &CONNECTION_TTL_SECONDS,
    &MAX_ROOMS_PER_CONNECTION,
    &MAX_DATA_BYTES,
    &HISTORY_SIZE,
    &HISTORY_TTL_SECONDS,
    &FANOUT_CONCURRENCY,
    &POST_TIMEOUT_MS,
    &MAX_POST_ATTEMPTS,
    &BACKOFF_BASE_MS,
    &BACKOFF_CAP_MS,
    &DEADLINE_MARGIN_MS,
    &HANDOFF_RESERVE_MS,
    &SCAN_SEGMENTS,
    &ROOM_SPLIT_WAYS,
    &ACCOUNT_POST_RATE,
    &RETRY_BUDGET_SECONDS,
    &RETRY_DELAY_BASE_MS,
    &GONE_GRACE_SECONDS,
    &CHECKPOINT_EVERY,
    &PROGRESS_TTL_SECONDS,
    &RATE_LIMIT_PER_SECOND,
    &RATE_LIMIT_BURST,
    &JWT_LEEWAY_SECONDS,
    &JWKS_REFRESH_SECONDS,
];

/// The setting read from `var`, if any.
pub fn by_var(var: &str) -> Option<&'static Setting> {
    ALL.iter().copied().find(|setting| setting.var == var)
}

// The connections table and `$connect`.

pub const PAGE_LIMIT: Setting = Setting {
    var: "PAGE_LIMIT",
    default: None,
    min: 1,
    max: 1_000_000,
    unit: Unit::Count,
    meaning: "items per Query or Scan page; unset, what a 1 MB page holds",
};

pub const MAX_ROOMS_PER_CONNECTION: Setting = Setting {
    var: "MAX_ROOMS_PER_CONNECTION",
    default: Some(100),
    // A connection's item names each of its rooms: 1,000 of 64 bytes stay far below
    // DynamoDB's 400 KB item limit.
    min: 1,
    max: 1_000,
    unit: Unit::Count,
    meaning: "the most rooms one connection may be in; a join past it is refused with too_many_rooms",
};

pub const CONNECTION_TTL_SECONDS: Setting = Setting {
    var: "CONNECTION_TTL_SECONDS",
    default: Some(2 * 3600 + 300),
    // More than API Gateway's 2 h connection limit: a record that expires first drops a live
    // member from its room. At most a week: a stale record costs a 410 at most.
    min: 2 * 3600 + 1,
    max: 7 * 24 * 3600,
    unit: Unit::Seconds,
    meaning: "a stored connection's lifetime if $disconnect never comes (API Gateway closes connections after 2 h)",
};

// sendmessage, publish and recover.

pub const MAX_DATA_BYTES: Setting = Setting {
    var: "MAX_DATA_BYTES",
    default: Some(64 * 1024),
    min: 1,
    // API Gateway's 128 KB message less room for the envelope around `data` (id, room, sender,
    // timestamp and keys take under 300 bytes).
    max: MAX_FRAME_BYTES as u64 - 1024,
    unit: Unit::Bytes,
    meaning: "the largest `data` of a message, as JSON text",
};

pub const HISTORY_SIZE: Setting = Setting {
    var: "HISTORY_SIZE",
    default: Some(100),
    min: 0,
    max: 1_000,
    unit: Unit::Count,
    meaning: "how many of each room's last messages are kept for recovery; 0 keeps none",
};

pub const HISTORY_TTL_SECONDS: Setting = Setting {
    var: "HISTORY_TTL_SECONDS",
    default: Some(3_600),
    min: 60,
    max: 7 * 24 * 3_600,
    unit: Unit::Seconds,
    meaning: "how long a room keeps a message for recovery",
};

pub const RATE_LIMIT_PER_SECOND: Setting = Setting {
    var: "RATE_LIMIT_PER_SECOND",
    default: Some(10),
    min: 0,
    max: 100_000,
    unit: Unit::Count,
    meaning: "messages a second one connection may send, sustained; 0 turns the limit off",
};

pub const RATE_LIMIT_BURST: Setting = Setting {
    var: "RATE_LIMIT_BURST",
    default: Some(20),
    min: 1,
    max: 100_000,
    unit: Unit::Count,
    meaning: "messages one connection may send at once",
};

// The worker's engine.

pub const FANOUT_CONCURRENCY: Setting = Setting {
    var: "FANOUT_CONCURRENCY",
    default: Some(256),
    min: 1,
    // A Lambda may open 1,024 files, and each post in flight holds a connection; the progress
    // record holds at most this many ids in flight.
    max: 1_000,
    unit: Unit::Count,
    meaning: "posts in flight at once across a worker's batch",
};

pub const POST_TIMEOUT_MS: Setting = Setting {
    var: "POST_TIMEOUT_MS",
    default: Some(3_000),
    min: 100,
    // API Gateway's longest integration timeout: a management call that has not answered by
    // then will not, and a longer wait holds a slot of FANOUT_CONCURRENCY and pushes
    // DEADLINE_MARGIN_MS above it.
    max: 29_000,
    unit: Unit::Millis,
    meaning: "each post gives up after this long and counts as a transient failure",
};

pub const MAX_POST_ATTEMPTS: Setting = Setting {
    var: "MAX_POST_ATTEMPTS",
    default: Some(5),
    min: 1,
    max: 20,
    unit: Unit::Count,
    meaning: "tries per connection within one invocation for 5xx and timeouts",
};

pub const BACKOFF_BASE_MS: Setting = Setting {
    var: "BACKOFF_BASE_MS",
    default: Some(50),
    min: 1,
    max: 10_000,
    unit: Unit::Millis,
    meaning: "full-jitter backoff: the n-th retry waits up to min(cap, base × 2^(n-1))",
};

pub const BACKOFF_CAP_MS: Setting = Setting {
    var: "BACKOFF_CAP_MS",
    default: Some(2_000),
    min: 1,
    max: 60_000,
    unit: Unit::Millis,
    meaning: "the longest full-jitter backoff between two tries of a post",
};

pub const DEADLINE_MARGIN_MS: Setting = Setting {
    var: "DEADLINE_MARGIN_MS",
    default: Some(5_000),
    // A second at least: the posts in flight finish and the hand-off is written (an SQS send
    // and a DynamoDB write, each with the SDK's retries) before Lambda stops the invocation.
    min: 1_000,
    max: 600_000,
    unit: Unit::Millis,
    meaning: "stop taking pages and starting posts this long before the deadline; more than POST_TIMEOUT_MS",
};

pub const HANDOFF_RESERVE_MS: Setting = Setting {
    var: "HANDOFF_RESERVE_MS",
    // Unset, half DEADLINE_MARGIN_MS when that is less.
    default: Some(2_000),
    min: 100,
    max: 60_000,
    unit: Unit::Millis,
    meaning: "posts still running this long before the deadline are abandoned; less than DEADLINE_MARGIN_MS",
};

pub const SCAN_SEGMENTS: Setting = Setting {
    var: "SCAN_SEGMENTS",
    default: Some(1),
    min: 1,
    max: 1_000,
    unit: Unit::Count,
    meaning: "an `all` job is split into this many parallel Scan segments",
};

pub const ROOM_SPLIT_WAYS: Setting = Setting {
    var: "ROOM_SPLIT_WAYS",
    default: Some(1),
    min: 1,
    max: 256,
    unit: Unit::Count,
    meaning: "a room bigger than one page is split into this many ranges of ids, one job each; 1 never splits",
};

pub const ACCOUNT_POST_RATE: Setting = Setting {
    var: "ACCOUNT_POST_RATE",
    default: Some(10_000),
    min: 1,
    max: 1_000_000,
    unit: Unit::Count,
    meaning: "the account's management API rate a second; a split room's parts start paced at their share of it",
};

pub const RETRY_BUDGET_SECONDS: Setting = Setting {
    var: "RETRY_BUDGET_SECONDS",
    default: Some(15 * 60),
    min: 60,
    max: 86_400,
    unit: Unit::Seconds,
    meaning: "how long transient failures of a delivery are retried before its ids go to the dead-letter queue",
};

pub const RETRY_DELAY_BASE_MS: Setting = Setting {
    var: "RETRY_DELAY_BASE_MS",
    default: Some(1_000),
    min: 100,
    max: 60_000,
    unit: Unit::Millis,
    meaning: "re-enqueued retries wait about this × 2^attempt (at most SQS's 900 s)",
};

pub const GONE_GRACE_SECONDS: Setting = Setting {
    var: "GONE_GRACE_SECONDS",
    default: Some(60),
    min: 1,
    max: 3_600,
    unit: Unit::Seconds,
    meaning: "a 410 deletes a connection only if it connected longer ago than this; a younger one is retried",
};

pub const CHECKPOINT_EVERY: Setting = Setting {
    var: "CHECKPOINT_EVERY",
    default: Some(0),
    min: 0,
    max: 100_000,
    unit: Unit::Count,
    meaning: "posts started between progress checkpoints; 0 means FANOUT_CONCURRENCY",
};

pub const PROGRESS_TTL_SECONDS: Setting = Setting {
    var: "PROGRESS_TTL_SECONDS",
    default: Some(4 * 24 * 3_600),
    min: 3_600,
    max: 2_592_000,
    unit: Unit::Seconds,
    meaning: "how long a job's progress record outlives its last write",
};

// The `$connect` authorizer.

pub const JWT_LEEWAY_SECONDS: Setting = Setting {
    var: "JWT_LEEWAY_SECONDS",
    default: Some(30),
    min: 0,
    max: 300,
    unit: Unit::Seconds,
    meaning: "clock skew allowed on a token's exp and nbf",
};

pub const JWKS_REFRESH_SECONDS: Setting = Setting {
    var: "JWKS_REFRESH_SECONDS",
    default: Some(60),
    min: 1,
    max: 86_400,
    unit: Unit::Seconds,
    meaning: "at most one fetch of the issuer's key set per this interval",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_is_listed_once_with_its_default_in_bounds() {
        for (i, setting) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|other| other.var != setting.var),
                "{} is listed twice",
                setting.var
            );
            assert!(setting.min <= setting.max, "{}", setting.var);
            if let Some(default) = setting.default {
                assert!(setting.bounds().contains(&default), "{}", setting.var);
            }
            assert!(!setting.meaning.is_empty(), "{}", setting.var);
        }
    }
}
