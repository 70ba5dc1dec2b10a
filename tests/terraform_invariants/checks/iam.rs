//! Least privilege: no wildcard actions, `*` resources only for the actions that have no
//! resource-level permissions, no NotAction/NotResource, no `*` principal in what a statement
//! allows (a Deny to `*` with a condition, as the fan-out queue's policy has, narrows access).

use std::collections::BTreeSet;

use hcl::{Expression, ObjectKey};

use crate::fixtures::{assert_clean, assert_reports};
use crate::model::{Module, attr, key_name, literal_str, nested, show};
use crate::render::{RenderOptions, render_module};

/// Actions that have no resource-level permissions, so "*" is their only valid resource.
const RESOURCE_WILDCARD_ONLY: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// The keys among `keys` that a statement has.
fn present<'k>(keys: &[&'k str], has: impl Fn(&str) -> bool) -> Vec<&'k str> {
    keys.iter().copied().filter(|k| has(k)).collect()
}

/// One statement, in either form: `negations` are the NotAction/NotResource keys it has.
fn check_statement(
    at: &str,
    negations: Vec<&str>,
    actions: Result<Vec<String>, String>,
    resources: Option<Result<Vec<String>, String>>,
    principals: Vec<String>,
    deny: bool,
    violations: &mut Vec<String>,
) {
    for negation in negations {
        violations.push(format!(
            "{at}: {negation} grants everything else; list what is allowed"
        ));
    }
    let actions = match actions {
        Ok(a) => a,
        Err(e) => {
            violations.push(format!("{at}: {e}"));
            return;
        }
    };
    for action in &actions {
        if action.contains('*') || action.contains('?') {
            violations.push(format!(
                "{at}: wildcard action \"{action}\"; list the actions the code calls"
            ));
        }
    }
    match resources {
        None => {}
        Some(Err(e)) => violations.push(format!("{at}: {e}")),
        Some(Ok(resources)) => {
            for resource in resources {
                let arn_wildcard = resource.starts_with("arn:")
                    && resource.splitn(6, ':').nth(5).is_some_and(|r| r == "*");
                if resource == "*" || arn_wildcard {
                    let scopable: Vec<&String> = actions
                        .iter()
                        .filter(|a| !RESOURCE_WILDCARD_ONLY.contains(&a.as_str()))
                        .collect();
                    if !scopable.is_empty() || actions.is_empty() {
                        violations.push(format!(
                            "{at}: resource \"{resource}\" for {scopable:?}, which support resource-level permissions; name the table, queue, log group or API"
                        ));
                    }
                }
            }
        }
    }
    for principal in principals {
        if principal == "*" && !deny {
            violations.push(format!(
                "{at}: principal \"*\" opens the policy to everyone"
            ));
        }
    }
}

/// A string or a list of them; for `resources`, also references and templates.
fn string_list(expr: Option<&Expression>, what: &str) -> Result<Vec<String>, String> {
    let item = |item: &Expression| match item {
        Expression::String(s) => Ok(s.clone()),
        // References and templates name specific resources; only literals can be "*".
        Expression::TemplateExpr(_) | Expression::Traversal(_) if what == "resources" => {
            Ok(show(item))
        }
        other => Err(show(other)),
    };
    match expr {
        None => Ok(Vec::new()),
        Some(Expression::Array(items)) => items
            .iter()
            .map(|i| {
                item(i).map_err(|found| {
                    format!("{what} must be literal strings to be checked, found {found}")
                })
            })
            .collect(),
        Some(other) => item(other)
            .map(|s| vec![s])
            .map_err(|found| format!("{what} must be a list of literal strings, found {found}")),
    }
}

/// jsonencode({ Statement = [...] }) policies anywhere in resource arguments.
fn json_policy_statements<'e>(
    expr: &'e Expression,
    out: &mut Vec<&'e hcl::Object<ObjectKey, Expression>>,
) {
    match expr {
        Expression::Object(object) => {
            for (key, value) in object {
                if key_name(key).as_deref() == Some("Statement") {
                    match value {
                        Expression::Array(items) => items.iter().for_each(|i| {
                            if let Expression::Object(o) = i {
                                out.push(o)
                            }
                        }),
                        Expression::Object(o) => out.push(o),
                        _ => {}
                    }
                } else {
                    json_policy_statements(value, out);
                }
            }
        }
        Expression::Array(items) => items.iter().for_each(|i| json_policy_statements(i, out)),
        Expression::FuncCall(call) => call
            .args
            .iter()
            .for_each(|a| json_policy_statements(a, out)),
        Expression::Parenthesis(inner) => json_policy_statements(inner, out),
        _ => {}
    }
}

/// No wildcard actions; "*" resources only for actions without resource-level permissions; no
/// NotAction/NotResource; no "*" principal. Covers aws_iam_policy_document data sources and
/// jsonencode'd policies in resources.
pub fn check_iam(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let mut statements = 0;
    for doc in module
        .labelled("data")
        .into_iter()
        .filter(|d| d.kind == "aws_iam_policy_document")
    {
        if doc
            .block
            .body()
            .blocks()
            .any(|b| b.identifier() == "dynamic")
        {
            violations.push(format!(
                "data.{}: dynamic blocks cannot be checked statically; write the statements out",
                doc.address()
            ));
        }
        for (n, statement) in nested(doc.block.body(), "statement").enumerate() {
            statements += 1;
            let body = statement.body();
            let sid = attr(body, "sid")
                .and_then(literal_str)
                .map(str::to_owned)
                .unwrap_or(format!("#{n}"));
            let at = format!("data.{} statement {sid}", doc.address());
            let principals = nested(body, "principals")
                .chain(nested(body, "not_principals"))
                .flat_map(|p| {
                    string_list(attr(p.body(), "identifiers"), "identifiers").unwrap_or_default()
                })
                .collect();
            let resources = attr(body, "resources").map(|r| string_list(Some(r), "resources"));
            let has_principals = nested(body, "principals").next().is_some();
            if resources.is_none() && !has_principals {
                violations.push(format!(
                    "{at}: an identity policy statement without resources applies to \"*\""
                ));
            }
            check_statement(
                &at,
                present(&["not_actions", "not_resources"], |k| {
                    attr(body, k).is_some()
                }),
                string_list(attr(body, "actions"), "actions"),
                resources,
                principals,
                attr(body, "effect").and_then(literal_str) == Some("Deny"),
                &mut violations,
            );
        }
    }
    for resource in module.resources() {
        for attribute in resource.block.body().attributes() {
            let mut found = Vec::new();
            json_policy_statements(attribute.expr(), &mut found);
            for (n, statement) in found.into_iter().enumerate() {
                statements += 1;
                let get = |k: &str| {
                    statement
                        .iter()
                        .find(|(key, _)| key_name(key).as_deref() == Some(k))
                        .map(|(_, v)| v)
                };
                let at = format!("{} {} statement #{n}", resource.address(), attribute.key());
                let principals = match get("Principal") {
                    Some(Expression::String(s)) => vec![s.clone()],
                    Some(Expression::Object(o)) => o
                        .iter()
                        .flat_map(|(_, v)| string_list(Some(v), "identifiers").unwrap_or_default())
                        .collect(),
                    _ => Vec::new(),
                };
                let resources = get("Resource").map(|r| string_list(Some(r), "resources"));
                check_statement(
                    &at,
                    present(&["NotAction", "NotResource"], |k| get(k).is_some()),
                    string_list(get("Action"), "actions"),
                    resources,
                    principals,
                    get("Effect").and_then(literal_str) == Some("Deny"),
                    &mut violations,
                );
            }
        }
    }
    if statements == 0 {
        violations.push("no IAM policy statements found: nothing was checked".to_owned());
    }
    violations
}

/// The statements of the module's policy documents, as (address, body).
fn statements(module: &Module) -> Vec<(String, &hcl::Body)> {
    module
        .labelled("data")
        .into_iter()
        .filter(|d| d.kind == "aws_iam_policy_document")
        .flat_map(|doc| {
            nested(doc.block.body(), "statement")
                .enumerate()
                .map(move |(n, statement)| {
                    let body = statement.body();
                    let sid = attr(body, "sid")
                        .and_then(literal_str)
                        .map(str::to_owned)
                        .unwrap_or(format!("#{n}"));
                    (format!("data.{} statement {sid}", doc.address()), body)
                })
        })
        .collect()
}

/// A statement's condition on `variable` with `test`: its `values` expression.
fn condition<'b>(body: &'b hcl::Body, test: &str, variable: &str) -> Option<&'b Expression> {
    nested(body, "condition")
        .map(|c| c.body())
        .find(|c| {
            attr(c, "test").and_then(literal_str) == Some(test)
                && attr(c, "variable").and_then(literal_str) == Some(variable)
        })
        .and_then(|c| attr(c, "values"))
}

/// The attributes the allowance swap writes besides the key: those a connection item has only
/// once it has an allowance (`fanout::domain::Connection` names the table's attributes).
fn allowance_attributes() -> BTreeSet<String> {
    use fanout::domain::{Allowance, Connection, RoomName};
    let without = Connection {
        principal: Some("p".to_owned()),
        grants: Some("lobby".to_owned()),
        ..Connection::in_room("c", RoomName::parse("lobby").expect("a valid room"), 0, 0)
    };
    let with = Connection {
        allowance: Some(Allowance { milli: 0, at: 0 }),
        ..without.clone()
    };
    attribute_names(&with)
        .difference(&attribute_names(&without))
        .cloned()
        .collect()
}

/// The top-level attributes of a connection's item.
fn attribute_names(connection: &fanout::domain::Connection) -> BTreeSet<String> {
    serde_json::to_value(connection)
        .expect("a connection serializes")
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

/// The attribute join and leave write: the connection's set of rooms.
fn rooms_attribute() -> BTreeSet<String> {
    use fanout::domain::{Connection, RoomName};
    let with = Connection::in_room("c", RoomName::parse("lobby").expect("a valid room"), 0, 0);
    let without = Connection {
        rooms: BTreeSet::new(),
        ..with.clone()
    };
    attribute_names(&with)
        .difference(&attribute_names(&without))
        .cloned()
        .collect()
}

/// What `ReturnValues` may be: nothing returned, or only the attributes written.
const RETURN_VALUES: &[&str] = &["NONE", "UPDATED_OLD", "UPDATED_NEW"];

/// Every statement allowing `dynamodb:UpdateItem` on the connections table limits it to the
/// table's key and the allowance (`ForAllValues:StringEquals` on `dynamodb:Attributes`, as
/// Terraform renders it) and returns no other attribute (`dynamodb:ReturnValues`).
pub fn check_connection_writes(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let updates: Vec<_> = statements(module)
        .into_iter()
        .filter(|(_, body)| {
            attr(body, "actions").is_some_and(|a| show(a).contains("\"dynamodb:UpdateItem\""))
                && attr(body, "resources")
                    .is_some_and(|r| show(r).contains("aws_dynamodb_table.connections."))
        })
        .collect();
    if updates.is_empty() {
        return vec![
            "no statement allows dynamodb:UpdateItem on the connections table: nothing to check"
                .to_owned(),
        ];
    }
    for (at, body) in updates {
        let Some(values) = condition(body, "ForAllValues:StringEquals", "dynamodb:Attributes")
        else {
            violations.push(format!(
                "{at}: dynamodb:UpdateItem on the connections table without a ForAllValues:StringEquals condition on dynamodb:Attributes: it may rewrite any attribute of a connection (its room, principal, expiry)"
            ));
            continue;
        };
        let mut options = RenderOptions::attributes("dev", Vec::new());
        options.exprs = vec![
            ("attributes".to_owned(), show(values)),
            (
                "key".to_owned(),
                "aws_dynamodb_table.connections.hash_key".to_owned(),
            ),
        ];
        match render_module(module, &options) {
            Err(e) => violations.push(format!("{at}: the condition does not render: {e}")),
            Ok(rendered) => {
                let got: BTreeSet<String> = rendered["exprs"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let key = rendered["exprs"]["key"].as_str().map(str::to_owned);
                // The allowance swap (sendmessage) and the rooms set (join, leave) are the only
                // writes after $connect; each names the key, which DynamoDB counts, and its own.
                let writes: Vec<BTreeSet<String>> = [allowance_attributes(), rooms_attribute()]
                    .into_iter()
                    .map(|mut own| {
                        own.extend(key.clone());
                        own
                    })
                    .collect();
                if !writes.contains(&got) {
                    violations.push(format!(
                        "{at}: dynamodb:Attributes renders to {got:?}; an update of a connection names exactly one of {writes:?} (the table's key, and the allowance or the rooms)"
                    ));
                }
            }
        }
        let returns = condition(body, "StringEqualsIfExists", "dynamodb:ReturnValues")
            .map(|v| string_list(Some(v), "values"));
        match returns {
            Some(Ok(values))
                if !values.is_empty() && values.iter().all(|v| RETURN_VALUES.contains(&v.as_str())) => {}
            other => violations.push(format!(
                "{at}: no StringEqualsIfExists condition limiting dynamodb:ReturnValues to {RETURN_VALUES:?} (found {other:?}): ALL_OLD or ALL_NEW would return attributes dynamodb:Attributes does not name"
            )),
        }
    }
    violations
}

// Negative checks

#[test]
fn iam_checker_rejects_wildcards_and_allows_xray() {
    let ok = Module::parse_snippet(
        "ok.tf",
        r#"
data "aws_iam_policy_document" "ok" {
  statement {
    sid       = "XRay"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid       = "Table"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.t.arn, "${aws_dynamodb_table.t.arn}/index/*"]
  }
  statement {
    sid       = "DenyOthers"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.q.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}
"#,
    );
    assert_clean("scoped policy", check_iam(&ok));

    let bad = Module::parse_snippet(
        "bad.tf",
        r#"
data "aws_iam_policy_document" "bad" {
  statement {
    sid       = "Star"
    actions   = ["dynamodb:*"]
    resources = [aws_dynamodb_table.t.arn]
  }
  statement {
    sid       = "AnyTable"
    actions   = ["dynamodb:GetItem", "xray:PutTraceSegments"]
    resources = ["*"]
  }
  statement {
    sid       = "Everyone"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.q.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
  statement {
    sid         = "Not"
    not_actions = ["iam:*"]
    resources   = ["arn:aws:dynamodb:eu-west-1:123456789012:*"]
  }
}
resource "aws_iam_role_policy" "inline" {
  name   = "x"
  role   = "r"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }]
  })
}
"#,
    );
    let violations = check_iam(&bad);
    assert_reports(
        &violations,
        &[
            "statement Star: wildcard action \"dynamodb:*\"",
            "statement AnyTable: resource \"*\" for [\"dynamodb:GetItem\"]",
            "statement Everyone: principal \"*\" opens the policy to everyone",
            "statement Not: not_actions",
            "resource \"arn:aws:dynamodb:eu-west-1:123456789012:*\"",
            "policy statement #0: wildcard action \"*\"",
            "policy statement #0: resource \"*\"",
        ],
    );

    let empty = check_iam(&Module::parse_snippet("none.tf", "locals {\n  a = 1\n}\n"));
    assert!(
        !empty.is_empty(),
        "a module without IAM statements must be reported, not pass"
    );
}

#[test]
fn connection_writes_are_limited_to_the_allowance() {
    let module = |conditions: &str| {
        Module::parse_snippet(
            "iam.tf",
            &format!(
                r#"
resource "aws_dynamodb_table" "connections" {{
  name     = "x-connections"
  hash_key = "connectionId"
}}
data "aws_iam_policy_document" "sendmessage" {{
  statement {{
    sid       = "SpendSenderAllowance"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.connections.arn]
{conditions}
  }}
}}
"#
            ),
        )
    };
    let attributes = |values: &str| {
        format!(
            "    condition {{\n      test     = \"ForAllValues:StringEquals\"\n      variable = \"dynamodb:Attributes\"\n      values   = {values}\n    }}\n"
        )
    };
    let returns = "    condition {\n      test     = \"StringEqualsIfExists\"\n      variable = \"dynamodb:ReturnValues\"\n      values   = [\"NONE\"]\n    }\n";
    let good = attributes(r#"[aws_dynamodb_table.connections.hash_key, "allowance"]"#);
    assert_clean(
        "key and allowance",
        check_connection_writes(&module(&format!("{good}{returns}"))),
    );
    // The issue's finding: any attribute.
    assert_reports(
        &check_connection_writes(&module("")),
        &["statement SpendSenderAllowance: dynamodb:UpdateItem on the connections table without"],
    );
    // The key left out (every UpdateItem would be denied), another attribute let in.
    assert_reports(
        &check_connection_writes(&module(&format!(
            "{}{returns}",
            attributes(r#"["allowance"]"#)
        ))),
        &["dynamodb:Attributes renders to {\"allowance\"}"],
    );
    assert_reports(
        &check_connection_writes(&module(&format!(
            "{}{returns}",
            attributes(r#"["connectionId", "allowance", "room"]"#)
        ))),
        &["renders to {\"allowance\", \"connectionId\", \"room\"}"],
    );
    assert_reports(
        &check_connection_writes(&module(&good)),
        &["no StringEqualsIfExists condition limiting dynamodb:ReturnValues"],
    );
}
