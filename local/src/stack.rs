//! Starting and stopping the whole local stack.

use crate::backend::{self, Backend, BackendError};
use crate::connections::Registry;
use crate::emulator::{self, CLOSE_GOING_AWAY, Limits};
use crate::management;
use crate::metrics::Metrics;
use crate::options::{BackendKind, Options};
use crate::queue::{JobSource, LocalQueue};
use crate::worker::{self, WorkerSettings};
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::config::{Credentials, Region};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum::serve::ListenerExt;
use fanout::adapters::management::ManagementGateway;
use fanout::config::{ConfigError, ProcessEnv};
use fanout::engine::{Engine, EngineConfig};
use fanout::handlers::connect::ConnectConfig;
use fanout::handlers::sendmessage::SendConfig;
use fanout::handlers::sendmessage::SendMessage;
use fanout::ports::{ConnectionStore, JobQueue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// What the request handlers share.
pub struct App {
    pub store: Arc<dyn ConnectionStore>,
    pub queue: Arc<dyn JobQueue>,
    pub source: Arc<dyn JobSource>,
    pub connections: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub connect: ConnectConfig,
    pub send: SendConfig,
    pub limits: Limits,
    pub stage: String,
    /// `host:port`, as `requestContext.domainName`.
    pub domain_name: String,
}

impl App {
    pub fn sendmessage(&self) -> SendMessage<'_> {
        SendMessage {
            store: &*self.store,
            queue: &*self.queue,
            config: &self.send,
        }
    }
}

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

/// A running stack.
pub struct LocalStack {
    addr: SocketAddr,
    app: Arc<App>,
    local_queue: Option<Arc<LocalQueue>>,
    description: String,
    stop_accepting: watch::Sender<bool>,
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
            engine_config.concurrency = concurrency.max(1);
        }
        if let Some(mode) = options.delivery_mode {
            engine_config.delivery_mode = mode;
        }
        let mut send = SendConfig::from_env(&ProcessEnv)?;
        if let Some(max) = options.max_data_bytes {
            send.max_data_bytes = max.clamp(1, SendConfig::LIMIT_MAX_DATA_BYTES);
        }
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(ManagementGateway::new(&management_sdk_config())),
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

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.app.connections.len()
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

/// The management client signs requests like the real one; the emulator ignores the
/// signature, so fixed credentials do.
fn management_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(
            aws_sdk_apigatewaymanagement::config::SharedCredentialsProvider::new(Credentials::new(
                "local",
                "local",
                None,
                None,
                "fanout-local",
            )),
        )
        .http_client(fanout::adapters::aws::https_client())
        .build()
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
