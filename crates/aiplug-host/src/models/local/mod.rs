//! The `local` provider: GGUF models on llama.cpp (`llama-cpp-2`).
//!
//! ```no_run
//! use aiplug_host::models::local::{LocalModel, LocalSettings};
//! use aiplug_host::models::{ChatModel, ChatRequest, ModelCall};
//! use tokio_util::sync::CancellationToken;
//!
//! let path = aiplug_host::models::weights::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
//! let model = LocalModel::open(LocalSettings::new("smollm2", path))?;
//! let cancel = CancellationToken::new();
//! let call = ModelCall { cancel: &cancel, deadline: None };
//! let mut request = ChatRequest::user("Say hello.");
//! request.max_tokens = Some(16);
//! let response = model.chat(&request, call, Some(&mut |chunk| print!("{chunk:?}")))?;
//! println!("{}", response.text());
//! # Ok::<(), aiplug_host::models::ModelError>(())
//! ```
//!
//! - **Files.** [`LocalModel::open`] is cheap: it checks that the file is
//!   there, is GGUF, and is as long as its tensor table says (a truncated
//!   download is named as such), and verifies the configured SHA-256. The
//!   weights load on the first chat, or at [`LocalModel::load`].
//! - **Sharing.** Loaded weights are memory-mapped and kept in a process-wide
//!   table keyed by the file's SHA-256 (from
//!   [`HashCache`](crate::models::weights::HashCache)): any number of names
//!   and paths with the same content share one mapping (an `Arc`), and the
//!   mapping goes when the last of them is dropped.
//! - **Contexts.** Each request gets its own context (KV cache, sized for
//!   that request's prompt and `max_tokens`), never shared between threads;
//!   at most [`LocalSettings::slots`] run at once per model, and a request
//!   waiting for a slot gives up when its call is cancelled or its deadline
//!   passes.
//! - **Prompts.** The chat template comes from the GGUF metadata (applied by
//!   llama.cpp's template engine). A model without one (a base model such as
//!   Gemma 3 270M) gets a plain completion prompt: the messages' texts joined
//!   by blank lines.
//! - **Generation** streams `chat.completion.chunk`s: a first chunk with the
//!   role, content deltas (whole UTF-8 characters; text that might begin a
//!   stop string is held back until it is known not to), a chunk with
//!   `finish_reason` (`stop`: end of generation or a stop string, which is
//!   not shown; `length`: `max_tokens` or the context is full), and a usage
//!   chunk when `stream_options.include_usage` is set. Cancellation and the
//!   deadline are checked before every token.
//! - **Sampling.** `temperature` (default 0.8; 0 is greedy), `top_p` (default
//!   0.95), `top_k` (request extra, default 40, 0 for none) and `seed`
//!   (request extra; set it for reproducible sampling) as llama-server has
//!   them. `response_format` `json_object` or `json_schema` constrains
//!   sampling to JSON with a grammar (an object; the schema itself is not
//!   enforced); JSON that `max_tokens`, the context or a stop string cuts
//!   short is closed with the shortest completion (`"`, `null`, `}`, `]`), so
//!   the content always parses (`finish_reason` still says `length`).
//!   `ignore_eos: true` (request extra) generates until `max_tokens`, for
//!   benchmarks (not in JSON mode).
//! - The response's `timings` (extra field, as llama-server names it) gives
//!   `prompt_n`, `prompt_ms` (from the call to the prompt being decoded),
//!   `predicted_n` and `predicted_ms`.

mod generate;
pub mod gguf;
mod json;
mod sampling;
mod shared;
mod text;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::models::weights::HashCache;
use crate::models::{ChatModel, ChatRequest, ChatResponse, ChunkSink, ModelCall, ModelError, ModelInfo};

pub use gguf::{GgufError, GgufSummary};

use super::slots::{self, Slots};
use generate::{Job, Plan};
use shared::SharedModel;

/// The note `info()` carries for a model without a chat template.
pub const BASE_MODEL_NOTE: &str = "base model, no chat template: plain completion prompt";

/// Context length used when the configuration sets none and the model was
/// trained with more: 4096 tokens.
pub const DEFAULT_CONTEXT_LENGTH: u32 = 4096;

/// How to run one local model. Plain data; [`LocalSettings::new`] fills in
/// the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// The name requests and plugins use.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// The file's expected SHA-256 (lowercase or uppercase hex). When set,
    /// [`LocalModel::open`] refuses a file whose hash differs.
    pub sha256: Option<String>,
    /// Context length in tokens. `None`: the model's training context, at
    /// most [`DEFAULT_CONTEXT_LENGTH`].
    pub context_length: Option<u32>,
    /// Threads per request. `None`: the number of cores available.
    pub threads: Option<u32>,
    /// How many requests may run on this model at once (each with its own
    /// context); more wait. At least 1; [`LocalSettings::new`] sets 2.
    pub slots: usize,
    /// Flash attention. `None`: llama.cpp decides (on for CPU).
    pub flash_attention: Option<bool>,
}

impl LocalSettings {
    /// Settings for `path` under `name`, with every default: no hash check,
    /// the model's context up to 4096 tokens, all cores, 2 slots, flash
    /// attention as llama.cpp decides.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> LocalSettings {
        LocalSettings {
            name: name.into(),
            path: path.into(),
            sha256: None,
            context_length: None,
            threads: None,
            slots: 2,
            flash_attention: None,
        }
    }
}

/// A GGUF model served through llama.cpp. See the [module docs](self).
pub struct LocalModel {
    settings: LocalSettings,
    summary: GgufSummary,
    context_length: u32,
    threads: u32,
    slots: Slots,
    /// The verified or computed SHA-256, once known.
    sha256: OnceLock<String>,
    /// The shared weights, once loaded.
    weights: Mutex<Option<Arc<SharedModel>>>,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("settings", &self.settings)
            .field("context_length", &self.context_length)
            .field("loaded", &self.is_loaded())
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Checks the model file and the settings without loading the weights.
    ///
    /// Errors: [`ModelError::ModelFile`] when the file is missing, not a
    /// regular file, not GGUF, of a GGUF version llama.cpp does not read,
    /// shorter than its header says (truncated), or (with
    /// [`LocalSettings::sha256`] set) not the configured file;
    /// [`ModelError::Provider`] for settings that cannot work (0 slots, a
    /// context or thread count of 0).
    ///
    /// With `sha256` configured, the first open of a file hashes it (about
    /// 0.3 s per 100 MB); later opens read the hash from the cache.
    pub fn open(settings: LocalSettings) -> Result<LocalModel, ModelError> {
        let file_error = |message: String| ModelError::ModelFile {
            path: settings.path.display().to_string(),
            message,
        };
        let settings_error = |message: &str| ModelError::Provider {
            model: settings.name.clone(),
            message: message.to_string(),
        };
        if settings.slots == 0 {
            return Err(settings_error("slots must be at least 1"));
        }
        if settings.context_length == Some(0) {
            return Err(settings_error("context_length must be at least 1"));
        }
        if settings.threads == Some(0) {
            return Err(settings_error("threads must be at least 1"));
        }
        match std::fs::metadata(&settings.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(file_error(
                    "not found: run `aiplug models pull smollm2` for the default model (or `aiplug models \
                     pull PATH|URL`), or fix the model's `path` in aiplug.toml"
                        .into(),
                ))
            }
            Err(e) => return Err(file_error(format!("cannot read it: {e}"))),
            Ok(meta) if !meta.is_file() => {
                return Err(file_error(
                    "is not a regular file: point `path` at a .gguf file".into(),
                ))
            }
            Ok(_) => {}
        }
        let summary = gguf::inspect(&settings.path).map_err(|e| {
            let advice = match e {
                GgufError::NotGguf { .. } => "point the model's `path` at a .gguf model file",
                GgufError::Truncated { .. } => "the download was cut short: pull the model again",
                GgufError::Version(_) => "convert the model with a current llama.cpp, or pull a newer file",
                GgufError::Corrupt(_) | GgufError::Io(_) => "pull the model again",
            };
            file_error(format!("{e}; {advice}"))
        })?;

        let sha256 = OnceLock::new();
        if let Some(expected) = &settings.sha256 {
            let actual = hash(&settings.path)?;
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                return Err(file_error(format!(
                    "sha256 is {actual} but the configuration expects {expected}: this is not the \
                     configured model (or it changed); pull it again, or update `sha256` if the new \
                     file is the one you want"
                )));
            }
            let _ = sha256.set(actual);
        }

        let trained = summary
            .context_length
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let context_length = settings
            .context_length
            .unwrap_or(trained.min(DEFAULT_CONTEXT_LENGTH));
        let threads = settings
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        Ok(LocalModel {
            slots: Slots::new(settings.slots),
            settings,
            summary,
            context_length,
            threads,
            sha256,
            weights: Mutex::new(None),
        })
    }

    /// Loads the weights now (a chat loads them when needed). Loading the
    /// file another [`LocalModel`] has loaded (the same content, under any
    /// name or path) shares its weights instead.
    ///
    /// Errors: [`ModelError::ModelFile`] when the file cannot be hashed or
    /// llama.cpp cannot load it.
    pub fn load(&self) -> Result<(), ModelError> {
        self.weights().map(drop)
    }

    /// Whether the weights are in memory for this model.
    pub fn is_loaded(&self) -> bool {
        self.weights.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Whether `self` and `other` use the same loaded weights (the same
    /// mapping). False while either is not loaded.
    pub fn shares_weights_with(&self, other: &LocalModel) -> bool {
        let mine = self.weights.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let theirs = other.weights.lock().unwrap_or_else(|p| p.into_inner()).clone();
        matches!((mine, theirs), (Some(a), Some(b)) if Arc::ptr_eq(&a, &b))
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &LocalSettings {
        &self.settings
    }

    /// What the GGUF header says (architecture, training context, template).
    pub fn gguf(&self) -> &GgufSummary {
        &self.summary
    }

    /// The context length requests get, in tokens.
    pub fn context_length(&self) -> u32 {
        self.context_length
    }

    /// The prompt text `request` turns into (chat template or plain
    /// completion prompt). Loads the weights.
    pub fn prompt(&self, request: &ChatRequest) -> Result<String, ModelError> {
        let weights = self.weights()?;
        generate::render_prompt(&weights, request)
    }

    /// How many tokens `request`'s prompt is. Loads the weights.
    pub fn count_tokens(&self, request: &ChatRequest) -> Result<u32, ModelError> {
        let weights = self.weights()?;
        let prompt = generate::render_prompt(&weights, request)?;
        Ok(generate::tokenize(&weights, &prompt).len() as u32)
    }

    fn weights(&self) -> Result<Arc<SharedModel>, ModelError> {
        let mut slot = self.weights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(weights) = slot.as_ref() {
            return Ok(weights.clone());
        }
        let sha256 = match self.sha256.get() {
            Some(sha) => sha.clone(),
            None => {
                let sha = hash(&self.settings.path)?;
                self.sha256.get_or_init(|| sha).clone()
            }
        };
        let weights = shared::load(&sha256, &self.settings.path)?;
        *slot = Some(weights.clone());
        Ok(weights)
    }

    fn notes(&self) -> Vec<String> {
        let loaded = self.weights.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match loaded {
            Some(weights) => weights.template_note.iter().cloned().collect(),
            None if !self.summary.has_chat_template => vec![BASE_MODEL_NOTE.to_string()],
            None => Vec::new(),
        }
    }

    fn upstream(&self) -> String {
        self.settings
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The file's SHA-256 through the process-wide cache.
fn hash(path: &Path) -> Result<String, ModelError> {
    HashCache::global()
        .sha256(path, None)
        .map_err(|e| ModelError::ModelFile {
            path: path.display().to_string(),
            message: format!("cannot read it to compute its sha256: {e}"),
        })
}

impl ChatModel for LocalModel {
    fn info(&self) -> ModelInfo {
        // From the hash cache: a stat when the file is unchanged; the first
        // call for a file nobody hashed yet reads it (0.3 s per 100 MB).
        let sha256 = match self.sha256.get() {
            Some(sha) => Some(sha.clone()),
            None => hash(&self.settings.path)
                .ok()
                .map(|sha| self.sha256.get_or_init(|| sha).clone()),
        };
        ModelInfo {
            name: self.settings.name.clone(),
            provider: "local".into(),
            upstream: self.upstream(),
            context_length: Some(self.context_length),
            loaded: self.is_loaded(),
            size_bytes: Some(self.summary.file_size),
            sha256,
            notes: self.notes(),
        }
    }

    fn warm(&self) -> Result<(), ModelError> {
        self.load()
    }

    fn chat(
        &self,
        request: &ChatRequest,
        call: ModelCall<'_>,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        let plan = Plan::of(request)?;
        if let Some(error) = slots::stop_reason(call) {
            return Err(error);
        }
        let weights = self.weights()?;
        let upstream = self.upstream();
        let job = Job {
            model: &weights,
            name: &self.settings.name,
            upstream: &upstream,
            context_length: self.context_length,
            threads: i32::try_from(self.threads).unwrap_or(i32::MAX),
            flash_attention: match self.settings.flash_attention {
                None => -1,
                Some(false) => 0,
                Some(true) => 1,
            },
            slots: &self.slots,
        };
        job.run(request, &plan, call, stream)
    }
}
