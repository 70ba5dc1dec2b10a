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
//! - in the stack's namespace (`var.metrics_namespace`): only the metrics the code emits (the
//!   worker's `fanout::metrics::WORKER_COUNTS` and `FANOUT_LATENCY`, sendmessage's and
//!   publish's `SEND_ACCEPTED` and `SEND_REFUSED`, recover's `RECOVERIES` and the rest), with one
//!   of the dimension sets of their EMF lines, valued with the workspace, a writing function's
//!   name and, for `Code`, an error code;
//! - in the AWS namespaces: the dimensions CloudWatch documents
//!   ([`AWS_NAMESPACES`](namespaces::AWS_NAMESPACES)), valued with the name (or id) of a resource
//!   of the module ([`DIMENSION_RESOURCES`](namespaces::DIMENSION_RESOURCES));
//! - the same for every `aws_cloudwatch_metric_alarm` (and its `metric_query` metrics), whose
//!   period is 10, 20, 30 or a multiple of 60.
//!
//! The checks, one job a file: [`emitted`] reads back the metrics the code emits; [`namespaces`]
//! holds the AWS namespaces' documented dimensions; [`context`] says what to render and reads it
//! back; [`rendered`] walks a rendering's dashboards and alarms; [`widgets`] checks a body and
//! its widgets; [`shorthands`] expands a `metrics` entry; [`metric`] checks one metric; [`alarms`]
//! one alarm; [`fields`] the values of single fields. The negative tests (`negative_*`) run them
//! over the HCL of [`snippet`] and over hand-written renderings.

mod alarms;
mod context;
mod emitted;
mod fields;
mod metric;
pub mod namespaces;
mod rendered;
mod shorthands;
mod widgets;

mod negative_metrics;
mod negative_renderer;
mod negative_shorthands;
mod snippet;

pub use context::check_options;
pub use emitted::{Emitted, emitted_metrics};
pub use rendered::check_rendered;
