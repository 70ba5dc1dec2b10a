//! `$connect` with every kind of room name in its query string, and the event's other shapes:
//! 200 with the connection stored in the room named (or the lobby), or 400 with a reason and
//! nothing stored.

use crate::support::{
    SENDER, Tally, caught, caught_async, connect_to, describe, event, fixture, mutate, report,
    seeded, text_body,
};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout::adapters::memory::MemoryStore;
use fanout::domain::RoomName;
use fanout::ports::ConnectionStore;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// The documented rule, written out again: `[A-Za-z0-9_.:-]{1,64}`.
fn valid_room(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

const ROOM_CHARS: &[u8] = b"abcxyzABCXYZ0189_.:-";

/// `len` characters a room name may have.
fn random_valid(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(*ROOM_CHARS.choose(rng).unwrap()))
        .collect()
}

/// Each of `names`, as an input of this kind.
fn named<'a>(
    kind: &'static str,
    names: &'a [&str],
) -> impl Iterator<Item = (&'static str, String)> + 'a {
    names.iter().map(move |name| (kind, (*name).to_owned()))
}

fn room_corpus(rng: &mut StdRng) -> Vec<(&'static str, String)> {
    let mut corpus = Vec::new();
    for _ in 0..100 {
        let len = rng.random_range(1..=64);
        corpus.push(("valid", random_valid(rng, len)));
    }
    let longest = "a".repeat(64);
    corpus.extend(named(
        "valid",
        &["lobby", "-", ".", "..", ":", "_", &longest],
    ));
    for len in [65, 66, 100, 1_000, 100_000, 1 << 20] {
        corpus.push(("long", "a".repeat(len)));
    }
    for _ in 0..20 {
        let len = rng.random_range(65..300);
        corpus.push(("long", random_valid(rng, len)));
    }
    let (e32, e33) = ("é".repeat(32), "é".repeat(33));
    corpus.extend(named(
        "unicode",
        &[
            "ｌｏｂｂｙ",
            "lobbé",
            "😀",
            "ǅ",
            "ﬀ",
            "Ⅻ",
            "١٢٣",
            "\u{202e}lobby",
            "lobby\u{200b}",
            "e\u{301}",
            "\u{212a}",
            "ı",
            "İ",
            "\u{feff}lobby",
            "lobby\u{85}",
            "\u{10ffff}",
            "\u{fffd}",
            &e32,
            &e33,
            "日本語",
        ],
    ));
    let exotic = [
        'é', '😀', '\u{202e}', '\u{300}', 'ß', '\u{3000}', 'Ω', '\u{fffd}',
    ];
    for _ in 0..50 {
        let len = rng.random_range(0..70);
        let mut name: Vec<char> = random_valid(rng, len).chars().collect();
        let at = rng.random_range(0..=name.len());
        name.insert(at, *exotic.choose(rng).unwrap());
        corpus.push(("unicode", name.into_iter().collect()));
    }
    corpus.extend(named(
        "percent",
        &[
            "%20",
            "lobby%00",
            "%6c%6f%62%62%79",
            "%",
            "%%",
            "%zz",
            "a%2Fb",
            "%C3%A9",
            "%E2%80%AE",
            "%25",
            "lobby%",
            "a+b",
            "a&room=b",
            "a=b",
            "a;b",
        ],
    ));
    for _ in 0..30 {
        let len = rng.random_range(0..60);
        let mut name = random_valid(rng, len);
        let at = rng.random_range(0..=name.len());
        name.insert_str(at, &format!("%{:02X}", rng.random::<u8>()));
        corpus.push(("percent", name));
    }
    corpus.extend(named(
        "empty",
        &["", " ", "  ", "\t", "\n", "\r\n", "lobby ", " lobby"],
    ));
    corpus.extend(named(
        "nul",
        &[
            "\0", "lobby\0", "\0lobby", "a\0b", "\0\0\0", "\u{1}", "\u{7f}",
        ],
    ));
    corpus.extend(named(
        "punctuation",
        &[
            "../etc", "a/b", "a\\b", "a?b", "a#b", "a b", "a'b", "a\"b", "a,b", "<a>", "$x", "{}",
        ],
    ));
    for _ in 0..100 {
        let len = rng.random_range(1..64);
        let name = random_valid(rng, len);
        corpus.push(("mutated", mutate(rng, &name)));
    }
    corpus
}

/// A `$connect` event with these query parameters: `single` as queryStringParameters and
/// `multi` as multiValueQueryStringParameters (either may be absent or null).
fn connect_event(single: Option<Value>, multi: Option<Value>) -> ApiGatewayWebsocketProxyRequest {
    let mut value = fixture("connect");
    let object = value.as_object_mut().unwrap();
    object.remove("queryStringParameters");
    object.remove("multiValueQueryStringParameters");
    if let Some(single) = single {
        object.insert("queryStringParameters".into(), single);
    }
    if let Some(multi) = multi {
        object.insert("multiValueQueryStringParameters".into(), multi);
    }
    event(value)
}

/// Connects with this event and checks the answer: 200 and the connection stored in the room
/// named (or the lobby), or 400 with a reason and nothing stored. Returns the status.
async fn check_connect(
    kind: &'static str,
    request: ApiGatewayWebsocketProxyRequest,
    expected_room: Option<&str>,
    findings: &mut Vec<String>,
) -> Option<i64> {
    let asked = request
        .query_string_parameters
        .first("room")
        .map(str::to_owned);
    let shown = describe(kind, asked.as_deref().unwrap_or("<no room>"));
    let store = MemoryStore::new();
    let response = match caught_async(connect_to(&store, request)).await {
        Ok(response) => response,
        Err(panic) => {
            findings.push(format!("$connect {shown}: PANIC {panic}"));
            return None;
        }
    };
    let stored = store.get(SENDER).await.unwrap();
    match response.status_code {
        200 => match (stored, expected_room) {
            (Some(connection), Some(room))
                if connection.rooms.iter().map(|r| r.as_str()).eq([room]) => {}
            (Some(connection), None)
                if asked.as_deref() == Some("") && connection.rooms.is_empty() => {}
            (stored, _) => findings.push(format!(
                "$connect {shown}: 200, expected {expected_room:?}, stored {:?}",
                stored.map(|c| c.rooms)
            )),
        },
        400 => {
            let reason = text_body(&response).unwrap_or_default();
            if reason.trim().is_empty() || reason.len() > 1024 {
                findings.push(format!("$connect {shown}: 400 with the reason {reason:?}"));
            }
            if expected_room.is_some() {
                findings.push(format!("$connect {shown}: refused a valid room ({reason})"));
            }
            if stored.is_some() || !store.is_empty() {
                findings.push(format!("$connect {shown}: refused but stored"));
            }
        }
        status => findings.push(format!("$connect {shown}: status {status}")),
    }
    Some(response.status_code)
}

#[tokio::test]
async fn connect_answers_200_or_400_with_a_reason() {
    let mut rng = seeded(3);
    let mut tally = Tally::default();
    let mut findings = Vec::new();

    for (kind, name) in room_corpus(&mut rng) {
        tally.add(kind);
        if let Err(panic) = caught(|| RoomName::parse(&name)) {
            findings.push(format!("RoomName::parse PANIC {panic}"));
        }
        let request = connect_event(
            Some(json!({ "room": name })),
            Some(json!({ "room": [name] })),
        );
        let expected = valid_room(&name).then_some(name.as_str());
        check_connect(kind, request, expected, &mut findings).await;
    }

    // The event's other shapes: no query, a null one, repeated and extra parameters, no
    // connection id.
    let shapes: Vec<(Option<Value>, Option<Value>)> = vec![
        (None, None),
        (Some(Value::Null), Some(Value::Null)),
        (Some(json!({})), Some(json!({}))),
        (Some(json!({"other": "x", "ROOM": "a b"})), None),
        (
            Some(json!({"room": "lobby"})),
            Some(json!({"room": ["a b", "lobby"]})),
        ),
        (
            Some(json!({"room": "a b"})),
            Some(json!({"room": ["lobby", "a b"]})),
        ),
        (None, Some(json!({"room": ["ops", "x y"]}))),
        (None, Some(json!({"room": []}))),
    ];
    for (single, multi) in shapes {
        tally.add("event_shape");
        let request = connect_event(single, multi);
        let expected = match request.query_string_parameters.first("room") {
            None => Some("lobby".to_owned()),
            Some(name) => valid_room(name).then(|| name.to_owned()),
        };
        check_connect("event_shape", request, expected.as_deref(), &mut findings).await;
    }
    for id in [None, Some("")] {
        tally.add("event_shape");
        let mut request = connect_event(None, None);
        request.request_context.connection_id = id.map(str::to_owned);
        let store = MemoryStore::new();
        let response = connect_to(&store, request).await;
        if response.status_code != 400
            || text_body(&response).is_none_or(str::is_empty)
            || !store.is_empty()
        {
            findings.push(format!(
                "$connect without a connection id ({id:?}): {response:?}"
            ));
        }
    }
    assert!(tally.total() >= 300, "only {} names", tally.total());
    report("$connect queries", &tally, &findings);
}
