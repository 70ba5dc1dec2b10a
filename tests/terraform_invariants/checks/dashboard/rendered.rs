//! A rendering's dashboards and alarms, each checked where it was declared.

use serde_json::Value;

use super::alarms::check_alarm;
use super::context::Context;
use super::emitted::Emitted;
use super::widgets::check_body;

/// Every dashboard and alarm of a rendering made with
/// [`check_options`](super::context::check_options).
pub fn check_rendered(rendered: &Value, emitted: &Emitted) -> Vec<String> {
    let mut violations = Vec::new();
    let context = match Context::new(rendered, emitted) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    let dashboards = rendered["dashboards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if dashboards.is_empty() {
        violations.push("no aws_cloudwatch_dashboard was rendered".to_owned());
    }
    for dashboard in &dashboards {
        let at = located(dashboard);
        match dashboard["dashboard_body"].as_str() {
            None => violations.push(format!("{at}: dashboard_body is not a string")),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Err(e) => violations.push(format!("{at}: dashboard_body is not JSON: {e}")),
                Ok(body) => check_body(&at, &body, &context, &mut violations),
            },
        }
    }
    for alarm in rendered["alarms"].as_array().into_iter().flatten() {
        check_alarm(&located(alarm), alarm, &context, &mut violations);
    }
    violations
}

fn located(item: &Value) -> String {
    format!(
        "{} ({}:{})",
        item["address"].as_str().unwrap_or("?"),
        item["file"].as_str().unwrap_or("?"),
        item["line"]
    )
}
