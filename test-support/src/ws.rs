//! A WebSocket client, as a browser or wscat would be: for the end-to-end tests and the local
//! stack's `reach` example.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
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
