//! Terraform's variables that set a setting of the code hold to its one definition
//! (`fanout::config::settings`): the same default, and a validation that accepts exactly the
//! setting's bounds, whole numbers only (the code refuses `1.5`, so a plan that passes it would
//! deploy functions that fail at start-up). And every setting a function's environment sets comes
//! from a variable mapped here, or is listed as derived.
//!
//! Every value is Terraform's ([`crate::render`]): the defaults, and one rendering per probe
//! (each bound, one beyond each, and a fraction), which Terraform's validation accepts or refuses.

use fanout::config::settings::{self, Setting};
use serde_json::Value;

use crate::fixtures::{WORKER_SNIPPET, assert_clean, assert_reports};
use crate::model::Module;
use crate::render::{RenderOptions, instance_values, render_module, variant};

const ENVIRONMENT: &str = "aws_lambda_function.environment";

/// A Terraform variable passed to the functions as a setting's variable.
pub struct Mapped {
    pub variable: &'static str,
    pub setting: &'static Setting,
    /// Terraform's default, as HCL, where it is not the setting's, and why.
    pub own_default: Option<(&'static str, &'static str)>,
}

const fn mapped(variable: &'static str, setting: &'static Setting) -> Mapped {
    Mapped {
        variable,
        setting,
        own_default: None,
    }
}

/// terraform/variables.tf's variables that set a setting.
pub const TERRAFORM_SETTINGS: &[Mapped] = &[
    mapped("connection_ttl_seconds", &settings::CONNECTION_TTL_SECONDS),
    mapped(
        "max_rooms_per_connection",
        &settings::MAX_ROOMS_PER_CONNECTION,
    ),
    mapped("max_data_bytes", &settings::MAX_DATA_BYTES),
    mapped("history_size", &settings::HISTORY_SIZE),
    mapped("history_ttl_seconds", &settings::HISTORY_TTL_SECONDS),
    mapped("rate_limit_per_second", &settings::RATE_LIMIT_PER_SECOND),
    mapped("rate_limit_burst", &settings::RATE_LIMIT_BURST),
    mapped("fanout_concurrency", &settings::FANOUT_CONCURRENCY),
    mapped("post_timeout_ms", &settings::POST_TIMEOUT_MS),
    mapped("deadline_margin_ms", &settings::DEADLINE_MARGIN_MS),
    mapped("retry_budget_seconds", &settings::RETRY_BUDGET_SECONDS),
    mapped("account_post_rate", &settings::ACCOUNT_POST_RATE),
    Mapped {
        variable: "room_split_ways",
        setting: &settings::ROOM_SPLIT_WAYS,
        // The deployed stack sizes its split by the rule of docs/architecture.md ("Huge rooms"):
        // 2 at the default memory and post rate, 1 with per_room order (a split room's parts
        // would deliver out of order). A bare binary and the local stack never split unless told.
        own_default: Some((
            "null",
            "null: 2, or 1 with ordering = \"per_room\" (functions.tf)",
        )),
    },
];

/// Settings a function's environment sets from an expression of other variables, not from one
/// of their own: checked within bounds at the defaults only.
pub const DERIVED: &[(&str, &str)] = &[(
    "PROGRESS_TTL_SECONDS",
    "fanout_message_retention_seconds + 1 day: a record outlives every redelivery",
)];

/// The values Terraform must accept (`true`) or refuse: each bound, one beyond each, a fraction.
fn probes(setting: &Setting) -> Vec<(String, bool)> {
    vec![
        (setting.min.to_string(), true),
        (setting.max.to_string(), true),
        ((setting.min as i64 - 1).to_string(), false),
        ((setting.max + 1).to_string(), false),
        (format!("{}.5", setting.min), false),
    ]
}

/// The settings each rendered function instance sets: (instance, variable, value).
fn environment_settings(rendering: &Value) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (address, environment) in instance_values(rendering, ENVIRONMENT) {
        let variables = environment[0]["variables"].as_object();
        for (key, value) in variables.into_iter().flatten() {
            if settings::by_var(key).is_some() {
                let value = value.as_str().unwrap_or_default().to_owned();
                found.push((address.clone(), key.clone(), value));
            }
        }
    }
    found
}

pub fn check_settings(module: &Module, mapped: &[Mapped]) -> Vec<String> {
    let mut violations = Vec::new();
    let declared = module.variables();
    let mut options = RenderOptions::attributes("dev", vec![ENVIRONMENT.to_owned()]);
    for m in mapped {
        if !declared.contains_key(m.variable) {
            violations.push(format!(
                "variable \"{}\" (setting {}) is not declared",
                m.variable, m.setting.var
            ));
            continue;
        }
        options
            .exprs
            .push((m.variable.to_owned(), format!("var.{}", m.variable)));
        for (value, _) in probes(m.setting) {
            options.variants.push((m.variable.to_owned(), value));
        }
    }
    let rendered = match render_module(module, &options) {
        Ok(rendered) => rendered,
        Err(e) => return vec![format!("the functions' environments do not render: {e}")],
    };

    for (address, var, value) in environment_settings(&rendered) {
        let setting = settings::by_var(&var).expect("a setting");
        if !mapped.iter().any(|m| m.setting.var == var)
            && !DERIVED.iter().any(|(derived, _)| *derived == var)
        {
            violations.push(format!(
                "{address} sets {var}, a setting, from no variable mapped to it (TERRAFORM_SETTINGS) nor listed as derived"
            ));
        }
        if !value.parse().is_ok_and(|n| setting.bounds().contains(&n)) {
            violations.push(format!(
                "{address} sets {var} = {value:?} at the defaults: the code takes a whole number from {} to {}",
                setting.min, setting.max
            ));
        }
    }

    for m in mapped.iter().filter(|m| declared.contains_key(m.variable)) {
        let (name, setting) = (m.variable, m.setting);
        let default = &rendered["exprs"][name];
        let expected = match m.own_default {
            Some((hcl, _)) => serde_json::from_str(hcl).expect("a literal"),
            None => setting.default.map_or(Value::Null, Value::from),
        };
        if default.as_f64() != expected.as_f64() || default.is_null() != expected.is_null() {
            violations.push(format!(
                "variable \"{name}\" defaults to {default}, setting {} to {expected}",
                setting.var
            ));
        }
        for (value, accept) in probes(setting) {
            let outcome = variant(&rendered, name, &value);
            let refused =
                matches!(&outcome, Some(Err((_, invalid))) if invalid.iter().any(|v| v == name));
            let bounds = format!("whole numbers from {} to {}", setting.min, setting.max);
            match outcome {
                None => violations.push(format!("var.{name} = {value} was not rendered")),
                Some(_) if refused == accept => violations.push(format!(
                    "variable \"{name}\": its validation {} {value}; setting {} takes {bounds}",
                    if accept { "refuses" } else { "accepts" },
                    setting.var,
                )),
                Some(Ok(rendering)) if accept => {
                    let passed = environment_settings(rendering)
                        .into_iter()
                        .any(|(_, var, set)| var == setting.var && set == value);
                    if !passed {
                        violations.push(format!(
                            "var.{name} = {value}: no function's environment sets {} = \"{value}\"",
                            setting.var
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    violations
}

// Negative checks

fn worker_with(environment: &str, variable: &str) -> Module {
    let snippet = WORKER_SNIPPET.replace(
        "environment = { CONNECTIONS_TABLE = \"t\" }",
        &format!("environment = {{ CONNECTIONS_TABLE = \"t\"{environment} }}"),
    );
    Module::parse_snippet("settings.tf", &format!("{snippet}{variable}"))
}

fn post_timeout_variable(default: u64, condition: &str) -> String {
    format!(
        r#"
variable "post_timeout_ms" {{
  type        = number
  default     = {default}
  description = "p"
  validation {{
    condition     = {condition}
    error_message = "range"
  }}
}}
"#
    )
}

#[test]
fn settings_checker_holds_variables_to_the_definitions() {
    let setting = &settings::POST_TIMEOUT_MS;
    let mapping = [mapped("post_timeout_ms", setting)];
    let env = ", POST_TIMEOUT_MS = tostring(var.post_timeout_ms)";
    let exact = format!(
        "var.post_timeout_ms >= {} && var.post_timeout_ms <= {} && floor(var.post_timeout_ms) == var.post_timeout_ms",
        setting.min, setting.max
    );
    assert_clean(
        "a variable as its setting defines it",
        check_settings(
            &worker_with(env, &post_timeout_variable(setting.default_value(), &exact)),
            &mapping,
        ),
    );

    let loose = format!(
        "var.post_timeout_ms >= {} && var.post_timeout_ms <= {}",
        setting.min - 1,
        setting.max + 1
    );
    let violations = check_settings(
        &worker_with(
            &format!("{env}, GONE_GRACE_SECONDS = \"0\""),
            &post_timeout_variable(setting.default_value() + 1, &loose),
        ),
        &mapping,
    );
    assert_reports(
        &violations,
        &[
            "variable \"post_timeout_ms\" defaults to",
            &format!("its validation accepts {}", setting.max + 1),
            &format!("its validation accepts {}", setting.min - 1),
            &format!("its validation accepts {}.5", setting.min),
            "sets GONE_GRACE_SECONDS, a setting, from no variable mapped to it",
            "sets GONE_GRACE_SECONDS = \"0\" at the defaults",
        ],
    );

    let unpassed = check_settings(
        &worker_with("", &post_timeout_variable(setting.default_value(), &exact)),
        &mapping,
    );
    assert_reports(
        &unpassed,
        &["no function's environment sets POST_TIMEOUT_MS = \"100\""],
    );

    let narrow = format!(
        "var.post_timeout_ms >= {} && var.post_timeout_ms <= {} && floor(var.post_timeout_ms) == var.post_timeout_ms",
        setting.min + 1,
        setting.max
    );
    let refuses = check_settings(
        &worker_with(
            env,
            &post_timeout_variable(setting.default_value(), &narrow),
        ),
        &mapping,
    );
    assert_reports(
        &refuses,
        &[&format!("its validation refuses {}", setting.min)],
    );
}
