//! The security wiring, as Terraform evaluates it: with `auth_mode = "jwt"` (the default) the
//! `$connect` route, and only it, goes through a REQUEST authorizer that invokes the authorizer
//! function, whose identity source is where `connect_token_source` says the token is (the `token`
//! query parameter by default, or the `Authorization` header; none with `"either"`), since API
//! Gateway answers 401 without invoking the authorizer when a listed source is missing; with
//! `"none"` nothing is authorized and no authorizer is deployed. Every
//! route of an HTTP API (the backends' `POST /publish`) is IAM-authorized whatever `auth_mode`
//! says: its callers sign with SigV4. With a customer-managed key, every function that uses a
//! table encrypted with it (and the authorizer reading its secret) gets a key policy.

use std::collections::BTreeSet;

use serde_json::Value;

use fanout::handlers::authorizer::TOKEN_PARAMETER;

use crate::model::{Module, attr, literal_str, nested, show};
use crate::render::{RenderOptions, instance_values, render_module};

/// The rendering of the attributes the checks read, with these variables.
fn rendered(module: &Module, vars: &[(&str, &str)]) -> Result<Value, String> {
    let mut options = RenderOptions::attributes(
        "dev",
        [
            "aws_apigatewayv2_route.authorization_type",
            "aws_apigatewayv2_route.authorizer_id",
            "aws_apigatewayv2_route.api_id",
            "aws_apigatewayv2_api.id",
            "aws_apigatewayv2_api.protocol_type",
            "aws_apigatewayv2_authorizer.authorizer_type",
            "aws_apigatewayv2_authorizer.authorizer_uri",
            "aws_apigatewayv2_authorizer.id",
            "aws_lambda_function.invoke_arn",
            "aws_iam_role_policy.role",
        ]
        .map(str::to_owned)
        .to_vec(),
    );
    options.vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    render_module(module, &options)
}

fn value<'r>(rendered: &'r Value, spec: &str, address: &str) -> &'r Value {
    instance_values(rendered, spec)
        .get(address)
        .unwrap_or(&Value::Null)
}

/// Every route's authorization: a WebSocket API's authorize on `$connect` only (which
/// [`check_authorizer`] checks); an HTTP API's are for backends, which sign with SigV4.
fn check_route_authorization(rendered: &Value, connect: &str, violations: &mut Vec<String>) {
    let protocol = |api_id: &Value| {
        instance_values(rendered, "aws_apigatewayv2_api.id")
            .iter()
            .find(|(_, id)| *id == api_id)
            .map(|(api, _)| value(rendered, "aws_apigatewayv2_api.protocol_type", api))
            .and_then(Value::as_str)
    };
    for (route, kind) in instance_values(rendered, "aws_apigatewayv2_route.authorization_type") {
        match protocol(value(rendered, "aws_apigatewayv2_route.api_id", route)) {
            Some("WEBSOCKET") => {
                if route != connect && kind != "NONE" {
                    violations.push(format!(
                        "{route}: authorization_type {kind}; WebSocket APIs authorize on $connect only"
                    ));
                }
            }
            Some("HTTP") => {
                if kind != "AWS_IAM" {
                    violations.push(format!(
                        "{route}: authorization_type {kind}; the HTTP API's routes are for backends, \
                         which sign with SigV4: AWS_IAM"
                    ));
                }
            }
            other => violations.push(format!(
                "{route}: its api_id is no aws_apigatewayv2_api with a protocol_type of WEBSOCKET or \
                 HTTP (found {other:?})"
            )),
        }
    }
}

/// The `$connect` authorizer is wired as it must be, with `auth_mode` at its default, and
/// absent with `auth_mode = "none"`.
pub fn check_authorizer(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    match rendered(module, &[]) {
        Err(e) => violations.push(format!("the module does not render: {e}")),
        Ok(r) => {
            let authorizers = instance_values(&r, "aws_apigatewayv2_authorizer.id");
            let Some((address, id)) = authorizers.iter().next().filter(|_| authorizers.len() == 1)
            else {
                violations.push(format!(
                    "auth_mode = \"jwt\" (the default) must deploy exactly one aws_apigatewayv2_authorizer, found {}",
                    authorizers.len()
                ));
                return violations;
            };
            let connect = "aws_apigatewayv2_route.this[\"$connect\"]";
            if value(&r, "aws_apigatewayv2_route.authorization_type", connect) != "CUSTOM"
                || value(&r, "aws_apigatewayv2_route.authorizer_id", connect) != id
            {
                violations.push(format!("{connect} is not authorized by {address}"));
            }
            check_route_authorization(&r, connect, &mut violations);
            if value(&r, "aws_apigatewayv2_authorizer.authorizer_type", address) != "REQUEST" {
                violations.push(format!("{address}: authorizer_type must be REQUEST"));
            }
            let function = "aws_lambda_function.this[\"authorizer\"]";
            let invoke = value(&r, "aws_lambda_function.invoke_arn", function);
            if invoke.is_null()
                || value(&r, "aws_apigatewayv2_authorizer.authorizer_uri", address) != invoke
            {
                violations.push(format!("{address}: authorizer_uri must invoke {function}"));
            }
            check_identity_sources(module, address, &mut violations);
        }
    }
    match rendered(module, &[("auth_mode", "none")]) {
        Err(e) => violations.push(format!("auth_mode = \"none\" does not render: {e}")),
        Ok(r) => {
            if !instance_values(&r, "aws_apigatewayv2_authorizer.id").is_empty()
                || instance_values(&r, "aws_lambda_function.invoke_arn")
                    .contains_key("aws_lambda_function.this[\"authorizer\"]")
            {
                violations.push("auth_mode = \"none\" still deploys the authorizer".to_owned());
            }
            // No route of the WebSocket API is authorized, not even $connect; the HTTP API's
            // still are.
            check_route_authorization(&r, "", &mut violations);
        }
    }
    violations
}

/// The identity source the authorizer must require for each `connect_token_source` (`None`: none,
/// for "either"): where the authorizer function reads the token, so that API Gateway refuses a
/// handshake without it (401) before invoking the function, and never one the function accepts.
fn expected_identity_sources() -> [(&'static str, Option<Vec<String>>); 3] {
    [
        (
            "query",
            Some(vec![format!("route.request.querystring.{TOKEN_PARAMETER}")]),
        ),
        (
            "header",
            Some(vec!["route.request.header.Authorization".to_owned()]),
        ),
        ("either", None),
    ]
}

/// The authorizer's rendered identity sources, with its default and with each
/// `connect_token_source`: the default requires the query parameter (what browsers send).
fn check_identity_sources(module: &Module, address: &str, violations: &mut Vec<String>) {
    let sets = module
        .resources()
        .into_iter()
        .any(|r| r.kind == "aws_apigatewayv2_authorizer" && r.sets("identity_sources"));
    let spec = "aws_apigatewayv2_authorizer.identity_sources";
    let sources = |vars: &[(&str, &str)]| -> Result<Option<Vec<String>>, String> {
        if !sets {
            return Ok(None);
        }
        let mut options = RenderOptions::attributes("dev", vec![spec.to_owned()]);
        options.vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let r = render_module(module, &options)?;
        Ok(value(&r, spec, address).as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        }))
    };
    let expected = expected_identity_sources();
    let mut runs = vec![("the default".to_owned(), Vec::new(), expected[0].1.clone())];
    for (source, want) in &expected {
        runs.push((
            format!("connect_token_source = \"{source}\""),
            vec![("connect_token_source", *source)],
            want.clone(),
        ));
    }
    for (scenario, vars, want) in runs {
        match sources(&vars) {
            Ok(got) if got == want => {}
            Ok(got) => violations.push(format!(
                "{address}: identity_sources render to {got:?} with {scenario}, not {want:?}: \
                 API Gateway answers 401 without invoking the authorizer when a listed source is \
                 missing, so it must list where the token is, and nothing with \"either\""
            )),
            Err(e) => violations.push(format!("{scenario} does not render: {e}")),
        }
    }
}

/// The functions whose policy document allows an action of `service` (`"dynamodb"`, `"sqs"`):
/// those that use the tables, or the queues, a customer-managed key encrypts. (The queues' own
/// policies only deny.)
fn service_users(module: &Module, service: &str) -> BTreeSet<String> {
    let prefix = format!("\"{service}:");
    module
        .blocks("data")
        .filter(|(_, b)| b.labels().first().map(|l| l.as_str()) == Some("aws_iam_policy_document"))
        .filter(|(_, b)| {
            nested(b.body(), "statement")
                .filter(|s| attr(s.body(), "effect").and_then(literal_str) != Some("Deny"))
                .any(|s| attr(s.body(), "actions").is_some_and(|a| show(a).contains(&prefix)))
        })
        .filter_map(|(_, b)| b.labels().get(1).map(|l| l.as_str().to_owned()))
        .collect()
}

/// The key ARN the KMS checks set `kms_key_arn` to.
const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

/// How every SQS queue is encrypted: `kms_master_key_id`, `sqs_managed_sse_enabled` and
/// `kms_data_key_reuse_period_seconds` of each instance, as Terraform renders them.
const QUEUE_ENCRYPTION: [&str; 3] = [
    "kms_master_key_id",
    "sqs_managed_sse_enabled",
    "kms_data_key_reuse_period_seconds",
];

/// With `kms_key_arn` set, both queues (fan-out and DLQ) are encrypted with the key, SQS reusing
/// a data key at most a day (SQS's bounds: 60 s to 24 h); without it, with SQS-managed SSE.
fn check_queue_encryption(module: &Module, violations: &mut Vec<String>) {
    let queues: Vec<_> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_sqs_queue")
        .collect();
    if queues.is_empty() {
        violations.push("no aws_sqs_queue: nothing to check".to_owned());
    }
    for queue in &queues {
        if !queue.sets("kms_master_key_id") {
            violations.push(format!(
                "{} does not set kms_master_key_id: it ignores kms_key_arn",
                queue.address()
            ));
            return;
        }
    }
    let specs: Vec<String> = QUEUE_ENCRYPTION
        .iter()
        .filter(|attribute| queues.iter().all(|q| q.sets(attribute)))
        .map(|attribute| format!("aws_sqs_queue.{attribute}"))
        .collect();
    for (scenario, vars) in [
        (
            "with kms_key_arn",
            vec![("kms_key_arn".to_owned(), KEY.to_owned())],
        ),
        ("without kms_key_arn", Vec::new()),
    ] {
        let mut options = RenderOptions::attributes("dev", specs.clone());
        options.vars = vars;
        let r = match render_module(module, &options) {
            Ok(r) => r,
            Err(e) => {
                violations.push(format!("{scenario}, the queues do not render: {e}"));
                continue;
            }
        };
        let keys = instance_values(&r, "aws_sqs_queue.kms_master_key_id");
        for (queue, key) in keys {
            let managed = value(&r, "aws_sqs_queue.sqs_managed_sse_enabled", queue);
            let reuse = value(&r, "aws_sqs_queue.kms_data_key_reuse_period_seconds", queue);
            let fine = if scenario == "with kms_key_arn" {
                key == KEY
                    && managed != true
                    && reuse.as_u64().is_some_and(|s| (60..=86_400).contains(&s))
            } else {
                key.is_null() && managed == true
            };
            if !fine {
                violations.push(format!(
                    "{queue} {scenario}: kms_master_key_id {key}, sqs_managed_sse_enabled \
                     {managed}, kms_data_key_reuse_period_seconds {reuse}; expected the key with a \
                     reuse period of 60 to 86400 s, or SQS-managed SSE without one"
                ));
            }
        }
        if keys.len() != queues.len() {
            violations.push(format!(
                "{scenario}: {} queue instances rendered for {} aws_sqs_queue blocks",
                keys.len(),
                queues.len()
            ));
        }
    }
}

/// The `aws_iam_policy_document` that the role policy resource `aws_iam_role_policy.{name}` uses grants
/// kms:GenerateDataKey and kms:Decrypt through `{service}` only (`kms:ViaService`).
fn check_key_document(module: &Module, name: &str, service: &str, violations: &mut Vec<String>) {
    let Some(policy) = module
        .resources()
        .into_iter()
        .find(|r| r.kind == "aws_iam_role_policy" && r.name == name)
        .and_then(|r| attr(r.block.body(), "policy").map(show))
    else {
        violations.push(format!("no aws_iam_role_policy.{name} with a policy"));
        return;
    };
    let document = module
        .blocks("data")
        .filter(|(_, b)| b.labels().first().map(|l| l.as_str()) == Some("aws_iam_policy_document"))
        .find(|(_, b)| {
            b.labels().get(1).is_some_and(|l| {
                policy.starts_with(&format!("data.aws_iam_policy_document.{}[", l.as_str()))
            })
        })
        .map(|(_, b)| b);
    let Some(document) = document else {
        violations.push(format!(
            "aws_iam_role_policy.{name}: its policy {policy} is not an aws_iam_policy_document of this module"
        ));
        return;
    };
    let statements: Vec<String> = nested(document.body(), "statement")
        .map(|s| {
            let conditions: Vec<String> = nested(s.body(), "condition")
                .map(|c| {
                    ["variable", "values"]
                        .iter()
                        .filter_map(|a| attr(c.body(), a).map(show))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            format!(
                "{} {}",
                attr(s.body(), "actions").map(show).unwrap_or_default(),
                conditions.join(" ")
            )
        })
        .collect();
    let grants = statements.iter().any(|s| {
        s.contains("\"kms:GenerateDataKey\"")
            && s.contains("\"kms:Decrypt\"")
            && s.contains("kms:ViaService")
            && s.contains(&format!("\"{service}."))
    });
    if !grants {
        violations.push(format!(
            "aws_iam_role_policy.{name}: its document grants no kms:GenerateDataKey and \
             kms:Decrypt through {service} (kms:ViaService): {statements:?}"
        ));
    }
}

/// With `kms_key_arn` set, each function that uses the tables (and the authorizer, reading the
/// secret the stack encrypts with the key) has a key policy (`aws_iam_role_policy.kms`), each
/// that sends to or receives from the queues one through SQS (`aws_iam_role_policy.kms_sqs`),
/// and both queues use the key; without it, no key policy, and the queues SQS-managed SSE.
pub fn check_kms_grants(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    // Role policy resource name => the functions it is granted to.
    let granted = |vars: &[(&str, &str)]| -> Result<BTreeSet<(String, String)>, String> {
        let r = rendered(module, vars)?;
        Ok(instance_values(&r, "aws_iam_role_policy.role")
            .keys()
            .filter_map(|address| {
                let (name, function) = address
                    .strip_prefix("aws_iam_role_policy.")?
                    .strip_suffix("\"]")?
                    .split_once("[\"")?;
                name.starts_with("kms")
                    .then(|| (name.to_owned(), function.to_owned()))
            })
            .collect())
    };
    let table_users = service_users(module, "dynamodb");
    if table_users.is_empty() {
        violations.push("no function policy grants DynamoDB actions: nothing to check".to_owned());
    }
    let queue_users = service_users(module, "sqs");
    if queue_users.is_empty() {
        violations.push("no function policy grants SQS actions: nothing to check".to_owned());
    }
    let mut expected: BTreeSet<(String, String)> = table_users
        .into_iter()
        .chain(["authorizer".to_owned()])
        .map(|function| ("kms".to_owned(), function))
        .collect();
    expected.extend(
        queue_users
            .into_iter()
            .map(|function| ("kms_sqs".to_owned(), function)),
    );
    match granted(&[("kms_key_arn", KEY)]) {
        Ok(got) if got == expected => {}
        Ok(got) => violations.push(format!(
            "with kms_key_arn set, the key policies (resource, function) are {got:?}; the \
             functions that need the key are {expected:?}"
        )),
        Err(e) => violations.push(format!("kms_key_arn does not render: {e}")),
    }
    match granted(&[]) {
        Ok(got) if got.is_empty() => {}
        Ok(got) => violations.push(format!("without kms_key_arn, key policies for {got:?}")),
        Err(e) => violations.push(format!("the module does not render: {e}")),
    }
    check_key_document(module, "kms_sqs", "sqs", &mut violations);
    check_queue_encryption(module, &mut violations);
    violations
}

#[cfg(test)]
mod negative {
    use super::*;
    use crate::fixtures::{assert_clean, assert_reports};

    /// Routes, functions and an authorizer, and an HTTP API's route; `AUTH_TYPE`, `URI`,
    /// `SOURCES` and `HTTP_AUTH` vary.
    const SNIPPET: &str = r#"
variable "auth_mode" {
  type    = string
  default = "jwt"
}
variable "connect_token_source" {
  type    = string
  default = "query"
}
locals {
  sources      = { query = "route.request.querystring.token", header = "route.request.header.Authorization" }
  auth_enabled = var.auth_mode == "jwt"
  routes       = toset(["$connect", "sendmessage"])
  functions    = local.auth_enabled ? toset(["connect", "sendmessage", "authorizer"]) : toset(["connect", "sendmessage"])
}
resource "aws_apigatewayv2_api" "this" {
  name          = "x"
  protocol_type = "WEBSOCKET"
}
resource "aws_apigatewayv2_api" "publish" {
  name          = "x-publish"
  protocol_type = "HTTP"
}
resource "aws_apigatewayv2_route" "publish" {
  api_id             = aws_apigatewayv2_api.publish.id
  route_key          = "POST /publish"
  authorization_type = HTTP_AUTH
  authorizer_id      = null
}
resource "aws_lambda_function" "this" {
  for_each      = local.functions
  function_name = "x-${each.key}"
}
resource "aws_apigatewayv2_authorizer" "connect" {
  count           = local.auth_enabled ? 1 : 0
  api_id          = aws_apigatewayv2_api.this.id
  authorizer_type = "REQUEST"
  authorizer_uri  = URI
  SOURCES
}
resource "aws_apigatewayv2_route" "this" {
  for_each           = local.routes
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  authorization_type = AUTH_TYPE
  authorizer_id      = each.key == "$connect" && local.auth_enabled ? aws_apigatewayv2_authorizer.connect[0].id : null
}
"#;

    fn module(auth_type: &str, uri: &str, sources: &str) -> Module {
        module_with_http(auth_type, uri, sources, r#""AWS_IAM""#)
    }

    fn module_with_http(auth_type: &str, uri: &str, sources: &str, http_auth: &str) -> Module {
        Module::parse_snippet(
            "auth.tf",
            &SNIPPET
                .replace("AUTH_TYPE", auth_type)
                .replace("URI", uri)
                .replace("SOURCES", sources)
                .replace("HTTP_AUTH", http_auth),
        )
    }

    const GOOD_TYPE: &str = r#"each.key == "$connect" && local.auth_enabled ? "CUSTOM" : "NONE""#;
    const GOOD_URI: &str = r#"aws_lambda_function.this["authorizer"].invoke_arn"#;
    const GOOD_SOURCES: &str = r#"identity_sources = var.connect_token_source == "either" ? null : [local.sources[var.connect_token_source]]"#;

    #[test]
    fn a_miswired_authorizer_is_reported() {
        assert_clean(
            "wired",
            check_authorizer(&module(GOOD_TYPE, GOOD_URI, GOOD_SOURCES)),
        );
        assert_reports(
            &check_authorizer(&module(r#""NONE""#, GOOD_URI, GOOD_SOURCES)),
            &["aws_apigatewayv2_route.this[\"$connect\"] is not authorized"],
        );
        assert_reports(
            &check_authorizer(&module(
                r#"local.auth_enabled ? "CUSTOM" : "NONE""#,
                GOOD_URI,
                GOOD_SOURCES,
            )),
            &["aws_apigatewayv2_route.this[\"sendmessage\"]: authorization_type \"CUSTOM\""],
        );
        assert_reports(
            &check_authorizer(&module(
                GOOD_TYPE,
                r#"aws_lambda_function.this["connect"].invoke_arn"#,
                GOOD_SOURCES,
            )),
            &["authorizer_uri must invoke aws_lambda_function.this[\"authorizer\"]"],
        );
        // No identity source (the issue's finding): a token-less handshake invokes the
        // authorizer. One for every setting: header clients locked out.
        assert_reports(
            &check_authorizer(&module(GOOD_TYPE, GOOD_URI, "")),
            &[
                "identity_sources render to None with the default, not Some([\"route.request.querystring.token\"])",
            ],
        );
        assert_reports(
            &check_authorizer(&module(
                GOOD_TYPE,
                GOOD_URI,
                r#"identity_sources = ["route.request.querystring.token"]"#,
            )),
            &[
                "with connect_token_source = \"header\", not Some([\"route.request.header.Authorization\"])",
                "with connect_token_source = \"either\", not None",
            ],
        );
    }

    /// A queue encrypted as `ENCRYPTION` says, with `kms_key_arn` declared as the stack's.
    fn queue(encryption: &str) -> Module {
        Module::parse_snippet(
            "queue.tf",
            &format!(
                r#"
variable "kms_key_arn" {{
  type    = string
  default = null
}}
resource "aws_sqs_queue" "fanout" {{
  name = "x-fanout"
  {encryption}
}}
"#
            ),
        )
    }

    #[test]
    fn a_queue_that_ignores_the_key_is_reported() {
        let mut violations = Vec::new();
        check_queue_encryption(
            &queue(
                "sqs_managed_sse_enabled = var.kms_key_arn == null ? true : null\n  \
                 kms_master_key_id = var.kms_key_arn\n  \
                 kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600",
            ),
            &mut violations,
        );
        assert_clean("a queue using the key", violations);

        let mut violations = Vec::new();
        check_queue_encryption(&queue("sqs_managed_sse_enabled = true"), &mut violations);
        assert_reports(
            &violations,
            &["aws_sqs_queue.fanout (queue.tf) does not set kms_master_key_id"],
        );

        // The key, but SQS-managed SSE kept beside it and no reuse period.
        let mut violations = Vec::new();
        check_queue_encryption(
            &queue("sqs_managed_sse_enabled = true\n  kms_master_key_id = var.kms_key_arn"),
            &mut violations,
        );
        assert_reports(
            &violations,
            &["aws_sqs_queue.fanout with kms_key_arn: kms_master_key_id"],
        );
    }

    #[test]
    fn an_http_route_without_iam_authorization_is_reported() {
        assert_reports(
            &check_authorizer(&module_with_http(
                GOOD_TYPE,
                GOOD_URI,
                GOOD_SOURCES,
                r#""NONE""#,
            )),
            &["aws_apigatewayv2_route.publish: authorization_type \"NONE\"; the HTTP API's routes"],
        );
        // IAM-authorized with the JWT authorizer only: open with auth_mode = "none".
        let violations = check_authorizer(&module_with_http(
            GOOD_TYPE,
            GOOD_URI,
            GOOD_SOURCES,
            r#"local.auth_enabled ? "AWS_IAM" : "NONE""#,
        ));
        assert_reports(
            &violations,
            &["aws_apigatewayv2_route.publish: authorization_type \"NONE\""],
        );
        assert_eq!(violations.len(), 1, "{violations:#?}");
    }
}
