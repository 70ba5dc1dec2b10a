//! A closed job boundary: whoever may send to the fan-out queue decides who receives what, so
//! the queue's policy denies `sqs:SendMessage` to every principal but sendmessage's, publish's
//! and the worker's roles and the producer roles named in `var.producer_role_arns` — exactly
//! those, as Terraform evaluates them; the dead-letter queue, whose jobs are redriven into the
//! fan-out queue, denies it to all but the worker (and only to requests with a principal ARN, so
//! never to SQS's own dead-lettering); and a producer role ARN with a wildcard (which the ARN
//! condition would match other roles with) is refused.

use std::collections::BTreeSet;

use hcl::Expression;

use crate::expr::{first_attr, traversal};
use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Module, attr, literal_str, nested, show};
use crate::render::{RenderOptions, render_module, variant};

/// The roles that must be able to send: the functions that enqueue.
const SENDING_FUNCTIONS: &[&str] = &["sendmessage", "publish", "worker"];

/// A producer role used to check that `producer_role_arns` is honoured.
const EXTRA_PRODUCER: &str = "arn:aws:iam::123456789012:role/backend-announcer";

/// What may send to the dead-letter queue: the worker parks jobs there itself.
const PARKING_FUNCTIONS: &[&str] = &["worker"];

/// A producer role ARN with a wildcard, which the ARN condition would match other roles with.
const WILDCARD_PRODUCERS: &[&str] = &[
    "arn:aws:iam::123456789012:role/*",
    "arn:aws:iam::123456789012:role/backend-?",
];

/// A queue's Deny of `sqs:SendMessage` to everyone but some principals: the expression naming
/// them, and whether the Deny applies only to requests that carry a principal ARN (so that SQS's
/// own dead-lettering, which is no principal's send, is never caught by it).
struct Exempted {
    values: Expression,
    principals_only: bool,
}

/// The expression naming the principals `aws_sqs_queue.{queue}`'s policy exempts from its Deny,
/// or why there is none.
fn exempted(module: &Module, queue: &str) -> Result<Exempted, String> {
    let policies: Vec<_> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_sqs_queue_policy")
        .filter(|r| {
            attr(r.block.body(), "queue_url")
                .and_then(traversal)
                .is_some_and(|(root, segs)| {
                    root == "aws_sqs_queue" && first_attr(&segs) == Some(queue)
                })
        })
        .collect();
    let [policy] = policies.as_slice() else {
        return Err(format!(
            "aws_sqs_queue.{queue} needs exactly one aws_sqs_queue_policy, found {}",
            policies.len()
        ));
    };
    let document = attr(policy.block.body(), "policy")
        .and_then(traversal)
        .and_then(|(root, segs)| {
            (root == "data" && first_attr(&segs) == Some("aws_iam_policy_document"))
                .then(|| segs.get(1).cloned())
                .flatten()
        })
        .and_then(|seg| match seg {
            crate::expr::Seg::Attr(name) => Some(name),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "{}: policy must be data.aws_iam_policy_document.NAME.json",
                policy.address()
            )
        })?;
    let (_, block) = module
        .blocks("data")
        .find(|(_, b)| {
            b.labels().first().map(|l| l.as_str()) == Some("aws_iam_policy_document")
                && b.labels().get(1).map(|l| l.as_str()) == Some(document.as_str())
        })
        .ok_or_else(|| format!("data.aws_iam_policy_document.{document} is not declared"))?;
    for statement in nested(block.body(), "statement") {
        let body = statement.body();
        let denies = attr(body, "effect").and_then(literal_str) == Some("Deny");
        let sends = attr(body, "actions").is_some_and(|a| show(a).contains("sqs:SendMessage"));
        let everyone = nested(body, "principals")
            .any(|p| attr(p.body(), "identifiers").is_some_and(|ids| show(ids).contains("\"*\"")));
        if !(denies && sends && everyone) {
            continue;
        }
        let conditions: Vec<_> = nested(body, "condition").map(|c| c.body()).collect();
        let principals_only = conditions.iter().any(|c| {
            attr(c, "test").and_then(literal_str) == Some("Null")
                && attr(c, "variable").and_then(literal_str) == Some("aws:PrincipalArn")
                && attr(c, "values").is_some_and(|v| show(v).contains("\"false\""))
        });
        for c in conditions {
            let test = attr(c, "test").and_then(literal_str);
            let variable = attr(c, "variable").and_then(literal_str);
            if matches!(test, Some("ArnNotEquals" | "ArnNotLike"))
                && variable == Some("aws:PrincipalArn")
                && let Some(values) = attr(c, "values")
            {
                return Ok(Exempted {
                    values: values.clone(),
                    principals_only,
                });
            }
        }
    }
    Err(format!(
        "data.aws_iam_policy_document.{document} has no statement denying sqs:SendMessage to \"*\" \
         unless aws:PrincipalArn is a known producer"
    ))
}

/// The exempted principals, rendered with `extra` producer roles, against the roles of
/// `functions`, plus `extra` when `producers` (the fan-out queue's, not the DLQ's).
fn check_rendered_producers(
    module: &Module,
    queue: &str,
    values: &Expression,
    functions: &[&str],
    extra: &[&str],
    producers: bool,
) -> Vec<String> {
    let mut options = RenderOptions::new("dev");
    options.dashboards = false;
    let roles: Vec<String> = functions
        .iter()
        .map(|f| format!("aws_iam_role.function[\"{f}\"].arn"))
        .collect();
    options.exprs = vec![
        ("exempted".to_owned(), show(values)),
        ("expected".to_owned(), format!("[{}]", roles.join(", "))),
    ];
    let list: Vec<String> = extra.iter().map(|arn| format!("\"{arn}\"")).collect();
    options.vars.push((
        "producer_role_arns".to_owned(),
        format!("[{}]", list.join(", ")),
    ));
    let rendered = match render_module(module, &options) {
        Ok(rendered) => rendered,
        Err(e) => return vec![format!("the queue policy does not render: {e}")],
    };
    let set = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let got = set(&rendered["exprs"]["exempted"]);
    let mut want = set(&rendered["exprs"]["expected"]);
    if producers {
        want.extend(extra.iter().map(|s| (*s).to_owned()));
    }
    if got == want {
        Vec::new()
    } else {
        vec![format!(
            "aws_sqs_queue.{queue}'s policy lets {got:?} send (with producer_role_arns = {extra:?}); \
             exactly {want:?} may"
        )]
    }
}

/// Terraform refuses a producer role ARN with a wildcard.
fn check_wildcards_refused(module: &Module) -> Vec<String> {
    let mut options = RenderOptions::new("dev");
    options.dashboards = false;
    options.variants = WILDCARD_PRODUCERS
        .iter()
        .map(|arn| ("producer_role_arns".to_owned(), format!("[\"{arn}\"]")))
        .collect();
    let rendered = match render_module(module, &options) {
        Ok(rendered) => rendered,
        Err(e) => return vec![format!("the module does not render: {e}")],
    };
    let mut violations = Vec::new();
    for arn in WILDCARD_PRODUCERS {
        match variant(&rendered, "producer_role_arns", &format!("[\"{arn}\"]")) {
            Some(Err((_, invalid))) if invalid.iter().any(|v| v == "producer_role_arns") => {}
            Some(Err((error, _))) => violations.push(format!(
                "producer_role_arns = [{arn:?}] is refused, but not by its validation: {error}"
            )),
            Some(Ok(_)) => violations.push(format!(
                "producer_role_arns = [{arn:?}] is not refused: the ARN condition takes * and ? as \
                 wildcards, so it would let every matching role send jobs"
            )),
            None => violations.push(format!("producer_role_arns = [{arn:?}] was not rendered")),
        }
    }
    violations
}

/// The queue policy exists, denies everyone else, and exempts exactly the right roles, with and
/// without extra producers.
pub fn check_queue_policy(module: &Module) -> Vec<String> {
    let mut violations = check_wildcards_refused(module);
    for (queue, functions, producers) in [
        ("fanout", SENDING_FUNCTIONS, true),
        ("fanout_dlq", PARKING_FUNCTIONS, false),
    ] {
        match exempted(module, queue) {
            Err(e) => violations.push(e),
            Ok(found) => {
                if !producers && !found.principals_only {
                    violations.push(format!(
                        "aws_sqs_queue.{queue}'s Deny is not limited to requests with a principal \
                         ARN (a Null condition on aws:PrincipalArn): it could catch SQS's own \
                         dead-lettering"
                    ));
                }
                for extra in [&[][..], &[EXTRA_PRODUCER][..]] {
                    violations.extend(check_rendered_producers(
                        module,
                        queue,
                        &found.values,
                        functions,
                        extra,
                        producers,
                    ));
                }
            }
        }
    }
    violations
}

#[test]
fn a_missing_or_too_open_queue_policy_is_reported() {
    let base = r#"
variable "producer_role_arns" {
  type    = list(string)
  default = []
  validation {
    condition     = WILDCARDS
    error_message = "no wildcards"
  }
}
resource "aws_sqs_queue" "fanout_dlq" {
  name = "x-fanout-dlq"
}
resource "aws_sqs_queue_policy" "fanout_dlq" {
  queue_url = aws_sqs_queue.fanout_dlq.id
  policy    = data.aws_iam_policy_document.fanout_dlq.json
}
data "aws_iam_policy_document" "fanout_dlq" {
  statement {
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout_dlq.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = PARKERS
    }
    condition {
      test     = "Null"
      variable = "aws:PrincipalArn"
      values   = ["false"]
    }
  }
}
resource "aws_iam_role" "function" {
  for_each = toset(["connect", "sendmessage", "publish", "worker"])
  name     = "x-${each.key}"
}
resource "aws_sqs_queue" "fanout" {
  name = "x-fanout"
}
resource "aws_sqs_queue_policy" "fanout" {
  queue_url = aws_sqs_queue.fanout.id
  policy    = data.aws_iam_policy_document.fanout_queue.json
}
data "aws_iam_policy_document" "fanout_queue" {
  statement {
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = PRODUCERS
    }
  }
}
"#;
    const NO_WILDCARDS: &str = r#"alltrue([for arn in var.producer_role_arns : !strcontains(arn, "*") && !strcontains(arn, "?")])"#;
    const WORKER: &str = r#"[aws_iam_role.function["worker"].arn]"#;
    let with = |producers: &str, parkers: &str, wildcards: &str| {
        Module::parse_snippet(
            "queue.tf",
            &base
                .replace("PRODUCERS", producers)
                .replace("PARKERS", parkers)
                .replace("WILDCARDS", wildcards),
        )
    };
    let module = |producers: &str| with(producers, WORKER, NO_WILDCARDS);
    let right = r#"concat([for f in ["sendmessage", "publish", "worker"] : aws_iam_role.function[f].arn], var.producer_role_arns)"#;
    assert_clean("the right roles", check_queue_policy(&module(right)));
    assert_reports(
        &check_queue_policy(&module(
            r#"[for f in ["connect", "sendmessage", "publish", "worker"] : aws_iam_role.function[f].arn]"#,
        )),
        &[
            "aws_sqs_queue.fanout's policy lets",
            "x-connect",
            "with producer_role_arns = []",
        ],
    );
    assert_reports(
        &check_queue_policy(&module(
            r#"[for f in ["sendmessage", "publish", "worker"] : aws_iam_role.function[f].arn]"#,
        )),
        &["backend-announcer"],
    );
    assert_reports(
        &check_queue_policy(&module(
            r#"concat([for f in ["sendmessage", "worker"] : aws_iam_role.function[f].arn], var.producer_role_arns)"#,
        )),
        &["x-publish"],
    );
    // The issue's findings: a DLQ anyone may send to, producers that may send to it too, a
    // wildcard producer ARN.
    assert_reports(
        &check_queue_policy(&Module::parse_snippet(
            "queue.tf",
            &base
                .replace("PRODUCERS", right)
                .replace("WILDCARDS", NO_WILDCARDS)
                .replace(
                    "resource \"aws_sqs_queue_policy\" \"fanout_dlq\"",
                    "resource \"aws_sqs_queue_policy\" \"unrelated\"",
                )
                .replace(
                    "queue_url = aws_sqs_queue.fanout_dlq.id",
                    "queue_url = \"elsewhere\"",
                ),
        )),
        &["aws_sqs_queue.fanout_dlq needs exactly one aws_sqs_queue_policy, found 0"],
    );
    assert_reports(
        &check_queue_policy(&with(right, right, NO_WILDCARDS)),
        &["aws_sqs_queue.fanout_dlq's policy lets", "x-publish"],
    );
    assert_reports(
        &check_queue_policy(&with(
            right,
            r#"concat([aws_iam_role.function["worker"].arn], var.producer_role_arns)"#,
            NO_WILDCARDS,
        )),
        &[
            "aws_sqs_queue.fanout_dlq's policy lets",
            "backend-announcer",
        ],
    );
    assert_reports(
        &check_queue_policy(&Module::parse_snippet(
            "queue.tf",
            &base
                .replace("PRODUCERS", right)
                .replace("PARKERS", WORKER)
                .replace("WILDCARDS", NO_WILDCARDS)
                .replace(
                    "      values   = [\"false\"]\n",
                    "      values   = [\"true\"]\n",
                ),
        )),
        &["aws_sqs_queue.fanout_dlq's Deny is not limited to requests with a principal ARN"],
    );
    assert_reports(
        &check_queue_policy(&with(right, WORKER, "length(var.producer_role_arns) >= 0")),
        &[
            "producer_role_arns = [\"arn:aws:iam::123456789012:role/*\"] is not refused",
            "producer_role_arns = [\"arn:aws:iam::123456789012:role/backend-?\"] is not refused",
        ],
    );
    assert_reports(
        &check_queue_policy(&Module::parse_snippet(
            "none.tf",
            "resource \"aws_sqs_queue\" \"fanout\" {\n  name = \"x\"\n}\n",
        )),
        &["needs exactly one aws_sqs_queue_policy"],
    );
}
