//! The operators' API of the local stack, under `/admin`: what `wsfanout --local URL` (the ops
//! CLI, `ops/`) reads and does, and what an operator can call with curl, given this run's admin
//! token: `Authorization: Bearer TOKEN` on every request (401 without it), and
//! `Content-Type: application/json` on a POST (415 without it); see [`crate::access`]. It
//! answers what the deployed stack's SQS, DynamoDB and CloudWatch answer the CLI there. Every
//! answer is JSON; an error is `{"error":"what went wrong"}` with a 4xx or 5xx status (a
//! refusal by [`crate::access`], `{"message":"..."}`).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /admin/info` | `{"stage":"local","websocketUrl":"ws://HOST/local","managementEndpoint":"http://HOST/local","queue":"memory","ordering":"none"}` (`queue` is `memory` or `sqs`; `ordering` is `none` or `per_room`, a FIFO queue) |
//! | `GET /admin/status?top=N` | `{"queue":{"ordering":"none","ready":0,"inFlight":0,"delayed":0,"dead":1,"oldestReadyAgeMs":null},"connections":{"stored":3,"open":3},"rooms":[{"room":"lobby","members":2}]}`: the `N` (default 10) largest rooms |
//! | `GET /admin/rooms?top=N` | `{"connections":3,"rooms":[{"room":"lobby","members":2},{"room":"ops","members":1}]}`: every room (or the `N` largest) by members, most first, then by name |
//! | `GET /admin/dlq?max=N` | `{"total":2,"messages":[{"id":"...","reason":"...","body":"...","parkedAt":1795780800123,"sentAt":1795780800001}]}`: the dead-letter queue, oldest first, at most `N` |
//! | `GET /admin/dlq/{id}` | one such message, or 404 |
//! | `POST /admin/dlq/redrive?max=N` | `{"moved":1,"remaining":1}`: moves up to `N` parked messages (all without `max`), oldest first, back to the fan-out queue as new messages |
//!
//! Publishing is `POST /publish`, the backends' own door, signed ([`crate::publish`]); kicking a
//! connection needs nothing here either: `DELETE /{stage}/@connections/{id}` is the
//! management API's own ([`crate::management`]).
//!
//! `queue.*` are the fan-out queue's messages by state, and `dead` the dead-letter queue's (on
//! a FIFO queue `ready` includes the messages waiting behind one of their room's in flight);
//! `oldestReadyAgeMs` is how long the oldest message ready to be received has been on the
//! queue (`null` when none is), SQS's `ApproximateAgeOfOldestMessage` less the messages in
//! flight. `connections.stored` counts the connection store's items (what a fan-out reaches),
//! `open` the sockets open now. Rooms are counted from the store, page by page.
//!
//! The dead-letter queue's endpoints need the in-memory queue; on the aws backend (SQS, in moto
//! or AWS) they answer 501: point `wsfanout` at those queues with `--queue-url` and `--dlq-url`
//! instead. `oldestReadyAgeMs` is `null` there too.

use crate::access;
use crate::app::App;
use crate::options::MessageOrder;
use crate::queue::{LocalQueue, Parked};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fanout::domain::Segment;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest a count of the rooms may take (the store is paged to its end).
const COUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest rooms `status` lists by default.
const DEFAULT_TOP: usize = 10;

struct Admin {
    app: Arc<App>,
    /// The in-memory queue, when the stack runs on it.
    queue: Option<Arc<LocalQueue>>,
}

/// The `/admin` routes, on their own state, to merge into the stack's router.
pub fn router(app: Arc<App>, queue: Option<Arc<LocalQueue>>) -> Router {
    Router::new()
        .route("/admin/info", get(info))
        .route("/admin/status", get(status))
        .route("/admin/rooms", get(rooms))
        .route("/admin/dlq", get(dlq_list))
        .route("/admin/dlq/redrive", post(dlq_redrive))
        .route("/admin/dlq/{id}", get(dlq_show))
        // The token first: without it, nothing else is said.
        .route_layer(from_fn(access::require_json))
        .route_layer(from_fn_with_state(
            app.access.clone(),
            access::require_admin_token,
        ))
        .with_state(Arc::new(Admin { app, queue }))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn no_dead_letter_queue() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "this stack runs on SQS: read its dead-letter queue there (wsfanout --queue-url URL \
         --dlq-url URL ...)",
    )
}

#[derive(Deserialize)]
struct Limit {
    top: Option<usize>,
    max: Option<usize>,
}

async fn info(State(admin): State<Arc<Admin>>) -> Response {
    let app = &admin.app;
    axum::Json(json!({
        "stage": app.stage,
        "websocketUrl": format!("ws://{}/{}", app.domain_name, app.stage),
        "managementEndpoint": format!("http://{}/{}", app.domain_name, app.stage),
        "queue": if admin.queue.is_some() { "memory" } else { "sqs" },
        "ordering": ordering(app),
    }))
    .into_response()
}

/// `--ordering`, as the queue keeps it: FIFO by room or not.
fn ordering(app: &App) -> &'static str {
    MessageOrder::of_queue(app.queue.keeps_order()).as_str()
}

/// Rooms by members, most first, then by name; and the connections counted.
async fn count_rooms(app: &App) -> Result<(u64, Vec<(String, u64)>), Response> {
    let counting = async {
        let mut members: HashMap<String, u64> = HashMap::new();
        let mut total = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let page = app
                .store
                .scan_page(Segment::WHOLE, cursor.as_deref())
                .await?;
            for id in &page.ids {
                // A connection gone between the page and the read is not counted.
                if let Some(connection) = app.store.get(id).await? {
                    total += 1;
                    for room in &connection.rooms {
                        *members.entry(room.to_string()).or_default() += 1;
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut rooms: Vec<(String, u64)> = members.into_iter().collect();
        rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok::<_, fanout::ports::StoreError>((total, rooms))
    };
    match tokio::time::timeout(COUNT_TIMEOUT, counting).await {
        Ok(Ok(counted)) => Ok(counted),
        Ok(Err(store)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, store.to_string())),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("counting the rooms took longer than {COUNT_TIMEOUT:?}"),
        )),
    }
}

fn rooms_json(rooms: &[(String, u64)], top: Option<usize>) -> Value {
    rooms
        .iter()
        .take(top.unwrap_or(usize::MAX))
        .map(|(room, members)| json!({ "room": room, "members": members }))
        .collect()
}

async fn status(State(admin): State<Arc<Admin>>, Query(limit): Query<Limit>) -> Response {
    let app = &admin.app;
    let depths = match app.source.depths().await {
        Ok(depths) => depths,
        Err(queue) => return error(StatusCode::SERVICE_UNAVAILABLE, queue.to_string()),
    };
    let (stored, rooms) = match count_rooms(app).await {
        Ok(counted) => counted,
        Err(response) => return response,
    };
    let oldest = admin
        .queue
        .as_ref()
        .and_then(|queue| queue.oldest_ready_age())
        .map(|age| age.as_millis() as u64);
    axum::Json(json!({
        "queue": {
            "ordering": ordering(app),
            "ready": depths.ready,
            "inFlight": depths.in_flight,
            "delayed": depths.delayed,
            "dead": depths.dead,
            "oldestReadyAgeMs": oldest,
        },
        "connections": { "stored": stored, "open": app.connections.len() },
        "rooms": rooms_json(&rooms, Some(limit.top.unwrap_or(DEFAULT_TOP))),
    }))
    .into_response()
}

async fn rooms(State(admin): State<Arc<Admin>>, Query(limit): Query<Limit>) -> Response {
    match count_rooms(&admin.app).await {
        Ok((connections, rooms)) => axum::Json(json!({
            "connections": connections,
            "rooms": rooms_json(&rooms, limit.top),
        }))
        .into_response(),
        Err(response) => response,
    }
}

fn parked_json(parked: &Parked) -> Value {
    json!({
        "id": parked.id,
        "reason": parked.reason,
        "body": parked.body,
        "parkedAt": parked.parked_at_ms,
        "sentAt": parked.sent_at_ms,
    })
}

async fn dlq_list(State(admin): State<Arc<Admin>>, Query(limit): Query<Limit>) -> Response {
    let Some(queue) = &admin.queue else {
        return no_dead_letter_queue();
    };
    let parked = queue.parked();
    let messages: Vec<Value> = parked
        .iter()
        .take(limit.max.unwrap_or(usize::MAX))
        .map(parked_json)
        .collect();
    axum::Json(json!({ "total": parked.len(), "messages": messages })).into_response()
}

async fn dlq_show(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let Some(queue) = &admin.queue else {
        return no_dead_letter_queue();
    };
    match queue.parked().iter().find(|parked| parked.id == id) {
        Some(parked) => axum::Json(parked_json(parked)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no message {id} in the dead-letter queue"),
        ),
    }
}

async fn dlq_redrive(State(admin): State<Arc<Admin>>, Query(limit): Query<Limit>) -> Response {
    let Some(queue) = &admin.queue else {
        return no_dead_letter_queue();
    };
    let redriven = queue.redrive(limit.max);
    tracing::info!(
        moved = redriven.moved,
        remaining = redriven.remaining,
        "dead-letter queue redriven"
    );
    axum::Json(json!({ "moved": redriven.moved, "remaining": redriven.remaining })).into_response()
}
