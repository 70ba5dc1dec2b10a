//! The job records a worker can be handed: valid jobs of every target, and every way to get one
//! wrong (truncated, huge, deeply nested, wrong types, extreme numbers, unknown fields, repeated
//! ids, odd cursors and hops, duplicate keys, blank bodies, random edits).

use crate::job_fields::{
    Fields, TO_ALL, TO_LOBBY, job_body, member_first, quoted, to_connections, valid_job, with,
    without,
};
use crate::support::{LOBBY, mutated, nested, random_text, truncated};
use fanout::domain::frame::MAX_FRAME_BYTES;
use rand::rngs::StdRng;

pub(crate) struct JobInput {
    pub(crate) kind: &'static str,
    pub(crate) body: String,
}

/// The corpus as it grows: valid jobs numbered in order, and the inputs so far.
struct Corpus<'r> {
    rng: &'r mut StdRng,
    jobs: usize,
    inputs: Vec<JobInput>,
}

impl Corpus<'_> {
    /// The next valid job.
    fn valid(&mut self) -> Fields {
        self.jobs += 1;
        valid_job(self.rng, self.jobs)
    }

    fn push_body(&mut self, kind: &'static str, body: impl Into<String>) {
        self.inputs.push(JobInput {
            kind,
            body: body.into(),
        });
    }

    fn push(&mut self, kind: &'static str, fields: &Fields) {
        self.push_body(kind, job_body(fields));
    }

    /// The next valid job with `key` set to `value`.
    fn push_with(&mut self, kind: &'static str, key: &'static str, value: impl Into<String>) {
        let fields = with(self.valid(), key, value);
        self.push(kind, &fields);
    }

    /// The next valid job to `target`, with `key` set to `value`.
    fn push_to(
        &mut self,
        kind: &'static str,
        target: &str,
        key: &'static str,
        value: impl Into<String>,
    ) {
        let fields = with(self.valid(), "target", target);
        self.push(kind, &with(fields, key, value));
    }
}

pub(crate) fn job_corpus(rng: &mut StdRng) -> Vec<JobInput> {
    let mut c = Corpus {
        rng,
        jobs: 0,
        inputs: Vec::new(),
    };

    let mut valid = Vec::new();
    for _ in 0..150 {
        let fields = c.valid();
        c.push("valid", &fields);
        valid.push(job_body(&fields));
    }

    for _ in 0..150 {
        let body = truncated(c.rng, &valid);
        c.push_body("truncated", body);
    }

    // Huge: payloads past the frame limit and near it, bodies past the queue limit, many ids.
    for size in [100_000, MAX_FRAME_BYTES, 300_000, 2 << 20] {
        c.push_with("huge", "payload", format!("\"{}\"", "x".repeat(size)));
    }
    c.push_with("huge", "junk", quoted(&"j".repeat(1 << 20)));
    c.push_with("huge", "sender", quoted(&"s".repeat(200_000)));
    let many: Vec<String> = (0..10_000).map(|i| format!("c-{i:05}")).collect();
    c.push_with("huge", "target", to_connections(&many, None));
    let long_ids: Vec<String> = (0..100)
        .map(|i| format!("{i}{}", "L".repeat(4_000)))
        .collect();
    c.push_with("huge", "target", to_connections(&long_ids, Some("lobby")));
    c.push_body("huge", "[".repeat(1 << 20));

    // Deep nesting: in the payload, the target, unknown fields, the whole body.
    for depth in [129, 50_000, 100_000] {
        for mixed in [false, true] {
            c.push_with("nested", "payload", nested(depth, mixed));
        }
        c.push_with("nested", "payload", "[".repeat(depth));
        c.push_with("nested", "target", nested(depth, true));
        let room = format!("{{\"room\":{}}}", nested(depth, false));
        c.push_with("nested", "target", room);
        c.push_with("nested", "extra", nested(depth, true));
        c.push_with("nested", "segment", nested(depth, true));
        c.push_body("nested", nested(depth, true));
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
            c.push_with("wrong_type", key, *value);
        }
        let fields = without(c.valid(), key);
        c.push("wrong_type", &fields);
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
        c.push_with("wrong_type", "target", target);
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
        for target in [TO_LOBBY, "{\"connections\":[\"m-flaky\",\"m-0\"]}"] {
            c.push_to("number", target, "attempt", attempt);
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
            TO_LOBBY,
            "{\"connections\":[\"m-flaky\"],\"room\":\"lobby\"}",
        ] {
            for key in ["sentAt", "retrySince"] {
                c.push_to("number", target, key, value.as_str());
            }
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
        for target in [TO_ALL, TO_LOBBY] {
            let segment = format!("{{\"index\":{index},\"total\":{total}}}");
            c.push_to("number", target, "segment", segment);
        }
    }
    for v in ["0", "2", "4294967297", "-1", "1.0", "1e0"] {
        c.push_with("number", "v", v);
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
        let fields = c.valid();
        c.push_body(
            "unknown_field",
            member_first(&format!("\"{key}\":{value}"), &fields),
        );
    }
    for target in [
        "{\"room\":\"lobby\",\"x\":1}",
        "{\"all\":true,\"segment\":1}",
        "{\"connections\":[\"m-0\"],\"cursor\":\"m-0\"}",
    ] {
        c.push_with("unknown_field", "target", target);
    }
    let segment = "{\"index\":0,\"total\":2,\"extra\":true}";
    c.push_to("unknown_field", TO_ALL, "segment", segment);
    let fields = c.valid();
    c.push_body("unknown_field", member_first("\"v\":2", &fields));

    // Repeated ids: one id 10,000 times, with and without a cursor on it.
    for id in ["m-0", "", "ghost", "m-flaky"] {
        let ids: Vec<String> = vec![id.to_owned(); 10_000];
        let fields = with(c.valid(), "target", to_connections(&ids, None));
        c.push("repeated_ids", &fields);
        c.push("repeated_ids", &with(fields, "cursor", quoted(id)));
    }
    let mixed: Vec<String> = (0..10_000)
        .map(|i| LOBBY[i % LOBBY.len()].to_owned())
        .collect();
    c.push_with(
        "repeated_ids",
        "target",
        to_connections(&mixed, Some("lobby")),
    );

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
        for target in [TO_LOBBY, TO_ALL, "{\"connections\":[\"m-0\",\"m-1\"]}"] {
            c.push_to("cursor", target, "cursor", cursor);
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
        c.push_with("hop", "hop", quoted(&hop));
    }
    for hop in ["1", "null", "[\"a\"]", "\"\\ud800\""] {
        c.push_with("hop", "hop", hop);
    }

    // Duplicate keys, duplicate jobs in one batch (see the batching), and empty bodies.
    let fields = c.valid();
    c.push_body("duplicate", member_first("\"v\":1", &fields));
    let body = job_body(&fields).replace("\"target\":", "\"target\":{\"all\":true},\"target\":");
    c.push_body("duplicate", body);
    for body in ["", " ", "\0", "null", "{}", "[]", "\"\"", "1"] {
        c.push_body("empty", body);
    }

    // Random edits of valid jobs, and random text.
    for _ in 0..500 {
        let body = mutated(c.rng, &valid);
        c.push_body("mutated", body);
    }
    for _ in 0..50 {
        let body = random_text(c.rng, 200);
        c.push_body("mutated", body);
    }
    c.inputs
}
