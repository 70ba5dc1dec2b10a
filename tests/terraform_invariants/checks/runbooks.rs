//! Every alarm has a runbook: a `### NAME` heading in docs/operations.md, where NAME is the
//! alarm's name less the stack's `<project>-<workspace>-` prefix, so that an operator paged by
//! an alarm finds what it means, what to look at and what to run.

use serde_json::{Value, json};

use crate::fixtures::{assert_clean, assert_reports};

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
