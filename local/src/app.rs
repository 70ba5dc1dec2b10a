//! What the request handlers share: the ports the Lambda handlers run on, the live sockets,
//! the metrics, and the settings the emulator applies to every connection.

use crate::access::Access;
use crate::auth::AccessKey;
use crate::connections::Registry;
use crate::faults::ManagementFaults;
use crate::metrics::Metrics;
use crate::queue::JobSource;
use fanout::auth::Verifier;
use fanout::handlers::connect::ConnectConfig;
use fanout::handlers::publish::{Publish, PublishConfig};
use fanout::handlers::recover::{RecoverConfig, RecoverMessages};
use fanout::handlers::rooms::RoomsConfig;
use fanout::handlers::sendmessage::{SendConfig, SendMessage};
use fanout::ports::{
    Allowances, ConnectionGateway, ConnectionStore, History, JobQueue, PublishLog,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The shared state behind every route: one per stack, behind an `Arc`, given to the WebSocket
/// emulator, the management API and `/metrics`.
pub struct App {
    /// Where `$connect` puts a connection, `$disconnect` removes it and the worker pages through
    /// a room: the same port, and the same adapter, as the Lambdas use.
    pub store: Arc<dyn ConnectionStore>,
    /// Each connection's sending allowance (sendmessage's rate limit), in the same table.
    pub allowances: Arc<dyn Allowances>,
    /// Rooms' sequences and history: sendmessage numbers and keeps each message, `recover`
    /// reads them back.
    pub history: Arc<dyn History>,
    /// The publish endpoint's idempotency keys.
    pub publish_keys: Arc<dyn PublishLog>,
    /// The publish handler's settings: sendmessage's data limit and history.
    pub publish: PublishConfig,
    /// The access key `POST /publish` takes (`--publish-credentials`, else the SDK's
    /// environment variables); `None`: every publish is refused.
    pub publish_credentials: Option<AccessKey>,
    /// The keys `@connections` takes a signature by: the worker's own (this run's, random), and
    /// the publisher's, as a backend's role may manage connections in AWS.
    pub management_keys: Vec<AccessKey>,
    /// Which hosts, pages and tokens reach the stack at all ([`crate::access`]).
    pub access: Arc<Access>,
    /// The management API client the `recover` handler posts through: the worker's, to this
    /// stack's own `@connections` (faults included), as the Lambda posts to API Gateway's.
    pub management: Arc<dyn ConnectionGateway>,
    /// `http://HOST:PORT/STAGE`: where that client posts.
    pub management_endpoint: String,
    /// The `recover` handler's settings (the history's, as sendmessage's).
    pub recover: RecoverConfig,
    /// The producer end of the fan-out queue: `sendmessage` enqueues a job here and acks at
    /// once, whatever the room's size.
    pub queue: Arc<dyn JobQueue>,
    /// The consumer end of the same queue. The worker loop owns its own handle; this one is here
    /// so `/metrics` can read the depths (ready, in flight, dead-lettered) at scrape time.
    pub source: Arc<dyn JobSource>,
    /// The open sockets by connection id: the emulator registers each one, the management API
    /// posts to, describes and closes them, and shutdown closes them all with 1001.
    pub connections: Arc<Registry>,
    /// The counters and gauges of `/metrics`: the emulator counts frames and refused
    /// handshakes here; the worker, holding the same `Arc`, records each fan-out.
    pub metrics: Arc<Metrics>,
    /// The `$connect` handler's settings, read from the Lambda's environment variables
    /// (`CONNECTION_TTL_SECONDS`), so a local run behaves like the deployed function.
    pub connect: ConnectConfig,
    /// The rooms handler's settings (`MAX_ROOMS_PER_CONNECTION`), from the Lambda's
    /// environment variables.
    pub rooms: RoomsConfig,
    /// The `sendmessage` handler's settings: the Lambda's environment (`MAX_DATA_BYTES`),
    /// overridden by `--max-data-bytes`.
    pub send: SendConfig,
    /// What the management API injects: a latency on every request, and faults for a period
    /// (`--management-latency`, `--management-fault`, [`crate::LocalStack::inject_management_fault`]).
    pub faults: ManagementFaults,
    /// What API Gateway enforces on each connection, from the command line.
    pub limits: Limits,
    /// The stage in URLs and in each event's `requestContext.stage`.
    pub stage: String,
    /// `host:port` the stack listens on, given to the handlers as `requestContext.domainName`
    /// where API Gateway gives its own domain, so the events look like the deployed ones.
    pub domain_name: String,
    /// The `$connect` authorizer (`--jwt-secret`, `--jwks-url`); `None`: every room is public.
    pub authorizer: Option<Arc<Verifier>>,
    /// What tests widen to make a race deterministic.
    pub hooks: TestHooks,
}

/// Windows that are too short to hit on purpose, widened by tests through
/// [`crate::LocalStack`]. Zero, as in production, unless a test sets them.
#[derive(Debug, Default)]
pub struct TestHooks {
    /// How long the emulator waits after the 101 before it serves the socket.
    socket_start_delay_ms: AtomicU64,
}

impl TestHooks {
    pub fn socket_start_delay(&self) -> Duration {
        Duration::from_millis(self.socket_start_delay_ms.load(Ordering::Relaxed))
    }

    pub fn delay_socket_start(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.socket_start_delay_ms.store(millis, Ordering::Relaxed);
    }
}

impl App {
    /// The `methodArn` of a route, as API Gateway hands the authorizer one: the stage and route
    /// are this stack's, the account and API id are placeholders.
    pub fn method_arn(&self, route: &str) -> String {
        format!(
            "arn:aws:execute-api:local:000000000000:fanout-local/{}/{route}",
            self.stage
        )
    }

    /// The `recover` handler on this stack's store, history and management API.
    pub fn recover(&self) -> RecoverMessages<'_> {
        RecoverMessages {
            store: &*self.store,
            history: &*self.history,
            gateway: &*self.management,
            endpoint: &self.management_endpoint,
            config: &self.recover,
            metrics: &*self.metrics,
        }
    }

    /// The `publish` handler on this stack's history, keys and queue.
    pub fn publish(&self) -> Publish<'_> {
        Publish {
            queue: &*self.queue,
            history: &*self.history,
            keys: &*self.publish_keys,
            config: &self.publish,
            metrics: &*self.metrics,
        }
    }

    /// The `sendmessage` handler on this stack's store, queue and settings.
    pub fn sendmessage(&self) -> SendMessage<'_> {
        SendMessage {
            store: &*self.store,
            allowances: &*self.allowances,
            history: &*self.history,
            queue: &*self.queue,
            config: &self.send,
            metrics: &*self.metrics,
        }
    }
}

/// API Gateway's limits on a connection, as the emulator applies them. Their values come from
/// the command line ([`crate::options::Options`]), whose defaults are API Gateway's.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A larger frame closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// A larger message (frames reassembled) closes the connection with 1009.
    pub max_message_bytes: usize,
    /// A connection that sends nothing this long is closed with 1001.
    pub idle_timeout: Duration,
    /// A connection open this long is closed with 1001, however active.
    pub max_connection_duration: Duration,
    /// Bytes queued for one client and not yet written, at most: a post beyond closes the
    /// connection as a slow consumer ([`crate::connections`]).
    pub max_outbound_bytes: usize,
    /// A socket write that takes longer drops the connection.
    pub write_timeout: Duration,
}
