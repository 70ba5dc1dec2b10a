//! `GET /metrics` in the Prometheus text format.
//!
//! The worker's counts are the library's one list, [`fanout::metrics::WORKER_COUNTS`] (the
//! CloudWatch metrics of the deployed worker): each `Name` there is the counter
//! `fanout_<snake_case name>_total` here (`Delivered` is `fanout_delivered_total`,
//! `DeadLettered` `fanout_dead_lettered_total`), so a new count appears without a change here.

use crate::connections::Registry as Connections;
use crate::faults::FaultKind;
use crate::queue::JobSource;
use fanout::domain::ErrorCode;
use fanout::domain::history::Recovered;
use fanout::engine::FanoutStats;
use fanout::metrics::{
    Count, MetricsSink, RECOVERED_MESSAGES, RECOVERIES, RECOVERIES_FAILED, RECOVERIES_INCOMPLETE,
    RecoverMetrics, SendMetrics, WORKER_COUNTS,
};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Why a connection was dropped for not reading (see [`crate::connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumerReason {
    /// A frame would have taken its outbound queue over `--max-outbound-bytes`.
    OutboundBytes,
    /// A write to its socket took longer than `--write-timeout`.
    WriteTimeout,
}

impl SlowConsumerReason {
    const ALL: [Self; 2] = [Self::OutboundBytes, Self::WriteTimeout];

    fn labels(self) -> Labels {
        let reason = match self {
            Self::OutboundBytes => "outbound_bytes",
            Self::WriteTimeout => "write_timeout",
        };
        vec![("reason".to_owned(), reason.to_owned())]
    }
}

/// Counters the worker feeds and gauges read at scrape time.
pub struct Metrics {
    registry: Registry,
    /// One per [`WORKER_COUNTS`] entry, in its order.
    worker_counts: Vec<(Count, Counter)>,
    latency: Histogram,
    queue_depth: Gauge,
    in_flight: Gauge,
    delayed: Gauge,
    dlq_depth: Gauge,
    connections: Gauge,
    sockets: Gauge,
    slow_consumers: Family<Labels, Counter>,
    management_faults: Family<Labels, Counter>,
    messages_accepted: Counter,
    messages_refused: Family<Labels, Counter>,
    /// The recover handler's counts, as its CloudWatch metrics.
    recoveries: Counter,
    recoveries_incomplete: Counter,
    recovered_messages: Counter,
    recoveries_failed: Counter,
    /// Frames received from clients, and handshakes refused.
    pub frames_received: Counter,
    pub connects_refused: Counter,
    /// Worker invocations killed (`--kill-worker-after`, `LocalStack::kill_worker_invocations`).
    pub invocations_killed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `DeadLettered` → `dead_lettered`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fanout");
        let mut worker_counts = Vec::with_capacity(WORKER_COUNTS.len());
        for (name, value) in WORKER_COUNTS {
            let counter = Counter::default();
            registry.register(
                snake_case(name),
                format!("The worker's {name} count, as its CloudWatch metric {name}"),
                counter.clone(),
            );
            worker_counts.push((*value, counter));
        }
        // 5 ms to about 82 s, in seconds: Prometheus's base unit.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.005, 2.0, 15,
        ));
        registry.register_with_unit(
            "latency",
            "Seconds from a message's sentAt to its last delivery, per invocation (the worker's CloudWatch metric FanoutLatencyMs)",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let messages_refused = Family::<Labels, Counter>::default();
        registry.register(
            "messages_refused",
            "Messages sendmessage refused, by the error code the sender got (CloudWatch: Refused by Code)",
            messages_refused.clone(),
        );
        let slow_consumers = Family::<Labels, Counter>::default();
        registry.register(
            "slow_consumers",
            "Connections dropped because their client did not read, by reason: outbound_bytes (over --max-outbound-bytes) or write_timeout (a write over --write-timeout)",
            slow_consumers.clone(),
        );
        for reason in SlowConsumerReason::ALL {
            // Both at 0 from the start, so that a rate over them has a start.
            let _ = slow_consumers.get_or_create(&reason.labels());
        }
        let management_faults = Family::<Labels, Counter>::default();
        registry.register(
            "management_faults",
            "Management API requests answered by an injected fault, by kind",
            management_faults.clone(),
        );
        Self {
            worker_counts,
            latency,
            queue_depth: gauge(
                &mut registry,
                "queue_depth",
                "Jobs waiting in the fan-out queue",
            ),
            in_flight: gauge(
                &mut registry,
                "queue_in_flight",
                "Jobs received and not yet deleted",
            ),
            delayed: gauge(
                &mut registry,
                "queue_delayed",
                "Jobs sent with a delay that has not passed yet",
            ),
            dlq_depth: gauge(&mut registry, "dlq_depth", "Jobs in the dead-letter queue"),
            connections: gauge(&mut registry, "connections", "Open WebSocket connections"),
            sockets: gauge(
                &mut registry,
                "sockets",
                "WebSocket sockets the stack holds, each with its tasks: open connections, and closing ones until their $disconnect ran",
            ),
            slow_consumers,
            management_faults,
            messages_accepted: counter(
                &mut registry,
                "messages_accepted",
                "Messages sendmessage put on the queue (CloudWatch: Accepted)",
            ),
            messages_refused,
            recoveries: counter(
                &mut registry,
                &snake_case(RECOVERIES),
                "Recoveries answered with their recovered frame (CloudWatch: Recoveries)",
            ),
            recoveries_incomplete: counter(
                &mut registry,
                &snake_case(RECOVERIES_INCOMPLETE),
                "Recoveries answered complete: false, history not reaching back (CloudWatch: RecoveriesIncomplete)",
            ),
            recovered_messages: counter(
                &mut registry,
                &snake_case(RECOVERED_MESSAGES),
                "Messages sent by recoveries (CloudWatch: RecoveredMessages)",
            ),
            recoveries_failed: counter(
                &mut registry,
                &snake_case(RECOVERIES_FAILED),
                "Recoveries that could not be sent (CloudWatch: RecoveriesFailed)",
            ),
            frames_received: counter(
                &mut registry,
                "frames_received",
                "Frames received from clients",
            ),
            connects_refused: counter(
                &mut registry,
                "connects_refused",
                "Handshakes $connect refused",
            ),
            invocations_killed: counter(
                &mut registry,
                "worker_invocations_killed",
                "Worker invocations killed mid-run, as Lambda kills a process",
            ),
            registry,
        }
    }

    /// A management API request was answered by an injected fault.
    pub fn management_fault(&self, kind: FaultKind) {
        self.management_faults
            .get_or_create(&vec![("kind".to_owned(), kind.name().to_owned())])
            .inc();
    }

    /// A connection was dropped because its client did not read.
    pub fn slow_consumer(&self, reason: SlowConsumerReason) {
        self.slow_consumers.get_or_create(&reason.labels()).inc();
    }

    /// The text exposition, with the gauges read now.
    pub async fn render(&self, queue: &dyn JobSource, connections: &Connections) -> String {
        match queue.depths().await {
            Ok(depths) => {
                self.queue_depth.set(depths.ready as i64);
                self.in_flight.set(depths.in_flight as i64);
                self.delayed.set(depths.delayed as i64);
                self.dlq_depth.set(depths.dead as i64);
            }
            Err(error) => tracing::warn!(%error, "queue depths unavailable"),
        }
        self.connections.set(connections.len() as i64);
        self.sockets.set(connections.sockets() as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl SendMetrics for Metrics {
    fn accepted(&self) {
        self.messages_accepted.inc();
    }

    fn refused(&self, code: ErrorCode) {
        let code = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.messages_refused
            .get_or_create(&vec![("code".to_owned(), code)])
            .inc();
    }
}

impl RecoverMetrics for Metrics {
    fn recovered(&self, outcome: &Recovered) {
        self.recoveries.inc();
        self.recoveries_incomplete
            .inc_by(u64::from(!outcome.complete));
        self.recovered_messages.inc_by(outcome.count);
    }

    fn failed(&self) {
        self.recoveries_failed.inc();
    }
}

impl MetricsSink for Metrics {
    fn record(&self, stats: &FanoutStats) {
        for (value, counter) in &self.worker_counts {
            counter.inc_by(value(stats));
        }
        if let Some(latency) = stats.fanout_latency_ms {
            self.latency.observe(latency as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_library_list() {
        assert_eq!(snake_case("Delivered"), "delivered");
        assert_eq!(snake_case("FailedJobs"), "failed_jobs");
        assert_eq!(snake_case("DeadLettered"), "dead_lettered");
    }

    #[test]
    fn every_worker_count_is_exposed_with_its_value() {
        let metrics = Metrics::new();
        let stats = FanoutStats {
            delivered: 6,
            failed_jobs: 2,
            dead_lettered: 1,
            ..FanoutStats::default()
        };
        metrics.record(&stats);
        metrics.record(&stats);
        let mut out = String::new();
        encode(&mut out, &metrics.registry).unwrap();
        for (name, value) in WORKER_COUNTS {
            let line = format!("fanout_{}_total {}", snake_case(name), 2 * value(&stats));
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        for line in [
            "fanout_delivered_total 12",
            "fanout_failed_jobs_total 4",
            "fanout_dead_lettered_total 2",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }
}
