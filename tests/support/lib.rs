//! Shared helpers for the end-to-end tests: WebSocket clients, a small HTTP client, and moto.

pub use fanout_test_support::moto;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What a client saw next.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Text(String),
    Closed(Option<u16>),
    Silence,
}

/// A WebSocket client, as a browser or wscat would be.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects to `url` (with its query string); panics if the handshake is refused.
    pub async fn connect(url: &str) -> Client {
        match Self::try_connect(url).await {
            Ok(client) => client,
            Err(error) => panic!("connecting to {url}: {error}"),
        }
    }

    pub async fn try_connect(url: &str) -> Result<Client, Error> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client { socket })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send a text frame");
    }

    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.socket.send(message).await
    }

    /// `{"action":"sendmessage","data":data}`.
    pub async fn say(&mut self, data: Value) {
        self.send_text(&serde_json::json!({"action": "sendmessage", "data": data}).to_string())
            .await;
    }

    /// The next frame within `wait`, skipping pings and pongs.
    pub async fn next(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Event::Silence,
                Ok(frame) => frame,
            };
            return match frame {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                    Ok(json) => Event::Json(json),
                    Err(_) => Event::Text(text.to_string()),
                },
                Some(Ok(Message::Close(frame))) => {
                    Event::Closed(frame.map(|f: CloseFrame| u16::from(f.code)))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(data))) => {
                    Event::Text(String::from_utf8_lossy(&data).into_owned())
                }
                Some(Err(_)) | None => Event::Closed(None),
            };
        }
    }

    /// The next frame as JSON; panics with what came instead.
    pub async fn next_json(&mut self, wait: Duration) -> Value {
        match self.next(wait).await {
            Event::Json(json) => json,
            other => panic!("expected a JSON frame within {wait:?}, got {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        // Read until the server's close arrives, so the server has seen ours.
        while let Some(Ok(_)) = self.socket.next().await {}
    }
}

/// A plain HTTP/1.1 request; returns the status and body.
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}
