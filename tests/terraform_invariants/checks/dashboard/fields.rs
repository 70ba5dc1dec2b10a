//! Single values: what a JSON value is, and the periods, statistics and regions CloudWatch
//! accepts.

use serde_json::{Map, Value};

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `period` and `stat` of a metric widget, or of one metric's options, where given.
pub(super) fn check_period_and_stat(
    at: &str,
    options: &Map<String, Value>,
    violations: &mut Vec<String>,
) {
    if let Some(period) = options.get("period") {
        check_widget_period(at, period, violations);
    }
    if let Some(stat) = options.get("stat") {
        check_stat(at, stat, violations);
    }
}

fn check_widget_period(at: &str, period: &Value, violations: &mut Vec<String>) {
    if !period.as_u64().is_some_and(|p| p > 0 && p % 60 == 0) {
        violations.push(format!(
            "{at}: period {period} is not a positive multiple of 60 (this stack has no \
             high-resolution metrics)"
        ));
    }
}

pub(super) fn check_alarm_period(at: &str, period: &Value, violations: &mut Vec<String>) {
    if !period
        .as_u64()
        .is_some_and(|p| matches!(p, 10 | 20 | 30) || (p > 0 && p % 60 == 0))
    {
        violations.push(format!(
            "{at}: period {period} is not 10, 20, 30 or a multiple of 60"
        ));
    }
}

/// SampleCount, Average, Sum, Minimum, Maximum, IQM, or a percentile-like statistic (p99,
/// tm90, wm(10%:90%), ...).
fn check_stat(at: &str, stat: &Value, violations: &mut Vec<String>) {
    let valid = stat.as_str().is_some_and(|s| {
        matches!(
            s,
            "SampleCount" | "Average" | "Sum" | "Minimum" | "Maximum" | "IQM"
        ) || ["p", "tm", "wm", "tc", "ts", "pr"].iter().any(|prefix| {
            s.strip_prefix(prefix).is_some_and(|rest| {
                rest.parse::<f64>().is_ok_and(|v| v > 0.0 && v < 100.0)
                    || (rest.starts_with('(') && rest.ends_with(')'))
            })
        })
    });
    if !valid {
        violations.push(format!("{at}: stat {stat} is not a CloudWatch statistic"));
    }
}

/// us-east-1, eu-west-1, us-gov-west-1, ...
pub(super) fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}
