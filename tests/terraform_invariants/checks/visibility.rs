//! The fan-out queue outlives the worker: an SQS message must stay invisible for as long as a
//! job can run (six times the consumer's timeout, as AWS advises), or it is redelivered while
//! still being processed.
//!
//! Every value is Terraform's ([`crate::render`]). The queue an event source mapping consumes and
//! the function it invokes are the instances whose rendered ARN (or name) its rendered
//! `event_source_arn` and `function_name` are. Both timeouts are rendered at the defaults, and at
//! the validated bounds of each variable Terraform says either depends on. Those bounds are read
//! from the variable's validation condition (`var.x >= 10 && var.x <= 900`), then confirmed by
//! Terraform: the variable renders at the bound, and its validation rejects one beyond it.

use std::collections::{BTreeMap, BTreeSet};

use hcl::Expression;
use hcl::expr::{BinaryOperator, Operation};
use serde_json::Value;

use crate::expr::{Seg, traversal};
use crate::fixtures::{WORKER_SNIPPET, assert_clean, assert_reports, queue_block, with_queue};
use crate::model::{Labelled, Module, attr, nested, show};
use crate::render::{
    RenderOptions, instance_dependencies, instance_values, render_module, variant,
};

const VISIBILITY: &str = "visibility_timeout_seconds";

const UNWIRED: &str = "no aws_lambda_event_source_mapping from an aws_sqs_queue: the worker is not wired to the fan-out queue";

/// A queue instance and the function instance that consumes it, with where Terraform renders
/// their timeouts (`(spec, instance address)`).
struct Consumer {
    /// `aws_sqs_queue.fanout (queue.tf)`
    queue: String,
    visibility: (String, String),
    visibility_expr: String,
    /// `aws_lambda_function.this["worker"] (functions.tf)`
    function: String,
    timeout: (String, String),
    timeout_expr: String,
}

/// The bounds a variable's validation puts on it, as its condition reads (`var.x >= A && var.x
/// <= B`, `var.x > A` being `var.x >= A + 1`): candidates, for Terraform to confirm.
fn candidate_bounds(module: &Module, name: &str) -> (Option<f64>, Option<f64>) {
    fn walk(expr: &Expression, name: &str, lo: &mut Option<f64>, hi: &mut Option<f64>) {
        let Expression::Operation(op) = expr else {
            if let Expression::Parenthesis(inner) = expr {
                walk(inner, name, lo, hi);
            }
            return;
        };
        let Operation::Binary(b) = op.as_ref() else {
            return;
        };
        if b.operator == BinaryOperator::And {
            walk(&b.lhs_expr, name, lo, hi);
            walk(&b.rhs_expr, name, lo, hi);
            return;
        }
        let is_var = |e: &Expression| matches!(traversal(e), Some((r, s)) if r == "var" && s == [Seg::Attr(name.to_owned())]);
        let num = |e: &Expression| match e {
            Expression::Number(n) => n.as_f64(),
            _ => None,
        };
        let (op, value) = if is_var(&b.lhs_expr) {
            (b.operator, num(&b.rhs_expr))
        } else if is_var(&b.rhs_expr) {
            let flipped = match b.operator {
                BinaryOperator::Less => BinaryOperator::Greater,
                BinaryOperator::LessEq => BinaryOperator::GreaterEq,
                BinaryOperator::Greater => BinaryOperator::Less,
                BinaryOperator::GreaterEq => BinaryOperator::LessEq,
                other => other,
            };
            (flipped, num(&b.lhs_expr))
        } else {
            return;
        };
        let Some(v) = value else { return };
        match op {
            BinaryOperator::GreaterEq => *lo = Some(v),
            BinaryOperator::Greater => *lo = Some(v + 1.0),
            BinaryOperator::LessEq => *hi = Some(v),
            BinaryOperator::Less => *hi = Some(v - 1.0),
            _ => {}
        }
    }
    let (mut lo, mut hi) = (None, None);
    if let Some((_, block)) = module.variables().get(name) {
        for validation in nested(block.body(), "validation") {
            if let Some(cond) = attr(validation.body(), "condition") {
                walk(cond, name, &mut lo, &mut hi);
            }
        }
    }
    (lo, hi)
}

/// Each candidate bound of a variable, and the value just beyond it.
fn bounds_and_beyond(module: &Module, name: &str) -> Vec<(f64, f64)> {
    let (lo, hi) = candidate_bounds(module, name);
    lo.map(|lo| (lo, lo - 1.0))
        .into_iter()
        .chain(hi.map(|hi| (hi, hi + 1.0)))
        .collect()
}

/// Rendered value of one of `attributes` => (the resource, the address of its instance).
fn by_value<'m>(
    rendered: &Value,
    blocks: &[&Labelled<'m>],
    attributes: &[&str],
) -> BTreeMap<String, (Labelled<'m>, String)> {
    let mut found = BTreeMap::new();
    for block in blocks {
        for attribute in attributes {
            for (address, value) in instance_values(rendered, &block.spec(attribute)) {
                if let Some(value) = value.as_str() {
                    found.insert(value.to_owned(), (**block, address.clone()));
                }
            }
        }
    }
    found
}

/// The queue instances consumed by a function instance, tied by their rendered ARNs and names;
/// and how many mappings consume a queue of the module. What does not tie up is reported.
fn consumers(
    rendered: &Value,
    mappings: &[&Labelled<'_>],
    queues: &[&Labelled<'_>],
    functions: &[&Labelled<'_>],
    violations: &mut Vec<String>,
) -> (Vec<Consumer>, usize) {
    let queue_arns = by_value(rendered, queues, &["arn"]);
    let function_ids = by_value(rendered, functions, &["arn", "function_name"]);
    let mut found = Vec::new();
    let mut sqs_mappings = 0;
    for mapping in mappings {
        for (address, source) in instance_values(rendered, &mapping.spec("event_source_arn")) {
            let Some((queue, queue_address)) = source.as_str().and_then(|s| queue_arns.get(s))
            else {
                continue;
            };
            sqs_mappings += 1;
            let at = format!("{address} ({})", mapping.file);
            let queue_at = format!("{queue_address} ({})", queue.file);
            let Some(visibility) = attr(queue.block.body(), VISIBILITY) else {
                violations.push(format!(
                    "{queue_at}: no {VISIBILITY} (SQS defaults to 30 s), consumed by {at}"
                ));
                continue;
            };
            let Some(target) =
                instance_values(rendered, &mapping.spec("function_name")).get(address)
            else {
                violations.push(format!("{at}: no function_name"));
                continue;
            };
            let Some((function, function_address)) =
                target.as_str().and_then(|t| function_ids.get(t))
            else {
                violations.push(format!(
                    "{at}: function_name renders to {target}, the ARN or name of no aws_lambda_function of the module"
                ));
                continue;
            };
            let function_at = format!("{function_address} ({})", function.file);
            let Some(timeout) = attr(function.block.body(), "timeout") else {
                violations.push(format!(
                    "{function_at}: no timeout (Lambda defaults to 3 s)"
                ));
                continue;
            };
            found.push(Consumer {
                queue: queue_at,
                visibility: (queue.spec(VISIBILITY), queue_address.clone()),
                visibility_expr: show(visibility),
                function: function_at,
                timeout: (function.spec("timeout"), function_address.clone()),
                timeout_expr: show(timeout),
            });
        }
    }
    (found, sqs_mappings)
}

/// For every SQS event source mapping: the source queue's visibility timeout is at least six
/// times the consuming function's timeout, at the defaults and at the validated bounds of every
/// variable either depends on.
pub fn check_visibility_timeout(module: &Module) -> Vec<String> {
    let resources = module.resources();
    let of_type = |kind: &str| -> Vec<&Labelled<'_>> {
        resources.iter().filter(|r| r.kind == kind).collect()
    };
    let mappings = of_type("aws_lambda_event_source_mapping");
    let queues = of_type("aws_sqs_queue");
    let functions = of_type("aws_lambda_function");
    if mappings.is_empty() {
        return vec![UNWIRED.to_owned()];
    }

    // What ties mappings to queues and functions, and the timeouts where the blocks set them.
    let mut specs = Vec::new();
    for mapping in &mappings {
        for attribute in ["event_source_arn", "function_name"] {
            if mapping.sets(attribute) {
                specs.push(mapping.spec(attribute));
            }
        }
    }
    for queue in &queues {
        specs.push(queue.spec("arn"));
        if queue.sets(VISIBILITY) {
            specs.push(queue.spec(VISIBILITY));
        }
    }
    for function in &functions {
        specs.extend([function.spec("arn"), function.spec("function_name")]);
        if function.sets("timeout") {
            specs.push(function.spec("timeout"));
        }
    }
    let bounded: BTreeMap<String, Vec<(f64, f64)>> = module
        .variables()
        .into_keys()
        .map(|name| {
            let bounds = bounds_and_beyond(module, &name);
            (name, bounds)
        })
        .filter(|(_, bounds)| !bounds.is_empty())
        .collect();
    // One rendering: at the defaults, with what each value depends on, and at the bounds (and
    // just beyond) of every variable some value depends on.
    let mut options = RenderOptions::attributes("dev", specs);
    options.depends_on = bounded.keys().cloned().collect();
    for (name, bounds) in &bounded {
        for (bound, beyond) in bounds {
            options.variants.push((name.clone(), bound.to_string()));
            options.variants.push((name.clone(), beyond.to_string()));
        }
    }
    options.only_dependent_variants = true;
    let rendered = match render_module(module, &options) {
        Ok(rendered) => rendered,
        Err(e) => return vec![format!("the timeouts do not render: {e}")],
    };

    let mut violations = Vec::new();
    let (consumers, sqs_mappings) =
        consumers(&rendered, &mappings, &queues, &functions, &mut violations);
    if sqs_mappings == 0 {
        violations.push(UNWIRED.to_owned());
    }

    // The variables each consumer's timeouts depend on, as Terraform tracks them.
    let dependencies: Vec<BTreeSet<String>> = consumers
        .iter()
        .map(|c| {
            [&c.visibility, &c.timeout]
                .into_iter()
                .flat_map(|(spec, address)| instance_dependencies(&rendered, spec, address))
                .filter(|name| bounded.contains_key(name))
                .collect()
        })
        .collect();
    let dependent: BTreeSet<&String> = dependencies.iter().flatten().collect();
    // (variable, what the scenario is, the rendering)
    let mut scenarios: Vec<(Option<&String>, String, &Value)> =
        vec![(None, "the defaults".to_owned(), &rendered)];
    for name in &dependent {
        for (bound, beyond) in &bounded[*name] {
            match variant(&rendered, name, &bound.to_string()) {
                Some(Ok(rendered)) => {
                    scenarios.push((Some(*name), format!("var.{name} = {bound}"), rendered))
                }
                Some(Err((error, _))) => violations.push(format!(
                    "var.{name} = {bound}, a bound read from its validation condition, does not render: {error}"
                )),
                None => violations.push(format!("var.{name} = {bound} was not rendered")),
            }
            match variant(&rendered, name, &beyond.to_string()) {
                Some(Err((_, invalid))) if invalid.contains(*name) => {}
                Some(Err((error, _))) => violations.push(format!(
                    "var.{name} = {beyond} fails to render, but not by the validation of var.{name}, so {bound} is not confirmed as its bound: {error}"
                )),
                Some(Ok(_)) => violations.push(format!(
                    "var.{name} = {beyond} passes its validation, so {bound} (read from the condition) is not its bound: teach candidate_bounds() this condition"
                )),
                None => violations.push(format!("var.{name} = {beyond} was not rendered")),
            }
        }
    }

    for (consumer, depends) in consumers.iter().zip(&dependencies) {
        for (variable, scenario, rendering) in &scenarios {
            if variable.is_some_and(|v| !depends.contains(v)) {
                continue;
            }
            let value = |(spec, address): &(String, String)| {
                instance_values(rendering, spec)
                    .get(address)
                    .and_then(Value::as_f64)
            };
            let (Some(vt), Some(ft)) = (value(&consumer.visibility), value(&consumer.timeout))
            else {
                violations.push(format!(
                    "{} / {}: the timeouts do not render to numbers with {scenario}",
                    consumer.queue, consumer.function
                ));
                continue;
            };
            if vt < 6.0 * ft {
                violations.push(format!(
                    "{}: {VISIBILITY} = {} is {vt} s with {scenario}, less than 6 x the timeout of {} ({} = {ft} s): jobs would be redelivered while still being processed",
                    consumer.queue, consumer.visibility_expr, consumer.function, consumer.timeout_expr,
                ));
            }
        }
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

    // A bound read from the condition that Terraform's validation does not accept is reported,
    // not trusted.
    let excluded = WORKER_SNIPPET.replace(
        "var.worker_timeout_seconds <= 900",
        "var.worker_timeout_seconds <= 900 && var.worker_timeout_seconds != 900",
    );
    let unconfirmed = check_visibility_timeout(&Module::parse_snippet(
        "snippet.tf",
        &format!(
            "{excluded}{}",
            queue_block("6 * var.worker_timeout_seconds")
        ),
    ));
    assert_reports(
        &unconfirmed,
        &[
            "var.worker_timeout_seconds = 900, a bound read from its validation condition, does not render",
        ],
    );

    let unwired =
        check_visibility_timeout(&Module::parse_snippet("empty.tf", "locals {\n  a = 1\n}\n"));
    assert!(
        !unwired.is_empty(),
        "a module without an SQS event source mapping must be reported"
    );
}
