//! Negative tests of the renderer the checks run on: what it cannot stub fails loudly, and it
//! rewrites only references.

use serde_json::{Value, json};

use super::snippet::{render, rendered};

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
        let error = render(&[widget], "").expect_err(reference);
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
    let rendered = rendered(&[widget.to_owned()], "");
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
