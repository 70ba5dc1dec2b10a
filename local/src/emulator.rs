//! API Gateway's WebSocket API, emulated: the handshake runs `$connect` (a refusal refuses the
//! upgrade with its status), text frames are routed on `$request.body.action` to `sendmessage`
//! or `$default` and the route response goes back to the sender, a close runs `$disconnect`.
//! Frame and message limits close with 1009; idle timeout, maximum duration and shutdown close
//! with 1001.
//!
//! A connection is registered with the management API as soon as `$connect` accepts it, before
//! the 101 goes out: API Gateway takes posts to a connection once its handshake completes, so a
//! client that has its 101 gets every message posted after it (what is posted before the socket
//! is served waits in the connection's outbound queue). An upgrade that fails after that takes
//! the registration back and runs `$disconnect` ([`Registration`]).
//!
//! Each connection has two tasks: [`serve`] reads and routes, and a writer
//! ([`write_frames`]) takes the connection's outbound queue ([`crate::connections`]) to the
//! socket, each write bounded by `--write-timeout`. Every wait in a connection's life is
//! bounded:
//!
//! - reading: by the idle timeout and the maximum connection duration, and by the writer's
//!   end (a writer that ended stops the read loop);
//! - each write, the close frame's included: by the write timeout; a write that times out
//!   ends the writer and takes the connection out of the registry;
//! - the client's answer to our close frame: by the write timeout;
//! - the writer's last frames once the read loop is done: by the write timeout, then the
//!   writer is aborted;
//! - `$disconnect`: by the store's own timeouts, as in the Lambda.

use crate::app::App;
use crate::auth::{Admission, admit};
use crate::connections::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TOO_BIG, LiveConnection, Outgoing, Registry, SendError,
    new_connection_id, payload_len,
};
use crate::metrics::SlowConsumerReason;
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
use fanout::domain::message::{JOIN, LEAVE};
use fanout::domain::{epoch_millis, now_epoch_millis};
use fanout::handlers;
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{debug, info};

/// API Gateway's integration timeout: a route's Lambda answers within it or not at all.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

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
    let pairs = query.as_deref().map(form_pairs).unwrap_or_default();
    if let Some(verifier) = &app.authorizer {
        match admit(verifier, &app.method_arn("$connect"), &pairs, &headers).await {
            Admission::Allowed(fields) => request.request_context.authorizer.fields = fields,
            Admission::Refused(status, reason) => {
                app.metrics.connects_refused.inc();
                info!(
                    status = status.as_u16(),
                    reason, "connect refused by the authorizer"
                );
                return (status, reason).into_response();
            }
        }
    }
    request.headers = headers;
    request.query_string_parameters = pairs.into();
    let response =
        handlers::connect::handle(&*app.store, &app.connect, request, SystemTime::now()).await;
    if response.status_code != 200 {
        app.metrics.connects_refused.inc();
        let status =
            StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        info!(status = status.as_u16(), "connect refused");
        return (status, text_body(&response).unwrap_or_default()).into_response();
    }
    let registration = Registration::open(app.clone(), origin);
    let limits = &app.limits;
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let delay = app.hooks.socket_start_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            serve(registration, socket).await
        })
}

/// A connection registered with the management API whose socket is not served yet. Dropped
/// unserved (the upgrade failed: the client went away before it completed), it leaves the
/// registry and its `$disconnect` runs, as API Gateway's would.
struct Registration {
    app: Arc<App>,
    origin: Origin,
    connection: Option<Arc<LiveConnection>>,
}

impl Registration {
    fn open(app: Arc<App>, origin: Origin) -> Self {
        let connection = app.connections.open(
            origin.connection_id.clone(),
            origin.source,
            origin.user_agent.clone(),
            app.limits.max_outbound_bytes,
        );
        Self {
            app,
            origin,
            connection: Some(connection),
        }
    }

    /// The socket is here: [`serve`] owns the connection from now on.
    fn serve(mut self) -> (Arc<App>, Origin, Arc<LiveConnection>) {
        let connection = self.connection.take().expect("taken once");
        (self.app.clone(), self.origin.clone(), connection)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let (app, origin) = (self.app.clone(), self.origin.clone());
        app.connections.forget(&connection.id);
        connection.shut_outbound();
        info!(connection_id = %origin.connection_id, "the upgrade failed after $connect");
        let disconnect = async move {
            disconnect(&app, &origin, 1006, "upgrade failed".into()).await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(disconnect)),
            // No runtime to run it on (the process is ending): the TTL removes the item.
            Err(_) => self.app.connections.finished(),
        }
    }
}

/// `$disconnect`, then the connection's socket task is done.
async fn disconnect(app: &App, origin: &Origin, status: u16, reason: String) {
    let mut request = event(app, origin, "$disconnect", "DISCONNECT");
    request.request_context.disconnect_status_code = Some(i64::from(status));
    request.request_context.disconnect_reason = Some(reason.clone());
    handlers::disconnect::handle(&*app.store, request).await;
    info!(connection_id = %origin.connection_id, status, reason, "disconnected");
    app.connections.finished();
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

/// One connection's life: reads frames until the client closes, a limit closes it, the
/// server shuts down or the writer ends (a close frame written, a write timed out or failed);
/// then `$disconnect`, and the socket is dropped.
async fn serve(registration: Registration, socket: WebSocket) {
    let (app, origin, connection) = registration.serve();
    let write_timeout = app.limits.write_timeout;
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_frames(
        sink,
        connection.clone(),
        app.connections.clone(),
        write_timeout,
    ));
    let mut writer_ended = false;
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
                Some(Ok(Message::Close(frame))) => break close_status(frame),
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
            ended = &mut writer => {
                writer_ended = true;
                break match ended.unwrap_or(WriterEnd::Failed) {
                    // Our close frame is out: the client's answer ends the handshake. One that
                    // does not read never answers; wait no longer than a write may take.
                    WriterEnd::Closed { code, reason } => {
                        tokio::time::timeout(write_timeout, close_reply(&mut stream))
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or((code, reason))
                    }
                    WriterEnd::TimedOut { while_open } => {
                        if while_open {
                            app.metrics.slow_consumer(SlowConsumerReason::WriteTimeout);
                        }
                        info!(connection_id = %origin.connection_id, ?write_timeout, "a write timed out: dropping the connection");
                        (1006, "write timed out".into())
                    }
                    WriterEnd::Failed => (1006, "connection lost".into()),
                };
            }
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
    if !writer_ended {
        // Let the close frame (ours or the echo of the client's) go out before the socket
        // drops, for as long as one write may take; then stop the writer where it is.
        let _ = app
            .connections
            .close(&origin.connection_id, CLOSE_NORMAL, "");
        if tokio::time::timeout(write_timeout, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
            // Ends at once: the writer is parked in a (bounded) write or in waiting for a frame.
            let _ = writer.await;
        }
    }
    // The writer's end shut the outbound queue; the read half is the last owner of the socket.
    drop(stream);

    disconnect(&app, &origin, status, reason).await;
}

/// The code and reason of a client's close frame (1005 without one).
fn close_status(frame: Option<axum::extract::ws::CloseFrame>) -> (u16, String) {
    frame.map_or((1005, String::new()), |f| (f.code, f.reason.to_string()))
}

/// Reads until the client's close frame (its code and reason) or the end of the stream
/// (`None`); frames in between are dropped, as API Gateway routes nothing once it closed.
async fn close_reply<S>(stream: &mut S) -> Option<(u16, String)>
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(Ok(frame)) = stream.next().await {
        if let Message::Close(frame) = frame {
            return Some(close_status(frame));
        }
    }
    None
}

/// Why a connection's writer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriterEnd {
    /// It wrote the close frame it was asked for.
    Closed { code: u16, reason: String },
    /// A write, a close frame's included, took longer than the write timeout: the client does
    /// not read. `while_open`: the connection was still open (not already closing).
    TimedOut { while_open: bool },
    /// The socket failed (or the writer was told to stop).
    Failed,
}

/// The writer: takes the connection's outbound queue to the socket in order, each write
/// bounded by `write_timeout`; each frame written gives its bytes back to the budget. A write
/// that fails or times out takes the connection out of `registry` at once (posts answer 410)
/// and ends the writer without touching the socket again. However it ends, the outbound
/// queue is shut (what is queued is freed, nothing more is taken).
async fn write_frames<S>(
    mut sink: S,
    connection: Arc<LiveConnection>,
    registry: Arc<Registry>,
    write_timeout: Duration,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    /// Shuts the queue when the writer ends, aborted included.
    struct Shut(Arc<LiveConnection>);
    impl Drop for Shut {
        fn drop(&mut self) {
            self.0.shut_outbound();
        }
    }
    let _shut = Shut(connection.clone());

    while let Some(next) = connection.next_outbound().await {
        match next {
            Outgoing::Frame(message) => {
                let bytes = payload_len(&message);
                match tokio::time::timeout(write_timeout, sink.send(message)).await {
                    Ok(Ok(())) => connection.written(bytes),
                    Ok(Err(_)) => {
                        registry.forget(&connection.id);
                        return WriterEnd::Failed;
                    }
                    Err(_) => {
                        let while_open = !connection.is_closing();
                        registry.forget(&connection.id);
                        return WriterEnd::TimedOut { while_open };
                    }
                }
            }
            Outgoing::Close(frame) => {
                let (code, reason) = (frame.code, frame.reason.to_string());
                let sent =
                    tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(frame))))
                        .await;
                return match sent {
                    Ok(Ok(())) => WriterEnd::Closed { code, reason },
                    Ok(Err(_)) => WriterEnd::Failed,
                    Err(_) => WriterEnd::TimedOut { while_open: false },
                };
            }
        }
    }
    WriterEnd::Failed
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
        Some("recover") => "recover",
        Some(JOIN) => JOIN,
        Some(LEAVE) => LEAVE,
        _ => "$default",
    };
    let mut request = event(app, origin, route_key, "MESSAGE");
    request.request_context.message_id = Some(new_connection_id());
    request.body = body;
    request.is_base64_encoded = is_base64;
    debug!(connection_id = %origin.connection_id, route_key, "route");
    match route_key {
        "sendmessage" => app.sendmessage().handle(request, SystemTime::now()).await,
        "recover" => {
            let deadline = Instant::now() + INTEGRATION_TIMEOUT;
            app.recover()
                .handle(request, SystemTime::now(), deadline)
                .await
        }
        JOIN | LEAVE => handlers::rooms::handle(&*app.store, &app.rooms, request).await,
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
    if let Some(text) = text_body(&response)
        && let Err(SendError::SlowConsumer) = app
            .connections
            .send(connection_id, bytes::Bytes::from(text))
    {
        app.metrics.slow_consumer(SlowConsumerReason::OutboundBytes);
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

    /// A socket whose client never reads: no write ever finishes.
    struct Stuck;

    impl Sink<Message> for Stuck {
        type Error = std::convert::Infallible;
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            unreachable!("never ready")
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
    }

    const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connection `a` (an outbound budget of 1000 bytes) in a new registry, and its writer on
    /// `socket`.
    fn writer_on<S>(
        socket: S,
    ) -> (
        Arc<Registry>,
        Arc<LiveConnection>,
        tokio::task::JoinHandle<WriterEnd>,
    )
    where
        S: Sink<Message> + Unpin + Send + 'static,
    {
        let registry = Registry::new();
        let connection = registry.open("a".into(), "127.0.0.1:1".parse().unwrap(), None, 1000);
        let writer = tokio::spawn(write_frames(
            socket,
            connection.clone(),
            registry.clone(),
            WRITE_TIMEOUT,
        ));
        (registry, connection, writer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_times_out_releases_the_connection_and_later_posts_are_gone() {
        let (registry, connection, writer) = writer_on(Stuck);
        registry
            .send("a", bytes::Bytes::from_static(b"hello"))
            .unwrap();
        registry
            .send("a", bytes::Bytes::from_static(b"again"))
            .unwrap();
        let started = Instant::now();
        let ended = writer.await.unwrap();
        assert_eq!(ended, WriterEnd::TimedOut { while_open: true });
        assert_eq!(
            started.elapsed(),
            WRITE_TIMEOUT,
            "one write's timeout, no more"
        );
        // Gone at once, its frames freed, and nothing more is queued.
        assert!(registry.get("a").is_none());
        assert_eq!(
            registry.send("a", bytes::Bytes::from_static(b"late")),
            Err(SendError::Gone)
        );
        assert_eq!(connection.outbound_bytes(), 0);
        assert!(connection.is_closing());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumers_close_is_bounded_by_the_write_timeout_too() {
        let (registry, connection, writer) = writer_on(Stuck);
        registry
            .send("a", bytes::Bytes::from(vec![b'x'; 600]))
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(
            registry.send("a", bytes::Bytes::from(vec![b'x'; 600])),
            Err(SendError::SlowConsumer)
        );
        let started = Instant::now();
        // The stuck write times out; the close frame behind it is never attempted.
        assert_eq!(
            writer.await.unwrap(),
            WriterEnd::TimedOut { while_open: false }
        );
        assert_eq!(started.elapsed(), WRITE_TIMEOUT);
        assert_eq!(connection.outbound_bytes(), 0);
    }

    #[tokio::test]
    async fn frames_go_out_in_order_and_give_their_bytes_back_then_the_close_ends_the_writer() {
        // A socket that takes one frame at a time, as the client reads them.
        let (socket, mut client) = futures::channel::mpsc::channel::<Message>(0);
        let (registry, connection, writer) = writer_on(socket);
        for text in ["one", "two", "three"] {
            registry
                .send("a", bytes::Bytes::from_static(text.as_bytes()))
                .unwrap();
        }
        registry.close("a", CLOSE_NORMAL, "").unwrap();
        let mut read = Vec::new();
        while let Some(frame) = client.next().await {
            read.push(frame);
        }
        assert_eq!(
            read,
            [
                Message::Text("one".into()),
                Message::Text("two".into()),
                Message::Text("three".into()),
                Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: CLOSE_NORMAL,
                    reason: "".into()
                })),
            ]
        );
        assert_eq!(
            writer.await.unwrap(),
            WriterEnd::Closed {
                code: CLOSE_NORMAL,
                reason: String::new()
            }
        );
        assert_eq!(connection.outbound_bytes(), 0);
    }

    #[test]
    fn decodes_query_strings() {
        let pairs = form_pairs("room=a%3Ab&x=1&room=c");
        assert_eq!(pairs["room"], vec!["a:b", "c"]);
    }
}
