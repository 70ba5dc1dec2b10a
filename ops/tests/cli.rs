//! The `wsfanout` binary itself: a workspace found through Terraform's outputs (a saved file, or
//! `terraform output -json` run in a directory) on moto, `--json` and tables, and errors as a
//! message and a non-zero exit, never a panic.

use fanout::domain::{Connection, RoomName};
use fanout::ports::ConnectionStore;
use fanout_test_support::moto::{
    connections_table, create_queue, moto_endpoint, moto_sdk_config, unique,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `wsfanout ARGS` against moto, with `path_prefix` (if any) first on PATH.
fn wsfanout(args: &[&str], path_prefix: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsfanout"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    if let Some(prefix) = path_prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![prefix.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(paths).unwrap());
    }
    command.output().expect("run wsfanout")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A queue with its dead-letter queue and a table of three connections in moto; their
/// `terraform output -json`.
async fn deployed() -> Value {
    let sdk = moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut urls = Vec::new();
    let name = unique("cli");
    for queue in [format!("{name}-dlq"), name.clone()] {
        urls.push(create_queue(&sqs, &queue).await);
    }
    sqs.send_message()
        .queue_url(&urls[0])
        .message_body("{parked")
        .message_attributes(
            "reason",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("not JSON")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (table, store) = connections_table(&sdk, "cli-connections", None).await;
    for (id, room) in [("a1=", "alpha"), ("a2=", "alpha"), ("b1=", "beta")] {
        store
            .put(&Connection::in_room(
                id,
                RoomName::parse(room).unwrap(),
                1,
                2,
            ))
            .await
            .unwrap();
    }
    let output = |value: &str| json!({"sensitive": false, "type": "string", "value": value});
    json!({
        "fanout_queue_url": output(&urls[1]),
        "dead_letter_queue_url": output(&urls[0]),
        "connections_table_name": output(&table),
        "management_endpoint": output(&moto_endpoint()),
        "region": output("us-east-1"),
        "function_names": {"sensitive": false, "type": ["object", {}], "value": {"worker": "w"}},
        "alarm_topic_arn": {"sensitive": false, "type": "string", "value": null},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_terraform_output_names_the_workspace_for_json_and_tables() {
    let outputs = deployed().await;
    let dir = scratch("outputs");
    let file = dir.join("outputs.json");
    std::fs::write(&file, outputs.to_string()).unwrap();
    let file = file.to_str().unwrap();

    let run = wsfanout(&["--outputs", file, "status", "--json"], None);
    assert!(run.status.success(), "{}", stderr(&run));
    let status: Value = serde_json::from_str(&stdout(&run)).expect("JSON on stdout");
    assert_eq!(status["queue"]["ready"], 0, "{status}");
    assert_eq!(status["queue"]["dead"], 1, "{status}");
    assert_eq!(status["connections"], 3, "{status}");
    assert_eq!(status["rooms"][0], json!({"room": "alpha", "members": 2}));

    let run = wsfanout(&["status", "--outputs", file], None);
    assert!(run.status.success(), "{}", stderr(&run));
    let table = stdout(&run);
    assert!(
        table.contains("dead-letter queue") && table.contains("alpha"),
        "{table}"
    );

    let run = wsfanout(&["--outputs", file, "dlq", "list"], None);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("not JSON"), "{}", stdout(&run));

    // Flags override outputs: a table that does not exist fails, saying so.
    let run = wsfanout(&["--outputs", file, "--table", "missing", "rooms"], None);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("missing"), "{}", stderr(&run));
    assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_dir_runs_terraform_output_there() {
    let outputs = deployed().await;
    let workdir = scratch("terraform");
    std::fs::write(workdir.join("outputs.json"), outputs.to_string()).unwrap();
    // A stand-in for terraform: `terraform output -json` prints the workspace's outputs.
    let bin = scratch("bin");
    let script = bin.join("terraform");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1 $2\" = \"output -json\" ] || exit 3\ncat outputs.json\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = wsfanout(
        &[
            "--terraform-dir",
            workdir.to_str().unwrap(),
            "rooms",
            "--json",
        ],
        Some(&bin),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let rooms: Value = serde_json::from_str(&stdout(&run)).unwrap();
    assert_eq!(
        rooms,
        json!({"connections": 3, "rooms": [{"room": "alpha", "members": 2}, {"room": "beta", "members": 1}]})
    );
}

#[test]
fn errors_are_a_message_and_a_non_zero_exit() {
    let nothing_listens = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (args, code, says) in [
        (vec!["status"], 1, "say where the pipeline runs"),
        (
            vec!["--local", nothing_listens.as_str(), "status"],
            1,
            "cannot reach the local stack",
        ),
        (vec!["--local", "https://127.0.0.1:1", "rooms"], 1, "no TLS"),
        (
            vec!["--outputs", "/nonexistent/outputs.json", "status"],
            1,
            "cannot read --outputs",
        ),
        (
            vec![
                "--local",
                nothing_listens.as_str(),
                "publish",
                "--all",
                "--data",
                "{",
            ],
            1,
            "--data is not JSON",
        ),
        (
            vec![
                "--local",
                nothing_listens.as_str(),
                "--table",
                "t",
                "status",
            ],
            1,
            "--local names the local stack",
        ),
        (
            vec!["publish", "--room", "no spaces", "--data", "1"],
            2,
            "allowed characters",
        ),
        (vec!["dlq"], 2, "Usage"),
    ] {
        let run = wsfanout(&args, None);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(stdout(&run).is_empty(), "{args:?}");
    }
}
