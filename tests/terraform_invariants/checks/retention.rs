//! A job reaches the dead-letter queue before SQS forgets it: SQS deletes a message older than
//! its queue's retention without moving it to the dead-letter queue, so a queue with a redrive
//! policy must keep a message for as long as a job can take to be dead-lettered, and Terraform
//! must refuse a shorter retention (a precondition on the queue).
//!
//! That need, from the code: a standard queue's retry job is sent with a delay of up to
//! [`MAX_QUEUE_DELAY`] (a FIFO queue takes none), and the message's clock starts at the send.
//! Each of its `maxReceiveCount` receives then lasts at most the batching window, the invocation
//! and a retry delay (of at most [`MAX_QUEUE_DELAY`]: a failed record's comeback, a held per_room
//! job's), or the visibility timeout when the invocation dies; the receive after the last moves
//! it. So `need = (FIFO ? 0 : 900) + maxReceiveCount * max(visibility timeout, batching window +
//! worker timeout + 900)`.
//!
//! Every value is Terraform's ([`crate::render`]): the redrive policy's `maxReceiveCount`, the
//! visibility timeout and whether the queue is FIFO are rendered per scenario, the need computed
//! here, and the queue's preconditions rendered with the retention at the need (they must hold)
//! and one second short of it (they must not).

use fanout::ports::MAX_QUEUE_DELAY;
use serde_json::Value;

use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Labelled, Module, attr, nested, show};
use crate::render::{RenderOptions, instance_values, render_module, variant};

const RETENTION: &str = "fanout_message_retention_seconds";

/// SQS's longest retention.
const SQS_MAX_RETENTION: f64 = 1_209_600.0;

/// The settings a need is checked at (on top of the defaults): each stretches another part of it.
const SCENARIOS: &[&[(&str, &str)]] = &[
    &[],
    &[("ordering", "per_room")],
    &[
        ("ordering", "per_room"),
        ("ordered_max_receive_count", "1000"),
    ],
    &[("max_receive_count", "1000")],
    &[("worker_timeout_seconds", "900")],
    &[
        ("worker_batching_window_seconds", "300"),
        ("worker_batch_size", "100"),
    ],
];

/// The queues that dead-letter (they set a redrive policy).
fn dead_lettering<'m>(module: &'m Module) -> Vec<Labelled<'m>> {
    module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_sqs_queue" && r.sets("redrive_policy"))
        .collect()
}

/// The conjunction of a resource's lifecycle preconditions, as HCL; `None` without one.
fn preconditions(queue: &Labelled<'_>) -> Option<String> {
    let conditions: Vec<String> = nested(queue.block.body(), "lifecycle")
        .flat_map(|l| nested(l.body(), "precondition"))
        .filter_map(|p| attr(p.body(), "condition").map(|c| format!("({})", show(c))))
        .collect();
    (!conditions.is_empty()).then(|| conditions.join(" && "))
}

fn options(vars: &[(&str, &str)]) -> RenderOptions {
    let mut options = RenderOptions::attributes("dev", Vec::new());
    options.vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    options
}

/// The need of one scenario's rendering of `queue`, or why it cannot be computed.
fn need(rendered: &Value, queue: &Labelled<'_>) -> Result<f64, String> {
    let one = |attribute: &str| -> Option<&Value> {
        instance_values(rendered, &queue.spec(attribute))
            .values()
            .next()
    };
    let receives = one("redrive_policy")
        .and_then(Value::as_str)
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p["maxReceiveCount"].as_f64())
        .ok_or("the redrive policy renders without a numeric maxReceiveCount")?;
    let visibility = one("visibility_timeout_seconds")
        .and_then(Value::as_f64)
        .ok_or("visibility_timeout_seconds does not render to a number")?;
    let fifo = one("fifo_queue").and_then(Value::as_bool).unwrap_or(false);
    let var = |name: &str| {
        rendered["exprs"][name]
            .as_f64()
            .ok_or(format!("var.{name} does not render to a number"))
    };
    let (timeout, window) = (
        var("worker_timeout_seconds")?,
        var("worker_batching_window_seconds")?,
    );
    let delay = MAX_QUEUE_DELAY.as_secs_f64();
    let sent_with = if fifo { 0.0 } else { delay };
    Ok(sent_with + receives * visibility.max(window + timeout + delay))
}

/// For every queue that dead-letters, in every scenario: its preconditions hold with the
/// retention at the need and fail one second short of it (or at SQS's maximum, when the need is
/// above it).
pub fn check_retention(module: &Module) -> Vec<String> {
    let queues = dead_lettering(module);
    if queues.is_empty() {
        return vec!["no aws_sqs_queue sets a redrive_policy: nothing to check".to_owned()];
    }
    let mut violations = Vec::new();
    for queue in &queues {
        let at = queue.address();
        let Some(condition) = preconditions(queue) else {
            violations.push(format!(
                "{at}: no lifecycle precondition: nothing refuses a {RETENTION} shorter than a job can take to reach the dead-letter queue"
            ));
            continue;
        };
        for vars in SCENARIOS {
            let scenario = if vars.is_empty() {
                "the defaults".to_owned()
            } else {
                vars.iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut first = options(vars);
            first.resource_attrs = ["redrive_policy", "visibility_timeout_seconds", "fifo_queue"]
                .iter()
                .filter(|a| queue.sets(a))
                .map(|a| queue.spec(a))
                .collect();
            first.exprs = ["worker_timeout_seconds", "worker_batching_window_seconds"]
                .iter()
                .map(|v| ((*v).to_owned(), format!("var.{v}")))
                .collect();
            let need =
                match render_module(module, &first).and_then(|rendered| need(&rendered, queue)) {
                    Ok(need) => need,
                    Err(e) => {
                        violations.push(format!("{at} with {scenario}: {e}"));
                        continue;
                    }
                };
            // (retention, whether the preconditions must hold there)
            let probes = if need <= SQS_MAX_RETENTION {
                vec![(need, true), (need - 1.0, false)]
            } else {
                vec![(SQS_MAX_RETENTION, false)]
            };
            let mut second = options(vars);
            second.exprs = vec![("holds".to_owned(), condition.clone())];
            second.variants = probes
                .iter()
                .map(|(r, _)| (RETENTION.to_owned(), r.to_string()))
                .collect();
            let rendered = match render_module(module, &second) {
                Ok(r) => r,
                Err(e) => {
                    violations.push(format!(
                        "{at}: the preconditions do not render with {scenario}: {e}"
                    ));
                    continue;
                }
            };
            for (retention, must_hold) in probes {
                let with = format!("{scenario}, {RETENTION} = {retention}");
                let holds = match variant(&rendered, RETENTION, &retention.to_string()) {
                    Some(Ok(r)) => r["exprs"]["holds"].as_bool(),
                    Some(Err((error, _))) => {
                        violations.push(format!("{at}: {with} does not render: {error}"));
                        continue;
                    }
                    None => None,
                };
                match (holds, must_hold) {
                    (Some(true), true) | (Some(false), false) => {}
                    (Some(false), true) => violations.push(format!(
                        "{at}: the preconditions refuse {with}, which covers the need (FIFO ? 0 : {delay}) + maxReceiveCount x max(visibility timeout, batching window + worker timeout + {delay}) = {need}",
                        delay = MAX_QUEUE_DELAY.as_secs()
                    )),
                    (Some(true), false) => violations.push(format!(
                        "{at}: {with} is not refused, short of the need (FIFO ? 0 : {delay}) + maxReceiveCount x max(visibility timeout, batching window + worker timeout + {delay}) = {need}: SQS would delete a job before it reaches the dead-letter queue",
                        delay = MAX_QUEUE_DELAY.as_secs()
                    )),
                    (None, _) => violations.push(format!(
                        "{at}: the preconditions do not render to a boolean with {with}"
                    )),
                }
            }
        }
    }
    violations
}

// Negative checks

/// A queue that dead-letters, with the rule as terraform/ has it, for each test to break.
const SNIPPET: &str = r#"
variable "ordering" {
  type    = string
  default = "none"
}
variable "worker_timeout_seconds" {
  type    = number
  default = 60
}
variable "worker_batching_window_seconds" {
  type    = number
  default = 0
}
variable "worker_batch_size" {
  type    = number
  default = 10
}
variable "max_receive_count" {
  type    = number
  default = 11
}
variable "ordered_max_receive_count" {
  type    = number
  default = 250
}
variable "fanout_message_retention_seconds" {
  type    = number
  default = 345600
}
locals {
  ordered  = var.ordering == "per_room"
  receives = local.ordered ? var.ordered_max_receive_count : var.max_receive_count
  delay    = 900
  need     = (local.ordered ? 0 : local.delay) + local.receives * max(6 * var.worker_timeout_seconds, var.worker_batching_window_seconds + var.worker_timeout_seconds + local.delay)
}
resource "aws_sqs_queue" "dlq" {
  name = "x-dlq"
}
resource "aws_sqs_queue" "q" {
  name                       = "x-q"
  fifo_queue                 = local.ordered
  visibility_timeout_seconds = 6 * var.worker_timeout_seconds
  message_retention_seconds  = var.fanout_message_retention_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = local.receives
  })
  lifecycle {
    precondition {
      condition     = CONDITION
      error_message = "too short"
    }
  }
}
"#;

fn with_condition(condition: &str) -> Module {
    Module::parse_snippet("retention.tf", &SNIPPET.replace("CONDITION", condition))
}

#[test]
fn retention_checker_accepts_the_need_and_reports_less_or_more() {
    assert_clean(
        "the need",
        check_retention(&with_condition(
            "var.fanout_message_retention_seconds >= local.need",
        )),
    );
    // The issue's finding: nothing but the variable's own 60 s minimum.
    assert_reports(
        &check_retention(&Module::parse_snippet(
            "retention.tf",
            &SNIPPET.replace(
                "  lifecycle {\n    precondition {\n      condition     = CONDITION\n      error_message = \"too short\"\n    }\n  }\n",
                "",
            ),
        )),
        &["aws_sqs_queue.q (retention.tf): no lifecycle precondition"],
    );
    // Without the retry job's initial delay: 900 s short on a standard queue only.
    let no_delay = check_retention(&with_condition(
        "var.fanout_message_retention_seconds >= local.need - (local.ordered ? 0 : local.delay)",
    ));
    assert_reports(
        &no_delay,
        &["fanout_message_retention_seconds = 11459 is not refused"],
    );
    assert!(
        !no_delay.iter().any(|v| v.contains("ordering = per_room")),
        "{no_delay:#?}"
    );
    // The delays without the redelivery after a dead invocation (6 x the timeout).
    assert_reports(
        &check_retention(&with_condition(
            "var.fanout_message_retention_seconds >= (local.ordered ? 0 : local.delay) + local.receives * (var.worker_batching_window_seconds + var.worker_timeout_seconds + local.delay)",
        )),
        &["worker_timeout_seconds = 900, fanout_message_retention_seconds = 60299 is not refused"],
    );
    // Stricter than needed.
    assert_reports(
        &check_retention(&with_condition(
            "var.fanout_message_retention_seconds >= 2 * local.need",
        )),
        &["the preconditions refuse the defaults, fanout_message_retention_seconds = 11460"],
    );
    assert_reports(
        &check_retention(&Module::parse_snippet("none.tf", "locals {\n  a = 1\n}\n")),
        &["no aws_sqs_queue sets a redrive_policy"],
    );
}
