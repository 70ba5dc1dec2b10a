//! A closed job boundary: whoever may send to the fan-out queue decides who receives what, so
//! the queue's policy denies `sqs:SendMessage` to every principal but sendmessage's, publish's
//! and the worker's roles and the producer roles named in `var.producer_role_arns` — exactly
//! those, as Terraform evaluates them.

use std::collections::BTreeSet;

use hcl::Expression;

use crate::expr::{first_attr, traversal};
use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Module, attr, literal_str, nested, show};
use crate::render::{RenderOptions, render_module};

/// The roles that must be able to send: the functions that enqueue.
const SENDING_FUNCTIONS: &[&str] = &["sendmessage", "publish", "worker"];

/// A producer role used to check that `producer_role_arns` is honoured.
const EXTRA_PRODUCER: &str = "arn:aws:iam::123456789012:role/backend-announcer";

/// The expression naming the principals the queue policy exempts from its Deny, or why there is
/// none.
fn exempted(module: &Module) -> Result<Expression, String> {
    let policies: Vec<_> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_sqs_queue_policy")
        .filter(|r| {
            attr(r.block.body(), "queue_url")
                .and_then(traversal)
                .is_some_and(|(root, segs)| {
                    root == "aws_sqs_queue" && first_attr(&segs) == Some("fanout")
                })
        })
        .collect();
    let [policy] = policies.as_slice() else {
        return Err(format!(
            "aws_sqs_queue.fanout needs exactly one aws_sqs_queue_policy, found {}",
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
        for condition in nested(body, "condition") {
            let c = condition.body();
            let test = attr(c, "test").and_then(literal_str);
            let variable = attr(c, "variable").and_then(literal_str);
            if matches!(test, Some("ArnNotEquals" | "ArnNotLike"))
                && variable == Some("aws:PrincipalArn")
                && let Some(values) = attr(c, "values")
            {
                return Ok(values.clone());
            }
        }
    }
    Err(format!(
        "data.aws_iam_policy_document.{document} has no statement denying sqs:SendMessage to \"*\" \
         unless aws:PrincipalArn is a known producer"
    ))
}

/// The exempted principals, rendered with `extra` producer roles, against the sending functions'
/// roles plus `extra`.
fn check_rendered_producers(module: &Module, values: &Expression, extra: &[&str]) -> Vec<String> {
    let mut options = RenderOptions::new("dev");
    options.dashboards = false;
    let roles: Vec<String> = SENDING_FUNCTIONS
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
    want.extend(extra.iter().map(|s| (*s).to_owned()));
    if got == want {
        Vec::new()
    } else {
        vec![format!(
            "the fan-out queue's policy lets {got:?} send (with producer_role_arns = {extra:?}); \
             exactly {want:?} may"
        )]
    }
}

/// The queue policy exists, denies everyone else, and exempts exactly the right roles, with and
/// without extra producers.
pub fn check_queue_policy(module: &Module) -> Vec<String> {
    match exempted(module) {
        Err(e) => vec![e],
        Ok(values) => [&[][..], &[EXTRA_PRODUCER][..]]
            .into_iter()
            .flat_map(|extra| check_rendered_producers(module, &values, extra))
            .collect(),
    }
}

#[test]
fn a_missing_or_too_open_queue_policy_is_reported() {
    let base = r#"
variable "producer_role_arns" {
  type    = list(string)
  default = []
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
    let module =
        |producers: &str| Module::parse_snippet("queue.tf", &base.replace("PRODUCERS", producers));
    assert_clean(
        "the right roles",
        check_queue_policy(&module(
            r#"concat([for f in ["sendmessage", "publish", "worker"] : aws_iam_role.function[f].arn], var.producer_role_arns)"#,
        )),
    );
    assert_reports(
        &check_queue_policy(&module(
            r#"[for f in ["connect", "sendmessage", "publish", "worker"] : aws_iam_role.function[f].arn]"#,
        )),
        &["x-connect", "with producer_role_arns = []"],
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
    assert_reports(
        &check_queue_policy(&Module::parse_snippet(
            "none.tf",
            "resource \"aws_sqs_queue\" \"fanout\" {\n  name = \"x\"\n}\n",
        )),
        &["needs exactly one aws_sqs_queue_policy"],
    );
}
