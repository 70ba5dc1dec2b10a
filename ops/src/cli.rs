//! The command line.

use clap::{ArgGroup, Args, Parser, Subcommand};
use fanout::auth::ADMIN_TOKEN_ENV;
use fanout::domain::{IdempotencyKey, RoomName};
use std::path::PathBuf;
use std::time::Duration;

/// Operate a wsfanout pipeline: a deployed workspace (its resources from `terraform output
/// -json` or flags) or the local stack (by its URL).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "wsfanout",
    version,
    after_help = "Where it runs:\n  \
        --local http://127.0.0.1:8080        the local stack (fanout-local)\n  \
        --terraform-dir terraform            a workspace: runs `terraform output -json` there\n  \
        --outputs outputs.json               a workspace: a saved `terraform output -json`\n  \
        --queue-url ... --dlq-url ... --table ... --management-endpoint ...   a workspace by hand \
        (flags override outputs)\n\n\
        On AWS, credentials and region come from the SDK's usual chain (AWS_PROFILE, AWS_REGION, \
        ...), and AWS_ENDPOINT_URL points every service but the management API elsewhere."
)]
pub struct Cli {
    #[command(flatten)]
    pub place: Place,

    /// Print machine-readable JSON instead of tables (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the pipeline runs.
#[derive(Args, Debug, Clone, Default)]
pub struct Place {
    /// The local stack's base URL, as fanout-local prints it (http://127.0.0.1:8080).
    #[arg(long, global = true, value_name = "URL")]
    pub local: Option<String>,

    /// The local stack's admin token, as fanout-local prints it at start (with --local).
    #[arg(long, global = true, value_name = "TOKEN", env = ADMIN_TOKEN_ENV, hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A Terraform working directory of the deployed stack (the selected workspace's outputs).
    #[arg(long, global = true, value_name = "DIR")]
    pub terraform_dir: Option<PathBuf>,

    /// A file holding `terraform output -json`.
    #[arg(long, global = true, value_name = "FILE")]
    pub outputs: Option<PathBuf>,

    /// The fan-out queue's URL (output fanout_queue_url).
    #[arg(long, global = true, value_name = "URL")]
    pub queue_url: Option<String>,

    /// The dead-letter queue's URL (output dead_letter_queue_url).
    #[arg(long, global = true, value_name = "URL")]
    pub dlq_url: Option<String>,

    /// The connections table (output connections_table_name).
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,

    /// The API's management endpoint, https://{api}.execute-api.{region}.amazonaws.com/{stage}
    /// (output management_endpoint).
    #[arg(long, global = true, value_name = "URL")]
    pub management_endpoint: Option<String>,

    /// The publish endpoint's URL, https://{api}.execute-api.{region}.amazonaws.com/publish
    /// (output publish_url).
    #[arg(long, global = true, value_name = "URL")]
    pub publish_url: Option<String>,

    /// The AWS region (output region; else AWS_REGION or the profile's, else the queue URL's).
    #[arg(long, global = true)]
    pub region: Option<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Queue depth, in flight, age of the oldest job, DLQ depth, connections, largest rooms.
    Status {
        /// How many of the largest rooms to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The dead-letter queue: list, show, redrive.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Announce to a room's members, or to everyone, through the publish endpoint (signed with
    /// your AWS credentials): a message to a room takes the room's next offset and is kept in
    /// its history, like one a member sends.
    #[command(group(ArgGroup::new("to").required(true).args(["room", "all"])))]
    Publish {
        /// The room to announce to.
        #[arg(long, value_parser = parse_room)]
        room: Option<RoomName>,
        /// Announce to every connection.
        #[arg(long)]
        all: bool,
        /// What members receive as `data`: any JSON but null, for example '"hi"' or
        /// '{"text":"maintenance at 17:00"}'.
        #[arg(long, value_name = "JSON")]
        data: String,
        /// Publishes nothing again if this key was published within the last day (the
        /// answer is the first's). Default: a fresh key, reused by this command's own retries.
        #[arg(long, value_name = "KEY", value_parser = parse_key)]
        idempotency_key: Option<IdempotencyKey>,
    },
    /// Every room by members, most first.
    Rooms {
        /// Only the largest N.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
    },
    /// Close a connection through the management API (DELETE @connections/ID); its
    /// $disconnect follows.
    Kick {
        /// The connection id (as in frames' `from`).
        connection_id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum Dlq {
    /// The parked jobs, oldest first, with why each was parked (they stay parked).
    List {
        /// Read at most N.
        #[arg(long, default_value_t = 100, value_name = "N")]
        max: usize,
    },
    /// One parked job, whole.
    Show {
        /// Its message id, as `dlq list` shows it.
        id: String,
    },
    /// Move parked jobs back to the fan-out queue: all through SQS's StartMessageMoveTask, or
    /// `--max N` of them by receive, send and delete.
    Redrive {
        /// Move at most N.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// How long to follow a move task before returning (it goes on in SQS).
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
}

fn parse_room(text: &str) -> Result<RoomName, String> {
    RoomName::parse(text).map_err(|invalid| invalid.to_string())
}

fn parse_key(text: &str) -> Result<IdempotencyKey, String> {
    IdempotencyKey::parse(text).map_err(|invalid| invalid.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once(&"wsfanout").chain(args))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn reads_commands_and_global_flags_anywhere() {
        let cli = parse(&["status", "--local", "http://127.0.0.1:8080", "--json"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.place.local.as_deref(), Some("http://127.0.0.1:8080"));
        assert!(matches!(cli.command, Command::Status { top: 10 }));

        let cli = parse(&["--outputs", "o.json", "dlq", "redrive", "--max", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Dlq(Dlq::Redrive { max: Some(3), .. })
        ));
        assert!(parse(&["dlq", "redrive", "--max", "0"]).is_err());

        let cli = parse(&[
            "publish",
            "--room",
            "ops",
            "--data",
            "\"hi\"",
            "--idempotency-key",
            "order-17",
        ])
        .unwrap();
        match cli.command {
            Command::Publish {
                room,
                all,
                data,
                idempotency_key,
            } => {
                assert_eq!(room.unwrap().as_str(), "ops");
                assert!(!all);
                assert_eq!(data, "\"hi\"");
                assert_eq!(idempotency_key.unwrap().as_str(), "order-17");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_needs_exactly_one_target_and_a_valid_room() {
        assert!(parse(&["publish", "--data", "1"]).is_err());
        assert!(parse(&["publish", "--all", "--room", "a", "--data", "1"]).is_err());
        let error = parse(&["publish", "--room", "a b", "--data", "1"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("allowed characters"), "{error}");
        assert!(parse(&["publish", "--all", "--data", "1"]).is_ok());
        let error = parse(&[
            "publish",
            "--all",
            "--data",
            "1",
            "--idempotency-key",
            "a b",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("printable"), "{error}");
    }
}
