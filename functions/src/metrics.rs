//! Metrics in CloudWatch's embedded metric format (EMF): one JSON line per worker invocation
//! and per sendmessage request on stdout, which Lambda ships to CloudWatch Logs and CloudWatch
//! turns into metrics, without an API call on the hot path.

use crate::domain::history::Recovered;
use crate::domain::{ErrorCode, now_epoch_millis};
use crate::engine::FanoutStats;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;

/// Where a handler reports what an invocation did.
pub trait MetricsSink: Send + Sync {
    fn record(&self, stats: &FanoutStats);
}

/// Where sendmessage reports what it did with a request.
pub trait SendMetrics: Send + Sync {
    /// The message is on the queue.
    fn accepted(&self);
    /// The sender got an error frame with this code.
    fn refused(&self, code: ErrorCode);
}

/// Where the recover handler reports each recovery.
pub trait RecoverMetrics: Send + Sync {
    /// A recovery ended with its `recovered` frame sent.
    fn recovered(&self, outcome: &Recovered);
    /// A recovery could not be sent (the management API failed past its retries).
    fn failed(&self);
}

/// Names and dimensions of the EMF lines.
#[derive(Debug, Clone)]
pub struct EmfConfig {
    /// `METRICS_NAMESPACE`, default `WsFanout`.
    pub namespace: String,
    /// `WORKSPACE`: the Terraform workspace (dev, staging, prod).
    pub workspace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function: String,
}

impl EmfConfig {
    pub const DEFAULT_NAMESPACE: &str = "WsFanout";
}

/// Writes EMF lines to a writer (stdout in Lambda).
pub struct EmfSink<W> {
    config: EmfConfig,
    out: Mutex<W>,
}

impl EmfSink<std::io::Stdout> {
    pub fn stdout(config: EmfConfig) -> Self {
        Self::new(config, std::io::stdout())
    }
}

impl<W: Write + Send> EmfSink<W> {
    pub fn new(config: EmfConfig, out: W) -> Self {
        Self {
            config,
            out: Mutex::new(out),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<W: Write + Send> EmfSink<W> {
    fn write(&self, line: &str) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Metrics are best-effort: a closed stdout must not fail the request.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

impl<W: Write + Send> MetricsSink for EmfSink<W> {
    fn record(&self, stats: &FanoutStats) {
        self.write(&emf_line(&self.config, stats, now_epoch_millis()));
    }
}

impl<W: Write + Send> RecoverMetrics for EmfSink<W> {
    fn recovered(&self, outcome: &Recovered) {
        self.write(&recover_emf_line(
            &self.config,
            Some(outcome),
            now_epoch_millis(),
        ));
    }

    fn failed(&self) {
        self.write(&recover_emf_line(&self.config, None, now_epoch_millis()));
    }
}

impl<W: Write + Send> SendMetrics for EmfSink<W> {
    fn accepted(&self) {
        self.write(&send_emf_line(&self.config, Ok(()), now_epoch_millis()));
    }

    fn refused(&self, code: ErrorCode) {
        self.write(&send_emf_line(&self.config, Err(code), now_epoch_millis()));
    }
}

/// Reads one count out of an invocation's stats.
pub type Count = fn(&FanoutStats) -> u64;

/// The worker's count metrics: their names, and where each one's value comes from. The one
/// list; the dashboard and alarms in terraform/ may name only these.
pub const WORKER_COUNTS: &[(&str, Count)] = &[
    ("Delivered", |s| s.delivered),
    ("Stale", |s| s.stale),
    ("StaleYoung", |s| s.stale_young),
    ("DeleteFailed", |s| s.delete_failed),
    ("Failed", |s| s.failed),
    ("Forbidden", |s| s.forbidden),
    ("Abandoned", |s| s.abandoned),
    ("Retried", |s| s.retried),
    ("Interrupted", |s| s.interrupted),
    ("Continuations", |s| s.continuations),
    ("RoomsSplit", |s| s.rooms_split),
    ("JobsHeld", |s| s.held),
    ("Pages", |s| s.pages),
    ("Resumed", |s| s.resumed),
    ("Checkpoints", |s| s.checkpoints),
    ("FailedJobs", |s| s.failed_jobs),
    ("HandoffsFailed", |s| s.handoffs_failed),
    ("DeadLettered", |s| s.dead_lettered),
];

/// The worker's latency metric, sentAt to the last delivery of a job, in milliseconds: emitted
/// beside [`WORKER_COUNTS`] when an invocation finished a job. With them, every metric name the
/// worker emits.
pub const FANOUT_LATENCY: &str = "FanoutLatencyMs";

/// sendmessage's metrics, one per request: `Accepted`, or `Refused` (per function, and per
/// function and [`REFUSAL_CODE`]). With them, every metric name sendmessage emits.
pub const SEND_ACCEPTED: &str = "Accepted";
pub const SEND_REFUSED: &str = "Refused";
/// The dimension of `Refused` that names the error code the sender got (`unavailable`, ...).
pub const REFUSAL_CODE: &str = "Code";

/// The recover handler's metrics, one document per recovery: every name it emits.
pub const RECOVERIES: &str = "Recoveries";
/// Recoveries answered `complete: false`: history did not reach back (clients reload).
pub const RECOVERIES_INCOMPLETE: &str = "RecoveriesIncomplete";
/// Messages sent by recoveries.
pub const RECOVERED_MESSAGES: &str = "RecoveredMessages";
/// Recoveries that could not be sent.
pub const RECOVERIES_FAILED: &str = "RecoveriesFailed";

/// One EMF document for one recovery: `None` for one that failed.
pub fn recover_emf_line(
    config: &EmfConfig,
    outcome: Option<&Recovered>,
    timestamp_ms: i64,
) -> String {
    let values: Vec<(&str, u64)> = match outcome {
        Some(done) => vec![
            (RECOVERIES, 1),
            (RECOVERIES_INCOMPLETE, u64::from(!done.complete)),
            (RECOVERED_MESSAGES, done.count),
        ],
        None => vec![(RECOVERIES_FAILED, 1)],
    };
    let mut document = Map::new();
    let mut metrics = Vec::new();
    for (name, value) in values {
        document.insert(name.into(), value.into());
        metrics.push(json!({"Name": name, "Unit": "Count"}));
    }
    finish(
        config,
        document,
        json!([["Workspace", "Function"]]),
        metrics,
        timestamp_ms,
    )
}

/// One EMF document for one sendmessage request.
pub fn send_emf_line(
    config: &EmfConfig,
    outcome: Result<(), ErrorCode>,
    timestamp_ms: i64,
) -> String {
    let mut document = Map::new();
    let (name, dimensions) = match outcome {
        Ok(()) => (SEND_ACCEPTED, json!([["Workspace", "Function"]])),
        Err(code) => {
            document.insert(REFUSAL_CODE.into(), json!(code));
            (
                SEND_REFUSED,
                json!([
                    ["Workspace", "Function"],
                    ["Workspace", "Function", REFUSAL_CODE]
                ]),
            )
        }
    };
    document.insert(name.into(), 1.into());
    finish(
        config,
        document,
        dimensions,
        vec![json!({"Name": name, "Unit": "Count"})],
        timestamp_ms,
    )
}

/// An EMF document's values (with its `Workspace` and `Function` dimensions) and its metadata:
/// which of them are metrics, with which dimension sets.
fn finish(
    config: &EmfConfig,
    mut document: Map<String, Value>,
    dimensions: Value,
    metrics: Vec<Value>,
    timestamp_ms: i64,
) -> String {
    document.insert("Workspace".into(), config.workspace.clone().into());
    document.insert("Function".into(), config.function.clone().into());
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": config.namespace,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(document).to_string()
}

/// One EMF document for one invocation.
pub fn emf_line(config: &EmfConfig, stats: &FanoutStats, timestamp_ms: i64) -> String {
    let counts: Vec<(&str, u64)> = WORKER_COUNTS
        .iter()
        .map(|(name, value)| (*name, value(stats)))
        .collect();
    let mut definitions: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut document = Map::new();
    for (name, value) in counts {
        document.insert(name.into(), value.into());
    }
    if let Some(latency) = stats.fanout_latency_ms {
        definitions.push(json!({"Name": FANOUT_LATENCY, "Unit": "Milliseconds"}));
        document.insert(FANOUT_LATENCY.into(), latency.into());
    }
    finish(
        config,
        document,
        json!([["Workspace", "Function"]]),
        definitions,
        timestamp_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(function: &str) -> EmfConfig {
        EmfConfig {
            namespace: "WsFanout".into(),
            workspace: "prod".into(),
            function: function.into(),
        }
    }

    #[test]
    fn emits_one_emf_document_per_record() {
        let sink = EmfSink::new(config("wsfanout-prod-worker"), Vec::new());
        sink.record(&FanoutStats {
            delivered: 10,
            stale: 2,
            fanout_latency_ms: Some(120),
            ..FanoutStats::default()
        });
        let out = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(out.lines().count(), 1);
        let doc: Value = serde_json::from_str(out.trim()).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "WsFanout");
        assert_eq!(directive["Dimensions"], json!([["Workspace", "Function"]]));
        // Every declared metric has a value at the top level, as EMF requires.
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name} has no value");
        }
        assert_eq!(
            (doc["Delivered"].as_u64(), doc["Stale"].as_u64()),
            (Some(10), Some(2))
        );
        assert_eq!(doc["FanoutLatencyMs"], 120);
        assert_eq!(
            (doc["Workspace"].as_str(), doc["Function"].as_str()),
            (Some("prod"), Some("wsfanout-prod-worker"))
        );
    }

    #[test]
    fn sendmessage_emits_accepted_or_refused_by_code() {
        let sink = EmfSink::new(config("wsfanout-prod-sendmessage"), Vec::new());
        sink.accepted();
        sink.refused(ErrorCode::Unavailable);
        let out = String::from_utf8(sink.into_inner()).unwrap();
        let docs: Vec<Value> = out
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["Accepted"], 1);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "Accepted", "Unit": "Count"}])
        );
        assert_eq!(docs[1]["Refused"], 1);
        assert_eq!(docs[1]["Code"], "unavailable");
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Workspace", "Function"], ["Workspace", "Function", "Code"]])
        );
        assert_eq!(docs[1]["Function"], "wsfanout-prod-sendmessage");
    }
}
