//! Loaders: turn a verified artefact into a running [`Instance`], one module
//! per tier. Everything above this module (registry, pipeline, CLI, server)
//! sees only [`Instance`] and never cares which tier a plugin is.

#[cfg(feature = "native")]
pub(crate) mod format;
#[cfg(feature = "native")]
pub(crate) mod native;
#[cfg(feature = "wasm")]
pub(crate) mod wasm;

use std::collections::BTreeSet;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::manifest::Hook;

/// How a hook call failed, before the host adds which plugin and hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookFailure {
    pub(crate) status: HookStatus,
    pub(crate) message: String,
}

/// The failure classes of the ABI's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookStatus {
    Failed,
    Panicked,
    Cancelled,
    Unsupported,
    Rejected,
    /// A sandboxed plugin trapped; its instance was discarded.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    Trapped,
    /// A sandboxed plugin was stopped by a limit; its instance was discarded.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    Limit(crate::error::Limit),
}

/// What a request filter decided.
pub(crate) enum FilterOutcome {
    Continue,
    Rewrite(Output),
    Reject(String),
}

/// Output a plugin produced. Native output stays in the plugin's own buffer
/// (no copy) and is released through the plugin's `free_buf` on drop.
pub struct Output(OutputRepr);

enum OutputRepr {
    #[cfg(feature = "native")]
    Native(native::NativeBuf),
    #[allow(dead_code)] // used by tiers that produce host-owned output
    Owned(Vec<u8>),
}

impl Output {
    /// The bytes as UTF-8 text, replacing invalid sequences.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self)
    }
}

impl std::ops::Deref for Output {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            #[cfg(feature = "native")]
            OutputRepr::Native(buf) => buf.as_bytes(),
            OutputRepr::Owned(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Output({:?})", self.to_string_lossy())
    }
}

/// The host services a plugin reaches through the host API table. The host
/// implements this; loaders only forward to it.
pub(crate) trait HostServices: Send + Sync {
    fn log(&self, plugin: &str, level: u32, message: &str);
    /// Runs a chat completion on behalf of `scope`'s plugin; returns the
    /// response JSON or the failure.
    fn infer(&self, scope: &CallScope<'_>, model: &str, request_json: &[u8]) -> Result<Vec<u8>, HookFailure>;
    fn session_get(&self, plugin: &str, session: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn session_set(&self, plugin: &str, session: &str, key: &str, value: &[u8]) -> Result<(), String>;
    fn session_delete(&self, plugin: &str, session: &str, key: &str) -> Result<(), String>;
}

/// Everything one hook call carries: who is called, on behalf of which
/// session, how to cancel it, and how deep in plugin-calls-plugin nesting it is.
pub(crate) struct CallScope<'a> {
    pub(crate) services: &'a dyn HostServices,
    pub(crate) plugin_id: &'a str,
    pub(crate) session_id: &'a str,
    pub(crate) request_id: &'a str,
    /// The task asked for (invoke by task name), else empty.
    pub(crate) task: &'a str,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) deadline: Option<Instant>,
    pub(crate) depth: u32,
    /// The model-time account of the call this hook serves, if any.
    pub(crate) stats: Option<&'a std::sync::Arc<crate::observe::CallStats>>,
}

impl CallScope<'_> {
    /// Whether the call was cancelled or is past its deadline.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// A loaded plugin of either tier.
pub(crate) trait Instance: Send + Sync {
    /// Hooks the artefact provides.
    fn hooks(&self) -> BTreeSet<Hook>;
    fn on_load(&self, scope: &CallScope<'_>, config_json: &str) -> Result<(), HookFailure>;
    fn on_request(&self, scope: &CallScope<'_>, request_json: &[u8]) -> Result<FilterOutcome, HookFailure>;
    fn invoke(&self, scope: &CallScope<'_>, input: &[u8]) -> Result<Output, HookFailure>;
    fn on_response(
        &self,
        scope: &CallScope<'_>,
        request_json: &[u8],
        response_json: &[u8],
    ) -> Result<Option<Output>, HookFailure>;
    fn on_session_end(&self, scope: &CallScope<'_>, session_id: &str) -> Result<(), HookFailure>;
    fn on_unload(&self, scope: &CallScope<'_>) -> Result<(), HookFailure>;
}
