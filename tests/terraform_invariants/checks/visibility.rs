//! The fan-out queue outlives the worker: an SQS message must stay invisible for as long as a
//! job can run (six times the consumer's timeout, as AWS advises), or it is redelivered while
//! still being processed.

use hcl::Expression;

use crate::eval::{Evaluator, Instance, instance_by_key, validation_bounds};
use crate::expr::{Seg, first_attr, traversal};
use crate::fixtures::{assert_clean, with_queue};
use crate::model::{Labelled, Module, attr, show};

/// `aws_lambda_function.this["worker"].arn` → the function block and its instance.
fn lambda_target<'m>(
    module: &'m Module,
    expr: &Expression,
) -> Result<(Labelled<'m>, Option<Instance>), String> {
    let (root, segs) =
        traversal(expr).ok_or_else(|| format!("{} is not a reference", show(expr)))?;
    if root != "aws_lambda_function" {
        return Err(format!(
            "{} does not name an aws_lambda_function",
            show(expr)
        ));
    }
    let name = first_attr(&segs).ok_or_else(|| format!("{} has no resource name", show(expr)))?;
    let key = match segs.get(1) {
        Some(Seg::Index(Expression::String(k))) => Some(k.as_str()),
        _ => None,
    };
    let function = module
        .resource("aws_lambda_function", name)
        .ok_or_else(|| format!("aws_lambda_function.{name} is not declared"))?;
    let instance = instance_by_key(module, function.block, key)?;
    Ok((function, instance))
}

/// For every SQS event source mapping: the source queue's visibility timeout is at least six
/// times the consuming function's timeout, at the defaults and at the validated bounds of every
/// variable either expression depends on.
pub fn check_visibility_timeout(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let mappings: Vec<_> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_event_source_mapping")
        .collect();
    let mut sqs_mappings = 0;
    for mapping in mappings {
        let Some(source) = attr(mapping.block.body(), "event_source_arn") else {
            continue;
        };
        let Some((root, segs)) = traversal(source) else {
            continue;
        };
        if root != "aws_sqs_queue" {
            continue;
        }
        sqs_mappings += 1;
        let queue_name = first_attr(&segs).unwrap_or_default().to_owned();
        let Some(queue) = module.resource("aws_sqs_queue", &queue_name) else {
            violations.push(format!(
                "{}: aws_sqs_queue.{queue_name} is not declared",
                mapping.address()
            ));
            continue;
        };
        let Some(visibility) = attr(queue.block.body(), "visibility_timeout_seconds") else {
            violations.push(format!(
                "{}: no visibility_timeout_seconds (SQS defaults to 30 s), consumed by {}",
                queue.address(),
                mapping.address()
            ));
            continue;
        };
        let Some(function_ref) = attr(mapping.block.body(), "function_name") else {
            violations.push(format!("{}: no function_name", mapping.address()));
            continue;
        };
        let (function, instance) = match lambda_target(module, function_ref) {
            Ok(target) => target,
            Err(e) => {
                violations.push(format!("{}: {e}", mapping.address()));
                continue;
            }
        };
        let Some(timeout) = attr(function.block.body(), "timeout") else {
            violations.push(format!(
                "{}: no timeout (Lambda defaults to 3 s)",
                function.address()
            ));
            continue;
        };

        // Which variables matter? Evaluate once at the defaults and record them.
        let probe = Evaluator::new(module);
        let (vt, ft) = match (
            probe.eval(visibility, None),
            probe.eval(timeout, instance.as_ref()),
        ) {
            (Ok(vt), Ok(ft)) => (vt, ft),
            (Err(e), _) | (_, Err(e)) => {
                violations.push(format!(
                    "{} / {}: cannot evaluate the timeouts: {e}",
                    queue.address(),
                    function.address()
                ));
                continue;
            }
        };
        let mut scenarios: Vec<(String, f64, f64)> = vec![("the defaults".to_owned(), vt, ft)];
        for var in probe.seen_vars.borrow().iter() {
            let (lo, hi) = validation_bounds(module, var);
            for bound in [lo, hi].into_iter().flatten() {
                let mut evaluator = Evaluator::new(module);
                evaluator.overrides.insert(var.clone(), bound);
                if let (Ok(vt), Ok(ft)) = (
                    evaluator.eval(visibility, None),
                    evaluator.eval(timeout, instance.as_ref()),
                ) {
                    scenarios.push((format!("var.{var} = {bound}"), vt, ft));
                }
            }
        }
        for (scenario, vt, ft) in scenarios {
            if vt < 6.0 * ft {
                violations.push(format!(
                    "{}: visibility_timeout_seconds = {} is {vt} s with {scenario}, less than 6 x the timeout of {}{} ({} = {ft} s): jobs would be redelivered while still being processed",
                    queue.address(),
                    show(visibility),
                    function.address(),
                    instance.as_ref().map(|i| format!("[\"{}\"]", i.key)).unwrap_or_default(),
                    show(timeout),
                ));
            }
        }
    }
    if sqs_mappings == 0 {
        violations.push("no aws_lambda_event_source_mapping from an aws_sqs_queue: the worker is not wired to the fan-out queue".to_owned());
    }
    violations
}

// Negative checks

#[test]
fn visibility_checker_accepts_six_times_and_rejects_less() {
    assert_clean(
        "6 x var",
        check_visibility_timeout(&with_queue("6 * var.worker_timeout_seconds")),
    );

    let too_short = check_visibility_timeout(&with_queue("var.worker_timeout_seconds"));
    assert!(
        too_short
            .iter()
            .any(|v| v.contains("aws_sqs_queue.fanout") && v.contains("the defaults")),
        "a visibility timeout equal to the worker timeout must be reported: {too_short:?}"
    );

    // A constant that is fine at the default (360 = 6 x 60) breaks at the validated maximum.
    let constant = check_visibility_timeout(&with_queue("360"));
    assert!(
        constant
            .iter()
            .any(|v| v.contains("var.worker_timeout_seconds = 900")),
        "a hard-coded 360 s must be reported at worker_timeout_seconds = 900: {constant:?}"
    );

    let unwired =
        check_visibility_timeout(&Module::parse_snippet("empty.tf", "locals {\n  a = 1\n}\n"));
    assert!(
        !unwired.is_empty(),
        "a module without an SQS event source mapping must be reported"
    );
}
