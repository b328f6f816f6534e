//! The wasm side of the SDK (`--target wasm32-wasip2`): the same
//! [`Plugin`] trait and [`Context`] as the native side, on top of the guest
//! bindings of the `aiplug:plugin` world in `wit/`.
//!
//! [`export_plugin!`](crate::export_plugin) exports [`Adapter<P>`], which
//! implements the world's `guest` interface by forwarding to `P`. A wasm
//! instance runs one call at a time; the host keeps a pool of instances, each
//! with its own `P` created by `on_load`. A panic aborts the instance (wasm
//! has no unwinding): the panic hook logs the message at error level first,
//! and the host reports the call as panicked and drops the instance.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, ErrorKind, Hooks, Level, Plugin, Verdict};

/// The generated guest bindings of `wit/since_v0.1.0`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__aiplug_export_world",
        default_bindings_module: "aiplug_sdk::__private::bindings",
        runtime_path: "aiplug_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::aiplug::plugin::host;
use bindings::aiplug::plugin::types::{self as wit, CallInfo};
use bindings::exports::aiplug::plugin::guest;

/// The context of one hook call: who is calling, the session, the deadline,
/// and the host API (`infer`, `log`, sessions, cancellation).
pub struct Context<'a> {
    info: &'a CallInfo,
}

impl<'a> Context<'a> {
    /// The session this call belongs to, if any.
    pub fn session_id(&self) -> Option<&'a str> {
        Some(self.info.session_id.as_str()).filter(|s| !s.is_empty())
    }

    /// For `invoke`: the task the caller asked for; `None` when the plugin
    /// was called by its id (or for other hooks).
    pub fn task(&self) -> Option<&'a str> {
        Some(self.info.task.as_str()).filter(|s| !s.is_empty())
    }

    /// The call's deadline, if it has one. The host stops the plugin there
    /// whether it polls or not.
    pub fn deadline(&self) -> Option<SystemTime> {
        let ms = self.info.deadline_unix_ms;
        (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Whether the caller gave up or the deadline passed.
    pub fn is_cancelled(&self) -> bool {
        host::cancelled()
    }

    /// Writes to the host's log, tagged with this plugin's id.
    pub fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    /// Runs a chat completion through the host. `request_json` is an
    /// OpenAI-style chat request; a non-empty `model` overrides its `model`
    /// field. Returns the response JSON.
    pub fn infer(&self, model: &str, request_json: &str) -> Result<String, Error> {
        host::infer(model, request_json).map_err(|e| match e {
            wit::Error::Cancelled(m) => Error::cancelled(m),
            wit::Error::Failed(m) | wit::Error::Unsupported(m) => Error::new(m),
        })
    }

    /// Reads `key` from this plugin's store for the current session.
    pub fn session_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        host::session_get(key).map_err(Error::new)
    }

    /// Stores `value` under `key` in this plugin's store for the current session.
    pub fn session_set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        host::session_set(key, value).map_err(Error::new)
    }

    /// Removes `key` from this plugin's store for the current session.
    pub fn session_delete(&self, key: &str) -> Result<(), Error> {
        host::session_delete(key).map_err(Error::new)
    }
}

fn log(level: Level, message: &str) {
    let level = match level {
        Level::Error => wit::Level::Error,
        Level::Warn => wit::Level::Warn,
        Level::Info => wit::Level::Info,
        Level::Debug => wit::Level::Debug,
        Level::Trace => wit::Level::Trace,
    };
    host::log(level, message);
}

/// Holds the instance's plugin between `on_load` and `on_unload`.
#[doc(hidden)]
pub struct Slot<T> {
    inner: Mutex<Option<Arc<T>>>,
}

impl<T> Slot<T> {
    /// An empty slot.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slot<T> {
        Slot {
            inner: Mutex::new(None),
        }
    }

    fn get(&self) -> Result<Arc<T>, Error> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::new("plugin is not loaded (on_load has not run)"))
    }
}

/// Implemented by [`export_plugin!`](crate::export_plugin): where the
/// exported type keeps its instance.
#[doc(hidden)]
pub trait Exported: Plugin {
    fn slot() -> &'static Slot<Self>;
}

/// Implements the world's `guest` interface for a [`Plugin`].
#[doc(hidden)]
pub struct Adapter<P>(PhantomData<P>);

fn wit_error(error: Error) -> wit::Error {
    let message = error.message().to_string();
    match error.kind() {
        ErrorKind::Cancelled => wit::Error::Cancelled(message),
        ErrorKind::Unsupported => wit::Error::Unsupported(message),
        _ => wit::Error::Failed(message),
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|panic| {
            // The host reports a trap that follows an error log starting
            // with "panicked" as a panic, with this message.
            log(Level::Error, &format!("panicked: {panic}"));
        }));
    });
}

impl<P: Exported> guest::Guest for Adapter<P> {
    fn metadata() -> wit::PluginMetadata {
        let mut hooks = wit::Hooks::empty();
        for (ours, theirs) in [
            (Hooks::ON_REQUEST, wit::Hooks::ON_REQUEST),
            (Hooks::INVOKE, wit::Hooks::INVOKE),
            (Hooks::ON_RESPONSE, wit::Hooks::ON_RESPONSE),
            (Hooks::ON_SESSION_END, wit::Hooks::ON_SESSION_END),
        ] {
            if P::HOOKS.contains(ours) {
                hooks |= theirs;
            }
        }
        wit::PluginMetadata {
            id: P::ID.to_string(),
            version: P::VERSION.to_string(),
            tasks: P::TASKS.iter().map(|t| t.to_string()).collect(),
            hooks,
        }
    }

    fn on_load(info: CallInfo, config_json: String) -> Result<(), wit::Error> {
        install_panic_hook();
        let mut slot = P::slot().inner.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Ok(()); // idempotent: already loaded in this instance
        }
        let plugin = P::load(&Context { info: &info }, &config_json).map_err(wit_error)?;
        *slot = Some(Arc::new(plugin));
        Ok(())
    }

    fn on_request(info: CallInfo, request_json: String) -> Result<guest::Verdict, wit::Error> {
        let plugin = P::slot().get().map_err(wit_error)?;
        match plugin.on_request(&Context { info: &info }, &request_json) {
            Ok(Verdict::Continue) => Ok(guest::Verdict::Pass),
            Ok(Verdict::Rewrite(json)) => Ok(guest::Verdict::Rewrite(json)),
            Ok(Verdict::Reject(reason)) => Ok(guest::Verdict::Reject(reason)),
            Err(e) => Err(wit_error(e)),
        }
    }

    fn invoke(info: CallInfo, input: Vec<u8>) -> Result<Vec<u8>, wit::Error> {
        let plugin = P::slot().get().map_err(wit_error)?;
        plugin.invoke(&Context { info: &info }, &input).map_err(wit_error)
    }

    fn on_response(
        info: CallInfo,
        request_json: String,
        response_json: String,
    ) -> Result<Option<String>, wit::Error> {
        let plugin = P::slot().get().map_err(wit_error)?;
        plugin
            .on_response(&Context { info: &info }, &request_json, &response_json)
            .map_err(wit_error)
    }

    fn on_session_end(info: CallInfo, session_id: String) -> Result<(), wit::Error> {
        let plugin = P::slot().get().map_err(wit_error)?;
        plugin
            .on_session_end(&Context { info: &info }, &session_id)
            .map_err(wit_error)
    }

    fn on_unload(info: CallInfo) -> Result<(), wit::Error> {
        let taken = P::slot().inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken.map(Arc::try_unwrap) {
            Some(Ok(plugin)) => plugin.unload(&Context { info: &info }).map_err(wit_error),
            _ => Ok(()),
        }
    }
}

/// Exports a [`Plugin`] type as the plugin of this wasm component.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            static SLOT: $crate::__private::Slot<$plugin> = $crate::__private::Slot::new();

            impl $crate::__private::Exported for $plugin {
                fn slot() -> &'static $crate::__private::Slot<Self> {
                    &SLOT
                }
            }
        };

        type __AiplugAdapter = $crate::__private::Adapter<$plugin>;
        $crate::__private::bindings::__aiplug_export_world!(__AiplugAdapter with_types_in $crate::__private::bindings);
    };
}
