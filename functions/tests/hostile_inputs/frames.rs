//! Every client frame through `sendmessage` and `$default`: status 200 and an ack or an error
//! frame with a documented code, exactly one job with the data as sent for an ack and none for
//! an error, and an answer that fits in one API Gateway message.

use crate::frame_corpus::{ClientInput, client_corpus, sendmessage};
use crate::support::{
    Tally, caught, caught_async, connect_to, describe, event, fixture, nested, prefix, report,
    seeded, text_body,
};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use fanout::adapters::memory::{MemoryHistory, MemoryQueue, MemoryStore};
use fanout::domain::frame::MAX_FRAME_BYTES;
use fanout::domain::{ErrorCode, Job, parse_send_message};
use fanout::handlers::default;
use fanout::handlers::sendmessage::{SendConfig, SendMessage};
use fanout::metrics::SendMetrics;
use serde_json::Value;
use std::time::SystemTime;

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

/// The codes `$default` can answer, the first five: it never looks at `data` or the store.
const DEFAULT_ROUTE_CODES: &[&str] = DOCUMENTED_CODES.split_at(5).0;

/// `sendmessage`'s counts, not looked at here.
struct NoMetrics;

impl SendMetrics for NoMetrics {
    fn accepted(&self) {}

    fn refused(&self, _: ErrorCode) {}
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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

/// The event `base` carrying this frame.
fn request(
    base: &ApiGatewayWebsocketProxyRequest,
    input: &ClientInput,
) -> ApiGatewayWebsocketProxyRequest {
    let mut request = base.clone();
    request.body = input.body.clone();
    request.is_base64_encoded = input.binary;
    request
}

/// Runs the client corpus through sendmessage and `$default`; returns the bodies of the jobs
/// sendmessage acked, to run through the worker after. `acks_only` runs only the frames known
/// to be acked.
pub(crate) async fn client_frames(
    tally: &mut Tally,
    findings: &mut Vec<String>,
    acks_only: bool,
) -> Vec<String> {
    let mut rng = seeded(1);
    // The corpus is about parsing: one sender sends it all at once, so no rate limit.
    let config = SendConfig {
        rate_limit: None,
        ..SendConfig::default()
    };
    let corpus = client_corpus(&mut rng, config.max_data_bytes);

    let store = MemoryStore::new();
    let connected = connect_to(&store, event(fixture("connect"))).await;
    assert_eq!(connected.status_code, 200, "the sender connects");
    let queue = MemoryQueue::new();
    let history = MemoryHistory::new(10);
    let handler = SendMessage {
        store: &store,
        allowances: &store,
        history: &history,
        queue: &queue,
        config: &config,
        metrics: &NoMetrics,
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
        let sent = handler.handle(request(&send_base, input), SystemTime::now());
        let response = match caught_async(sent).await {
            Ok(response) => response,
            Err(panic) => {
                findings.push(format!("sendmessage {shown}: PANIC {panic}"));
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
                                if job.payload.get() != data.data.get() {
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
                            .map(|d| d.data.get().len())
                            .map_err(|e| code_name(e.code))
                    )),
                }
            }
        }
        check_frame_size(&response, input, &shown, findings);

        // $default: always an error frame, with one of its codes.
        let request = request(&default_base, input);
        let response = match caught(|| default::handle(request)) {
            Ok(response) => response,
            Err(panic) => {
                findings.push(format!("$default {shown}: PANIC {panic}"));
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
        for body in [sendmessage("1"), sendmessage(&nested(5_000, true))] {
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
