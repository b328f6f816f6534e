//! The trait a plugin author implements, and the values its hooks return.

use crate::Context;

/// Which optional hooks a plugin provides. Only these get vtable entries, so
/// the host knows, for example, whether a plugin is a request filter without
/// calling it. `on_load`/`on_unload` are always exported: the SDK uses them to
/// create and drop the plugin instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hooks(u32);

impl Hooks {
    /// No optional hooks.
    pub const NONE: Hooks = Hooks(0);
    /// [`Plugin::on_request`]: a request filter.
    pub const ON_REQUEST: Hooks = Hooks(1);
    /// [`Plugin::invoke`]: a named service (its tasks are [`Plugin::TASKS`]).
    pub const INVOKE: Hooks = Hooks(1 << 1);
    /// [`Plugin::on_response`]: a response filter.
    pub const ON_RESPONSE: Hooks = Hooks(1 << 2);
    /// [`Plugin::on_session_end`].
    pub const ON_SESSION_END: Hooks = Hooks(1 << 3);

    /// Both sets.
    pub const fn with(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// Whether every hook of `other` is in `self`.
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What a request filter decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the request on unchanged (no copy is made).
    Continue,
    /// Pass this rewritten request JSON on instead.
    Rewrite(String),
    /// Refuse the request; the reason reaches the caller (HTTP 400, CLI error).
    Reject(String),
}

/// Why a hook failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The hook failed; the message says why.
    Failed,
    /// The call was cancelled or hit its deadline.
    Cancelled,
    /// The hook or task is not provided by this plugin.
    Unsupported,
}

/// A hook's error: a kind the host can act on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A failure with `message` (say what failed and what to do).
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }

    /// The call was cancelled; `what` says where the plugin stopped.
    pub fn cancelled(what: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Cancelled,
            message: what.into(),
        }
    }

    /// `what` (a hook or task) is not provided by this plugin.
    pub fn unsupported(what: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Unsupported,
            message: what.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A native aiplug plugin. Implement the hooks you need, list them in
/// [`Plugin::HOOKS`], and export the type with [`export_plugin!`](crate::export_plugin).
///
/// The host creates the instance once per loaded version through
/// [`Plugin::load`], may call the other hooks from several threads at once
/// (hence `Sync`), and calls [`Plugin::unload`] after every in-flight call has
/// finished. A panic in any hook becomes an error for that call; it never
/// unwinds into the host.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// Plugin id; must equal `id` in `plugin.toml`.
    const ID: &'static str;
    /// Plugin version (semver); must equal `version` in `plugin.toml`.
    const VERSION: &'static str;
    /// Tasks served through [`Plugin::invoke`]. Defaults to none.
    const TASKS: &'static [&'static str] = &[];
    /// Hooks this plugin provides.
    const HOOKS: Hooks;

    /// Creates the plugin from the manifest's `[config]` table (as JSON,
    /// `{}` when absent). An error refuses the load at the init stage.
    fn load(ctx: &Context<'_>, config_json: &str) -> Result<Self, Error>;

    /// Request filter: inspect the chat request JSON and continue, rewrite or
    /// reject. Default: continue.
    fn on_request(&self, ctx: &Context<'_>, request_json: &str) -> Result<Verdict, Error> {
        let _ = (ctx, request_json);
        Ok(Verdict::Continue)
    }

    /// A named service (see [`Plugin::TASKS`]). Input and output are bytes,
    /// usually UTF-8 text or JSON. Default: unsupported.
    fn invoke(&self, ctx: &Context<'_>, input: &[u8]) -> Result<Vec<u8>, Error> {
        let _ = (ctx, input);
        Err(Error::unsupported("invoke"))
    }

    /// Response filter: `Ok(None)` keeps the response, `Ok(Some(json))`
    /// replaces it. Default: keep.
    fn on_response(
        &self,
        ctx: &Context<'_>,
        request_json: &str,
        response_json: &str,
    ) -> Result<Option<String>, Error> {
        let _ = (ctx, request_json, response_json);
        Ok(None)
    }

    /// A session ended: release what the plugin kept for it. Default: nothing.
    fn on_session_end(&self, ctx: &Context<'_>, session_id: &str) -> Result<(), Error> {
        let _ = (ctx, session_id);
        Ok(())
    }

    /// The plugin is being unloaded: release everything. Default: drop.
    fn unload(self, ctx: &Context<'_>) -> Result<(), Error> {
        let _ = ctx;
        Ok(())
    }
}
