//! # wsfanout: the operators' CLI
//!
//! `wsfanout` answers the questions an operator of the pipeline asks, against a deployed
//! workspace or the local stack, with the same commands:
//!
//! - `status`: queue depth, jobs in flight, age of the oldest job, dead-letter depth,
//!   connections and the largest rooms;
//! - `dlq list`, `dlq show ID`, `dlq redrive [--max N]`: the dead-letter queue;
//! - `publish --room R --data JSON` / `publish --all --data JSON`: an announcement through the
//!   publish endpoint, signed with SigV4 ([`publish::send`]): the deployed HTTP API's, or the
//!   local stack's `/publish`;
//! - `rooms`: rooms by members; `kick ID`: close a connection through `@connections`.
//!
//! Modules: [`cli`] the command line; [`backend`] the [`Backend`] trait and its answers;
//! [`aws`] and [`local`] its two implementations; [`resources`] a workspace's resources from
//! Terraform outputs and flags; [`publish`] the publish request; [`render`] tables and JSON;
//! [`progress`] progress bars. `main.rs` only parses, calls [`run`] and prints.

pub mod aws;
pub mod backend;
pub mod cli;
pub mod local;
pub mod progress;
pub mod publish;
pub mod render;
pub mod resources;

pub use backend::{Backend, OpsError};
pub use cli::{Cli, Command, Dlq};
pub use progress::Progress;
pub use render::Output;

use backend::{Kicked, Published};
use fanout::domain::{IdempotencyKey, Target};
use resources::Resources;

/// Runs the command line: connects to where it says, runs the command.
pub async fn run(cli: &Cli) -> Result<Output, OpsError> {
    let progress = Progress::new(!cli.json);
    let backend = connect(&cli.place).await?;
    execute(&*backend, &cli.command, &progress).await
}

/// The backend `place` names: the local stack, or a workspace's resources.
pub async fn connect(place: &cli::Place) -> Result<Box<dyn Backend>, OpsError> {
    let flags = Resources {
        queue_url: place.queue_url.clone(),
        dlq_url: place.dlq_url.clone(),
        table: place.table.clone(),
        management_endpoint: place.management_endpoint.clone(),
        region: place.region.clone(),
        publish_url: place.publish_url.clone(),
    };
    if let Some(url) = &place.local {
        if place.terraform_dir.is_some() || place.outputs.is_some() || !flags.is_empty() {
            return Err(OpsError::Usage(
                "--local names the local stack: leave out --terraform-dir, --outputs and the \
                 resource flags"
                    .into(),
            ));
        }
        let mut backend = local::LocalBackend::new(url)?;
        if let Some(token) = &place.admin_token {
            backend = backend.with_admin_token(token);
        }
        return Ok(Box::new(backend));
    }
    let outputs = match (&place.terraform_dir, &place.outputs) {
        (Some(_), Some(_)) => {
            return Err(OpsError::Usage(
                "give --terraform-dir or --outputs, not both".into(),
            ));
        }
        (Some(dir), None) => {
            Resources::from_outputs_json(&resources::terraform_outputs(dir).await?)?
        }
        (None, Some(file)) => {
            let text = tokio::fs::read_to_string(file).await.map_err(|error| {
                OpsError::Usage(format!("cannot read --outputs {}: {error}", file.display()))
            })?;
            Resources::from_outputs_json(&text)?
        }
        (None, None) => Resources::default(),
    };
    let resources = outputs.overridden_by(flags);
    if resources.is_empty() {
        return Err(OpsError::Usage(
            "say where the pipeline runs: --local URL for the local stack, or --terraform-dir \
             DIR, --outputs FILE or --queue-url/--dlq-url/--table/--management-endpoint for a \
             workspace (wsfanout --help)"
                .into(),
        ));
    }
    let sdk = aws::sdk_config(resources.region.as_deref(), resources.queue_url.as_deref()).await;
    Ok(Box::new(aws::AwsBackend::new(&sdk, resources)))
}

/// Runs one command on a backend.
pub async fn execute(
    backend: &dyn Backend,
    command: &Command,
    progress: &Progress,
) -> Result<Output, OpsError> {
    Ok(match command {
        Command::Status { top } => Output::Status(backend.status(*top, progress).await?),
        Command::Rooms { top } => {
            let mut rooms = backend.rooms(progress).await?;
            if let Some(top) = top {
                rooms.rooms.truncate(*top);
            }
            Output::Rooms(rooms)
        }
        Command::Dlq(Dlq::List { max }) => {
            Output::DeadLetters(backend.dlq_list(*max, progress).await?)
        }
        Command::Dlq(Dlq::Show { id }) => Output::DeadLetter(backend.dlq_show(id, progress).await?),
        Command::Dlq(Dlq::Redrive { max, wait }) => {
            Output::Redrive(backend.dlq_redrive(*max, *wait, progress).await?)
        }
        Command::Publish {
            room,
            all: _,
            data,
            idempotency_key,
        } => {
            let target = match room {
                Some(room) => Target::Room(room.clone()),
                None => Target::All,
            };
            Output::Published(publish_to(backend, target, data, idempotency_key.clone()).await?)
        }
        Command::Kick { connection_id } => {
            backend.kick(connection_id).await?;
            Output::Kicked(Kicked {
                connection_id: connection_id.clone(),
            })
        }
    })
}

/// Publishes `data` to `target` through the publish endpoint, under `key` (a fresh one if
/// none).
pub async fn publish_to(
    backend: &dyn Backend,
    target: Target,
    data: &str,
    key: Option<IdempotencyKey>,
) -> Result<Published, OpsError> {
    let key = match key {
        Some(key) => key,
        None => IdempotencyKey::parse(&uuid::Uuid::now_v7().to_string())
            .map_err(|error| OpsError::Usage(error.message))?,
    };
    let body = publish::request_body(&target, data, &key)?;
    let answer = backend.publish(body).await.map_err(|error| {
        let again = format!(
            "publish again with --idempotency-key {} to publish it at most once",
            key.as_str()
        );
        match error {
            OpsError::Unavailable(why) => OpsError::Unavailable(format!("{why} ({again})")),
            other => other,
        }
    })?;
    Ok(Published {
        id: answer.id,
        target: publish::describe_target(&target),
        offset: answer.offset,
        epoch: answer.epoch,
        idempotency_key: key.as_str().to_owned(),
    })
}
