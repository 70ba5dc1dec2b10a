//! A dashboard body and its widgets: the keys PutDashboard knows, the grid, and each widget
//! type's properties; a metric widget's `metrics`, entry by entry.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::context::Context;
use super::fields::{check_period_and_stat, is_region, kind};
use super::metric::check_metric;
use super::shorthands::metric_row;

const WIDGET_TYPES: &[&str] = &["metric", "text", "log", "alarm", "explorer", "custom"];
const BODY_KEYS: &[&str] = &["widgets", "start", "end", "periodOverride", "variables"];

pub(super) fn check_body(at: &str, body: &Value, context: &Context, violations: &mut Vec<String>) {
    let Some(body) = body.as_object() else {
        violations.push(format!("{at}: the body is {}, not an object", kind(body)));
        return;
    };
    for key in body.keys() {
        if !BODY_KEYS.contains(&key.as_str()) {
            violations.push(format!(
                "{at}: unknown top-level key {key:?} (PutDashboard knows {BODY_KEYS:?})"
            ));
        }
    }
    if let Some(p) = body.get("periodOverride")
        && !matches!(p.as_str(), Some("auto" | "inherit"))
    {
        violations.push(format!(
            "{at}: periodOverride {p} is neither \"auto\" nor \"inherit\""
        ));
    }
    let Some(widgets) = body.get("widgets").and_then(Value::as_array) else {
        violations.push(format!("{at}: the body has no widgets array"));
        return;
    };
    if widgets.is_empty() {
        violations.push(format!("{at}: the body has no widgets"));
    }
    for (i, widget) in widgets.iter().enumerate() {
        let title = widget["properties"]["title"]
            .as_str()
            .map(|t| format!(" {t:?}"))
            .unwrap_or_default();
        check_widget(
            &format!("{at} widgets[{i}]{title}"),
            widget,
            context,
            violations,
        );
    }
}

fn check_widget(at: &str, widget: &Value, context: &Context, violations: &mut Vec<String>) {
    let Some(widget) = widget.as_object() else {
        violations.push(format!("{at} is {}, not an object", kind(widget)));
        return;
    };
    let kind_name = widget.get("type").and_then(Value::as_str).unwrap_or("");
    if !WIDGET_TYPES.contains(&kind_name) {
        violations.push(format!(
            "{at}: type {:?} is not one of {WIDGET_TYPES:?}",
            widget.get("type")
        ));
    }
    let mut grid = BTreeMap::new();
    for key in ["x", "y", "width", "height"] {
        match widget.get(key).and_then(Value::as_u64) {
            Some(v) => {
                grid.insert(key, v);
            }
            None => violations.push(format!(
                "{at}: {key} is {:?}, not a non-negative integer",
                widget.get(key)
            )),
        }
    }
    if let (Some(x), Some(width)) = (grid.get("x"), grid.get("width"))
        && (*width == 0 || x + width > 24)
    {
        violations.push(format!(
            "{at}: x {x} and width {width} leave the 24-column grid"
        ));
    }
    if let Some(height) = grid.get("height")
        && !(1..=1000).contains(height)
    {
        violations.push(format!("{at}: height {height} is not 1 to 1000"));
    }
    let Some(properties) = widget.get("properties").and_then(Value::as_object) else {
        violations.push(format!("{at}: no properties object"));
        return;
    };
    match kind_name {
        "metric" => check_metric_widget(at, properties, context, violations),
        "text" if !properties.get("markdown").is_some_and(Value::is_string) => {
            violations.push(format!("{at}: a text widget needs a markdown string"));
        }
        "alarm" => match properties.get("alarms").and_then(Value::as_array) {
            Some(alarms) if !alarms.is_empty() => {
                for alarm in alarms {
                    if !alarm
                        .as_str()
                        .is_some_and(|a| a.starts_with("arn:") && a.contains(":alarm:"))
                    {
                        violations.push(format!("{at}: {alarm} is not an alarm ARN"));
                    }
                }
            }
            _ => violations.push(format!(
                "{at}: an alarm widget needs a non-empty alarms array"
            )),
        },
        _ => {}
    }
}

fn check_metric_widget(
    at: &str,
    properties: &Map<String, Value>,
    context: &Context,
    violations: &mut Vec<String>,
) {
    match properties.get("region") {
        None => violations.push(format!("{at}: no region; a metric widget must name one")),
        Some(Value::String(r)) if is_region(r) => {}
        Some(other) => violations.push(format!("{at}: region {other} is not an AWS region")),
    }
    check_period_and_stat(at, properties, violations);
    let Some(metrics) = properties.get("metrics") else {
        violations.push(format!("{at}: a metric widget needs metrics"));
        return;
    };
    let Some(rows) = metrics.as_array() else {
        violations.push(format!("{at}: metrics is {}, not an array", kind(metrics)));
        return;
    };
    if rows.is_empty() {
        violations.push(format!("{at}: metrics is empty"));
    }
    let not_arrays: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].is_array()).collect();
    if let Some(&first) = not_arrays.first() {
        let row = &rows[first];
        let hint = if row.is_string() || row.is_object() {
            ": the list of metric arrays was flattened into one list (Terraform's flatten() is \
             recursive and flattens the metric arrays too; build one array per metric with a \
             for expression, e.g. over setproduct())"
        } else {
            ""
        };
        violations.push(format!(
            "{at} metrics[{first}] is {} {row}, not an array [namespace, metric, dimension, \
             value, ..., {{options}}] ({} of the {} entries of metrics are not arrays){hint}",
            kind(row),
            not_arrays.len(),
            rows.len()
        ));
    }
    let mut previous: Option<Vec<String>> = None;
    for (i, row) in rows.iter().enumerate() {
        let at = format!("{at} metrics[{i}]");
        let expanded = metric_row(&at, row, previous.as_deref(), violations);
        if let Some(fields) = &expanded {
            let dimensions: Vec<(String, String)> = fields[2..]
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            check_metric(
                &at,
                &fields[0],
                &fields[1],
                &dimensions,
                context,
                violations,
            );
        }
        previous = expanded;
    }
}
