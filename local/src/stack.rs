//! The composition root: builds the backend, the engine and the shared [`App`] from the
//! options, routes the emulator, the management API, `/metrics` and the page at `/`, starts the
//! server and the worker, and stops them gracefully.

use crate::access::{self, Access, AdminToken};
use crate::app::{App, Limits, TestHooks};
use crate::auth::AccessKey;
use crate::backend::{self, Backend, BackendError};
use crate::connections::{CLOSE_GOING_AWAY, Registry};
use crate::emulator;
use crate::faults::{FaultKind, ManagementFaults};
use crate::management;
use crate::metrics::Metrics;
use crate::options::{BackendKind, Options};
use crate::page;
use crate::publish;
use crate::queue::LocalQueue;
use crate::throttle::ThrottledHistory;
use crate::worker::{self, Invocations, WorkerSettings};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::extract::State;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use fanout::adapters::aws::static_sdk_config;
use fanout::adapters::management::ManagementGateway;
use fanout::config::{ConfigError, ProcessEnv};
use fanout::domain::RateLimit;
use fanout::engine::{Engine, EngineConfig};
use fanout::handlers::connect::ConnectConfig;
use fanout::handlers::publish::PublishConfig;
use fanout::handlers::recover::RecoverConfig;
use fanout::handlers::rooms::RoomsConfig;
use fanout::handlers::sendmessage::SendConfig;
use fanout::ports::ConnectionStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};

/// The access key id the worker's management client signs with (its secret is this run's).
const WORKER_ACCESS_KEY_ID: &str = "fanout-local-worker";
/// How long shutdown waits for the worker beyond its timeout (an invocation returns by its
/// deadline, then deletes its records).
const WORKER_GRACE: Duration = Duration::from_secs(2);
/// How long shutdown waits for the sockets' `$disconnect`s, then for the server.
const SOCKETS_GRACE: Duration = Duration::from_secs(5);
const SERVER_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}; choose another address with --listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// A flag's value cannot be used (the message names the flag).
    #[error("{0}")]
    Options(String),
    #[error("the worker's management client: {0}")]
    Management(String),
}

/// The whole pipeline running in this process: one HTTP server (the WebSocket emulator, the
/// `@connections` management API, `/metrics`, `/healthz`) and the worker loop that feeds the
/// queue's jobs to the fan-out engine, around one shared [`App`]. The binary starts it on
/// `--listen`, tests on `127.0.0.1:0`; [`shutdown`](Self::shutdown) stops it.
///
/// It has two shutdown channels because the server and the worker are separate tasks that stop
/// in different ways: `stop_worker` makes the worker stop receiving and wait for the invocations
/// in flight; `stop_accepting` is axum's graceful-shutdown signal (stop accepting, close idle
/// HTTP connections, finish the requests in flight; it does not wait for upgraded WebSockets,
/// so `shutdown` closes those itself). `shutdown` sends them one after the other, worker first,
/// because the worker posts through this same server's management API: an invocation still
/// running must reach it until the invocation ends (by its deadline, having delivered its jobs
/// or handed the rest back to the queue; with the in-memory queue, a hand-off that is never
/// run is lost, so a fan-out in progress must finish). Only once the worker has stopped, or
/// `--worker-timeout` plus a grace has passed, does the server stop accepting and the sockets
/// close with 1001.
pub struct LocalStack {
    addr: SocketAddr,
    app: Arc<App>,
    local_queue: Option<Arc<LocalQueue>>,
    description: String,
    engine_config: EngineConfig,
    worker_timeout: Duration,
    /// The worker's invocations in flight, to kill them.
    invocations: Arc<Invocations>,
    /// Ends the server's accept loop (axum's graceful shutdown).
    stop_accepting: watch::Sender<bool>,
    /// Ends the worker's polling loop; the worker task then waits for its invocations.
    stop_worker: watch::Sender<bool>,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
}

impl LocalStack {
    /// Starts the stack; for the aws backend, on the standard SDK configuration.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let sdk = match backend::choose(&options) {
            BackendKind::Aws => Some(backend::sdk_config(&options).await),
            _ => None,
        };
        Self::start_with(options, sdk).await
    }

    /// Starts the stack; `aws` given means the aws backend on that SDK configuration.
    pub async fn start_with(options: Options, aws: Option<SdkConfig>) -> Result<Self, StartError> {
        let started = Instant::now();
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        let mut engine_config = EngineConfig::from_env(&ProcessEnv)?;
        // The worker and the recover handler post to this stack's own management API.
        let management_endpoint = format!("http://{addr}/{}", options.stage);
        if let Some(budget) = options.retry_budget {
            engine_config.retry_budget = budget;
        }
        if let Some(concurrency) = options.fanout_concurrency {
            engine_config.concurrency = concurrency;
        }
        if let Some(ways) = options.room_split_ways {
            engine_config.room_split_ways = ways;
        }
        // Before the backend, which may create queues.
        options
            .check_ordering(engine_config.room_split_ways)
            .map_err(StartError::Options)?;
        if let Some(mode) = options.delivery_mode {
            engine_config.delivery_mode = mode;
        }
        let mut send = SendConfig::from_env(&ProcessEnv)?;
        if let Some(size) = options.history_size {
            send.history.size = size;
        }
        if let Some(ttl) = options.history_ttl {
            send.history.ttl = ttl;
        }
        let Backend {
            store,
            allowances,
            history,
            publish_keys,
            queue,
            source,
            progress,
            local_queue,
            description,
        } = match aws {
            Some(sdk) => backend::aws(&sdk, &options).await?,
            None => backend::memory(&options, &send.history),
        };
        let history: Arc<dyn fanout::ports::History> = match options.room_write_rate {
            Some(rate) => Arc::new(ThrottledHistory::new(history, rate)),
            None => history,
        };

        if let Some(max) = options.max_data_bytes {
            send.max_data_bytes = max as usize;
        }
        // The flags override the environment; a burst alone does not turn a limit on.
        let per_second = options
            .rate_limit_per_second
            .unwrap_or(send.rate_limit.map_or(0, |limit| limit.per_second));
        let burst = options.rate_limit_burst.unwrap_or(
            send.rate_limit
                .unwrap_or(SendConfig::DEFAULT_RATE_LIMIT)
                .burst,
        );
        send.rate_limit = (per_second > 0).then_some(RateLimit { per_second, burst });
        // The worker's management client signs with a key of this run's own, which the
        // management API takes (as API Gateway takes the worker role's).
        let worker_key = AccessKey::random(WORKER_ACCESS_KEY_ID);
        let management = static_sdk_config(None)
            .await
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                &worker_key.access_key_id,
                &worker_key.secret_access_key,
                None,
                None,
                "fanout-local",
            )))
            .build();
        let management: Arc<ManagementGateway> =
            Arc::new(ManagementGateway::new(&management).map_err(StartError::Management)?);
        let engine = Arc::new(Engine::new(
            store.clone(),
            management.clone(),
            queue.clone(),
            progress,
            engine_config.clone(),
            &management_endpoint,
        ));
        if options.visibility_timeout() < options.worker_timeout {
            warn!(
                visibility_timeout = ?options.visibility_timeout(),
                worker_timeout = ?options.worker_timeout,
                "--visibility-timeout is shorter than --worker-timeout: a job still running is \
                 delivered again, finds its progress record held and is reported failed, which \
                 counts toward --max-receive-count"
            );
        }

        let authorizer = options.auth.verifier().await.map_err(StartError::Options)?;
        let publish_credentials = options
            .publish_credentials
            .clone()
            .or_else(AccessKey::from_env);
        let metrics = Arc::new(Metrics::new());
        let recover = RecoverConfig {
            history: send.history,
            ..RecoverConfig::default()
        };
        let publish = PublishConfig {
            max_data_bytes: send.max_data_bytes,
            history: send.history,
        };
        let app = Arc::new(App {
            store,
            allowances,
            history,
            publish_keys,
            publish,
            management_keys: [Some(worker_key), publish_credentials.clone()]
                .into_iter()
                .flatten()
                .collect(),
            publish_credentials,
            access: Arc::new(Access {
                listening: addr,
                admin_token: options
                    .admin_token
                    .clone()
                    .unwrap_or_else(AdminToken::random),
                allowed_origins: options.allowed_origin.clone(),
            }),
            management,
            management_endpoint,
            recover,
            queue,
            source: source.clone(),
            connections: Registry::new(),
            metrics: metrics.clone(),
            connect: ConnectConfig::from_env(&ProcessEnv)?,
            rooms: RoomsConfig::from_env(&ProcessEnv)?,
            send,
            faults: ManagementFaults::new(
                started,
                &options.management_fault,
                options.management_latency,
            ),
            limits: Limits {
                max_frame_bytes: options.max_frame_bytes,
                max_message_bytes: options.max_message_bytes,
                idle_timeout: options.idle_timeout,
                max_connection_duration: options.max_connection_duration,
                max_outbound_bytes: usize::try_from(options.max_outbound_bytes)
                    .unwrap_or(usize::MAX),
                write_timeout: options.write_timeout,
            },
            stage: options.stage.clone(),
            domain_name: addr.to_string(),
            authorizer,
            hooks: TestHooks::default(),
        });

        let (stop_worker, worker_signal) = watch::channel(false);
        let settings = WorkerSettings {
            batch_size: usize::from(options.batch_size),
            batching_window: options.batching_window,
            timeout: options.worker_timeout,
            concurrency: usize::from(options.worker_concurrency),
            kill_after: options.kill_worker_after,
        };
        let invocations = Invocations::new(metrics.invocations_killed.clone());
        let worker = tokio::spawn(worker::run(
            source,
            engine,
            metrics,
            settings,
            invocations.clone(),
            worker_signal,
        ));

        let (stop_accepting, mut accept_signal) = watch::channel(false);
        // Frames are small and latency matters more than packet count: no Nagle delay.
        // A bounded kernel send buffer: what a client that stops reading holds in the kernel
        // before a write blocks (then --write-timeout and --max-outbound-bytes take over).
        let send_buffer = options.socket_send_buffer;
        let listener = listener.tap_io(move |socket| {
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
            if send_buffer > 0
                && let Err(error) =
                    socket2::SockRef::from(&*socket).set_send_buffer_size(send_buffer)
            {
                tracing::debug!(%error, "could not set SO_SNDBUF");
            }
        });
        let service = router(app.clone())
            .merge(crate::admin::router(app.clone(), local_queue.clone()))
            .layer(from_fn_with_state(
                app.access.clone(),
                access::refuse_foreign,
            ))
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = accept_signal.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, service)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "server failed");
            }
        });
        info!(%addr, backend = %description, "local stack started");
        Ok(Self {
            addr,
            app,
            local_queue,
            description,
            engine_config,
            worker_timeout: options.worker_timeout,
            invocations,
            stop_accepting,
            stop_worker,
            server,
            worker,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where clients connect: `ws://HOST:PORT/STAGE`.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.app.stage)
    }

    /// The management API: `http://HOST:PORT/STAGE`.
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.app.stage)
    }

    /// Where backends publish: `http://HOST:PORT/publish`, signed with SigV4.
    pub fn publish_url(&self) -> String {
        format!("http://{}{}", self.addr, crate::publish::PATH)
    }

    /// The token `/admin` takes (`Authorization: Bearer TOKEN`).
    pub fn admin_token(&self) -> &str {
        self.app.access.admin_token.as_str()
    }

    /// The access key id `POST /publish` takes, if any.
    pub fn publish_access_key_id(&self) -> Option<&str> {
        self.app
            .publish_credentials
            .as_ref()
            .map(|credentials| credentials.access_key_id.as_str())
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn store(&self) -> Arc<dyn ConnectionStore> {
        self.app.store.clone()
    }

    /// The in-memory queue, when the stack runs on it.
    pub fn local_queue(&self) -> Option<Arc<LocalQueue>> {
        self.local_queue.clone()
    }

    /// The worker's engine settings (`FANOUT_CONCURRENCY` and `CHECKPOINT_EVERY` bound the
    /// duplicates a killed invocation can cause).
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine_config
    }

    /// The management API answers with `kind` from now for `duration` (as
    /// `--management-fault`, which counts from start-up).
    pub fn inject_management_fault(&self, kind: FaultKind, duration: Duration) {
        info!(%kind, ?duration, "injecting a management API fault");
        self.app.faults.inject(kind, duration);
    }

    /// Ends every management API fault now.
    pub fn clear_management_faults(&self) {
        info!("management API faults cleared");
        self.app.faults.clear();
    }

    /// Widens the window between a connection's 101 and the emulator serving its socket: posts
    /// in it must reach the client all the same.
    pub fn delay_socket_start(&self, delay: Duration) {
        self.app.hooks.delay_socket_start(delay);
    }

    /// Kills every worker invocation in flight now, as `--kill-worker-after` does; the worker
    /// goes on. How many it killed.
    pub fn kill_worker_invocations(&self) -> usize {
        self.invocations.kill_all()
    }

    /// Stops the worker and waits for it (its invocations finish, or hand back, by their
    /// deadline), while the server still answers the management API it posts to; then stops
    /// accepting, closes every socket with 1001 and waits for the server. Takes at most
    /// `--worker-timeout` plus about 9 seconds.
    pub async fn shutdown(self) {
        let _ = self.stop_worker.send(true);
        let mut worker = self.worker;
        let worker_by = Instant::now() + self.worker_timeout + WORKER_GRACE;
        if timeout_at(worker_by, &mut worker).await.is_err() {
            warn!("the worker did not stop in time; its invocations are abandoned");
            worker.abort();
        }
        let _ = self.stop_accepting.send(true);
        self.app
            .connections
            .close_all(CLOSE_GOING_AWAY, "Going away", SOCKETS_GRACE)
            .await;
        let mut server = self.server;
        if tokio::time::timeout(SERVER_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        info!("local stack stopped");
    }
}

fn router(app: Arc<App>) -> Router {
    let stage = format!("/{}", app.stage);
    let connections = format!("/{}/@connections/{{id}}", app.stage);
    Router::new()
        .route("/", get(page::root))
        .route(page::SCRIPT_PATH, get(page::script))
        .route(page::CLIENT_PATH, get(page::client))
        .route(page::STYLE_PATH, get(page::style))
        .route(&stage, get(emulator::upgrade))
        .route(
            &connections,
            get(management::get)
                .post(management::post)
                .delete(management::delete)
                .route_layer(from_fn_with_state(
                    app.clone(),
                    management::require_signature,
                )),
        )
        .route(
            publish::PATH,
            post(publish::post).route_layer(from_fn(access::require_json)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(render_metrics))
        .with_state(app)
}

async fn render_metrics(State(app): State<Arc<App>>) -> impl axum::response::IntoResponse {
    let text = app.metrics.render(&*app.source, &app.connections).await;
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
