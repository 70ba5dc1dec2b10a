//! Everything referenced is declared, and everything declared is documented: `var.`, `local.`,
//! `data.` and resource references resolve; variables are typed, described and validated;
//! outputs described; the example tfvars set only declared variables.

use std::collections::BTreeSet;

use hcl::{Body, Expression, Structure};

use crate::expr::{Seg, first_attr, refs_of};
use crate::fixtures::{assert_clean, assert_reports, with_queue};
use crate::model::{Module, attr, literal_str, nested, show};

/// Every var., local., data. and resource reference names something declared.
pub fn check_references(module: &Module) -> Vec<String> {
    let variables = module.variables();
    let locals = module.locals();
    let declared = |ident: &str| -> BTreeSet<(String, String)> {
        module
            .labelled(ident)
            .iter()
            .map(|r| (r.kind.to_owned(), r.name.to_owned()))
            .collect()
    };
    let resources = declared("resource");
    let data = declared("data");
    const BUILTIN_ROOTS: &[&str] = &["each", "count", "path", "terraform", "self"];
    let mut violations = Vec::new();
    for (file, body) in &module.files {
        let mut exprs: Vec<(String, Expression)> = Vec::new();
        fn collect(body: &Body, at: &str, out: &mut Vec<(String, Expression)>) {
            for structure in body.iter() {
                match structure {
                    // A variable's type constraint (string, map(string), ...) is not a reference.
                    Structure::Attribute(a) if a.key() == "type" && at.contains(" variable ") => {}
                    Structure::Attribute(a) => {
                        out.push((format!("{at}{}", a.key()), a.expr().clone()))
                    }
                    Structure::Block(b) => {
                        let labels: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
                        let inner = format!("{at}{} {}: ", b.identifier(), labels.join("."));
                        collect(b.body(), &inner, out);
                    }
                }
            }
        }
        collect(body, &format!("{file}: "), &mut exprs);
        for (at, expr) in exprs {
            for (root, segs) in refs_of(&expr) {
                let name = first_attr(&segs).map(str::to_owned);
                let ok = match root.as_str() {
                    "var" => name.as_ref().is_some_and(|n| variables.contains_key(n)),
                    "local" => name.as_ref().is_some_and(|n| locals.contains_key(n)),
                    "data" => match (segs.first(), segs.get(1)) {
                        (Some(Seg::Attr(kind)), Some(Seg::Attr(name))) => {
                            data.contains(&(kind.clone(), name.clone()))
                        }
                        _ => false,
                    },
                    r if BUILTIN_ROOTS.contains(&r) => true,
                    // Anything else is a resource reference (for-expression names are excluded
                    // by references()).
                    kind => name
                        .as_ref()
                        .is_some_and(|n| resources.contains(&(kind.to_owned(), n.clone()))),
                };
                if !ok {
                    let depth = if root == "data" { 2 } else { 1 };
                    let shown: Vec<String> = std::iter::once(root.clone())
                        .chain(segs.iter().take(depth).filter_map(|s| match s {
                            Seg::Attr(a) => Some(a.clone()),
                            _ => None,
                        }))
                        .collect();
                    violations.push(format!("{at}: {} is not declared", shown.join(".")));
                }
            }
        }
    }
    violations
}

fn undescribed(body: &Body) -> bool {
    attr(body, "description")
        .and_then(literal_str)
        .is_none_or(|d| d.trim().is_empty())
}

/// Variables are typed, described and (for numbers and enumerations) validated; outputs described.
pub fn check_documented(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, (file, block)) in module.variables() {
        let body = block.body();
        if attr(body, "type").is_none() {
            violations.push(format!("variable \"{name}\" ({file}): no type"));
        }
        if undescribed(body) {
            violations.push(format!("variable \"{name}\" ({file}): no description"));
        }
        let is_number = attr(body, "type").is_some_and(|t| show(t) == "number");
        if is_number && nested(body, "validation").next().is_none() {
            violations.push(format!(
                "variable \"{name}\" ({file}): a number without a validation block"
            ));
        }
    }
    for (name, (file, block)) in module.outputs() {
        if undescribed(block.body()) {
            violations.push(format!("output \"{name}\" ({file}): no description"));
        }
    }
    violations
}

/// The example tfvars set only declared variables.
pub fn check_tfvars(module: &Module, name: &str, src: &str) -> Vec<String> {
    let variables = module.variables();
    match hcl::parse(src) {
        Err(e) => vec![format!("{name}: does not parse: {e}")],
        Ok(body) => body
            .attributes()
            .filter(|a| !variables.contains_key(a.key()))
            .map(|a| {
                format!(
                    "{name}: sets \"{}\", which is not a declared variable",
                    a.key()
                )
            })
            .collect(),
    }
}

// Negative checks

#[test]
fn reference_checker_rejects_undeclared_names() {
    let module = Module::parse_snippet(
        "refs.tf",
        r#"
variable "known" {
  type        = string
  description = "k"
}
locals {
  ok   = var.known
  list = [for item in [1, 2] : item * 2]
}
resource "aws_sqs_queue" "q" {
  name   = "${var.unknown}-${local.missing}"
  policy = data.aws_iam_policy_document.absent.json
  tags   = { dlq = aws_sqs_queue.absent.arn, ok = aws_sqs_queue.q.arn }
}
"#,
    );
    let violations = check_references(&module);
    assert_reports(
        &violations,
        &[
            "var.unknown is not declared",
            "local.missing is not declared",
            "data.aws_iam_policy_document.absent is not declared",
            "aws_sqs_queue.absent is not declared",
        ],
    );
    assert_eq!(
        violations.len(),
        4,
        "only the four undeclared names: {violations:?}"
    );
}

#[test]
fn documentation_checker_rejects_untyped_undescribed_unvalidated() {
    let module = Module::parse_snippet(
        "vars.tf",
        r#"
variable "a" {
  default = 1
}
variable "b" {
  type        = number
  description = "b"
}
output "o" {
  value = 1
}
"#,
    );
    let violations = check_documented(&module);
    assert_reports(
        &violations,
        &[
            "\"a\" (vars.tf): no type",
            "\"a\" (vars.tf): no description",
            "\"b\" (vars.tf): a number without a validation",
            "output \"o\" (vars.tf): no description",
        ],
    );
}

#[test]
fn tfvars_checker_rejects_undeclared_variables() {
    let module = with_queue("6 * var.worker_timeout_seconds");
    assert_clean(
        "declared",
        check_tfvars(&module, "ok.tfvars", "worker_timeout_seconds = 90\n"),
    );
    let violations = check_tfvars(&module, "bad.tfvars", "worker_timeout = 90\n");
    assert_reports(&violations, &["\"worker_timeout\""]);
}
