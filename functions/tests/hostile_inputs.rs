//! Hostile input: a seeded corpus of bad client frames, bad jobs and bad room names, through the
//! public API on the in-memory adapters. The property everywhere: bad input never panics and
//! never loses data. Every client frame gets an answer (status 200 and an ack or an error frame
//! with a documented code); every job record ends processed, dead-lettered with a reason, or
//! reported for redelivery; every `$connect` gets 200 or 400 with a reason.
//!
//! Deterministic: every input comes from `StdRng` with a fixed seed, so a failure names an
//! input that fails again on the next run.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use fanout::adapters::memory::{MemoryGateway, MemoryProgress, MemoryQueue, MemoryStore};
use fanout::domain::frame::MAX_FRAME_BYTES;
use fanout::domain::{Connection, Job, RoomName, Target, parse_send_message};
use fanout::engine::{BatchItem, Engine, EngineConfig};
use fanout::handlers::connect::{self, ConnectConfig};
use fanout::handlers::default;
use fanout::handlers::sendmessage::{SendConfig, SendMessage};
use fanout::ports::{ConnectionStore, PostError};
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

const SEED: u64 = 0x5eed_f00d_2026;

/// The error codes of docs/contracts.md.
const DOCUMENTED_CODES: &[&str] = &[
    "empty_body",
    "invalid_json",
    "binary_not_supported",
    "invalid_message",
    "unknown_action",
    "missing_data",
    "message_too_large",
    "not_connected",
    "unavailable",
];

/// The codes `$default` can answer: it never looks at `data` or the store.
const DEFAULT_ROUTE_CODES: &[&str] = &[
    "empty_body",
    "invalid_json",
    "binary_not_supported",
    "invalid_message",
    "unknown_action",
];

/// The connection of tests/fixtures/connect.json and sendmessage.json.
const SENDER: &str = "Dx4sXe1ZoAMCJvw=";
const ENDPOINT: &str = "https://example.execute-api.eu-west-1.amazonaws.com/test";

/// Numbers at and past every edge a parser has.
const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "0e0",
    "1E+2",
    "1e999",
    "-1e999",
    "1e-400",
    "-1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807",
    "9223372036854775808",
    "4294967295",
    "4294967296",
    "-1",
    "1.5",
    "123456789012345678901234567890.5e-7",
    "0.000000000000000000000000000000000000000000000000000000000000001",
];

/// Not JSON numbers, though they look like numbers to someone.
const BAD_NUMBERS: &[&str] = &[
    "01",
    "1.",
    "-",
    ".5",
    "+1",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "1e",
    "1e+",
    "--1",
];

/// Pieces of a valid JSON string's contents: escapes, lone surrogates, NUL, bidi overrides, BOM.
const STRING_PIECES: &[&str] = &[
    "a",
    "Z",
    "0",
    " ",
    "lobby",
    "é",
    "日本",
    "😀",
    "\u{202e}",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "\u{10ffff}",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\udbff\\udfff",
    "\\ud83d\\ude00",
    "\\\"",
    "\\\\",
    "\\/",
    "\\n",
    "\\t",
    "\\u001f",
    "<script>",
    "%00",
    "${x}",
];

/// What breaks JSON when inserted somewhere.
const POISON: &[&str] = &[
    "\0", "\u{1}", "\n", "\"", "\\", "\\x", "\\u12", "\\uZZZZ", "'", ",", ":", "{", "}", "[", "]",
    "\u{feff}", "/*c*/", "NaN", "\u{ffff}", "\u{7f}",
];

// ------------------------------------------------------------------------------------------
// Generators
// ------------------------------------------------------------------------------------------

fn json_string(rng: &mut StdRng, max_pieces: usize) -> String {
    let mut text = String::from('"');
    for _ in 0..rng.random_range(0..=max_pieces) {
        text.push_str(STRING_PIECES.choose(rng).unwrap());
    }
    text.push('"');
    text
}

fn json_number(rng: &mut StdRng) -> String {
    match rng.random_range(0..3) {
        0 => EXTREME_NUMBERS.choose(rng).unwrap().to_string(),
        1 => rng.random::<i64>().to_string(),
        _ => format!("{:e}", rng.random::<f64>() * 1e300),
    }
}

/// Balanced nesting `depth` deep, alternating arrays and objects when `mixed`.
fn nested(depth: usize, mixed: bool) -> String {
    let mut text = String::with_capacity(depth * 6);
    for i in 0..depth {
        text.push_str(if mixed && i % 2 == 1 { "{\"k\":" } else { "[" });
    }
    text.push('1');
    for i in (0..depth).rev() {
        text.push(if mixed && i % 2 == 1 { '}' } else { ']' });
    }
    text
}

/// Any valid JSON value, as text.
fn json_value(rng: &mut StdRng, depth: u32) -> String {
    let kinds = if depth >= 3 { 5 } else { 8 };
    match rng.random_range(0..kinds) {
        0 => ["null", "true", "false"].choose(rng).unwrap().to_string(),
        1 => json_number(rng),
        2..=4 => json_string(rng, 8),
        5 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| json_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        6 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| format!("{}:{}", json_string(rng, 3), json_value(rng, depth + 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => nested(rng.random_range(1..2_000), rng.random_bool(0.5)),
    }
}

/// The longest prefix of `text` of at most `at` bytes that ends on a character boundary.
fn prefix(text: &str, at: usize) -> &str {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// `text` with a random edit: a cut, an insertion of poison, a deletion or a duplication.
fn mutate(rng: &mut StdRng, text: &str) -> String {
    let at = prefix(text, rng.random_range(0..=text.len())).len();
    let (head, tail) = text.split_at(at);
    match rng.random_range(0..5) {
        0 => head.to_owned(),
        1 => format!("{head}{}{tail}", POISON.choose(rng).unwrap()),
        2 => {
            let skip = tail.chars().next().map_or(0, char::len_utf8);
            format!("{head}{}", &tail[skip..])
        }
        3 => format!("{head}{head}{tail}"),
        _ => {
            let byte = char::from(rng.random_range(0u8..128));
            format!("{head}{byte}{tail}")
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The input as shown in a failure: its kind, size and a prefix.
fn describe(kind: &str, text: &str) -> String {
    let shown = prefix(text, 160);
    let more = if shown.len() < text.len() { "…" } else { "" };
    format!("[{kind}] ({} bytes) {shown:?}{more}", text.len())
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn event(value: Value) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(value).expect("a WebSocket proxy event")
}

fn text_body(response: &ApiGatewayProxyResponse) -> Option<&str> {
    match &response.body {
        Some(Body::Text(text)) => Some(text),
        _ => None,
    }
}

fn code_name(code: fanout::domain::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

// ------------------------------------------------------------------------------------------
// Client frames: sendmessage and $default
// ------------------------------------------------------------------------------------------

/// A client frame: its body, whether it came as a binary frame, and what it must get, when
/// that is known without asking the parser (`None`: any documented answer).
struct ClientInput {
    kind: &'static str,
    body: Option<String>,
    binary: bool,
    expect: Option<&'static str>,
}

fn frame(kind: &'static str, body: String, expect: Option<&'static str>) -> ClientInput {
    ClientInput {
        kind,
        body: Some(body),
        binary: false,
        expect,
    }
}

fn send(action: &str, data: &str) -> String {
    format!("{{\"action\":{action},\"data\":{data}}}")
}

fn client_corpus(rng: &mut StdRng, max_data: usize) -> Vec<ClientInput> {
    let mut corpus = Vec::new();

    // Valid frames with any data but null: acked, data kept exactly.
    let mut valid = Vec::new();
    for _ in 0..150 {
        let mut data = json_value(rng, 0);
        if data == "null" || data.len() > max_data {
            data = json_string(rng, 4);
        }
        valid.push(send("\"sendmessage\"", &data));
    }
    for body in &valid {
        corpus.push(frame("valid", body.clone(), Some("ack")));
    }

    // Truncated: no proper prefix of a JSON object is JSON.
    for _ in 0..150 {
        let body = valid.choose(rng).unwrap();
        let cut = prefix(body, rng.random_range(0..body.len())).to_owned();
        let expect = if cut.trim().is_empty() {
            "empty_body"
        } else {
            "invalid_json"
        };
        corpus.push(frame("truncated", cut, Some(expect)));
    }

    // Huge: data past the limit, huge bodies around small data, many keys.
    for size in [
        max_data - 1,
        max_data + 1,
        max_data * 2,
        MAX_FRAME_BYTES + 1,
        1 << 20,
        4 << 20,
    ] {
        let data = format!("\"{}\"", "x".repeat(size - 2 + 1));
        let expect = if data.len() > max_data {
            "message_too_large"
        } else {
            "ack"
        };
        corpus.push(frame("huge", send("\"sendmessage\"", &data), Some(expect)));
    }
    let escapes = format!("\"{}\"", "\\u0000".repeat(max_data));
    corpus.push(frame(
        "huge",
        send("\"sendmessage\"", &escapes),
        Some("message_too_large"),
    ));
    let padded = format!(
        "{}{}{}",
        " ".repeat(1 << 20),
        send("\"sendmessage\"", "1"),
        "\n".repeat(1 << 20)
    );
    corpus.push(frame("huge", padded, Some("ack")));
    let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":{i}")).collect();
    corpus.push(frame(
        "huge",
        format!(
            "{{{},\"action\":\"sendmessage\",\"data\":1}}",
            keys.join(",")
        ),
        Some("ack"),
    ));
    let same_key = "\"action\":\"sendmessage\",".repeat(50_000);
    corpus.push(frame(
        "huge",
        format!("{{{same_key}\"data\":1}}"),
        Some("ack"),
    ));
    let long_action = format!("\"{}\"", "a".repeat(1 << 20));
    corpus.push(frame(
        "huge",
        send(&long_action, "1"),
        Some("unknown_action"),
    ));
    corpus.push(frame("huge", "x".repeat(1 << 20), Some("invalid_json")));
    // Actions that fit in one API Gateway message (128 KB) and are echoed in the answer.
    for piece in ["a", "\\\"", "\\\\", "\\u0001", "é"] {
        let repeat = (MAX_FRAME_BYTES - 64) / piece.len();
        let action = format!("\"{}\"", piece.repeat(repeat));
        corpus.push(frame("huge", send(&action, "1"), Some("unknown_action")));
    }

    // Deep nesting, 100,000 levels and less, open and balanced, everywhere.
    for depth in [129, 1_000, 100_000] {
        corpus.push(frame("nested", "[".repeat(depth), Some("invalid_json")));
        corpus.push(frame(
            "nested",
            "{\"a\":".repeat(depth),
            Some("invalid_json"),
        ));
        corpus.push(frame(
            "nested",
            nested(depth, false),
            Some("invalid_message"),
        ));
        corpus.push(frame(
            "nested",
            nested(depth, true),
            Some("invalid_message"),
        ));
        corpus.push(frame(
            "nested",
            send(&nested(depth, false), "1"),
            Some("invalid_message"),
        ));
        corpus.push(frame(
            "nested",
            format!(
                "{{\"action\":\"sendmessage\",\"data\":{}",
                "[".repeat(depth)
            ),
            Some("invalid_json"),
        ));
        corpus.push(frame(
            "nested",
            format!(
                "{{\"action\":\"sendmessage\",\"data\":1,\"x\":{}}}",
                nested(depth, true)
            ),
            Some("ack"),
        ));
        for mixed in [false, true] {
            let data = nested(depth, mixed);
            let expect = if data.len() > max_data {
                "message_too_large"
            } else {
                "ack"
            };
            corpus.push(frame(
                "nested",
                send("\"sendmessage\"", &data),
                Some(expect),
            ));
        }
    }
    for _ in 0..10 {
        let data = nested(rng.random_range(1..30_000), rng.random_bool(0.5));
        let expect = if data.len() > max_data {
            "message_too_large"
        } else {
            "ack"
        };
        corpus.push(frame(
            "nested",
            send("\"sendmessage\"", &data),
            Some(expect),
        ));
    }

    // Wrong types: every kind of action, every kind of data.
    let actions: &[(&str, &str)] = &[
        ("7", "invalid_message"),
        ("true", "invalid_message"),
        ("null", "invalid_message"),
        ("[]", "invalid_message"),
        ("[\"sendmessage\"]", "invalid_message"),
        ("{}", "invalid_message"),
        ("{\"action\":\"sendmessage\"}", "invalid_message"),
        ("1e999", "invalid_message"),
        ("\"\\ud800\"", "invalid_message"),
        ("\"\"", "unknown_action"),
        ("\"SendMessage\"", "unknown_action"),
        ("\"sendmessage \"", "unknown_action"),
        ("\"sendmessage\\u0000\"", "unknown_action"),
        ("\"$default\"", "unknown_action"),
        ("\"send\\u006dessage\"", "ack"),
    ];
    let datas = [
        "1", "\"s\"", "true", "false", "[]", "{}", "[null]", "\"\"", "0", "null",
    ];
    for (action, expect) in actions {
        for data in datas {
            let expect = if *expect == "ack" && data == "null" {
                "missing_data"
            } else {
                expect
            };
            corpus.push(frame("wrong_type", send(action, data), Some(expect)));
        }
        corpus.push(frame(
            "wrong_type",
            format!("{{\"action\":{action}}}"),
            Some(if *expect == "ack" {
                "missing_data"
            } else {
                expect
            }),
        ));
    }
    for top in [
        "1",
        "\"sendmessage\"",
        "true",
        "null",
        "[1,2]",
        "\"\\ud800\"",
    ] {
        corpus.push(frame("wrong_type", top.to_owned(), Some("invalid_message")));
    }
    corpus.push(frame(
        "wrong_type",
        "{\"data\":1}".to_owned(),
        Some("invalid_message"),
    ));

    // Extreme numbers as data (kept as sent), as action, as the whole frame; bad numbers.
    for number in EXTREME_NUMBERS {
        corpus.push(frame(
            "number",
            send("\"sendmessage\"", number),
            Some("ack"),
        ));
        corpus.push(frame("number", send(number, "1"), Some("invalid_message")));
        corpus.push(frame("number", number.to_string(), Some("invalid_message")));
    }
    for number in BAD_NUMBERS {
        corpus.push(frame(
            "number",
            send("\"sendmessage\"", number),
            Some("invalid_json"),
        ));
        corpus.push(frame("number", number.to_string(), Some("invalid_json")));
    }

    // Lone and broken surrogates, in data, keys and action.
    for s in [
        "\\ud800",
        "\\udc00",
        "\\udbff",
        "\\ud800\\ud800",
        "\\udc00\\ud800",
        "\\ud800a",
        "\\ud83d\\ude00",
    ] {
        corpus.push(frame(
            "surrogate",
            send("\"sendmessage\"", &format!("\"{s}\"")),
            Some("ack"),
        ));
        corpus.push(frame(
            "surrogate",
            send("\"sendmessage\"", &format!("{{\"{s}\":1}}")),
            Some("ack"),
        ));
        corpus.push(frame(
            "surrogate",
            format!("{{\"action\":\"sendmessage\",\"{s}\":1,\"data\":2}}"),
            None,
        ));
        corpus.push(frame("surrogate", send(&format!("\"{s}\""), "1"), None));
    }
    corpus.push(frame(
        "surrogate",
        send("\"sendmessage\"", "\"\\ud8\""),
        Some("invalid_json"),
    ));

    // NUL: raw (never valid JSON outside a string, nor inside one), escaped (valid).
    for body in [
        "\0".to_owned(),
        "\0\0\0".to_owned(),
        format!("{}\0", send("\"sendmessage\"", "1")),
        format!("\0{}", send("\"sendmessage\"", "1")),
        send("\"sendmessage\"", "\"a\0b\""),
        send("\"send\0message\"", "1"),
        "{\"action\":\"sendmessage\",\0\"data\":1}".to_owned(),
    ] {
        corpus.push(frame("nul", body, Some("invalid_json")));
    }
    corpus.push(frame(
        "nul",
        send("\"sendmessage\"", "\"\\u0000\""),
        Some("ack"),
    ));
    corpus.push(frame(
        "nul",
        send("\"sendmessage\"", "{\"\\u0000\":\"\\u0000\"}"),
        Some("ack"),
    ));
    corpus.push(frame(
        "nul",
        send("\"\\u0000\"", "1"),
        Some("unknown_action"),
    ));

    // Binary frames: invalid UTF-8 and anything else, base64 as API Gateway delivers them.
    for i in 0..60 {
        let mut bytes: Vec<u8> = (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect();
        match i % 4 {
            0 => bytes.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]),
            1 => bytes.extend_from_slice(&[0xed, 0xa0, 0x80]), // an encoded surrogate
            2 => bytes = send("\"sendmessage\"", "1").into_bytes(),
            _ => {}
        }
        corpus.push(ClientInput {
            kind: "binary",
            body: Some(base64(&bytes)),
            binary: true,
            expect: Some("binary_not_supported"),
        });
    }
    for body in [None, Some(String::new()), Some("!!! not base64".to_owned())] {
        corpus.push(ClientInput {
            kind: "binary",
            body,
            binary: true,
            expect: Some("binary_not_supported"),
        });
    }

    // Empty and blank.
    for body in [
        None,
        Some(""),
        Some(" "),
        Some("\n\t\r "),
        Some("\u{a0}\u{3000}"),
    ] {
        corpus.push(ClientInput {
            kind: "empty",
            body: body.map(str::to_owned),
            binary: false,
            expect: Some("empty_body"),
        });
    }
    for blank_looking in ["\u{feff}", "\u{200b}", "\0"] {
        corpus.push(frame(
            "empty",
            blank_looking.to_owned(),
            Some("invalid_json"),
        ));
    }

    // Duplicate keys: the last one counts, as in every JSON parser that does not refuse them.
    corpus.push(frame(
        "duplicate",
        "{\"action\":\"nope\",\"action\":\"sendmessage\",\"data\":1}".to_owned(),
        Some("ack"),
    ));
    corpus.push(frame(
        "duplicate",
        "{\"action\":\"sendmessage\",\"action\":\"nope\",\"data\":1}".to_owned(),
        Some("unknown_action"),
    ));
    corpus.push(frame(
        "duplicate",
        "{\"action\":\"sendmessage\",\"data\":1,\"data\":null}".to_owned(),
        Some("missing_data"),
    ));

    // Random edits of valid frames and random text.
    for _ in 0..400 {
        let mut body = valid.choose(rng).unwrap().clone();
        for _ in 0..rng.random_range(1..4) {
            body = mutate(rng, &body);
        }
        corpus.push(frame("mutated", body, None));
    }
    for _ in 0..50 {
        let bytes: Vec<u8> = (0..rng.random_range(0..100))
            .map(|_| rng.random())
            .collect();
        corpus.push(frame(
            "mutated",
            String::from_utf8_lossy(&bytes).into_owned(),
            None,
        ));
    }
    corpus
}

/// What a handler answered, checked against the wire contract: status 200 and a frame.
fn answered(response: &ApiGatewayProxyResponse, codes: &[&str]) -> Result<(String, Value), String> {
    if response.status_code != 200 {
        return Err(format!("status {}", response.status_code));
    }
    let text = text_body(response).ok_or("no text body")?;
    let frame: Value =
        serde_json::from_str(text).map_err(|e| format!("answer is not JSON ({e}): {text:?}"))?;
    match frame["type"].as_str() {
        Some("ack") if frame["id"].as_str().is_some_and(|id| !id.is_empty()) => {
            Ok(("ack".into(), frame))
        }
        Some("error") => {
            let code = frame["code"].as_str().unwrap_or_default().to_owned();
            if !codes.contains(&code.as_str()) {
                return Err(format!("undocumented code {code:?}"));
            }
            if frame["message"].as_str().is_none_or(str::is_empty) {
                return Err("error frame without a message".into());
            }
            Ok((code, frame))
        }
        _ => Err(format!("not an ack nor an error frame: {text}")),
    }
}

#[derive(Default)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }
}

/// Runs the client corpus through sendmessage and `$default`; returns the bodies of the jobs
/// sendmessage acked, to run through the worker after. `acks_only` runs only the frames known
/// to be acked.
async fn client_frames(
    tally: &mut Tally,
    findings: &mut Vec<String>,
    acks_only: bool,
) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let config = SendConfig::default();
    let corpus = client_corpus(&mut rng, config.max_data_bytes);

    let store = MemoryStore::new();
    let connected = connect::handle(
        &store,
        &ConnectConfig::default(),
        event(fixture("connect")),
        SystemTime::now(),
    )
    .await;
    assert_eq!(connected.status_code, 200, "the sender connects");
    let queue = MemoryQueue::new();
    let handler = SendMessage {
        store: &store,
        queue: &queue,
        config: &config,
    };
    let send_base = event(fixture("sendmessage"));
    let default_base = event(fixture("default"));
    let mut acked = Vec::new();

    for input in &corpus {
        if acks_only && input.expect != Some("ack") {
            continue;
        }
        tally.add(input.kind);
        let shown = describe(
            input.kind,
            &format!(
                "{}{}",
                if input.binary { "binary:" } else { "" },
                input.body.as_deref().unwrap_or("<none>")
            ),
        );
        let oracle = parse_send_message(input.body.as_deref(), input.binary, config.max_data_bytes);

        // sendmessage: an ack and exactly one job with the data as sent, or an error and none.
        let mut request = send_base.clone();
        request.body = input.body.clone();
        request.is_base64_encoded = input.binary;
        let response = AssertUnwindSafe(handler.handle(request, SystemTime::now()))
            .catch_unwind()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(panic) => {
                findings.push(format!(
                    "sendmessage {shown}: PANIC {}",
                    panic_message(&*panic)
                ));
                continue;
            }
        };
        let jobs = queue.drain();
        let queued = jobs.len();
        match answered(&response, DOCUMENTED_CODES) {
            Err(problem) => findings.push(format!("sendmessage {shown}: {problem}")),
            Ok((code, frame)) => {
                if let Some(expect) = input.expect
                    && code != expect
                {
                    findings.push(format!(
                        "sendmessage {shown}: answered {code}, expected {expect}"
                    ));
                }
                match (&oracle, code.as_str()) {
                    (Ok(data), "ack") => {
                        if queued != 1 {
                            findings.push(format!(
                                "sendmessage {shown}: acked, {queued} jobs enqueued"
                            ));
                        }
                        match jobs.first() {
                            Some(job) => {
                                if job.id != frame["id"].as_str().unwrap_or_default() {
                                    findings.push(format!(
                                        "sendmessage {shown}: ack id is not the job's"
                                    ));
                                }
                                if job.payload.get() != data.get() {
                                    findings.push(format!(
                                        "sendmessage {shown}: the job's payload differs from data"
                                    ));
                                }
                                let body = job.to_json();
                                if let Err(error) = Job::parse(&body) {
                                    findings.push(format!(
                                        "sendmessage {shown}: worker refuses: {error}"
                                    ));
                                }
                                acked.push(body);
                            }
                            None => findings.push(format!(
                                "sendmessage {shown}: acked but nothing on the queue"
                            )),
                        }
                    }
                    (Err(refusal), code) if code == code_name(refusal.code) => {
                        if queued != 0 {
                            findings.push(format!(
                                "sendmessage {shown}: refused ({code}) but enqueued {queued}"
                            ));
                        }
                    }
                    (oracle, code) => findings.push(format!(
                        "sendmessage {shown}: answered {code}, the parser says {:?}",
                        oracle
                            .as_ref()
                            .map(|d| d.get().len())
                            .map_err(|e| code_name(e.code))
                    )),
                }
            }
        }
        check_frame_size(&response, input, &shown, findings);

        // $default: always an error frame, with one of its codes.
        let mut request = default_base.clone();
        request.body = input.body.clone();
        request.is_base64_encoded = input.binary;
        let response = match std::panic::catch_unwind(|| default::handle(request)) {
            Ok(response) => response,
            Err(panic) => {
                findings.push(format!(
                    "$default {shown}: PANIC {}",
                    panic_message(&*panic)
                ));
                continue;
            }
        };
        match answered(&response, DEFAULT_ROUTE_CODES) {
            Err(problem) => findings.push(format!("$default {shown}: {problem}")),
            Ok((code, _)) if code == "ack" => findings.push(format!("$default {shown}: acked")),
            Ok(_) => {}
        }
        check_frame_size(&response, input, &shown, findings);
    }

    // A sender the store does not know, or an event without a connection id: told to
    // reconnect, nothing enqueued.
    for (i, id) in [None, Some(""), Some("unknown="), Some("\0"), Some("é😀")]
        .into_iter()
        .enumerate()
    {
        for body in [
            send("\"sendmessage\"", "1"),
            send("\"sendmessage\"", &nested(5_000, true)),
        ] {
            tally.add("not_connected");
            let mut request = send_base.clone();
            request.body = Some(body.clone());
            request.request_context.connection_id = id.map(str::to_owned);
            let shown = describe("not_connected", &format!("{id:?} {}", prefix(&body, 40)));
            let response = handler.handle(request, SystemTime::now()).await;
            match answered(&response, DOCUMENTED_CODES) {
                Ok((code, _)) if code == "not_connected" && queue.is_empty() => {}
                Ok((code, _)) => findings.push(format!(
                    "sendmessage {shown} #{i}: {code}, {} enqueued",
                    queue.drain().len()
                )),
                Err(problem) => findings.push(format!("sendmessage {shown}: {problem}")),
            }
        }
    }
    acked
}

/// An answer to a frame API Gateway could have delivered (at most 128 KB) must itself fit in
/// one API Gateway message, or the client gets nothing.
fn check_frame_size(
    response: &ApiGatewayProxyResponse,
    input: &ClientInput,
    shown: &str,
    findings: &mut Vec<String>,
) {
    let sent = input.body.as_deref().map_or(0, str::len);
    let answer = text_body(response).map_or(0, str::len);
    if sent <= MAX_FRAME_BYTES && answer > MAX_FRAME_BYTES {
        findings.push(format!(
            "{shown}: a {sent}-byte frame got a {answer}-byte answer, over API Gateway's {MAX_FRAME_BYTES}"
        ));
    }
}

// ------------------------------------------------------------------------------------------
// Jobs: Job::parse and Engine::run_batch
// ------------------------------------------------------------------------------------------

struct JobInput {
    kind: &'static str,
    body: String,
}

type Fields = Vec<(&'static str, String)>;

fn job_body(fields: &Fields) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn with(mut fields: Fields, key: &'static str, value: impl Into<String>) -> Fields {
    let value = value.into();
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(field) => field.1 = value,
        None => fields.push((key, value)),
    }
    fields
}

fn without(mut fields: Fields, key: &str) -> Fields {
    fields.retain(|(k, _)| *k != key);
    fields
}

/// Members of the rooms every worker's store holds.
const LOBBY: &[&str] = &["m-0", "m-1", "m-2", "m-3", "m-4", "m-flaky", "m-gone"];
const ROOM_A: &[&str] = &["a-0", "a-1", "a/../odd\u{0}é"];
/// Ids a target may name that are not in the store.
const GHOSTS: &[&str] = &["ghost", "", " ", "\\u0000", "../../x", "a/b?c#d", "é😀"];

fn quoted(text: &str) -> String {
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

/// A valid job of any target, with some of the optional fields.
fn valid_job(rng: &mut StdRng, n: usize) -> Fields {
    let mut fields: Fields = vec![
        ("v", "1".into()),
        ("id", format!("\"job-{n}\"")),
        ("target", "{\"room\":\"lobby\"}".into()),
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
            fields = with(fields, "target", "{\"all\":true}");
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
            let room = if rng.random_bool(0.5) {
                ",\"room\":\"lobby\""
            } else {
                ""
            };
            fields = with(
                fields,
                "target",
                format!("{{\"connections\":{}{room}}}", id_list(&ids)),
            );
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

fn job_corpus(rng: &mut StdRng) -> Vec<JobInput> {
    let mut corpus = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let push = |corpus: &mut Vec<JobInput>, kind, fields: &Fields| {
        corpus.push(JobInput {
            kind,
            body: job_body(fields),
        })
    };

    let mut valid = Vec::new();
    for _ in 0..150 {
        let fields = valid_job(rng, next());
        push(&mut corpus, "valid", &fields);
        valid.push(job_body(&fields));
    }

    for _ in 0..150 {
        let body = valid.choose(rng).unwrap();
        corpus.push(JobInput {
            kind: "truncated",
            body: prefix(body, rng.random_range(0..body.len())).to_owned(),
        });
    }

    // Huge: payloads past the frame limit and near it, bodies past the queue limit, many ids.
    for size in [100_000, MAX_FRAME_BYTES, 300_000, 2 << 20] {
        let fields = with(
            valid_job(rng, next()),
            "payload",
            format!("\"{}\"", "x".repeat(size)),
        );
        push(&mut corpus, "huge", &fields);
    }
    let fields = with(valid_job(rng, next()), "junk", quoted(&"j".repeat(1 << 20)));
    push(&mut corpus, "huge", &fields);
    let fields = with(
        valid_job(rng, next()),
        "sender",
        quoted(&"s".repeat(200_000)),
    );
    push(&mut corpus, "huge", &fields);
    let many: Vec<String> = (0..10_000).map(|i| format!("c-{i:05}")).collect();
    let fields = with(
        valid_job(rng, next()),
        "target",
        format!("{{\"connections\":{}}}", id_list(&many)),
    );
    push(&mut corpus, "huge", &fields);
    let long_ids: Vec<String> = (0..100)
        .map(|i| format!("{i}{}", "L".repeat(4_000)))
        .collect();
    let fields = with(
        valid_job(rng, next()),
        "target",
        format!(
            "{{\"connections\":{},\"room\":\"lobby\"}}",
            id_list(&long_ids)
        ),
    );
    push(&mut corpus, "huge", &fields);
    corpus.push(JobInput {
        kind: "huge",
        body: "[".repeat(1 << 20),
    });

    // Deep nesting: in the payload, the target, unknown fields, the whole body.
    for depth in [129, 50_000, 100_000] {
        for mixed in [false, true] {
            let fields = with(valid_job(rng, next()), "payload", nested(depth, mixed));
            push(&mut corpus, "nested", &fields);
        }
        let fields = with(valid_job(rng, next()), "payload", "[".repeat(depth));
        push(&mut corpus, "nested", &fields);
        let fields = with(valid_job(rng, next()), "target", nested(depth, true));
        push(&mut corpus, "nested", &fields);
        let fields = with(
            valid_job(rng, next()),
            "target",
            format!("{{\"room\":{}}}", nested(depth, false)),
        );
        push(&mut corpus, "nested", &fields);
        let fields = with(valid_job(rng, next()), "extra", nested(depth, true));
        push(&mut corpus, "nested", &fields);
        let fields = with(valid_job(rng, next()), "segment", nested(depth, true));
        push(&mut corpus, "nested", &fields);
        corpus.push(JobInput {
            kind: "nested",
            body: nested(depth, true),
        });
    }

    // Wrong types for every field.
    let wrong: &[&str] = &[
        "null",
        "true",
        "\"1\"",
        "1.5",
        "-1",
        "[]",
        "{}",
        "[1]",
        "\"\"",
        "\"\\ud800\"",
        "1e999",
    ];
    for key in [
        "v",
        "id",
        "target",
        "payload",
        "sender",
        "sentAt",
        "cursor",
        "segment",
        "endpoint",
        "attempt",
        "retrySince",
        "hop",
    ] {
        for value in wrong {
            let fields = with(valid_job(rng, next()), key, *value);
            push(&mut corpus, "wrong_type", &fields);
        }
        let fields = without(valid_job(rng, next()), key);
        push(&mut corpus, "wrong_type", &fields);
    }
    for target in [
        "{\"all\":false}",
        "{\"all\":1}",
        "{\"room\":\"lobby\",\"all\":true}",
        "{\"connections\":\"m-0\"}",
        "{\"connections\":[1,2]}",
        "{\"connections\":[null]}",
        "{\"connections\":[],\"all\":true}",
        "{\"connections\":[]}",
        "{\"room\":\"bad room\"}",
        "{\"room\":\"\"}",
        "{\"room\":\"lobby\\u0000\"}",
        "{\"rooms\":\"lobby\"}",
        "\"lobby\"",
    ] {
        let fields = with(valid_job(rng, next()), "target", target);
        push(&mut corpus, "wrong_type", &fields);
    }

    // Extreme numbers: attempt, sentAt, retrySince, segments, v.
    for attempt in [
        "4294967295",
        "4294967296",
        "18446744073709551616",
        "-1",
        "1e999",
        "-0",
        "0",
    ] {
        for target in [
            "{\"room\":\"lobby\"}",
            "{\"connections\":[\"m-flaky\",\"m-0\"]}",
        ] {
            let fields = with(valid_job(rng, next()), "attempt", attempt);
            let fields = with(fields, "target", target);
            push(&mut corpus, "number", &fields);
        }
    }
    let i64_edges = [
        i64::MIN.to_string(),
        (i64::MIN + 1).to_string(),
        i64::MAX.to_string(),
        "9223372036854775808".to_owned(),
        "-9223372036854775809".to_owned(),
        "-0".to_owned(),
        "0".to_owned(),
        "-1".to_owned(),
        "1e999".to_owned(),
        "1e-400".to_owned(),
    ];
    for value in &i64_edges {
        for target in [
            "{\"room\":\"lobby\"}",
            "{\"connections\":[\"m-flaky\"],\"room\":\"lobby\"}",
        ] {
            let fields = with(valid_job(rng, next()), "sentAt", value.as_str());
            push(&mut corpus, "number", &with(fields, "target", target));
            let fields = with(valid_job(rng, next()), "retrySince", value.as_str());
            push(&mut corpus, "number", &with(fields, "target", target));
        }
    }
    for (index, total) in [
        ("0", "0"),
        ("0", "1"),
        ("1", "1"),
        ("0", "4294967296"),
        ("0", "4294967295"),
        ("4294967295", "4294967295"),
        ("999999", "1000000"),
        ("0", "1000001"),
        ("-1", "2"),
        ("0", "1e999"),
    ] {
        for target in ["{\"all\":true}", "{\"room\":\"lobby\"}"] {
            let fields = with(valid_job(rng, next()), "target", target);
            let fields = with(
                fields,
                "segment",
                format!("{{\"index\":{index},\"total\":{total}}}"),
            );
            push(&mut corpus, "number", &fields);
        }
    }
    for v in ["0", "2", "4294967297", "-1", "1.0", "1e0"] {
        let fields = with(valid_job(rng, next()), "v", v);
        push(&mut corpus, "number", &fields);
    }

    // Unknown fields, at the top (ignored) and inside the target (refused).
    for (key, value) in [
        ("extra", "1"),
        ("V", "2"),
        ("sent_at", "\"x\""),
        ("__proto__", "{}"),
        ("", "null"),
        ("\\u0000", "[]"),
    ] {
        let fields = with(valid_job(rng, next()), "v", "1");
        let body = job_body(&fields);
        corpus.push(JobInput {
            kind: "unknown_field",
            body: format!("{{\"{key}\":{value},{}", &body[1..]),
        });
    }
    for target in [
        "{\"room\":\"lobby\",\"x\":1}",
        "{\"all\":true,\"segment\":1}",
        "{\"connections\":[\"m-0\"],\"cursor\":\"m-0\"}",
    ] {
        let fields = with(valid_job(rng, next()), "target", target);
        push(&mut corpus, "unknown_field", &fields);
    }
    let fields = with(valid_job(rng, next()), "target", "{\"all\":true}");
    let fields = with(
        fields,
        "segment",
        "{\"index\":0,\"total\":2,\"extra\":true}",
    );
    push(&mut corpus, "unknown_field", &fields);
    let fields = valid_job(rng, next());
    let body = job_body(&fields);
    corpus.push(JobInput {
        kind: "unknown_field",
        body: format!("{{\"v\":2,{}", &body[1..]),
    });

    // Repeated ids: one id 10,000 times, with and without a cursor on it.
    for id in ["m-0", "", "ghost", "m-flaky"] {
        let ids: Vec<String> = vec![id.to_owned(); 10_000];
        let fields = with(
            valid_job(rng, next()),
            "target",
            format!("{{\"connections\":{}}}", id_list(&ids)),
        );
        push(&mut corpus, "repeated_ids", &fields);
        push(
            &mut corpus,
            "repeated_ids",
            &with(fields, "cursor", quoted(id)),
        );
    }
    let mixed: Vec<String> = (0..10_000)
        .map(|i| LOBBY[i % LOBBY.len()].to_owned())
        .collect();
    let fields = with(
        valid_job(rng, next()),
        "target",
        format!("{{\"connections\":{},\"room\":\"lobby\"}}", id_list(&mixed)),
    );
    push(&mut corpus, "repeated_ids", &fields);

    // Cursors that are not ids, on every target.
    for cursor in [
        "\"\"",
        "\"zzzz\"",
        "\"\\u0000\"",
        "\"\\udfff\"",
        "\"m-4\"",
        "\"m-9\"",
        "\"\u{10ffff}\"",
        "\"{\\\"ExclusiveStartKey\\\":1}\"",
        "1",
        "null",
    ] {
        for target in [
            "{\"room\":\"lobby\"}",
            "{\"all\":true}",
            "{\"connections\":[\"m-0\",\"m-1\"]}",
        ] {
            let fields = with(valid_job(rng, next()), "target", target);
            push(&mut corpus, "cursor", &with(fields, "cursor", cursor));
        }
    }

    // Hops: empty, too long, odd characters, and the longest valid one.
    for hop in [
        String::new(),
        "a".repeat(64),
        "a".repeat(65),
        "a".repeat(10_000),
        "a b".into(),
        "é".into(),
        "../x".into(),
        "a\u{0}".into(),
        "a#b".into(),
        "ab\u{ff10}".into(),
        "\u{202e}1".into(),
        "０".into(),
        "x\n".into(),
    ] {
        let fields = with(valid_job(rng, next()), "hop", quoted(&hop));
        push(&mut corpus, "hop", &fields);
    }
    for hop in ["1", "null", "[\"a\"]", "\"\\ud800\""] {
        let fields = with(valid_job(rng, next()), "hop", hop);
        push(&mut corpus, "hop", &fields);
    }

    // Duplicate keys, duplicate jobs in one batch (see the batching), and empty bodies.
    let fields = valid_job(rng, next());
    let body = job_body(&fields);
    corpus.push(JobInput {
        kind: "duplicate",
        body: format!("{{\"v\":1,{}", &body[1..]),
    });
    corpus.push(JobInput {
        kind: "duplicate",
        body: body.replace("\"target\":", "\"target\":{\"all\":true},\"target\":"),
    });
    for body in ["", " ", "\0", "null", "{}", "[]", "\"\"", "1"] {
        corpus.push(JobInput {
            kind: "empty",
            body: body.to_owned(),
        });
    }

    // Random edits of valid jobs, and random text.
    for _ in 0..500 {
        let mut body = valid.choose(rng).unwrap().clone();
        for _ in 0..rng.random_range(1..4) {
            body = mutate(rng, &body);
        }
        corpus.push(JobInput {
            kind: "mutated",
            body,
        });
    }
    for _ in 0..50 {
        let bytes: Vec<u8> = (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect();
        corpus.push(JobInput {
            kind: "mutated",
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    corpus
}

/// A worker on the in-memory adapters, with a store of a few rooms: small pages, a member
/// whose posts keep failing (so retries and the retry budget run) and one that is gone.
struct Worker {
    queue: Arc<MemoryQueue>,
    progress: Arc<MemoryProgress>,
    engine: Arc<Engine>,
}

async fn worker(scan_segments: u32) -> Worker {
    let store = Arc::new(MemoryStore::with_page_size(3));
    for (room, members) in [
        ("lobby", LOBBY),
        ("room-a", ROOM_A),
        ("general", &[SENDER][..]),
    ] {
        for id in members {
            store
                .put(&Connection {
                    connection_id: (*id).to_owned(),
                    room: RoomName::parse(room).unwrap(),
                    connected_at: 0,
                    expires_at: 0,
                    principal: None,
                })
                .await
                .unwrap();
        }
    }
    let gateway = Arc::new(MemoryGateway::new());
    gateway.mark_gone("m-gone");
    gateway.script("m-flaky", std::iter::repeat_n(PostError::Server(503), 400));
    let queue = Arc::new(MemoryQueue::new());
    let progress = Arc::new(MemoryProgress::new());
    let engine = Engine::new(
        store,
        gateway,
        queue.clone(),
        progress.clone(),
        EngineConfig {
            concurrency: 8,
            management_endpoint: Some(ENDPOINT.into()),
            scan_segments,
            ..EngineConfig::default()
        },
    );
    Worker {
        queue,
        progress,
        engine: Arc::new(engine),
    }
}

/// The panic message if running this one record in a batch of its own panics.
async fn panics_alone(body: &str) -> Option<String> {
    let engine = worker(1).await.engine;
    let item = BatchItem {
        message_id: "alone".into(),
        body: body.to_owned(),
        ..BatchItem::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = tokio::spawn(async move { engine.run_batch(vec![item], deadline).await });
    match run.await {
        Err(error) if error.is_panic() => Some(panic_message(&*error.into_panic())),
        _ => None,
    }
}

/// Where the records of a batch ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Buckets {
    processed: usize,
    dead_lettered: usize,
    failed: usize,
}

/// Runs one batch and sorts each record into exactly one bucket; whatever fits none, or a
/// panic, is a finding. Returns the jobs the worker handed back (continuations, retries).
async fn run_batch(
    worker: &Worker,
    records: &[(&'static str, String)],
    receive_counts: &[u32],
    buckets: &mut Buckets,
    findings: &mut Vec<String>,
) -> Vec<String> {
    let items: Vec<BatchItem> = records
        .iter()
        .enumerate()
        .map(|(i, (_, body))| BatchItem {
            message_id: format!("record-{i}"),
            body: body.clone(),
            receipt_handle: Some(format!("receipt-{i}")),
            receive_count: receive_counts[i % receive_counts.len()],
        })
        .collect();
    let letters_before = worker.queue.dead_letters().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let engine = worker.engine.clone();
    let report = match tokio::spawn(async move { engine.run_batch(items, deadline).await }).await {
        Ok(report) => report,
        Err(error) => {
            let why = if error.is_panic() {
                format!("PANIC {}", panic_message(&*error.into_panic()))
            } else {
                error.to_string()
            };
            // Which of its records does it alone?
            let mut culprits = Vec::new();
            for (kind, body) in records {
                if let Some(panic) = panics_alone(body).await {
                    culprits.push(format!("{panic} on {}", describe(kind, body)));
                }
            }
            findings.push(format!(
                "run_batch {why}: {} records of the batch lost; alone, these panic: {culprits:#?}",
                records.len()
            ));
            return Vec::new();
        }
    };
    if Instant::now() > deadline {
        findings.push("run_batch returned after its deadline".into());
    }

    let failed: HashSet<&str> = report
        .failed_message_ids
        .iter()
        .map(String::as_str)
        .collect();
    let mut dead = worker.queue.dead_letters().split_off(letters_before);
    let dead_total = dead.len();
    let mut batch = Buckets::default();
    for (i, (kind, body)) in records.iter().enumerate() {
        let parsed = Job::parse(body);
        if failed.contains(format!("record-{i}").as_str()) {
            batch.failed += 1;
            continue;
        }
        // An invalid body is parked as it came; a valid one that can never go out (its frame
        // is too large) as the job it parsed to.
        let parked_as = match &parsed {
            Ok(job) => job.to_json(),
            Err(_) => body.clone(),
        };
        if let Some(at) = dead.iter().position(|d| d.body == parked_as) {
            let letter = dead.remove(at);
            if letter.reason.trim().is_empty() {
                findings.push(format!(
                    "dead-lettered without a reason: {}",
                    describe(kind, body)
                ));
            }
            batch.dead_lettered += 1;
            continue;
        }
        match parsed {
            Ok(job) => {
                let finished = worker
                    .progress
                    .checkpoint(&job.progress_key())
                    .is_some_and(|checkpoint| checkpoint.finished);
                if finished {
                    batch.processed += 1;
                } else {
                    findings.push(format!(
                        "silently dropped (not failed, not dead-lettered, not finished): {}",
                        describe(kind, body)
                    ));
                }
            }
            Err(error) => findings.push(format!(
                "silently dropped an invalid job ({error}): {}",
                describe(kind, body)
            )),
        }
    }
    if batch.processed + batch.dead_lettered + batch.failed != records.len() {
        findings.push(format!(
            "{batch:?} do not add up to the batch's {} records",
            records.len()
        ));
    }
    if report.stats.failed_jobs != batch.failed as u64 {
        findings.push(format!(
            "stats.failed_jobs = {} but {} records were reported",
            report.stats.failed_jobs, batch.failed
        ));
    }
    if report.stats.dead_lettered != dead_total as u64 {
        findings.push(format!(
            "stats.dead_lettered = {} but {dead_total} dead letters",
            report.stats.dead_lettered
        ));
    }
    // Dead letters of no record: deliveries given up past the retry budget, as jobs of ids.
    for letter in dead {
        let ok = Job::parse(&letter.body)
            .is_ok_and(|job| matches!(job.target, Target::Connections { .. }))
            && !letter.reason.trim().is_empty();
        if !ok {
            findings.push(format!(
                "a dead letter of no record: {} ({})",
                describe("dead letter", &letter.body),
                letter.reason
            ));
        }
    }
    buckets.processed += batch.processed;
    buckets.dead_lettered += batch.dead_lettered;
    buckets.failed += batch.failed;

    // What the worker hands back is a valid job, or the rest of a job is lost.
    let mut handed_back = Vec::new();
    for job in worker.queue.drain() {
        let body = job.to_json();
        if let Err(error) = Job::parse(&body) {
            findings.push(format!(
                "handed back a job the worker refuses ({error}): {}",
                describe("handed back", &body)
            ));
        }
        handed_back.push(body);
    }
    handed_back
}

// ------------------------------------------------------------------------------------------
// $connect: room names
// ------------------------------------------------------------------------------------------

/// The documented rule, written out again: `[A-Za-z0-9_.:-]{1,64}`.
fn valid_room(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

const ROOM_CHARS: &[u8] = b"abcxyzABCXYZ0189_.:-";

fn room_corpus(rng: &mut StdRng) -> Vec<(&'static str, String)> {
    let mut corpus = Vec::new();
    let random_valid = |rng: &mut StdRng, len: usize| -> String {
        (0..len)
            .map(|_| char::from(*ROOM_CHARS.choose(rng).unwrap()))
            .collect()
    };
    for _ in 0..100 {
        let len = rng.random_range(1..=64);
        corpus.push(("valid", random_valid(rng, len)));
    }
    for name in ["lobby", "-", ".", "..", ":", "_", "a".repeat(64).as_str()] {
        corpus.push(("valid", name.to_owned()));
    }
    for len in [65, 66, 100, 1_000, 100_000, 1 << 20] {
        corpus.push(("long", "a".repeat(len)));
    }
    for _ in 0..20 {
        let len = rng.random_range(65..300);
        corpus.push(("long", random_valid(rng, len)));
    }
    for name in [
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
        "é".repeat(32).as_str(),
        "é".repeat(33).as_str(),
        "日本語",
    ] {
        corpus.push(("unicode", name.to_owned()));
    }
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
    for name in [
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
    ] {
        corpus.push(("percent", name.to_owned()));
    }
    for _ in 0..30 {
        let len = rng.random_range(0..60);
        let mut name = random_valid(rng, len);
        let at = rng.random_range(0..=name.len());
        name.insert_str(at, &format!("%{:02X}", rng.random::<u8>()));
        corpus.push(("percent", name));
    }
    for name in ["", " ", "  ", "\t", "\n", "\r\n", "lobby ", " lobby"] {
        corpus.push(("empty", name.to_owned()));
    }
    for name in [
        "\0", "lobby\0", "\0lobby", "a\0b", "\0\0\0", "\u{1}", "\u{7f}",
    ] {
        corpus.push(("nul", name.to_owned()));
    }
    for name in [
        "../etc", "a/b", "a\\b", "a?b", "a#b", "a b", "a'b", "a\"b", "a,b", "<a>", "$x", "{}",
    ] {
        corpus.push(("punctuation", name.to_owned()));
    }
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
    let config = ConnectConfig::default();
    let response = AssertUnwindSafe(connect::handle(&store, &config, request, SystemTime::now()))
        .catch_unwind()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(panic) => {
            findings.push(format!(
                "$connect {shown}: PANIC {}",
                panic_message(&*panic)
            ));
            return None;
        }
    };
    let stored = store.get(SENDER).await.unwrap();
    match response.status_code {
        200 => match (stored, expected_room) {
            (Some(connection), Some(room)) if connection.room.as_str() == room => {}
            (stored, _) => findings.push(format!(
                "$connect {shown}: 200, expected {expected_room:?}, stored {:?}",
                stored.map(|c| c.room)
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

// ------------------------------------------------------------------------------------------
// The tests
// ------------------------------------------------------------------------------------------

fn report(what: &str, tally: &Tally, findings: &[String]) {
    println!("{what}: {} inputs {:?}", tally.total(), tally.0);
    assert!(
        findings.is_empty(),
        "{} finding(s) in {what}:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

#[tokio::test]
async fn every_client_frame_gets_a_documented_answer() {
    let mut tally = Tally::default();
    let mut findings = Vec::new();
    let acked = client_frames(&mut tally, &mut findings, false).await;
    assert!(tally.total() >= 1_000, "only {} frames", tally.total());
    assert!(!acked.is_empty());
    report(
        "client frames (each through sendmessage and $default)",
        &tally,
        &findings,
    );
}

#[tokio::test(start_paused = true)]
async fn every_job_record_is_processed_dead_lettered_or_reported() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let mut tally = Tally::default();
    let mut findings = Vec::new();

    // Job::parse alone: an answer for every body.
    let corpus = job_corpus(&mut rng);
    for input in &corpus {
        if let Err(panic) = std::panic::catch_unwind(|| Job::parse(&input.body)) {
            findings.push(format!(
                "Job::parse PANIC {}: {}",
                panic_message(&*panic),
                describe(input.kind, &input.body)
            ));
        }
    }

    // What sendmessage acked, through the worker too.
    let mut records: Vec<(&'static str, String)> = corpus
        .into_iter()
        .map(|input| (input.kind, input.body))
        .collect();
    let mut sent = Vec::new();
    let acked = client_frames(&mut Tally::default(), &mut sent, true).await;
    assert!(sent.is_empty(), "{sent:#?}");
    records.extend(acked.into_iter().map(|body| ("from_sendmessage", body)));
    records.shuffle(&mut rng);
    // Some records twice in a row, so mostly in one batch: the second run finds the first's
    // progress record (busy: reported; finished: nothing to do).
    for i in (0..20).map(|i| i * 37) {
        let again = records[i].clone();
        records.insert(i + 1, again);
    }

    let receive_counts = [1, 0, 2, 1_000, u32::MAX];
    let mut buckets = Buckets::default();
    let mut children = Buckets::default();
    let mut rest = &records[..];
    let mut batches = 0;
    while !rest.is_empty() {
        let size = rng.random_range(1..=10).min(rest.len());
        let (batch, tail) = rest.split_at(size);
        rest = tail;
        batches += 1;
        for (kind, _) in batch {
            tally.add(kind);
        }
        let worker = worker(if batches % 3 == 0 { 3 } else { 1 }).await;
        let handed_back =
            run_batch(&worker, batch, &receive_counts, &mut buckets, &mut findings).await;
        // One more round: what the worker handed back goes through it again.
        if !handed_back.is_empty() {
            let again: Vec<(&'static str, String)> = handed_back
                .into_iter()
                .map(|body| ("handed_back", body))
                .collect();
            run_batch(&worker, &again, &[1], &mut children, &mut findings).await;
        }
    }
    let total = buckets.processed + buckets.dead_lettered + buckets.failed;
    println!(
        "jobs: {} records in {batches} batches: {buckets:?}; handed-back jobs run again: {children:?}",
        records.len()
    );
    if total != records.len() {
        findings.push(format!(
            "{total} records in a bucket of {}: every record must be in exactly one",
            records.len()
        ));
    }
    assert!(tally.total() >= 1_000, "only {} jobs", tally.total());
    report("job records", &tally, &findings);
}

#[tokio::test]
async fn connect_answers_200_or_400_with_a_reason() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 3);
    let mut tally = Tally::default();
    let mut findings = Vec::new();

    for (kind, name) in room_corpus(&mut rng) {
        tally.add(kind);
        if let Err(panic) = std::panic::catch_unwind(|| RoomName::parse(&name)) {
            findings.push(format!("RoomName::parse PANIC {}", panic_message(&*panic)));
        }
        let request = connect_event(
            Some(serde_json::json!({ "room": name })),
            Some(serde_json::json!({ "room": [name] })),
        );
        let expected = valid_room(&name).then_some(name.as_str());
        check_connect(kind, request, expected, &mut findings).await;
    }

    // The event's other shapes: no query, a null one, repeated and extra parameters, no
    // connection id.
    let shapes: Vec<(Option<Value>, Option<Value>)> = vec![
        (None, None),
        (Some(Value::Null), Some(Value::Null)),
        (Some(serde_json::json!({})), Some(serde_json::json!({}))),
        (Some(serde_json::json!({"other": "x", "ROOM": "a b"})), None),
        (
            Some(serde_json::json!({"room": "lobby"})),
            Some(serde_json::json!({"room": ["a b", "lobby"]})),
        ),
        (
            Some(serde_json::json!({"room": "a b"})),
            Some(serde_json::json!({"room": ["lobby", "a b"]})),
        ),
        (None, Some(serde_json::json!({"room": ["ops", "x y"]}))),
        (None, Some(serde_json::json!({"room": []}))),
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
        let response = connect::handle(
            &store,
            &ConnectConfig::default(),
            request,
            SystemTime::now(),
        )
        .await;
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

/// A job whose deliveries fail transiently and whose `retrySince` is i64::MIN (once an
/// overflow that panicked the batch). Expected: the batch returns, the record is processed
/// and, the retry budget long spent, the failed delivery goes to the dead-letter queue.
#[tokio::test(start_paused = true)]
async fn a_retry_since_in_the_far_past_does_not_panic_the_batch() {
    let body = format!(
        "{{\"v\":1,\"id\":\"far-past\",\"target\":{{\"connections\":[\"m-flaky\"]}},\
         \"payload\":1,\"sentAt\":1795780800123,\"retrySince\":{}}}",
        i64::MIN
    );
    assert!(Job::parse(&body).is_ok());
    let worker = worker(1).await;
    let mut buckets = Buckets::default();
    let mut findings = Vec::new();
    run_batch(
        &worker,
        &[("number", body)],
        &[1],
        &mut buckets,
        &mut findings,
    )
    .await;
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(buckets.processed, 1);
    let dead = worker.queue.dead_letters();
    assert_eq!(dead.len(), 1, "the budget is spent: {dead:?}");
    assert!(dead[0].body.contains("m-flaky"));
}
