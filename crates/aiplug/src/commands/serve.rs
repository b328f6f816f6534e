//! `aiplug serve`: the OpenAI-compatible gateway.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use aiplug_server::{Metrics, Server, ServerConfig};
use anyhow::Context as _;
use serde::Deserialize as _;

use crate::config::Config;
use crate::Global;

/// Loads the plugins and models, binds, and serves until SIGTERM or Ctrl-C.
pub fn run(global: &Global, listen: Option<SocketAddr>, watch: bool) -> anyhow::Result<ExitCode> {
    let (config, _) = Config::load(global.config.as_deref())?;
    let mut server_config = match config.server {
        Some(table) => {
            ServerConfig::deserialize(table).context("invalid [server] table in the config file")?
        }
        None => ServerConfig::default(),
    };
    if let Some(listen) = listen {
        server_config.listen = listen;
    }
    let server_config = server_config.with_env_keys(&|name| std::env::var(name).ok());

    let metrics = Metrics::new();
    let (host, refused) = super::load_host_observed(global, Some(Arc::clone(&metrics) as _))?;
    super::warn_refused(&refused);
    let host = Arc::new(host);
    let dirs: Vec<_> = super::plugin_dirs(global)?
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    let _watcher = if watch {
        let watcher = aiplug_host::watch::watch(&host, &dirs, aiplug_host::watch::DEFAULT_DEBOUNCE)
            .context("cannot watch the plugin directories (use --no-watch to serve without hot reload)")?;
        Some(watcher)
    } else {
        None
    };

    // Plugin hooks and model calls block, so they run on tokio's blocking
    // pool; it is bounded by the request limit (each request holds at most
    // one blocking task) plus a few for admin and model listings, so a
    // burst cannot spawn unbounded threads.
    let blocking_threads = server_config.max_concurrent_requests + 8;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("aiplug-http")
        .max_blocking_threads(blocking_threads)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(server_config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", server_config.listen))?;
        let addr = listener
            .local_addr()
            .context("the listening socket has no address")?;
        let plugins = host.plugins();
        let active = plugins
            .iter()
            .filter(|p| p.state == aiplug_host::PluginState::Active)
            .count();
        eprintln!(
            "aiplug serve: listening on http://{addr} ({active} plugins, default model {})",
            host.default_model().unwrap_or("none")
        );
        if server_config.api_keys.is_empty() && server_config.admin_keys.is_empty() {
            eprintln!(
                "aiplug serve: no API keys configured: only loopback clients are served \
                 (set [server] api_keys or AIPLUG_API_KEYS to accept others)"
            );
        }
        let server = Server::new(host, metrics, server_config).with_plugin_dirs(dirs);
        server.run(listener, shutdown_signal()).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
