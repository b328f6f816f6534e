//! A plugin's life in the host: load, reload (a new version swapped in
//! atomically, the old one drained), unload, and syncing a plugin directory
//! with what is on disk (what the file watcher calls). Also what
//! [`Host::plugins`] reports: every plugin's state, in-flight calls and
//! last diagnosis.
//!
//! Idempotent by content: each loaded version remembers a fingerprint of
//! its manifest and artefact as found on disk; loading or reloading files
//! with the same fingerprint does nothing, so `on_load` runs once per
//! version and `on_unload` once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::LoadError;
use crate::host::{CallOptions, Host, Shared};
use crate::loader::HostServices;
use crate::manifest::{self, Manifest, PluginKind};
use crate::pipeline::{self, LoadEnv};
use crate::registry::{LoadedPlugin, PluginInfo, PluginState};

/// Why an unload did not finish cleanly (the plugin is gone from the
/// registry either way).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnloadError {
    /// No plugin with that id is loaded.
    #[error("no loaded plugin has id {0:?}")]
    NotLoaded(String),
    /// In-flight calls did not finish within the grace period; the library
    /// is left mapped (it is closed when the last call returns).
    #[error("plugin {id:?} still had calls in flight after {grace:?}; on_unload was skipped and the library stays mapped until they finish")]
    DrainTimeout {
        /// The plugin.
        id: String,
        /// The grace period.
        grace: Duration,
    },
    /// `on_unload` failed or panicked.
    #[error("plugin {id:?}: on_unload failed: {message}")]
    OnUnload {
        /// The plugin.
        id: String,
        /// What it said.
        message: String,
    },
}

/// Why a reload did not happen, or did not finish cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// No plugin with that id is loaded.
    #[error("no loaded plugin has id {0:?}")]
    NotLoaded(String),
    /// The new version failed a load stage; the old one keeps serving.
    #[error("the new version was refused and the loaded one keeps serving: {0}")]
    Load(#[from] LoadError),
    /// The manifest on disk now names another plugin.
    #[error("{path} now declares plugin {found:?}, not {id:?}; the loaded version keeps serving")]
    IdChanged {
        /// The id reloaded.
        id: String,
        /// The id the manifest declares now.
        found: String,
        /// The manifest.
        path: PathBuf,
    },
    /// The new version serves, but the old one did not unload cleanly.
    #[error("the new version serves, but unloading the old one failed: {0}")]
    Unload(UnloadError),
    /// The plugin's manifest says it can never be unloaded (a Go runtime
    /// cannot be loaded twice into one process), so it cannot be replaced.
    #[error("plugin {0:?} cannot be unloaded (unloadable = false in its plugin.toml), so it cannot be reloaded; restart the host to run the new files")]
    NotUnloadable(String),
}

impl ReloadError {
    /// What the operator should do about it.
    pub fn fix(&self) -> String {
        match self {
            ReloadError::NotLoaded(_) => "load the plugin first (`aiplug plugins list` shows what is loaded)".into(),
            ReloadError::Load(e) => e.fix(),
            ReloadError::IdChanged { id, .. } => format!(
                "give the manifest back its id {id:?}, or remove the plugin directory (unloading {id:?}) and add the new plugin as a new directory"
            ),
            ReloadError::Unload(_) => {
                "the new version serves; see the plugin's diagnosis for what the old one left behind".into()
            }
            ReloadError::NotUnloadable(_) => "restart the host to run the new files".into(),
        }
    }
}

/// What [`Host::sync_dir`] did about one plugin directory.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncChange {
    /// A new plugin directory was loaded.
    Loaded(PluginInfo),
    /// Changed files were loaded as a new version, which now serves.
    Reloaded(PluginInfo),
    /// A plugin whose directory is gone was drained and unloaded.
    Unloaded {
        /// The plugin.
        id: String,
        /// Whether the unload finished cleanly.
        result: Result<(), UnloadError>,
    },
    /// A new plugin was refused at a load stage.
    LoadRefused(LoadError),
    /// Changed files were refused; the loaded version keeps serving.
    ReloadRefused {
        /// The plugin whose new files were refused.
        id: String,
        /// Why.
        error: ReloadError,
    },
}

/// A plugin that is not active: refused at load, or unloaded.
struct Inactive {
    info: PluginInfo,
    /// The files' fingerprint when they were refused: unchanged files are
    /// not tried again by [`Host::sync_dir`].
    fingerprint: Option<String>,
}

/// What the host knows about plugins besides the registry.
#[derive(Default)]
pub(crate) struct Lifecycle {
    /// Refused or unloaded plugins, by manifest path.
    inactive: Mutex<BTreeMap<PathBuf, Inactive>>,
    /// Diagnoses of active plugins, by id: why the last reload was refused,
    /// or why the previous version did not unload cleanly.
    diagnoses: Mutex<HashMap<String, String>>,
    /// Versions replaced or being unloaded that may still drain.
    draining: Mutex<Vec<Weak<LoadedPlugin>>>,
    /// Manifest paths going through the load stages now.
    loading: Mutex<BTreeSet<PathBuf>>,
    /// Active plugins whose files on disk were refused as a new version,
    /// by manifest path: the refused files' fingerprint, so
    /// [`Host::sync_dir`] does not try the same broken files again on every
    /// file event (an explicit [`Host::reload`] still does).
    refused: Mutex<HashMap<PathBuf, Option<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a map update that cannot be left
    // half-done by a panic elsewhere: recover from poisoning.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks a manifest path as loading for as long as it lives.
struct Loading<'a> {
    lifecycle: &'a Lifecycle,
    path: PathBuf,
}

impl<'a> Loading<'a> {
    fn start(lifecycle: &'a Lifecycle, path: &Path) -> Loading<'a> {
        lock(&lifecycle.loading).insert(path.to_path_buf());
        Loading {
            lifecycle,
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        lock(&self.lifecycle.loading).remove(&self.path);
    }
}

/// SHA-256 over the manifest's bytes and its artefact's bytes; `None` when
/// either cannot be read (the load stages then say why).
pub(crate) fn fingerprint(manifest_path: &Path) -> Option<String> {
    let text = std::fs::read(manifest_path).ok()?;
    let manifest = Manifest::parse(std::str::from_utf8(&text).ok()?, manifest_path).ok()?;
    let artefact = std::fs::read(manifest.entry_path(manifest_path)).ok()?;
    // The signature counts too: a plugin refused as unsigned must load once
    // its signature lands, though manifest and artefact did not change.
    let signature =
        std::fs::read(manifest_path.with_file_name(crate::trust::SIGNATURE_FILE)).unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in [&text, &artefact] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(&signature);
    Some(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Host {
    /// Loads the plugin at `path` (a directory or its `plugin.toml`) through
    /// every stage and registers it. Loading the same files again while
    /// they are active does nothing and returns the active version. A
    /// failure is kept for [`Host::plugins`] and returned; the host keeps
    /// running.
    pub fn load(&self, path: &Path) -> Result<PluginInfo, LoadError> {
        let shared = &self.shared;
        let manifest_path = manifest::manifest_path(path);
        let fingerprint = fingerprint(&manifest_path);
        if let Some(active) = shared.active_at(&manifest_path) {
            if fingerprint.as_deref() == Some(active.fingerprint.as_str()) {
                return Ok(active.info());
            }
        }
        let _loading = Loading::start(&shared.lifecycle, &manifest_path);
        let result: Result<Arc<LoadedPlugin>, LoadError> = shared.registry.write(|snapshot| {
            let env = LoadEnv {
                registry: snapshot,
                other_ids: &HashMap::new(),
                services: Arc::clone(shared) as Arc<dyn HostServices>,
                init_timeout: shared.init_timeout,
                trust: &shared.trust,
                replacing: None,
            };
            let mut plugin = pipeline::load(path, &env, &mut |stage, detail| {
                tracing::debug!(path = %path.display(), %stage, %detail, "load stage passed");
            })?;
            plugin.fingerprint = fingerprint.clone().unwrap_or_default();
            let plugin = Arc::new(plugin);
            shared.registry.insert_locked(Arc::clone(&plugin));
            Ok(plugin)
        });
        let mut inactive = lock(&shared.lifecycle.inactive);
        match result {
            Ok(plugin) => {
                inactive.remove(&plugin.manifest_path);
                tracing::info!(plugin = plugin.id(), version = %plugin.manifest.version, "plugin loaded");
                Ok(plugin.info())
            }
            Err(error) => {
                tracing::debug!(%error, fix = %error.fix(), "plugin refused");
                // Loading an active plugin again is refused, but the plugin
                // itself is fine: do not list it as failed.
                if shared.active_at(&error.manifest_path).is_none() {
                    inactive.insert(
                        error.manifest_path.clone(),
                        Inactive {
                            info: failed_info(&error),
                            fingerprint,
                        },
                    );
                }
                Err(error)
            }
        }
    }

    /// Loads every plugin directory under `dir` (each subdirectory with a
    /// `plugin.toml`, or `dir` itself when it has one), in name order.
    pub fn load_dir(&self, dir: &Path) -> Vec<Result<PluginInfo, LoadError>> {
        plugin_dirs(dir).iter().map(|p| self.load(p)).collect()
    }

    /// Every plugin the host knows, by id: active ones, versions still
    /// draining, those loading, refused or unloaded, each with its state,
    /// calls in flight and last diagnosis.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let lifecycle = &self.shared.lifecycle;
        let snapshot = self.shared.registry.snapshot();
        let diagnoses = lock(&lifecycle.diagnoses);
        let mut all: Vec<PluginInfo> = snapshot
            .by_id
            .values()
            .map(|p| PluginInfo {
                diagnosis: diagnoses.get(p.id()).cloned(),
                ..p.info()
            })
            .collect();
        drop(diagnoses);
        let mut draining = lock(&lifecycle.draining);
        draining.retain(|weak| weak.strong_count() > 0);
        all.extend(draining.iter().filter_map(Weak::upgrade).map(|p| p.info()));
        drop(draining);
        let active: BTreeSet<&PathBuf> = snapshot.by_id.values().map(|p| &p.manifest_path).collect();
        for path in lock(&lifecycle.loading).iter() {
            all.push(PluginInfo {
                id: path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                state: PluginState::Loading,
                manifest_path: path.clone(),
                ..blank_info()
            });
        }
        all.extend(
            lock(&lifecycle.inactive)
                .iter()
                .filter(|(path, _)| !active.contains(path))
                .map(|(_, record)| record.info.clone()),
        );
        all.sort_by(|a, b| a.id.cmp(&b.id).then(a.manifest_path.cmp(&b.manifest_path)));
        all
    }

    /// Loads the plugin `id` again from its manifest and swaps the new
    /// version in atomically: calls already running finish on the old
    /// version, new calls reach the new one. The old version is then
    /// drained, gets `on_unload` and is closed. When the new version fails
    /// any load stage the old one keeps serving and the diagnosis is kept
    /// in [`Host::plugins`] until a reload succeeds.
    pub fn reload(&self, id: &str) -> Result<PluginInfo, ReloadError> {
        let shared = &self.shared;
        let current = shared.registry.snapshot().by_id.get(id).cloned();
        let Some(current) = current else {
            return Err(ReloadError::NotLoaded(id.to_string()));
        };
        let path = current.manifest_path.clone();
        let fingerprint = fingerprint(&path);
        if fingerprint.as_deref() == Some(current.fingerprint.as_str()) {
            // The same files: nothing to do, on_load runs once per version.
            return Ok(current.info());
        }
        if !current.manifest.unloadable {
            let error = ReloadError::NotUnloadable(id.to_string());
            lock(&shared.lifecycle.diagnoses).insert(id.to_string(), error.to_string());
            lock(&shared.lifecycle.refused).insert(path, fingerprint);
            return Err(error);
        }
        drop(current);
        let _loading = Loading::start(&shared.lifecycle, &path);
        let result = shared.registry.write(|snapshot| {
            let env = LoadEnv {
                registry: snapshot,
                other_ids: &HashMap::new(),
                services: Arc::clone(shared) as Arc<dyn HostServices>,
                init_timeout: shared.init_timeout,
                trust: &shared.trust,
                replacing: Some(id),
            };
            let mut plugin = pipeline::load(&path, &env, &mut |stage, detail| {
                tracing::debug!(plugin = id, %stage, %detail, "reload stage passed");
            })?;
            if plugin.id() != id {
                let found = plugin.id().to_string();
                let _ = shared.retire(Arc::new(plugin));
                return Err(ReloadError::IdChanged {
                    id: id.to_string(),
                    found,
                    path: path.clone(),
                });
            }
            plugin.fingerprint = fingerprint.clone().unwrap_or_default();
            let plugin = Arc::new(plugin);
            let old = shared.registry.replace_locked(Arc::clone(&plugin));
            Ok((plugin, old))
        });
        let (plugin, old) = match result {
            Ok(swapped) => {
                lock(&shared.lifecycle.diagnoses).remove(id);
                lock(&shared.lifecycle.refused).remove(&path);
                swapped
            }
            Err(error) => {
                let diagnosis = match &error {
                    ReloadError::Load(e) => format!("{} stage: {}; fix: {}", e.stage(), e.kind(), e.fix()),
                    other => other.to_string(),
                };
                tracing::warn!(plugin = id, %diagnosis, "reload refused; the loaded version keeps serving");
                lock(&shared.lifecycle.diagnoses).insert(id.to_string(), diagnosis);
                lock(&shared.lifecycle.refused).insert(path.clone(), fingerprint);
                if let Some(observer) = &shared.observer {
                    observer.reload(id, false);
                }
                return Err(error);
            }
        };
        if let Some(observer) = &shared.observer {
            observer.reload(id, true);
        }
        tracing::info!(plugin = id, version = %plugin.manifest.version, "plugin reloaded");
        if let Some(old) = old {
            if let Err(e) = shared.retire(old) {
                let diagnosis = format!("the previous version did not unload cleanly: {e}");
                lock(&shared.lifecycle.diagnoses).insert(id.to_string(), diagnosis);
                return Err(ReloadError::Unload(e));
            }
        }
        Ok(plugin.info())
    }

    /// Unloads the plugin `id`: removes it from the registry (new calls no
    /// longer reach it), waits up to the grace period for in-flight calls,
    /// calls `on_unload`, and closes the library (unless the manifest says
    /// it cannot be unloaded). The plugin stays listed as unloaded, with a
    /// diagnosis when the unload did not finish cleanly.
    pub fn unload(&self, id: &str) -> Result<(), UnloadError> {
        let shared = &self.shared;
        let plugin = shared
            .registry
            .remove(id)
            .ok_or_else(|| UnloadError::NotLoaded(id.to_string()))?;
        let mut info = plugin.info();
        lock(&shared.lifecycle.diagnoses).remove(id);
        lock(&shared.lifecycle.refused).remove(&plugin.manifest_path);
        let result = shared.retire(plugin);
        info.state = PluginState::Unloaded;
        info.in_flight = 0;
        info.diagnosis = result.as_ref().err().map(ToString::to_string);
        lock(&shared.lifecycle.inactive).insert(
            info.manifest_path.clone(),
            Inactive {
                info,
                fingerprint: None,
            },
        );
        result
    }

    /// Makes the loaded plugins match the plugin directories under `root`:
    /// loads new ones, reloads changed ones (manifest or artefact), unloads
    /// those whose directory is gone. Unchanged files (active, or refused
    /// before as a new plugin or as a new version) are left alone, so
    /// calling this after every file event is cheap and idempotent. Paths
    /// are compared as given: pass `root` as the plugins were loaded from it.
    pub fn sync_dir(&self, root: &Path) -> Vec<SyncChange> {
        let shared = &self.shared;
        let present: BTreeSet<PathBuf> = plugin_dirs(root)
            .iter()
            .map(|dir| manifest::manifest_path(dir))
            .collect();
        let mut changes = Vec::new();
        let gone: Vec<String> = shared
            .registry
            .snapshot()
            .by_id
            .values()
            .filter(|p| p.manifest_path.starts_with(root) && !present.contains(&p.manifest_path))
            .map(|p| p.id().to_string())
            .collect();
        for id in gone {
            tracing::info!(plugin = %id, "plugin directory removed: unloading");
            let result = self.unload(&id);
            changes.push(SyncChange::Unloaded { id, result });
        }
        lock(&shared.lifecycle.inactive).retain(|path, record| {
            !path.starts_with(root) || present.contains(path) || record.info.state == PluginState::Unloaded
        });
        for path in present {
            let fingerprint = fingerprint(&path);
            if let Some(active) = shared.active_at(&path) {
                if fingerprint.as_deref() == Some(active.fingerprint.as_str()) {
                    continue;
                }
                if lock(&shared.lifecycle.refused).get(&path) == Some(&fingerprint) {
                    continue; // the same files were refused before
                }
                let id = active.id().to_string();
                drop(active);
                changes.push(match self.reload(&id) {
                    Ok(info) => SyncChange::Reloaded(info),
                    Err(error) => SyncChange::ReloadRefused { id, error },
                });
                continue;
            }
            let refused_before = lock(&shared.lifecycle.inactive)
                .get(&path)
                .is_some_and(|r| r.info.state == PluginState::Failed && r.fingerprint == fingerprint);
            if refused_before {
                continue;
            }
            changes.push(match self.load(&path) {
                Ok(info) => SyncChange::Loaded(info),
                Err(e) => SyncChange::LoadRefused(e),
            });
        }
        changes
    }
}

impl Shared {
    /// The active plugin loaded from `manifest_path`, if any.
    pub(crate) fn active_at(&self, manifest_path: &Path) -> Option<Arc<LoadedPlugin>> {
        self.registry
            .snapshot()
            .by_id
            .values()
            .find(|p| p.manifest_path == manifest_path)
            .cloned()
    }

    /// Drains, calls `on_unload` and drops a plugin already out of the
    /// registry. While it drains it is listed as draining.
    pub(crate) fn retire(&self, plugin: Arc<LoadedPlugin>) -> Result<(), UnloadError> {
        let id = plugin.id().to_string();
        plugin.set_state(PluginState::Draining);
        lock(&self.lifecycle.draining).push(Arc::downgrade(&plugin));
        // Every in-flight call holds a clone of the Arc (directly or through
        // the snapshot it read); wait for them.
        let drain_until = Instant::now() + self.unload_grace;
        while Arc::strong_count(&plugin) > 1 {
            if Instant::now() >= drain_until {
                return Err(UnloadError::DrainTimeout {
                    id,
                    grace: self.unload_grace,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let options = CallOptions::new().timeout(self.unload_grace);
        let result = self.with_scope(&plugin, "on_unload", "", &options, |scope| {
            let _in_flight = plugin.enter();
            plugin.instance.on_unload(scope)
        });
        plugin.set_state(PluginState::Unloaded);
        drop(plugin);
        tracing::info!(plugin = %id, "plugin unloaded");
        result.map_err(|f| UnloadError::OnUnload {
            id,
            message: f.message,
        })
    }
}

fn blank_info() -> PluginInfo {
    PluginInfo {
        id: String::new(),
        version: String::new(),
        kind: PluginKind::Native,
        hooks: Vec::new(),
        tasks: Vec::new(),
        priority: 0,
        state: PluginState::Failed,
        manifest_path: PathBuf::new(),
        sha256: None,
        unloadable: true,
        description: String::new(),
        diagnosis: None,
        in_flight: 0,
    }
}

/// The plugin directories under `dir`: `dir` itself when it has a
/// manifest, else each direct subdirectory that has one, sorted.
pub fn plugin_dirs(dir: &Path) -> Vec<PathBuf> {
    if dir.join(crate::manifest::MANIFEST_FILE).is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join(crate::manifest::MANIFEST_FILE).is_file())
        .collect();
    dirs.sort();
    dirs
}

fn failed_info(error: &LoadError) -> PluginInfo {
    let manifest = Manifest::from_path(&error.manifest_path).ok().map(|(m, _)| m);
    PluginInfo {
        id: error.label.clone(),
        version: manifest
            .as_ref()
            .map(|m| m.version.to_string())
            .unwrap_or_default(),
        kind: manifest.as_ref().map_or(PluginKind::Native, |m| m.kind),
        hooks: manifest
            .as_ref()
            .and_then(|m| m.hooks.clone())
            .unwrap_or_default(),
        tasks: manifest
            .as_ref()
            .and_then(|m| m.tasks.clone())
            .unwrap_or_default(),
        priority: manifest.as_ref().map_or(0, |m| m.priority),
        state: PluginState::Failed,
        manifest_path: error.manifest_path.clone(),
        sha256: None,
        unloadable: manifest.as_ref().is_none_or(|m| m.unloadable),
        description: manifest.map(|m| m.description).unwrap_or_default(),
        diagnosis: Some(format!(
            "{} stage: {}; fix: {}",
            error.stage(),
            error.kind(),
            error.fix()
        )),
        in_flight: 0,
    }
}
