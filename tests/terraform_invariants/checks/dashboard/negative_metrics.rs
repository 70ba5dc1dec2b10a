//! Negative tests: rendered snippets whose widgets and alarms break the rules on metrics.

use crate::fixtures::assert_reports;

use super::snippet::{REGION_PERIOD, metric_widget, render_and_check};

#[test]
fn flatten_over_metric_arrays_is_reported_and_setproduct_is_not() {
    let flattened = r#"flatten([for f in ["sendmessage", "worker"] : [
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.this[f].function_name, { label = "${f} errors" }],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.this[f].function_name],
          ]])"#;
    let product = r#"[
            for pair in setproduct(["sendmessage", "worker"], ["Errors", "Throttles"]) :
            ["AWS/Lambda", pair[1], "FunctionName", aws_lambda_function.this[pair[0]].function_name, { label = pair[0] }]
          ]"#;
    let violations = render_and_check(
        &[
            metric_widget(0, flattened, REGION_PERIOD),
            metric_widget(1, product, REGION_PERIOD),
        ],
        "",
    );
    assert_reports(
        &violations,
        &[
            "widgets[0] \"w0\" metrics[0] is a string \"AWS/Lambda\", not an array",
            "(18 of the 18 entries of metrics are not arrays)",
            "flatten() is recursive",
        ],
    );
    assert_eq!(
        violations.len(),
        1,
        "one violation per widget: {violations:#?}"
    );
    let elsewhere: Vec<&String> = violations
        .iter()
        .filter(|v| !v.contains("widgets[0]"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the setproduct widget is well-formed, yet: {elsewhere:?}"
    );
}

#[test]
fn unknown_worker_metrics_wrong_dimensions_and_malformed_widgets_are_reported() {
    let metrics = r#"[
            concat([var.metrics_namespace, "Delivered"], local.emf_dimensions, [{ label = "fine" }]),
            concat([var.metrics_namespace, "Deliverd"], local.emf_dimensions),
            [var.metrics_namespace, "Stale", "Function", aws_lambda_function.this["worker"].function_name],
            [var.metrics_namespace, "Failed", "Workspace", "prod", "Function", aws_lambda_function.this["worker"].function_name],
            [var.metrics_namespace, "Failed", "Workspace", terraform.workspace, "Function", aws_lambda_function.this["sendmessage"].function_name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueUrl", aws_sqs_queue.fanout.url],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.this["worker"].arn],
            ["AWS/Lambda", "Errors", "FunctionName"],
            ["Custom/Thing", "Count"],
          ]"#;
    let unplaced = r#"{
        type       = "metric"
        x          = 18
        y          = 20
        width      = 12
        height     = 6
        properties = { period = 45, metrics = [["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.fanout.name]] }
      }"#;
    let alarms = r#"
resource "aws_cloudwatch_metric_alarm" "typo" {
  alarm_name  = "${local.name_prefix}-typo"
  namespace   = var.metrics_namespace
  metric_name = "Deliverd"
  dimensions = {
    Function = aws_lambda_function.this["worker"].function_name
  }
  period = 90
}

resource "aws_cloudwatch_metric_alarm" "queue" {
  alarm_name  = "${local.name_prefix}-queue"
  namespace   = "AWS/SQS"
  metric_name = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.fanout.name
  }
  period = 60
}
"#;
    let violations = render_and_check(
        &[
            metric_widget(0, metrics, REGION_PERIOD),
            unplaced.to_owned(),
        ],
        alarms,
    );
    assert_reports(
        &violations,
        &[
            "metrics[1]: \"Deliverd\" is not a metric the code emits in WsFanout",
            "metrics[2]: WsFanout Stale with dimensions [\"Function\"]",
            "metrics[3]: WsFanout Failed dimension Workspace = \"prod\", but the worker writes \"dev\"",
            "metrics[4]: WsFanout Failed dimension Function = \"x-dev-sendmessage\", but the worker writes \"x-dev-worker\"",
            "metrics[5]: AWS/SQS ApproximateAgeOfOldestMessage with dimensions [\"QueueUrl\"]",
            "metrics[6]: AWS/Lambda Errors dimension FunctionName = \"arn:aws:lambda:eu-west-1:123456789012:function:x-dev-worker\" is no aws_lambda_function.function_name",
            "metrics[7]: [\"AWS/Lambda\", \"Errors\", \"FunctionName\"] has a dimension without a value",
            "metrics[8]: namespace \"Custom/Thing\"",
            "widgets[1]: x 18 and width 12 leave the 24-column grid",
            "widgets[1]: no region",
            "widgets[1]: period 45",
            "aws_cloudwatch_metric_alarm.typo (snippet.tf:",
            "\"Deliverd\" is not a metric the code emits",
            "period 90 is not 10, 20, 30 or a multiple of 60",
        ],
    );
    let fine: Vec<&String> = violations
        .iter()
        .filter(|v| v.contains("metrics[0]") || v.contains("alarm.queue"))
        .collect();
    assert!(
        fine.is_empty(),
        "the well-formed metric and alarm are reported: {fine:?}"
    );
}

/// sendmessage and publish write the same metrics, each under its own `Function`.
#[test]
fn sendmessage_metrics_are_checked_against_what_it_writes() {
    let alarm = |name: &str, metric: &str, dimensions: &str| {
        format!(
            r#"
resource "aws_cloudwatch_metric_alarm" "{name}" {{
  alarm_name  = "${{local.name_prefix}}-{name}"
  namespace   = var.metrics_namespace
  metric_name = "{metric}"
  dimensions = {{
    Workspace = terraform.workspace
    {dimensions}
  }}
  period = 60
}}
"#
        )
    };
    let sendmessage = r#"aws_lambda_function.this["sendmessage"].function_name"#;
    let publish = r#"aws_lambda_function.this["publish"].function_name"#;
    let alarms = [
        alarm(
            "fine",
            "Refused",
            &format!("Function = {sendmessage}\n    Code = \"unavailable\""),
        ),
        alarm("total", "Refused", &format!("Function = {sendmessage}")),
        alarm(
            "published",
            "Refused",
            &format!("Function = {publish}\n    Code = \"unavailable\""),
        ),
        alarm("publishes", "Accepted", &format!("Function = {publish}")),
        alarm(
            "typo",
            "Refused",
            &format!("Function = {sendmessage}\n    Code = \"unavailabel\""),
        ),
        alarm(
            "bycode",
            "Accepted",
            &format!("Function = {sendmessage}\n    Code = \"unavailable\""),
        ),
        alarm(
            "writer",
            "Refused",
            "Function = aws_lambda_function.this[\"worker\"].function_name",
        ),
    ]
    .concat();
    let good = r#"[concat([var.metrics_namespace, "Delivered"], local.emf_dimensions)]"#;
    let violations = render_and_check(&[metric_widget(0, good, REGION_PERIOD)], &alarms);
    assert_reports(
        &violations,
        &[
            "aws_cloudwatch_metric_alarm.typo (snippet.tf:",
            "WsFanout Refused dimension Code = \"unavailabel\" is no error code",
            "aws_cloudwatch_metric_alarm.bycode (snippet.tf:",
            "WsFanout Accepted with dimensions",
            "aws_cloudwatch_metric_alarm.writer (snippet.tf:",
            "WsFanout Refused dimension Function = \"x-dev-worker\", but the sendmessage or publish writes \"x-dev-sendmessage\" or \"x-dev-publish\"",
        ],
    );
    assert!(
        !violations.iter().any(|v| {
            [".fine ", ".total ", ".published ", ".publishes "]
                .iter()
                .any(|alarm| v.contains(alarm))
        }),
        "Refused by function, and by function and code, are both written, by sendmessage and by publish: {violations:#?}"
    );
}
