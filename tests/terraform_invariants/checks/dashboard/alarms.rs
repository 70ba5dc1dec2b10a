//! An `aws_cloudwatch_metric_alarm`: its period, and the metrics it watches, its own and its
//! `metric_query` ones.

use serde_json::Value;

use super::context::Context;
use super::fields::check_alarm_period;
use super::metric::check_metric;

pub(super) fn check_alarm(
    at: &str,
    alarm: &Value,
    context: &Context,
    violations: &mut Vec<String>,
) {
    if let Some(period) = alarm.get("period").filter(|p| !p.is_null()) {
        check_alarm_period(at, period, violations);
    }
    let mut metrics = Vec::new();
    if alarm.get("namespace").is_some_and(|n| !n.is_null()) {
        metrics.push((at.to_owned(), alarm));
    }
    for (i, query) in alarm["metric_query"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for metric in query["metric"].as_array().into_iter().flatten() {
            let at = format!("{at} metric_query[{i}]");
            if let Some(period) = metric.get("period").filter(|p| !p.is_null()) {
                check_alarm_period(&at, period, violations);
            }
            metrics.push((at, metric));
        }
    }
    if metrics.is_empty() && alarm["metric_query"].as_array().is_none_or(Vec::is_empty) {
        violations.push(format!("{at}: the alarm watches no metric"));
    }
    for (at, metric) in metrics {
        let (Some(namespace), Some(name)) =
            (metric["namespace"].as_str(), metric["metric_name"].as_str())
        else {
            violations.push(format!(
                "{at}: a metric needs a namespace and a metric_name"
            ));
            continue;
        };
        let mut dimensions = Vec::new();
        for (key, value) in metric["dimensions"].as_object().into_iter().flatten() {
            match value.as_str() {
                Some(v) => dimensions.push((key.clone(), v.to_owned())),
                None => violations.push(format!("{at}: dimension {key} is {value}, not a string")),
            }
        }
        check_metric(&at, namespace, name, &dimensions, context, violations);
    }
}
