//! Each Lambda deploys a zip `cargo lambda build` produces, and every binary is deployed. Also
//! home to what other checks ask of a function: its instances and the binary each deploys.

use std::collections::BTreeSet;

use hcl::Expression;
use hcl::template::Element;

use crate::eval::{Instance, instances};
use crate::expr::{first_attr, template_of, traversal};
use crate::fixtures::{assert_clean, assert_reports, with_queue};
use crate::model::{Labelled, Module, attr, literal_str, show};

/// Every instance of every `aws_lambda_function` (one per for_each key, or a single unnamed
/// one). A function whose for_each cannot be expanded is reported in `violations`.
pub fn function_instances<'m>(
    module: &'m Module,
    violations: &mut Vec<String>,
) -> Vec<(Labelled<'m>, Option<Instance>)> {
    let mut all = Vec::new();
    for function in module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_function")
    {
        match instances(module, function.block) {
            Ok(found) => {
                for instance in found {
                    all.push((function, instance));
                }
            }
            Err(e) => violations.push(format!("{}: {e}", function.address())),
        }
    }
    all
}

/// Render `"${path.module}/../target/lambda/${each.key}/bootstrap.zip"` for one instance.
fn render_path(expr: &Expression, instance: Option<&Instance>) -> Result<String, String> {
    match expr {
        Expression::String(s) => Ok(s.clone()),
        Expression::TemplateExpr(t) => {
            let template = template_of(t)?;
            let mut out = String::new();
            for element in template.elements() {
                match element {
                    Element::Literal(s) => out.push_str(s),
                    Element::Interpolation(i) => match traversal(&i.expr) {
                        Some((root, segs))
                            if root == "path" && first_attr(&segs) == Some("module") =>
                        {
                            out.push_str("${path.module}")
                        }
                        Some((root, segs))
                            if root == "each" && first_attr(&segs) == Some("key") =>
                        {
                            let instance =
                                instance.ok_or("each.key outside a for_each resource")?;
                            out.push_str(&instance.key)
                        }
                        _ => {
                            return Err(format!(
                                "cannot resolve ${{{}}} statically",
                                show(&i.expr)
                            ));
                        }
                    },
                    Element::Directive(_) => {
                        return Err("template directives are not supported".into());
                    }
                }
            }
            Ok(out)
        }
        other => Err(format!("not a path template: {}", show(other))),
    }
}

/// The binary a function instance deploys, from its `filename`.
pub fn function_binary(
    function: &Labelled<'_>,
    instance: Option<&Instance>,
) -> Result<String, String> {
    let body = function.block.body();
    let filename =
        attr(body, "filename").ok_or("no filename (the zip must be a local artifact)")?;
    let path = render_path(filename, instance)?;
    path.strip_prefix("${path.module}/../target/lambda/")
        .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
        .filter(|bin| !bin.is_empty() && !bin.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("filename renders to \"{path}\", not \"${{path.module}}/../target/lambda/<bin>/bootstrap.zip\"")
        })
}

/// Every function deploys `target/lambda/<bin>/bootstrap.zip` for a `[[bin]]` of
/// functions/Cargo.toml, with a matching source_code_hash and the custom runtime; every binary
/// is deployed.
pub fn check_function_artifacts(module: &Module, bins: &BTreeSet<String>) -> Vec<String> {
    let mut violations = Vec::new();
    let mut deployed = BTreeSet::new();
    for (function, instance) in function_instances(module, &mut violations) {
        let body = function.block.body();
        let at = format!(
            "{}{}",
            function.address(),
            instance
                .as_ref()
                .map(|i| format!(" instance [\"{}\"]", i.key))
                .unwrap_or_default()
        );
        let bin = match function_binary(&function, instance.as_ref()) {
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

        let hash_ok = match attr(body, "source_code_hash") {
            Some(Expression::FuncCall(call)) if call.name.name.as_str() == "filebase64sha256" => {
                call.args
                    .first()
                    .and_then(|arg| render_path(arg, instance.as_ref()).ok())
                    .is_some_and(|p| {
                        p == format!("${{path.module}}/../target/lambda/{bin}/bootstrap.zip")
                    })
            }
            _ => false,
        };
        if !hash_ok {
            violations.push(format!(
                "{at}: source_code_hash must be filebase64sha256() of the same zip, or a rebuilt binary is not redeployed"
            ));
        }
        if attr(body, "runtime").and_then(literal_str) != Some("provided.al2023") {
            violations.push(format!(
                "{at}: runtime must be \"provided.al2023\" (a Rust bootstrap binary)"
            ));
        }
        if attr(body, "handler").and_then(literal_str) != Some("bootstrap") {
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
