//! The worker's metrics in CloudWatch's embedded metric format (EMF): one JSON line per
//! invocation on stdout, which Lambda ships to CloudWatch Logs and CloudWatch turns into
//! metrics, without an API call on the hot path.

use crate::domain::now_epoch_millis;
use crate::engine::FanoutStats;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;

/// Where a handler reports what an invocation did.
pub trait MetricsSink: Send + Sync {
    fn record(&self, stats: &FanoutStats);
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

impl<W: Write + Send> MetricsSink for EmfSink<W> {
    fn record(&self, stats: &FanoutStats) {
        let timestamp = now_epoch_millis();
        let line = emf_line(&self.config, stats, timestamp);
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Metrics are best-effort: a closed stdout must not fail the batch.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Reads one count out of an invocation's stats.
pub type Count = fn(&FanoutStats) -> u64;

/// The worker's count metrics: their names, and where each one's value comes from. The one
/// list; the dashboard and alarms in terraform/ may name only these.
pub const WORKER_COUNTS: &[(&str, Count)] = &[
    ("Delivered", |s| s.delivered),
    ("Stale", |s| s.stale),
    ("StaleKept", |s| s.stale_kept),
    ("DeleteFailed", |s| s.delete_failed),
    ("Failed", |s| s.failed),
    ("Abandoned", |s| s.abandoned),
    ("Retried", |s| s.retried),
    ("Interrupted", |s| s.interrupted),
    ("Continuations", |s| s.continuations),
    ("Pages", |s| s.pages),
    ("Resumed", |s| s.resumed),
    ("Checkpoints", |s| s.checkpoints),
    ("FailedJobs", |s| s.failed_jobs),
    ("DeadLettered", |s| s.dead_lettered),
];

/// The worker's latency metric, sentAt to the last delivery of a job, in milliseconds: emitted
/// beside [`WORKER_COUNTS`] when an invocation finished a job. With them, every metric name the
/// worker emits.
pub const FANOUT_LATENCY: &str = "FanoutLatencyMs";

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
    document.insert("Workspace".into(), config.workspace.clone().into());
    document.insert("Function".into(), config.function.clone().into());
    for (name, value) in counts {
        document.insert(name.into(), value.into());
    }
    if let Some(latency) = stats.fanout_latency_ms {
        definitions.push(json!({"Name": FANOUT_LATENCY, "Unit": "Milliseconds"}));
        document.insert(FANOUT_LATENCY.into(), latency.into());
    }
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": config.namespace,
                "Dimensions": [["Workspace", "Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_one_emf_document_per_record() {
        let config = EmfConfig {
            namespace: "WsFanout".into(),
            workspace: "prod".into(),
            function: "wsfanout-prod-worker".into(),
        };
        let sink = EmfSink::new(config, Vec::new());
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
}
