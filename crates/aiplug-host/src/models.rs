//! The model seam: what the host's `infer` calls.
//!
//! Plugins name models, never endpoints. The host keeps a table of model
//! names to [`ChatModel`]s; the DeepSeek/OpenAI-compatible and local llama.cpp
//! providers implement it (they arrive with the models issue), and an
//! embedding application can register its own.

use tokio_util::sync::CancellationToken;

/// Why a model call failed.
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
    /// The request is not a valid chat request.
    #[error("invalid chat request: {0}")]
    BadRequest(String),
    /// The call was cancelled or hit its deadline.
    #[error("the model call was cancelled or hit its deadline")]
    Cancelled,
    /// The provider failed.
    #[error("model {model:?} failed: {message}")]
    Provider {
        /// The model.
        model: String,
        /// What the provider said.
        message: String,
    },
}

/// A chat model. Requests and responses are OpenAI-style chat-completion
/// JSON documents, so the same shape flows from HTTP clients, the CLI and
/// plugins to every provider.
pub trait ChatModel: Send + Sync {
    /// Runs one chat completion. Implementations poll `cancel` and stop early
    /// when it fires.
    fn chat(
        &self,
        request: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ModelError>;
}
