//! Per-workspace names: every resource name includes the workspace, so two workspaces in one
//! account never share a queue, table, function or alarm. One name is fixed by API Gateway: an
//! HTTP API's default stage, `$default`, which lives inside its API (whose name is checked).

use hcl::Expression;

use crate::expr::{first_attr, mentions, refs_of, traversal};
use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Module, attr, literal_str, show};

/// The attributes that name a resource.
const NAME_ATTRIBUTES: &[&str] = &[
    "name",
    "name_prefix",
    "function_name",
    "dashboard_name",
    "alarm_name",
];

/// Does the expression reference local.name_prefix or terraform.workspace, directly or through
/// other locals?
fn includes_workspace(module: &Module, expr: &Expression, depth: usize) -> bool {
    if mentions(expr, "local", "name_prefix") || mentions(expr, "terraform", "workspace") {
        return true;
    }
    let locals = module.locals();
    depth < 8
        && refs_of(expr).iter().any(|(root, segs)| {
            root == "local"
                && first_attr(segs)
                    .and_then(|name| locals.get(name))
                    .is_some_and(|value| includes_workspace(module, value, depth + 1))
        })
}

/// A reference to another managed resource's attribute (e.g. the function_name of a
/// permission): that resource's own name is what gets checked.
fn names_other_resource(expr: &Expression) -> bool {
    const NOT_RESOURCES: &[&str] = &[
        "var",
        "local",
        "each",
        "count",
        "path",
        "terraform",
        "self",
        "data",
    ];
    matches!(traversal(expr), Some((root, segs)) if !NOT_RESOURCES.contains(&root.as_str()) && segs.len() >= 2)
}

/// An HTTP API's default stage: API Gateway serves it at the API's root only under this name,
/// and a stage's name is scoped to its API.
fn is_default_stage(kind: &str, key: &str, expr: &Expression) -> bool {
    kind == "aws_apigatewayv2_stage" && key == "name" && literal_str(expr) == Some("$default")
}

/// Every naming attribute of every resource (but a `$default` stage) references local.name_prefix or
/// terraform.workspace (directly or through a local), and local.name_prefix itself includes
/// terraform.workspace.
pub fn check_names_include_workspace(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let locals = module.locals();
    match locals.get("name_prefix") {
        Some(prefix) if mentions(prefix, "terraform", "workspace") => {}
        Some(prefix) => violations.push(format!(
            "local.name_prefix = {} does not include terraform.workspace: two workspaces would share names",
            show(prefix)
        )),
        None => violations.push("local.name_prefix is not declared".to_owned()),
    }
    let mut named = 0;
    for resource in module.resources() {
        for key in NAME_ATTRIBUTES {
            let Some(expr) = attr(resource.block.body(), key) else {
                continue;
            };
            if names_other_resource(expr) || is_default_stage(resource.kind, key, expr) {
                continue;
            }
            named += 1;
            if !includes_workspace(module, expr, 0) {
                violations.push(format!(
                    "{}: {key} = {} does not include the workspace; reference local.name_prefix or terraform.workspace",
                    resource.address(),
                    show(expr)
                ));
            }
        }
    }
    if named == 0 {
        violations.push("no named resources found: nothing was checked".to_owned());
    }
    violations
}

// Negative checks

#[test]
fn name_checker_rejects_fixed_names_and_a_prefix_without_workspace() {
    let good = Module::parse_snippet(
        "good.tf",
        r#"
locals {
  name_prefix = "${var.project_name}-${terraform.workspace}"
}
resource "aws_sqs_queue" "q" {
  name = "${local.name_prefix}-fanout"
}
resource "aws_apigatewayv2_stage" "s" {
  name = terraform.workspace
}
resource "aws_apigatewayv2_stage" "http" {
  name = "$default"
}
locals {
  dashboard_name = "${local.name_prefix}-fanout"
}
resource "aws_cloudwatch_dashboard" "d" {
  dashboard_name = local.dashboard_name
}
resource "aws_lambda_permission" "p" {
  function_name = aws_lambda_function.f.function_name
}
"#,
    );
    assert_clean("named by workspace", check_names_include_workspace(&good));

    let bad = Module::parse_snippet(
        "bad.tf",
        r#"
locals {
  name_prefix = "${var.project_name}-prod"
  topic_name  = "${var.project_name}-alarms"
}
resource "aws_sqs_queue" "q" {
  name = "fanout"
}
resource "aws_sns_topic" "t" {
  name = local.topic_name
}
resource "aws_cloudwatch_dashboard" "d" {
  dashboard_name = "${var.project_name}-dash"
}
resource "aws_apigatewayv2_stage" "s" {
  name = "prod"
}
resource "aws_sqs_queue" "default" {
  name = "$default"
}
"#,
    );
    let violations = check_names_include_workspace(&bad);
    assert_reports(
        &violations,
        &[
            "local.name_prefix = ",
            "aws_sqs_queue.q (bad.tf): name = ",
            "aws_sns_topic.t (bad.tf): name = local.topic_name",
            "aws_cloudwatch_dashboard.d (bad.tf): dashboard_name",
            "aws_apigatewayv2_stage.s (bad.tf): name = ",
            "aws_sqs_queue.default (bad.tf): name = ",
        ],
    );
}
