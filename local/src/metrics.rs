//! `GET /metrics` in the Prometheus text format.

use crate::connections::Registry as Connections;
use crate::queue::JobSource;
use fanout::engine::FanoutStats;
use fanout::metrics::MetricsSink;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Counters the worker feeds and gauges read at scrape time.
pub struct Metrics {
    registry: Registry,
    delivered: Counter,
    stale: Counter,
    failed: Counter,
    retried: Counter,
    continuations: Counter,
    failed_jobs: Counter,
    latency: Histogram,
    queue_depth: Gauge,
    in_flight: Gauge,
    dlq_depth: Gauge,
    connections: Gauge,
    /// Frames received from clients, and handshakes refused.
    pub frames_received: Counter,
    pub connects_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fanout");
        let metrics = Self {
            delivered: Counter::default(),
            stale: Counter::default(),
            failed: Counter::default(),
            retried: Counter::default(),
            continuations: Counter::default(),
            failed_jobs: Counter::default(),
            // 5 ms to about 82 s.
            latency: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                5.0, 2.0, 15,
            )),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            dlq_depth: Gauge::default(),
            connections: Gauge::default(),
            frames_received: Counter::default(),
            connects_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "delivered",
            "Frames the management API accepted",
            metrics.delivered.clone(),
        );
        registry.register(
            "stale",
            "Gone connections (410) deleted",
            metrics.stale.clone(),
        );
        registry.register("failed", "Deliveries given up on", metrics.failed.clone());
        registry.register(
            "retried",
            "Posts retried after 429, 5xx or a timeout",
            metrics.retried.clone(),
        );
        registry.register(
            "continuations",
            "Jobs handed back to the queue",
            metrics.continuations.clone(),
        );
        registry.register(
            "failed_jobs",
            "Jobs reported in batchItemFailures",
            metrics.failed_jobs.clone(),
        );
        registry.register(
            "fanout_latency_ms",
            "Milliseconds from a message's sentAt to its last delivery, per invocation",
            metrics.latency.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting in the fan-out queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "queue_in_flight",
            "Jobs received and not yet deleted",
            metrics.in_flight.clone(),
        );
        registry.register(
            "dlq_depth",
            "Jobs in the dead-letter queue",
            metrics.dlq_depth.clone(),
        );
        registry.register(
            "connections",
            "Open WebSocket connections",
            metrics.connections.clone(),
        );
        registry.register(
            "frames_received",
            "Frames received from clients",
            metrics.frames_received.clone(),
        );
        registry.register(
            "connects_refused",
            "Handshakes $connect refused",
            metrics.connects_refused.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The text exposition, with the gauges read now.
    pub async fn render(&self, queue: &dyn JobSource, connections: &Connections) -> String {
        match queue.depths().await {
            Ok(depths) => {
                self.queue_depth.set(depths.ready as i64);
                self.in_flight.set(depths.in_flight as i64);
                self.dlq_depth.set(depths.dead as i64);
            }
            Err(error) => tracing::warn!(%error, "queue depths unavailable"),
        }
        self.connections.set(connections.len() as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl MetricsSink for Metrics {
    fn record(&self, stats: &FanoutStats) {
        self.delivered.inc_by(stats.delivered);
        self.stale.inc_by(stats.stale);
        self.failed.inc_by(stats.failed);
        self.retried.inc_by(stats.retried);
        self.continuations.inc_by(stats.continuations);
        self.failed_jobs.inc_by(stats.failed_jobs);
        if let Some(latency) = stats.fanout_latency_ms {
            self.latency.observe(latency as f64);
        }
    }
}
