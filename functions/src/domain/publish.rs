//! What a backend sends to the publish endpoint: `{"room":R or "all":true, "data":...,
//! "idempotencyKey":K?}`, and what it is answered.

use crate::domain::message::{ClientFrame, check_data};
use crate::domain::{ClientError, ErrorCode, Job, RoomName, Target};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A publish request, validated.
#[derive(Debug)]
pub struct PublishRequest {
    /// `Target::Room` or `Target::All`.
    pub target: Target,
    pub data: Box<RawValue>,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The key a backend gives a publish so that sending it again (after a timeout, a lost answer)
/// publishes nothing more: printable ASCII, 1 to [`Self::MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// As long as Stripe's and Centrifugo's keys may be, and far below DynamoDB's key limit.
    pub const MAX_LEN: usize = 255;
    /// How long a key is remembered: the same key within this window answers the first
    /// publish's answer.
    pub const KEPT_SECONDS: i64 = 24 * 3600;

    pub fn parse(key: &str) -> Result<Self, ClientError> {
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "\"idempotencyKey\" must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if key.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(invalid(
                "\"idempotencyKey\" must be printable ASCII without spaces",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer to an accepted publish: the message's id, and its place in the room's sequence
/// (none for a publish to `all`, which is in no room's sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

impl Published {
    pub fn of(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            offset: job.offset,
            epoch: job.epoch.clone(),
        }
    }
}

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::new(ErrorCode::InvalidMessage, message)
}

/// Validates a publish request's body as sendmessage validates a frame: JSON object, `data`
/// present, not null and at most `max_data_bytes` of JSON text, and exactly one of `room` (a
/// valid room name) and `"all": true`.
pub fn parse_publish(
    body: Option<&str>,
    max_data_bytes: usize,
) -> Result<PublishRequest, ClientError> {
    let frame = ClientFrame::parse(body, false)?;
    let string = |name: &str| -> Result<Option<String>, ClientError> {
        frame
            .field(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| invalid(format!("\"{name}\" must be a string")))
            })
            .transpose()
    };
    let all = match frame.field("all").map(|raw| raw.get()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("\"all\" must be true or false")),
    };
    let target = match (string("room")?, all) {
        (Some(_), true) => return Err(invalid("give \"room\" or \"all\": true, not both")),
        (Some(room), false) => Target::Room(RoomName::parse(&room).map_err(|error| {
            ClientError::new(ErrorCode::InvalidMessage, format!("\"room\": {error}"))
        })?),
        (None, true) => Target::All,
        (None, false) => {
            return Err(invalid(
                "name a room, {\"room\":\"lobby\",\"data\":...}, or every connection, {\"all\":true,\"data\":...}",
            ));
        }
    };
    let data = check_data(frame.field("data"), max_data_bytes)?;
    let idempotency_key = string("idempotencyKey")?
        .map(|key| IdempotencyKey::parse(&key))
        .transpose()?;
    Ok(PublishRequest {
        target,
        data,
        idempotency_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> ClientError {
        parse_publish(Some(body), 64).unwrap_err()
    }

    #[test]
    fn reads_a_room_or_all_with_data_kept_as_sent() {
        let request = parse_publish(
            Some(r#"{"room":"lobby","data":{"t": 1},"idempotencyKey":"k-1"}"#),
            64,
        )
        .unwrap();
        assert_eq!(request.target, Target::Room(RoomName::lobby()));
        assert_eq!(request.data.get(), r#"{"t": 1}"#);
        assert_eq!(request.idempotency_key.unwrap().as_str(), "k-1");
        let all = parse_publish(Some(r#"{"all":true,"data":"hi"}"#), 64).unwrap();
        assert_eq!((all.target, all.idempotency_key), (Target::All, None));
    }

    #[test]
    fn each_bad_request_is_refused_with_a_reason() {
        for (body, code, says) in [
            ("", ErrorCode::EmptyBody, "empty"),
            ("{", ErrorCode::InvalidJson, "JSON"),
            ("[1]", ErrorCode::InvalidMessage, "object"),
            (r#"{"data":1}"#, ErrorCode::InvalidMessage, "name a room"),
            (
                r#"{"room":"a","all":true,"data":1}"#,
                ErrorCode::InvalidMessage,
                "not both",
            ),
            (
                r#"{"room":"a b","data":1}"#,
                ErrorCode::InvalidMessage,
                "room",
            ),
            (
                r#"{"room":7,"data":1}"#,
                ErrorCode::InvalidMessage,
                "string",
            ),
            (
                r#"{"all":"yes","data":1}"#,
                ErrorCode::InvalidMessage,
                "true or false",
            ),
            (r#"{"room":"a"}"#, ErrorCode::MissingData, "missing"),
            (
                r#"{"room":"a","data":null}"#,
                ErrorCode::MissingData,
                "null",
            ),
            (
                r#"{"room":"a","data":"0123456789012345678901234567890123456789012345678901234567890123"}"#,
                ErrorCode::MessageTooLarge,
                "limit",
            ),
            (
                r#"{"room":"a","data":1,"idempotencyKey":""}"#,
                ErrorCode::InvalidMessage,
                "1 to 255",
            ),
            (
                r#"{"room":"a","data":1,"idempotencyKey":"a b"}"#,
                ErrorCode::InvalidMessage,
                "printable",
            ),
            (
                r#"{"room":"a","data":1,"idempotencyKey":5}"#,
                ErrorCode::InvalidMessage,
                "string",
            ),
        ] {
            let error = refused(body);
            assert_eq!(error.code, code, "{body}: {error}");
            assert!(error.message.contains(says), "{body}: {error}");
        }
        let long = "k".repeat(IdempotencyKey::MAX_LEN + 1);
        assert!(IdempotencyKey::parse(&long).is_err());
        assert!(IdempotencyKey::parse(&long[1..]).is_ok());
    }
}
