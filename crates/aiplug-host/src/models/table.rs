//! The model table: names plugins and requests use, mapped to providers.
//!
//! Model ids come from configuration, never from logic: DeepSeek renames its
//! models (`deepseek-chat`/`deepseek-reasoner` were aliases of V3.x; newer
//! docs name `deepseek-v4-flash`/`deepseek-v4-pro`), so the names below are
//! only defaults, and `[models.NAME]` in `aiplug.toml` adds or replaces any.
//!
//! ```toml
//! default_model = "smollm2"        # optional; see ModelTable::choose_default
//!
//! [models.deepseek-v4-flash]
//! provider = "deepseek"            # deepseek | openai | local
//! model = "deepseek-v4-flash"      # the provider's id; defaults to the name
//!
//! [models.my-vllm]
//! provider = "openai"
//! base_url = "http://10.0.0.5:8000/v1"
//! model = "Qwen/Qwen2.5-Coder-7B-Instruct"
//! api_key_env = "VLLM_API_KEY"     # optional
//!
//! [models.smollm2]
//! provider = "local"
//! path = "~/.cache/aiplug/models/SmolLM2-135M-Instruct.Q4_1.gguf"
//! sha256 = "…"                     # optional; refuses any other file
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::deepseek::{DeepSeekProvider, DeepSeekSettings};
use super::pull::KnownModel;
use super::{ChatModel, ChatRequest, ChatResponse, ChunkSink, ModelCall, ModelError, ModelInfo};

/// DeepSeek's API.
pub const DEEPSEEK_BASE_URL: &str = "https://api.deepseek.com";
/// The environment variable holding the DeepSeek key.
pub const DEEPSEEK_KEY_ENV: &str = "DEEPSEEK_API_KEY";
/// The DeepSeek model used by default when `DEEPSEEK_API_KEY` is set.
pub const DEFAULT_DEEPSEEK_MODEL: &str = "deepseek-v4-flash";
/// The local model used by default otherwise.
pub const DEFAULT_LOCAL_MODEL: &str = "smollm2";

/// `[models.NAME]` in `aiplug.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelEntry {
    /// The DeepSeek API.
    Deepseek(RemoteEntry),
    /// Any OpenAI-compatible server (vLLM, llama-server, Ollama, ...).
    Openai(RemoteEntry),
    /// A GGUF file run by llama.cpp in process.
    Local(LocalEntry),
}

/// A remote, OpenAI-compatible model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    /// The provider's model id. Defaults to the table name.
    #[serde(default)]
    pub model: Option<String>,
    /// Base URL. Defaults to DeepSeek's for `deepseek`; required for `openai`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable with the API key. Defaults to `DEEPSEEK_API_KEY`
    /// for `deepseek`, none for `openai`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Context length in tokens, for listings.
    #[serde(default)]
    pub context_length: Option<u32>,
    /// Calls of this model in flight at once over all plugins and requests;
    /// more wait. Defaults to 64.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

/// A local GGUF model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalEntry {
    /// The GGUF file; `~/` is expanded, relative paths are relative to the
    /// models directory (`$AIPLUG_HOME/models`).
    pub path: PathBuf,
    /// Expected SHA-256; any other file is refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Context length. Defaults to the model's, at most 4096.
    #[serde(default)]
    pub context_length: Option<u32>,
    /// Threads. Defaults to the available cores.
    #[serde(default)]
    pub threads: Option<u32>,
    /// Generations allowed at once (each has its own context). Defaults to 2.
    #[serde(default)]
    pub slots: Option<usize>,
}

/// The models part of `aiplug.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// The model used when a request names none.
    #[serde(default)]
    pub default_model: Option<String>,
    /// Extra or replaced entries, by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
}

/// Why the model table could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelConfigError {
    /// An entry is unusable.
    #[error("[models.{name}]: {message}")]
    Entry {
        /// The entry.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// `default_model` names no entry.
    #[error("default_model = {name:?} is not a configured model (configured: {known})")]
    UnknownDefault {
        /// The name.
        name: String,
        /// Configured names, comma-separated.
        known: String,
    },
}

/// The built table: providers by name, and the default.
pub struct ModelTable {
    /// Providers by name.
    pub models: BTreeMap<String, Arc<dyn ChatModel>>,
    /// The default model's name.
    pub default: String,
    /// Why that default was chosen, for the one line printed at start.
    pub default_reason: String,
}

impl std::fmt::Debug for ModelTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTable")
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

/// The entries every host has unless the config replaces them.
pub fn builtin_entries() -> BTreeMap<String, ModelEntry> {
    let mut entries = BTreeMap::new();
    // Context lengths as DeepSeek documents them (V4: 1M tokens; the V3.x
    // aliases: 128K); they size the chunks of long inputs.
    for (name, context) in [
        ("deepseek-v4-flash", 1_000_000),
        ("deepseek-v4-pro", 1_000_000),
        ("deepseek-chat", 131_072),
        ("deepseek-reasoner", 131_072),
    ] {
        let entry = RemoteEntry {
            context_length: Some(context),
            ..RemoteEntry::default()
        };
        entries.insert(name.to_string(), ModelEntry::Deepseek(entry));
    }
    for known in KnownModel::ALL {
        entries.insert(
            known.name().to_string(),
            ModelEntry::Local(LocalEntry {
                path: PathBuf::from(known.file_name()),
                sha256: Some(known.pin().sha256.to_string()),
                ..LocalEntry::default()
            }),
        );
    }
    entries
}

impl ModelTable {
    /// Builds the table from the built-in entries plus `config`, reading API
    /// keys through `env` (the process environment in production).
    pub fn build(
        config: &ModelsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ModelTable, ModelConfigError> {
        let mut entries = builtin_entries();
        entries.extend(config.models.clone());
        let mut models: BTreeMap<String, Arc<dyn ChatModel>> = BTreeMap::new();
        for (name, entry) in &entries {
            let model = provider(name, entry, env).map_err(|message| ModelConfigError::Entry {
                name: name.clone(),
                message,
            })?;
            models.insert(name.clone(), model);
        }
        let (default, default_reason) = choose_default(config, env);
        if !models.contains_key(&default) {
            return Err(ModelConfigError::UnknownDefault {
                name: default,
                known: models.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(ModelTable {
            models,
            default,
            default_reason,
        })
    }
}

/// The default model with no request naming one: `default_model` from the
/// config, else the DeepSeek chat model when `DEEPSEEK_API_KEY` is set, else
/// the local default model.
fn choose_default(config: &ModelsConfig, env: &dyn Fn(&str) -> Option<String>) -> (String, String) {
    if let Some(name) = &config.default_model {
        return (name.clone(), "default_model in the config".to_string());
    }
    if env(DEEPSEEK_KEY_ENV).is_some_and(|k| !k.is_empty()) {
        return (
            DEFAULT_DEEPSEEK_MODEL.to_string(),
            format!("{DEEPSEEK_KEY_ENV} is set"),
        );
    }
    (
        DEFAULT_LOCAL_MODEL.to_string(),
        format!("no {DEEPSEEK_KEY_ENV}: the local default model"),
    )
}

fn provider(
    name: &str,
    entry: &ModelEntry,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ChatModel>, String> {
    match entry {
        ModelEntry::Deepseek(remote) | ModelEntry::Openai(remote) => {
            let is_deepseek = matches!(entry, ModelEntry::Deepseek(_));
            let base_url = match (&remote.base_url, is_deepseek) {
                (Some(url), _) => url.clone(),
                (None, true) => DEEPSEEK_BASE_URL.to_string(),
                (None, false) => return Err("provider \"openai\" needs base_url".to_string()),
            };
            let key_env = remote
                .api_key_env
                .clone()
                .or_else(|| is_deepseek.then(|| DEEPSEEK_KEY_ENV.to_string()));
            let settings = DeepSeekSettings {
                name: name.to_string(),
                upstream_model: remote.model.clone().unwrap_or_else(|| name.to_string()),
                base_url,
                api_key: key_env.as_deref().and_then(env).filter(|k| !k.is_empty()),
                provider_label: if is_deepseek { "deepseek" } else { "openai" }.to_string(),
                context_length: remote.context_length,
                max_concurrency: remote
                    .max_concurrency
                    .unwrap_or(DeepSeekSettings::default().max_concurrency),
                ..DeepSeekSettings::default()
            };
            DeepSeekProvider::new(settings)
                .map(|p| Arc::new(p) as Arc<dyn ChatModel>)
                .map_err(|e| e.to_string())
        }
        ModelEntry::Local(local) => local_provider(name, local),
    }
}

/// Resolves a local entry's path: `~/` expanded, relative to the models dir.
pub fn resolve_model_path(path: &std::path::Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        super::weights::models_dir().join(path)
    }
}

#[cfg(feature = "local-llm")]
fn local_provider(name: &str, entry: &LocalEntry) -> Result<Arc<dyn ChatModel>, String> {
    use super::local::{LocalModel, LocalSettings};
    let settings = LocalSettings {
        name: name.to_string(),
        path: resolve_model_path(&entry.path),
        sha256: entry.sha256.clone(),
        context_length: entry.context_length,
        threads: entry.threads,
        slots: entry.slots.unwrap_or(2),
        flash_attention: None,
    };
    let path = settings.path.clone();
    Ok(match LocalModel::open(settings) {
        Ok(model) => Arc::new(model),
        // A model that is not there (yet) is still listed; using it says why
        // it cannot run and how to fix that.
        Err(error) => {
            // A known model that was never pulled: say which pull brings it.
            let error = match KnownModel::from_name(name) {
                Some(known) if !path.exists() => ModelError::ModelFile {
                    path: path.display().to_string(),
                    message: format!("not pulled yet: run `aiplug models pull {}`", known.name()),
                },
                _ => error,
            };
            Arc::new(Unavailable::local(name, &path, error))
        }
    })
}

#[cfg(not(feature = "local-llm"))]
fn local_provider(name: &str, entry: &LocalEntry) -> Result<Arc<dyn ChatModel>, String> {
    let error = ModelError::Provider {
        model: name.to_string(),
        message: "this aiplug was built without the local-llm feature (cargo feature `local-llm`)".into(),
    };
    Ok(Arc::new(Unavailable::local(
        name,
        &resolve_model_path(&entry.path),
        error,
    )))
}

/// A configured model that cannot run: listed with the reason, and every
/// call fails with it.
struct Unavailable {
    info: ModelInfo,
    error: ModelError,
}

impl Unavailable {
    fn local(name: &str, path: &std::path::Path, error: ModelError) -> Unavailable {
        Unavailable {
            info: ModelInfo {
                name: name.to_string(),
                provider: "local".into(),
                upstream: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                notes: vec![error.to_string()],
                ..ModelInfo::default()
            },
            error,
        }
    }
}

impl ChatModel for Unavailable {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn warm(&self) -> Result<(), ModelError> {
        Err(self.error.clone())
    }

    fn chat(
        &self,
        _: &ChatRequest,
        _: ModelCall<'_>,
        _: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        Err(self.error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn default_is_local_without_a_key_and_deepseek_with_one() {
        let table = ModelTable::build(&ModelsConfig::default(), &no_env).unwrap();
        assert_eq!(table.default, DEFAULT_LOCAL_MODEL);
        assert!(table.models.contains_key("deepseek-chat"));
        let with_key = |k: &str| (k == DEEPSEEK_KEY_ENV).then(|| "sk-test".to_string());
        let table = ModelTable::build(&ModelsConfig::default(), &with_key).unwrap();
        assert_eq!(table.default, DEFAULT_DEEPSEEK_MODEL);
        assert!(table.default_reason.contains(DEEPSEEK_KEY_ENV));
    }

    #[test]
    fn config_adds_entries_and_picks_the_default() {
        let config: ModelsConfig = toml::from_str(
            "default_model = \"mine\"\n[models.mine]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"qwen\"\n",
        )
        .unwrap();
        let table = ModelTable::build(&config, &no_env).unwrap();
        assert_eq!(table.default, "mine");
        let info = table.models["mine"].info();
        assert_eq!(info.provider, "openai");
        assert_eq!(info.upstream, "qwen");
    }

    #[test]
    fn bad_entries_name_themselves() {
        let err = toml::from_str::<ModelsConfig>("[models.x]\nprovider = \"local\"\npaht = \"a.gguf\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("paht"), "{err}");
        let err = toml::from_str::<ModelsConfig>("[models.x]\nprovider = \"ollama\"\n").unwrap_err();
        assert!(err.to_string().contains("ollama"), "{err}");
        let config: ModelsConfig = toml::from_str("[models.x]\nprovider = \"openai\"\n").unwrap();
        let err = ModelTable::build(&config, &no_env).unwrap_err();
        assert!(
            err.to_string().contains("[models.x]") && err.to_string().contains("base_url"),
            "{err}"
        );
        let config = ModelsConfig {
            default_model: Some("nope".into()),
            ..ModelsConfig::default()
        };
        let err = ModelTable::build(&config, &no_env).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
