//! Weights shared by hash: one llama.cpp backend per process, and one
//! memory-mapped model per distinct file content, however many model names
//! or paths point at it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::models::ModelError;

/// The process's llama.cpp backend, initialised on first use. llama.cpp's
/// own log lines go to `tracing` (target `llama-cpp-2`) instead of stderr.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        match LlamaBackend::init() {
            Ok(backend) => backend,
            // Someone else in this process (an embedder) initialised it; the
            // value is only a proof of initialisation, and this one is kept
            // in a static, so it is never dropped (which would mark the
            // backend uninitialised).
            Err(_) => LlamaBackend {},
        }
    })
}

/// A loaded model: the mapped weights and what every request needs from
/// them.
pub(crate) struct SharedModel {
    /// The llama.cpp model (weights memory-mapped from the file).
    pub(crate) model: LlamaModel,
    /// The file's SHA-256, the key it is shared under.
    pub(crate) sha256: String,
    /// The path it was loaded from (the first name to load it).
    pub(crate) path: PathBuf,
    /// The chat template from the GGUF metadata, when llama.cpp can apply it.
    pub(crate) template: Option<LlamaChatTemplate>,
    /// Why there is no usable template (for `info().notes`), when there is none.
    pub(crate) template_note: Option<String>,
    /// Serialises context creation: `llama_new_context_with_model` may write
    /// to the model (see `LlamaModel::new_context`), so two threads must not
    /// create contexts from one model at once. Decoding needs no lock.
    context_lock: Mutex<()>,
    /// End-of-generation tokens, for `ignore_eos` (computed on first use).
    eog: OnceLock<Vec<LlamaToken>>,
}

impl std::fmt::Debug for SharedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedModel")
            .field("sha256", &self.sha256)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How a request's context is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContextShape {
    pub(crate) n_ctx: u32,
    pub(crate) n_batch: u32,
    pub(crate) threads: i32,
    /// llama.cpp's `llama_flash_attn_type`: -1 auto, 0 off, 1 on.
    pub(crate) flash_attention: i32,
}

impl SharedModel {
    /// A new context (KV cache) for one request.
    pub(crate) fn new_context(&self, shape: ContextShape) -> Result<LlamaContext<'_>, String> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(shape.n_ctx))
            .with_n_batch(shape.n_batch)
            .with_n_ubatch(shape.n_batch)
            .with_n_seq_max(1)
            .with_n_threads(shape.threads)
            .with_n_threads_batch(shape.threads)
            .with_flash_attention_policy(shape.flash_attention);
        let _guard = self.context_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.model
            .new_context(backend(), params)
            .map_err(|e| e.to_string())
    }

    /// The model's end-of-generation tokens.
    pub(crate) fn eog_tokens(&self) -> &[LlamaToken] {
        self.eog.get_or_init(|| {
            let vocab = self.model.vocab();
            vocab.tokens().filter(|t| vocab.is_eog(*t)).collect()
        })
    }
}

/// Live models by SHA-256. Entries are weak: a model is unmapped when the
/// last [`super::LocalModel`] holding it drops it.
fn registry() -> &'static Mutex<HashMap<String, Weak<SharedModel>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<SharedModel>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The loaded model with content `sha256`, loading it from `path` if no
/// live one has it.
///
/// The registry lock is held while loading, so two names racing to load the
/// same file load it once (loading takes about 0.1 s per 100 MB, the file
/// being mapped, not read).
pub(crate) fn load(sha256: &str, path: &Path) -> Result<Arc<SharedModel>, ModelError> {
    let mut live = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(model) = live.get(sha256).and_then(Weak::upgrade) {
        return Ok(model);
    }
    live.retain(|_, weak| weak.strong_count() > 0);

    let backend = backend();
    // mmap is llama.cpp's default: the weights are file-backed pages that
    // every process mapping the same file shares too.
    let params = LlamaModelParams::default();
    let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| ModelError::ModelFile {
        path: path.display().to_string(),
        message: format!(
            "llama.cpp could not load it ({e}): the file may be damaged or use an architecture this \
             llama.cpp does not know; run with RUST_LOG=llama-cpp-2=info for llama.cpp's reason, \
             and pull the model again"
        ),
    })?;
    let (template, template_note) = usable_template(&model);
    let shared = Arc::new(SharedModel {
        model,
        sha256: sha256.to_string(),
        path: path.to_path_buf(),
        template,
        template_note,
        context_lock: Mutex::new(()),
        eog: OnceLock::new(),
    });
    live.insert(sha256.to_string(), Arc::downgrade(&shared));
    Ok(shared)
}

/// The model's chat template if llama.cpp can apply it (its built-in
/// template engine recognises the common families, not arbitrary Jinja).
fn usable_template(model: &LlamaModel) -> (Option<LlamaChatTemplate>, Option<String>) {
    let Ok(template) = model.chat_template(None) else {
        return (None, Some(super::BASE_MODEL_NOTE.to_string()));
    };
    let probe = LlamaChatMessage::new("user".into(), "hi".into()).expect("no NUL bytes");
    match model.apply_chat_template(&template, &[probe], true) {
        Ok(_) => (Some(template), None),
        Err(e) => (
            None,
            Some(format!(
                "its chat template is not one llama.cpp's template engine knows ({e}): plain completion prompt"
            )),
        ),
    }
}
