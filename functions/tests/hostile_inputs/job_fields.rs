//! A job record as its fields: written out as a body, changed one field at a time, and a valid
//! one of any target to start from.

use crate::support::{ENDPOINT, LOBBY, ROOM_A, json_value};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// A job's members in order: each key and its value as JSON text.
pub(crate) type Fields = Vec<(&'static str, String)>;

/// Ids a target may name that are not in the store.
const GHOSTS: &[&str] = &["ghost", "", " ", "\\u0000", "../../x", "a/b?c#d", "é😀"];

/// The targets most jobs have: a room, and every connection.
pub(crate) const TO_LOBBY: &str = "{\"room\":\"lobby\"}";
pub(crate) const TO_ALL: &str = "{\"all\":true}";

/// The record: `fields` as a JSON object, in order.
pub(crate) fn job_body(fields: &Fields) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// The body of `fields` with `member` (`"key":value`) written first.
pub(crate) fn member_first(member: &str, fields: &Fields) -> String {
    format!("{{{member},{}", &job_body(fields)[1..])
}

/// `fields` with `key` set to `value`: in its place if it is there, last if not.
pub(crate) fn with(mut fields: Fields, key: &'static str, value: impl Into<String>) -> Fields {
    let value = value.into();
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(field) => field.1 = value,
        None => fields.push((key, value)),
    }
    fields
}

/// `fields` without `key`.
pub(crate) fn without(mut fields: Fields, key: &str) -> Fields {
    fields.retain(|(k, _)| *k != key);
    fields
}

/// `text` as a JSON string.
pub(crate) fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn random_ids(rng: &mut StdRng) -> Vec<String> {
    (0..rng.random_range(1..6))
        .map(|_| match rng.random_range(0..3) {
            0 => LOBBY.choose(rng).unwrap().to_string(),
            1 => ROOM_A.choose(rng).unwrap().to_string(),
            _ => GHOSTS.choose(rng).unwrap().to_string(),
        })
        .collect()
}

fn id_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| quoted(id)).collect();
    format!("[{}]", quoted.join(","))
}

/// A target of these connection ids, in `room` when there is one.
pub(crate) fn to_connections(ids: &[String], room: Option<&str>) -> String {
    let room = room.map_or(String::new(), |room| format!(",\"room\":\"{room}\""));
    format!("{{\"connections\":{}{room}}}", id_list(ids))
}

/// A valid job of any target, with some of the optional fields.
pub(crate) fn valid_job(rng: &mut StdRng, n: usize) -> Fields {
    let mut fields: Fields = vec![
        ("v", "1".into()),
        ("id", format!("\"job-{n}\"")),
        ("target", TO_LOBBY.into()),
        ("payload", json_value(rng, 0)),
        ("sentAt", "1795780800123".into()),
    ];
    match rng.random_range(0..6) {
        0 => {}
        1 => {
            fields = with(fields, "target", "{\"room\":\"room-a\"}");
            if rng.random_bool(0.3) {
                fields = with(fields, "cursor", quoted(ROOM_A.choose(rng).unwrap()));
            }
        }
        2 => fields = with(fields, "target", "{\"room\":\"nobody-here\"}"),
        3 => {
            fields = with(fields, "target", TO_ALL);
            if rng.random_bool(0.3) {
                let total = rng.random_range(1..8u32);
                let index = rng.random_range(0..total);
                fields = with(
                    fields,
                    "segment",
                    format!("{{\"index\":{index},\"total\":{total}}}"),
                );
            }
        }
        _ => {
            let ids = random_ids(rng);
            let room = rng.random_bool(0.5).then_some("lobby");
            fields = with(fields, "target", to_connections(&ids, room));
            if rng.random_bool(0.3) {
                fields = with(fields, "cursor", quoted(ids.choose(rng).unwrap()));
            }
        }
    }
    if rng.random_bool(0.5) {
        fields = with(fields, "sender", quoted(LOBBY.choose(rng).unwrap()));
    }
    if rng.random_bool(0.3) {
        fields = with(fields, "endpoint", quoted(ENDPOINT));
    }
    if rng.random_bool(0.3) {
        fields = with(fields, "attempt", rng.random_range(0..30u32).to_string());
    }
    if rng.random_bool(0.2) {
        fields = with(fields, "retrySince", "1795780800000");
    }
    if rng.random_bool(0.2) {
        let hop: String = (0..rng.random_range(1..=64))
            .map(|_| char::from(*b"0123456789abcdefXYZ".choose(rng).unwrap()))
            .collect();
        fields = with(fields, "hop", quoted(&hop));
    }
    fields
}
