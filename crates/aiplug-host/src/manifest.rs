//! `plugin.toml`: the manifest a plugin author writes by hand, next to the
//! artefact. Serde-only, with `deny_unknown_fields`, so a typo is an error
//! that names the field instead of a setting silently ignored.
//!
//! Only `id`, `version`, `kind` and `entry` are required; every other field
//! has the default its doc comment states.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The manifest's file name inside a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// Which tier a plugin belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// A shared library with the C ABI of `aiplug-abi`.
    Native,
    /// A WebAssembly component (wasm32-wasip2).
    Wasm,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Native => "native",
            PluginKind::Wasm => "wasm",
        })
    }
}

/// A hook a plugin may provide besides the always-present lifecycle ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Request filter.
    OnRequest,
    /// Named service.
    Invoke,
    /// Response filter.
    OnResponse,
    /// Session end notification.
    OnSessionEnd,
}

impl Hook {
    /// The hook's name as written in manifests and the ABI.
    pub fn name(self) -> &'static str {
        match self {
            Hook::OnRequest => "on_request",
            Hook::Invoke => "invoke",
            Hook::OnResponse => "on_response",
            Hook::OnSessionEnd => "on_session_end",
        }
    }
}

/// `[capabilities]`: what a plugin may use through the host.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Model names (or `prefix:*` patterns) the plugin may call through
    /// `infer`. Defaults to none: a plugin calls no model unless it says so.
    #[serde(default)]
    pub models: Vec<String>,
    /// WASI features a wasm plugin may use, e.g. `wasi = ["clocks"]`.
    /// Defaults to none: no clocks (they read as the Unix epoch), no
    /// stdout/stderr, no network; a wasm plugin never gets the filesystem or
    /// the host's environment. Ignored for native plugins, which are trusted.
    #[serde(default)]
    pub wasi: Vec<WasiGrant>,
}

/// One grant of `[capabilities] wasi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WasiGrant {
    /// The host's wall and monotonic clocks.
    Clocks,
    /// stdout and stderr, written to the host's stderr.
    Stdio,
    /// TCP and UDP to any address, and name lookups.
    Network,
}

impl Capabilities {
    /// Whether `model` is granted (exact name, `*`, or a `prefix*` pattern).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => pattern == model,
        })
    }
}

/// `[limits]`: per-plugin bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Calls running at once. Defaults to 8; 1 to 4096.
    #[serde(default = "Limits::default_max_concurrency")]
    pub max_concurrency: u32,
    /// Deadline of one call in milliseconds. Defaults to 30 000; 1 to 3 600 000.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Calls per second. Defaults to unlimited; when set, above 0. Calls
    /// over it are refused at once with the time until the next one fits.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// How long a call waits for a place when `max_concurrency` calls are
    /// running, in milliseconds, before it is refused (the call's own
    /// deadline applies too). Defaults to 1 000; 0 refuses at once.
    #[serde(default = "Limits::default_queue_ms")]
    pub queue_ms: u64,
    /// Memory cap in MiB, wasm plugins only. Defaults to 64; 1 to 65 536.
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Wasm plugins only: run every call in a fresh instance (`on_load`, the
    /// hook, then the instance is dropped), so nothing a call leaves in the
    /// plugin's memory reaches the next one. Defaults to false: instances are
    /// reused from a pool (one per concurrent call), which is about ten times
    /// cheaper per call; any instance that traps or hits a limit is dropped
    /// either way.
    #[serde(default)]
    pub fresh_instance_per_call: bool,
}

impl Limits {
    fn default_max_concurrency() -> u32 {
        8
    }
    fn default_timeout_ms() -> u64 {
        30_000
    }
    fn default_queue_ms() -> u64 {
        1_000
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_concurrency: Limits::default_max_concurrency(),
            timeout_ms: Limits::default_timeout_ms(),
            requests_per_second: None,
            queue_ms: Limits::default_queue_ms(),
            memory_mb: None,
            fresh_instance_per_call: false,
        }
    }
}

/// A parsed, validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique id: lowercase letters, digits, `-`, `_`, `.`; 1 to 64 bytes,
    /// starting with a letter or digit. A second plugin with the same id is
    /// refused.
    pub id: String,
    /// Semantic version, e.g. `0.3.1`.
    pub version: semver::Version,
    /// `native` or `wasm`.
    pub kind: PluginKind,
    /// The artefact, relative to the manifest's directory.
    pub entry: PathBuf,
    /// Lowercase hex SHA-256 of `entry`. Optional until the plugin is signed;
    /// when set, any other content is refused. `aiplug doctor` prints the
    /// value to pin.
    #[serde(default)]
    pub sha256: Option<String>,
    /// One line saying what the plugin does. Defaults to empty.
    #[serde(default)]
    pub description: String,
    /// Filter order: higher runs first, ties by id. Defaults to 0.
    #[serde(default)]
    pub priority: i32,
    /// Hooks the plugin provides. Defaults to whatever the artefact exports;
    /// when set, each listed hook must be exported.
    #[serde(default)]
    pub hooks: Option<Vec<Hook>>,
    /// Tasks served through `invoke`. Defaults to the artefact's own list;
    /// when set, it must match it.
    #[serde(default)]
    pub tasks: Option<Vec<String>>,
    /// Whether the library may be closed at unload. Defaults to true; set
    /// false for runtimes that can never be unloaded (Go's), and the host keeps
    /// the library mapped instead of crashing in `dlclose`.
    #[serde(default = "default_true")]
    pub unloadable: bool,
    /// See [`Capabilities`].
    #[serde(default)]
    pub capabilities: Capabilities,
    /// See [`Limits`].
    #[serde(default)]
    pub limits: Limits,
    /// Free-form settings handed to `on_load` as JSON. Defaults to empty.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
}

fn default_true() -> bool {
    true
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a required field is missing, a field is
    /// unknown or has the wrong type. The message names the field and line.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The parser's message (names the field).
        message: String,
    },
    /// A field parsed but its value is out of range or malformed.
    #[error("{}: field `{field}` {message}", path.display())]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// Dotted field name, e.g. `limits.timeout_ms`.
        field: &'static str,
        /// What is wrong with the value.
        message: String,
    },
}

impl ManifestError {
    /// The field at fault, when one is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            ManifestError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path` (a `plugin.toml`, or a
    /// directory containing one).
    pub fn from_path(path: &Path) -> Result<(Manifest, PathBuf), ManifestError> {
        Manifest::read(path).map(|(manifest, path, _)| (manifest, path))
    }

    /// [`Manifest::from_path`], also returning the exact bytes parsed (what
    /// a signature covers).
    pub fn read(path: &Path) -> Result<(Manifest, PathBuf, Vec<u8>), ManifestError> {
        let path = manifest_path(path);
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        let manifest = Manifest::parse(text, &path)?;
        Ok((manifest, path, bytes))
    }

    /// Parses and validates manifest text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// The artefact's path, resolved against the manifest's directory.
    pub fn entry_path(&self, manifest_path: &Path) -> PathBuf {
        manifest_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&self.entry)
    }

    /// The `[config]` table as JSON, as `on_load` receives it.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_string())
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |field: &'static str, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if !valid_id(&self.id) {
            return Err(invalid(
                "id",
                format!(
                    "is {:?}: use 1 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit",
                    self.id
                ),
            ));
        }
        if self.entry.as_os_str().is_empty() {
            return Err(invalid("entry", "is empty: name the artefact file".into()));
        }
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "sha256",
                    format!("is {sha:?}: expected 64 hex digits (`aiplug doctor` prints the value to pin)"),
                ));
            }
        }
        let limits = &self.limits;
        if !(1..=4096).contains(&limits.max_concurrency) {
            return Err(invalid(
                "limits.max_concurrency",
                format!("is {}: must be 1 to 4096", limits.max_concurrency),
            ));
        }
        if !(1..=3_600_000).contains(&limits.timeout_ms) {
            return Err(invalid(
                "limits.timeout_ms",
                format!("is {}: must be 1 to 3600000 (one hour)", limits.timeout_ms),
            ));
        }
        if limits.queue_ms > 3_600_000 {
            return Err(invalid(
                "limits.queue_ms",
                format!("is {}: must be 0 to 3600000 (one hour)", limits.queue_ms),
            ));
        }
        if let Some(rps) = limits.requests_per_second {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(invalid(
                    "limits.requests_per_second",
                    format!("is {rps}: must be above 0 (leave it out for no limit)"),
                ));
            }
        }
        if let Some(mb) = limits.memory_mb {
            if !(1..=65_536).contains(&mb) {
                return Err(invalid(
                    "limits.memory_mb",
                    format!("is {mb}: must be 1 to 65536"),
                ));
            }
        }
        if let Some(tasks) = &self.tasks {
            if let Some(bad) = tasks.iter().find(|t| !valid_id(t)) {
                return Err(invalid(
                    "tasks",
                    format!("contains {bad:?}: task names follow the id rules"),
                ));
            }
        }
        Ok(())
    }
}

/// `path` itself when it names a file, else `path/plugin.toml`.
pub fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    }
}

fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugin.toml"))
    }

    const MINIMAL: &str = "id = \"p\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"libp.so\"\n";

    #[test]
    fn minimal_manifest_gets_documented_defaults() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.priority, 0);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.limits.max_concurrency, 8);
        assert_eq!(m.limits.timeout_ms, 30_000);
        assert!(m.unloadable);
        assert!(m.hooks.is_none() && m.tasks.is_none() && m.sha256.is_none());
        assert_eq!(m.config_json(), "{}");
    }

    #[test]
    fn full_design_example_parses() {
        let text = r#"
id = "code-review"
version = "0.3.1"
kind = "native"
entry = "libcode_review.so"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
priority = 100
hooks = ["invoke"]
tasks = ["code-review"]
[capabilities]
models = ["deepseek-coder", "local:*"]
[limits]
max_concurrency = 8
timeout_ms = 30000
requests_per_second = 50
memory_mb = 64
[config]
language_hint = "go"
"#;
        let m = parse(text).unwrap();
        assert_eq!(m.hooks, Some(vec![Hook::Invoke]));
        assert!(m.capabilities.allows_model("local:smollm2"));
        assert!(!m.capabilities.allows_model("deepseek-chat"));
        assert_eq!(m.config_json(), r#"{"language_hint":"go"}"#);
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = parse("id = \"p\"\nversion = \"1.0.0\"\nkind = \"native\"\n").unwrap_err();
        assert!(err.to_string().contains("entry"), "{err}");
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse(&format!("{MINIMAL}prioroty = 3\n")).unwrap_err();
        assert!(err.to_string().contains("prioroty"), "{err}");
        let err = parse(&format!("{MINIMAL}[limits]\ntimeout = 3\n")).unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");
    }

    #[test]
    fn mistyped_field_is_named() {
        let err = parse(&MINIMAL.replace("kind = \"native\"", "kind = \"elf\"")).unwrap_err();
        assert!(
            err.to_string().contains("kind") || err.to_string().contains("native"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}priority = \"high\"\n")).unwrap_err();
        assert!(err.to_string().contains("priority"), "{err}");
        let err = parse(&MINIMAL.replace("1.0.0", "one")).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }

    #[test]
    fn range_errors_name_the_field() {
        for (extra, field) in [
            ("[limits]\nmax_concurrency = 0\n", "limits.max_concurrency"),
            ("[limits]\ntimeout_ms = 0\n", "limits.timeout_ms"),
            (
                "[limits]\nrequests_per_second = -1.0\n",
                "limits.requests_per_second",
            ),
            ("[limits]\nmemory_mb = 0\n", "limits.memory_mb"),
            ("sha256 = \"abc\"\n", "sha256"),
        ] {
            let err = parse(&format!("{MINIMAL}{extra}")).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = parse(&MINIMAL.replace("id = \"p\"", "id = \"Bad Id\"")).unwrap_err();
        assert_eq!(err.field(), Some("id"));
    }
}
