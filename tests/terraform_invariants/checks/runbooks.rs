//! Every alarm has a runbook: a `### NAME` heading in docs/operations.md, where NAME is the
//! alarm's name less the stack's `<project>-<workspace>-` prefix, so that an operator paged by
//! an alarm finds what it means, what to look at and what to run. And every metric the
//! runbooks name (a CamelCase word in backticks) is one that exists: emitted by the code, or
//! graphed or alarmed on by the stack, so that an operator is never sent to look for a metric
//! that is not there.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use fanout::metrics::EmfConfig;

use crate::checks::dashboard::Emitted;
use crate::checks::dashboard::namespaces::AWS_NAMESPACES;
use crate::fixtures::{assert_clean, assert_reports};

/// CamelCase words in backticks in docs/operations.md that are not metrics: the AWS API
/// actions, errors and message attributes the runbooks cite. A word the check reports is a
/// metric that does not exist, unless it belongs here.
const NOT_METRICS: &[&str] = &[
    "AccessDenied",
    "DeleteConnection",
    "SentTimestamp",
    "StartMessageMoveTask",
];

/// The alarms of a rendering (made with `dashboard::check_options`, which renders
/// `local.name_prefix` as `name_prefix`) whose runbook `operations` (the Markdown) lacks.
pub fn check_runbooks(rendered: &Value, operations: &str) -> Vec<String> {
    let Some(prefix) = rendered["exprs"]["name_prefix"].as_str() else {
        return vec!["the rendering has no name_prefix (render with check_options)".to_owned()];
    };
    let headings: Vec<&str> = operations
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(str::trim)
        .collect();
    let mut violations = Vec::new();
    for alarm in rendered["alarms"].as_array().into_iter().flatten() {
        let address = alarm["address"].as_str().unwrap_or("?");
        let Some(name) = alarm["alarm_name"].as_str() else {
            violations.push(format!("{address}: no alarm_name was rendered"));
            continue;
        };
        let Some(key) = name.strip_prefix(&format!("{prefix}-")) else {
            violations.push(format!(
                "{address}: alarm_name {name:?} does not start with {prefix:?}-"
            ));
            continue;
        };
        if !headings.contains(&key) {
            violations.push(format!(
                "{address}: alarm {name:?} has no runbook: add `### {key}` to docs/operations.md"
            ));
        }
    }
    violations
}

/// Every string in a metric's place in a rendering: the second item of a dashboard's metric
/// row (`[namespace or ".", name, ...]`), and an alarm's `metric_name`, at any depth.
fn rendered_metric_names(rendered: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, names: &mut BTreeSet<String>) {
        match value {
            Value::Array(items) => {
                if let [Value::String(first), Value::String(name), ..] = items.as_slice()
                    && first != "..."
                {
                    names.insert(name.clone());
                }
                items.iter().for_each(|item| walk(item, names));
            }
            Value::Object(fields) => {
                if let Some(Value::String(name)) = fields.get("metric_name") {
                    names.insert(name.clone());
                }
                fields.values().for_each(|field| walk(field, names));
            }
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    for dashboard in rendered["dashboards"].as_array().into_iter().flatten() {
        if let Some(body) = dashboard["dashboard_body"].as_str()
            && let Ok(body) = serde_json::from_str::<Value>(body)
        {
            walk(&body, &mut names);
        }
    }
    walk(&rendered["alarms"], &mut names);
    names
}

/// The CamelCase words in backticks in `markdown` (a capital, then letters and digits with at
/// least one lowercase letter: `Delivered`, not `POST` or `N`).
fn camel_case_words(markdown: &str) -> BTreeSet<&str> {
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            word.starts_with(|c: char| c.is_ascii_uppercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && word.chars().any(|c| c.is_ascii_lowercase())
        })
        .collect()
}

/// The metric names `operations` (the Markdown) mentions that exist nowhere: neither in
/// `emitted` (the code's, with their dimensions and namespace) nor in the rendering's
/// dashboards and alarms (AWS metrics), nor a dimension CloudWatch documents.
pub fn check_runbook_metrics(rendered: &Value, operations: &str, emitted: &Emitted) -> Vec<String> {
    let mut known = rendered_metric_names(rendered);
    for (name, emitter) in &emitted.metrics {
        known.insert(name.clone());
        known.extend(emitter.dimension_sets.iter().flatten().cloned());
    }
    for (_, sets) in AWS_NAMESPACES {
        known.extend(
            sets.iter()
                .flat_map(|set| set.iter().map(|d| (*d).to_owned())),
        );
    }
    known.insert(EmfConfig::DEFAULT_NAMESPACE.to_owned());
    camel_case_words(operations)
        .into_iter()
        .filter(|word| !known.contains(*word) && !NOT_METRICS.contains(word))
        .map(|word| {
            format!(
                "docs/operations.md names `{word}`, which is no metric the code emits or the stack \
                 graphs (nor a dimension): name one that exists, or list `{word}` in \
                 runbooks::NOT_METRICS if it is no metric"
            )
        })
        .collect()
}

#[test]
fn a_metric_that_does_not_exist_is_reported() {
    use crate::checks::dashboard::emitted_metrics;
    let rendered = json!({
        "dashboards": [{"dashboard_body": r#"{"widgets":[{"properties":{"metrics":[
            ["AWS/Lambda","Throttles","FunctionName","f"],[".","Errors",".","."]]}}]}"#}],
        "alarms": [{"namespace": "AWS/SQS", "metric_name": "ApproximateAgeOfOldestMessage"}],
    });
    let operations = "Look at `Delivered` by `Function`, `Throttles`, `Errors` and \
                      `ApproximateAgeOfOldestMessage`; run `wsfanout status` (`POST`, `N`) after \
                      an `AccessDenied`. The `Throttled` posts and `Spilled` jobs.";
    let violations = check_runbook_metrics(&rendered, operations, &emitted_metrics());
    assert_reports(
        &violations,
        &[
            "docs/operations.md names `Throttled`",
            "docs/operations.md names `Spilled`",
        ],
    );
    assert_eq!(violations.len(), 2, "{violations:#?}");
}

#[test]
fn an_alarm_without_a_runbook_is_reported() {
    let rendered = json!({
        "exprs": {"name_prefix": "wsfanout-dev"},
        "alarms": [
            {"address": "a.documented", "alarm_name": "wsfanout-dev-queue-age"},
            {"address": "a.undocumented", "alarm_name": "wsfanout-dev-new-thing"},
            {"address": "a.foreign", "alarm_name": "other-queue-age"},
        ],
    });
    let operations = "# Ops\n\n### queue-age\n\nMeans...\n\n## new-thing (not a runbook heading)\n";
    let violations = check_runbooks(&rendered, operations);
    assert_reports(
        &violations,
        &[
            "a.undocumented: alarm \"wsfanout-dev-new-thing\" has no runbook: add `### new-thing`",
            "a.foreign: alarm_name \"other-queue-age\" does not start with \"wsfanout-dev\"-",
        ],
    );
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert_clean(
        "documented",
        check_runbooks(
            &json!({"exprs": {"name_prefix": "p"}, "alarms": [{"address": "x", "alarm_name": "p-a"}]}),
            "### a\n",
        ),
    );
}
