//! Typed errors: one per load stage, and the errors of a call.
//!
//! A caller tells failures apart by matching on [`LoadErrorKind`] or
//! [`CallError`], never by reading message text. Every load error knows its
//! [`Stage`] and how to fix it ([`LoadError::fix`]), which is what
//! `aiplug doctor` prints.

use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::ManifestError;

/// The stages every plugin load runs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// `plugin.toml` parses, required fields, semver, sane limits.
    Manifest,
    /// The artefact's SHA-256 matches the manifest's pin.
    Integrity,
    /// The artefact is a shared object (or wasm component) for this OS and
    /// architecture.
    Format,
    /// The entry symbol is exported and the declared hooks exist.
    Symbols,
    /// The ABI major matches and the vtable covers the required entries.
    Abi,
    /// The id (and tasks) are not taken by another plugin; metadata agrees
    /// with the manifest.
    Identity,
    /// `on_load` returns ok within its deadline, without panicking.
    Init,
}

impl Stage {
    /// All stages in the order they run.
    pub const ALL: [Stage; 7] = [
        Stage::Manifest,
        Stage::Integrity,
        Stage::Format,
        Stage::Symbols,
        Stage::Abi,
        Stage::Identity,
        Stage::Init,
    ];

    /// The stage's name as printed in diagnoses.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Manifest => "manifest",
            Stage::Integrity => "integrity",
            Stage::Format => "format",
            Stage::Symbols => "symbols",
            Stage::Abi => "abi",
            Stage::Identity => "identity",
            Stage::Init => "init",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Integrity stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The artefact could not be read.
    #[error("cannot read the artefact {}: {source}", path.display())]
    Read {
        /// The artefact path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The artefact's SHA-256 is not the pinned one.
    #[error("sha256 of {} is {actual}, but the manifest pins {expected}", path.display())]
    Sha256Mismatch {
        /// The artefact path.
        path: PathBuf,
        /// The manifest's value.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// Signatures are required and the plugin has none.
    #[error("the plugin is not signed: {} is missing", signature.display())]
    Unsigned {
        /// Where the signature should be.
        signature: PathBuf,
    },
    /// The signature file is there but unusable (truncated, garbage).
    #[error("the signature file {} is unusable: {reason}", signature.display())]
    SignatureUnreadable {
        /// The signature file.
        signature: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The trust store cannot be read.
    #[error("the trust store {} cannot be used: {reason}", dir.display())]
    TrustStore {
        /// The trust store directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// Signed by a key the trust store does not hold.
    #[error("signed by key {key_id}, which is not in the trust store {}", keys_dir.display())]
    UntrustedKey {
        /// The signer's key id.
        key_id: String,
        /// The trust store directory.
        keys_dir: PathBuf,
    },
    /// The signature does not verify: the manifest changed after signing,
    /// or the signature was not made by that key.
    #[error("the signature by key {key_id} does not match {}: the manifest was changed after it was signed", manifest.display())]
    BadSignature {
        /// The manifest.
        manifest: PathBuf,
        /// The key id the signature names.
        key_id: String,
    },
    /// A signed manifest that does not pin its artefact vouches for nothing.
    #[error("{} is signed but pins no sha256 of its artefact, so the signature does not cover the code", manifest.display())]
    NotPinned {
        /// The manifest.
        manifest: PathBuf,
    },
}

/// Format stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not an object file at all (text, truncated, garbage).
    #[error("{} is not a shared library: {reason}", path.display())]
    NotAnObject {
        /// The artefact path.
        path: PathBuf,
        /// What the object-file reader said.
        reason: String,
    },
    /// An object file, but not a shared library (an executable, a `.o`).
    #[error("{} is a {found}, not a shared library", path.display())]
    NotShared {
        /// The artefact path.
        path: PathBuf,
        /// The kind found.
        found: String,
    },
    /// A shared library for another OS or CPU.
    #[error("{} is a {found_format} library for {found_arch}, but this host is {expected_os} on {expected_arch}", path.display())]
    WrongPlatform {
        /// The artefact path.
        path: PathBuf,
        /// Object format found (ELF, Mach-O, PE).
        found_format: String,
        /// Architecture found.
        found_arch: String,
        /// This host's OS.
        expected_os: &'static str,
        /// This host's architecture.
        expected_arch: &'static str,
    },
    /// This build cannot load this kind of plugin.
    #[error("this aiplug was built without support for {kind} plugins (cargo feature `{feature}`)")]
    Unsupported {
        /// The plugin kind.
        kind: crate::manifest::PluginKind,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// A wasm plugin's artefact is not a valid WebAssembly component (a core
    /// module, a truncated or corrupt file, something else entirely).
    #[error("{} is not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        /// The artefact path.
        path: PathBuf,
        /// What was found instead, or what the validator said.
        reason: String,
        /// Whether the file is a core wasm module (the common mistake).
        core_module: bool,
    },
}

/// Symbols stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolsError {
    /// The dynamic loader refused the library (missing dependency, bad relocation).
    #[error("the dynamic loader refused {}: {reason}", path.display())]
    Open {
        /// The artefact path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The entry symbol is not exported.
    #[error("{} does not export the entry symbol `{symbol}`", path.display())]
    MissingEntry {
        /// The artefact path.
        path: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// A wasm component does not export the plugin interface
    /// (`aiplug:plugin/guest@VERSION`).
    #[error("{} exports no `{interface}@VERSION` interface (its exports: {exports})", path.display())]
    MissingWorldExport {
        /// The artefact path.
        path: PathBuf,
        /// The interface looked for, without version.
        interface: &'static str,
        /// What it exports instead, comma-separated (or "nothing").
        exports: String,
    },
    /// A wasm component imports something this host does not provide (or
    /// provides with another type).
    #[error("{} imports what this host does not provide: {reason}", path.display())]
    UnsatisfiedImport {
        /// The artefact path.
        path: PathBuf,
        /// The runtime's message, naming the import.
        reason: String,
    },
}

/// ABI stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AbiError {
    /// The entry function returned null.
    #[error("the entry function returned no vtable (null)")]
    NullVtable,
    /// Built against another ABI major.
    #[error("ABI major {found} is not supported by this host (supports {supported})")]
    MajorMismatch {
        /// The plugin's major.
        found: u32,
        /// The host's major.
        supported: u32,
    },
    /// The vtable is too small to hold the required entries.
    #[error("the vtable declares size {size} bytes, but ABI {major}.x needs at least {min}")]
    VtableTooSmall {
        /// Declared size.
        size: usize,
        /// Minimum size.
        min: usize,
        /// The ABI major.
        major: u32,
    },
    /// A required entry is null.
    #[error("the vtable's required entry `{entry}` is null")]
    MissingRequired {
        /// The entry name.
        entry: &'static str,
    },
    /// The manifest declares a hook the library does not provide.
    #[error("the manifest declares hook `{hook}`, but the library's vtable has no `{hook}` entry")]
    MissingHook {
        /// The hook name.
        hook: &'static str,
    },
    /// The metadata is null or not UTF-8.
    #[error("metadata is unusable: {reason}")]
    BadMetadata {
        /// What is wrong.
        reason: String,
    },
    /// A wasm component targets a version of the `aiplug:plugin` world this
    /// host does not support.
    #[error("the component targets world aiplug:plugin@{found}, which this host does not support (supports {})", supported.join(", "))]
    UnsupportedWorld {
        /// The version the component declares.
        found: String,
        /// The versions this host loads.
        supported: Vec<&'static str>,
    },
    /// A wasm component's exports do not have the types its world version
    /// says.
    #[error("the component's exports do not match world aiplug:plugin@{version}: {reason}")]
    WorldMismatch {
        /// The world version.
        version: String,
        /// The runtime's type-check message.
        reason: String,
    },
}

/// Identity stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Another plugin already has this id.
    #[error("id {id:?} is already registered by {}", existing.display())]
    DuplicateId {
        /// The id.
        id: String,
        /// The manifest of the plugin holding it.
        existing: PathBuf,
    },
    /// Another plugin already serves this task.
    #[error("task {task:?} is already served by plugin {owner:?}")]
    DuplicateTask {
        /// The task.
        task: String,
        /// The plugin serving it.
        owner: String,
    },
    /// The library's metadata disagrees with its manifest.
    #[error("the library says {field} is {library:?}, the manifest says {manifest:?}")]
    MetadataMismatch {
        /// `id`, `version` or `tasks`.
        field: &'static str,
        /// The manifest's value.
        manifest: String,
        /// The library's value.
        library: String,
    },
}

/// Init stage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// `on_load` returned an error.
    #[error("on_load failed: {message}")]
    Failed {
        /// The plugin's message.
        message: String,
    },
    /// `on_load` panicked (caught at the boundary).
    #[error("on_load panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// `on_load` did not return in time.
    #[error("on_load did not return within {after:?}")]
    TimedOut {
        /// The deadline.
        after: Duration,
    },
}

/// What went wrong in a load, by stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// Manifest stage.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Integrity stage.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// Format stage.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Symbols stage.
    #[error(transparent)]
    Symbols(#[from] SymbolsError),
    /// ABI stage.
    #[error(transparent)]
    Abi(#[from] AbiError),
    /// Identity stage.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Init stage.
    #[error(transparent)]
    Init(#[from] InitError),
}

impl LoadErrorKind {
    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        match self {
            LoadErrorKind::Manifest(_) => Stage::Manifest,
            LoadErrorKind::Integrity(_) => Stage::Integrity,
            LoadErrorKind::Format(_) => Stage::Format,
            LoadErrorKind::Symbols(_) => Stage::Symbols,
            LoadErrorKind::Abi(_) => Stage::Abi,
            LoadErrorKind::Identity(_) => Stage::Identity,
            LoadErrorKind::Init(_) => Stage::Init,
        }
    }

    /// What the plugin's author or operator should do about it.
    pub fn fix(&self) -> String {
        use LoadErrorKind as K;
        match self {
            K::Manifest(ManifestError::Read { .. }) => {
                "point at a plugin directory containing plugin.toml, or at the plugin.toml itself".into()
            }
            K::Manifest(ManifestError::Parse { .. }) => {
                "correct plugin.toml: required fields are id, version, kind, entry; see the manifest section of DESIGN.md for the rest".into()
            }
            K::Manifest(ManifestError::Invalid { field, .. }) => format!("set `{field}` to an allowed value"),
            K::Integrity(IntegrityError::Read { .. }) => {
                "build the plugin, or correct `entry` in plugin.toml to name the artefact".into()
            }
            K::Integrity(IntegrityError::Sha256Mismatch { actual, .. }) => format!(
                "if you rebuilt the plugin on purpose, pin the new hash (sha256 = \"{actual}\") and sign it again (`aiplug plugins sign DIR --key KEY --pin` does both); otherwise the artefact was changed by someone else: restore it"
            ),
            K::Integrity(IntegrityError::Unsigned { .. }) => {
                "sign the plugin: `aiplug plugins sign DIR --key KEY --pin` (make a key with `aiplug keys generate NAME --trust`); for development only, allow unsigned plugins with --allow-unsigned or `[trust] allow_unsigned = true`".into()
            }
            K::Integrity(IntegrityError::SignatureUnreadable { .. }) => {
                "sign the plugin again with `aiplug plugins sign DIR --key KEY`: the signature file is damaged".into()
            }
            K::Integrity(IntegrityError::TrustStore { dir, .. }) => format!(
                "create {} and put the public keys (*.pub, PEM) you trust in it, or point `[trust] keys_dir` at your trust store",
                dir.display()
            ),
            K::Integrity(IntegrityError::UntrustedKey { key_id, keys_dir }) => format!(
                "if you trust whoever holds key {key_id}, copy their public key file into {}; otherwise do not load this plugin",
                keys_dir.display()
            ),
            K::Integrity(IntegrityError::BadSignature { .. }) => {
                "do not load it: restore the manifest as it was signed, or, if the change is yours, sign it again with `aiplug plugins sign DIR --key KEY`".into()
            }
            K::Integrity(IntegrityError::NotPinned { .. }) => {
                "pin the artefact and sign again: `aiplug plugins sign DIR --key KEY --pin`".into()
            }
            K::Format(FormatError::NotAnObject { .. }) => {
                "rebuild the plugin as a shared library (Rust: crate-type = [\"cdylib\"]; C: cc -shared -fPIC; Go: go build -buildmode=c-shared); the file may be truncated".into()
            }
            K::Format(FormatError::NotShared { .. }) => {
                "link the plugin as a shared library (cdylib / -shared / -buildmode=c-shared), not an executable or object file".into()
            }
            K::Format(FormatError::WrongPlatform { expected_os, expected_arch, .. }) => format!(
                "rebuild the plugin for {expected_os} on {expected_arch} (the host's platform)"
            ),
            K::Format(FormatError::Unsupported { feature, .. }) => {
                format!("use an aiplug built with the `{feature}` feature")
            }
            K::Format(FormatError::NotAComponent { core_module: true, .. }) => {
                "build a component, not a core module: Rust plugins build with `cargo build --target wasm32-wasip2` (aiplug-sdk); other toolchains wrap a module with `wasm-tools component new`".into()
            }
            K::Format(FormatError::NotAComponent { .. }) => {
                "rebuild the plugin with `cargo build --target wasm32-wasip2` (the file may be truncated or corrupt) and pin its new sha256".into()
            }
            K::Symbols(SymbolsError::Open { .. }) => {
                "install the libraries it links against (check with `ldd`), or rebuild it against this system".into()
            }
            K::Symbols(SymbolsError::MissingEntry { symbol, .. }) => format!(
                "export `{symbol}`: Rust plugins use aiplug_sdk::export_plugin!, C and Go plugins implement it from include/aiplug.h"
            ),
            K::Symbols(SymbolsError::MissingWorldExport { .. }) => {
                "build the component against the `plugin` world in wit/ (Rust: aiplug_sdk::export_plugin! with --target wasm32-wasip2)".into()
            }
            K::Symbols(SymbolsError::UnsatisfiedImport { .. }) => {
                "import only the host API of wit/ and WASI preview 2; rebuild against this host's wit/ folder".into()
            }
            K::Abi(AbiError::MissingHook { hook }) => {
                format!("remove `{hook}` from `hooks` in plugin.toml, or implement and export it")
            }
            K::Abi(AbiError::MajorMismatch { .. }) | K::Abi(AbiError::VtableTooSmall { .. }) => {
                "rebuild the plugin against this host's aiplug-sdk / include/aiplug.h".into()
            }
            K::Abi(AbiError::UnsupportedWorld { supported, .. }) => format!(
                "rebuild the plugin against a supported world ({}: the folders under wit/), or upgrade aiplug",
                supported.join(", ")
            ),
            K::Abi(AbiError::WorldMismatch { .. }) => {
                "rebuild the plugin against this host's wit/ folder for its world version (it was built from a modified copy)".into()
            }
            K::Abi(_) => "the plugin's vtable is malformed: rebuild it against aiplug-sdk or include/aiplug.h".into(),
            K::Identity(IdentityError::DuplicateId { .. }) => {
                "give one of the plugins another id, or remove the duplicate directory".into()
            }
            K::Identity(IdentityError::DuplicateTask { .. }) => {
                "serve each task from one plugin only; rename the task in one of them".into()
            }
            K::Identity(IdentityError::MetadataMismatch { field, .. }) => {
                format!("make `{field}` in plugin.toml match what the plugin was built with")
            }
            K::Init(InitError::TimedOut { .. }) => {
                "make on_load return promptly (defer slow work to the first call); the library stays mapped since its code is still running".into()
            }
            K::Init(_) => "check the plugin's [config] in plugin.toml against what the plugin expects".into(),
        }
    }
}

/// A plugin failed to load: the stage, the plugin, the root cause and (via
/// [`LoadError::fix`]) what to do.
#[derive(Debug, thiserror::Error)]
#[error("plugin {label} ({}): {} stage: {kind}", manifest_path.display(), kind.stage())]
pub struct LoadError {
    /// The plugin's id when known, else the directory name.
    pub label: String,
    /// The manifest path.
    pub manifest_path: PathBuf,
    /// What failed (boxed: errors are rare, results are everywhere).
    kind: Box<LoadErrorKind>,
}

impl LoadError {
    /// A load error of `kind` for the plugin `label` at `manifest_path`.
    pub fn new(
        label: impl Into<String>,
        manifest_path: impl Into<PathBuf>,
        kind: LoadErrorKind,
    ) -> LoadError {
        LoadError {
            label: label.into(),
            manifest_path: manifest_path.into(),
            kind: Box::new(kind),
        }
    }

    /// What failed, to match on.
    pub fn kind(&self) -> &LoadErrorKind {
        &self.kind
    }

    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        self.kind.stage()
    }

    /// What the plugin's author or operator should do about it.
    pub fn fix(&self) -> String {
        self.kind.fix()
    }
}

/// How a plugin hook call ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No loaded plugin has this id or serves this task.
    #[error(
        "no loaded plugin is named {target:?} or serves a task of that name (see `aiplug plugins list`)"
    )]
    NotFound {
        /// What was asked for.
        target: String,
    },
    /// The plugin does not provide this hook.
    #[error("plugin {plugin:?} does not provide `{hook}`")]
    Unsupported {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
    },
    /// The hook returned an error.
    #[error("plugin {plugin:?} failed in `{hook}`: {message}")]
    Failed {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// The hook panicked; the panic was contained and the host keeps serving.
    #[error("plugin {plugin:?} panicked in `{hook}`: {message}")]
    Panicked {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The panic message.
        message: String,
    },
    /// A request filter refused the request.
    #[error("plugin {plugin:?} rejected the request: {reason}")]
    Rejected {
        /// The plugin id.
        plugin: String,
        /// The plugin's reason.
        reason: String,
    },
    /// The call was cancelled or hit its deadline.
    #[error("call to plugin {plugin:?} was cancelled or hit its deadline{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Cancelled {
        /// The plugin id.
        plugin: String,
        /// What the plugin said.
        message: String,
    },
    /// A filter produced output that is not valid JSON/UTF-8.
    #[error("plugin {plugin:?} returned an invalid document from `{hook}`: {message}")]
    BadOutput {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A model call through the host failed.
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    /// A sandboxed (wasm) plugin trapped: its instance was discarded and the
    /// next call gets a fresh one.
    #[error("plugin {plugin:?} trapped in `{hook}`: {message}; its instance was discarded")]
    Trapped {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// The trap, and the plugin's last error log line when it wrote one.
        message: String,
    },
    /// A sandboxed (wasm) plugin was stopped by one of its limits: its
    /// instance was discarded and the next call gets a fresh one.
    #[error("plugin {plugin:?} was stopped in `{hook}`: {limit}{}; its instance was discarded", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    LimitExceeded {
        /// The plugin id.
        plugin: String,
        /// The hook.
        hook: &'static str,
        /// Which limit.
        limit: Limit,
        /// Detail.
        message: String,
    },
    /// The call was refused before it ran: the plugin is at one of its
    /// `[limits]` (`max_concurrency` with no place within `queue_ms`, or
    /// `requests_per_second`). Retrying after `retry_after` may succeed.
    #[error("plugin {plugin:?} is busy: {limit} reached; retry in {} ms", retry_after.as_millis())]
    Overloaded {
        /// The plugin id.
        plugin: String,
        /// Which limit: `max_concurrency` or `requests_per_second`.
        limit: &'static str,
        /// When a retry may succeed.
        retry_after: std::time::Duration,
    },
}

/// A limit the host enforces on a sandboxed plugin's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Linear memory would have grown past `[limits] memory_mb`.
    Memory {
        /// The cap in MiB.
        memory_mb: u32,
    },
    /// The code was still running at the call's deadline: the sooner of the
    /// caller's deadline and `[limits] timeout_ms`.
    Deadline {
        /// The plugin's `[limits] timeout_ms`.
        timeout_ms: u64,
    },
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Memory { memory_mb } => {
                write!(f, "memory would grow past its cap of {memory_mb} MiB ([limits] memory_mb)")
            }
            Limit::Deadline { timeout_ms } => write!(
                f,
                "still running at its deadline ([limits] timeout_ms = {timeout_ms}, or the caller's deadline if sooner)"
            ),
        }
    }
}
