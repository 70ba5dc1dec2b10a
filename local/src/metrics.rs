//! `GET /metrics` in the Prometheus text format.
//!
//! The worker's counts are the library's one list, [`fanout::metrics::WORKER_COUNTS`] (the
//! CloudWatch metrics of the deployed worker): each `Name` there is the counter
//! `fanout_<snake_case name>_total` here (`Delivered` is `fanout_delivered_total`,
//! `DeadLettered` `fanout_dead_lettered_total`), so a new count appears without a change here.

use crate::connections::Registry as Connections;
use crate::faults::FaultKind;
use crate::queue::JobSource;
use fanout::engine::FanoutStats;
use fanout::metrics::{Count, MetricsSink, WORKER_COUNTS};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

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
    management_faults: Family<Labels, Counter>,
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
        // 5 ms to about 82 s.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            5.0, 2.0, 15,
        ));
        registry.register(
            "fanout_latency_ms",
            "Milliseconds from a message's sentAt to its last delivery, per invocation",
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
            management_faults,
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
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl MetricsSink for Metrics {
    fn record(&self, stats: &FanoutStats) {
        for (value, counter) in &self.worker_counts {
            counter.inc_by(value(stats));
        }
        if let Some(latency) = stats.fanout_latency_ms {
            self.latency.observe(latency as f64);
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
