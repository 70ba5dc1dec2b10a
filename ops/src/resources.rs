//! A deployed workspace's resources: from `terraform output -json` (run in `--terraform-dir`,
//! or a saved copy given as `--outputs`), overridden by explicit flags.

use crate::backend::OpsError;
use std::path::Path;
use std::time::Duration;

/// How long `terraform output -json` may take (it reads the state, maybe from a remote
/// backend).
pub const TERRAFORM_TIMEOUT: Duration = Duration::from_secs(60);

/// The Terraform outputs the CLI reads (terraform/outputs.tf).
pub mod output {
    pub const QUEUE_URL: &str = "fanout_queue_url";
    pub const DLQ_URL: &str = "dead_letter_queue_url";
    pub const TABLE: &str = "connections_table_name";
    pub const MANAGEMENT_ENDPOINT: &str = "management_endpoint";
    pub const REGION: &str = "region";
    pub const PUBLISH_URL: &str = "publish_url";
}

/// What a workspace is made of, as far as the CLI is concerned. Each command checks for what
/// it needs and says which flag or output gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// The fan-out queue (`--queue-url`, output `fanout_queue_url`).
    pub queue_url: Option<String>,
    /// Its dead-letter queue (`--dlq-url`, output `dead_letter_queue_url`).
    pub dlq_url: Option<String>,
    /// The connections table (`--table`, output `connections_table_name`).
    pub table: Option<String>,
    /// The API's management endpoint, `https://{api}.execute-api.{region}.amazonaws.com/{stage}`
    /// (`--management-endpoint`, output `management_endpoint`).
    pub management_endpoint: Option<String>,
    /// The region (`--region`, output `region`); else the SDK's chain (`AWS_REGION`, the
    /// profile), else the queue URL's.
    pub region: Option<String>,
    /// The publish endpoint, `https://{api}.execute-api.{region}.amazonaws.com/publish`
    /// (`--publish-url`, output `publish_url`).
    pub publish_url: Option<String>,
}

impl Resources {
    /// Reads `terraform output -json`: `{"NAME":{"value":...,"type":...,"sensitive":...}}`.
    /// Outputs the CLI does not use are ignored; a null one counts as missing.
    pub fn from_outputs_json(text: &str) -> Result<Self, OpsError> {
        let outputs: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            OpsError::Usage(format!(
                "the Terraform outputs are not the JSON `terraform output -json` prints: {error}"
            ))
        })?;
        let Some(outputs) = outputs.as_object() else {
            return Err(OpsError::Usage(
                "the Terraform outputs are not a JSON object (`terraform output -json`)".into(),
            ));
        };
        let read = |name: &str| -> Result<Option<String>, OpsError> {
            match outputs.get(name).map(|output| &output["value"]) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(value)) => Ok(Some(value.clone())),
                Some(other) => Err(OpsError::Usage(format!(
                    "Terraform output {name} is {other}, not a string"
                ))),
            }
        };
        Ok(Self {
            queue_url: read(output::QUEUE_URL)?,
            dlq_url: read(output::DLQ_URL)?,
            table: read(output::TABLE)?,
            management_endpoint: read(output::MANAGEMENT_ENDPOINT)?,
            region: read(output::REGION)?,
            publish_url: read(output::PUBLISH_URL)?,
        })
    }

    /// These resources, with every one `flags` sets taking its place.
    pub fn overridden_by(self, flags: Resources) -> Resources {
        Resources {
            queue_url: flags.queue_url.or(self.queue_url),
            dlq_url: flags.dlq_url.or(self.dlq_url),
            table: flags.table.or(self.table),
            management_endpoint: flags.management_endpoint.or(self.management_endpoint),
            region: flags.region.or(self.region),
            publish_url: flags.publish_url.or(self.publish_url),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    fn need<'a>(
        value: &'a Option<String>,
        what: &str,
        flag: &str,
        output: &str,
    ) -> Result<&'a str, OpsError> {
        value.as_deref().ok_or_else(|| {
            OpsError::Usage(format!(
                "this command needs {what}: pass {flag}, or --terraform-dir/--outputs with the \
                 output {output}"
            ))
        })
    }

    pub fn queue_url(&self) -> Result<&str, OpsError> {
        Self::need(
            &self.queue_url,
            "the fan-out queue",
            "--queue-url",
            output::QUEUE_URL,
        )
    }

    pub fn dlq_url(&self) -> Result<&str, OpsError> {
        Self::need(
            &self.dlq_url,
            "the dead-letter queue",
            "--dlq-url",
            output::DLQ_URL,
        )
    }

    pub fn table(&self) -> Result<&str, OpsError> {
        Self::need(
            &self.table,
            "the connections table",
            "--table",
            output::TABLE,
        )
    }

    pub fn publish_url(&self) -> Result<&str, OpsError> {
        Self::need(
            &self.publish_url,
            "the publish endpoint",
            "--publish-url",
            output::PUBLISH_URL,
        )
    }

    pub fn management_endpoint(&self) -> Result<&str, OpsError> {
        Self::need(
            &self.management_endpoint,
            "the management endpoint",
            "--management-endpoint",
            output::MANAGEMENT_ENDPOINT,
        )
    }
}

/// The region in an SQS queue URL: `https://sqs.REGION.amazonaws.com/...` or the legacy
/// `https://REGION.queue.amazonaws.com/...`.
pub fn region_of_queue_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some((*region).to_owned()),
        [region, "queue", "amazonaws", ..] => Some((*region).to_owned()),
        _ => None,
    }
}

/// The queue's name: the last segment of its URL (the `QueueName` dimension of its metrics).
pub fn queue_name(url: &str) -> Option<&str> {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && !name.contains(':'))
}

/// Runs `terraform output -json` in `dir`, for at most [`TERRAFORM_TIMEOUT`].
pub async fn terraform_outputs(dir: &Path) -> Result<String, OpsError> {
    let run = tokio::process::Command::new("terraform")
        .args(["output", "-json"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(TERRAFORM_TIMEOUT, run).await {
        Err(_) => {
            return Err(OpsError::Unavailable(format!(
                "terraform output -json in {} took longer than {TERRAFORM_TIMEOUT:?}",
                dir.display()
            )));
        }
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpsError::Usage(
                "--terraform-dir needs the terraform command on PATH; or save \
                 `terraform output -json` to a file and pass --outputs FILE"
                    .into(),
            ));
        }
        Ok(Err(error)) => {
            return Err(OpsError::Unavailable(format!(
                "could not run terraform in {}: {error}",
                dir.display()
            )));
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(OpsError::Unavailable(format!(
            "terraform output -json in {} failed ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout).map_err(|_| {
        OpsError::Unavailable("terraform output -json printed something that is not UTF-8".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_outputs_the_cli_needs_and_flags_win() {
        let text = r#"{
          "fanout_queue_url": {"sensitive": false, "type": "string", "value": "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-prod-fanout"},
          "dead_letter_queue_url": {"sensitive": false, "type": "string", "value": "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-prod-fanout-dlq"},
          "connections_table_name": {"sensitive": false, "type": "string", "value": "chat-prod-connections"},
          "management_endpoint": {"sensitive": false, "type": "string", "value": "https://abc.execute-api.eu-west-1.amazonaws.com/prod"},
          "function_names": {"sensitive": false, "type": ["object", {}], "value": {"worker": "w"}},
          "alarm_topic_arn": {"sensitive": false, "type": "string", "value": null}
        }"#;
        let outputs = Resources::from_outputs_json(text).unwrap();
        assert_eq!(outputs.table.as_deref(), Some("chat-prod-connections"));
        assert_eq!(outputs.region, None);
        let flags = Resources {
            table: Some("other".into()),
            region: Some("us-east-2".into()),
            ..Resources::default()
        };
        let resources = outputs.overridden_by(flags);
        assert_eq!(resources.table().unwrap(), "other");
        assert_eq!(resources.region.as_deref(), Some("us-east-2"));
        assert!(resources.dlq_url().unwrap().ends_with("-dlq"));

        let error = Resources::default().table().unwrap_err().to_string();
        assert!(
            error.contains("--table") && error.contains("connections_table_name"),
            "{error}"
        );
        assert!(Resources::from_outputs_json("[]").is_err());
        assert!(Resources::from_outputs_json("not json").is_err());
        assert!(Resources::from_outputs_json(r#"{"connections_table_name":{"value":3}}"#).is_err());
    }

    #[test]
    fn queue_urls_name_their_region_and_queue() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-prod-fanout";
        assert_eq!(region_of_queue_url(url).as_deref(), Some("eu-west-1"));
        assert_eq!(
            region_of_queue_url("https://us-east-2.queue.amazonaws.com/1/q").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_of_queue_url("http://127.0.0.1:5000/123/q"), None);
        assert_eq!(queue_name(url), Some("chat-prod-fanout"));
        assert_eq!(
            queue_name("http://127.0.0.1:5000/123456789012/q-dlq"),
            Some("q-dlq")
        );
        assert_eq!(queue_name(""), None);
    }
}
