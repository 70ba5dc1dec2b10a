//! Per-room order: with `ordering = "per_room"` the queue the worker consumes and its dead-letter
//! queue are SQS FIFO queues named `.fifo` (SQS requires it, and `SqsQueue` tells a FIFO queue
//! by its URL, so the functions' queue URLs end so too), the fan-out queue is high-throughput
//! (per message group) with content-based deduplication off (the code sends its own
//! deduplication ids), SQS parks a job after `ordered_max_receive_count` receives (by default
//! computed: [`ordered_receives_needed`], at most SQS's 1000) and rooms are not split. Terraform
//! itself refuses what would break that or fail at apply: an explicit room split (with the
//! issue's message), a batch above 10 or a batching window on the FIFO event source (or they must
//! render harmless), an explicit receive count below the need, and a need above 1000 (saying what
//! to change). With `ordering = "none"` none of it leaks: standard queues, `max_receive_count`,
//! rooms split as `room_split_ways` says.
//!
//! Every value is Terraform's ([`crate::render`]). The queues and the worker are found as the
//! visibility check finds them: the queue whose rendered ARN an event source mapping's
//! `event_source_arn` is, the dead-letter queue whose ARN that queue's rendered redrive policy
//! names, and the function the mapping's `function_name` is.

use serde_json::Value;

use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Labelled, Module};
use crate::render::{RenderOptions, instance_values, render_module, variant};

const ORDERING: &str = "ordering";
const PER_ROOM: &str = "per_room";
const NONE: &str = "none";

/// What SQS requires a FIFO queue's name to end with, and how `SqsQueue` tells one by its URL.
const FIFO_SUFFIX: &str = ".fifo";

/// The refusal of a room split with per_room, as the issue words it.
const SPLIT_REFUSAL: &str =
    "ordering = \"per_room\" runs each room's message as one job in order; set room_split_ways = 1";

/// The largest batch Lambda's SQS event source takes from a FIFO queue.
const FIFO_MAX_BATCH: f64 = 10.0;

/// The variables the rules are about; a module without one of them cannot be checked.
const VARIABLES: &[&str] = &[
    ORDERING,
    "room_split_ways",
    "max_receive_count",
    "ordered_max_receive_count",
    "worker_batch_size",
    "worker_batching_window_seconds",
    "retry_budget_seconds",
    "worker_timeout_seconds",
];

/// SQS's largest `maxReceiveCount`.
const SQS_MAX_RECEIVE_COUNT: f64 = 1000.0;

/// The variables whose values the rules are computed from, rendered as `exprs` of the same name.
const EXPRS: &[&str] = &[
    "max_receive_count",
    "ordered_max_receive_count",
    "worker_batch_size",
    "retry_budget_seconds",
    "worker_timeout_seconds",
];

/// A variable of a rendering (`None` when null or not a number).
fn number(rendered: &Value, name: &str) -> Option<f64> {
    rendered["exprs"][name].as_f64()
}

/// Receives a per_room job may need before its turn ends: it keeps its FIFO message until done,
/// so it is received once per invocation that holds it, `ceil(retry_budget_seconds /
/// worker_timeout_seconds) + 10` times when a member keeps failing for the whole retry budget;
/// and SQS hands out up to `worker_batch_size` messages of a room at once, those behind a held
/// one going back unrun with each receive counted, so one waiting behind held ones is received
/// `worker_batch_size` times as often.
fn ordered_receives_needed(rendered: &Value) -> Option<f64> {
    let batch = number(rendered, "worker_batch_size")?;
    let budget = number(rendered, "retry_budget_seconds")?;
    let timeout = number(rendered, "worker_timeout_seconds")?;
    Some(batch * ((budget / timeout).ceil() + 10.0))
}

/// The redrive policy's `maxReceiveCount` a rendering must have: `max_receive_count` with
/// ordering = "none"; with per_room `ordered_max_receive_count`, or when it is null the need, at
/// most 1000.
fn expected_receives(rendered: &Value, per_room: bool) -> Option<f64> {
    if !per_room {
        return number(rendered, "max_receive_count");
    }
    match &rendered["exprs"]["ordered_max_receive_count"] {
        Value::Null => ordered_receives_needed(rendered).map(|n| n.min(SQS_MAX_RECEIVE_COUNT)),
        explicit => explicit.as_f64(),
    }
}

/// Where [`expected_receives`] comes from, for the violations.
fn receives_rule(per_room: bool) -> &'static str {
    if per_room {
        "var.ordered_max_receive_count, or when null min(1000, worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10))"
    } else {
        "var.max_receive_count"
    }
}

/// A rendered instance of a resource of the module.
#[derive(Clone)]
struct Found<'m> {
    resource: Labelled<'m>,
    address: String,
}

impl Found<'_> {
    fn at(&self) -> String {
        format!("{} ({})", self.address, self.resource.file)
    }

    /// The rendered attribute, `None` when the block does not set it or it renders to null.
    fn get<'r>(&self, rendered: &'r Value, attribute: &str) -> Option<&'r Value> {
        instance_values(rendered, &self.resource.spec(attribute))
            .get(&self.address)
            .filter(|v| !v.is_null())
    }

    fn get_str<'r>(&self, rendered: &'r Value, attribute: &str) -> Option<&'r str> {
        self.get(rendered, attribute).and_then(Value::as_str)
    }
}

/// What each rendering is asked: the attributes that tie the queues, the mappings and the
/// functions together and those the checks read, where the blocks set them (`arn` and `url` are
/// computed).
fn specs(resources: &[Labelled<'_>]) -> Vec<String> {
    let mut specs = Vec::new();
    for resource in resources {
        let (computed, arguments): (&[&str], &[&str]) = match resource.kind {
            "aws_sqs_queue" => (
                &["arn", "url"],
                &[
                    "name",
                    "fifo_queue",
                    "content_based_deduplication",
                    "deduplication_scope",
                    "fifo_throughput_limit",
                    "redrive_policy",
                ],
            ),
            "aws_lambda_event_source_mapping" => (
                &[],
                &[
                    "event_source_arn",
                    "function_name",
                    "batch_size",
                    "maximum_batching_window_in_seconds",
                ],
            ),
            "aws_lambda_function" => (&["arn"], &["function_name", "environment"]),
            _ => continue,
        };
        specs.extend(computed.iter().map(|a| resource.spec(a)));
        specs.extend(
            arguments
                .iter()
                .filter(|a| resource.sets(a))
                .map(|a| resource.spec(a)),
        );
    }
    specs
}

/// The instance of a resource of `kind` one of whose `attributes` renders to `wanted`.
fn find<'m>(
    rendered: &Value,
    resources: &[Labelled<'m>],
    kind: &str,
    attributes: &[&str],
    wanted: &str,
) -> Option<Found<'m>> {
    resources
        .iter()
        .filter(|r| r.kind == kind)
        .find_map(|resource| {
            attributes.iter().find_map(|attribute| {
                instance_values(rendered, &resource.spec(attribute))
                    .iter()
                    .find(|(_, value)| value.as_str() == Some(wanted))
                    .map(|(address, _)| Found {
                        resource: *resource,
                        address: address.clone(),
                    })
            })
        })
}

/// A queue an event source mapping consumes, and the function the mapping invokes (when it is
/// one of the module's).
struct Consumer<'m> {
    mapping: Found<'m>,
    queue: Found<'m>,
    function: Option<Found<'m>>,
}

fn consumers<'m>(rendered: &Value, resources: &[Labelled<'m>]) -> Vec<Consumer<'m>> {
    let mut found = Vec::new();
    for resource in resources
        .iter()
        .filter(|r| r.kind == "aws_lambda_event_source_mapping")
    {
        for (address, source) in instance_values(rendered, &resource.spec("event_source_arn")) {
            let Some(queue) = source
                .as_str()
                .and_then(|arn| find(rendered, resources, "aws_sqs_queue", &["arn"], arn))
            else {
                continue;
            };
            let mapping = Found {
                resource: *resource,
                address: address.clone(),
            };
            let function = mapping.get_str(rendered, "function_name").and_then(|f| {
                find(
                    rendered,
                    resources,
                    "aws_lambda_function",
                    &["arn", "function_name"],
                    f,
                )
            });
            found.push(Consumer {
                mapping,
                queue,
                function,
            });
        }
    }
    found
}

/// A function instance's rendered environment variable (an `environment` block renders as a
/// list of one object).
fn environment<'r>(rendered: &'r Value, function: &Found<'_>, name: &str) -> Option<&'r str> {
    function.get(rendered, "environment")?[0]["variables"][name].as_str()
}

/// The queue is FIFO (per_room) or standard (none), with the attributes that go with it.
/// `fan_out`: the queue the worker consumes (high-throughput, no content-based deduplication),
/// not its dead-letter queue.
fn check_queue(
    rendered: &Value,
    queue: &Found<'_>,
    per_room: bool,
    fan_out: bool,
    scenario: &str,
    violations: &mut Vec<String>,
) {
    let at = queue.at();
    let fifo = queue
        .get(rendered, "fifo_queue")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let name = queue.get_str(rendered, "name");
    let suffixed = name.is_some_and(|n| n.ends_with(FIFO_SUFFIX));
    let attribute = |a: &str| queue.get(rendered, a).cloned();
    if per_room {
        if !fifo {
            violations.push(if fan_out {
                format!("{at}: not a FIFO queue with {scenario} (fifo_queue renders to false): a room's jobs would not be kept in order")
            } else {
                format!("{at}: the dead-letter queue is not a FIFO queue with {scenario} (fifo_queue renders to false): SQS requires a FIFO queue's dead-letter queue to be FIFO")
            });
        }
        if !suffixed {
            violations.push(format!(
                "{at}: name renders to {name:?} with {scenario}: SQS requires a FIFO queue's name to end in {FIFO_SUFFIX}, and SqsQueue tells a FIFO queue by its URL"
            ));
        }
        if !fan_out {
            return;
        }
        if attribute("content_based_deduplication") == Some(Value::Bool(true)) {
            violations.push(format!(
                "{at}: content_based_deduplication is on with {scenario}: SqsQueue sends its own deduplication ids, and two jobs with the same body are two messages"
            ));
        }
        let scope = attribute("deduplication_scope");
        let limit = attribute("fifo_throughput_limit");
        if scope.as_ref().and_then(Value::as_str) != Some("messageGroup")
            || limit.as_ref().and_then(Value::as_str) != Some("perMessageGroupId")
        {
            violations.push(format!(
                "{at}: not a high-throughput FIFO queue with {scenario} (deduplication_scope {scope:?}, fifo_throughput_limit {limit:?}): want \"messageGroup\" and \"perMessageGroupId\", so the quotas apply per room rather than to the whole queue"
            ));
        }
    } else {
        if fifo || suffixed {
            violations.push(format!(
                "{at}: a FIFO queue with {scenario} (fifo_queue {fifo}, name {name:?}): ordering = \"none\" keeps the standard queue"
            ));
        }
        for fifo_only in [
            "content_based_deduplication",
            "deduplication_scope",
            "fifo_throughput_limit",
        ] {
            match attribute(fifo_only) {
                None | Some(Value::Bool(false)) => {}
                Some(value) => violations.push(format!(
                    "{at}: {fifo_only} renders to {value} with {scenario}: an attribute of FIFO queues only, which SQS refuses on a standard queue"
                )),
            }
        }
    }
}

/// What one rendering (with `scenario` in force) must say, in the mode `per_room` says: the
/// queues, the redrive policy's receive count ([`expected_receives`] of the rendering's
/// variables), the event source and the worker's room split; and every function's queue URLs.
fn check_rendering(
    rendered: &Value,
    resources: &[Labelled<'_>],
    per_room: bool,
    scenario: &str,
) -> Vec<String> {
    let mut violations = Vec::new();
    let receives = expected_receives(rendered, per_room);
    let consumers = consumers(rendered, resources);
    if consumers.is_empty() {
        violations.push(format!(
            "no aws_lambda_event_source_mapping consumes an aws_sqs_queue of the module with {scenario}: nothing to check"
        ));
    }
    for consumer in &consumers {
        let queue_at = consumer.queue.at();
        check_queue(
            rendered,
            &consumer.queue,
            per_room,
            true,
            scenario,
            &mut violations,
        );

        let policy = consumer
            .queue
            .get_str(rendered, "redrive_policy")
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        match policy {
            None => violations.push(format!(
                "{queue_at}: no redrive_policy (JSON) with {scenario}: a job that keeps failing would never be parked"
            )),
            Some(policy) => {
                let target = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
                match find(rendered, resources, "aws_sqs_queue", &["arn"], target) {
                    Some(dlq) => check_queue(
                        rendered,
                        &dlq,
                        per_room,
                        false,
                        scenario,
                        &mut violations,
                    ),
                    None => violations.push(format!(
                        "{queue_at}: the redrive policy's deadLetterTargetArn {target:?} is no aws_sqs_queue of the module with {scenario}"
                    )),
                }
                let count = policy["maxReceiveCount"].as_f64();
                if receives.is_none() || count != receives {
                    violations.push(format!(
                        "{queue_at}: the redrive policy's maxReceiveCount renders to {} with {scenario}, not {} ({}){}",
                        policy["maxReceiveCount"],
                        receives.map_or("unknown".to_owned(), |r| r.to_string()),
                        receives_rule(per_room),
                        if per_room {
                            ": a FIFO job is received once per invocation that holds it or a message of its room before it in a batch, far more often than a standard queue's"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }

        let mapping_at = consumer.mapping.at();
        if per_room {
            // Lambda's SQS event source defaults to 10 when batch_size is not set.
            let batch = consumer
                .mapping
                .get(rendered, "batch_size")
                .and_then(Value::as_f64)
                .unwrap_or(FIFO_MAX_BATCH);
            if batch > FIFO_MAX_BATCH {
                violations.push(format!(
                    "{mapping_at}: batch_size renders to {batch} with {scenario}: Lambda takes at most {FIFO_MAX_BATCH} messages a batch from a FIFO queue, so apply would fail"
                ));
            }
            if let Some(window) = consumer
                .mapping
                .get(rendered, "maximum_batching_window_in_seconds")
                .and_then(Value::as_f64)
                .filter(|w| *w > 0.0)
            {
                violations.push(format!(
                    "{mapping_at}: maximum_batching_window_in_seconds renders to {window} with {scenario}: Lambda has no batching window for FIFO queues, so apply would fail"
                ));
            }
        }
        match &consumer.function {
            None => violations.push(format!(
                "{mapping_at}: its function_name is no aws_lambda_function of the module with {scenario}"
            )),
            Some(worker) if per_room => {
                if let Some(ways) = environment(rendered, worker, "ROOM_SPLIT_WAYS")
                    .filter(|w| *w != "1")
                {
                    violations.push(format!(
                        "{}: ROOM_SPLIT_WAYS renders to \"{ways}\" with {scenario}: the parts of a split room run side by side and deliver out of order",
                        worker.at()
                    ));
                }
            }
            Some(_) => {}
        }
    }

    // SqsQueue tells a FIFO queue by its URL: every queue URL a function gets must say so.
    for resource in resources.iter().filter(|r| r.kind == "aws_lambda_function") {
        for (address, environment) in instance_values(rendered, &resource.spec("environment")) {
            let Some(variables) = environment[0]["variables"].as_object() else {
                continue;
            };
            for (name, url) in variables {
                let Some(url) = url.as_str().filter(|_| name.ends_with("_QUEUE_URL")) else {
                    continue;
                };
                if url.ends_with(FIFO_SUFFIX) != per_room {
                    violations.push(format!(
                        "{address} ({}): {name} renders to \"{url}\" with {scenario}: SqsQueue takes a queue for FIFO exactly when its URL ends in {FIFO_SUFFIX}",
                        resource.file
                    ));
                }
            }
        }
    }
    violations
}

/// A variant a rule may handle either way: Terraform refuses it by `variable`'s validation, or
/// it renders to something [`check_rendering`] accepts.
fn refused_or_harmless(
    base: &Value,
    resources: &[Labelled<'_>],
    (name, value): (&str, &str),
    scenario: &str,
) -> Vec<String> {
    let with = format!("{scenario}, {name} = {value}");
    match variant(base, name, value) {
        None => vec![format!("{with} was not rendered")],
        Some(Err((_, invalid))) if invalid.iter().any(|v| v == name) => Vec::new(),
        Some(Err((error, _))) => vec![format!(
            "{with} fails to render, but not by the validation of var.{name}: {error}"
        )],
        Some(Ok(rendered)) => check_rendering(rendered, resources, true, &with),
    }
}

/// The rendering of the variant `name = value`, or a violation saying why there is none.
fn rendered_variant<'r>(
    base: &'r Value,
    (name, value): (&str, &str),
    with: &str,
    violations: &mut Vec<String>,
) -> Option<&'r Value> {
    match variant(base, name, value) {
        Some(Ok(rendered)) => Some(rendered),
        Some(Err((error, _))) => {
            violations.push(format!("{with} does not render: {error}"));
            None
        }
        None => {
            violations.push(format!("{with} was not rendered"));
            None
        }
    }
}

/// The rules of both modes, as Terraform renders the module in each, and the variants that must
/// be refused or honoured.
pub fn check_ordering(module: &Module) -> Vec<String> {
    let declared = module.variables();
    let missing: Vec<String> = VARIABLES
        .iter()
        .filter(|v| !declared.contains_key(**v))
        .map(|v| format!("var.{v} is not declared: the per-room order's settings are incomplete"))
        .collect();
    if !missing.is_empty() {
        return missing;
    }
    let resources = module.resources();
    let options = |ordering: &str, variants: &[(&str, &str)]| RenderOptions {
        vars: vec![(ORDERING.to_owned(), ordering.to_owned())],
        exprs: EXPRS
            .iter()
            .map(|n| ((*n).to_owned(), format!("var.{n}")))
            .collect(),
        variants: variants
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        ..RenderOptions::attributes("dev", specs(&resources))
    };
    let mut violations = Vec::new();

    // ordering = "none": standard queues; rooms split as asked.
    let scenario = format!("{ORDERING} = \"{NONE}\"");
    let split = ("room_split_ways", "2");
    let receives = ("max_receive_count", "7");
    match render_module(module, &options(NONE, &[split, receives])) {
        Err(e) => violations.push(format!("the module does not render with {scenario}: {e}")),
        Ok(rendered) => {
            violations.extend(check_rendering(&rendered, &resources, false, &scenario));
            let with = format!("with {scenario}, room_split_ways = 2");
            if let Some(r) = rendered_variant(&rendered, split, &with, &mut violations) {
                let ways: Vec<_> = consumers(r, &resources)
                    .iter()
                    .filter_map(|c| c.function.as_ref())
                    .map(|f| environment(r, f, "ROOM_SPLIT_WAYS"))
                    .collect();
                if ways.iter().any(|w| *w != Some("2")) {
                    violations.push(format!(
                        "{with}: the worker's ROOM_SPLIT_WAYS renders to {ways:?}, not \"2\""
                    ));
                }
            }
            let with = format!("{scenario}, {} = {}", receives.0, receives.1);
            if let Some(r) = rendered_variant(&rendered, receives, &with, &mut violations) {
                violations.extend(check_rendering(r, &resources, false, &with));
                if number(r, receives.0) != receives.1.parse().ok() {
                    violations.push(format!("{with}: var.{} does not render to it", receives.0));
                }
            }
        }
    }

    // ordering = "per_room": FIFO queues, and Terraform refuses what would break them.
    let scenario = format!("{ORDERING} = \"{PER_ROOM}\"");
    let unsplit = ("room_split_ways", "1");
    let receives = ("ordered_max_receive_count", "500");
    let refusable = [
        ("worker_batch_size", "11"),
        ("worker_batching_window_seconds", "1"),
    ];
    let mut variants = vec![split, unsplit, receives];
    variants.extend(refusable);
    let rendered = match render_module(module, &options(PER_ROOM, &variants)) {
        Ok(rendered) => rendered,
        Err(e) => {
            violations.push(format!("the module does not render with {scenario}: {e}"));
            return violations;
        }
    };
    violations.extend(check_rendering(&rendered, &resources, true, &scenario));
    // By default the count follows worker_batch_size, retry_budget_seconds and
    // worker_timeout_seconds; a fixed default goes stale as soon as one of them changes.
    let explicit = &rendered["exprs"]["ordered_max_receive_count"];
    if !explicit.is_null() {
        violations.push(format!(
            "var.ordered_max_receive_count defaults to {explicit}, not null: the default must be computed from worker_batch_size, retry_budget_seconds and worker_timeout_seconds"
        ));
    }
    match variant(&rendered, split.0, split.1) {
        Some(Err((error, _))) if error.contains(SPLIT_REFUSAL) => {}
        Some(Err((error, _))) => violations.push(format!(
            "with {scenario}, room_split_ways = 2 is refused, but not with \"{SPLIT_REFUSAL}\": {error}"
        )),
        Some(Ok(_)) => violations.push(format!(
            "with {scenario}, room_split_ways = 2 is not refused: Terraform must say \"{SPLIT_REFUSAL}\""
        )),
        None => violations.push(format!("with {scenario}, room_split_ways = 2 was not rendered")),
    }
    for (name, value) in [unsplit, receives] {
        let with = format!("{scenario}, {name} = {value}");
        if let Some(r) = rendered_variant(&rendered, (name, value), &with, &mut violations) {
            violations.extend(check_rendering(r, &resources, true, &with));
        }
    }
    for refused in refusable {
        violations.extend(refused_or_harmless(
            &rendered, &resources, refused, &scenario,
        ));
    }

    // The need's bounds, from the defaults: an explicit count one below it is refused, and so is
    // a retry budget whose need passes 1000 (the largest need at most 1000 renders), or SQS would
    // park held and waiting jobs, without a reason, before their budget ends. With the defaults
    // (batch 10, timeout 60 s, need 250): 249 refused; budget 5400 renders 1000, 5460 (1010)
    // refused.
    let (Some(need), Some(batch), Some(timeout)) = (
        ordered_receives_needed(&rendered),
        number(&rendered, "worker_batch_size"),
        number(&rendered, "worker_timeout_seconds"),
    ) else {
        violations.push(format!(
            "var.worker_batch_size, var.retry_budget_seconds or var.worker_timeout_seconds does not render to a number with {scenario}"
        ));
        return violations;
    };
    let below = (need - 1.0).to_string();
    let out_of_range = (SQS_MAX_RECEIVE_COUNT + 1.0).to_string();
    let fitting = (SQS_MAX_RECEIVE_COUNT / batch).floor();
    let largest = (timeout * (fitting - 10.0)).to_string();
    let beyond = (timeout * (fitting - 9.0)).to_string();
    let need_rule =
        "worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10)";
    // (variable, value, why it must be refused; None: it must render).
    let bounds = [
        (
            "ordered_max_receive_count",
            below.as_str(),
            Some(format!(
                "an explicit ordered_max_receive_count below the need {need_rule} = {need}"
            )),
        ),
        (
            "ordered_max_receive_count",
            out_of_range.as_str(),
            Some(format!(
                "SQS takes a maxReceiveCount of at most {SQS_MAX_RECEIVE_COUNT}"
            )),
        ),
        ("retry_budget_seconds", largest.as_str(), None),
        (
            "retry_budget_seconds",
            beyond.as_str(),
            Some(format!(
                "held and waiting jobs need {need_rule} = {} receives, more than SQS's {SQS_MAX_RECEIVE_COUNT}",
                batch * (fitting + 1.0)
            )),
        ),
    ];
    let asked: Vec<(&str, &str)> = bounds.iter().map(|(n, v, _)| (*n, *v)).collect();
    let rendered = match render_module(module, &options(PER_ROOM, &asked)) {
        Ok(rendered) => rendered,
        Err(e) => {
            violations.push(format!("the module does not render with {scenario}: {e}"));
            return violations;
        }
    };
    // The validations that may refuse a count or a need that does not fit.
    let covering = [
        "ordered_max_receive_count",
        "worker_batch_size",
        "retry_budget_seconds",
        "worker_timeout_seconds",
    ];
    for (name, value, why) in bounds {
        let with = format!("{scenario}, {name} = {value}");
        let Some(why) = why else {
            if let Some(r) = rendered_variant(&rendered, (name, value), &with, &mut violations) {
                violations.extend(check_rendering(r, &resources, true, &with));
            }
            continue;
        };
        match variant(&rendered, name, value) {
            Some(Err((error, invalid)))
                if invalid.iter().any(|v| covering.contains(&v.as_str())) =>
            {
                // Raising the count cannot meet a need above 1000: the refusal must say what to
                // change instead.
                let says = covering[1..].iter().all(|v| error.contains(v));
                if value == beyond && !says {
                    violations.push(format!(
                        "{with} is refused, but the message does not say to lower worker_batch_size or retry_budget_seconds or raise worker_timeout_seconds: {error}"
                    ));
                }
            }
            Some(Err((error, _))) => violations.push(format!(
                "{with} is refused, but not by the validation of var.{}: {error}",
                covering.join(", var.")
            )),
            Some(Ok(_)) => violations.push(format!("{with} is not refused: {why}")),
            None => violations.push(format!("{with} was not rendered")),
        }
    }
    violations
}

// Negative checks

/// A module with the per-room rules, as terraform/ has them, for each test to break.
const ORDERED_SNIPPET: &str = r#"
variable "ordering" {
  type        = string
  default     = "none"
  description = "o"
  validation {
    condition     = contains(["none", "per_room"], var.ordering)
    error_message = "ordering"
  }
}
variable "worker_timeout_seconds" {
  type        = number
  default     = 60
  description = "t"
}
variable "retry_budget_seconds" {
  type        = number
  default     = 900
  description = "b"
}
variable "max_receive_count" {
  type        = number
  default     = 11
  description = "m"
}
variable "ordered_max_receive_count" {
  type        = number
  default     = null
  description = "om"
  validation {
    condition     = var.ordered_max_receive_count == null ? true : (var.ordered_max_receive_count >= 10 && var.ordered_max_receive_count <= 1000)
    error_message = "range"
  }
  validation {
    condition     = var.ordering != "per_room" || (var.ordered_max_receive_count == null ? var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10) <= 1000 : var.ordered_max_receive_count >= var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10))
    error_message = "cover the retry budget; above 1000: lower worker_batch_size or retry_budget_seconds, or raise worker_timeout_seconds"
  }
}
variable "worker_batch_size" {
  type        = number
  default     = 10
  description = "bs"
  validation {
    condition     = var.ordering != "per_room" || var.worker_batch_size <= 10
    error_message = "at most 10"
  }
}
variable "worker_batching_window_seconds" {
  type        = number
  default     = 0
  description = "bw"
  validation {
    condition     = var.ordering != "per_room" || var.worker_batching_window_seconds == 0
    error_message = "no window"
  }
}
variable "room_split_ways" {
  type        = number
  default     = null
  description = "s"
  validation {
    condition     = var.ordering != "per_room" || var.room_split_ways == null || var.room_split_ways == 1
    error_message = "ordering = \"per_room\" runs each room's message as one job in order; set room_split_ways = 1"
  }
}
locals {
  ordered  = var.ordering == "per_room"
  suffix   = local.ordered ? ".fifo" : ""
  needed   = var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10)
  receives = var.ordered_max_receive_count != null ? var.ordered_max_receive_count : min(1000, local.needed)
}
resource "aws_sqs_queue" "dlq" {
  name       = "x-dlq${local.suffix}"
  fifo_queue = local.ordered
}
resource "aws_sqs_queue" "q" {
  name                        = "x-q${local.suffix}"
  fifo_queue                  = local.ordered
  content_based_deduplication = local.ordered ? false : null
  deduplication_scope         = local.ordered ? "messageGroup" : null
  fifo_throughput_limit       = local.ordered ? "perMessageGroupId" : null
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = local.ordered ? local.receives : var.max_receive_count
  })
}
resource "aws_lambda_function" "w" {
  function_name = "x-worker"
  environment {
    variables = {
      FANOUT_QUEUE_URL      = aws_sqs_queue.q.url
      DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dlq.url
      ROOM_SPLIT_WAYS       = tostring(coalesce(var.room_split_ways, local.ordered ? 1 : 2))
    }
  }
}
resource "aws_lambda_event_source_mapping" "m" {
  event_source_arn                   = aws_sqs_queue.q.arn
  function_name                      = aws_lambda_function.w.arn
  batch_size                         = var.worker_batch_size
  maximum_batching_window_in_seconds = local.ordered ? null : var.worker_batching_window_seconds
}
"#;

/// [`ORDERED_SNIPPET`] with each `(from, to)` replaced (each `from` must be there).
fn ordered_with(changes: &[(&str, &str)]) -> Module {
    let mut src = ORDERED_SNIPPET.to_owned();
    for (from, to) in changes {
        assert!(src.contains(from), "the snippet has no {from:?}");
        src = src.replace(from, to);
    }
    Module::parse_snippet("ordering.tf", &src)
}

#[test]
fn ordering_checker_accepts_the_rules_and_reports_each_break() {
    assert_clean("the per-room rules", check_ordering(&ordered_with(&[])));

    // Standard queues, or a standard dead-letter queue, with per_room.
    assert_reports(
        &check_ordering(&ordered_with(&[
            ("name       = \"x-dlq${local.suffix}\"", "name = \"x-dlq\""),
            (
                "name                        = \"x-q${local.suffix}\"",
                "name = \"x-q\"",
            ),
        ])),
        &[
            "aws_sqs_queue.q (ordering.tf): name renders to Some(\"x-q\") with ordering = \"per_room\"",
            "aws_sqs_queue.dlq (ordering.tf): name renders to Some(\"x-dlq\")",
            "FANOUT_QUEUE_URL renders to \"https://sqs.us-east-1.amazonaws.com/123456789012/x-q\"",
            "DEAD_LETTER_QUEUE_URL renders to",
        ],
    );
    assert_reports(
        &check_ordering(&ordered_with(&[(
            "name       = \"x-dlq${local.suffix}\"\n  fifo_queue = local.ordered",
            "name = \"x-dlq${local.suffix}\"",
        )])),
        &["the dead-letter queue is not a FIFO queue with ordering = \"per_room\""],
    );

    // The standard queue's receive count with per_room; FIFO attributes on a standard queue;
    // content-based deduplication on; not high-throughput.
    assert_reports(
        &check_ordering(&ordered_with(&[
            (
                "maxReceiveCount     = local.ordered ? local.receives : var.max_receive_count",
                "maxReceiveCount = var.max_receive_count",
            ),
            (
                "deduplication_scope         = local.ordered ? \"messageGroup\" : null",
                "deduplication_scope = \"messageGroup\"",
            ),
            (
                "content_based_deduplication = local.ordered ? false : null",
                "content_based_deduplication = local.ordered",
            ),
            (
                "fifo_throughput_limit       = local.ordered ? \"perMessageGroupId\" : null",
                "",
            ),
        ])),
        &[
            "maxReceiveCount renders to 11 with ordering = \"per_room\", not 250 (var.ordered_max_receive_count, or when null",
            "maxReceiveCount renders to 11 with ordering = \"per_room\", ordered_max_receive_count = 500, not 500 (",
            "deduplication_scope renders to \"messageGroup\" with ordering = \"none\"",
            "content_based_deduplication is on with ordering = \"per_room\"",
            "not a high-throughput FIFO queue",
        ],
    );

    // Nothing refuses a room split, a batch above 10, a batching window, a receive count short
    // of the need or out of SQS's range, or a need above 1000.
    let unchecked = check_ordering(&ordered_with(&[
        (
            "var.ordering != \"per_room\" || var.room_split_ways == null || var.room_split_ways == 1",
            "var.room_split_ways != 0",
        ),
        (
            "var.ordering != \"per_room\" || var.worker_batch_size <= 10",
            "var.worker_batch_size >= 1",
        ),
        (
            "var.ordering != \"per_room\" || var.worker_batching_window_seconds == 0",
            "var.worker_batching_window_seconds >= 0",
        ),
        (
            "maximum_batching_window_in_seconds = local.ordered ? null : var.worker_batching_window_seconds",
            "maximum_batching_window_in_seconds = var.worker_batching_window_seconds",
        ),
        (
            "var.ordering != \"per_room\" || (var.ordered_max_receive_count == null ? var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10) <= 1000 : var.ordered_max_receive_count >= var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10))",
            "var.ordered_max_receive_count != 0",
        ),
        (
            "(var.ordered_max_receive_count >= 10 && var.ordered_max_receive_count <= 1000)",
            "true",
        ),
    ]));
    assert_reports(
        &unchecked,
        &[
            "room_split_ways = 2 is not refused",
            "batch_size renders to 11 with ordering = \"per_room\", worker_batch_size = 11",
            "maximum_batching_window_in_seconds renders to 1 with ordering = \"per_room\", worker_batching_window_seconds = 1",
            "ordered_max_receive_count = 249 is not refused: an explicit ordered_max_receive_count below the need worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10) = 250",
            "ordered_max_receive_count = 1001 is not refused",
            "retry_budget_seconds = 5460 is not refused: held and waiting jobs need worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10) = 1010 receives",
        ],
    );

    // The rule before batches were counted: a fixed default of 100 and a need of one job's own
    // receives (ceil(retry_budget_seconds / worker_timeout_seconds) + 10), whose refusals do not
    // say what to change.
    assert_reports(
        &check_ordering(&ordered_with(&[
            (
                "default     = null\n  description = \"om\"",
                "default     = 100\n  description = \"om\"",
            ),
            (
                "var.ordering != \"per_room\" || (var.ordered_max_receive_count == null ? var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10) <= 1000 : var.ordered_max_receive_count >= var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10))",
                "var.ordering != \"per_room\" || var.ordered_max_receive_count >= ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10",
            ),
            (
                "cover the retry budget; above 1000: lower worker_batch_size or retry_budget_seconds, or raise worker_timeout_seconds",
                "cover the retry budget",
            ),
        ])),
        &[
            "var.ordered_max_receive_count defaults to 100, not null",
            "ordered_max_receive_count = 249 is not refused",
            "retry_budget_seconds = 5460 is refused, but the message does not say to lower worker_batch_size",
        ],
    );

    // A computed count that leaves out the batch.
    assert_reports(
        &check_ordering(&ordered_with(&[(
            "min(1000, local.needed)",
            "min(1000, ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10)",
        )])),
        &["maxReceiveCount renders to 25 with ordering = \"per_room\", not 250"],
    );

    // A refusal of the room split that does not say what to do; one that leaks into
    // ordering = "none".
    assert_reports(
        &check_ordering(&ordered_with(&[(
            "ordering = \\\"per_room\\\" runs each room's message as one job in order; set room_split_ways = 1",
            "no split",
        )])),
        &["room_split_ways = 2 is refused, but not with"],
    );
    assert_reports(
        &check_ordering(&ordered_with(&[(
            "var.ordering != \"per_room\" || var.room_split_ways == null || var.room_split_ways == 1",
            "var.room_split_ways == null || var.room_split_ways == 1",
        )])),
        &["with ordering = \"none\", room_split_ways = 2 does not render"],
    );

    assert_reports(
        &check_ordering(&Module::parse_snippet("none.tf", "locals {\n  a = 1\n}\n")),
        &["var.ordering is not declared"],
    );
}
