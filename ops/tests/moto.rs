//! The AWS backend against moto (SQS, DynamoDB, CloudWatch, the management API), through the
//! library calls the CLI makes. What moto 5.2.5 lacks, and so what these tests accept:
//! `StartMessageMoveTask` (redrive without `--max` fails, naming `--max N`), and CloudWatch's
//! RPC v2 CBOR protocol that the current SDK speaks (the age of the oldest job is a note, not a
//! number).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use fanout::adapters::dynamodb::DynamoStore;
use fanout::adapters::history_table::{DynamoHistory, HistoryTableConfig};
use fanout::adapters::publish_log_table::DynamoPublishLog;
use fanout::adapters::sqs::SqsQueue;
use fanout::auth::sigv4;
use fanout::domain::history::HistoryConfig;
use fanout::domain::{Connection, ErrorCode, IdempotencyKey, Job, RoomName, Target};
use fanout::handlers::publish::{Publish, PublishConfig};
use fanout::metrics::SendMetrics;
use fanout::ports::{ConnectionStore, JobQueue};
use fanout_test_support::moto::{
    connections_table, moto_endpoint, moto_sdk_config, receive_with_groups, unique,
};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;
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
        publish_url: None,
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
                .put(&Connection::in_room(
                    format!("{room}-{i:03}="),
                    RoomName::parse(room).unwrap(),
                    1_795_780_800_123,
                    1_795_788_300,
                ))
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

/// The publish Lambda on moto's queue and history table, behind a door that checks SigV4 as
/// the HTTP API's `AWS_IAM` route does (with moto's credentials): its URL.
async fn publish_endpoint(w: &Workspace) -> String {
    let sdk = moto_sdk_config().await;
    let table = HistoryTableConfig {
        table: unique("ops-history"),
    };
    let history = DynamoHistory::new(&sdk, table.clone());
    history.create_table().await.unwrap();
    let lambda = Arc::new((
        w.producer(),
        history,
        DynamoPublishLog::new(&sdk, table),
        PublishConfig {
            max_data_bytes: 64 * 1024,
            history: HistoryConfig::default(),
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/publish", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let lambda = lambda.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let lambda = lambda.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let headers: Vec<(String, String)> = parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                            .collect();
                        let received = sigv4::Received {
                            method: parts.method.as_str(),
                            path_and_query: parts.uri.path(),
                            headers: &headers,
                            body: &body,
                        };
                        if let Err(reason) =
                            sigv4::verify(&received, "testing", "testing", SystemTime::now())
                        {
                            return Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(403)
                                    .body(Full::new(Bytes::from(reason)))
                                    .unwrap(),
                            );
                        }
                        let (queue, history, keys, config) = &*lambda;
                        let handler = Publish {
                            queue,
                            history,
                            keys,
                            config,
                            metrics: &NoMetrics,
                        };
                        let mut event = ApiGatewayV2httpRequest::default();
                        event.body = Some(String::from_utf8(body.to_vec()).unwrap());
                        let answer = handler.handle(event, SystemTime::now()).await;
                        let Some(Body::Text(text)) = answer.body else {
                            panic!("{answer:?}")
                        };
                        Ok(Response::builder()
                            .status(u16::try_from(answer.status_code).unwrap())
                            .body(Full::new(Bytes::from(text)))
                            .unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    url
}

struct NoMetrics;

impl SendMetrics for NoMetrics {
    fn accepted(&self) {}
    fn refused(&self, _: ErrorCode) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_signs_for_the_publish_endpoint_which_numbers_and_enqueues_the_job() {
    let mut w = workspace().await;
    let url = publish_endpoint(&w).await;
    w.backend = AwsBackend::new(
        &moto_sdk_config().await,
        Resources {
            publish_url: Some(url.clone()),
            ..w.backend.resources().clone()
        },
    );
    let room = RoomName::parse("ops").unwrap();
    let key = IdempotencyKey::parse("announcement-1").unwrap();
    let published = publish_to(
        &w.backend,
        Target::Room(room.clone()),
        r#"{"text":"hi"}"#,
        Some(key.clone()),
    )
    .await
    .unwrap();
    assert_eq!(published.target, "room ops");
    assert_eq!(published.offset, Some(1));
    let again = publish_to(
        &w.backend,
        Target::Room(room.clone()),
        r#"{"text":"hi"}"#,
        Some(key),
    )
    .await
    .unwrap();
    assert_eq!(again, published, "the same key publishes nothing again");
    let everyone = publish_to(&w.backend, Target::All, "\"everyone\"", None)
        .await
        .unwrap();
    assert_eq!(everyone.offset, None);

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
        (to_room.offset, to_room.epoch.clone()),
        (Some(1), published.epoch.clone())
    );
    assert_eq!(
        (to_room.sender.as_deref(), to_room.endpoint.as_deref()),
        (None, None)
    );
    let to_all = jobs
        .iter()
        .find(|j| j.id == everyone.id)
        .expect("the job for all");
    assert_eq!(to_all.target, Target::All);

    // Credentials the endpoint does not take: refused, with the reason, and nothing sent.
    let stranger = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("intruder", "guess", None, None, "test"),
            ),
        )
        .build();
    let body = wsfanout_ops::publish::request_body(
        &Target::All,
        "1",
        &IdempotencyKey::parse("k").unwrap(),
    )
    .unwrap();
    let refused = wsfanout_ops::publish::send(&stranger, None, &url, body)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("403") && refused.contains("not allowed"),
        "{refused}"
    );
    assert!(w.drain().await.is_empty());
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

/// A body in the dead-letter queue that is not a job (one SQS moved there itself, or a
/// producer's mistake) is left there by `--max N`, named with why: the worker would only park
/// it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_leaves_what_is_not_a_job_in_the_dead_letter_queue() {
    let w = workspace().await;
    let producer = w.producer();
    producer
        .dead_letter(&job("p1", "ops").to_json(), "retry budget spent")
        .await
        .unwrap();
    producer
        .dead_letter("{\"not\":\"a job\"}", "the body is not a job")
        .await
        .unwrap();

    let redrive = w
        .backend
        .dlq_redrive(Some(5), Duration::from_secs(10), &Progress::hidden())
        .await
        .unwrap();

    assert_eq!(redrive.moved, 1, "{redrive:?}");
    assert_eq!(redrive.not_jobs.len(), 1, "{redrive:?}");
    assert!(
        redrive.not_jobs[0].contains("not valid JSON"),
        "{redrive:?}"
    );
    let moved = w.drain().await;
    assert_eq!(moved.len(), 1);
    assert_eq!(Job::parse(&moved[0]).unwrap().id, "p1");
    // Left visible, as a listing leaves what it read: `dlq list` and `dlq show` find at once
    // what the redrive named (not after the 60 s it was received for).
    let list = w.backend.dlq_list(10, &Progress::hidden()).await.unwrap();
    assert_eq!(list.messages.len(), 1, "{list:?}");
    assert!(
        redrive.not_jobs[0].starts_with(&format!("{}: ", list.messages[0].id)),
        "{redrive:?}"
    );
}

/// A body that is not a job comes back within a run once the run outlasts the invisibility it
/// was received with (here none: it comes back at once, as after 60 s in a longer run). It is
/// named once; ten of them coming back together (a whole receive of them) do not end the run
/// with jobs left behind, nor keep it going; and it is left visible, so that a listing finds
/// it at once and a second redrive names it again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_job_and_comes_back_is_named_once_and_the_run_still_ends() {
    let w = workspace().await;
    let producer = w.producer();
    // Parked first: on moto, a receive of ten gets them before any job, whenever they are
    // visible.
    for i in 0..10 {
        producer
            .dead_letter(&format!("not a job {i}"), "the body is not a job")
            .await
            .unwrap();
    }
    for i in 0..25 {
        producer
            .dead_letter(
                &job(&format!("p{i}"), "ops").to_json(),
                "retry budget spent",
            )
            .await
            .unwrap();
    }
    let at_once = AwsBackend::new(&moto_sdk_config().await, w.backend.resources().clone())
        .with_move_visibility(Duration::ZERO);

    let redrive = tokio::time::timeout(
        Duration::from_secs(60),
        at_once.dlq_redrive(Some(100), Duration::from_secs(10), &Progress::hidden()),
    )
    .await
    .expect("the redrive ends")
    .unwrap();

    assert_eq!(redrive.moved, 25, "{redrive:?}");
    let named: std::collections::BTreeSet<&str> = redrive
        .not_jobs
        .iter()
        .map(|line| line.split_once(':').unwrap().0)
        .collect();
    assert_eq!(
        (redrive.not_jobs.len(), named.len()),
        (10, 10),
        "each named once: {redrive:?}"
    );
    assert_eq!(w.drain().await.len(), 25);
    let list = w.backend.dlq_list(100, &Progress::hidden()).await.unwrap();
    let listed: std::collections::BTreeSet<&str> =
        list.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(listed, named, "left in the DLQ, visible: {list:?}");

    let again = at_once
        .dlq_redrive(Some(100), Duration::from_secs(10), &Progress::hidden())
        .await
        .unwrap();
    assert_eq!((again.moved, again.not_jobs.len()), (0, 10), "{again:?}");
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
        .dead_letter(&job("p2", "lobby").to_json(), "retry budget spent")
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
    assert_eq!(groups[&job("p2", "lobby").to_json()], "lobby");
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
