//! The staged load pipeline: manifest → integrity → format → symbols → ABI →
//! identity → init. The host's loader and `aiplug doctor` run the same code;
//! the doctor only watches each stage pass through an observer.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::error::{IdentityError, InitError, LoadError, LoadErrorKind, Stage};
use crate::loader::{CallScope, HookStatus, HostServices, Instance};
use crate::manifest::{Manifest, PluginKind};
use crate::registry::{LoadedPlugin, Snapshot};
use crate::trust::{TrustPolicy, Verified};

/// What the pipeline needs from its surroundings.
pub(crate) struct LoadEnv<'a> {
    /// The registry as it stands (checked for duplicate ids and tasks).
    pub(crate) registry: &'a Snapshot,
    /// Ids claimed by other manifests not loaded here (the doctor's view of
    /// the plugin directories), id → manifest path.
    pub(crate) other_ids: &'a HashMap<String, PathBuf>,
    /// Host services handed to `on_load`.
    pub(crate) services: Arc<dyn HostServices>,
    /// How long `on_load` may take.
    pub(crate) init_timeout: Duration,
    /// Whose plugins load (the integrity stage's signature check).
    pub(crate) trust: &'a TrustPolicy,
    /// The id of the plugin this load replaces (a reload): its id and tasks
    /// are not duplicates.
    pub(crate) replacing: Option<&'a str>,
}

/// Told about each stage that passed, with a one-line detail.
pub(crate) type Observer<'a> = &'a mut dyn FnMut(Stage, String);

/// Runs every stage on the plugin at `path` (a directory or its
/// `plugin.toml`). On success the plugin is initialised but not registered.
pub(crate) fn load(path: &Path, env: &LoadEnv<'_>, observe: Observer<'_>) -> Result<LoadedPlugin, LoadError> {
    let mut label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    if label == crate::manifest::MANIFEST_FILE {
        if let Some(dir) = path.parent().and_then(|p| p.file_name()) {
            label = dir.to_string_lossy().into_owned();
        }
    }
    let mut manifest_path = crate::manifest::manifest_path(path);
    let fail =
        |label: &str, manifest_path: &Path, kind: LoadErrorKind| LoadError::new(label, manifest_path, kind);

    // manifest: its bytes are read once, parsed, and (at the integrity
    // stage) verified, so what is checked is what is loaded.
    let (manifest, manifest_bytes) = match Manifest::read(path) {
        Ok((manifest, resolved, bytes)) => {
            manifest_path = resolved;
            (manifest, bytes)
        }
        Err(e) => return Err(fail(&label, &manifest_path, e.into())),
    };
    let label = manifest.id.clone();
    let fail = |kind: LoadErrorKind| fail(&label, &manifest_path, kind);
    observe(
        Stage::Manifest,
        format!(
            "{} {} ({}), entry {}",
            manifest.id,
            manifest.version,
            manifest.kind,
            manifest.entry.display()
        ),
    );

    // integrity
    let Verified {
        entry,
        bytes,
        sha256,
        detail,
    } = crate::trust::integrity(env.trust, &manifest, &manifest_path, &manifest_bytes)
        .map_err(|e| fail(e.into()))?;
    observe(Stage::Integrity, detail);

    // format, symbols, ABI: per tier
    let (instance, library_meta) = match manifest.kind {
        PluginKind::Native => native_stages(&manifest, &entry, &bytes, observe).map_err(fail)?,
        PluginKind::Wasm => wasm_stages(&manifest, &entry, &bytes, env, observe).map_err(fail)?,
    };

    // identity
    let hooks = instance.hooks();
    identity(&manifest, &manifest_path, &library_meta, env).map_err(|e| fail(e.into()))?;
    observe(
        Stage::Identity,
        if library_meta.tasks.is_empty() {
            format!("id {:?} is free", manifest.id)
        } else {
            format!(
                "id {:?} is free; tasks {}",
                manifest.id,
                library_meta.tasks.join(", ")
            )
        },
    );

    // init
    init(&manifest, Arc::clone(&instance), env).map_err(|e| fail(e.into()))?;
    observe(Stage::Init, "on_load returned ok".to_string());

    Ok(LoadedPlugin::new(
        manifest,
        manifest_path,
        sha256,
        hooks,
        library_meta.tasks,
        instance,
    ))
}

/// What the artefact says about itself.
pub(crate) struct LibraryMeta {
    id: String,
    version: String,
    tasks: Vec<String>,
}

#[cfg(feature = "native")]
fn native_stages(
    manifest: &Manifest,
    entry: &Path,
    bytes: &[u8],
    observe: Observer<'_>,
) -> Result<(Arc<dyn Instance>, LibraryMeta), LoadErrorKind> {
    use crate::error::AbiError;
    use crate::loader::native::{NativeLibrary, NativePlugin, OpenError};

    crate::loader::format::check_shared_library(entry, bytes)?;
    observe(
        Stage::Format,
        format!(
            "shared library for {} on {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
    );

    let (library, meta) = match NativeLibrary::open(entry, bytes, manifest.unloadable) {
        Ok(opened) => opened,
        Err(OpenError::Symbols(e)) => return Err(e.into()),
        Err(OpenError::Abi(e)) => {
            observe(
                Stage::Symbols,
                "entry symbol aiplug_plugin_entry found".to_string(),
            );
            return Err(e.into());
        }
    };
    observe(
        Stage::Symbols,
        "entry symbol aiplug_plugin_entry found".to_string(),
    );

    let instance: Arc<dyn Instance> = Arc::new(NativePlugin::new(library));
    let provided = instance.hooks();
    if let Some(declared) = &manifest.hooks {
        if let Some(missing) = declared.iter().find(|h| !provided.contains(h)) {
            return Err(AbiError::MissingHook { hook: missing.name() }.into());
        }
    }
    observe(
        Stage::Abi,
        format!(
            "ABI {}.x; hooks: {}",
            aiplug_abi::AIPLUG_ABI_MAJOR,
            hook_names(&provided)
        ),
    );
    Ok((
        instance,
        LibraryMeta {
            id: meta.id,
            version: meta.version,
            tasks: meta.tasks,
        },
    ))
}

#[cfg(not(feature = "native"))]
fn native_stages(
    _: &Manifest,
    _: &Path,
    _: &[u8],
    _: Observer<'_>,
) -> Result<(Arc<dyn Instance>, LibraryMeta), LoadErrorKind> {
    Err(crate::error::FormatError::Unsupported {
        kind: PluginKind::Native,
        feature: "native",
    }
    .into())
}

/// Format, symbols and ABI stages of a wasm component: a valid component
/// (not a core module, not truncated), compiled once; it exports
/// `aiplug:plugin/guest` of a supported world version and its imports are
/// satisfiable; its exports have that version's types and its metadata
/// (read from a first instance) lists the manifest's hooks.
#[cfg(feature = "wasm")]
fn wasm_stages(
    manifest: &Manifest,
    entry: &Path,
    bytes: &[u8],
    env: &LoadEnv<'_>,
    observe: Observer<'_>,
) -> Result<(Arc<dyn Instance>, LibraryMeta), LoadErrorKind> {
    use crate::error::AbiError;
    use crate::loader::wasm::{self, LinkError};

    let started = std::time::Instant::now();
    let component = wasm::compile(entry, bytes)?;
    observe(
        Stage::Format,
        format!(
            "WebAssembly component, {} KiB, compiled in {} ms",
            bytes.len().div_ceil(1024),
            started.elapsed().as_millis()
        ),
    );

    let linked = match wasm::link(entry, &component) {
        Ok(linked) => linked,
        Err(LinkError::Symbols(e)) => return Err(e.into()),
        Err(LinkError::Abi(e)) => {
            observe(Stage::Symbols, format!("exports {}", wasm::GUEST_INTERFACE));
            return Err(e.into());
        }
    };
    observe(
        Stage::Symbols,
        format!(
            "exports {}@{}; {} imports satisfied",
            wasm::GUEST_INTERFACE,
            linked.version,
            linked.imports
        ),
    );

    let version = linked.version;
    let (plugin, meta) = wasm::bind(linked, manifest, &env.services, env.init_timeout)?;
    if let Some(declared) = &manifest.hooks {
        if let Some(missing) = declared.iter().find(|h| !meta.hooks.contains(h)) {
            return Err(AbiError::MissingHook { hook: missing.name() }.into());
        }
    }
    observe(
        Stage::Abi,
        format!(
            "world aiplug:plugin@{version}; hooks: {}",
            hook_names(&meta.hooks)
        ),
    );
    Ok((
        Arc::new(plugin),
        LibraryMeta {
            id: meta.id,
            version: meta.version,
            tasks: meta.tasks,
        },
    ))
}

#[cfg(not(feature = "wasm"))]
fn wasm_stages(
    _: &Manifest,
    _: &Path,
    _: &[u8],
    _: &LoadEnv<'_>,
    _: Observer<'_>,
) -> Result<(Arc<dyn Instance>, LibraryMeta), LoadErrorKind> {
    Err(crate::error::FormatError::Unsupported {
        kind: PluginKind::Wasm,
        feature: "wasm",
    }
    .into())
}

/// Comma-separated hook names, or "none".
pub(crate) fn hook_names(hooks: &BTreeSet<crate::manifest::Hook>) -> String {
    if hooks.is_empty() {
        return "none".to_string();
    }
    hooks.iter().map(|h| h.name()).collect::<Vec<_>>().join(", ")
}

fn identity(
    manifest: &Manifest,
    manifest_path: &Path,
    library: &LibraryMeta,
    env: &LoadEnv<'_>,
) -> Result<(), IdentityError> {
    let mismatch = |field, manifest: String, library: String| IdentityError::MetadataMismatch {
        field,
        manifest,
        library,
    };
    if library.id != manifest.id {
        return Err(mismatch("id", manifest.id.clone(), library.id.clone()));
    }
    if library.version != manifest.version.to_string() {
        return Err(mismatch(
            "version",
            manifest.version.to_string(),
            library.version.clone(),
        ));
    }
    if let Some(declared) = &manifest.tasks {
        let (mut a, mut b) = (declared.clone(), library.tasks.clone());
        a.sort();
        b.sort();
        if a != b {
            return Err(mismatch("tasks", declared.join(", "), library.tasks.join(", ")));
        }
    }
    if let Some(existing) = env
        .registry
        .by_id
        .get(&manifest.id)
        .filter(|p| Some(p.id()) != env.replacing)
    {
        return Err(IdentityError::DuplicateId {
            id: manifest.id.clone(),
            existing: existing.manifest_path.clone(),
        });
    }
    if let Some(existing) = env.other_ids.get(&manifest.id) {
        if !same_file(existing, manifest_path) {
            return Err(IdentityError::DuplicateId {
                id: manifest.id.clone(),
                existing: existing.clone(),
            });
        }
    }
    for task in &library.tasks {
        if let Some(owner) = env
            .registry
            .resolve(task)
            .filter(|p| Some(p.id()) != env.replacing)
        {
            return Err(IdentityError::DuplicateTask {
                task: task.clone(),
                owner: owner.id().to_string(),
            });
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Runs `on_load` on its own thread so a plugin that never returns cannot
/// hang the host: after `init_timeout` the load fails and the thread is left
/// behind (its library stays mapped while its code runs).
fn init(manifest: &Manifest, instance: Arc<dyn Instance>, env: &LoadEnv<'_>) -> Result<(), InitError> {
    let (done_tx, done_rx) = mpsc::channel();
    let services = Arc::clone(&env.services);
    let plugin_id = manifest.id.clone();
    let config = manifest.config_json();
    let cancel = CancellationToken::new();
    let thread_cancel = cancel.clone();
    let deadline = std::time::Instant::now() + env.init_timeout;
    let spawned = std::thread::Builder::new()
        .name(format!("aiplug-init-{plugin_id}"))
        .spawn(move || {
            let scope = CallScope {
                services: services.as_ref(),
                plugin_id: &plugin_id,
                session_id: "",
                request_id: "on_load",
                task: "",
                cancel: &thread_cancel,
                deadline: Some(deadline),
                depth: 0,
                stats: None,
            };
            let result = instance.on_load(&scope, &config);
            if done_tx.send(result.clone()).is_err() && result.is_ok() {
                // The host gave up waiting: undo the late initialisation.
                let _ = instance.on_unload(&scope);
            }
        });
    let thread = match spawned {
        Ok(thread) => thread,
        Err(e) => {
            return Err(InitError::Failed {
                message: format!("cannot start the init thread: {e}"),
            })
        }
    };
    let outcome = done_rx.recv_timeout(env.init_timeout);
    if outcome.is_ok() {
        // It has answered; wait for it to drop its handle on the plugin so
        // an unload right after really closes the library.
        let _ = thread.join();
    }
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(match failure.status {
            HookStatus::Panicked => InitError::Panicked {
                message: failure.message,
            },
            _ => InitError::Failed {
                message: if failure.message.is_empty() {
                    "no message".to_string()
                } else {
                    failure.message
                },
            },
        }),
        Err(_) => {
            cancel.cancel();
            Err(InitError::TimedOut {
                after: env.init_timeout,
            })
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_is_the_known_value() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
