//! aiplug's HTTP gateway: an OpenAI-compatible API with the plugin
//! pipeline around every model call, the plugins' `invoke` services, admin
//! and metrics endpoints.
//!
//! The host is synchronous (plugin hooks and model providers block), so
//! every call into it runs on tokio's blocking pool; the async side only
//! parses, routes, streams and keeps time. A client that goes away cancels
//! its call: the blocking work sees the cancellation token at its next poll
//! (the local model every token, a remote stream every line).
//!
//! ```text
//! POST /v1/chat/completions      request filters → model → response filters (SSE with "stream": true)
//! GET  /v1/models                the configured models
//! POST /v1/tasks/{task}          the invoke service serving TASK (e.g. code-review)
//! POST /v1/plugins/{id}/invoke   the invoke service of plugin ID
//! GET  /admin/plugins            states, versions, last diagnosis
//! POST /admin/plugins/{id}/reload
//! POST /admin/plugins/reload     sync every plugin directory with the disk
//! GET  /healthz  /readyz  /metrics
//! ```

#![deny(missing_docs)]

pub mod auth;
mod chat;
pub mod config;
pub mod error;
mod gate;
pub mod metrics;
mod services;

use std::future::Future;
use std::sync::{Arc, Mutex};

use aiplug_host::{CancellationToken, Host};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use aiplug_host as host;
pub use config::ServerConfig;
pub use error::ApiError;
pub use metrics::Metrics;

/// Whether the server can take model traffic (`GET /readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The default model is still loading.
    Loading,
    /// Plugins and the default model are loaded.
    Ready,
    /// The default model could not be loaded: why.
    Failed(String),
    /// Shutting down: finishing in-flight requests.
    Draining,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) host: Arc<Host>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth: auth::Auth,
    pub(crate) config: ServerConfig,
    /// One permit per request being served (`max_concurrent_requests`).
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) readiness: Mutex<Readiness>,
    /// The plugin directories, for `POST /admin/plugins/reload`.
    pub(crate) plugin_dirs: Vec<std::path::PathBuf>,
}

impl AppState {
    pub(crate) fn readiness(&self) -> Readiness {
        self.readiness.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_readiness(&self, readiness: Readiness) {
        *self.readiness.lock().unwrap_or_else(|p| p.into_inner()) = readiness;
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Accepting connections failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The gateway over a loaded [`Host`].
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// A server for `host`. Build the host with `metrics` as its observer
    /// (`HostBuilder::observer`) so plugin and model calls are counted.
    pub fn new(host: Arc<Host>, metrics: Arc<Metrics>, config: ServerConfig) -> Server {
        let auth = auth::Auth::new(&config.api_keys, &config.admin_keys);
        let slots = Arc::new(Semaphore::new(config.max_concurrent_requests.max(1)));
        Server {
            state: Arc::new(AppState {
                host,
                metrics,
                auth,
                config,
                slots,
                readiness: Mutex::new(Readiness::Loading),
                plugin_dirs: Vec::new(),
            }),
        }
    }

    /// The directories the plugins were loaded from (as given to
    /// `Host::load_dir`): `POST /admin/plugins/reload` syncs them with the
    /// disk. Call before [`Server::router`] or [`Server::run`].
    pub fn with_plugin_dirs(mut self, dirs: Vec<std::path::PathBuf>) -> Server {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.plugin_dirs = dirs;
        }
        self
    }

    /// The routes, with auth, request ids, limits and metrics applied.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.state);
        Router::new()
            .route("/v1/chat/completions", post(chat::completions))
            .route("/v1/models", get(services::models))
            .route("/v1/tasks/{task}", post(services::task))
            .route("/v1/plugins/{id}/invoke", post(services::invoke))
            .route("/admin/plugins", get(services::admin_plugins))
            .route("/admin/plugins/reload", post(services::admin_sync))
            .route("/admin/plugins/{id}/reload", post(services::admin_reload))
            .route("/healthz", get(services::healthz))
            .route("/readyz", get(services::readyz))
            .route("/metrics", get(services::metrics))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                gate::gate,
            ))
            .method_not_allowed_fallback(services::method_not_allowed)
            .fallback(services::unknown_route)
            .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes))
            .with_state(state)
    }

    /// Whether the server is ready for model traffic.
    pub fn readiness(&self) -> Readiness {
        self.state.readiness()
    }

    /// Serves on `listener` until `shutdown` completes, then stops
    /// accepting, lets in-flight requests and streams finish for the grace
    /// period, cuts what is left, and unloads every plugin.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = Arc::clone(&self.state);
        tokio::spawn(warm_default_model(Arc::clone(&state)));
        let app = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let stopping = CancellationToken::new();
        let signal = stopping.clone();
        let draining_state = Arc::clone(&state);
        tokio::spawn(async move {
            shutdown.await;
            draining_state.set_readiness(Readiness::Draining);
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            signal.cancel();
        });
        // SSE answers go out as several small writes on kept-alive
        // connections: without TCP_NODELAY each can wait ~40 ms for the
        // client's delayed ACK (measured by bench/gateway.sh).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(stopping.clone().cancelled_owned());
        let grace = state.config.shutdown_grace();
        let cut = async {
            stopping.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result?,
            () = cut => {
                let in_flight = state.config.max_concurrent_requests - state.slots.available_permits();
                tracing::warn!(?grace, in_flight, "grace period over: cutting the requests still running");
            }
        }
        let host = Arc::clone(&state.host);
        drop(state);
        drop(self);
        let unloaded = tokio::task::spawn_blocking(move || {
            for plugin in host.plugins() {
                if plugin.state == aiplug_host::PluginState::Active {
                    if let Err(e) = host.unload(&plugin.id) {
                        tracing::warn!(plugin = %plugin.id, error = %e, "unload at shutdown");
                    }
                }
            }
        });
        if unloaded.await.is_err() {
            tracing::warn!("unloading plugins at shutdown panicked");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Loads the default model's weights so `/readyz` can say when the first
/// request will not wait for them.
async fn warm_default_model(state: Arc<AppState>) {
    let host = Arc::clone(&state.host);
    let warmed = tokio::task::spawn_blocking(move || host.warm_default_model()).await;
    let readiness = match warmed {
        Ok(Ok(())) => Readiness::Ready,
        Ok(Err(e)) => Readiness::Failed(e.to_string()),
        Err(e) => Readiness::Failed(format!("loading the default model panicked: {e}")),
    };
    match &readiness {
        Readiness::Ready => tracing::info!("ready"),
        Readiness::Failed(why) => tracing::warn!(%why, "the default model cannot serve; /readyz says 503"),
        _ => {}
    }
    if state.readiness() == Readiness::Loading {
        state.set_readiness(readiness);
    }
}
