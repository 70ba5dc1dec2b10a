//! The frames a client can send: valid ones, and every way to get one wrong (truncated, huge,
//! deeply nested, wrong types, extreme numbers, surrogates, NUL, binary, blank, duplicate keys,
//! random edits), each with the answer it must get when that is known without the parser.

use crate::support::{
    EXTREME_NUMBERS, json_string, json_value, mutated, nested, random_bytes, random_text, truncated,
};
use fanout::domain::frame::MAX_FRAME_BYTES;
use rand::Rng;
use rand::rngs::StdRng;

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

/// A client frame: its body, whether it came as a binary frame, and what it must get, when
/// that is known without asking the parser (`None`: any documented answer).
pub(crate) struct ClientInput {
    pub(crate) kind: &'static str,
    pub(crate) body: Option<String>,
    pub(crate) binary: bool,
    pub(crate) expect: Option<&'static str>,
}

fn frame(kind: &'static str, body: String, expect: Option<&'static str>) -> ClientInput {
    ClientInput {
        kind,
        body: Some(body),
        binary: false,
        expect,
    }
}

/// A binary frame, which nothing accepts.
fn binary(body: Option<String>) -> ClientInput {
    ClientInput {
        kind: "binary",
        body,
        binary: true,
        expect: Some("binary_not_supported"),
    }
}

pub(crate) fn send(action: &str, data: &str) -> String {
    format!("{{\"action\":{action},\"data\":{data}}}")
}

/// A `sendmessage` frame with this data.
pub(crate) fn sendmessage(data: &str) -> String {
    send("\"sendmessage\"", data)
}

/// A `sendmessage` frame with valid data: acked, or refused as too large past the limit.
fn sized(kind: &'static str, data: &str, max_data: usize) -> ClientInput {
    let expect = if data.len() > max_data {
        "message_too_large"
    } else {
        "ack"
    };
    frame(kind, sendmessage(data), Some(expect))
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

pub(crate) fn client_corpus(rng: &mut StdRng, max_data: usize) -> Vec<ClientInput> {
    let mut corpus = Vec::new();

    // Valid frames with any data but null: acked, data kept exactly.
    let mut valid = Vec::new();
    for _ in 0..150 {
        let mut data = json_value(rng, 0);
        if data == "null" || data.len() > max_data {
            data = json_string(rng, 4);
        }
        valid.push(sendmessage(&data));
    }
    for body in &valid {
        corpus.push(frame("valid", body.clone(), Some("ack")));
    }

    // Truncated: no proper prefix of a JSON object is JSON.
    for _ in 0..150 {
        let cut = truncated(rng, &valid);
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
        corpus.push(sized("huge", &data, max_data));
    }
    let escapes = format!("\"{}\"", "\\u0000".repeat(max_data));
    corpus.push(frame(
        "huge",
        sendmessage(&escapes),
        Some("message_too_large"),
    ));
    let padded = format!(
        "{}{}{}",
        " ".repeat(1 << 20),
        sendmessage("1"),
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
        for (body, expect) in [
            ("[".repeat(depth), "invalid_json"),
            ("{\"a\":".repeat(depth), "invalid_json"),
            (nested(depth, false), "invalid_message"),
            (nested(depth, true), "invalid_message"),
            (send(&nested(depth, false), "1"), "invalid_message"),
            (
                format!(
                    "{{\"action\":\"sendmessage\",\"data\":{}",
                    "[".repeat(depth)
                ),
                "invalid_json",
            ),
            (
                format!(
                    "{{\"action\":\"sendmessage\",\"data\":1,\"x\":{}}}",
                    nested(depth, true)
                ),
                "ack",
            ),
        ] {
            corpus.push(frame("nested", body, Some(expect)));
        }
        for mixed in [false, true] {
            corpus.push(sized("nested", &nested(depth, mixed), max_data));
        }
    }
    for _ in 0..10 {
        let data = nested(rng.random_range(1..30_000), rng.random_bool(0.5));
        corpus.push(sized("nested", &data, max_data));
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
        // A valid action with null data, or none, has no data.
        let without_data = if *expect == "ack" {
            "missing_data"
        } else {
            expect
        };
        for data in datas {
            let expect = if data == "null" { without_data } else { expect };
            corpus.push(frame("wrong_type", send(action, data), Some(expect)));
        }
        corpus.push(frame(
            "wrong_type",
            format!("{{\"action\":{action}}}"),
            Some(without_data),
        ));
    }
    for top in [
        "1",
        "\"sendmessage\"",
        "true",
        "null",
        "[1,2]",
        "\"\\ud800\"",
        "{\"data\":1}",
    ] {
        corpus.push(frame("wrong_type", top.to_owned(), Some("invalid_message")));
    }

    // Extreme numbers as data (kept as sent), as action, as the whole frame; bad numbers.
    for number in EXTREME_NUMBERS {
        corpus.push(frame("number", sendmessage(number), Some("ack")));
        corpus.push(frame("number", send(number, "1"), Some("invalid_message")));
        corpus.push(frame("number", number.to_string(), Some("invalid_message")));
    }
    for number in BAD_NUMBERS {
        corpus.push(frame("number", sendmessage(number), Some("invalid_json")));
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
            sendmessage(&format!("\"{s}\"")),
            Some("ack"),
        ));
        corpus.push(frame(
            "surrogate",
            sendmessage(&format!("{{\"{s}\":1}}")),
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
        sendmessage("\"\\ud8\""),
        Some("invalid_json"),
    ));

    // NUL: raw (never valid JSON outside a string, nor inside one), escaped (valid).
    for body in [
        "\0".to_owned(),
        "\0\0\0".to_owned(),
        format!("{}\0", sendmessage("1")),
        format!("\0{}", sendmessage("1")),
        sendmessage("\"a\0b\""),
        send("\"send\0message\"", "1"),
        "{\"action\":\"sendmessage\",\0\"data\":1}".to_owned(),
    ] {
        corpus.push(frame("nul", body, Some("invalid_json")));
    }
    for (body, expect) in [
        (sendmessage("\"\\u0000\""), "ack"),
        (sendmessage("{\"\\u0000\":\"\\u0000\"}"), "ack"),
        (send("\"\\u0000\"", "1"), "unknown_action"),
    ] {
        corpus.push(frame("nul", body, Some(expect)));
    }

    // Binary frames: invalid UTF-8 and anything else, base64 as API Gateway delivers them.
    for i in 0..60 {
        let mut bytes = random_bytes(rng, 200);
        match i % 4 {
            0 => bytes.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]),
            1 => bytes.extend_from_slice(&[0xed, 0xa0, 0x80]), // an encoded surrogate
            2 => bytes = sendmessage("1").into_bytes(),
            _ => {}
        }
        corpus.push(binary(Some(base64(&bytes))));
    }
    for body in [None, Some(String::new()), Some("!!! not base64".to_owned())] {
        corpus.push(binary(body));
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
    for (body, expect) in [
        (
            "{\"action\":\"nope\",\"action\":\"sendmessage\",\"data\":1}",
            "ack",
        ),
        (
            "{\"action\":\"sendmessage\",\"action\":\"nope\",\"data\":1}",
            "unknown_action",
        ),
        (
            "{\"action\":\"sendmessage\",\"data\":1,\"data\":null}",
            "missing_data",
        ),
    ] {
        corpus.push(frame("duplicate", body.to_owned(), Some(expect)));
    }

    // Random edits of valid frames and random text.
    for _ in 0..400 {
        corpus.push(frame("mutated", mutated(rng, &valid), None));
    }
    for _ in 0..50 {
        corpus.push(frame("mutated", random_text(rng, 100), None));
    }
    corpus
}
