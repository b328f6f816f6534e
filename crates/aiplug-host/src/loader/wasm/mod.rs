//! The wasm tier: WebAssembly components (wasm32-wasip2) run by wasmtime,
//! sandboxed: no filesystem, network, clocks or environment unless the
//! manifest's `[capabilities] wasi` grants them, memory capped by
//! `[limits] memory_mb`, time bounded by the call's deadline through epoch
//! interruption (see [`runtime`]).
//!
//! Each plugin version is compiled once and pre-linked into an
//! `InstancePre`. Calls run in instances taken from a per-plugin pool (one
//! per concurrent call, each initialised once with `on_load`); an instance
//! that traps or hits a limit is dropped and the next call gets a fresh one.
//! `[limits] fresh_instance_per_call` makes every call use a fresh instance.
//!
//! Supported world versions live side by side, one module each
//! ([`v0_1_0`]); the component's exported `aiplug:plugin/guest@VERSION`
//! interface picks the module, which converts its types to the host's.

pub(crate) mod runtime;
mod v0_1_0;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, InstancePre, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{CallScope, FilterOutcome, HookFailure, HookStatus, HostServices, Instance, Output, OutputRepr};
use crate::error::{AbiError, FormatError, Limit, SymbolsError};
use crate::manifest::{Hook, Manifest, WasiGrant};
use crate::observe::CallStats;
use runtime::Runtime;

/// The interface every plugin component exports, without its version.
pub(crate) const GUEST_INTERFACE: &str = "aiplug:plugin/guest";

/// Memory cap when the manifest sets none (`[limits] memory_mb`).
pub(crate) const DEFAULT_MEMORY_MB: u32 = 64;

/// A supported world version and how to bind a component to it.
type WorldBinder = fn(InstancePre<StoreData>) -> wasmtime::Result<Box<dyn Bound>>;

/// Every world version this host loads, oldest first.
const WORLDS: &[(&str, WorldBinder)] = &[(v0_1_0::VERSION, v0_1_0::pre)];

/// The versions of [`WORLDS`], for messages.
pub(crate) fn supported_worlds() -> Vec<&'static str> {
    WORLDS.iter().map(|(v, _)| *v).collect()
}

/// What the component says about itself.
pub(crate) struct GuestMeta {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) tasks: Vec<String>,
    pub(crate) hooks: BTreeSet<Hook>,
}

/// The call a hook serves, in the host's terms; each world module converts
/// it to its own record.
pub(crate) struct Info<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) task: &'a str,
    pub(crate) deadline_unix_ms: u64,
}

type HookResult<T> = wasmtime::Result<Result<T, HookFailure>>;

/// A component bound to one world version, ready to instantiate.
pub(crate) trait Bound: Send + Sync {
    fn instantiate(&self, store: &mut Store<StoreData>) -> wasmtime::Result<Box<dyn Guest>>;
}

/// One instance's hooks, in the host's types. The outer `Result` is a trap
/// (or a limit); the inner one what the plugin returned.
pub(crate) trait Guest: Send + Sync {
    fn metadata(&self, store: &mut Store<StoreData>) -> wasmtime::Result<GuestMeta>;
    fn on_load(&self, store: &mut Store<StoreData>, call: &Info<'_>, config_json: &str) -> HookResult<()>;
    fn on_request(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        request: &str,
    ) -> HookResult<FilterOutcome>;
    fn invoke(&self, store: &mut Store<StoreData>, call: &Info<'_>, input: &[u8]) -> HookResult<Vec<u8>>;
    fn on_response(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        request: &str,
        response: &str,
    ) -> HookResult<Option<Vec<u8>>>;
    fn on_session_end(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        session_id: &str,
    ) -> HookResult<()>;
    fn on_unload(&self, store: &mut Store<StoreData>, call: &Info<'_>) -> HookResult<()>;
}

/// Host-owned output.
pub(crate) fn owned(bytes: Vec<u8>) -> Output {
    Output(OutputRepr::Owned(bytes))
}

// ---------------------------------------------------------------------------
// Load stages

/// Format stage: `bytes` are a valid, complete component; compiles it.
pub(crate) fn compile(path: &Path, bytes: &[u8]) -> Result<Component, FormatError> {
    let not_a_component = |reason: String, core_module: bool| FormatError::NotAComponent {
        path: path.to_path_buf(),
        reason,
        core_module,
    };
    if bytes.is_empty() {
        return Err(not_a_component("the file is empty".into(), false));
    }
    if !bytes.starts_with(b"\0asm") {
        let reason = if bytes.starts_with(b"\x7fELF")
            || bytes.starts_with(b"MZ")
            || bytes.starts_with(&[0xcf, 0xfa])
        {
            "it is a native library or executable; set kind = \"native\" in plugin.toml if it is a native plugin"
        } else if bytes
            .iter()
            .take(512)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            "the file is text, not WebAssembly (WAT must be compiled to a component first)"
        } else {
            "no WebAssembly header (\\0asm)"
        };
        return Err(not_a_component(reason.into(), false));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(not_a_component(
            "it is a core WebAssembly module (wasm32-unknown-unknown or wasm32-wasip1 output), not a component"
                .into(),
            true,
        ));
    }
    if let Err(e) = wasmparser::Validator::new().validate_all(bytes) {
        let message = e.message();
        let reason = if message.contains("unexpected end") {
            format!(
                "the file is truncated: it has {} bytes and ends inside a section ({message} at byte {})",
                bytes.len(),
                e.offset()
            )
        } else {
            format!("invalid component: {message} at byte {}", e.offset())
        };
        return Err(not_a_component(reason, false));
    }
    let runtime = runtime::runtime().map_err(|reason| not_a_component(reason, false))?;
    Component::from_binary(&runtime.engine, bytes).map_err(|e| {
        let message = format!("{e:#}");
        // wasmparser's validator accepts a nested section that runs past the
        // end of the file (found by fuzz/run.sh); the compiler does not.
        let reason = if message.contains("out of bounds") {
            format!(
                "the file is truncated or corrupt: it has {} bytes and a section reaches past them ({message})",
                bytes.len()
            )
        } else {
            format!("the runtime cannot compile it: {message}")
        };
        not_a_component(reason, false)
    })
}

/// Why linking failed, by stage.
pub(crate) enum LinkError {
    Symbols(SymbolsError),
    /// The world version was found (the symbols stage passed) but is not
    /// supported.
    Abi(AbiError),
}

/// A component linked against the host: the symbols stage's result.
pub(crate) struct Linked {
    pub(crate) version: &'static str,
    pub(crate) imports: usize,
    instance_pre: InstancePre<StoreData>,
    binder: WorldBinder,
}

/// Symbols stage: the component exports `aiplug:plugin/guest@VERSION` for a
/// supported version and every import is satisfiable.
pub(crate) fn link(path: &Path, component: &Component) -> Result<Linked, LinkError> {
    let runtime = runtime::runtime().map_err(|reason| {
        LinkError::Symbols(SymbolsError::UnsatisfiedImport {
            path: path.to_path_buf(),
            reason,
        })
    })?;
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(&runtime.engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let prefix = format!("{GUEST_INTERFACE}@");
    let Some(found) = exports.iter().find_map(|name| name.strip_prefix(&prefix)) else {
        return Err(LinkError::Symbols(SymbolsError::MissingWorldExport {
            path: path.to_path_buf(),
            interface: GUEST_INTERFACE,
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        }));
    };
    let Some(&(version, binder)) = WORLDS.iter().find(|(v, _)| *v == found) else {
        return Err(LinkError::Abi(AbiError::UnsupportedWorld {
            found: found.to_string(),
            supported: supported_worlds(),
        }));
    };
    let imports = ty.imports(&runtime.engine).count();
    let instance_pre = runtime.linker.instantiate_pre(component).map_err(|e| {
        LinkError::Symbols(SymbolsError::UnsatisfiedImport {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })
    })?;
    Ok(Linked {
        version,
        imports,
        instance_pre,
        binder,
    })
}

/// ABI stage: type-checks the exports against the world version, makes a
/// first instance and reads the plugin's metadata from it (within
/// `timeout`). The result's first instance is kept for `on_load`.
pub(crate) fn bind(
    linked: Linked,
    manifest: &Manifest,
    services: &Arc<dyn HostServices>,
    timeout: Duration,
) -> Result<(WasmPlugin, GuestMeta), AbiError> {
    let runtime = runtime::runtime().map_err(|reason| AbiError::BadMetadata { reason })?;
    let bound = (linked.binder)(linked.instance_pre).map_err(|e| AbiError::WorldMismatch {
        version: linked.version.to_string(),
        reason: format!("{e:#}"),
    })?;
    let plugin = WasmPlugin {
        runtime,
        bound,
        settings: Settings::new(manifest, services),
        hooks: OnceLock::new(),
        config_json: OnceLock::new(),
        pool: Mutex::new(Vec::new()),
    };
    let cancel = CancellationToken::new();
    let _active = runtime.enter();
    let mut store = plugin.new_store();
    store.data_mut().begin_call(
        "",
        "metadata",
        "",
        &cancel,
        Some(Instant::now() + timeout),
        0,
        None,
    );
    store.set_epoch_deadline(1);
    let read = plugin
        .bound
        .instantiate(&mut store)
        .and_then(|guest| Ok((guest.metadata(&mut store)?, guest)));
    store.data_mut().end_call();
    let (meta, guest) = read.map_err(|e| AbiError::BadMetadata {
        reason: format!(
            "metadata() failed: {}",
            classify(&mut store, &plugin.settings, e).message
        ),
    })?;
    let _ = plugin.hooks.set(meta.hooks.clone());
    plugin.lock_pool().push(Live {
        store,
        guest,
        loaded: false,
    });
    Ok((plugin, meta))
}

// ---------------------------------------------------------------------------
// Store state

/// What each store carries: its WASI context (with only the granted
/// capabilities), its limits, and the call in progress.
pub(crate) struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    services: Weak<dyn HostServices>,
    plugin_id: Arc<str>,
    call: CallState,
    /// Why the epoch callback stopped the call, if it did.
    stopped: Option<Stop>,
    /// The plugin's last error-level log line of this call (the SDK logs
    /// panic messages there before the trap).
    last_error: Option<String>,
}

#[derive(Default)]
struct CallState {
    active: bool,
    session_id: String,
    request_id: String,
    task: String,
    cancel: Option<CancellationToken>,
    deadline: Option<Instant>,
    depth: u32,
    stats: Option<Arc<CallStats>>,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancelled,
    Deadline,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreData {
    #[allow(clippy::too_many_arguments)]
    fn begin_call(
        &mut self,
        session_id: &str,
        request_id: &str,
        task: &str,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        depth: u32,
        stats: Option<&Arc<CallStats>>,
    ) {
        let call = &mut self.call;
        call.active = true;
        call.session_id.clear();
        call.session_id.push_str(session_id);
        call.request_id.clear();
        call.request_id.push_str(request_id);
        call.task.clear();
        call.task.push_str(task);
        call.cancel = Some(cancel.clone());
        call.deadline = deadline;
        call.depth = depth;
        call.stats = stats.cloned();
        self.stopped = None;
        self.last_error = None;
        self.limiter.denied = None;
    }

    fn begin(&mut self, scope: &CallScope<'_>) {
        self.begin_call(
            scope.session_id,
            scope.request_id,
            scope.task,
            scope.cancel,
            scope.deadline,
            scope.depth,
            scope.stats,
        );
    }

    /// Drops what the call lent (token, stats), keeps the string buffers.
    fn end_call(&mut self) {
        self.call.active = false;
        self.call.cancel = None;
        self.call.stats = None;
    }

    fn is_cancelled(&self) -> bool {
        self.call
            .cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
            || self.call.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Runs `f` with a [`CallScope`] for the call in progress, for the host
    /// API; `None` outside a call or once the host is gone.
    fn with_scope<R>(&self, f: impl FnOnce(&CallScope<'_>) -> R) -> Option<R> {
        if !self.call.active {
            return None;
        }
        let services = self.services.upgrade()?;
        let cancel = self.call.cancel.as_ref()?;
        let scope = CallScope {
            services: services.as_ref(),
            plugin_id: &self.plugin_id,
            session_id: &self.call.session_id,
            request_id: &self.call.request_id,
            task: &self.call.task,
            cancel,
            deadline: self.call.deadline,
            depth: self.call.depth,
            stats: self.call.stats.as_ref(),
        };
        Some(f(&scope))
    }

    fn host_log(&mut self, level: u32, message: String) {
        if let Some(services) = self.services.upgrade() {
            services.log(&self.plugin_id, level, &message);
        }
        if level == aiplug_abi::AIPLUG_LOG_ERROR {
            self.last_error = Some(message);
        }
    }

    fn host_infer(&mut self, model: &str, request_json: &[u8]) -> Result<Vec<u8>, HookFailure> {
        self.with_scope(|scope| scope.services.infer(scope, model, request_json))
            .unwrap_or_else(|| Err(no_call("infer")))
    }

    fn host_session_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with_scope(|s| s.services.session_get(s.plugin_id, s.session_id, key))
            .unwrap_or_else(|| Err(no_call("session_get").message))
    }

    fn host_session_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.with_scope(|s| s.services.session_set(s.plugin_id, s.session_id, key, value))
            .unwrap_or_else(|| Err(no_call("session_set").message))
    }

    fn host_session_delete(&mut self, key: &str) -> Result<(), String> {
        self.with_scope(|s| s.services.session_delete(s.plugin_id, s.session_id, key))
            .unwrap_or_else(|| Err(no_call("session_delete").message))
    }
}

fn no_call(what: &str) -> HookFailure {
    HookFailure {
        status: HookStatus::Failed,
        message: format!("{what}: the host API is only available during a hook call of a running host"),
    }
}

/// Caps linear memory growth at `[limits] memory_mb` and remembers a denial,
/// so a trap that follows is reported as the memory limit, not as a crash.
struct Limiter {
    inner: StoreLimits,
    denied: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.denied = Some(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Clocks for plugins without the `clocks` grant: always the Unix epoch.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

// ---------------------------------------------------------------------------
// The plugin

/// What every store of a plugin is created with.
struct Settings {
    plugin_id: Arc<str>,
    memory_mb: u32,
    timeout_ms: u64,
    wasi: Vec<WasiGrant>,
    fresh_instance_per_call: bool,
    max_idle: usize,
    services: Weak<dyn HostServices>,
}

impl Settings {
    fn new(manifest: &Manifest, services: &Arc<dyn HostServices>) -> Settings {
        Settings {
            plugin_id: Arc::from(manifest.id.as_str()),
            memory_mb: manifest.limits.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            timeout_ms: manifest.limits.timeout_ms,
            wasi: manifest.capabilities.wasi.clone(),
            fresh_instance_per_call: manifest.limits.fresh_instance_per_call,
            max_idle: manifest.limits.max_concurrency as usize,
            services: Arc::downgrade(services),
        }
    }
}

/// An instance with its store.
struct Live {
    store: Store<StoreData>,
    guest: Box<dyn Guest>,
    /// Whether `on_load` ran in this instance.
    loaded: bool,
}

/// A loaded wasm plugin as the host's tier-independent [`Instance`].
pub(crate) struct WasmPlugin {
    runtime: &'static Runtime,
    bound: Box<dyn Bound>,
    settings: Settings,
    hooks: OnceLock<BTreeSet<Hook>>,
    /// The `[config]` JSON every new instance's `on_load` gets.
    config_json: OnceLock<String>,
    /// Idle instances, `on_load` done (or pending, for the first one).
    pool: Mutex<Vec<Live>>,
}

impl WasmPlugin {
    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<Live>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_store(&self) -> Store<StoreData> {
        let settings = &self.settings;
        let grants = &settings.wasi;
        let mut wasi = WasiCtxBuilder::new();
        if !grants.contains(&WasiGrant::Clocks) {
            wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        if grants.contains(&WasiGrant::Stdio) {
            wasi.inherit_stdout().inherit_stderr();
        }
        if grants.contains(&WasiGrant::Network) {
            wasi.inherit_network()
                .allow_ip_name_lookup(true)
                .allow_tcp(true)
                .allow_udp(true);
        } else {
            wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size((settings.memory_mb as usize) << 20)
            .build();
        let data = StoreData {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                inner: limits,
                denied: None,
            },
            services: settings.services.clone(),
            plugin_id: Arc::clone(&settings.plugin_id),
            call: CallState::default(),
            stopped: None,
            last_error: None,
        };
        let mut store = Store::new(&self.runtime.engine, data);
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            let data = ctx.data_mut();
            if data
                .call
                .cancel
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled)
            {
                data.stopped = Some(Stop::Cancelled);
                return Ok(UpdateDeadline::Interrupt);
            }
            if data.call.deadline.is_some_and(|d| Instant::now() >= d) {
                data.stopped = Some(Stop::Deadline);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store
    }

    /// An idle instance, or a new one; in either case `on_load` has run
    /// when this returns `Ok`. The call state is already set.
    fn checkout(&self, scope: &CallScope<'_>) -> Result<Live, HookFailure> {
        let pooled = if self.settings.fresh_instance_per_call {
            None
        } else {
            self.lock_pool().pop()
        };
        let mut live = match pooled {
            Some(mut live) => {
                live.store.data_mut().begin(scope);
                live.store.set_epoch_deadline(1);
                live
            }
            None => {
                let mut store = self.new_store();
                store.data_mut().begin(scope);
                store.set_epoch_deadline(1);
                match self.bound.instantiate(&mut store) {
                    Ok(guest) => Live {
                        store,
                        guest,
                        loaded: false,
                    },
                    Err(e) => return Err(classify(&mut store, &self.settings, e)),
                }
            }
        };
        if !live.loaded {
            let config = self.config_json.get().map_or("{}", String::as_str);
            let info = info(scope);
            match live.guest.on_load(&mut live.store, &info, config) {
                Ok(Ok(())) => live.loaded = true,
                Ok(Err(failure)) => {
                    return Err(HookFailure {
                        status: failure.status,
                        message: format!("on_load of a new instance failed: {}", failure.message),
                    })
                }
                Err(e) => return Err(classify(&mut live.store, &self.settings, e)),
            }
        }
        Ok(live)
    }

    fn checkin(&self, mut live: Live) {
        live.store.data_mut().end_call();
        if self.settings.fresh_instance_per_call {
            return;
        }
        let mut pool = self.lock_pool();
        if pool.len() < self.settings.max_idle {
            pool.push(live);
        }
    }

    /// Runs one hook in an instance: checks one out, calls `f`, returns the
    /// instance to the pool unless it trapped or hit a limit.
    fn call<R>(
        &self,
        scope: &CallScope<'_>,
        f: impl FnOnce(&dyn Guest, &mut Store<StoreData>, &Info<'_>) -> HookResult<R>,
    ) -> Result<R, HookFailure> {
        let _active = self.runtime.enter();
        let mut live = self.checkout(scope)?;
        let result = f(&*live.guest, &mut live.store, &info(scope));
        match result {
            Ok(outcome) => {
                self.checkin(live);
                outcome
            }
            Err(e) => Err(classify(&mut live.store, &self.settings, e)),
        }
    }
}

fn info<'a>(scope: &CallScope<'a>) -> Info<'a> {
    Info {
        session_id: scope.session_id,
        request_id: scope.request_id,
        task: scope.task,
        deadline_unix_ms: scope.deadline.map_or(0, unix_ms),
    }
}

fn unix_ms(deadline: Instant) -> u64 {
    let from_now = deadline.saturating_duration_since(Instant::now());
    (SystemTime::now() + from_now)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Turns a trap (or a stop by the epoch callback, or a denied memory
/// growth that ended in a trap) into the failure the host reports.
fn classify(store: &mut Store<StoreData>, settings: &Settings, error: wasmtime::Error) -> HookFailure {
    let data = store.data_mut();
    data.end_call();
    tracing::debug!(plugin = %settings.plugin_id, "wasm call failed: {error:?}");
    if let Some(stop) = data.stopped.take() {
        return match stop {
            Stop::Cancelled => HookFailure {
                status: HookStatus::Cancelled,
                message: "the caller cancelled the call; the plugin's code was stopped".into(),
            },
            Stop::Deadline => HookFailure {
                status: HookStatus::Limit(Limit::Deadline {
                    timeout_ms: settings.timeout_ms,
                }),
                message: String::new(),
            },
        };
    }
    if let Some(desired) = data.limiter.denied.take() {
        return HookFailure {
            status: HookStatus::Limit(Limit::Memory {
                memory_mb: settings.memory_mb,
            }),
            message: format!("it asked for {} MiB", desired.div_ceil(1 << 20)),
        };
    }
    let trap = error
        .downcast_ref::<wasmtime::Trap>()
        .map_or_else(|| format!("{error:#}"), |t| t.to_string());
    match data.last_error.take() {
        Some(last) if last.starts_with("panicked") => HookFailure {
            status: HookStatus::Panicked,
            message: last,
        },
        Some(last) => HookFailure {
            status: HookStatus::Trapped,
            message: format!("{trap} (its last error log: {last})"),
        },
        None => HookFailure {
            status: HookStatus::Trapped,
            message: trap,
        },
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, HookFailure> {
    std::str::from_utf8(bytes).map_err(|e| HookFailure {
        status: HookStatus::Failed,
        message: format!("the {what} is not UTF-8 ({e}); wasm plugins take text"),
    })
}

impl Instance for WasmPlugin {
    fn hooks(&self) -> BTreeSet<Hook> {
        self.hooks.get().cloned().unwrap_or_default()
    }

    fn on_load(&self, scope: &CallScope<'_>, config_json: &str) -> Result<(), HookFailure> {
        let _ = self.config_json.set(config_json.to_string());
        // Initialises the first instance (the one that answered `metadata`).
        self.call(scope, |_, _, _| Ok(Ok(())))
    }

    fn on_request(&self, scope: &CallScope<'_>, request_json: &[u8]) -> Result<FilterOutcome, HookFailure> {
        let request = utf8(request_json, "request")?;
        self.call(scope, |guest, store, info| guest.on_request(store, info, request))
    }

    fn invoke(&self, scope: &CallScope<'_>, input: &[u8]) -> Result<Output, HookFailure> {
        self.call(scope, |guest, store, info| guest.invoke(store, info, input))
            .map(owned)
    }

    fn on_response(
        &self,
        scope: &CallScope<'_>,
        request_json: &[u8],
        response_json: &[u8],
    ) -> Result<Option<Output>, HookFailure> {
        let request = utf8(request_json, "request")?;
        let response = utf8(response_json, "response")?;
        self.call(scope, |guest, store, info| {
            guest.on_response(store, info, request, response)
        })
        .map(|o| o.map(owned))
    }

    fn on_session_end(&self, scope: &CallScope<'_>, session_id: &str) -> Result<(), HookFailure> {
        if !self.hooks().contains(&Hook::OnSessionEnd) {
            return Ok(());
        }
        self.call(scope, |guest, store, info| {
            guest.on_session_end(store, info, session_id)
        })
    }

    /// Runs `on_unload` in every pooled instance and drops them all.
    fn on_unload(&self, scope: &CallScope<'_>) -> Result<(), HookFailure> {
        let _active = self.runtime.enter();
        let instances = std::mem::take(&mut *self.lock_pool());
        let mut first_error = None;
        for mut live in instances.into_iter().filter(|l| l.loaded) {
            live.store.data_mut().begin(scope);
            live.store.set_epoch_deadline(1);
            let result = match live.guest.on_unload(&mut live.store, &info(scope)) {
                Ok(result) => result,
                Err(e) => Err(classify(&mut live.store, &self.settings, e)),
            };
            if let Err(failure) = result {
                first_error.get_or_insert(failure);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
