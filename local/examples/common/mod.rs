//! What the examples that start `fanout-local` as a child process share.

use std::process::Command;

/// Points a `fanout-local` command at DynamoDB and SQS at `endpoint` (moto), on tables and a
/// queue of its own named after `prefix` (created), or at the embedded default.
pub fn backend(command: &mut Command, endpoint: Option<&str>, prefix: &str) {
    match endpoint {
        Some(url) => {
            command
                .args([
                    "--backend",
                    "aws",
                    "--endpoint-url",
                    url,
                    "--create-resources",
                ])
                .args(["--table", &format!("{prefix}-connections")])
                .args(["--progress-table", &format!("{prefix}-progress")])
                .args(["--queue-name", prefix])
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1");
        }
        None => {
            command.args(["--backend", "memory"]);
        }
    }
}
