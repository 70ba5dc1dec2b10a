//! The composition root: builds the backend, the engine and the shared [`App`] from the
//! options, routes the emulator, the management API and `/metrics`, starts the server and the
//! worker, and stops them gracefully.

use crate::app::{App, Limits};
use crate::backend::{self, Backend, BackendError};
use crate::connections::{CLOSE_GOING_AWAY, Registry};
use crate::emulator;
use crate::management;
use crate::metrics::Metrics;
use crate::options::{BackendKind, Options};
use crate::queue::LocalQueue;
use crate::worker::{self, WorkerSettings};
use aws_config::SdkConfig;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum::serve::ListenerExt;
use fanout::adapters::aws::static_sdk_config;
use fanout::adapters::management::ManagementGateway;
use fanout::config::{ConfigError, ProcessEnv};
use fanout::engine::{Engine, EngineConfig};
use fanout::handlers::connect::ConnectConfig;
use fanout::handlers::sendmessage::SendConfig;
use fanout::ports::ConnectionStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

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
}

/// The whole pipeline running in this process: one HTTP server (the WebSocket emulator, the
/// `@connections` management API, `/metrics`, `/healthz`) and the worker loop that feeds the
/// queue's jobs to the fan-out engine, around one shared [`App`]. The binary starts it on
/// `--listen`, tests on `127.0.0.1:0`; [`shutdown`](Self::shutdown) stops it.
///
/// It has two shutdown channels because the server and the worker are separate tasks that stop
/// in different ways: `stop_accepting` is axum's graceful-shutdown signal (stop accepting, close
/// idle HTTP connections, finish the requests in flight; it does not wait for upgraded
/// WebSockets, so `shutdown` closes those itself), `stop_worker` makes the worker stop
/// receiving and wait for the invocations in flight. Two channels let `shutdown` stop them at
/// different moments, which matters because the worker posts through this same server's
/// management API. Today `shutdown` sends both at once, so an invocation still running then
/// cannot reach the management API: its posts fail and are retried until its deadline, when the
/// job goes back to the queue.
pub struct LocalStack {
    addr: SocketAddr,
    app: Arc<App>,
    local_queue: Option<Arc<LocalQueue>>,
    description: String,
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
        let Backend {
            store,
            queue,
            source,
            local_queue,
            description,
        } = match aws {
            Some(sdk) => backend::aws(&sdk, &options).await?,
            None => backend::memory(&options),
        };

        let mut engine_config = EngineConfig::from_env(&ProcessEnv)?;
        engine_config.management_endpoint = Some(format!("http://{addr}/{}", options.stage));
        if let Some(concurrency) = options.fanout_concurrency {
            engine_config.concurrency = usize::from(concurrency);
        }
        if let Some(mode) = options.delivery_mode {
            engine_config.delivery_mode = mode;
        }
        let mut send = SendConfig::from_env(&ProcessEnv)?;
        if let Some(max) = options.max_data_bytes {
            send.max_data_bytes = max as usize;
        }
        // The management client signs requests like the real one; the emulator ignores the
        // signature, so fixed credentials do.
        let management = static_sdk_config(None).await;
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(ManagementGateway::new(&management)),
            queue.clone(),
            engine_config,
        ));

        let metrics = Arc::new(Metrics::new());
        let app = Arc::new(App {
            store,
            queue,
            source: source.clone(),
            connections: Registry::new(),
            metrics: metrics.clone(),
            connect: ConnectConfig::from_env(&ProcessEnv)?,
            send,
            limits: Limits {
                max_frame_bytes: options.max_frame_bytes,
                max_message_bytes: options.max_message_bytes,
                idle_timeout: options.idle_timeout,
                max_connection_duration: options.max_connection_duration,
            },
            stage: options.stage.clone(),
            domain_name: addr.to_string(),
        });

        let (stop_worker, worker_signal) = watch::channel(false);
        let settings = WorkerSettings {
            batch_size: usize::from(options.batch_size),
            batching_window: options.batching_window,
            timeout: options.worker_timeout,
            concurrency: usize::from(options.worker_concurrency),
        };
        let worker = tokio::spawn(worker::run(
            source,
            engine,
            metrics,
            settings,
            worker_signal,
        ));

        let (stop_accepting, mut accept_signal) = watch::channel(false);
        // Frames are small and latency matters more than packet count: no Nagle delay.
        let listener = listener.tap_io(|socket| {
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
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

    /// Stops accepting, lets the worker finish the jobs it started, closes every socket with
    /// 1001, then waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop_accepting.send(true);
        let _ = self.stop_worker.send(true);
        let _ = self.worker.await;
        self.app
            .connections
            .close_all(CLOSE_GOING_AWAY, "Going away", Duration::from_secs(5))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        info!("local stack stopped");
    }
}

fn router(app: Arc<App>) -> Router {
    let stage = format!("/{}", app.stage);
    let connections = format!("/{}/@connections/{{id}}", app.stage);
    Router::new()
        .route("/", get(emulator::upgrade))
        .route(&stage, get(emulator::upgrade))
        .route(
            &connections,
            get(management::get)
                .post(management::post)
                .delete(management::delete),
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
