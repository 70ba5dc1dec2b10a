//! The [`Backend`] of the local stack (`fanout-local`): its `/admin` API (see
//! `fanout_local::admin` for the JSON it answers) over plain HTTP through hyper's client (the
//! HTTP stack the SDK's client is built on), with the run's admin token; its `/publish` and
//! its management API signed with SigV4, as on AWS.

use crate::backend::{
    Backend, DeadLetter, DeadLetters, OpsError, QueueStatus, Redrive, RoomCount, Rooms, Status,
};
use crate::progress::Progress;
use async_trait::async_trait;
use aws_config::Region;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use fanout::auth::ADMIN_TOKEN_ENV;
use fanout::domain::Published;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::time::Duration;

/// The longest one request may take (the stack bounds its own count of the rooms at 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// The local stack at a base URL such as `http://127.0.0.1:8080`.
pub struct LocalBackend {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// [`REQUEST_TIMEOUT`], shorter in tests.
    request_timeout: Duration,
    /// What publishes and the management API's requests are signed with; `None`: the SDK's
    /// credentials chain.
    credentials: Option<Credentials>,
    /// `/admin`'s token (`--admin-token`, [`ADMIN_TOKEN_ENV`]).
    admin_token: Option<String>,
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

impl LocalBackend {
    /// `base` is `http://HOST:PORT` (what fanout-local prints); no TLS, no path.
    pub fn new(base: &str) -> Result<Self, OpsError> {
        let base = base.trim_end_matches('/');
        let uri: http::Uri = base
            .parse()
            .map_err(|error| OpsError::Usage(format!("--local {base} is not a URL: {error}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(OpsError::Usage(format!(
                "--local takes the local stack's http://HOST:PORT (it has no TLS), not {base}"
            )));
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(OpsError::Usage(format!(
                "--local takes http://HOST:PORT without a path, not {base}"
            )));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            base: base.to_owned(),
            client,
            request_timeout: REQUEST_TIMEOUT,
            credentials: None,
            admin_token: None,
        })
    }

    /// Sends `token` as `/admin`'s bearer token.
    pub fn with_admin_token(self, token: &str) -> Self {
        Self {
            admin_token: Some(token.to_owned()),
            ..self
        }
    }

    /// Signs publishes with `credentials` instead of the SDK's chain.
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        Self {
            credentials: Some(credentials),
            ..self
        }
    }

    /// `method url` of `/admin` with `body`, with the admin token; the status and the body as
    /// JSON (`null` when empty).
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Value), OpsError> {
        let mut request = Request::builder().method(method.clone()).uri(url);
        // Every POST says JSON, a body or none: the stack refuses any other.
        if method == Method::POST {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.admin_token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| OpsError::Usage(format!("{method} {url}: {error}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                OpsError::Unavailable(format!(
                    "cannot reach the local stack at {}: {} (is fanout-local running there?)",
                    self.base,
                    fanout::adapters::aws::describe(&error)
                ))
            })?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| {
                    OpsError::Unavailable(format!("{method} {url}: reading the answer: {error}"))
                })?
                .to_bytes();
            Ok::<_, OpsError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| {
                OpsError::Unavailable(format!(
                    "{method} {url}: no answer within {:?} (is the local stack stuck?)",
                    self.request_timeout
                ))
            })??;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).trim().to_owned())
            })
        };
        Ok((status, json))
    }

    /// A `/admin` request that must answer 2xx with JSON.
    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, OpsError> {
        let url = format!("{}{path}", self.base);
        let (status, json) = self.call(method.clone(), &url, body).await?;
        if status.is_success() {
            return Ok(json);
        }
        let said = json["error"]
            .as_str()
            .or(json["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| json.to_string());
        let message = format!("the local stack answered {status} to {method} {path}: {said}");
        Err(match status {
            StatusCode::UNAUTHORIZED => OpsError::Usage(format!(
                "the local stack answered {status} to {method} {path}: set {ADMIN_TOKEN_ENV} \
                 (or --admin-token) to the admin token fanout-local printed at start"
            )),
            StatusCode::NOT_FOUND if path.starts_with("/admin/dlq/") => OpsError::NotFound(said),
            StatusCode::NOT_FOUND => OpsError::Unavailable(format!(
                "{message} (is this a fanout-local with the /admin API?)"
            )),
            status if status.is_client_error() => OpsError::Usage(message),
            _ => OpsError::Unavailable(message),
        })
    }
}

fn number(value: &Value, field: &str) -> Result<u64, OpsError> {
    value[field].as_u64().ok_or_else(|| {
        OpsError::Unavailable(format!(
            "the local stack's answer has no number {field}: {value}"
        ))
    })
}

fn rooms_of(value: &Value) -> Result<Vec<RoomCount>, OpsError> {
    value["rooms"]
        .as_array()
        .ok_or_else(|| OpsError::Unavailable(format!("no rooms in the answer: {value}")))?
        .iter()
        .map(|room| {
            Ok(RoomCount {
                room: room["room"].as_str().unwrap_or_default().to_owned(),
                members: number(room, "members")?,
            })
        })
        .collect()
}

fn dead_letter_of(value: &Value) -> DeadLetter {
    DeadLetter {
        id: value["id"].as_str().unwrap_or_default().to_owned(),
        reason: value["reason"].as_str().map(str::to_owned),
        body: value["body"].as_str().unwrap_or_default().to_owned(),
        parked_at_ms: value["parkedAt"].as_u64(),
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn status(&self, top: usize, _progress: &Progress) -> Result<Status, OpsError> {
        let status = self
            .admin(Method::GET, &format!("/admin/status?top={top}"), None)
            .await?;
        let queue = &status["queue"];
        Ok(Status {
            queue: QueueStatus {
                ready: number(queue, "ready")?,
                in_flight: number(queue, "inFlight")?,
                delayed: number(queue, "delayed")?,
                dead: number(queue, "dead")?,
                oldest_age_ms: queue["oldestReadyAgeMs"].as_u64(),
            },
            connections: number(&status["connections"], "stored")?,
            open_sockets: status["connections"]["open"].as_u64(),
            rooms: rooms_of(&status)?,
            notes: Vec::new(),
        })
    }

    async fn rooms(&self, progress: &Progress) -> Result<Rooms, OpsError> {
        let bar = progress.bar("counting rooms", None);
        let rooms = self.admin(Method::GET, "/admin/rooms", None).await;
        bar.finish_and_clear();
        let rooms = rooms?;
        Ok(Rooms {
            connections: number(&rooms, "connections")?,
            rooms: rooms_of(&rooms)?,
        })
    }

    async fn dlq_list(&self, max: usize, _progress: &Progress) -> Result<DeadLetters, OpsError> {
        let list = self
            .admin(Method::GET, &format!("/admin/dlq?max={max}"), None)
            .await?;
        let messages = list["messages"]
            .as_array()
            .map(|messages| messages.iter().map(dead_letter_of).collect())
            .unwrap_or_default();
        Ok(DeadLetters {
            total: number(&list, "total")?,
            messages,
        })
    }

    async fn dlq_show(&self, id: &str, _progress: &Progress) -> Result<DeadLetter, OpsError> {
        let letter = self
            .admin(Method::GET, &format!("/admin/dlq/{}", encode(id)), None)
            .await?;
        Ok(dead_letter_of(&letter))
    }

    async fn dlq_redrive(
        &self,
        max: Option<u64>,
        _wait: Duration,
        _progress: &Progress,
    ) -> Result<Redrive, OpsError> {
        let path = match max {
            Some(max) => format!("/admin/dlq/redrive?max={max}"),
            None => "/admin/dlq/redrive".to_owned(),
        };
        let moved = self.admin(Method::POST, &path, None).await?;
        Ok(Redrive {
            not_jobs: Vec::new(),
            moved: number(&moved, "moved")?,
            remaining: moved["remaining"].as_u64(),
            method: "local".into(),
            task_status: None,
        })
    }

    async fn publish(&self, body: String) -> Result<Published, OpsError> {
        // The SDK's chain, as a backend on this machine signs: the stack takes the same
        // AWS_ACCESS_KEY_ID by default.
        let sdk = crate::aws::sdk_config(None, None).await;
        let url = format!("{}/publish", self.base);
        crate::publish::send(&sdk, self.credentials.as_ref(), &url, body).await
    }

    async fn kick(&self, connection_id: &str) -> Result<(), OpsError> {
        let info = self.admin(Method::GET, "/admin/info", None).await?;
        let endpoint = info["managementEndpoint"].as_str().ok_or_else(|| {
            OpsError::Unavailable(format!("no managementEndpoint in /admin/info: {info}"))
        })?;
        // Signed as a backend signs (the stack takes the publish key on `@connections` too).
        let chain = crate::aws::sdk_config(None, None).await;
        let mut sdk = chain.to_builder();
        if let Some(credentials) = &self.credentials {
            sdk.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials.clone())));
        }
        if chain.region().is_none() {
            // The local stack takes a signature for any region.
            sdk.set_region(Some(Region::new("us-east-1")));
        }
        crate::aws::delete_connection(&sdk.build(), endpoint, connection_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_base_url_is_taken() {
        assert!(LocalBackend::new("http://127.0.0.1:8080").is_ok());
        assert!(LocalBackend::new("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://h:1/local",
            "::",
        ] {
            assert!(
                matches!(LocalBackend::new(bad), Err(OpsError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(encode("Dx4s+e1Z/AMCJvw="), "Dx4s%2Be1Z%2FAMCJvw%3D");
    }

    /// A stack that accepts and then says nothing (stopped in a debugger, or stuck): answers
    /// the whole request or its body never end, and the command ends with the reason.
    #[tokio::test]
    async fn a_stack_that_hangs_is_a_clear_error_within_the_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for half_answer in [&b""[..], b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let holding = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                // The request's head, then half an answer (or none).
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                socket.write_all(half_answer).await.unwrap();
                // Hold the connection open, saying nothing more.
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
            let mut backend = LocalBackend::new(&format!("http://127.0.0.1:{port}")).unwrap();
            backend.request_timeout = Duration::from_millis(300);
            let started = std::time::Instant::now();
            let error = backend
                .status(10, &Progress::hidden())
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains("no answer within"), "{error}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            holding.abort();
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_clear_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let backend = LocalBackend::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let error = backend
            .status(10, &Progress::hidden())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot reach the local stack"), "{error}");
    }
}
