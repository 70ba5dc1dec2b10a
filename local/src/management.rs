//! The `@connections` management API over HTTP, with API Gateway's answers: the worker reaches
//! it through the real aws-sdk-apigatewaymanagement client, as it does in AWS. As in AWS, a
//! request must be signed with SigV4 (`execute-api`), here by the worker's own key (this run's,
//! random) or by the publisher's (`--publish-credentials`, a backend's), else it is a 403
//! ([`require_signature`]): a web page cannot post to a socket. Every request
//! waits `--management-latency` first, then meets the fault in force, if any
//! ([`crate::faults`]): 500, 503, 429, or a hang until the fault's period ends (then 504).

use crate::app::App;
use crate::auth::{AccessKey, verify_signature};
use crate::connections::{CLOSE_NORMAL, SendError};
use crate::faults::FaultKind;
use crate::metrics::SlowConsumerReason;
use aws_sdk_apigatewaymanagement::primitives::{DateTime, DateTimeFormat};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::SystemTime;

/// API Gateway's limit on a posted message.
pub const MAX_POST_BYTES: usize = 128 * 1024;

/// An error as API Gateway returns it: the status, `x-amzn-ErrorType`, and a JSON message.
fn error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    (
        status,
        [
            ("x-amzn-ErrorType", kind),
            ("content-type", "application/json"),
        ],
        body,
    )
        .into_response()
}

/// A request whose signature is refused, as API Gateway refuses one.
pub fn forbidden(reason: &str) -> Response {
    error(StatusCode::FORBIDDEN, "ForbiddenException", reason)
}

/// A post larger than [`MAX_POST_BYTES`].
pub fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
        &format!("the message exceeds the {MAX_POST_BYTES}-byte limit"),
    )
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "the connection is gone")
}

/// The latency, then the injected fault's answer if one is in force. A hang answers at its
/// period's end, so no request waits forever.
async fn misbehave(app: &App) -> Option<Response> {
    if !app.faults.latency.is_zero() {
        tokio::time::sleep(app.faults.latency).await;
    }
    let (kind, end) = app.faults.active(tokio::time::Instant::now())?;
    app.metrics.management_fault(kind);
    Some(match kind {
        FaultKind::InternalError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            "injected fault: internal error",
        ),
        FaultKind::Unavailable => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "injected fault: service unavailable",
        ),
        FaultKind::Throttled => error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "injected fault: rate exceeded",
        ),
        FaultKind::Forbidden => error(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            "injected fault: User is not authorized to perform execute-api:ManageConnections",
        ),
        FaultKind::Hang => {
            tokio::time::sleep_until(end).await;
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeoutException",
                "injected fault: no answer in time",
            )
        }
    })
}

/// `POST /{stage}/@connections/{id}`: one frame to one client.
pub async fn post(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Response {
    if let Some(fault) = misbehave(&app).await {
        return fault;
    }
    // `require_signature`, which reads the body first, refuses a larger one already.
    if body.len() > MAX_POST_BYTES {
        return too_large();
    }
    match app.connections.send(&id, body) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(SendError::Gone) => gone(),
        // A 410, not a 429: a 429 would make the worker slow the whole fan-out down for one
        // client (see crate::connections).
        Err(SendError::SlowConsumer) => {
            app.metrics.slow_consumer(SlowConsumerReason::OutboundBytes);
            error(
                StatusCode::GONE,
                "GoneException",
                "the connection is gone: closed as a slow consumer (its outbound queue is full)",
            )
        }
    }
}

fn iso8601(at: std::time::SystemTime) -> String {
    DateTime::from(at)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// `GET /{stage}/@connections/{id}`: what API Gateway says about a connection.
pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if let Some(fault) = misbehave(&app).await {
        return fault;
    }
    let Some(connection) = app.connections.get(&id) else {
        return gone();
    };
    axum::Json(serde_json::json!({
        "connectedAt": iso8601(connection.connected_at),
        "lastActiveAt": iso8601(connection.last_active()),
        "identity": {
            "sourceIp": connection.source_ip.ip().to_string(),
            "userAgent": connection.user_agent,
        },
    }))
    .into_response()
}

/// `DELETE /{stage}/@connections/{id}`: closes the connection (its `$disconnect` follows).
pub async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if let Some(fault) = misbehave(&app).await {
        return fault;
    }
    match app.connections.close(&id, CLOSE_NORMAL, "") {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => gone(),
    }
}

/// `@connections`: signed with SigV4 by one of the stack's management keys, as API Gateway's
/// management API takes only IAM-signed requests. The body is read here (the signature covers
/// it), up to the management API's limit, and handed on.
pub async fn require_signature(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_POST_BYTES).await else {
        return too_large();
    };
    let keys: Vec<&AccessKey> = app.management_keys.iter().collect();
    let signed = verify_signature(
        &keys,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        SystemTime::now(),
    );
    match signed {
        Ok(_) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Err(reason) => {
            tracing::info!(%reason, "management API request refused: not signed");
            forbidden(&reason)
        }
    }
}
