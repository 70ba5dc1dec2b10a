//! What every topic shares: the seed, the connection and rooms of the fixtures, the JSON
//! generators and mutations, the event fixtures, catching a panic as a finding, and the tally
//! a test reports.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use fanout::adapters::memory::MemoryStore;
use fanout::handlers::connect::{self, ConnectConfig};
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::SystemTime;

const SEED: u64 = 0x5eed_f00d_2026;

/// The generator of one test's inputs: the suite's seed, varied by `stream`.
pub(crate) fn seeded(stream: u64) -> StdRng {
    StdRng::seed_from_u64(SEED ^ stream)
}

/// The connection of tests/fixtures/connect.json and sendmessage.json.
pub(crate) const SENDER: &str = "Dx4sXe1ZoAMCJvw=";
pub(crate) const ENDPOINT: &str = "https://example.execute-api.eu-west-1.amazonaws.com/test";

/// Members of the rooms every worker's store holds.
pub(crate) const LOBBY: &[&str] = &["m-0", "m-1", "m-2", "m-3", "m-4", "m-flaky", "m-gone"];
pub(crate) const ROOM_A: &[&str] = &["a-0", "a-1", "a/../odd\u{0}é"];

/// Numbers at and past every edge a parser has.
pub(crate) const EXTREME_NUMBERS: &[&str] = &[
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

pub(crate) fn json_string(rng: &mut StdRng, max_pieces: usize) -> String {
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
pub(crate) fn nested(depth: usize, mixed: bool) -> String {
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
pub(crate) fn json_value(rng: &mut StdRng, depth: u32) -> String {
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
pub(crate) fn prefix(text: &str, at: usize) -> &str {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// `text` with a random edit: a cut, an insertion of poison, a deletion or a duplication.
pub(crate) fn mutate(rng: &mut StdRng, text: &str) -> String {
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

/// One of the `valid` bodies cut short somewhere (no proper prefix of a JSON object is JSON).
pub(crate) fn truncated(rng: &mut StdRng, valid: &[String]) -> String {
    let body = valid.choose(rng).unwrap();
    prefix(body, rng.random_range(0..body.len())).to_owned()
}

/// One of the `valid` bodies with one to three random edits.
pub(crate) fn mutated(rng: &mut StdRng, valid: &[String]) -> String {
    let mut body = valid.choose(rng).unwrap().clone();
    for _ in 0..rng.random_range(1..4) {
        body = mutate(rng, &body);
    }
    body
}

/// Fewer than `max_len` random bytes.
pub(crate) fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    (0..rng.random_range(0..max_len))
        .map(|_| rng.random())
        .collect()
}

/// Random bytes read as UTF-8, whatever they are.
pub(crate) fn random_text(rng: &mut StdRng, max_len: usize) -> String {
    String::from_utf8_lossy(&random_bytes(rng, max_len)).into_owned()
}

// ------------------------------------------------------------------------------------------
// Events, answers and findings
// ------------------------------------------------------------------------------------------

/// The input as shown in a failure: its kind, size and a prefix.
pub(crate) fn describe(kind: &str, text: &str) -> String {
    let shown = prefix(text, 160);
    let more = if shown.len() < text.len() { "…" } else { "" };
    format!("[{kind}] ({} bytes) {shown:?}{more}", text.len())
}

pub(crate) fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn event(value: Value) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(value).expect("a WebSocket proxy event")
}

pub(crate) fn text_body(response: &ApiGatewayProxyResponse) -> Option<&str> {
    match &response.body {
        Some(Body::Text(text)) => Some(text),
        _ => None,
    }
}

/// `$connect` with the default configuration, now.
pub(crate) async fn connect_to(
    store: &MemoryStore,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    connect::handle(store, &ConnectConfig::default(), request, SystemTime::now()).await
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// What `run` returns, or the message it panicked with.
pub(crate) fn caught<T>(run: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    std::panic::catch_unwind(run).map_err(|panic| panic_message(&*panic))
}

/// What `future` resolves to, or the message it panicked with.
pub(crate) async fn caught_async<T>(future: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| panic_message(&*panic))
}

/// How many inputs of each kind a test ran.
#[derive(Default)]
pub(crate) struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    pub(crate) fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    pub(crate) fn total(&self) -> usize {
        self.0.values().sum()
    }
}

/// Prints the tally and fails with every finding, if there is one.
pub(crate) fn report(what: &str, tally: &Tally, findings: &[String]) {
    println!("{what}: {} inputs {:?}", tally.total(), tally.0);
    assert!(
        findings.is_empty(),
        "{} finding(s) in {what}:\n{}",
        findings.len(),
        findings.join("\n")
    );
}
