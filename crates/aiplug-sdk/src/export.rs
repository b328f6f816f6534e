//! The C entry points [`export_plugin!`](crate::export_plugin) wires up: one
//! generic thunk per hook that turns the raw ABI into the safe [`Plugin`]
//! trait, catches panics, and hands output back in plugin-owned buffers.
//!
//! This module is the SDK's side of the ABI boundary, the one place in the
//! SDK with `unsafe` code.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use aiplug_abi::{
    AiplugBuf, AiplugCallCtx, AiplugMetadata, AiplugPluginVtable, AiplugStr, AIPLUG_STATUS_CANCELLED,
    AIPLUG_STATUS_ERROR, AIPLUG_STATUS_OK, AIPLUG_STATUS_PANIC, AIPLUG_STATUS_REJECT,
    AIPLUG_STATUS_UNSUPPORTED,
};

use crate::{Context, Error, ErrorKind, Hooks, Plugin, Verdict};

/// Holds the live plugin instance between `on_load` and `on_unload`.
///
/// A plain atomic pointer, so a hook call costs one atomic load: the ABI
/// guarantees `on_unload` never runs while another hook of the same library
/// does, which is what makes reading the pointer without a lock sound.
#[doc(hidden)]
pub struct Slot<T> {
    ptr: AtomicPtr<T>,
}

impl<T> Slot<T> {
    /// An empty slot.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slot<T> {
        Slot {
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn get(&self) -> Result<&T, Error> {
        let ptr = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `put` and is
        // only freed by `take`, which the host never runs concurrently with a
        // hook (ABI contract), so it is valid while this hook runs.
        unsafe { ptr.as_ref() }.ok_or_else(|| Error::new("plugin is not loaded (on_load has not run)"))
    }

    fn put(&self, value: T) -> bool {
        let fresh = Box::into_raw(Box::new(value));
        let installed = self
            .ptr
            .compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !installed {
            // SAFETY: `fresh` was never shared; reclaim it.
            drop(unsafe { Box::from_raw(fresh) });
        }
        installed
    }

    fn take(&self) -> Option<T> {
        let ptr = self.ptr.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: non-null pointers come from `Box::into_raw` in `put`; the
        // swap makes this the only owner.
        (!ptr.is_null()).then(|| *unsafe { Box::from_raw(ptr) })
    }
}

/// The metadata a plugin returns, built once.
#[doc(hidden)]
pub struct MetadataCell {
    cell: OnceLock<(Box<[AiplugStr]>, AiplugMetadata)>,
}

impl MetadataCell {
    /// An empty cell.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> MetadataCell {
        MetadataCell {
            cell: OnceLock::new(),
        }
    }
}

/// Implemented by [`export_plugin!`](crate::export_plugin): where the
/// exported type keeps its instance and metadata.
#[doc(hidden)]
pub trait Exported: Plugin {
    fn slot() -> &'static Slot<Self>;
    fn metadata_cell() -> &'static MetadataCell;
}

/// What a hook produced, before it is written to the ABI.
enum Outcome {
    Output(Vec<u8>),
    Reject(String),
}

/// Runs `body`, catching panics, and writes the result to `out`.
fn guard(out: *mut AiplugBuf, body: impl FnOnce() -> Result<Outcome, Error>) -> i32 {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(Outcome::Output(bytes))) => (AIPLUG_STATUS_OK, bytes),
        Ok(Ok(Outcome::Reject(reason))) => (AIPLUG_STATUS_REJECT, reason.into_bytes()),
        Ok(Err(error)) => {
            let status = match error.kind() {
                ErrorKind::Cancelled => AIPLUG_STATUS_CANCELLED,
                ErrorKind::Unsupported => AIPLUG_STATUS_UNSUPPORTED,
                _ => AIPLUG_STATUS_ERROR,
            };
            (status, error.message().as_bytes().to_vec())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            (
                AIPLUG_STATUS_PANIC,
                format!("plugin panicked: {what}").into_bytes(),
            )
        }
    };
    write_out(out, bytes);
    status
}

/// Hands `bytes` to the host as a plugin-owned buffer (null when empty).
fn write_out(out: *mut AiplugBuf, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    let buf = if bytes.is_empty() {
        AiplugBuf::EMPTY
    } else {
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        AiplugBuf {
            ptr: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    };
    // SAFETY: the host passes a valid, writable `out` for the call.
    unsafe { out.write(buf) };
}

/// Reads a borrowed UTF-8 view, failing (not panicking) on invalid text.
///
/// # Safety
/// The view must be valid for the call, as the host guarantees.
unsafe fn text<'a>(view: AiplugStr, what: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded to the caller.
    let bytes = unsafe { view.as_bytes() };
    std::str::from_utf8(bytes).map_err(|e| Error::new(format!("{what} is not valid UTF-8: {e}")))
}

unsafe extern "C" fn metadata<T: Exported>() -> *const AiplugMetadata {
    let (_, meta) = T::metadata_cell().cell.get_or_init(|| {
        let tasks: Box<[AiplugStr]> = T::TASKS.iter().map(|t| AiplugStr::from_str(t)).collect();
        let meta = AiplugMetadata {
            id: AiplugStr::from_str(T::ID),
            version: AiplugStr::from_str(T::VERSION),
            tasks: if tasks.is_empty() {
                std::ptr::null()
            } else {
                tasks.as_ptr()
            },
            tasks_len: tasks.len(),
        };
        (tasks, meta)
    });
    meta
}

unsafe extern "C" fn free_buf(buf: AiplugBuf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: non-null buffers handed out by `write_out` are boxed slices of
    // exactly `len` bytes, and the host frees each once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.ptr, buf.len)) });
}

unsafe extern "C" fn on_load<T: Exported>(
    ctx: *const AiplugCallCtx,
    config_json: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: ctx and views are valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        let config = unsafe { text(config_json, "config") }?;
        let config = if config.is_empty() { "{}" } else { config };
        // Idempotent: a second on_load keeps the first instance.
        if T::slot().get().is_err() {
            T::slot().put(T::load(&cx, config)?);
        }
        Ok(Outcome::Output(Vec::new()))
    })
}

unsafe extern "C" fn on_request<T: Exported>(
    ctx: *const AiplugCallCtx,
    request_json: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: ctx and views are valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        let request = unsafe { text(request_json, "request") }?;
        Ok(match T::slot().get()?.on_request(&cx, request)? {
            Verdict::Continue => Outcome::Output(Vec::new()),
            Verdict::Rewrite(json) => Outcome::Output(json.into_bytes()),
            Verdict::Reject(reason) => Outcome::Reject(reason),
        })
    })
}

unsafe extern "C" fn invoke<T: Exported>(
    ctx: *const AiplugCallCtx,
    input: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: ctx and views are valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        let input = unsafe { input.as_bytes() };
        T::slot().get()?.invoke(&cx, input).map(Outcome::Output)
    })
}

unsafe extern "C" fn on_response<T: Exported>(
    ctx: *const AiplugCallCtx,
    request_json: AiplugStr,
    response_json: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: ctx and views are valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        let request = unsafe { text(request_json, "request") }?;
        let response = unsafe { text(response_json, "response") }?;
        let replaced = T::slot().get()?.on_response(&cx, request, response)?;
        Ok(Outcome::Output(
            replaced.map(String::into_bytes).unwrap_or_default(),
        ))
    })
}

unsafe extern "C" fn on_session_end<T: Exported>(
    ctx: *const AiplugCallCtx,
    session_id: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: ctx and views are valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        let session = unsafe { text(session_id, "session id") }?;
        T::slot().get()?.on_session_end(&cx, session)?;
        Ok(Outcome::Output(Vec::new()))
    })
}

unsafe extern "C" fn on_unload<T: Exported>(ctx: *const AiplugCallCtx, out: *mut AiplugBuf) -> i32 {
    guard(out, || {
        // SAFETY: ctx is valid for this call (ABI contract).
        let cx = unsafe { Context::from_raw(ctx) };
        // Never loaded or already unloaded: nothing to release.
        if let Some(plugin) = T::slot().take() {
            plugin.unload(&cx)?;
        }
        Ok(Outcome::Output(Vec::new()))
    })
}

/// The vtable for `T`, with entries for exactly the hooks `T::HOOKS` lists.
#[doc(hidden)]
pub const fn vtable<T: Exported>() -> AiplugPluginVtable {
    let hooks = T::HOOKS;
    AiplugPluginVtable {
        metadata: Some(metadata::<T>),
        free_buf: Some(free_buf),
        on_load: Some(on_load::<T>),
        on_request: if hooks.contains(Hooks::ON_REQUEST) {
            Some(on_request::<T> as _)
        } else {
            None
        },
        invoke: if hooks.contains(Hooks::INVOKE) {
            Some(invoke::<T> as _)
        } else {
            None
        },
        on_response: if hooks.contains(Hooks::ON_RESPONSE) {
            Some(on_response::<T> as _)
        } else {
            None
        },
        on_session_end: if hooks.contains(Hooks::ON_SESSION_END) {
            Some(on_session_end::<T> as _)
        } else {
            None
        },
        on_unload: Some(on_unload::<T>),
        ..AiplugPluginVtable::EMPTY
    }
}

/// Exports a [`Plugin`] type as this library's aiplug entry point.
///
/// Use it once per `cdylib`:
///
/// ```
/// struct Shout;
/// impl aiplug_sdk::Plugin for Shout {
///     const ID: &'static str = "shout";
///     const VERSION: &'static str = "0.1.0";
///     const TASKS: &'static [&'static str] = &["shout"];
///     const HOOKS: aiplug_sdk::Hooks = aiplug_sdk::Hooks::INVOKE;
///     fn load(_: &aiplug_sdk::Context<'_>, _: &str) -> Result<Self, aiplug_sdk::Error> { Ok(Shout) }
///     fn invoke(&self, _: &aiplug_sdk::Context<'_>, input: &[u8]) -> Result<Vec<u8>, aiplug_sdk::Error> {
///         Ok(input.to_ascii_uppercase())
///     }
/// }
/// aiplug_sdk::export_plugin!(Shout);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            static SLOT: $crate::__private::Slot<$plugin> = $crate::__private::Slot::new();
            static METADATA: $crate::__private::MetadataCell = $crate::__private::MetadataCell::new();
            static VTABLE: $crate::__private::AiplugPluginVtable = $crate::__private::vtable::<$plugin>();

            impl $crate::__private::Exported for $plugin {
                fn slot() -> &'static $crate::__private::Slot<Self> {
                    &SLOT
                }
                fn metadata_cell() -> &'static $crate::__private::MetadataCell {
                    &METADATA
                }
            }

            /// The aiplug entry point: returns this plugin's vtable.
            #[unsafe(no_mangle)]
            pub extern "C" fn aiplug_plugin_entry() -> *const $crate::__private::AiplugPluginVtable {
                &VTABLE
            }
        };
    };
}
