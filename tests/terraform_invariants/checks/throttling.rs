//! `$connect` floods: the WebSocket stage throttles `$connect` on its own, below the account's
//! quota of new connections in the region (`account_connection_rate`, 500 a second by default),
//! which every WebSocket API of the account shares; Terraform refuses a `$connect` rate at or
//! above that quota, and a burst above it.
//!
//! Every value is Terraform's ([`crate::render`]): the stages' `route_settings`, at the defaults
//! and with each example tfvars, and the variables' validations, probed at the quota.

use serde_json::Value;

use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Module, repo_root};
use crate::render::{RenderOptions, instance_values, render_module, variant};

const QUOTA: &str = "account_connection_rate";
const RATE: &str = "connect_throttling_rate_limit";
const BURST: &str = "connect_throttling_burst_limit";

/// `TYPE.NAME.route_settings` of each stage that sets route settings.
fn specs(module: &Module) -> Vec<String> {
    module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_apigatewayv2_stage" && r.sets("route_settings"))
        .map(|r| r.spec("route_settings"))
        .collect()
}

/// The `$connect` route settings of every stage instance (`(address, settings)`).
fn connect_settings(rendered: &Value, specs: &[String]) -> Vec<(String, Value)> {
    specs
        .iter()
        .flat_map(|spec| instance_values(rendered, spec))
        .flat_map(|(address, settings)| {
            settings
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["route_key"] == "$connect")
                .map(move |s| (address.clone(), s.clone()))
        })
        .collect()
}

fn check_rendering(
    rendered: &Value,
    specs: &[String],
    scenario: &str,
    violations: &mut Vec<String>,
) {
    let quota = rendered["exprs"][QUOTA].as_f64();
    let settings = connect_settings(rendered, specs);
    if settings.is_empty() {
        violations.push(format!(
            "no aws_apigatewayv2_stage has route_settings for $connect with {scenario}: new connections are throttled only by the stage default, which is not below the account's quota of {quota:?} a second"
        ));
    }
    for (address, s) in settings {
        let (rate, burst) = (
            s["throttling_rate_limit"].as_f64(),
            s["throttling_burst_limit"].as_f64(),
        );
        let (Some(rate), Some(burst), Some(quota)) = (rate, burst, quota) else {
            violations.push(format!(
                "{address}: the $connect throttle or var.{QUOTA} does not render to numbers with {scenario}: {s}"
            ));
            continue;
        };
        if !(rate >= 1.0 && rate < quota && burst >= 1.0 && burst <= quota) {
            violations.push(format!(
                "{address}: $connect is throttled at {rate}/s (burst {burst}) with {scenario}: the rate must be below the account's quota of {quota} new connections a second, and the burst at most it"
            ));
        }
    }
}

/// The `$connect` throttle, at the defaults and with each example tfvars; and Terraform refuses
/// a rate at the quota, a burst above it, a quota at the rate.
pub fn check_connect_throttle(module: &Module, var_files: &[std::path::PathBuf]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut runs: Vec<(String, Vec<std::path::PathBuf>)> = vec![("the defaults".into(), vec![])];
    for file in var_files {
        runs.push((format!("{}", file.display()), vec![file.clone()]));
    }
    for (scenario, files) in runs {
        let mut options = RenderOptions::attributes("dev", specs(module));
        options.var_files = files;
        options.exprs = vec![(QUOTA.to_owned(), format!("var.{QUOTA}"))];
        let probes = scenario == "the defaults";
        if probes {
            options.variants = [(RATE, "500"), (RATE, "499"), (BURST, "501"), (QUOTA, "250")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        }
        let rendered = match render_module(module, &options) {
            Ok(r) => r,
            Err(e) => {
                violations.push(format!("the module does not render with {scenario}: {e}"));
                continue;
            }
        };
        check_rendering(&rendered, &specs(module), &scenario, &mut violations);
        if !probes {
            continue;
        }
        // (variable, value, whether Terraform must refuse it)
        for (name, value, refused) in [
            (RATE, "500", true),
            (RATE, "499", false),
            (BURST, "501", true),
            (QUOTA, "250", true),
        ] {
            let with = format!("{name} = {value}");
            match (variant(&rendered, name, value), refused) {
                (Some(Err((_, invalid))), true) if invalid.iter().any(|v| v == RATE || v == BURST || v == QUOTA) => {}
                (Some(Ok(r)), false) => check_rendering(r, &specs(module), &with, &mut violations),
                (Some(Ok(_)), true) => violations.push(format!(
                    "{with} is not refused, with the account's quota of new connections at {}: $connect's throttle must stay below it",
                    if name == QUOTA { value } else { "500" }
                )),
                (Some(Err((error, _))), _) => violations.push(format!(
                    "{with} is refused{}: {error}",
                    if refused { ", but not by the throttle's validations" } else { "" }
                )),
                (None, _) => violations.push(format!("{with} was not rendered")),
            }
        }
    }
    violations
}

/// The example tfvars.
pub fn example_var_files() -> Vec<std::path::PathBuf> {
    crate::model::files_with_extension(&repo_root().join("terraform/examples"), "tfvars")
}

// Negative checks

const SNIPPET: &str = r#"
variable "account_connection_rate" {
  type    = number
  default = 500
}
variable "connect_throttling_rate_limit" {
  type    = number
  default = 250
  validation {
    condition     = var.connect_throttling_rate_limit >= 1 && var.connect_throttling_rate_limit < var.account_connection_rate
    error_message = "below"
  }
}
variable "connect_throttling_burst_limit" {
  type    = number
  default = 250
  validation {
    condition     = var.connect_throttling_burst_limit >= 1 && var.connect_throttling_burst_limit <= var.account_connection_rate
    error_message = "at most"
  }
}
resource "aws_apigatewayv2_stage" "this" {
  api_id = "a"
  name   = "dev"
  route_settings {
    route_key              = ROUTE
    throttling_burst_limit = var.connect_throttling_burst_limit
    throttling_rate_limit  = var.connect_throttling_rate_limit
  }
}
"#;

fn snippet(changes: &[(&str, &str)]) -> Module {
    let mut src = SNIPPET.replace("ROUTE", "\"$connect\"");
    for (from, to) in changes {
        assert!(src.contains(from), "the snippet has no {from:?}");
        src = src.replace(from, to);
    }
    Module::parse_snippet("stage.tf", &src)
}

#[test]
fn connect_throttle_checker_reports_a_missing_or_unbounded_throttle() {
    assert_clean("the throttle", check_connect_throttle(&snippet(&[]), &[]));
    // The issue's finding: $connect under the stage default only.
    assert_reports(
        &check_connect_throttle(&snippet(&[("\"$connect\"", "\"sendmessage\"")]), &[]),
        &["no aws_apigatewayv2_stage has route_settings for $connect with the defaults"],
    );
    // Bounded by nothing but itself: a rate at the quota, a burst above it, pass.
    assert_reports(
        &check_connect_throttle(
            &snippet(&[
                (
                    "var.connect_throttling_rate_limit >= 1 && var.connect_throttling_rate_limit < var.account_connection_rate",
                    "var.connect_throttling_rate_limit >= 1",
                ),
                (
                    "var.connect_throttling_burst_limit >= 1 && var.connect_throttling_burst_limit <= var.account_connection_rate",
                    "var.connect_throttling_burst_limit >= 1",
                ),
            ]),
            &[],
        ),
        &[
            "connect_throttling_rate_limit = 500 is not refused",
            "connect_throttling_burst_limit = 501 is not refused",
            "account_connection_rate = 250 is not refused",
        ],
    );
    // A default at the quota.
    assert_reports(
        &check_connect_throttle(
            &snippet(&[(
                "default = 250\n  validation {\n    condition     = var.connect_throttling_rate_limit",
                "default = 600\n  validation {\n    condition     = var.connect_throttling_rate_limit",
            )]),
            &[],
        ),
        &["the module does not render with the defaults"],
    );
}
