//! One metric, graphed or alarmed on: in the stack's namespace, one the code emits, valued as
//! it writes it; in an AWS namespace, documented dimensions valued with the module's resources.

use std::collections::BTreeSet;

use serde_json::json;

use fanout::domain::ErrorCode;
use fanout::metrics::REFUSAL_CODE;

use super::context::Context;
use super::namespaces::{AWS_NAMESPACES, DIMENSION_RESOURCES};

/// One metric: namespace, name and dimensions (name, value), wherever it is graphed or alarmed on.
pub(super) fn check_metric(
    at: &str,
    namespace: &str,
    name: &str,
    dimensions: &[(String, String)],
    context: &Context,
    violations: &mut Vec<String>,
) {
    let names: Vec<&str> = dimensions.iter().map(|(n, _)| n.as_str()).collect();
    let set: BTreeSet<&str> = names.iter().copied().collect();
    if set.len() != names.len() {
        violations.push(format!("{at}: dimension repeated in {names:?}"));
        return;
    }
    if namespace == context.namespace {
        check_own_metric(at, namespace, name, dimensions, context, violations);
        return;
    }
    let Some((_, documented)) = AWS_NAMESPACES.iter().find(|(ns, _)| *ns == namespace) else {
        violations.push(format!(
            "{at}: namespace {namespace:?} is neither the stack's ({:?}) nor one the checker \
             knows ({:?}); add it to AWS_NAMESPACES with its documented dimensions",
            context.namespace,
            AWS_NAMESPACES.iter().map(|(ns, _)| *ns).collect::<Vec<_>>()
        ));
        return;
    };
    if !documented
        .iter()
        .any(|d| d.iter().copied().collect::<BTreeSet<_>>() == set)
    {
        violations.push(format!(
            "{at}: {namespace} {name} with dimensions {names:?}; CloudWatch documents {documented:?}"
        ));
    }
    for (dimension, value) in dimensions {
        let Some((_, spec)) = DIMENSION_RESOURCES.iter().find(|(d, _)| d == dimension) else {
            continue;
        };
        let values = &context.resource_values[dimension.as_str()];
        if !values.contains(value) {
            violations.push(format!(
                "{at}: {namespace} {name} dimension {dimension} = {value:?} is no {spec} of the \
                 module (those are {values:?})"
            ));
        }
    }
}

/// A metric in the stack's namespace: one the code emits, with one of the dimension sets it
/// writes, valued as it writes them (`Function`: the deployed name of one of its writers).
fn check_own_metric(
    at: &str,
    namespace: &str,
    name: &str,
    dimensions: &[(String, String)],
    context: &Context,
    violations: &mut Vec<String>,
) {
    let Some(emitter) = context.emitted.metrics.get(name) else {
        violations.push(format!(
            "{at}: {name:?} is not a metric the code emits in {namespace} (fanout::metrics: {:?})",
            context.emitted.metrics.keys().collect::<Vec<_>>()
        ));
        return;
    };
    let writer = emitter
        .functions
        .iter()
        .map(|f| f.binary())
        .collect::<Vec<_>>()
        .join(" or ");
    let names: Vec<&str> = dimensions.iter().map(|(n, _)| n.as_str()).collect();
    let set: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    if !emitter.dimension_sets.contains(&set) {
        violations.push(format!(
            "{at}: {namespace} {name} with dimensions {names:?}: the {writer} writes it with \
             exactly one of {:?}, and CloudWatch finds a metric only by all of them",
            emitter.dimension_sets
        ));
    }
    for (dimension, value) in dimensions {
        let want: Vec<String> = match dimension.as_str() {
            "Workspace" => vec![context.workspace.clone()],
            "Function" => emitter
                .functions
                .iter()
                .map(|f| context.function_names[f].clone())
                .collect(),
            REFUSAL_CODE => {
                if serde_json::from_value::<ErrorCode>(json!(value)).is_err() {
                    violations.push(format!(
                        "{at}: {namespace} {name} dimension {REFUSAL_CODE} = {value:?} is no \
                         error code (fanout::domain::ErrorCode)"
                    ));
                }
                continue;
            }
            _ => continue,
        };
        if !want.contains(value) {
            let want = want
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(" or ");
            violations.push(format!(
                "{at}: {namespace} {name} dimension {dimension} = {value:?}, but the {writer} \
                 writes {want}"
            ));
        }
    }
}
