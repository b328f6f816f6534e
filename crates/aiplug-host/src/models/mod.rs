//! Models: what the host's `infer` calls.
//!
//! Plugins name models, never endpoints. The host keeps a table of model
//! names to [`ChatModel`]s: the `deepseek` provider (the DeepSeek API or any
//! OpenAI-compatible server) and the `local` provider (GGUF files on
//! llama.cpp, behind the `local-llm` feature); an embedding application can
//! register its own.

pub mod deepseek;
#[cfg(feature = "local-llm")]
pub mod local;
pub mod pull;
mod slots;
pub mod table;
pub mod weights;
pub mod wire;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use wire::{ChatChunk, ChatRequest, ChatResponse, ChunkAssembler, Message, Usage};

/// What `aiplug models` shows about a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    /// The name plugins and requests use.
    pub name: String,
    /// `deepseek`, `openai`, `local`, or an embedder's own.
    pub provider: String,
    /// The provider's id for it (DeepSeek model id, GGUF file name).
    pub upstream: String,
    /// Context length in tokens, when known.
    pub context_length: Option<u32>,
    /// Whether its weights are in memory (local) or it is reachable (remote:
    /// always true; checked at call time).
    pub loaded: bool,
    /// Size of the weights in bytes (local).
    pub size_bytes: Option<u64>,
    /// SHA-256 of the weights (local).
    pub sha256: Option<String>,
    /// Notes for people: "base model, no chat template", ...
    pub notes: Vec<String>,
}

/// The bounds of one model call: cancellation and deadline. Providers poll
/// [`ModelCall::is_cancelled`] (the local provider every token) and never
/// run past the deadline.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    /// Fires when the caller gives up.
    pub cancel: &'a CancellationToken,
    /// When the call must be done.
    pub deadline: Option<Instant>,
}

impl ModelCall<'_> {
    /// Whether the call was cancelled or is past its deadline.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Receives stream chunks as they arrive.
pub type ChunkSink<'a> = &'a mut dyn FnMut(&ChatChunk);

/// A chat model.
pub trait ChatModel: Send + Sync {
    /// What the model is (for `aiplug models` and `GET /v1/models`).
    fn info(&self) -> ModelInfo;

    /// Gets the model ready to answer (a local model maps and loads its
    /// weights), so the first request does not pay for it and a server can
    /// say when it is ready. Remote models have nothing to do.
    fn warm(&self) -> Result<(), ModelError> {
        Ok(())
    }

    /// Runs one chat completion. With `stream` set, calls it with each chunk
    /// (OpenAI's `chat.completion.chunk` shape) as the model produces it, and
    /// still returns the assembled response. Implementations stop promptly
    /// when `call` is cancelled and return [`ModelError::Cancelled`] or
    /// [`ModelError::DeadlineExceeded`].
    fn chat(
        &self,
        request: &ChatRequest,
        call: ModelCall<'_>,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError>;
}

/// Why a model call failed. Callers match on the variant: retrying a
/// [`ModelError::RateLimited`] makes sense, retrying [`ModelError::Auth`]
/// does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No model of that name is configured.
    #[error("no model named {name:?} is configured (configured: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
    /// The request did not name a model and no default is set.
    #[error("the request names no model and no default model is configured")]
    NoModel,
    /// The plugin's manifest does not grant this model.
    #[error(
        "plugin {plugin:?} may not call model {model:?}: add it to [capabilities] models in its plugin.toml"
    )]
    NotAllowed {
        /// The calling plugin.
        plugin: String,
        /// The model.
        model: String,
    },
    /// Plugins calling plugins calling models nested too deep.
    #[error("model calls nested {depth} deep (limit {limit}): a plugin's infer is re-entering the pipeline in a loop")]
    TooDeep {
        /// The depth reached.
        depth: u32,
        /// The limit.
        limit: u32,
    },
    /// The request is not valid (host-side check or the provider's 400/422).
    #[error("invalid chat request: {0}")]
    BadRequest(String),
    /// The prompt does not fit the model's context.
    #[error("the prompt is {prompt_tokens} tokens but model {model:?} has a context of {context} tokens (and needs room to answer): shorten the input")]
    ContextOverflow {
        /// The model.
        model: String,
        /// Prompt length in tokens.
        prompt_tokens: u32,
        /// Context length.
        context: u32,
    },
    /// The API key is wrong or missing (HTTP 401).
    #[error("{0}")]
    Auth(String),
    /// The account has no balance left (HTTP 402).
    #[error("insufficient balance on the model provider's account: {0}")]
    InsufficientBalance(String),
    /// The provider refused for load (HTTP 429) and retries ran out.
    #[error("the model provider is rate limiting requests: {message}")]
    RateLimited {
        /// What it said.
        message: String,
        /// How long it asked to wait.
        retry_after: Option<Duration>,
    },
    /// The provider failed (HTTP 5xx) and retries ran out.
    #[error("the model provider failed (HTTP {status}): {message}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The provider could not be reached, or the connection broke.
    #[error("cannot reach the model provider at {url}: {message}")]
    Connection {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// The provider answered something that is not the protocol (malformed
    /// JSON, a broken stream).
    #[error("the model provider sent a malformed response: {0}")]
    Protocol(String),
    /// The local model file is missing, truncated, not GGUF or not the
    /// configured one.
    #[error("model file {path}: {message}")]
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The call was cancelled.
    #[error("the model call was cancelled")]
    Cancelled,
    /// The call's deadline passed.
    #[error("the model call hit its deadline")]
    DeadlineExceeded,
    /// The provider failed in a way none of the above describes.
    #[error("model {model:?} failed: {message}")]
    Provider {
        /// The model.
        model: String,
        /// What the provider said.
        message: String,
    },
}
