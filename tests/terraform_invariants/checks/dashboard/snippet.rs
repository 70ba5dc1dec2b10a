//! The negative tests' HCL: a small module with a dashboard whose widgets each test supplies,
//! rendered and checked as the real one is.

use serde_json::Value;

use crate::render::render_snippet;

use super::context::check_options;
use super::emitted::emitted_metrics;
use super::rendered::check_rendered;

/// The functions that emit metrics, a queue, and a dashboard whose widgets each test supplies
/// (`WIDGETS`), plus `EXTRA` blocks.
const SNIPPET: &str = r#"
variable "metrics_namespace" {
  type    = string
  default = "WsFanout"
}

provider "aws" {
  region = "eu-west-1"
}

data "aws_region" "current" {}

locals {
  name_prefix    = "x-${terraform.workspace}"
  region         = data.aws_region.current.region
  emf_dimensions = ["Workspace", terraform.workspace, "Function", aws_lambda_function.this["worker"].function_name]
}

resource "aws_lambda_function" "this" {
  for_each      = toset(["sendmessage", "worker", "recover", "publish"])
  function_name = "${local.name_prefix}-${each.key}"
}

resource "aws_sqs_queue" "fanout" {
  name = "${local.name_prefix}-fanout"
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${local.name_prefix}-fanout"
  dashboard_body = jsonencode({
    widgets = [
      WIDGETS
    ]
  })
}

EXTRA
"#;

fn snippet(widgets: &[String], extra: &str) -> String {
    SNIPPET
        .replace("WIDGETS", &widgets.join(",\n"))
        .replace("EXTRA", extra)
}

/// A metric widget at y = 6 * index with these `metrics` and extra properties.
pub(super) fn metric_widget(index: usize, metrics: &str, properties: &str) -> String {
    format!(
        r#"{{
        type   = "metric"
        x      = 0
        y      = {}
        width  = 12
        height = 6
        properties = {{
          title   = "w{index}"
          {properties}
          metrics = {metrics}
        }}
      }}"#,
        6 * index
    )
}

pub(super) const REGION_PERIOD: &str = "region = local.region\n period = 60";

/// The snippet with these widgets and `extra` blocks, rendered as the checks render the module.
pub(super) fn render(widgets: &[String], extra: &str) -> Result<Value, String> {
    render_snippet(
        &[("snippet.tf", &snippet(widgets, extra))],
        &check_options("dev"),
    )
}

/// [`render`], which must succeed.
pub(super) fn rendered(widgets: &[String], extra: &str) -> Value {
    render(widgets, extra).unwrap_or_else(|e| panic!("the snippet does not render: {e}"))
}

pub(super) fn render_and_check(widgets: &[String], extra: &str) -> Vec<String> {
    check_rendered(&rendered(widgets, extra), &emitted_metrics())
}
