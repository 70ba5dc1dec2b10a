//! Each Lambda deploys a zip `cargo lambda build` produces, and every binary is deployed. Also
//! home to what other checks ask of a function: its instances, as Terraform renders them, and
//! the binary each deploys.

use std::collections::{BTreeMap, BTreeSet};

use hcl::Expression;
use serde_json::Value;

use crate::fixtures::{assert_clean, assert_reports, with_queue};
use crate::model::{Labelled, Module, attr};
use crate::render::{RenderOptions, instance_values, render_module};

/// `${path.module}/../target/lambda/`, as Terraform renders it in a root module (where
/// `path.module` is ".").
const ZIP_DIR: &str = "./../target/lambda/";

/// One instance of an `aws_lambda_function` (one per for_each key or count index, or the only
/// one), as Terraform renders it.
pub struct FunctionInstance<'m> {
    pub function: Labelled<'m>,
    /// `aws_lambda_function.this["worker"]`
    pub address: String,
    pub filename: String,
    /// The other attributes asked for, those the block sets.
    pub attrs: BTreeMap<&'static str, Value>,
}

impl FunctionInstance<'_> {
    /// The instance and its file, for messages.
    pub fn at(&self) -> String {
        format!("{} ({})", self.address, self.function.file)
    }
}

/// Every instance of every `aws_lambda_function` that sets a `filename`, with that filename and
/// the `attrs` its block sets (an argument, or a nested block: a list of objects), all rendered
/// by Terraform. Or why the functions do not render.
pub fn function_instances<'m>(
    module: &'m Module,
    attrs: &[&'static str],
) -> Result<Vec<FunctionInstance<'m>>, String> {
    let functions: Vec<Labelled<'m>> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_function" && r.sets("filename"))
        .collect();
    if functions.is_empty() {
        return Ok(Vec::new());
    }
    let specs = functions
        .iter()
        .flat_map(|f| {
            ["filename"]
                .iter()
                .chain(attrs)
                .filter(|a| f.sets(a))
                .map(|a| f.spec(a))
        })
        .collect();
    let rendered = render_module(module, &RenderOptions::attributes("dev", specs))
        .map_err(|e| format!("the functions do not render: {e}"))?;
    let mut instances = Vec::new();
    for function in functions {
        for (address, filename) in instance_values(&rendered, &function.spec("filename")) {
            let attrs = attrs
                .iter()
                .filter_map(|a| {
                    let value = instance_values(&rendered, &function.spec(a)).get(address)?;
                    Some((*a, value.clone()))
                })
                .collect();
            instances.push(FunctionInstance {
                function,
                address: address.clone(),
                filename: filename.as_str().unwrap_or_default().to_owned(),
                attrs,
            });
        }
    }
    Ok(instances)
}

/// The binary a function instance deploys, from its rendered `filename`.
pub fn function_binary(instance: &FunctionInstance<'_>) -> Result<String, String> {
    let path = &instance.filename;
    path.strip_prefix(ZIP_DIR)
        .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
        .filter(|bin| !bin.is_empty() && !bin.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("filename renders to \"{path}\", not \"${{path.module}}/../target/lambda/<bin>/bootstrap.zip\" (\"{ZIP_DIR}<bin>/bootstrap.zip\")")
        })
}

/// `source_code_hash = filebase64sha256(<the filename's own expression>)`: read, not
/// evaluated (the zips need not exist to check the configuration).
fn hashes_its_filename(function: &Labelled<'_>) -> bool {
    let body = function.block.body();
    match (attr(body, "source_code_hash"), attr(body, "filename")) {
        (Some(Expression::FuncCall(call)), Some(filename)) => {
            call.name.name.as_str() == "filebase64sha256"
                && call.args.len() == 1
                && &call.args[0] == filename
        }
        _ => false,
    }
}

/// Every function deploys `target/lambda/<bin>/bootstrap.zip` for a `[[bin]]` of
/// functions/Cargo.toml, with a matching source_code_hash and the custom runtime; every binary
/// is deployed.
pub fn check_function_artifacts(module: &Module, bins: &BTreeSet<String>) -> Vec<String> {
    let mut violations: Vec<String> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_function" && !r.sets("filename"))
        .map(|r| {
            format!(
                "{}: no filename (the zip must be a local artifact)",
                r.address()
            )
        })
        .collect();
    let instances = match function_instances(module, &["runtime", "handler"]) {
        Ok(instances) => instances,
        Err(e) => {
            violations.push(e);
            return violations;
        }
    };
    let mut deployed = BTreeSet::new();
    for instance in &instances {
        let at = instance.at();
        let bin = match function_binary(instance) {
            Ok(bin) => bin,
            Err(e) => {
                violations.push(format!("{at}: {e}"));
                continue;
            }
        };
        if !bins.contains(&bin) {
            violations.push(format!(
                "{at}: deploys target/lambda/{bin}/bootstrap.zip but functions/Cargo.toml has no [[bin]] \"{bin}\" (cargo lambda builds only {bins:?})"
            ));
        }
        deployed.insert(bin.clone());

        if !hashes_its_filename(&instance.function) {
            violations.push(format!(
                "{at}: source_code_hash must be filebase64sha256() of the same zip (the filename's own expression), or a rebuilt binary is not redeployed"
            ));
        }
        let rendered = |name: &str| instance.attrs.get(name).and_then(Value::as_str);
        if rendered("runtime") != Some("provided.al2023") {
            violations.push(format!(
                "{at}: runtime must be \"provided.al2023\" (a Rust bootstrap binary)"
            ));
        }
        if rendered("handler") != Some("bootstrap") {
            violations.push(format!("{at}: handler must be \"bootstrap\""));
        }
    }
    for missing in bins.difference(&deployed) {
        violations.push(format!(
            "functions/Cargo.toml builds [[bin]] \"{missing}\" but no aws_lambda_function deploys target/lambda/{missing}/bootstrap.zip"
        ));
    }
    violations
}

// Negative checks

#[test]
fn artifact_checker_rejects_unknown_binaries_and_undeployed_ones() {
    let module = with_queue("6 * var.worker_timeout_seconds");
    let worker_only: BTreeSet<String> = ["worker".to_owned()].into();
    assert_clean(
        "worker only",
        check_function_artifacts(&module, &worker_only),
    );

    let bins: BTreeSet<String> = ["connect".to_owned(), "worker2".to_owned()].into();
    let violations = check_function_artifacts(&module, &bins);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("no [[bin]] \"worker\"")),
        "a zip for a binary cargo lambda does not build must be reported: {violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.contains("[[bin]] \"connect\" but no aws_lambda_function")),
        "a binary no function deploys must be reported: {violations:?}"
    );

    let wrong_path = Module::parse_snippet(
        "wrong.tf",
        r#"
resource "aws_lambda_function" "w" {
  function_name    = "x"
  filename         = "${path.module}/../dist/worker.zip"
  source_code_hash = filebase64sha256("${path.module}/../dist/worker.zip")
  runtime          = "nodejs20.x"
  handler          = "index.handler"
}
"#,
    );
    let violations = check_function_artifacts(&wrong_path, &worker_only);
    assert_reports(
        &violations,
        &["not \"${path.module}/../target/lambda/<bin>/bootstrap.zip\""],
    );
}
