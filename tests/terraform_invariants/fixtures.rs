//! What the negative tests share: a module with a worker Lambda fed by an SQS queue, which each
//! test breaks in its own way, and the assertions over a checker's violations.

use crate::model::Module;

/// A worker function (for_each over `local.functions`, like terraform/functions.tf) and its
/// SQS event source mapping; [`with_queue`] adds the queue.
pub const WORKER_SNIPPET: &str = r#"
variable "worker_timeout_seconds" {
  type        = number
  default     = 60
  description = "t"
  validation {
    condition     = var.worker_timeout_seconds >= 10 && var.worker_timeout_seconds <= 900
    error_message = "range"
  }
}
locals {
  name_prefix = "x-${terraform.workspace}"
  functions = {
    worker = {
      timeout     = var.worker_timeout_seconds
      environment = { CONNECTIONS_TABLE = "t" }
    }
  }
}
resource "aws_lambda_function" "this" {
  for_each         = local.functions
  function_name    = "${local.name_prefix}-${each.key}"
  filename         = "${path.module}/../target/lambda/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${path.module}/../target/lambda/${each.key}/bootstrap.zip")
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  timeout          = each.value.timeout
  environment {
    variables = merge({ RUST_LOG = "info", WORKSPACE = terraform.workspace }, each.value.environment)
  }
}
resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn = aws_sqs_queue.fanout.arn
  function_name    = aws_lambda_function.this["worker"].arn
}
"#;

/// The fan-out queue at this visibility timeout.
pub fn queue_block(visibility: &str) -> String {
    format!(
        "\nresource \"aws_sqs_queue\" \"fanout\" {{\n  name = \"${{local.name_prefix}}-q\"\n  visibility_timeout_seconds = {visibility}\n}}\n"
    )
}

/// [`WORKER_SNIPPET`] with the fan-out queue at this visibility timeout.
pub fn with_queue(visibility: &str) -> Module {
    Module::parse_snippet(
        "snippet.tf",
        &format!("{WORKER_SNIPPET}{}", queue_block(visibility)),
    )
}

/// The checker found nothing; otherwise the failure lists every violation.
pub fn assert_clean(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{what}: {} violation(s):\n  - {}",
        violations.len(),
        violations.join("\n  - ")
    );
}

/// Every needle is in some violation.
pub fn assert_reports(violations: &[String], needles: &[&str]) {
    for needle in needles {
        assert!(
            violations.iter().any(|v| v.contains(needle)),
            "expected a violation containing {needle:?}, got:\n{}",
            violations.join("\n")
        );
    }
}
