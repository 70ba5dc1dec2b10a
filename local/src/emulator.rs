//! API Gateway's WebSocket API, emulated: the handshake runs `$connect` (a refusal refuses the
//! upgrade with its status), text frames are routed on `$request.body.action` to `sendmessage`
//! or `$default` and the route response goes back to the sender, a close runs `$disconnect`.
//! Frame and message limits close with 1009; idle timeout, maximum duration and shutdown close
//! with 1001.

use crate::app::App;
use crate::connections::{CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TOO_BIG, new_connection_id};
use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
    ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::encodings::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use fanout::domain::{epoch_millis, now_epoch_millis};
use fanout::handlers;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

/// The parts of every event that describe the connection.
#[derive(Clone)]
struct Origin {
    connection_id: String,
    connected_at: SystemTime,
    source: SocketAddr,
    user_agent: Option<String>,
}

fn event(app: &App, origin: &Origin, route: &str, kind: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut context = ApiGatewayWebsocketProxyRequestContext::default();
    context.route_key = Some(route.to_owned());
    context.event_type = Some(kind.to_owned());
    context.connection_id = Some(origin.connection_id.clone());
    context.connected_at = epoch_millis(origin.connected_at);
    context.request_time_epoch = now_epoch_millis();
    context.domain_name = Some(app.domain_name.clone());
    context.stage = Some(app.stage.clone());
    context.apiid = Some("local".into());
    context.message_direction = Some("IN".into());
    context.request_id = Some(uuid::Uuid::now_v7().to_string());
    context.identity.source_ip = Some(origin.source.ip().to_string());
    context.identity.user_agent = origin.user_agent.clone();
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.request_context = context;
    request
}

/// `GET /` or `GET /{stage}` with an upgrade: the `$connect` route.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = Origin {
        connection_id: new_connection_id(),
        connected_at: SystemTime::now(),
        source,
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    let mut request = event(&app, &origin, "$connect", "CONNECT");
    request.headers = headers;
    request.query_string_parameters = query
        .as_deref()
        .map(|query| form_pairs(query).into())
        .unwrap_or_default();
    let response =
        handlers::connect::handle(&*app.store, &app.connect, request, SystemTime::now()).await;
    if response.status_code != 200 {
        app.metrics.connects_refused.inc();
        let status =
            StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        info!(status = status.as_u16(), "connect refused");
        return (status, text_body(&response).unwrap_or_default()).into_response();
    }
    let limits = &app.limits;
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .on_upgrade(move |socket| serve(app, origin, socket))
}

/// Query string parameters, decoded, as API Gateway passes them.
fn form_pairs(query: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut pairs: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        pairs
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    pairs
}

fn text_body(response: &ApiGatewayProxyResponse) -> Option<String> {
    match &response.body {
        Some(Body::Text(text)) => Some(text.clone()),
        Some(Body::Binary(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// One connection's life: reads frames until the client closes, a limit closes it, or the
/// server shuts down; then `$disconnect`.
async fn serve(app: Arc<App>, origin: Origin, socket: WebSocket) {
    let (connection, outbound) = app.connections.open(
        origin.connection_id.clone(),
        origin.source,
        origin.user_agent.clone(),
    );
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_frames(sink, outbound));
    info!(connection_id = %origin.connection_id, "connected");

    let give_up_at = Instant::now() + app.limits.max_connection_duration;
    let (status, reason): (u16, String) = loop {
        let idle_at = Instant::now() + app.limits.idle_timeout;
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    connection.touch();
                    app.metrics.frames_received.inc();
                    let reply = route(&app, &origin, Some(text.as_str().to_owned()), false).await;
                    reply_to(&app, &origin.connection_id, reply);
                }
                Some(Ok(Message::Binary(data))) => {
                    connection.touch();
                    app.metrics.frames_received.inc();
                    let body = base64::engine::general_purpose::STANDARD.encode(&data);
                    let reply = route(&app, &origin, Some(body), true).await;
                    reply_to(&app, &origin.connection_id, reply);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => connection.touch(),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code, f.reason.to_string()));
                    break (code, reason);
                }
                Some(Err(error)) => {
                    let too_big = is_capacity_error(error);
                    if too_big {
                        let _ = app.connections.close(&origin.connection_id, CLOSE_TOO_BIG, "Message too big");
                        break (CLOSE_TOO_BIG, "Message too big".into());
                    }
                    break (1006, "connection lost".into());
                }
                None => break (1006, "connection lost".into()),
            },
            () = tokio::time::sleep_until(idle_at) => {
                let _ = app.connections.close(&origin.connection_id, CLOSE_GOING_AWAY, "Going away");
                break (CLOSE_GOING_AWAY, "idle timeout".into());
            }
            () = tokio::time::sleep_until(give_up_at) => {
                let _ = app.connections.close(&origin.connection_id, CLOSE_GOING_AWAY, "Going away");
                break (CLOSE_GOING_AWAY, "maximum connection duration".into());
            }
        }
    };
    // Let the close frame (ours or the echo of the client's) go out before the socket drops.
    let _ = app
        .connections
        .close(&origin.connection_id, CLOSE_NORMAL, "");
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;

    let mut request = event(&app, &origin, "$disconnect", "DISCONNECT");
    request.request_context.disconnect_status_code = Some(i64::from(status));
    request.request_context.disconnect_reason = Some(reason.clone());
    handlers::disconnect::handle(&*app.store, request).await;
    info!(connection_id = %origin.connection_id, status, reason, "disconnected");
    app.connections.finished();
}

async fn write_frames(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut outbound: mpsc::Receiver<Message>,
) {
    while let Some(message) = outbound.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

fn is_capacity_error(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error.into_inner().downcast_ref::<Error>(),
        Some(Error::Capacity(_))
    )
}

/// Route selection on `$request.body.action`, then the integration.
async fn route(
    app: &App,
    origin: &Origin,
    body: Option<String>,
    is_base64: bool,
) -> ApiGatewayProxyResponse {
    let action = if is_base64 {
        None
    } else {
        body.as_deref().and_then(selected_route)
    };
    let route_key = match action.as_deref() {
        Some("sendmessage") => "sendmessage",
        _ => "$default",
    };
    let mut request = event(app, origin, route_key, "MESSAGE");
    request.request_context.message_id = Some(new_connection_id());
    request.body = body;
    request.is_base64_encoded = is_base64;
    debug!(connection_id = %origin.connection_id, route_key, "route");
    match route_key {
        "sendmessage" => app.sendmessage().handle(request, SystemTime::now()).await,
        _ => handlers::default::handle(request),
    }
}

/// The value of `action` if the body is a JSON object with a string `action`.
fn selected_route(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Selection {
        action: Option<serde_json::Value>,
    }
    serde_json::from_str::<Selection>(body)
        .ok()?
        .action?
        .as_str()
        .map(str::to_owned)
}

/// The route response goes back to the sender as a frame.
fn reply_to(app: &App, connection_id: &str, response: ApiGatewayProxyResponse) {
    if let Some(text) = text_body(&response) {
        let _ = app
            .connections
            .send(connection_id, bytes::Bytes::from(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_on_the_action_field() {
        assert_eq!(
            selected_route(r#"{"action":"sendmessage","data":1}"#).as_deref(),
            Some("sendmessage")
        );
        assert_eq!(
            selected_route(r#"{"action":"join"}"#).as_deref(),
            Some("join")
        );
        assert_eq!(selected_route(r#"{"action":5}"#), None);
        assert_eq!(selected_route("not json"), None);
        assert_eq!(selected_route("[1]"), None);
    }

    #[test]
    fn decodes_query_strings() {
        let pairs = form_pairs("room=a%3Ab&x=1&room=c");
        assert_eq!(pairs["room"], vec!["a:b", "c"]);
    }
}
