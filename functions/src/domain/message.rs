//! Reading what a client sent over the socket.

use crate::domain::{ErrorCode, RoomName};
use serde_json::value::RawValue;
use std::collections::HashMap;

/// The actions a client may name in `action`: `sendmessage` and `recover` are routes of their
/// own, `join` and `leave` share one; `ping` is answered by `$default`.
pub const ACTIONS: &[&str] = &["sendmessage", "recover", JOIN, LEAVE, PING];

/// Joins a room: `{"action":"join","room":R}`.
pub const JOIN: &str = "join";
/// Leaves a room: `{"action":"leave","room":R}`.
pub const LEAVE: &str = "leave";

/// The keep-alive action.
pub const PING: &str = "ping";

/// A refusal, answered to the client as an error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ClientError {
    pub code: ErrorCode,
    pub message: String,
}

impl ClientError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A client frame read as `{"action": ..., ...}` without copying its values.
pub struct ClientFrame<'a> {
    fields: HashMap<String, &'a RawValue>,
}

impl<'a> ClientFrame<'a> {
    /// Reads a text frame. `is_base64` marks a binary frame, which the protocol does not use.
    pub fn parse(body: Option<&'a str>, is_base64: bool) -> Result<Self, ClientError> {
        if is_base64 {
            return Err(ClientError::new(
                ErrorCode::BinaryNotSupported,
                "binary frames are not supported; send text frames of JSON",
            ));
        }
        let body = body.unwrap_or_default();
        if body.trim().is_empty() {
            return Err(ClientError::new(
                ErrorCode::EmptyBody,
                "empty frame; send {\"action\":\"sendmessage\",\"data\":...}",
            ));
        }
        let value: &RawValue = serde_json::from_str(body).map_err(|err| {
            ClientError::new(
                ErrorCode::InvalidJson,
                format!("frame is not valid JSON ({err}); send {{\"action\":\"sendmessage\",\"data\":...}}"),
            )
        })?;
        let fields = serde_json::from_str(value.get()).map_err(|_| {
            ClientError::new(
                ErrorCode::InvalidMessage,
                "frame must be a JSON object like {\"action\":\"sendmessage\",\"data\":...}",
            )
        })?;
        Ok(Self { fields })
    }

    /// The `action` field, which must be a string.
    pub fn action(&self) -> Result<String, ClientError> {
        let raw = self.fields.get("action").ok_or_else(|| {
            ClientError::new(
                ErrorCode::InvalidMessage,
                format!(
                    "frame has no \"action\"; available actions: {}",
                    ACTIONS.join(", ")
                ),
            )
        })?;
        serde_json::from_str(raw.get())
            .map_err(|_| ClientError::new(ErrorCode::InvalidMessage, "\"action\" must be a string"))
    }

    pub fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.get(name).copied()
    }

    /// The `room` field, if there is one: a string that is a valid room name.
    pub fn room(&self) -> Result<Option<RoomName>, ClientError> {
        let Some(raw) = self.field("room") else {
            return Ok(None);
        };
        let name: String = serde_json::from_str(raw.get())
            .map_err(|_| ClientError::new(ErrorCode::InvalidRoom, "\"room\" must be a string"))?;
        RoomName::parse(&name).map(Some).map_err(|error| {
            ClientError::new(ErrorCode::InvalidRoom, format!("invalid room: {error}"))
        })
    }
}

/// The error for an action that names no route.
pub fn unknown_action(action: &str) -> ClientError {
    let action: String = action.chars().take(64).collect(); // the answer must fit one message
    ClientError::new(
        ErrorCode::UnknownAction,
        format!(
            "unknown action {action:?}; available actions: {}",
            ACTIONS.join(", ")
        ),
    )
}

/// A character a queue message may hold (SQS's set: tab, line feed, carriage return, and
/// U+0020 to U+10FFFF but surrogates, U+FFFE and U+FFFF). A job carries `data` as sent, so
/// data with another character could never be enqueued.
pub fn queueable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Checks a message's `data` (sendmessage's and publish's alike): present, not null, at most
/// `max_data_bytes` of JSON text, and only characters a queue message may hold (write
/// U+FFFE and U+FFFF as `\uFFFE` and `\uFFFF`).
pub fn check_data(
    data: Option<&RawValue>,
    max_data_bytes: usize,
) -> Result<Box<RawValue>, ClientError> {
    let data = data.ok_or_else(|| {
        ClientError::new(
            ErrorCode::MissingData,
            "\"data\" is missing; nothing to send",
        )
    })?;
    if data.get() == "null" {
        return Err(ClientError::new(
            ErrorCode::MissingData,
            "\"data\" is null; nothing to send",
        ));
    }
    if data.get().len() > max_data_bytes {
        return Err(ClientError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "\"data\" is {} bytes of JSON; the limit is {max_data_bytes}",
                data.get().len()
            ),
        ));
    }
    if let Some(bad) = data.get().chars().find(|c| !queueable(*c)) {
        return Err(ClientError::new(
            ErrorCode::InvalidMessage,
            format!(
                "\"data\" holds U+{:04X}, which no queue message may hold; escape it as \\u{:04X}",
                u32::from(bad),
                u32::from(bad)
            ),
        ));
    }
    Ok(data.to_owned())
}

/// A `join` or `leave` frame, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    Join(RoomName),
    Leave(RoomName),
}

/// Validates a `join` or `leave` frame: `{"action":"join"|"leave","room":R}`.
pub fn parse_room_action(body: Option<&str>, is_base64: bool) -> Result<RoomAction, ClientError> {
    let frame = ClientFrame::parse(body, is_base64)?;
    let action = frame.action()?;
    let join = match action.as_str() {
        JOIN => true,
        LEAVE => false,
        _ => return Err(unknown_action(&action)),
    };
    let room = frame.room()?.ok_or_else(|| {
        ClientError::new(
            ErrorCode::InvalidRoom,
            format!("\"room\" is missing; send {{\"action\":\"{action}\",\"room\":\"...\"}}"),
        )
    })?;
    Ok(if join {
        RoomAction::Join(room)
    } else {
        RoomAction::Leave(room)
    })
}

/// A `sendmessage` frame, validated.
#[derive(Debug)]
pub struct Outgoing {
    /// The room it names, if any: without one, it goes to the sender's only room.
    pub room: Option<RoomName>,
    /// `data`, the exact JSON text sent.
    pub data: Box<RawValue>,
}

/// Validates a `sendmessage` frame.
///
/// `max_data_bytes` bounds the JSON text of `data`, so the delivered frame (data plus a small
/// envelope) stays under API Gateway's 128 KB message limit.
pub fn parse_send_message(
    body: Option<&str>,
    is_base64: bool,
    max_data_bytes: usize,
) -> Result<Outgoing, ClientError> {
    let frame = ClientFrame::parse(body, is_base64)?;
    let action = frame.action()?;
    if action != "sendmessage" {
        return Err(unknown_action(&action));
    }
    Ok(Outgoing {
        room: frame.room()?,
        data: check_data(frame.field("data"), max_data_bytes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> ErrorCode {
        parse_send_message(Some(body), false, 32).unwrap_err().code
    }

    #[test]
    fn keeps_data_exactly_as_sent() {
        let sent = parse_send_message(
            Some(r#"{"action":"sendmessage","data":{"t": 1}}"#),
            false,
            32,
        )
        .unwrap();
        assert_eq!(sent.data.get(), r#"{"t": 1}"#);
        assert_eq!(sent.room, None);
    }

    #[test]
    fn reads_the_room_it_names() {
        let sent = parse_send_message(
            Some(r#"{"action":"sendmessage","room":"ops","data":1}"#),
            false,
            32,
        )
        .unwrap();
        assert_eq!(sent.room, Some(RoomName::parse("ops").unwrap()));
        assert_eq!(
            code(r#"{"action":"sendmessage","room":"a b","data":1}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"action":"sendmessage","room":7,"data":1}"#),
            ErrorCode::InvalidRoom
        );
    }

    #[test]
    fn each_bad_input_has_its_code() {
        assert_eq!(code(""), ErrorCode::EmptyBody);
        assert_eq!(code("  "), ErrorCode::EmptyBody);
        assert_eq!(code("hello"), ErrorCode::InvalidJson);
        assert_eq!(code("{\"action\":"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        // A character no queue message may hold, raw; escaped it is fine.
        assert_eq!(
            code("{\"action\":\"sendmessage\",\"data\":\"\u{FFFE}\"}"),
            ErrorCode::InvalidMessage
        );
        assert!(
            parse_send_message(
                Some(r#"{"action":"sendmessage","data":"\uFFFE"}"#),
                false,
                32
            )
            .is_ok()
        );
        assert_eq!(code("\"sendmessage\""), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"data":1}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"action":7,"data":1}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"action":"nope","data":1}"#),
            ErrorCode::UnknownAction
        );
        assert_eq!(code(r#"{"action":"sendmessage"}"#), ErrorCode::MissingData);
        assert_eq!(
            code(r#"{"action":"sendmessage","data":null}"#),
            ErrorCode::MissingData
        );
        let big = format!(r#"{{"action":"sendmessage","data":"{}"}}"#, "x".repeat(31));
        assert_eq!(code(&big), ErrorCode::MessageTooLarge);
        assert_eq!(
            parse_send_message(Some("{}"), true, 32).unwrap_err().code,
            ErrorCode::BinaryNotSupported
        );
    }

    #[test]
    fn room_actions_name_a_valid_room() {
        let parse = |body: &str| parse_room_action(Some(body), false);
        let ops = RoomName::parse("ops").unwrap();
        assert_eq!(
            parse(r#"{"action":"join","room":"ops"}"#),
            Ok(RoomAction::Join(ops.clone()))
        );
        assert_eq!(
            parse(r#"{"action":"leave","room":"ops"}"#),
            Ok(RoomAction::Leave(ops))
        );
        for (bad, expected) in [
            (r#"{"action":"join"}"#, ErrorCode::InvalidRoom),
            (r#"{"action":"join","room":""}"#, ErrorCode::InvalidRoom),
            (r#"{"action":"join","room":null}"#, ErrorCode::InvalidRoom),
            (
                r#"{"action":"leave","room":"../x"}"#,
                ErrorCode::InvalidRoom,
            ),
            (
                r#"{"action":"jump","room":"ops"}"#,
                ErrorCode::UnknownAction,
            ),
            ("[]", ErrorCode::InvalidMessage),
        ] {
            assert_eq!(parse(bad).unwrap_err().code, expected, "{bad}");
        }
    }

    #[test]
    fn the_limit_is_inclusive() {
        let exact = format!(r#"{{"action":"sendmessage","data":"{}"}}"#, "x".repeat(30));
        assert!(parse_send_message(Some(&exact), false, 32).is_ok());
    }
}
