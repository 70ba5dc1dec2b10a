//! Each function gets the environment its binary reads. The list is the library's own,
//! `fanout::config::Function::env_vars` (found by reading the settings as the binary does at
//! start-up), so this check cannot drift from the code. The variables a function sets are
//! those Terraform renders (locals, `each.value` and `merge()` evaluated by Terraform).

use std::collections::BTreeSet;

use fanout::config::{Function, RESERVED_VARS};
use serde_json::Value;

use crate::checks::artifacts::{FunctionInstance, function_binary, function_instances};
use crate::fixtures::{WORKER_SNIPPET, assert_clean, assert_reports, with_queue};
use crate::model::Module;

/// The names of the variables a rendered function instance sets: the keys of its `environment`
/// block's `variables` (Terraform renders a nested block as a list of objects).
fn environment_keys(instance: &FunctionInstance<'_>) -> Result<BTreeSet<String>, String> {
    let variables = match instance.attrs.get("environment") {
        None => return Ok(BTreeSet::new()),
        Some(Value::Array(blocks)) => blocks.first().map(|b| &b["variables"]),
        Some(other) => return Err(format!("environment renders to {other}, not a block")),
    };
    match variables {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::Object(variables)) => Ok(variables.keys().cloned().collect()),
        Some(other) => Err(format!(
            "environment.variables renders to {other}, not a map"
        )),
    }
}

/// For each instance of an `aws_lambda_function` that deploys the binary of one of
/// `functions`: every variable the binary requires is set; every variable set is one the binary
/// reads (a typo or a stale variable is reported); no variable Lambda reserves is set. And each
/// of `functions` is deployed. Instances of other binaries are the artifact check's to report.
/// The instances, their binaries and their variables are as Terraform renders them.
pub fn check_environment(module: &Module, functions: &[Function]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut deployed = BTreeSet::new();
    let instances = function_instances(module, &["environment"]).unwrap_or_else(|e| {
        violations.push(e);
        Vec::new()
    });
    for instance in &instances {
        let Ok(bin) = function_binary(instance) else {
            continue;
        };
        let Some(code) = functions.iter().find(|f| f.binary() == bin) else {
            continue;
        };
        deployed.insert(code.binary());
        let at = format!("{} ({bin})", instance.at());
        let set = match environment_keys(instance) {
            Ok(keys) => keys,
            Err(e) => {
                violations.push(format!("{at}: {e}"));
                continue;
            }
        };
        let reads = code.env_vars();
        let missing: Vec<&str> = reads
            .iter()
            .filter(|var| var.required && !set.contains(&var.name))
            .map(|var| var.name.as_str())
            .collect();
        let (reserved, rest): (Vec<&str>, Vec<&str>) = set
            .iter()
            .map(String::as_str)
            .partition(|name| RESERVED_VARS.contains(name));
        let unknown: Vec<&str> = rest
            .into_iter()
            .filter(|name| !reads.iter().any(|var| var.name == *name))
            .collect();
        if !missing.is_empty() {
            violations.push(format!(
                "{at}: environment lacks {missing:?}, which the binary requires"
            ));
        }
        if !unknown.is_empty() {
            violations.push(format!(
                "{at}: environment has {unknown:?}, which the binary does not read (a typo, or a variable the code no longer reads)"
            ));
        }
        if !reserved.is_empty() {
            violations.push(format!(
                "{at}: environment sets {reserved:?}, which Lambda reserves and sets itself"
            ));
        }
    }
    for function in functions {
        if !deployed.contains(function.binary()) {
            violations.push(format!(
                "fanout::config::Function::{function:?} has no aws_lambda_function deploying its binary \"{}\"",
                function.binary()
            ));
        }
    }
    violations
}

// Negative checks

#[test]
fn environment_checker_rejects_missing_unknown_and_reserved_variables() {
    let worker = [Function::Worker];
    // The snippet's worker sets RUST_LOG, WORKSPACE and CONNECTIONS_TABLE; set every other
    // variable the code requires, then add to that.
    let required: String = Function::Worker
        .env_vars()
        .into_iter()
        .filter(|var| var.required && var.name != "CONNECTIONS_TABLE")
        .map(|var| format!(", {} = \"x\"", var.name))
        .collect();
    let worker_with = |more: &str| {
        Module::parse_snippet(
            "env.tf",
            &WORKER_SNIPPET.replace(
                "CONNECTIONS_TABLE = \"t\"",
                &format!("CONNECTIONS_TABLE = \"t\"{required}{more}"),
            ),
        )
    };
    assert_clean(
        "the worker's required variables",
        check_environment(&worker_with(""), &worker),
    );

    let missing = check_environment(&with_queue("6 * var.worker_timeout_seconds"), &worker);
    assert!(
        missing
            .iter()
            .any(|v| v.contains("(worker)") && v.contains("FANOUT_QUEUE_URL")),
        "a worker without FANOUT_QUEUE_URL (required) must be reported: {missing:?}"
    );

    let unknown = check_environment(&worker_with(", TABLE_NAME = \"t\""), &worker);
    assert_reports(
        &unknown,
        &["has [\"TABLE_NAME\"], which the binary does not read"],
    );

    let reserved = check_environment(&worker_with(", AWS_LAMBDA_FUNCTION_NAME = \"f\""), &worker);
    assert_reports(
        &reserved,
        &["sets [\"AWS_LAMBDA_FUNCTION_NAME\"], which Lambda reserves"],
    );
    assert_eq!(reserved.len(), 1, "reported once: {reserved:?}");

    let undeployed = check_environment(&worker_with(""), &Function::ALL);
    assert_reports(
        &undeployed,
        &["Function::Connect has no aws_lambda_function deploying its binary \"connect\""],
    );
}
