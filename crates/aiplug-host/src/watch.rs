//! Hot reload: watches plugin directories and keeps the loaded plugins in
//! step with them (new directory → load, changed files → reload, removed
//! directory → unload), through [`Host::sync_dir`].
//!
//! Events are debounced: an editor's save or a `cp` of a large library
//! fires several events, and a library caught half-written would be
//! refused by the format stage anyway (the old version keeps serving and
//! the next event retries). `notify-debouncer-mini` (the notify project's
//! own debouncer) emits one event per path once the path has been quiet
//! for the window; the watcher then syncs the plugin directories that
//! changed.
//!
//! Only changes count: notify's inotify backend also reports files being
//! opened and closed after reading, and syncing reads every plugin's
//! files, so those events would make each sync schedule the next one, a
//! sync (and a hash of every artefact) per debounce window forever.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use notify_debouncer_mini::notify::event::{AccessKind, AccessMode};
use notify_debouncer_mini::notify::{
    self, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind,
};
use notify_debouncer_mini::{new_debouncer_opt, Config, DebounceEventResult, Debouncer};

use crate::lifecycle::SyncChange;
use crate::Host;

/// The default quiet period before a change is acted on.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The OS watcher refused (e.g. the inotify watch limit is reached, or
    /// the directory does not exist).
    #[error("cannot watch {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// The watcher thread could not start.
    #[error("cannot start the plugin watcher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running watcher; dropping it stops watching.
pub struct PluginWatcher {
    debouncer: Option<Debouncer<ChangesOnly>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginWatcher")
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        // Dropping the debouncer closes the channel; the thread then ends.
        drop(self.debouncer.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A watched directory: as given (what plugins were loaded from, so
/// manifest paths compare equal) and canonical (what events may report).
struct Root {
    given: PathBuf,
    canonical: PathBuf,
}

impl Root {
    fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.given) || path.starts_with(&self.canonical)
    }
}

/// Watches `dirs` (each a directory of plugin directories, as given to
/// [`Host::load_dir`]) and syncs the host with them after every change,
/// `debounce` after the last event. The watcher holds the host weakly: it
/// stops by itself when the host is dropped.
pub fn watch(host: &Arc<Host>, dirs: &[PathBuf], debounce: Duration) -> Result<PluginWatcher, WatchError> {
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let config = Config::default().with_timeout(debounce);
    let mut debouncer = new_debouncer_opt::<_, ChangesOnly>(config, tx).map_err(|e| WatchError::Watch {
        path: PathBuf::new(),
        message: e.to_string(),
    })?;
    let mut roots = Vec::new();
    for dir in dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| WatchError::Watch {
                path: dir.clone(),
                message: e.to_string(),
            })?;
        roots.push(Root {
            given: dir.clone(),
            canonical: dir.canonicalize().unwrap_or_else(|_| dir.clone()),
        });
    }
    let host = Arc::downgrade(host);
    let thread = std::thread::Builder::new()
        .name("aiplug-watch".into())
        .spawn(move || run(&host, &roots, &rx))?;
    Ok(PluginWatcher {
        debouncer: Some(debouncer),
        thread: Some(thread),
    })
}

/// The platform's watcher, passing on only events that may mean a change
/// (and errors): not a file being opened, read, or closed after reading.
struct ChangesOnly(RecommendedWatcher);

/// Whether `kind` may be a change to a file or directory.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true, // a write finished
        EventKind::Access(_) => false,
        _ => true,
    }
}

impl Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<ChangesOnly> {
        let changes_only = move |event: notify::Result<Event>| {
            let pass = match &event {
                Ok(event) => is_change(&event.kind),
                Err(_) => true, // the watcher's errors make it sync everything
            };
            if pass {
                handler.handle_event(event);
            }
        };
        RecommendedWatcher::new(changes_only, config).map(ChangesOnly)
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

fn run(host: &Weak<Host>, roots: &[Root], rx: &mpsc::Receiver<DebounceEventResult>) {
    while let Ok(result) = rx.recv() {
        let events = match result {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "plugin watcher error; syncing every directory");
                Vec::new()
            }
        };
        let Some(host) = host.upgrade() else {
            return;
        };
        for root in roots {
            let touched = events.is_empty() || events.iter().any(|e| root.contains(&e.path));
            if touched {
                for change in host.sync_dir(&root.given) {
                    log(&change);
                }
            }
        }
    }
}

fn log(change: &SyncChange) {
    match change {
        SyncChange::Loaded(info) => {
            tracing::info!(plugin = %info.id, version = %info.version, "hot reload: loaded")
        }
        SyncChange::Reloaded(info) => {
            tracing::info!(plugin = %info.id, version = %info.version, "hot reload: new version serving")
        }
        SyncChange::Unloaded { id, result: Ok(()) } => tracing::info!(plugin = %id, "hot reload: unloaded"),
        SyncChange::Unloaded { id, result: Err(e) } => {
            tracing::warn!(plugin = %id, error = %e, "hot reload: unloaded, not cleanly")
        }
        SyncChange::LoadRefused(e) => {
            tracing::warn!(error = %e, fix = %e.fix(), "hot reload: new plugin refused")
        }
        SyncChange::ReloadRefused { id, error } => {
            tracing::warn!(plugin = %id, %error, fix = %error.fix(), "hot reload: new version refused; the loaded one keeps serving")
        }
    }
}
