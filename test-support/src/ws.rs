//! A WebSocket client, as a browser or wscat would be: for the end-to-end tests and the local
//! stack's `reach` example; and an audience of many clients reading at once, for fan-outs.

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
        Self::try_connect_request(url).await
    }

    /// Connects with a request of its own: headers (`Authorization`), subprotocols.
    pub async fn try_connect_request(
        request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    ) -> Result<Client, Error> {
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client { socket })
    }

    /// Connects (plain `ws://` only) with the socket's receive buffer set to `bytes` before
    /// the handshake, so the TCP window stays that small (Linux doubles the value, and has a
    /// floor of about 2 KiB): a client that then does not read makes the server's writes to it
    /// block after little data, as a stalled mobile client does.
    pub async fn try_connect_with_receive_buffer(url: &str, bytes: u32) -> Result<Client, Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let request = url.into_client_request()?;
        let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(addr).await?;
        let (socket, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
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

/// What one client of an [`Audience`] heard.
#[derive(Debug, Default, Clone)]
pub struct Heard {
    /// `{"type":"message"}` frames by their `id`, with how many times each came.
    pub messages: std::collections::BTreeMap<String, usize>,
    /// The ids of the acks it got (the sender's).
    pub acks: Vec<String>,
    /// Any other frame.
    pub other: Vec<Value>,
    /// The close code, if the server closed the socket (`Some(None)`: closed without one).
    pub closed: Option<Option<u16>>,
}

/// Many clients reading at once, each in its own task, counting the messages it receives by
/// id, until [`Audience::finish`] or the server closes the socket: for fan-outs to big rooms.
pub struct Audience {
    reached: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: tokio::sync::watch::Sender<bool>,
    listeners: Vec<tokio::task::JoinHandle<Heard>>,
}

impl Audience {
    pub fn listen(clients: Vec<Client>) -> Audience {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reached = std::sync::Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listeners = clients
            .into_iter()
            .map(|mut client| {
                let (reached, mut stopped) = (reached.clone(), stopped.clone());
                tokio::spawn(async move {
                    let mut heard = Heard::default();
                    loop {
                        let event = tokio::select! {
                            event = client.next(Duration::from_secs(3600)) => event,
                            _ = stopped.wait_for(|stop| *stop) => break,
                        };
                        match event {
                            Event::Json(frame) if frame["type"] == "message" => {
                                let id = frame["id"].as_str().unwrap_or_default().to_owned();
                                if heard.messages.is_empty() {
                                    reached.fetch_add(1, Ordering::SeqCst);
                                }
                                *heard.messages.entry(id).or_default() += 1;
                            }
                            Event::Json(frame) if frame["type"] == "ack" => {
                                heard
                                    .acks
                                    .push(frame["id"].as_str().unwrap_or_default().to_owned());
                            }
                            Event::Json(frame) => heard.other.push(frame),
                            Event::Text(text) => heard.other.push(Value::String(text)),
                            Event::Closed(code) => {
                                heard.closed = Some(code);
                                break;
                            }
                            Event::Silence => {}
                        }
                    }
                    heard
                })
            })
            .collect();
        Audience {
            reached,
            stop,
            listeners,
        }
    }

    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Clients that received at least one message so far.
    pub fn reached(&self) -> usize {
        self.reached.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `count` clients received a message, checking every 5 ms, for at
    /// most `wait`; whether they did.
    pub async fn wait_reached(&self, count: usize, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while self.reached() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Stops every listener and returns what each heard, in the clients' order. A listener that
    /// does not stop within `wait` (it cannot, short of a bug) panics the caller.
    pub async fn finish(self, wait: Duration) -> Vec<Heard> {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(wait, futures::future::join_all(self.listeners))
            .await
            .expect("listeners stop when told");
        joined
            .into_iter()
            .map(|heard| heard.expect("a listener panicked"))
            .collect()
    }
}
