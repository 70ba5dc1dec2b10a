//! Frames the API sends to clients (wire contract v1, see docs/contracts.md).

use crate::domain::history::Recovered;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// API Gateway's largest WebSocket message: a post over this is refused with 413.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Machine-readable error codes, stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was empty.
    EmptyBody,
    /// The frame was not JSON.
    InvalidJson,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// JSON, but not an object with a string `action`.
    InvalidMessage,
    /// `action` names no route.
    UnknownAction,
    /// `sendmessage` without `data`.
    MissingData,
    /// `data` is larger than the configured limit.
    MessageTooLarge,
    /// The sender's connection is not in the store (expired or never joined).
    NotConnected,
    /// A dependency failed; the client may retry.
    Unavailable,
    /// The connection sends faster than its rate limit; it may send again shortly.
    RateLimited,
    /// The frame names a room the connection is not in, or it is in none.
    NotInRoom,
    /// `room` is not a string, or not a valid room name.
    InvalidRoom,
    /// The connection is in several rooms and the frame names none of them.
    RoomRequired,
    /// The connection's token does not grant the room.
    Forbidden,
    /// The connection is in as many rooms as it may be.
    TooManyRooms,
    /// The publish endpoint: another publish with the same idempotency key is still running;
    /// ask again shortly for its answer.
    InProgress,
    /// The publish endpoint: the idempotency key was used for another message.
    KeyReused,
}

/// A frame sent to a client, tagged by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<'a> {
    /// The sender's message was accepted and will be delivered; `offset` and `epoch` are its
    /// place in the room's sequence.
    Ack {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
    },
    /// The sender's frame was refused; nothing was enqueued.
    Error { code: ErrorCode, message: &'a str },
    /// A message delivered to a room member.
    Message {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// The sender's verified identity (the token's `sub`), with authentication on.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        #[serde(rename = "sentAt")]
        sent_at: i64,
        /// The message's place in its room's sequence; absent for a job a producer wrote to
        /// the queue itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
        data: &'a RawValue,
    },
    /// The connection is in `room` now: messages fanned out from here on reach it.
    Joined { room: &'a str },
    /// The connection is out of `room`: messages fanned out from here on do not reach it.
    Left { room: &'a str },
    /// The end of a recovery: the messages before it are what history had.
    Recovered(&'a Recovered),
    /// The answer to `{"action":"ping"}`, a keep-alive.
    Pong,
}

impl Frame<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no floats from user
        // input that were not already valid JSON.
        serde_json::to_string(self).expect("frames always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_match_the_wire_contract() {
        let ack: serde_json::Value = serde_json::from_str(
            &Frame::Ack {
                id: "m1",
                offset: Some(7),
                epoch: Some("e1"),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(ack, json!({"type":"ack","id":"m1","offset":7,"epoch":"e1"}));

        let error = Frame::Error {
            code: ErrorCode::MissingData,
            message: "no data",
        }
        .to_json();
        let error: serde_json::Value = serde_json::from_str(&error).unwrap();
        assert_eq!(
            error,
            json!({"type":"error","code":"missing_data","message":"no data"})
        );

        let data = RawValue::from_string("{\"text\":\"hi\"}".into()).unwrap();
        let message = Frame::Message {
            id: "m1",
            room: Some("lobby"),
            from: Some("c1"),
            user: None,
            sent_at: 5,
            offset: Some(3),
            epoch: Some("e1"),
            data: &data,
        };
        let message: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(
            message,
            json!({"type":"message","id":"m1","room":"lobby","from":"c1","sentAt":5,"offset":3,"epoch":"e1","data":{"text":"hi"}})
        );
        let recovered = crate::domain::history::Recovered {
            room: crate::domain::RoomName::parse("lobby").unwrap(),
            from: 3,
            to: 9,
            epoch: Some("e1".into()),
            complete: true,
            count: 6,
        };
        let recovered: serde_json::Value =
            serde_json::from_str(&Frame::Recovered(&recovered).to_json()).unwrap();
        assert_eq!(
            recovered,
            json!({"type":"recovered","room":"lobby","from":3,"to":9,"epoch":"e1","complete":true,"count":6})
        );
        assert_eq!(Frame::Pong.to_json(), r#"{"type":"pong"}"#);
    }
}
