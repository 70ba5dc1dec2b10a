//! The AWS backend against moto (SQS, DynamoDB, CloudWatch, the management API), through the
//! library calls the CLI makes. What moto 5.2.5 lacks, and so what these tests accept:
//! `StartMessageMoveTask` (redrive without `--max` fails, naming `--max N`), and CloudWatch's
//! RPC v2 CBOR protocol that the current SDK speaks (the age of the oldest job is a note, not a
//! number).

use aws_sdk_sqs::types::QueueAttributeName;
use fanout::adapters::dynamodb::DynamoStore;
use fanout::adapters::sqs::SqsQueue;
use fanout::domain::{Connection, Job, RoomName, Target};
use fanout::ports::{ConnectionStore, JobQueue};
use fanout_test_support::moto::{
    connections_table, moto_endpoint, moto_sdk_config, receive_with_groups, unique,
};
use std::time::Duration;
use wsfanout_ops::aws::AwsBackend;
use wsfanout_ops::backend::{Backend, OpsError, RoomCount};
use wsfanout_ops::resources::Resources;
use wsfanout_ops::{Progress, publish_to};

/// A workspace in moto: the fan-out queue with its dead-letter queue (redrive policy and
/// all), the connections table, and the backend on them.
struct Workspace {
    sqs: aws_sdk_sqs::Client,
    store: DynamoStore,
    queue_url: String,
    dlq_url: String,
    backend: AwsBackend,
}

async fn workspace() -> Workspace {
    workspace_of(false).await
}

/// A workspace whose queues are standard, or FIFO (`ordering = "per_room"`).
async fn workspace_of(fifo: bool) -> Workspace {
    let sdk = moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = unique("ops");
    let suffix = if fifo { ".fifo" } else { "" };
    let fifo_attributes = || {
        let mut attributes = std::collections::HashMap::new();
        if fifo {
            attributes.insert(QueueAttributeName::FifoQueue, "true".to_owned());
            attributes.insert(
                QueueAttributeName::ContentBasedDeduplication,
                "false".to_owned(),
            );
        }
        attributes
    };
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq{suffix}"))
        .set_attributes(Some(fifo_attributes()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{name}{suffix}"))
        .set_attributes(Some(fifo_attributes()))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (table, store) = connections_table(&sdk, "ops-connections", None).await;
    let resources = Resources {
        queue_url: Some(queue_url.clone()),
        dlq_url: Some(dlq_url.clone()),
        table: Some(table),
        management_endpoint: Some(moto_endpoint()),
        region: None,
    };
    Workspace {
        backend: AwsBackend::new(&sdk, resources),
        sqs,
        store,
        queue_url,
        dlq_url,
    }
}

impl Workspace {
    fn producer(&self) -> SqsQueue {
        SqsQueue::from_client(self.sqs.clone(), self.queue_url.clone())
            .with_dead_letter_queue(self.dlq_url.clone())
    }

    async fn join(&self, room: &str, count: usize) {
        for i in 0..count {
            self.store
                .put(&Connection {
                    connection_id: format!("{room}-{i:03}="),
                    room: RoomName::parse(room).unwrap(),
                    connected_at: 1_795_780_800_123,
                    expires_at: 1_795_788_300,
                    principal: None,
                    allowance: None,
                })
                .await
                .unwrap();
        }
    }

    /// Everything on the fan-out queue now, deleted.
    async fn drain(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if received.is_empty() {
                return bodies;
            }
            for message in received {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
                bodies.push(message.body.unwrap());
            }
        }
    }
}

fn job(id: &str, room: &str) -> Job {
    Job::parse(&format!(
        r#"{{"v":1,"id":"{id}","target":{{"room":"{room}"}},"payload":"parked {id}","sentAt":1}}"#
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_depths_dead_letters_connections_and_the_largest_rooms() {
    let w = workspace().await;
    let producer = w.producer();
    for id in ["a", "b"] {
        producer
            .enqueue(&job(id, "big"), Duration::ZERO)
            .await
            .unwrap();
    }
    producer
        .enqueue(&job("later", "big"), Duration::from_secs(120))
        .await
        .unwrap();
    let taken = w
        .sqs
        .receive_message()
        .queue_url(&w.queue_url)
        .max_number_of_messages(1)
        .visibility_timeout(120)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.messages.unwrap_or_default().len(), 1);
    producer.dead_letter("{bad", "not JSON").await.unwrap();
    w.join("big", 3).await;
    w.join("small", 1).await;

    let status = w.backend.status(1, &Progress::hidden()).await.unwrap();
    let queue = &status.queue;
    assert_eq!(
        (queue.ready, queue.in_flight, queue.delayed, queue.dead),
        (1, 1, 1, 1),
        "{status:?}"
    );
    assert_eq!(status.connections, 4);
    assert_eq!(
        status.rooms,
        vec![RoomCount {
            room: "big".into(),
            members: 3
        }]
    );
    // moto answers no CloudWatch request of the SDK's protocol (RPC v2 CBOR): the age is
    // unknown and the note says why; on AWS it is the latest ApproximateAgeOfOldestMessage.
    match queue.oldest_age_ms {
        Some(_) => assert!(status.notes.is_empty(), "{status:?}"),
        None => assert!(
            status
                .notes
                .iter()
                .any(|note| note.contains("ApproximateAgeOfOldestMessage")),
            "{status:?}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_puts_the_job_sendmessage_writes_on_the_queue() {
    let w = workspace().await;
    let room = RoomName::parse("ops").unwrap();
    let published = publish_to(&w.backend, Target::Room(room.clone()), r#"{"text":"hi"}"#)
        .await
        .unwrap();
    let everyone = publish_to(&w.backend, Target::All, "\"everyone\"")
        .await
        .unwrap();
    assert_eq!(published.target, "room ops");

    let bodies = w.drain().await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let jobs: Vec<Job> = bodies
        .iter()
        .map(|body| Job::parse(body).expect("the worker accepts it"))
        .collect();
    let to_room = jobs
        .iter()
        .find(|j| j.id == published.id)
        .expect("the room's job");
    assert_eq!(to_room.target, Target::Room(room));
    assert_eq!(to_room.payload.get(), r#"{"text":"hi"}"#);
    assert_eq!(
        (to_room.sender.as_deref(), to_room.endpoint.as_deref()),
        (None, None)
    );
    assert_eq!(
        bodies.iter().find(|b| b.contains(&published.id)).unwrap(),
        &to_room.to_json()
    );
    let to_all = jobs
        .iter()
        .find(|j| j.id == everyone.id)
        .expect("the job for all");
    assert_eq!(to_all.target, Target::All);
    assert_ne!(published.id, everyone.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_queue_is_listed_shown_and_redriven_by_receive_send_delete() {
    let w = workspace().await;
    let producer = w.producer();
    for id in ["p1", "p2", "p3"] {
        producer
            .dead_letter(
                &job(id, "ops").to_json(),
                &format!("retry budget spent for {id}"),
            )
            .await
            .unwrap();
    }
    let progress = Progress::hidden();
    let list = w.backend.dlq_list(100, &progress).await.unwrap();
    assert_eq!((list.total, list.messages.len()), (3, 3), "{list:?}");
    assert!(list.messages.iter().all(|m| m.parked_at_ms.is_some()));
    let p2 = list
        .messages
        .iter()
        .find(|m| m.body.contains("\"p2\""))
        .expect("p2 is listed");
    assert_eq!(p2.reason.as_deref(), Some("retry budget spent for p2"));
    // Listing leaves them there, visible: a second listing sees them all again.
    assert_eq!(
        w.backend
            .dlq_list(100, &progress)
            .await
            .unwrap()
            .messages
            .len(),
        3
    );
    let shown = w.backend.dlq_show(&p2.id, &progress).await.unwrap();
    assert_eq!(&shown, p2);
    assert!(matches!(
        w.backend.dlq_show("no-such-id", &progress).await,
        Err(OpsError::NotFound(_))
    ));

    let redrive = w
        .backend
        .dlq_redrive(Some(2), Duration::from_secs(10), &progress)
        .await
        .unwrap();
    assert_eq!(
        (redrive.moved, redrive.remaining),
        (2, Some(1)),
        "{redrive:?}"
    );
    assert_eq!(redrive.method, "receive, send, delete");
    let moved = w.drain().await;
    assert_eq!(moved.len(), 2);
    for body in &moved {
        Job::parse(body).expect("a redriven job is the parked job");
    }

    // moto 5.2.5 has no StartMessageMoveTask: the error says so and names --max.
    match w
        .backend
        .dlq_redrive(None, Duration::from_secs(10), &progress)
        .await
    {
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.contains("StartMessageMoveTask") && text.contains("--max"),
                "{text}"
            );
        }
        Ok(redrive) => assert_eq!(redrive.moved, 1, "{redrive:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_dead_letter_queue_is_redriven_into_each_jobs_room_group() {
    let w = workspace_of(true).await;
    let producer = w.producer();
    producer
        .dead_letter(&job("p1", "ops").to_json(), "retry budget spent")
        .await
        .unwrap();
    producer
        .dead_letter("not a job", "malformed")
        .await
        .unwrap();

    let redrive = w
        .backend
        .dlq_redrive(Some(2), Duration::from_secs(10), &Progress::hidden())
        .await
        .unwrap();

    assert_eq!(redrive.moved, 2, "{redrive:?}");
    let groups: std::collections::HashMap<String, String> =
        receive_with_groups(&w.sqs, &w.queue_url)
            .await
            .into_iter()
            .collect();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[&job("p1", "ops").to_json()], "ops");
    assert_ne!(groups["not a job"], "ops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_counts_the_tables_items_by_room() {
    let w = workspace().await;
    w.join("lobby", 4).await;
    w.join("b-room", 2).await;
    w.join("a-room", 2).await;
    let rooms = w.backend.rooms(&Progress::hidden()).await.unwrap();
    assert_eq!(rooms.connections, 8);
    let listed: Vec<(&str, u64)> = rooms
        .rooms
        .iter()
        .map(|r| (r.room.as_str(), r.members))
        .collect();
    assert_eq!(listed, [("lobby", 4), ("a-room", 2), ("b-room", 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_deletes_the_connection_through_the_management_api() {
    let w = workspace().await;
    w.backend
        .kick("Dx4sXe1ZoAMCJvw=")
        .await
        .expect("moto's management API accepts DELETE @connections/{id}");
}
