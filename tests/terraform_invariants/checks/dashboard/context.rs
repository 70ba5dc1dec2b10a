//! What the checks render besides the dashboards and alarms, and what a metric is checked
//! against, read back from the rendering.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use fanout::config::Function;

use crate::render::RenderOptions;

use super::emitted::{EMITTING, Emitted};
use super::namespaces::DIMENSION_RESOURCES;

/// What the checks render besides the dashboards and alarms: the values the dimensions may take,
/// the namespace, and the function names of the functions that emit metrics.
pub fn check_options(workspace: &str) -> RenderOptions {
    let mut options = RenderOptions::new(workspace);
    options.resource_attrs = DIMENSION_RESOURCES
        .iter()
        .map(|(_, spec)| (*spec).to_owned())
        .collect();
    options.exprs = vec![
        (
            "metrics_namespace".to_owned(),
            "var.metrics_namespace".to_owned(),
        ),
        ("name_prefix".to_owned(), "local.name_prefix".to_owned()),
    ];
    for function in EMITTING {
        options.exprs.push((
            format!("function_{}", function.binary()),
            format!(
                "aws_lambda_function.this[\"{}\"].function_name",
                function.binary()
            ),
        ));
    }
    options
}

/// What a metric is checked against, from the rendering.
pub(super) struct Context<'a> {
    pub(super) emitted: &'a Emitted,
    pub(super) namespace: String,
    pub(super) workspace: String,
    /// Emitting function => its deployed name.
    pub(super) function_names: BTreeMap<Function, String>,
    /// Dimension => the values resources of the module give it.
    pub(super) resource_values: BTreeMap<&'static str, BTreeSet<String>>,
}

impl<'a> Context<'a> {
    pub(super) fn new(rendered: &Value, emitted: &'a Emitted) -> Result<Self, String> {
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the rendering has no {what} (render with check_options)"))
        };
        let mut resource_values = BTreeMap::new();
        for (dimension, spec) in DIMENSION_RESOURCES {
            let values = rendered["resource_attrs"][spec]
                .as_object()
                .ok_or_else(|| {
                    format!(
                        "the rendering has no resource_attrs {spec} (render with check_options)"
                    )
                })?;
            resource_values.insert(
                *dimension,
                values
                    .values()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            );
        }
        let mut function_names = BTreeMap::new();
        for function in EMITTING {
            let key = format!("function_{}", function.binary());
            function_names.insert(function, text(&rendered["exprs"][&key], &key)?);
        }
        Ok(Context {
            emitted,
            namespace: text(&rendered["exprs"]["metrics_namespace"], "metrics_namespace")?,
            workspace: text(&rendered["workspace"], "workspace")?,
            function_names,
            resource_values,
        })
    }
}
