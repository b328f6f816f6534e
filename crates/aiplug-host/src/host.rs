//! The host: loads plugins through the staged pipeline, keeps them in the
//! registry, runs calls through them, and serves their host API.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{CallError, Stage};
use crate::lifecycle::Lifecycle;
use crate::limits::{Pass, Refused};
use crate::loader::{CallScope, FilterOutcome, HookFailure, HookStatus, HostServices, Output};
use crate::manifest::Hook;
use crate::models::{ChatModel, ChatRequest, ChatResponse, ChunkSink, ModelCall, ModelError, ModelInfo};
use crate::observe::{CallStats, Observer};
use crate::pipeline::{self, LoadEnv};
use crate::registry::{LoadedPlugin, Registry, Snapshot};
use crate::session::{InMemorySessionStore, SessionStore};
use crate::trust::TrustPolicy;

/// Builds a [`Host`].
///
/// ```no_run
/// let host = aiplug_host::HostBuilder::new().build();
/// for result in host.load_dir(std::path::Path::new("plugins")) {
///     if let Err(e) = result { eprintln!("{e}\n  fix: {}", e.fix()); }
/// }
/// ```
pub struct HostBuilder {
    sessions: Arc<dyn SessionStore>,
    models: BTreeMap<String, Arc<dyn ChatModel>>,
    default_model: Option<String>,
    init_timeout: Duration,
    unload_grace: Duration,
    max_nesting: u32,
    observer: Option<Arc<dyn Observer>>,
    session_ttl: Option<Duration>,
    admission: bool,
    trust: TrustPolicy,
}

impl Default for HostBuilder {
    fn default() -> HostBuilder {
        HostBuilder::new()
    }
}

impl HostBuilder {
    /// Defaults: in-process sessions, no models, 10 s for `on_load`, 5 s to
    /// drain a plugin at unload, model calls nested at most 4 deep.
    pub fn new() -> HostBuilder {
        HostBuilder {
            sessions: Arc::new(InMemorySessionStore::new()),
            models: BTreeMap::new(),
            default_model: None,
            init_timeout: Duration::from_secs(10),
            unload_grace: Duration::from_secs(5),
            max_nesting: 4,
            observer: None,
            session_ttl: Some(Duration::from_secs(30 * 60)),
            admission: true,
            trust: TrustPolicy::default(),
        }
    }

    /// Whose plugins load. Default: [`TrustPolicy::default`], a valid
    /// signature by a key in [`crate::trust::default_keys_dir`] (secure by
    /// default). [`TrustPolicy::AllowUnsigned`] is development mode, and
    /// `build` logs a warning saying so.
    pub fn trust(mut self, policy: TrustPolicy) -> HostBuilder {
        self.trust = policy;
        self
    }

    /// Whether calls are admitted under each plugin's `[limits]`
    /// (`max_concurrency`, `queue_ms`, `requests_per_second`); default
    /// true. Off, every call runs at once (deadlines still apply): for an
    /// embedder that admits calls itself, and for `bench/limits.sh`, which
    /// measures what the admission costs.
    pub fn admission(mut self, on: bool) -> HostBuilder {
        self.admission = on;
        self
    }

    /// Sessions unused this long end, and the plugins that stored
    /// something in them get `on_session_end` (default 30 minutes; `None`:
    /// sessions end only when [`Host::end_session`] is called).
    pub fn session_ttl(mut self, ttl: Option<Duration>) -> HostBuilder {
        self.session_ttl = ttl;
        self
    }

    /// Reports every hook and model call to `observer` (for metrics).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> HostBuilder {
        self.observer = Some(observer);
        self
    }

    /// Replaces the session store (e.g. a shared one for several replicas).
    pub fn session_store(mut self, store: Arc<dyn SessionStore>) -> HostBuilder {
        self.sessions = store;
        self
    }

    /// Registers a model under `name`; the first one registered becomes the
    /// default unless [`HostBuilder::default_model`] says otherwise.
    pub fn model(mut self, name: impl Into<String>, model: Arc<dyn ChatModel>) -> HostBuilder {
        let name = name.into();
        if self.default_model.is_none() {
            self.default_model = Some(name.clone());
        }
        self.models.insert(name, model);
        self
    }

    /// The model used when a request names none.
    pub fn default_model(mut self, name: impl Into<String>) -> HostBuilder {
        self.default_model = Some(name.into());
        self
    }

    /// How long a plugin's `on_load` may take (default 10 s).
    pub fn init_timeout(mut self, timeout: Duration) -> HostBuilder {
        self.init_timeout = timeout;
        self
    }

    /// How long unloading waits for in-flight calls (default 5 s).
    pub fn unload_grace(mut self, grace: Duration) -> HostBuilder {
        self.unload_grace = grace;
        self
    }

    /// Builds the host; no plugins are loaded yet.
    pub fn build(self) -> Host {
        let shared = Arc::new(Shared {
            registry: Registry::default(),
            sessions: self.sessions,
            models: self.models,
            default_model: self.default_model,
            lifecycle: Lifecycle::default(),
            init_timeout: self.init_timeout,
            unload_grace: self.unload_grace,
            max_nesting: self.max_nesting,
            observer: self.observer,
            admission: self.admission,
            trust: self.trust,
        });
        match &shared.trust {
            TrustPolicy::AllowUnsigned => tracing::warn!(
                "DEVELOPMENT MODE: unsigned plugins are allowed and no signature is checked; \
                 never run a production host like this"
            ),
            TrustPolicy::RequireSigned { keys_dir } => tracing::info!(
                trust_store = %keys_dir.display(),
                "plugins load only with a valid signature by a key in the trust store"
            ),
        }
        if let Some(ttl) = self.session_ttl {
            spawn_session_janitor(Arc::downgrade(&shared), ttl);
        }
        Host { shared }
    }
}

/// Ends idle sessions every quarter of `ttl` (10 ms to 30 s) until the host
/// is dropped.
fn spawn_session_janitor(shared: std::sync::Weak<Shared>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
    let spawned = std::thread::Builder::new()
        .name("aiplug-sessions".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.expire_sessions(ttl);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the session expiry thread: idle sessions will not expire");
    }
}

/// Options of one call: session, deadline, cancellation.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Session scope for the plugins' session store; `None` for none.
    pub session_id: Option<String>,
    /// Request id for logs; empty for none.
    pub request_id: String,
    /// Deadline; the plugin's `limits.timeout_ms` applies too, whichever is sooner.
    pub deadline: Option<Instant>,
    /// Cancels the call (and everything it started) when fired.
    pub cancel: CancellationToken,
    /// The plugin making this call, if any: its own filters are skipped.
    caller: Option<String>,
    /// Plugin-calls-model nesting depth.
    depth: u32,
    /// Model time spent by this call, nested calls included.
    pub stats: Arc<CallStats>,
}

impl CallOptions {
    /// Options with no session, no deadline, a fresh cancellation token.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Sets the session.
    pub fn session(mut self, id: impl Into<String>) -> CallOptions {
        self.session_id = Some(id.into());
        self
    }

    /// Sets a deadline `timeout` from now.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.deadline = Some(Instant::now() + timeout);
        self
    }
}

/// The outcome of `aiplug doctor`: one row per stage.
#[derive(Debug, Clone)]
pub struct DoctorReport {
    /// The manifest examined.
    pub manifest_path: PathBuf,
    /// Stage rows, in pipeline order.
    pub rows: Vec<DoctorRow>,
    /// SHA-256 of the artefact, when it could be read (the value to pin).
    pub sha256: Option<String>,
}

impl DoctorReport {
    /// Whether every stage passed.
    pub fn ok(&self) -> bool {
        self.rows
            .iter()
            .all(|r| matches!(r.outcome, StageOutcome::Passed(_)))
    }
}

/// One stage of a doctor run.
#[derive(Debug, Clone)]
pub struct DoctorRow {
    /// The stage.
    pub stage: Stage,
    /// What happened.
    pub outcome: StageOutcome,
}

/// A stage's result in a doctor run.
#[derive(Debug, Clone)]
pub enum StageOutcome {
    /// Passed, with a detail line.
    Passed(String),
    /// Failed.
    Failed {
        /// The root cause.
        cause: String,
        /// How to fix it.
        fix: String,
    },
    /// Not run because an earlier stage failed.
    Skipped,
}

/// The plugin host. Cheap to share: clone the `Arc` you keep it in.
/// Dropping it unloads every plugin.
pub struct Host {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) models: BTreeMap<String, Arc<dyn ChatModel>>,
    pub(crate) default_model: Option<String>,
    /// Plugins that are not active (loading, draining, failed, unloaded),
    /// and diagnoses of active ones.
    pub(crate) lifecycle: Lifecycle,
    pub(crate) init_timeout: Duration,
    pub(crate) unload_grace: Duration,
    pub(crate) max_nesting: u32,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    /// See [`HostBuilder::admission`].
    pub(crate) admission: bool,
    /// See [`HostBuilder::trust`].
    pub(crate) trust: TrustPolicy,
}

impl Host {
    /// Runs the `invoke` service of the plugin with id `target`, or of the
    /// plugin serving the task `target`. The input is borrowed by the plugin,
    /// not copied; the output stays in the plugin's buffer.
    pub fn invoke(&self, target: &str, input: &[u8], options: &CallOptions) -> Result<Output, CallError> {
        let snapshot = self.shared.registry.snapshot();
        let plugin = snapshot.resolve(target).ok_or_else(|| CallError::NotFound {
            target: target.to_string(),
        })?;
        if !plugin.hooks.contains(&Hook::Invoke) {
            return Err(CallError::Unsupported {
                plugin: plugin.id().to_string(),
                hook: "invoke",
            });
        }
        let plugin = Arc::clone(plugin);
        drop(snapshot);
        let task = if plugin.id() == target { "" } else { target };
        let _pass = self.shared.admit(&plugin, options)?;
        self.shared
            .with_scope(&plugin, "invoke", task, options, |scope| {
                plugin.instance.invoke(scope, input)
            })
            .map_err(|f| call_error(plugin.id(), "invoke", f))
    }

    /// Runs the request filters (highest priority first) over an
    /// OpenAI-style chat request. Returns the request as the last filter left
    /// it (borrowed when no filter rewrote it), or the first rejection.
    pub fn filter_request<'a>(
        &self,
        request_json: &'a [u8],
        options: &CallOptions,
    ) -> Result<Cow<'a, [u8]>, CallError> {
        let snapshot = self.shared.registry.snapshot();
        self.shared.filter_request(&snapshot, request_json, options)
    }

    /// Runs the response filters over a chat response.
    pub fn filter_response<'a>(
        &self,
        request_json: &[u8],
        response_json: &'a [u8],
        options: &CallOptions,
    ) -> Result<Cow<'a, [u8]>, CallError> {
        let snapshot = self.shared.registry.snapshot();
        self.shared
            .filter_response(&snapshot, request_json, response_json, options)
    }

    /// A chat completion through the whole pipeline: request filters, the
    /// model (streaming chunks to `stream` when given), response filters.
    ///
    /// Response filters see the whole answer before the caller sees any of
    /// it: with a response filter loaded, a stream is generated whole,
    /// filtered, and then handed to `stream` as chunks (the caller's
    /// first byte comes later, but a guard cannot be bypassed by streaming).
    /// Without response filters chunks go to `stream` as the model makes
    /// them.
    pub fn infer(
        &self,
        request: &ChatRequest,
        options: &CallOptions,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, CallError> {
        self.shared.infer(request, options, stream)
    }

    /// The configured models, by name.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.shared
            .models
            .iter()
            .map(|(name, model)| ModelInfo {
                name: name.clone(),
                ..model.info()
            })
            .collect()
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> Option<&str> {
        self.shared.default_model.as_deref()
    }

    /// Gets the default model ready to answer (a local model loads its
    /// weights), so a server can tell when the first request will not wait.
    pub fn warm_default_model(&self) -> Result<(), ModelError> {
        let name = self.shared.default_model.as_ref().ok_or(ModelError::NoModel)?;
        let model = self
            .shared
            .models
            .get(name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.clone(),
                known: self.shared.models.keys().cloned().collect(),
            })?;
        model.warm()
    }

    /// Ends a session: drops its stored values and tells each plugin that
    /// stored something in it (`on_session_end`). Returns the plugins told.
    pub fn end_session(&self, session_id: &str) -> Vec<String> {
        let touched = match self.shared.sessions.end_session(session_id) {
            Ok(touched) => touched,
            Err(e) => {
                tracing::warn!(session = session_id, error = %e, "ending a session failed");
                return Vec::new();
            }
        };
        self.shared.notify_session_end(session_id, &touched);
        touched
    }

    /// Runs every load stage on the plugin at `path` without registering it,
    /// and reports each stage. `other_ids` are ids claimed by other plugin
    /// directories (a clash is a duplicate-id failure). When init passes the
    /// plugin is unloaded again.
    pub fn doctor(&self, path: &Path, other_ids: &HashMap<String, PathBuf>) -> DoctorReport {
        let mut rows: Vec<DoctorRow> = Vec::new();
        let snapshot = self.shared.registry.snapshot();
        let env = LoadEnv {
            registry: &snapshot,
            other_ids,
            services: Arc::clone(&self.shared) as Arc<dyn HostServices>,
            init_timeout: self.shared.init_timeout,
            trust: &self.shared.trust,
            replacing: None,
        };
        let mut sha256 = None;
        let result = pipeline::load(path, &env, &mut |stage, detail| {
            if stage == Stage::Integrity {
                sha256 = detail.split_whitespace().nth(1).map(str::to_string);
            }
            rows.push(DoctorRow {
                stage,
                outcome: StageOutcome::Passed(detail),
            });
        });
        let manifest_path = match &result {
            Ok(plugin) => plugin.manifest_path.clone(),
            Err(error) => error.manifest_path.clone(),
        };
        match result {
            Ok(plugin) => {
                if let Err(e) = self.shared.retire(Arc::new(plugin)) {
                    rows.push(DoctorRow {
                        stage: Stage::Init,
                        outcome: StageOutcome::Failed {
                            cause: e.to_string(),
                            fix: "make on_unload release everything and return ok".into(),
                        },
                    });
                }
            }
            Err(error) => {
                if sha256.is_none() {
                    if let crate::error::LoadErrorKind::Integrity(
                        crate::error::IntegrityError::Sha256Mismatch { actual, .. },
                    ) = error.kind()
                    {
                        sha256 = Some(actual.clone());
                    }
                }
                rows.push(DoctorRow {
                    stage: error.stage(),
                    outcome: StageOutcome::Failed {
                        cause: error.kind().to_string(),
                        fix: error.fix(),
                    },
                });
                for stage in Stage::ALL.iter().filter(|s| **s > error.stage()) {
                    rows.push(DoctorRow {
                        stage: *stage,
                        outcome: StageOutcome::Skipped,
                    });
                }
            }
        }
        DoctorReport {
            manifest_path,
            rows,
            sha256,
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let ids: Vec<String> = self.shared.registry.snapshot().by_id.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.unload(&id) {
                tracing::warn!(error = %e, "unload at shutdown");
            }
        }
    }
}

/// The observer's name for how a hook failed.
fn outcome(status: &HookStatus) -> &'static str {
    match status {
        HookStatus::Failed | HookStatus::Unsupported | HookStatus::Rejected => "failed",
        HookStatus::Panicked => "panicked",
        HookStatus::Cancelled => "cancelled",
        #[allow(unreachable_patterns)]
        _ => "stopped",
    }
}

fn call_error(plugin: &str, hook: &'static str, failure: HookFailure) -> CallError {
    let plugin = plugin.to_string();
    let message = failure.message;
    match failure.status {
        HookStatus::Failed => CallError::Failed {
            plugin,
            hook,
            message,
        },
        HookStatus::Panicked => CallError::Panicked {
            plugin,
            hook,
            message,
        },
        HookStatus::Cancelled => CallError::Cancelled { plugin, message },
        HookStatus::Unsupported => CallError::Unsupported { plugin, hook },
        HookStatus::Rejected => CallError::Rejected {
            plugin,
            reason: message,
        },
        HookStatus::Trapped => CallError::Trapped {
            plugin,
            hook,
            message,
        },
        HookStatus::Limit(limit) => CallError::LimitExceeded {
            plugin,
            hook,
            limit,
            message,
        },
    }
}

impl Shared {
    /// Calls `on_session_end` of each plugin in `plugins` that is loaded.
    fn notify_session_end(&self, session_id: &str, plugins: &[String]) {
        let snapshot = self.registry.snapshot();
        for id in plugins {
            let Some(plugin) = snapshot.by_id.get(id) else {
                continue;
            };
            if !plugin.hooks.contains(&Hook::OnSessionEnd) {
                continue;
            }
            let options = CallOptions::new();
            let _in_flight = plugin.enter();
            let result = self.with_scope(plugin, "on_session_end", "", &options, |scope| {
                plugin.instance.on_session_end(scope, session_id)
            });
            if let Err(f) = result {
                tracing::warn!(plugin = %id, error = %f.message, "on_session_end failed");
            }
        }
    }

    /// Ends the sessions idle for `ttl` and tells their plugins.
    fn expire_sessions(&self, ttl: Duration) {
        match self.sessions.end_idle_sessions(ttl) {
            Ok(ended) => {
                for (session, plugins) in ended {
                    tracing::debug!(%session, "session expired");
                    self.notify_session_end(&session, &plugins);
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring sessions failed"),
        }
    }
    /// Runs `f` with a call scope for `plugin`; the deadline is the sooner of
    /// the caller's and the plugin's `limits.timeout_ms`.
    pub(crate) fn with_scope<T>(
        &self,
        plugin: &LoadedPlugin,
        hook: &'static str,
        task: &str,
        options: &CallOptions,
        f: impl FnOnce(&CallScope<'_>) -> Result<T, HookFailure>,
    ) -> Result<T, HookFailure> {
        let limit = Instant::now() + Duration::from_millis(plugin.manifest.limits.timeout_ms);
        let deadline = Some(options.deadline.map_or(limit, |d| d.min(limit)));
        let scope = CallScope {
            services: self,
            plugin_id: plugin.id(),
            session_id: options.session_id.as_deref().unwrap_or(""),
            request_id: &options.request_id,
            task,
            cancel: &options.cancel,
            deadline,
            depth: options.depth,
            stats: Some(&options.stats),
        };
        let _span = tracing::debug_span!("hook", plugin = plugin.id(), hook).entered();
        let Some(observer) = &self.observer else {
            return f(&scope);
        };
        let start = Instant::now();
        let result = f(&scope);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) => outcome(&failure.status),
        };
        observer.hook_call(plugin.id(), hook, start.elapsed(), outcome);
        result
    }

    /// Lets a call into `plugin` under its `[limits]`: a token of its
    /// rate, then a place among its `max_concurrency`, queueing up to
    /// `queue_ms` (and never past the call's deadline or cancellation). The
    /// pass is held for the call and counts it in flight; with admission
    /// off it only counts it.
    fn admit<'p>(&self, plugin: &'p LoadedPlugin, options: &CallOptions) -> Result<Pass<'p>, CallError> {
        if !self.admission {
            return Ok(plugin.enter());
        }
        let id = plugin.id();
        if let Some(rate) = &plugin.rate {
            if let Err(wait) = rate.check() {
                if let Some(observer) = &self.observer {
                    observer.refused(id, "requests_per_second");
                }
                return Err(CallError::Overloaded {
                    plugin: id.to_string(),
                    limit: "requests_per_second",
                    retry_after: wait,
                });
            }
        }
        let queue = Duration::from_millis(plugin.manifest.limits.queue_ms);
        match plugin.gate.enter(&options.cancel, options.deadline, queue) {
            Ok(pass) => {
                if let (Some(waited), Some(observer)) = (pass.waited, &self.observer) {
                    observer.queued(id, waited);
                }
                Ok(pass)
            }
            Err(Refused::Full) => {
                if let Some(observer) = &self.observer {
                    observer.refused(id, "max_concurrency");
                }
                Err(CallError::Overloaded {
                    plugin: id.to_string(),
                    limit: "max_concurrency",
                    retry_after: Duration::from_secs(1),
                })
            }
            Err(refused) => Err(CallError::Cancelled {
                plugin: id.to_string(),
                message: match refused {
                    Refused::Cancelled => "cancelled while waiting for a place (max_concurrency)",
                    _ => "the deadline passed while waiting for a place (max_concurrency)",
                }
                .to_string(),
            }),
        }
    }

    fn filter_request<'a>(
        &self,
        snapshot: &Snapshot,
        request_json: &'a [u8],
        options: &CallOptions,
    ) -> Result<Cow<'a, [u8]>, CallError> {
        let mut current: Option<Output> = None;
        for plugin in &snapshot.request_filters {
            if options.caller.as_deref() == Some(plugin.id()) {
                continue; // a plugin's hooks never see its own calls
            }
            let input: &[u8] = current.as_deref().unwrap_or(request_json);
            let _pass = self.admit(plugin, options)?;
            let outcome = self
                .with_scope(plugin, "on_request", "", options, |scope| {
                    plugin.instance.on_request(scope, input)
                })
                .map_err(|f| call_error(plugin.id(), "on_request", f))?;
            match outcome {
                FilterOutcome::Continue => {}
                FilterOutcome::Rewrite(rewritten) => {
                    check_json(plugin.id(), "on_request", &rewritten)?;
                    current = Some(rewritten);
                }
                FilterOutcome::Reject(reason) => {
                    return Err(CallError::Rejected {
                        plugin: plugin.id().to_string(),
                        reason,
                    })
                }
            }
        }
        Ok(match current {
            Some(output) => Cow::Owned(output.to_vec()),
            None => Cow::Borrowed(request_json),
        })
    }

    fn filter_response<'a>(
        &self,
        snapshot: &Snapshot,
        request_json: &[u8],
        response_json: &'a [u8],
        options: &CallOptions,
    ) -> Result<Cow<'a, [u8]>, CallError> {
        let mut current: Option<Output> = None;
        for plugin in &snapshot.response_filters {
            if options.caller.as_deref() == Some(plugin.id()) {
                continue;
            }
            let input: &[u8] = current.as_deref().unwrap_or(response_json);
            let _pass = self.admit(plugin, options)?;
            let replaced = self
                .with_scope(plugin, "on_response", "", options, |scope| {
                    plugin.instance.on_response(scope, request_json, input)
                })
                .map_err(|f| call_error(plugin.id(), "on_response", f))?;
            if let Some(replaced) = replaced {
                check_json(plugin.id(), "on_response", &replaced)?;
                current = Some(replaced);
            }
        }
        Ok(match current {
            Some(output) => Cow::Owned(output.to_vec()),
            None => Cow::Borrowed(response_json),
        })
    }

    fn infer(
        &self,
        request: &ChatRequest,
        options: &CallOptions,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, CallError> {
        if options.cancel.is_cancelled() {
            return Err(ModelError::Cancelled.into());
        }
        let snapshot = self.registry.snapshot();
        let request_bytes = serde_json::to_vec(request).map_err(|e| ModelError::BadRequest(e.to_string()))?;
        let filtered = self.filter_request(&snapshot, &request_bytes, options)?;
        let rewritten: ChatRequest;
        let request = match &filtered {
            Cow::Borrowed(_) => request,
            Cow::Owned(bytes) => {
                rewritten = serde_json::from_slice(bytes).map_err(|e| {
                    ModelError::BadRequest(format!("a request filter produced an invalid chat request: {e}"))
                })?;
                &rewritten
            }
        };
        let name = if request.model.is_empty() {
            self.default_model.clone().ok_or(ModelError::NoModel)?
        } else {
            request.model.clone()
        };
        let model = self.models.get(&name).ok_or_else(|| ModelError::UnknownModel {
            name: name.clone(),
            known: self.models.keys().cloned().collect(),
        })?;
        let call = ModelCall {
            cancel: &options.cancel,
            deadline: options.deadline,
        };
        // Response filters see an answer before any of it leaves: with one
        // in the way a stream is generated whole, filtered, then replayed
        // (so `stream: true` cannot bypass a guard).
        let caller = options.caller.as_deref();
        let filtering = snapshot.response_filters.iter().any(|p| Some(p.id()) != caller);
        let (live, held) = if filtering { (None, stream) } else { (stream, None) };
        let response = self.call_model(&name, model.as_ref(), request, call, options, live)?;
        let response = if filtering {
            let response_bytes =
                serde_json::to_vec(&response).map_err(|e| ModelError::Protocol(e.to_string()))?;
            match self.filter_response(&snapshot, &filtered, &response_bytes, options)? {
                Cow::Borrowed(_) => response,
                Cow::Owned(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    CallError::Model(ModelError::Provider {
                        model: name,
                        message: format!("a response filter produced an invalid chat response: {e}"),
                    })
                })?,
            }
        } else {
            response
        };
        if let Some(sink) = held {
            for chunk in response.to_chunks(request.include_usage()) {
                sink(&chunk);
            }
        }
        Ok(response)
    }

    /// One model call, timed for the call's stats and the observer.
    fn call_model(
        &self,
        name: &str,
        model: &dyn ChatModel,
        request: &ChatRequest,
        call: ModelCall<'_>,
        options: &CallOptions,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        let _span = tracing::info_span!("model", model = name).entered();
        let start = Instant::now();
        options.stats.model_call_started(start);
        let result = model.chat(request, call, stream);
        let elapsed = start.elapsed();
        options.stats.add_model_call(elapsed);
        if let Some(observer) = &self.observer {
            observer.model_call(name, elapsed, result.as_ref());
        }
        result
    }
}

fn check_json(plugin: &str, hook: &'static str, bytes: &[u8]) -> Result<(), CallError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(drop)
        .map_err(|e| CallError::BadOutput {
            plugin: plugin.to_string(),
            hook,
            message: format!("not JSON: {e}"),
        })
}

impl HostServices for Shared {
    fn log(&self, plugin: &str, level: u32, message: &str) {
        match level {
            aiplug_abi::AIPLUG_LOG_ERROR => tracing::error!(plugin, "{message}"),
            aiplug_abi::AIPLUG_LOG_WARN => tracing::warn!(plugin, "{message}"),
            aiplug_abi::AIPLUG_LOG_INFO => tracing::info!(plugin, "{message}"),
            aiplug_abi::AIPLUG_LOG_DEBUG => tracing::debug!(plugin, "{message}"),
            _ => tracing::trace!(plugin, "{message}"),
        }
    }

    fn infer(&self, scope: &CallScope<'_>, model: &str, request_json: &[u8]) -> Result<Vec<u8>, HookFailure> {
        let fail = |status, error: &dyn std::fmt::Display| HookFailure {
            status,
            message: error.to_string(),
        };
        if scope.depth + 1 > self.max_nesting {
            let error = ModelError::TooDeep {
                depth: scope.depth + 1,
                limit: self.max_nesting,
            };
            return Err(fail(HookStatus::Failed, &error));
        }
        let mut request: ChatRequest = serde_json::from_slice(request_json)
            .map_err(|e| fail(HookStatus::Failed, &ModelError::BadRequest(e.to_string())))?;
        if !model.is_empty() {
            request.model = model.to_string();
        }
        if request.model.is_empty() {
            request.model = self.default_model.clone().unwrap_or_default();
        }
        let name = request.model.clone();
        let allowed = self
            .registry
            .snapshot()
            .by_id
            .get(scope.plugin_id)
            .is_some_and(|p| p.manifest.capabilities.allows_model(&name));
        if !allowed {
            let error = ModelError::NotAllowed {
                plugin: scope.plugin_id.to_string(),
                model: name,
            };
            return Err(fail(HookStatus::Failed, &error));
        }
        // The model call inherits the plugin call's cancellation and deadline.
        let cancel = scope.cancel.child_token();
        let options = CallOptions {
            session_id: (!scope.session_id.is_empty()).then(|| scope.session_id.to_string()),
            request_id: scope.request_id.to_string(),
            deadline: scope.deadline,
            cancel,
            caller: Some(scope.plugin_id.to_string()),
            depth: scope.depth + 1,
            stats: scope.stats.cloned().unwrap_or_default(),
        };
        match self.infer(&request, &options, None) {
            Ok(response) => serde_json::to_vec(&response).map_err(|e| fail(HookStatus::Failed, &e)),
            Err(CallError::Rejected { plugin, reason }) => Err(HookFailure {
                status: HookStatus::Rejected,
                message: format!("plugin {plugin:?} rejected the request: {reason}"),
            }),
            Err(CallError::Model(ModelError::Cancelled)) | Err(CallError::Cancelled { .. }) => {
                Err(fail(HookStatus::Cancelled, &"cancelled"))
            }
            Err(other) => Err(fail(HookStatus::Failed, &other)),
        }
    }

    fn session_get(&self, plugin: &str, session: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.sessions.get(plugin, session, key).map_err(|e| e.to_string())
    }

    fn session_set(&self, plugin: &str, session: &str, key: &str, value: &[u8]) -> Result<(), String> {
        self.sessions
            .set(plugin, session, key, value)
            .map_err(|e| e.to_string())
    }

    fn session_delete(&self, plugin: &str, session: &str, key: &str) -> Result<(), String> {
        self.sessions
            .delete(plugin, session, key)
            .map_err(|e| e.to_string())
    }
}
