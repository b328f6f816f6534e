//! The registry: loaded plugins keyed by id, with the filter order and task
//! routes precomputed.
//!
//! Readers (every call) load an immutable snapshot through `arc-swap` and
//! take no lock; writers (load, unload) build a new snapshot and swap it in.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::limits::{Gate, Pass, Rate};
use crate::loader::Instance;
use crate::manifest::{Hook, Manifest, PluginKind};

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluginState {
    /// Going through the load stages.
    Loading,
    /// Loaded and taking calls.
    Active,
    /// Replaced or being unloaded: takes no new calls, finishing the ones
    /// in flight.
    Draining,
    /// Unloaded (its directory was removed, or it was unloaded on request).
    Unloaded,
    /// Refused at some load stage; see its diagnosis.
    Failed,
}

impl PluginState {
    const ALL: [PluginState; 5] = [
        PluginState::Loading,
        PluginState::Active,
        PluginState::Draining,
        PluginState::Unloaded,
        PluginState::Failed,
    ];
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginState::Loading => "loading",
            PluginState::Active => "active",
            PluginState::Draining => "draining",
            PluginState::Unloaded => "unloaded",
            PluginState::Failed => "failed",
        })
    }
}

/// A plugin that passed every load stage.
pub(crate) struct LoadedPlugin {
    pub(crate) manifest: Manifest,
    pub(crate) manifest_path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) hooks: BTreeSet<Hook>,
    pub(crate) tasks: Vec<String>,
    pub(crate) instance: Arc<dyn Instance>,
    /// SHA-256 over the manifest and the artefact as they were on disk
    /// before this version loaded: a reload of unchanged files is skipped.
    pub(crate) fingerprint: String,
    /// Active, then Draining once replaced or unloaded, then Unloaded.
    state: AtomicU8,
    /// `[limits] max_concurrency`: calls running at once. Also the count of
    /// calls in flight in this version, admitted or not (one counter, not
    /// two, on the call path).
    pub(crate) gate: Gate,
    /// `[limits] requests_per_second`.
    pub(crate) rate: Option<Rate>,
}

impl LoadedPlugin {
    pub(crate) fn new(
        manifest: Manifest,
        manifest_path: PathBuf,
        sha256: String,
        hooks: BTreeSet<Hook>,
        tasks: Vec<String>,
        instance: Arc<dyn Instance>,
    ) -> LoadedPlugin {
        let gate = Gate::new(manifest.limits.max_concurrency as usize);
        let rate = manifest.limits.requests_per_second.and_then(Rate::new);
        LoadedPlugin {
            gate,
            rate,
            manifest,
            manifest_path,
            sha256,
            hooks,
            tasks,
            instance,
            fingerprint: String::new(),
            state: AtomicU8::new(PluginState::Active as u8),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Counts a call that is not admitted under `[limits]` (a lifecycle
    /// hook, or any call with admission off) in flight; the pass marks it
    /// leaving.
    pub(crate) fn enter(&self) -> Pass<'_> {
        self.gate.enter_uncapped()
    }

    /// Calls running in this version now.
    pub(crate) fn in_flight(&self) -> usize {
        self.gate.in_use()
    }

    pub(crate) fn state(&self) -> PluginState {
        let raw = self.state.load(Ordering::Acquire);
        PluginState::ALL
            .into_iter()
            .find(|s| *s as u8 == raw)
            .unwrap_or(PluginState::Active)
    }

    pub(crate) fn set_state(&self, state: PluginState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub(crate) fn info(&self) -> PluginInfo {
        PluginInfo {
            id: self.manifest.id.clone(),
            version: self.manifest.version.to_string(),
            kind: self.manifest.kind,
            hooks: self.hooks.iter().copied().collect(),
            tasks: self.tasks.clone(),
            priority: self.manifest.priority,
            state: self.state(),
            manifest_path: self.manifest_path.clone(),
            sha256: Some(self.sha256.clone()),
            unloadable: self.manifest.unloadable,
            description: self.manifest.description.clone(),
            diagnosis: None,
            in_flight: self.in_flight(),
        }
    }
}

impl PluginInfo {
    /// The JSON form `aiplug plugins list --json` and the admin API share.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "version": self.version,
            "kind": self.kind.to_string(),
            "hooks": self.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
            "tasks": self.tasks,
            "priority": self.priority,
            "state": self.state.to_string(),
            "manifest": self.manifest_path,
            "sha256": self.sha256,
            "in_flight": self.in_flight,
            "diagnosis": self.diagnosis,
        })
    }
}

/// What `aiplug plugins list` shows about a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin id (for a plugin that failed before its manifest parsed: the
    /// directory name).
    pub id: String,
    /// Version, empty when unknown.
    pub version: String,
    /// Tier.
    pub kind: PluginKind,
    /// Hooks provided.
    pub hooks: Vec<Hook>,
    /// Tasks served.
    pub tasks: Vec<String>,
    /// Filter priority.
    pub priority: i32,
    /// Active or failed.
    pub state: PluginState,
    /// The manifest.
    pub manifest_path: PathBuf,
    /// SHA-256 of the loaded artefact.
    pub sha256: Option<String>,
    /// Whether the library may be closed at unload.
    pub unloadable: bool,
    /// The manifest's description.
    pub description: String,
    /// Why it failed to load, why its last reload was refused, or why its
    /// unload did not finish cleanly (stage or step, cause, fix).
    pub diagnosis: Option<String>,
    /// Calls running in this version now.
    pub in_flight: usize,
}

/// One immutable view of the loaded plugins.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) by_id: HashMap<String, Arc<LoadedPlugin>>,
    pub(crate) by_task: HashMap<String, Arc<LoadedPlugin>>,
    /// What `invoke` resolves: task names, overridden by plugin ids. One
    /// map so a call hashes its target once.
    routes: HashMap<String, Arc<LoadedPlugin>>,
    /// `on_request` filters, highest priority first, ties by id.
    pub(crate) request_filters: Vec<Arc<LoadedPlugin>>,
    /// `on_response` filters, same order.
    pub(crate) response_filters: Vec<Arc<LoadedPlugin>>,
}

impl Snapshot {
    fn build(plugins: impl IntoIterator<Item = Arc<LoadedPlugin>>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for plugin in plugins {
            for task in &plugin.tasks {
                snapshot.by_task.insert(task.clone(), Arc::clone(&plugin));
            }
            if plugin.hooks.contains(&Hook::OnRequest) {
                snapshot.request_filters.push(Arc::clone(&plugin));
            }
            if plugin.hooks.contains(&Hook::OnResponse) {
                snapshot.response_filters.push(Arc::clone(&plugin));
            }
            snapshot.by_id.insert(plugin.id().to_string(), plugin);
        }
        snapshot.routes = snapshot.by_task.clone();
        for (id, plugin) in &snapshot.by_id {
            snapshot.routes.insert(id.clone(), Arc::clone(plugin));
        }
        let order = |a: &Arc<LoadedPlugin>, b: &Arc<LoadedPlugin>| {
            b.manifest
                .priority
                .cmp(&a.manifest.priority)
                .then_with(|| a.id().cmp(b.id()))
        };
        snapshot.request_filters.sort_by(order);
        snapshot.response_filters.sort_by(order);
        snapshot
    }

    /// The plugin with this id, or else the one serving this task.
    pub(crate) fn resolve(&self, target: &str) -> Option<&Arc<LoadedPlugin>> {
        self.routes.get(target)
    }
}

/// The set of loaded plugins.
#[derive(Default)]
pub(crate) struct Registry {
    current: ArcSwap<Snapshot>,
    /// Serialises writers so check-then-insert is atomic.
    writer: Mutex<()>,
}

impl Registry {
    /// The current snapshot (lock-free).
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Runs `f` with the writer lock held, so the identity check made in `f`
    /// stays true until `f`'s result is inserted.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&self.current.load())
    }

    /// Adds a plugin. The caller has checked identity under [`Registry::write`].
    pub(crate) fn insert_locked(&self, plugin: Arc<LoadedPlugin>) {
        let old = self.current.load();
        let plugins = old.by_id.values().cloned().chain(std::iter::once(plugin));
        self.current.store(Arc::new(Snapshot::build(plugins)));
    }

    /// Puts `plugin` in place of the plugin with the same id (atomically:
    /// a call sees the old version or the new one) and returns the old one.
    /// The caller has checked identity under [`Registry::write`].
    pub(crate) fn replace_locked(&self, plugin: Arc<LoadedPlugin>) -> Option<Arc<LoadedPlugin>> {
        let old = self.current.load();
        let replaced = old.by_id.get(plugin.id()).cloned();
        let id = plugin.id().to_string();
        let others = old.by_id.values().filter(|p| p.id() != id).cloned();
        self.current
            .store(Arc::new(Snapshot::build(others.chain(std::iter::once(plugin)))));
        replaced
    }

    /// Removes the plugin with `id` and returns it.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load();
        let removed = old.by_id.get(id).cloned()?;
        let plugins = old.by_id.values().filter(|p| p.id() != id).cloned();
        self.current.store(Arc::new(Snapshot::build(plugins)));
        Some(removed)
    }
}
