//! Negative tests on hand-written renderings: the metric shorthands and the body's keys.

use serde_json::{Value, json};

use crate::fixtures::{assert_clean, assert_reports};

use super::emitted::emitted_metrics;
use super::rendered::check_rendered;

/// A rendering made by hand around `body`, with the snippet's names.
fn hand_rendered(body: Value) -> Value {
    json!({
        "workspace": "dev",
        "dashboards": [{"address": "aws_cloudwatch_dashboard.this", "file": "hand.tf", "line": 1,
                        "dashboard_name": "d", "dashboard_body": body.to_string()}],
        "alarms": [],
        "resource_attrs": {
            "aws_lambda_function.function_name": {"aws_lambda_function.this[\"worker\"]": "x-dev-worker"},
            "aws_sqs_queue.name": {},
            "aws_dynamodb_table.name": {},
            "aws_apigatewayv2_api.id": {},
            "aws_apigatewayv2_stage.name": {},
        },
        "exprs": {"metrics_namespace": "WsFanout", "function_worker": "x-dev-worker",
                  "function_sendmessage": "x-dev-sendmessage", "function_recover": "x-dev-recover",
                  "function_publish": "x-dev-publish"},
    })
}

#[test]
fn metric_shorthands_are_expanded_before_the_checks() {
    let widget = |metrics: Value| {
        json!({"type": "metric", "x": 0, "y": 0, "width": 24, "height": 6,
               "properties": {"region": "eu-west-1", "period": 300, "stat": "p99", "metrics": metrics}})
    };
    let emitted = emitted_metrics();
    let good = json!([
        ["WsFanout", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        [".", "Stale", ".", ".", ".", "."],
        ["...", {"stat": "Maximum", "period": 60}],
        ["AWS/Lambda", "Errors", "FunctionName", "x-dev-worker"],
        ["...", "Throttles", "FunctionName", "x-dev-worker"],
        [{"expression": "m1 + m2", "label": "sum"}],
    ]);
    assert_clean(
        "shorthands",
        check_rendered(&hand_rendered(json!({"widgets": [widget(good)]})), &emitted),
    );
    let bad = json!([
        [".", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        ["WsFanout", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        [".", "Nope", ".", ".", ".", "."],
        ["...", "x-dev-sendmessage"],
        ["WsFanout", "Delivered", "...", {"stat": "p100"}],
        [{"label": "no expression"}],
    ]);
    let violations = check_rendered(
        &hand_rendered(json!({"widgets": [widget(bad)], "periodOverride": "never", "title": "x"})),
        &emitted,
    );
    assert_reports(
        &violations,
        &[
            "metrics[0]: [\".\", \"Delivered\"",
            "with no metric before it to repeat",
            "metrics[2]: \"Nope\" is not a metric the code emits",
            "metrics[3]: \"Nope\" is not a metric the code emits",
            "metrics[4]: stat \"p100\" is not a CloudWatch statistic",
            "\"...\" may only come first",
            "metrics[5]: neither a metric nor a math expression",
            "periodOverride \"never\"",
            "unknown top-level key \"title\"",
        ],
    );
}
