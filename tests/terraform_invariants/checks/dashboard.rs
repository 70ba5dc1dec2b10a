//! The dashboards and alarms, as Terraform renders them ([`crate::render`]), are what
//! CloudWatch accepts, and graph metrics that exist.
//!
//! PutDashboard refuses a malformed body and stops `terraform apply` (a `flatten()` over metric
//! arrays did); a metric that no one emits, or asked for with other dimensions than it carries,
//! is accepted and graphs nothing. Both are only visible in the rendered body, so the checks run
//! on Terraform's own rendering, with:
//! - the body: a `widgets` array; each widget a known type with `x`, `y`, `width`, `height` on
//!   the 24-column grid and `properties`;
//! - metric widgets: a `region`, periods that are multiples of 60, and `metrics` a list of arrays
//!   `[namespace, metric, dimension, value, ..., {options}]` (the `"."` and `"..."` shorthands
//!   expanded as CloudWatch does), or math expressions;
//! - in the worker's namespace (`var.metrics_namespace`): only the metrics the worker emits
//!   (`fanout::metrics::WORKER_COUNTS` and `FANOUT_LATENCY`), with exactly the dimensions of its
//!   EMF lines, valued with the workspace and the worker's function name;
//! - in the AWS namespaces: the dimensions CloudWatch documents ([`AWS_NAMESPACES`]), valued with
//!   the name (or id) of a resource of the module ([`DIMENSION_RESOURCES`]);
//! - the same for every `aws_cloudwatch_metric_alarm` (and its `metric_query` metrics), whose
//!   period is 10, 20, 30 or a multiple of 60.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use fanout::config::Function;
use fanout::engine::FanoutStats;
use fanout::metrics::{EmfConfig, FANOUT_LATENCY, WORKER_COUNTS, emf_line};

use crate::fixtures::{assert_clean, assert_reports};
use crate::render::{RenderOptions, render_snippet};

/// The dimension sets CloudWatch documents for the AWS namespaces this stack graphs, in any
/// order. Account-wide metrics (no dimension) are left out on purpose: every graph here is about
/// this stack's resources. API Gateway's are those of WebSocket (and HTTP) APIs, keyed by ApiId;
/// REST APIs use ApiName instead.
pub const AWS_NAMESPACES: &[(&str, &[&[&str]])] = &[
    (
        "AWS/Lambda",
        &[
            &["FunctionName"],
            &["FunctionName", "Resource"],
            &["FunctionName", "Resource", "ExecutedVersion"],
        ],
    ),
    ("AWS/SQS", &[&["QueueName"]]),
    (
        "AWS/ApiGateway",
        &[
            &["ApiId"],
            &["ApiId", "Stage"],
            &["ApiId", "Stage", "Route"],
        ],
    ),
    (
        "AWS/DynamoDB",
        &[
            &["TableName"],
            &["TableName", "Operation"],
            &["TableName", "GlobalSecondaryIndexName"],
            &["TableName", "StreamLabel"],
        ],
    ),
];

/// Dimensions whose value is the name (or id) of a resource of the module: the dimension and
/// the `TYPE.ATTRIBUTE` it takes its values from.
pub const DIMENSION_RESOURCES: &[(&str, &str)] = &[
    ("FunctionName", "aws_lambda_function.function_name"),
    ("QueueName", "aws_sqs_queue.name"),
    ("TableName", "aws_dynamodb_table.name"),
    ("ApiId", "aws_apigatewayv2_api.id"),
    ("Stage", "aws_apigatewayv2_stage.name"),
];

const WIDGET_TYPES: &[&str] = &["metric", "text", "log", "alarm", "explorer", "custom"];
const BODY_KEYS: &[&str] = &["widgets", "start", "end", "periodOverride", "variables"];

/// The worker's metrics, from the code.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// Every metric name the worker emits.
    pub names: BTreeSet<String>,
    /// The dimensions every one of them carries.
    pub dimensions: BTreeSet<String>,
}

/// The names are `WORKER_COUNTS` and `FANOUT_LATENCY`; the dimensions those of the EMF line the
/// worker writes, which must declare exactly those names.
pub fn worker_metrics() -> WorkerMetrics {
    let config = EmfConfig {
        namespace: EmfConfig::DEFAULT_NAMESPACE.to_owned(),
        workspace: "dev".to_owned(),
        function: "worker".to_owned(),
    };
    let stats = FanoutStats {
        fanout_latency_ms: Some(1),
        ..FanoutStats::default()
    };
    let line: Value = serde_json::from_str(&emf_line(&config, &stats, 0))
        .unwrap_or_else(|e| panic!("emf_line does not write JSON: {e}"));
    let directives = line["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("an EMF line has _aws.CloudWatchMetrics");
    assert_eq!(
        directives.len(),
        1,
        "the worker's EMF line has several metric directives; teach worker_metrics() about them"
    );
    let emitted: BTreeSet<String> = directives[0]["Metrics"]
        .as_array()
        .expect("an EMF directive has Metrics")
        .iter()
        .map(|m| m["Name"].as_str().expect("a metric has a Name").to_owned())
        .collect();
    let names: BTreeSet<String> = WORKER_COUNTS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain([FANOUT_LATENCY.to_owned()])
        .collect();
    assert_eq!(
        emitted, names,
        "emf_line emits other metrics than WORKER_COUNTS and FANOUT_LATENCY, the lists the dashboard and alarms are checked against"
    );
    let sets = directives[0]["Dimensions"]
        .as_array()
        .expect("an EMF directive has Dimensions");
    assert_eq!(
        sets.len(),
        1,
        "the worker's metrics carry several dimension sets; teach worker_metrics() about them"
    );
    let dimensions = sets[0]
        .as_array()
        .expect("a dimension set is an array")
        .iter()
        .map(|d| d.as_str().expect("a dimension is a string").to_owned())
        .collect();
    WorkerMetrics { names, dimensions }
}

/// What the checks render besides the dashboards and alarms: the values the dimensions may take
/// and the worker's namespace and function name.
pub fn check_options(workspace: &str) -> RenderOptions {
    let mut options = RenderOptions::new(workspace);
    options.resource_attrs = DIMENSION_RESOURCES
        .iter()
        .map(|(_, spec)| (*spec).to_owned())
        .collect();
    options.exprs = vec![
        (
            "worker_namespace".to_owned(),
            "var.metrics_namespace".to_owned(),
        ),
        (
            "worker_function".to_owned(),
            format!(
                "aws_lambda_function.this[\"{}\"].function_name",
                Function::Worker.binary()
            ),
        ),
    ];
    options
}

/// What a metric is checked against, from the rendering.
struct Context<'a> {
    worker: &'a WorkerMetrics,
    worker_namespace: String,
    /// Worker dimension => the value it must have.
    worker_values: BTreeMap<&'static str, String>,
    /// Dimension => the values resources of the module give it.
    resource_values: BTreeMap<&'static str, BTreeSet<String>>,
}

impl<'a> Context<'a> {
    fn new(rendered: &Value, worker: &'a WorkerMetrics) -> Result<Self, String> {
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
        Ok(Context {
            worker,
            worker_namespace: text(&rendered["exprs"]["worker_namespace"], "worker_namespace")?,
            worker_values: BTreeMap::from([
                ("Workspace", text(&rendered["workspace"], "workspace")?),
                (
                    "Function",
                    text(&rendered["exprs"]["worker_function"], "worker_function")?,
                ),
            ]),
            resource_values,
        })
    }
}

/// Every dashboard and alarm of a rendering made with [`check_options`].
pub fn check_rendered(rendered: &Value, worker: &WorkerMetrics) -> Vec<String> {
    let mut violations = Vec::new();
    let context = match Context::new(rendered, worker) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    let dashboards = rendered["dashboards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if dashboards.is_empty() {
        violations.push("no aws_cloudwatch_dashboard was rendered".to_owned());
    }
    for dashboard in &dashboards {
        let at = located(dashboard);
        match dashboard["dashboard_body"].as_str() {
            None => violations.push(format!("{at}: dashboard_body is not a string")),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Err(e) => violations.push(format!("{at}: dashboard_body is not JSON: {e}")),
                Ok(body) => check_body(&at, &body, &context, &mut violations),
            },
        }
    }
    for alarm in rendered["alarms"].as_array().into_iter().flatten() {
        check_alarm(&located(alarm), alarm, &context, &mut violations);
    }
    violations
}

fn located(item: &Value) -> String {
    format!(
        "{} ({}:{})",
        item["address"].as_str().unwrap_or("?"),
        item["file"].as_str().unwrap_or("?"),
        item["line"]
    )
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_body(at: &str, body: &Value, context: &Context, violations: &mut Vec<String>) {
    let Some(body) = body.as_object() else {
        violations.push(format!("{at}: the body is {}, not an object", kind(body)));
        return;
    };
    for key in body.keys() {
        if !BODY_KEYS.contains(&key.as_str()) {
            violations.push(format!(
                "{at}: unknown top-level key {key:?} (PutDashboard knows {BODY_KEYS:?})"
            ));
        }
    }
    if let Some(p) = body.get("periodOverride")
        && !matches!(p.as_str(), Some("auto" | "inherit"))
    {
        violations.push(format!(
            "{at}: periodOverride {p} is neither \"auto\" nor \"inherit\""
        ));
    }
    let Some(widgets) = body.get("widgets").and_then(Value::as_array) else {
        violations.push(format!("{at}: the body has no widgets array"));
        return;
    };
    if widgets.is_empty() {
        violations.push(format!("{at}: the body has no widgets"));
    }
    for (i, widget) in widgets.iter().enumerate() {
        let title = widget["properties"]["title"]
            .as_str()
            .map(|t| format!(" {t:?}"))
            .unwrap_or_default();
        check_widget(
            &format!("{at} widgets[{i}]{title}"),
            widget,
            context,
            violations,
        );
    }
}

fn check_widget(at: &str, widget: &Value, context: &Context, violations: &mut Vec<String>) {
    let Some(widget) = widget.as_object() else {
        violations.push(format!("{at} is {}, not an object", kind(widget)));
        return;
    };
    let kind_name = widget.get("type").and_then(Value::as_str).unwrap_or("");
    if !WIDGET_TYPES.contains(&kind_name) {
        violations.push(format!(
            "{at}: type {:?} is not one of {WIDGET_TYPES:?}",
            widget.get("type")
        ));
    }
    let mut grid = BTreeMap::new();
    for key in ["x", "y", "width", "height"] {
        match widget.get(key).and_then(Value::as_u64) {
            Some(v) => {
                grid.insert(key, v);
            }
            None => violations.push(format!(
                "{at}: {key} is {:?}, not a non-negative integer",
                widget.get(key)
            )),
        }
    }
    if let (Some(x), Some(width)) = (grid.get("x"), grid.get("width"))
        && (*width == 0 || x + width > 24)
    {
        violations.push(format!(
            "{at}: x {x} and width {width} leave the 24-column grid"
        ));
    }
    if let Some(height) = grid.get("height")
        && !(1..=1000).contains(height)
    {
        violations.push(format!("{at}: height {height} is not 1 to 1000"));
    }
    let Some(properties) = widget.get("properties").and_then(Value::as_object) else {
        violations.push(format!("{at}: no properties object"));
        return;
    };
    match kind_name {
        "metric" => check_metric_widget(at, properties, context, violations),
        "text" if !properties.get("markdown").is_some_and(Value::is_string) => {
            violations.push(format!("{at}: a text widget needs a markdown string"));
        }
        "alarm" => match properties.get("alarms").and_then(Value::as_array) {
            Some(alarms) if !alarms.is_empty() => {
                for alarm in alarms {
                    if !alarm
                        .as_str()
                        .is_some_and(|a| a.starts_with("arn:") && a.contains(":alarm:"))
                    {
                        violations.push(format!("{at}: {alarm} is not an alarm ARN"));
                    }
                }
            }
            _ => violations.push(format!(
                "{at}: an alarm widget needs a non-empty alarms array"
            )),
        },
        _ => {}
    }
}

fn check_metric_widget(
    at: &str,
    properties: &Map<String, Value>,
    context: &Context,
    violations: &mut Vec<String>,
) {
    match properties.get("region") {
        None => violations.push(format!("{at}: no region; a metric widget must name one")),
        Some(Value::String(r)) if is_region(r) => {}
        Some(other) => violations.push(format!("{at}: region {other} is not an AWS region")),
    }
    if let Some(period) = properties.get("period") {
        check_widget_period(at, period, violations);
    }
    if let Some(stat) = properties.get("stat") {
        check_stat(at, stat, violations);
    }
    let Some(metrics) = properties.get("metrics") else {
        violations.push(format!("{at}: a metric widget needs metrics"));
        return;
    };
    let Some(rows) = metrics.as_array() else {
        violations.push(format!("{at}: metrics is {}, not an array", kind(metrics)));
        return;
    };
    if rows.is_empty() {
        violations.push(format!("{at}: metrics is empty"));
    }
    let not_arrays: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].is_array()).collect();
    if let Some(&first) = not_arrays.first() {
        let row = &rows[first];
        let hint = if row.is_string() || row.is_object() {
            ": the list of metric arrays was flattened into one list (Terraform's flatten() is \
             recursive and flattens the metric arrays too; build one array per metric with a \
             for expression, e.g. over setproduct())"
        } else {
            ""
        };
        violations.push(format!(
            "{at} metrics[{first}] is {} {row}, not an array [namespace, metric, dimension, \
             value, ..., {{options}}] ({} of the {} entries of metrics are not arrays){hint}",
            kind(row),
            not_arrays.len(),
            rows.len()
        ));
    }
    let mut previous: Option<Vec<String>> = None;
    for (i, row) in rows.iter().enumerate() {
        let at = format!("{at} metrics[{i}]");
        let expanded = metric_row(&at, row, previous.as_deref(), violations);
        if let Some(fields) = &expanded {
            let dimensions: Vec<(String, String)> = fields[2..]
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            check_metric(
                &at,
                &fields[0],
                &fields[1],
                &dimensions,
                context,
                violations,
            );
        }
        previous = expanded;
    }
}

/// One entry of `metrics`, its shorthands expanded against the previous one: `Some(fields)`
/// for a metric (`[namespace, name, dimension, value, ...]`), `None` for a math expression or
/// a malformed entry (reported, except entries that are not arrays: the caller reports those
/// once for the widget).
fn metric_row(
    at: &str,
    row: &Value,
    previous: Option<&[String]>,
    violations: &mut Vec<String>,
) -> Option<Vec<String>> {
    let items = row.as_array()?;
    let (fields, options) = match items.split_last() {
        Some((Value::Object(options), rest)) => (rest, Some(options)),
        _ => (&items[..], None),
    };
    if let Some(options) = options {
        if let Some(period) = options.get("period") {
            check_widget_period(at, period, violations);
        }
        if let Some(stat) = options.get("stat") {
            check_stat(at, stat, violations);
        }
    }
    if fields.is_empty() {
        if !options.is_some_and(|o| o.get("expression").is_some_and(Value::is_string)) {
            violations.push(format!(
                "{at}: neither a metric nor a math expression ({{expression = ...}})"
            ));
        }
        return None;
    }
    let mut strings = Vec::new();
    for (j, field) in fields.iter().enumerate() {
        match field.as_str() {
            Some(s) if !s.is_empty() => strings.push(s.to_owned()),
            _ => {
                let hint = if field.is_object() {
                    " (the options object goes last, once)"
                } else {
                    ""
                };
                violations.push(format!(
                    "{at}[{j}] is {} {field}, not a non-empty string{hint}",
                    kind(field)
                ));
                return None;
            }
        }
    }
    let expanded = match expand_shorthands(&strings, previous) {
        Ok(e) => e,
        Err(e) => {
            violations.push(format!("{at}: {e}"));
            return None;
        }
    };
    if expanded.len() < 2 {
        violations.push(format!(
            "{at}: {expanded:?} has no metric name after the namespace"
        ));
        return None;
    }
    if expanded.len() % 2 == 1 {
        violations.push(format!(
            "{at}: {expanded:?} has a dimension without a value"
        ));
        return None;
    }
    Some(expanded)
}

/// `"."`: the previous metric's field at the same position; a leading `"..."`: the previous
/// metric's fields up to where the remaining ones take over.
fn expand_shorthands(
    fields: &[String],
    previous: Option<&[String]>,
) -> Result<Vec<String>, String> {
    let uses_shorthand = fields.iter().any(|f| f == "." || f == "...");
    let Some(previous) = previous.filter(|_| uses_shorthand) else {
        if uses_shorthand {
            return Err(format!(
                "{fields:?} uses \".\" or \"...\" with no metric before it to repeat"
            ));
        }
        return Ok(fields.to_vec());
    };
    let mut expanded: Vec<String> = if fields[0] == "..." {
        let rest = &fields[1..];
        if rest.len() > previous.len() {
            return Err(format!(
                "{fields:?}: \"...\" repeats more fields than the previous metric has"
            ));
        }
        previous[..previous.len() - rest.len()]
            .iter()
            .chain(rest)
            .cloned()
            .collect()
    } else {
        fields.to_vec()
    };
    for (i, field) in expanded.iter_mut().enumerate() {
        if field == "..." {
            return Err(format!("{fields:?}: \"...\" may only come first"));
        }
        if field == "." {
            *field = previous
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{fields:?}: \".\" at {i} has nothing above it"))?;
        }
    }
    Ok(expanded)
}

/// One metric: namespace, name and dimensions (name, value), wherever it is graphed or alarmed on.
fn check_metric(
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
    if namespace == context.worker_namespace {
        let worker = context.worker;
        if !worker.names.contains(name) {
            violations.push(format!(
                "{at}: {name:?} is not a metric the worker emits in {namespace} \
                 (fanout::metrics::WORKER_COUNTS and FANOUT_LATENCY: {:?})",
                worker.names
            ));
        }
        let expected: BTreeSet<&str> = worker.dimensions.iter().map(String::as_str).collect();
        if set != expected {
            violations.push(format!(
                "{at}: {namespace} {name} with dimensions {names:?}: the worker's metrics carry \
                 exactly {expected:?}, and CloudWatch finds a metric only by all of them"
            ));
        }
        for (dimension, value) in dimensions {
            if let Some(want) = context.worker_values.get(dimension.as_str())
                && value != want
            {
                violations.push(format!(
                    "{at}: {namespace} {name} dimension {dimension} = {value:?}, but the worker \
                     writes {want:?}"
                ));
            }
        }
        return;
    }
    let Some((_, documented)) = AWS_NAMESPACES.iter().find(|(ns, _)| *ns == namespace) else {
        violations.push(format!(
            "{at}: namespace {namespace:?} is neither the worker's ({:?}) nor one the checker \
             knows ({:?}); add it to AWS_NAMESPACES with its documented dimensions",
            context.worker_namespace,
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

fn check_alarm(at: &str, alarm: &Value, context: &Context, violations: &mut Vec<String>) {
    if let Some(period) = alarm.get("period").filter(|p| !p.is_null()) {
        check_alarm_period(at, period, violations);
    }
    let mut metrics = Vec::new();
    if alarm.get("namespace").is_some_and(|n| !n.is_null()) {
        metrics.push((at.to_owned(), alarm));
    }
    for (i, query) in alarm["metric_query"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for metric in query["metric"].as_array().into_iter().flatten() {
            let at = format!("{at} metric_query[{i}]");
            if let Some(period) = metric.get("period").filter(|p| !p.is_null()) {
                check_alarm_period(&at, period, violations);
            }
            metrics.push((at, metric));
        }
    }
    if metrics.is_empty() && alarm["metric_query"].as_array().is_none_or(Vec::is_empty) {
        violations.push(format!("{at}: the alarm watches no metric"));
    }
    for (at, metric) in metrics {
        let (Some(namespace), Some(name)) =
            (metric["namespace"].as_str(), metric["metric_name"].as_str())
        else {
            violations.push(format!(
                "{at}: a metric needs a namespace and a metric_name"
            ));
            continue;
        };
        let mut dimensions = Vec::new();
        for (key, value) in metric["dimensions"].as_object().into_iter().flatten() {
            match value.as_str() {
                Some(v) => dimensions.push((key.clone(), v.to_owned())),
                None => violations.push(format!("{at}: dimension {key} is {value}, not a string")),
            }
        }
        check_metric(&at, namespace, name, &dimensions, context, violations);
    }
}

fn check_widget_period(at: &str, period: &Value, violations: &mut Vec<String>) {
    if !period.as_u64().is_some_and(|p| p > 0 && p % 60 == 0) {
        violations.push(format!(
            "{at}: period {period} is not a positive multiple of 60 (this stack has no \
             high-resolution metrics)"
        ));
    }
}

fn check_alarm_period(at: &str, period: &Value, violations: &mut Vec<String>) {
    if !period
        .as_u64()
        .is_some_and(|p| matches!(p, 10 | 20 | 30) || (p > 0 && p % 60 == 0))
    {
        violations.push(format!(
            "{at}: period {period} is not 10, 20, 30 or a multiple of 60"
        ));
    }
}

/// SampleCount, Average, Sum, Minimum, Maximum, IQM, or a percentile-like statistic (p99,
/// tm90, wm(10%:90%), ...).
fn check_stat(at: &str, stat: &Value, violations: &mut Vec<String>) {
    let valid = stat.as_str().is_some_and(|s| {
        matches!(
            s,
            "SampleCount" | "Average" | "Sum" | "Minimum" | "Maximum" | "IQM"
        ) || ["p", "tm", "wm", "tc", "ts", "pr"].iter().any(|prefix| {
            s.strip_prefix(prefix).is_some_and(|rest| {
                rest.parse::<f64>().is_ok_and(|v| v > 0.0 && v < 100.0)
                    || (rest.starts_with('(') && rest.ends_with(')'))
            })
        })
    });
    if !valid {
        violations.push(format!("{at}: stat {stat} is not a CloudWatch statistic"));
    }
}

/// us-east-1, eu-west-1, us-gov-west-1, ...
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

// ---------------------------------------------------------------------------------------------
// Negative tests: rendered snippets and hand-written bodies that break the rules.
// ---------------------------------------------------------------------------------------------

/// A worker and an API function, a queue, and a dashboard whose widgets each test supplies
/// (`WIDGETS`), plus `EXTRA` blocks.
const SNIPPET: &str = r#"
variable "metrics_namespace" {
  type    = string
  default = "WsFanout"
}

provider "aws" {
  region = "eu-west-1"
}

data "aws_region" "current" {}

locals {
  name_prefix    = "x-${terraform.workspace}"
  region         = data.aws_region.current.region
  emf_dimensions = ["Workspace", terraform.workspace, "Function", aws_lambda_function.this["worker"].function_name]
}

resource "aws_lambda_function" "this" {
  for_each      = toset(["sendmessage", "worker"])
  function_name = "${local.name_prefix}-${each.key}"
}

resource "aws_sqs_queue" "fanout" {
  name = "${local.name_prefix}-fanout"
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${local.name_prefix}-fanout"
  dashboard_body = jsonencode({
    widgets = [
      WIDGETS
    ]
  })
}

EXTRA
"#;

fn snippet(widgets: &[String], extra: &str) -> String {
    SNIPPET
        .replace("WIDGETS", &widgets.join(",\n"))
        .replace("EXTRA", extra)
}

/// A metric widget at y = 6 * index with these `metrics` and extra properties.
fn metric_widget(index: usize, metrics: &str, properties: &str) -> String {
    format!(
        r#"{{
        type   = "metric"
        x      = 0
        y      = {}
        width  = 12
        height = 6
        properties = {{
          title   = "w{index}"
          {properties}
          metrics = {metrics}
        }}
      }}"#,
        6 * index
    )
}

const REGION_PERIOD: &str = "region = local.region\n period = 60";

fn render_and_check(widgets: &[String], extra: &str) -> Vec<String> {
    let rendered = render_snippet(
        &[("snippet.tf", &snippet(widgets, extra))],
        &check_options("dev"),
    )
    .unwrap_or_else(|e| panic!("the snippet does not render: {e}"));
    check_rendered(&rendered, &worker_metrics())
}

#[test]
fn flatten_over_metric_arrays_is_reported_and_setproduct_is_not() {
    let flattened = r#"flatten([for f in ["sendmessage", "worker"] : [
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.this[f].function_name, { label = "${f} errors" }],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.this[f].function_name],
          ]])"#;
    let product = r#"[
            for pair in setproduct(["sendmessage", "worker"], ["Errors", "Throttles"]) :
            ["AWS/Lambda", pair[1], "FunctionName", aws_lambda_function.this[pair[0]].function_name, { label = pair[0] }]
          ]"#;
    let violations = render_and_check(
        &[
            metric_widget(0, flattened, REGION_PERIOD),
            metric_widget(1, product, REGION_PERIOD),
        ],
        "",
    );
    assert_reports(
        &violations,
        &[
            "widgets[0] \"w0\" metrics[0] is a string \"AWS/Lambda\", not an array",
            "(18 of the 18 entries of metrics are not arrays)",
            "flatten() is recursive",
        ],
    );
    assert_eq!(
        violations.len(),
        1,
        "one violation per widget: {violations:#?}"
    );
    let elsewhere: Vec<&String> = violations
        .iter()
        .filter(|v| !v.contains("widgets[0]"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the setproduct widget is well-formed, yet: {elsewhere:?}"
    );
}

#[test]
fn unknown_worker_metrics_wrong_dimensions_and_malformed_widgets_are_reported() {
    let metrics = r#"[
            concat([var.metrics_namespace, "Delivered"], local.emf_dimensions, [{ label = "fine" }]),
            concat([var.metrics_namespace, "Deliverd"], local.emf_dimensions),
            [var.metrics_namespace, "Stale", "Function", aws_lambda_function.this["worker"].function_name],
            [var.metrics_namespace, "Failed", "Workspace", "prod", "Function", aws_lambda_function.this["worker"].function_name],
            [var.metrics_namespace, "Failed", "Workspace", terraform.workspace, "Function", aws_lambda_function.this["sendmessage"].function_name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueUrl", aws_sqs_queue.fanout.url],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.this["worker"].arn],
            ["AWS/Lambda", "Errors", "FunctionName"],
            ["Custom/Thing", "Count"],
          ]"#;
    let unplaced = r#"{
        type       = "metric"
        x          = 18
        y          = 20
        width      = 12
        height     = 6
        properties = { period = 45, metrics = [["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.fanout.name]] }
      }"#;
    let alarms = r#"
resource "aws_cloudwatch_metric_alarm" "typo" {
  alarm_name  = "${local.name_prefix}-typo"
  namespace   = var.metrics_namespace
  metric_name = "Deliverd"
  dimensions = {
    Function = aws_lambda_function.this["worker"].function_name
  }
  period = 90
}

resource "aws_cloudwatch_metric_alarm" "queue" {
  alarm_name  = "${local.name_prefix}-queue"
  namespace   = "AWS/SQS"
  metric_name = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.fanout.name
  }
  period = 60
}
"#;
    let violations = render_and_check(
        &[
            metric_widget(0, metrics, REGION_PERIOD),
            unplaced.to_owned(),
        ],
        alarms,
    );
    assert_reports(
        &violations,
        &[
            "metrics[1]: \"Deliverd\" is not a metric the worker emits in WsFanout",
            "metrics[2]: WsFanout Stale with dimensions [\"Function\"]",
            "metrics[3]: WsFanout Failed dimension Workspace = \"prod\", but the worker writes \"dev\"",
            "metrics[4]: WsFanout Failed dimension Function = \"x-dev-sendmessage\", but the worker writes \"x-dev-worker\"",
            "metrics[5]: AWS/SQS ApproximateAgeOfOldestMessage with dimensions [\"QueueUrl\"]",
            "metrics[6]: AWS/Lambda Errors dimension FunctionName = \"arn:aws:lambda:eu-west-1:123456789012:function:x-dev-worker\" is no aws_lambda_function.function_name",
            "metrics[7]: [\"AWS/Lambda\", \"Errors\", \"FunctionName\"] has a dimension without a value",
            "metrics[8]: namespace \"Custom/Thing\"",
            "widgets[1]: x 18 and width 12 leave the 24-column grid",
            "widgets[1]: no region",
            "widgets[1]: period 45",
            "aws_cloudwatch_metric_alarm.typo (snippet.tf:",
            "\"Deliverd\" is not a metric the worker emits",
            "period 90 is not 10, 20, 30 or a multiple of 60",
        ],
    );
    let fine: Vec<&String> = violations
        .iter()
        .filter(|v| v.contains("metrics[0]") || v.contains("alarm.queue"))
        .collect();
    assert!(
        fine.is_empty(),
        "the well-formed metric and alarm are reported: {fine:?}"
    );
}

#[test]
fn references_the_renderer_cannot_stub_fail_loudly() {
    for (reference, needle) in [
        (
            "aws_sqs_queue.fanout.no_such_attribute",
            "no stub for aws_sqs_queue.fanout.no_such_attribute",
        ),
        (
            "join(\",\", [for f in aws_lambda_function.this : f.function_name])",
            "a reference to every instance of aws_lambda_function.this",
        ),
        ("module.other.queue_name", "module.*"),
        (
            "aws_sqs_queue.missing.name",
            "aws_sqs_queue.missing is not declared",
        ),
    ] {
        let widget = format!(
            r#"{{
        type = "text", x = 0, y = 0, width = 24, height = 2
        properties = {{ markdown = {reference} }}
      }}"#
        );
        let error = render_snippet(
            &[("snippet.tf", &snippet(&[widget], ""))],
            &check_options("dev"),
        )
        .expect_err(reference);
        assert!(
            error.contains(needle) && error.contains("snippet.tf:"),
            "rendering {reference}: expected an error naming {needle:?} and where, got:\n{error}"
        );
    }
}

/// Comments, string literals, escaped interpolations and object keys that look like references
/// are left alone; references inside heredoc templates are rewritten.
#[test]
fn the_renderer_rewrites_only_references() {
    let widget = r#"{
        type   = "text" # aws_sqs_queue.fanout.not_a_reference
        x      = 0
        y      = 0
        width  = 24
        height = 2
        properties = {
          // data.aws_region.nope.region /* local.nope */
          data     = "aws_sqs_queue.fanout.nope ${aws_sqs_queue.fanout.name}"
          markdown = <<-EOT
            Queue ${aws_sqs_queue.fanout.name} in ${local.region}, literal $${aws_sqs_queue.fanout.nope} /* kept */
            EOT
        }
      }"#;
    let rendered = render_snippet(
        &[("snippet.tf", &snippet(&[widget.to_owned()], ""))],
        &check_options("dev"),
    )
    .unwrap_or_else(|e| panic!("the snippet does not render: {e}"));
    let body: Value = serde_json::from_str(
        rendered["dashboards"][0]["dashboard_body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body["widgets"][0]["properties"],
        json!({
            "data": "aws_sqs_queue.fanout.nope x-dev-fanout",
            "markdown": "Queue x-dev-fanout in eu-west-1, literal ${aws_sqs_queue.fanout.nope} /* kept */\n",
        })
    );
}

/// A rendering made by hand around `body`, with the snippet's names.
fn hand_rendered(body: Value) -> Value {
    json!({
        "workspace": "dev",
        "dashboards": [{"address": "aws_cloudwatch_dashboard.this", "file": "hand.tf", "line": 1,
                        "dashboard_name": "d", "dashboard_body": body.to_string()}],
        "alarms": [],
        "resource_attrs": {
            "aws_lambda_function.function_name": {"aws_lambda_function.this[\"worker\"]": "x-dev-worker"},
            "aws_sqs_queue.name": {},
            "aws_dynamodb_table.name": {},
            "aws_apigatewayv2_api.id": {},
            "aws_apigatewayv2_stage.name": {},
        },
        "exprs": {"worker_namespace": "WsFanout", "worker_function": "x-dev-worker"},
    })
}

#[test]
fn metric_shorthands_are_expanded_before_the_checks() {
    let widget = |metrics: Value| {
        json!({"type": "metric", "x": 0, "y": 0, "width": 24, "height": 6,
               "properties": {"region": "eu-west-1", "period": 300, "stat": "p99", "metrics": metrics}})
    };
    let worker = worker_metrics();
    let good = json!([
        ["WsFanout", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        [".", "Stale", ".", ".", ".", "."],
        ["...", {"stat": "Maximum", "period": 60}],
        ["AWS/Lambda", "Errors", "FunctionName", "x-dev-worker"],
        ["...", "Throttles", "FunctionName", "x-dev-worker"],
        [{"expression": "m1 + m2", "label": "sum"}],
    ]);
    assert_clean(
        "shorthands",
        check_rendered(&hand_rendered(json!({"widgets": [widget(good)]})), &worker),
    );
    let bad = json!([
        [".", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        ["WsFanout", "Delivered", "Workspace", "dev", "Function", "x-dev-worker"],
        [".", "Nope", ".", ".", ".", "."],
        ["...", "x-dev-sendmessage"],
        ["WsFanout", "Delivered", "...", {"stat": "p100"}],
        [{"label": "no expression"}],
    ]);
    let violations = check_rendered(
        &hand_rendered(json!({"widgets": [widget(bad)], "periodOverride": "never", "title": "x"})),
        &worker,
    );
    assert_reports(
        &violations,
        &[
            "metrics[0]: [\".\", \"Delivered\"",
            "with no metric before it to repeat",
            "metrics[2]: \"Nope\" is not a metric the worker emits",
            "metrics[3]: WsFanout Nope dimension Function = \"x-dev-sendmessage\"",
            "metrics[4]: stat \"p100\" is not a CloudWatch statistic",
            "\"...\" may only come first",
            "metrics[5]: neither a metric nor a math expression",
            "periodOverride \"never\"",
            "unknown top-level key \"title\"",
        ],
    );
}
