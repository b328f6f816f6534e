//! The native tier: shared libraries with the C ABI of `aiplug-abi`.
//!
//! This module and `aiplug-abi` are the only places with `unsafe` code in
//! the host. The invariants it relies on:
//! - the library was checked by the format stage and its vtable by the ABI
//!   stage before any hook is called;
//! - the library is opened from a private temp copy of the exact bytes that
//!   were hashed, so what runs is what was verified, and the file on disk
//!   stays replaceable; the copy is unlinked as soon as it is mapped, so
//!   nothing is left in the temp directory even when the process is killed
//!   (its name has 16 random characters: the dynamic loader matches open
//!   libraries by name, and a later copy must never be taken for an old
//!   one);
//! - the `Library` outlives every function pointer and buffer taken from it:
//!   both are only reachable through an `Arc<NativeLibrary>`;
//! - views passed to the plugin borrow host data that outlives the call.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aiplug_abi::{
    AiplugBuf, AiplugCallCtx, AiplugEntryFn, AiplugHostApi, AiplugMetadata, AiplugPluginVtable, AiplugStr,
    AIPLUG_ABI_MAJOR, AIPLUG_ABI_MINOR, AIPLUG_ENTRY_SYMBOL, AIPLUG_STATUS_CANCELLED, AIPLUG_STATUS_ERROR,
    AIPLUG_STATUS_NOT_FOUND, AIPLUG_STATUS_OK, AIPLUG_STATUS_PANIC, AIPLUG_STATUS_REJECT,
    AIPLUG_STATUS_UNSUPPORTED, AIPLUG_VTABLE_MIN_SIZE,
};
use libloading::Library;
use tempfile::TempPath;

use super::{CallScope, FilterOutcome, HookFailure, HookStatus, Instance, Output, OutputRepr};
use crate::error::{AbiError, SymbolsError};
use crate::manifest::Hook;

/// What the library says about itself (copied out of plugin memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NativeMetadata {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) tasks: Vec<String>,
}

/// An opened plugin library with its validated vtable.
pub(crate) struct NativeLibrary {
    /// The vtable entries the plugin's `size` covers; the rest stay `None`.
    vtable: AiplugPluginVtable,
    /// `None` only during drop.
    library: Option<Library>,
    /// Whether `dlclose` is safe (false for Go and other unloadable runtimes).
    unloadable: bool,
}

/// Why opening failed, by stage.
pub(crate) enum OpenError {
    Symbols(SymbolsError),
    Abi(AbiError),
}

impl NativeLibrary {
    /// Writes `verified_bytes` (the artefact, already hashed and format
    /// checked) to a private temp copy, opens it, and validates the vtable.
    pub(crate) fn open(
        artefact: &Path,
        verified_bytes: &[u8],
        unloadable: bool,
    ) -> Result<(NativeLibrary, NativeMetadata), OpenError> {
        let open_failed = |reason: String| {
            OpenError::Symbols(SymbolsError::Open {
                path: artefact.to_path_buf(),
                reason,
            })
        };
        let copy = write_private_copy(artefact, verified_bytes)
            .map_err(|e| open_failed(format!("cannot make a private copy to load from: {e}")))?;
        let opened = open_now(&copy);
        // Mapped (or refused): the file is not needed any more.
        if let Err(e) = copy.close() {
            tracing::warn!(artefact = %artefact.display(), error = %e, "cannot remove the private copy of a plugin library");
        }
        let library = opened.map_err(|e| open_failed(e.to_string()))?;

        // SAFETY: the symbol's type is the ABI's entry type; a library that
        // exports the name with another type breaks the ABI contract, which
        // the format/ABI stages cannot detect for arbitrary code.
        let entry: AiplugEntryFn = match unsafe { library.get::<AiplugEntryFn>(AIPLUG_ENTRY_SYMBOL) } {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(OpenError::Symbols(SymbolsError::MissingEntry {
                    path: artefact.to_path_buf(),
                    symbol: "aiplug_plugin_entry",
                }))
            }
        };
        // SAFETY: `entry` is the plugin's entry function (see above); it takes
        // no arguments and the library stays open while we use the result.
        let raw = unsafe { entry() };
        let vtable = read_vtable(raw).map_err(OpenError::Abi)?;
        let native = NativeLibrary {
            vtable,
            library: Some(library),
            unloadable,
        };
        let metadata = native.metadata().map_err(OpenError::Abi)?;
        Ok((native, metadata))
    }

    fn metadata(&self) -> Result<NativeMetadata, AbiError> {
        let metadata_fn = self
            .vtable
            .metadata
            .ok_or(AbiError::MissingRequired { entry: "metadata" })?;
        // SAFETY: `metadata` is a validated vtable entry of an open library.
        let raw = unsafe { metadata_fn() };
        // SAFETY: the plugin returns null or a pointer to metadata that stays
        // valid until the library is closed (ABI contract); we copy it out now.
        let meta: &AiplugMetadata = unsafe { raw.as_ref() }.ok_or(AbiError::BadMetadata {
            reason: "metadata() returned null".into(),
        })?;
        let text = |view: AiplugStr, what: &str| -> Result<String, AbiError> {
            // SAFETY: metadata views are valid while the library is open.
            let bytes = unsafe { view.as_bytes() };
            String::from_utf8(bytes.to_vec()).map_err(|_| AbiError::BadMetadata {
                reason: format!("{what} is not UTF-8"),
            })
        };
        let tasks: &[AiplugStr] = if meta.tasks.is_null() || meta.tasks_len == 0 {
            &[]
        } else {
            // SAFETY: the plugin promises `tasks_len` valid views at `tasks`.
            unsafe { std::slice::from_raw_parts(meta.tasks, meta.tasks_len) }
        };
        Ok(NativeMetadata {
            id: text(meta.id, "id")?,
            version: text(meta.version, "version")?,
            tasks: tasks
                .iter()
                .map(|t| text(*t, "a task name"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Calls one hook: builds the call context around `scope`, runs `call`
    /// with it and an output slot, and turns status and output into a result.
    fn call(
        self: &Arc<Self>,
        scope: &CallScope<'_>,
        call: impl FnOnce(*const AiplugCallCtx, *mut AiplugBuf) -> i32,
    ) -> Result<Option<Output>, (HookStatus, String)> {
        let ctx = AiplugCallCtx {
            host: &HOST_API,
            call: (scope as *const CallScope<'_>).cast::<c_void>(),
            session_id: AiplugStr::from_str(scope.session_id),
            request_id: AiplugStr::from_str(scope.request_id),
            task: AiplugStr::from_str(scope.task),
            deadline_unix_ms: scope.deadline.map_or(0, unix_ms),
        };
        let mut out = AiplugBuf::EMPTY;
        let status = call(&ctx, &mut out);
        let output = (!out.is_empty()).then(|| {
            Output(OutputRepr::Native(NativeBuf {
                buf: out,
                library: Arc::clone(self),
            }))
        });
        let failed = |status| {
            let message = output
                .as_ref()
                .map(|o| o.to_string_lossy().into_owned())
                .unwrap_or_default();
            Err((status, message))
        };
        match status {
            AIPLUG_STATUS_OK => Ok(output),
            AIPLUG_STATUS_REJECT => failed(HookStatus::Rejected),
            AIPLUG_STATUS_PANIC => failed(HookStatus::Panicked),
            AIPLUG_STATUS_CANCELLED => failed(HookStatus::Cancelled),
            AIPLUG_STATUS_UNSUPPORTED => failed(HookStatus::Unsupported),
            _ => failed(HookStatus::Failed),
        }
    }
}

/// A native plugin as the host's tier-independent [`Instance`].
pub(crate) struct NativePlugin {
    library: Arc<NativeLibrary>,
}

impl NativePlugin {
    pub(crate) fn new(library: NativeLibrary) -> NativePlugin {
        NativePlugin {
            library: Arc::new(library),
        }
    }
}

fn unsupported(hook: &str) -> HookFailure {
    HookFailure {
        status: HookStatus::Unsupported,
        message: format!("the plugin does not export `{hook}`"),
    }
}

fn to_failure((status, message): (HookStatus, String)) -> HookFailure {
    HookFailure { status, message }
}

impl Instance for NativePlugin {
    fn hooks(&self) -> BTreeSet<Hook> {
        let v = &self.library.vtable;
        [
            (v.on_request.is_some(), Hook::OnRequest),
            (v.invoke.is_some(), Hook::Invoke),
            (v.on_response.is_some(), Hook::OnResponse),
            (v.on_session_end.is_some(), Hook::OnSessionEnd),
        ]
        .into_iter()
        .filter_map(|(present, hook)| present.then_some(hook))
        .collect()
    }

    fn on_load(&self, scope: &CallScope<'_>, config_json: &str) -> Result<(), HookFailure> {
        let Some(on_load) = self.library.vtable.on_load else {
            return Ok(()); // nothing to initialise
        };
        self.library
            .call(scope, |ctx, out| {
                // SAFETY: validated entry of an open library; ctx, the config
                // view and out are valid for the call.
                unsafe { on_load(ctx, AiplugStr::from_str(config_json), out) }
            })
            .map(drop)
            .map_err(to_failure)
    }

    fn on_request(&self, scope: &CallScope<'_>, request_json: &[u8]) -> Result<FilterOutcome, HookFailure> {
        let on_request = self
            .library
            .vtable
            .on_request
            .ok_or_else(|| unsupported("on_request"))?;
        let result = self.library.call(scope, |ctx, out| {
            // SAFETY: validated entry of an open library; ctx, the request
            // view and out are valid for the call.
            unsafe { on_request(ctx, AiplugStr::from_bytes(request_json), out) }
        });
        match result {
            Ok(None) => Ok(FilterOutcome::Continue),
            Ok(Some(rewritten)) => Ok(FilterOutcome::Rewrite(rewritten)),
            Err((HookStatus::Rejected, reason)) => Ok(FilterOutcome::Reject(reason)),
            Err(other) => Err(to_failure(other)),
        }
    }

    fn invoke(&self, scope: &CallScope<'_>, input: &[u8]) -> Result<Output, HookFailure> {
        let invoke = self.library.vtable.invoke.ok_or_else(|| unsupported("invoke"))?;
        self.library
            .call(scope, |ctx, out| {
                // SAFETY: validated entry of an open library; ctx, the input
                // view (borrowed, not copied) and out are valid for the call.
                unsafe { invoke(ctx, AiplugStr::from_bytes(input), out) }
            })
            .map(|output| output.unwrap_or(Output(OutputRepr::Owned(Vec::new()))))
            .map_err(to_failure)
    }

    fn on_response(
        &self,
        scope: &CallScope<'_>,
        request_json: &[u8],
        response_json: &[u8],
    ) -> Result<Option<Output>, HookFailure> {
        let on_response = self
            .library
            .vtable
            .on_response
            .ok_or_else(|| unsupported("on_response"))?;
        self.library
            .call(scope, |ctx, out| {
                // SAFETY: validated entry; views and out are valid for the call.
                unsafe {
                    on_response(
                        ctx,
                        AiplugStr::from_bytes(request_json),
                        AiplugStr::from_bytes(response_json),
                        out,
                    )
                }
            })
            .map_err(to_failure)
    }

    fn on_session_end(&self, scope: &CallScope<'_>, session_id: &str) -> Result<(), HookFailure> {
        let Some(on_session_end) = self.library.vtable.on_session_end else {
            return Ok(());
        };
        self.library
            .call(scope, |ctx, out| {
                // SAFETY: validated entry; views and out are valid for the call.
                unsafe { on_session_end(ctx, AiplugStr::from_str(session_id), out) }
            })
            .map(drop)
            .map_err(to_failure)
    }

    fn on_unload(&self, scope: &CallScope<'_>) -> Result<(), HookFailure> {
        let Some(on_unload) = self.library.vtable.on_unload else {
            return Ok(());
        };
        self.library
            .call(scope, |ctx, out| {
                // SAFETY: validated entry; the host calls this only after every
                // other call of this plugin finished (ABI contract).
                unsafe { on_unload(ctx, out) }
            })
            .map(drop)
            .map_err(to_failure)
    }
}

/// A buffer the plugin allocated, released through the plugin's own
/// `free_buf` when dropped. Holds the library open until then.
pub(crate) struct NativeBuf {
    buf: AiplugBuf,
    library: Arc<NativeLibrary>,
}

// SAFETY: the buffer is exclusively owned plain bytes; the ABI requires
// `free_buf` to be callable from any thread.
unsafe impl Send for NativeBuf {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for NativeBuf {}

impl NativeBuf {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: the plugin filled `len` bytes at `ptr`, valid until we call
        // its `free_buf` in drop; `self` keeps the library open.
        unsafe { self.buf.as_bytes() }
    }
}

impl Drop for NativeBuf {
    fn drop(&mut self) {
        if let Some(free_buf) = self.library.vtable.free_buf {
            let buf = std::mem::replace(&mut self.buf, AiplugBuf::EMPTY);
            // SAFETY: `buf` came from this plugin and is freed exactly once,
            // by the plugin's own allocator; the library is still open.
            unsafe { free_buf(buf) };
        }
    }
}

impl Drop for NativeLibrary {
    fn drop(&mut self) {
        let Some(library) = self.library.take() else {
            return;
        };
        if self.unloadable {
            if let Err(e) = library.close() {
                tracing::warn!(error = %e, "dlclose of a plugin library failed; it stays mapped");
            }
        } else {
            // The manifest says this runtime can never be unloaded (Go):
            // keep it mapped for the life of the process.
            std::mem::forget(library);
        }
    }
}

/// Copies the vtable prefix the plugin declares into a host-owned vtable;
/// entries beyond the plugin's `size` stay `None`.
fn read_vtable(raw: *const AiplugPluginVtable) -> Result<AiplugPluginVtable, AbiError> {
    if raw.is_null() {
        return Err(AbiError::NullVtable);
    }
    // SAFETY: non-null; every ABI version starts with these three fields at
    // fixed offsets, so reading them is valid for any vtable version.
    let (major, size) = unsafe {
        (
            std::ptr::addr_of!((*raw).abi_major).read_unaligned(),
            std::ptr::addr_of!((*raw).size).read_unaligned(),
        )
    };
    if major != AIPLUG_ABI_MAJOR {
        return Err(AbiError::MajorMismatch {
            found: major,
            supported: AIPLUG_ABI_MAJOR,
        });
    }
    if size < AIPLUG_VTABLE_MIN_SIZE {
        return Err(AbiError::VtableTooSmall {
            size,
            min: AIPLUG_VTABLE_MIN_SIZE,
            major,
        });
    }
    let mut vtable = AiplugPluginVtable {
        metadata: None,
        free_buf: None,
        ..AiplugPluginVtable::EMPTY
    };
    let covered = size.min(std::mem::size_of::<AiplugPluginVtable>());
    // SAFETY: the plugin declares `size` readable bytes at `raw`; we copy at
    // most that many into a vtable of the same layout whose remaining entries
    // are `None` (all-zero is a valid `Option<fn>`).
    unsafe {
        std::ptr::copy_nonoverlapping(
            raw.cast::<u8>(),
            (&mut vtable as *mut AiplugPluginVtable).cast::<u8>(),
            covered,
        );
    }
    if vtable.metadata.is_none() {
        return Err(AbiError::MissingRequired { entry: "metadata" });
    }
    if vtable.free_buf.is_none() {
        return Err(AbiError::MissingRequired { entry: "free_buf" });
    }
    Ok(vtable)
}

fn write_private_copy(artefact: &Path, bytes: &[u8]) -> std::io::Result<TempPath> {
    use std::io::Write;
    let stem = artefact.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
    let suffix = artefact
        .extension()
        .and_then(|s| s.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("aiplug-{stem}-"))
        .suffix(&suffix)
        .rand_bytes(16)
        .tempfile()?;
    file.write_all(bytes)?;
    file.flush()?;
    Ok(file.into_temp_path())
}

/// Opens with all symbols bound now (RTLD_NOW), so an unresolved symbol fails
/// the load at the symbols stage instead of crashing at the first call.
#[cfg(unix)]
fn open_now(path: &Path) -> Result<Library, libloading::Error> {
    use libloading::os::unix::{Library as UnixLibrary, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: running a library's initialisers is inherent to loading native
    // plugins, which are trusted code; the file passed the format stage.
    unsafe { UnixLibrary::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Library::from)
}

#[cfg(not(unix))]
fn open_now(path: &Path) -> Result<Library, libloading::Error> {
    // SAFETY: as above.
    unsafe { Library::new(path) }
}

/// A deadline as Unix milliseconds, for `AiplugCallCtx::deadline_unix_ms`.
///
/// Derived from one (monotonic, wall) clock pair taken at first use, so a
/// call reads no clock here (clock reads were a third of the host's
/// per-call cost). A wall-clock step after start shifts the value; it is
/// informational, and plugins get the authoritative answer from the host
/// API's `cancelled()`, which uses the monotonic deadline.
fn unix_ms(deadline: Instant) -> u64 {
    static ANCHOR: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
    let (mono, wall_ms) = *ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (Instant::now(), wall)
    });
    let offset = deadline.saturating_duration_since(mono).as_millis() as u64;
    wall_ms.saturating_add(offset)
}

// ---------------------------------------------------------------------------
// The host API table handed to native plugins.

static HOST_API: AiplugHostApi = AiplugHostApi {
    abi_major: AIPLUG_ABI_MAJOR,
    abi_minor: AIPLUG_ABI_MINOR,
    size: std::mem::size_of::<AiplugHostApi>(),
    free_buf: host_free_buf,
    log: host_log,
    cancelled: host_cancelled,
    infer: host_infer,
    session_get: host_session_get,
    session_set: host_session_set,
    session_delete: host_session_delete,
};

/// The scope of the call `ctx` belongs to.
///
/// # Safety
/// `ctx` is null or a context built by [`NativeLibrary::call`] for a call
/// that is still running (plugins may only use it during the call).
unsafe fn scope_of<'a>(ctx: *const AiplugCallCtx) -> Option<&'a CallScope<'a>> {
    // SAFETY: per the function contract, `ctx.call` points to the CallScope
    // on the stack of the running `NativeLibrary::call`.
    unsafe { ctx.as_ref().and_then(|c| c.call.cast::<CallScope<'a>>().as_ref()) }
}

/// Hands `bytes` to the plugin as a host-owned buffer.
fn write_host_buf(out: *mut AiplugBuf, bytes: Vec<u8>) {
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
    // SAFETY: the plugin passes a writable `out` (ABI contract; null checked).
    unsafe { out.write(buf) };
}

/// Runs a host API body, turning a panic into an error status: a panic must
/// never unwind into plugin frames.
fn contained(out: *mut AiplugBuf, body: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        write_host_buf(out, b"the host panicked while serving this call".to_vec());
        AIPLUG_STATUS_PANIC
    })
}

unsafe extern "C" fn host_free_buf(buf: AiplugBuf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: non-null host buffers come from `write_host_buf` as boxed
    // slices of exactly `len` bytes; the plugin frees each once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.ptr, buf.len)) });
}

unsafe extern "C" fn host_log(ctx: *const AiplugCallCtx, level: u32, message: AiplugStr) {
    contained(std::ptr::null_mut(), || {
        // SAFETY: ctx comes from the running call (ABI contract); the message
        // view is valid for this call.
        if let Some(scope) = unsafe { scope_of(ctx) } {
            let text = String::from_utf8_lossy(unsafe { message.as_bytes() });
            scope.services.log(scope.plugin_id, level, &text);
        }
        AIPLUG_STATUS_OK
    });
}

unsafe extern "C" fn host_cancelled(ctx: *const AiplugCallCtx) -> bool {
    // SAFETY: ctx comes from the running call (ABI contract).
    match unsafe { scope_of(ctx) } {
        Some(scope) => scope.is_cancelled(),
        None => true, // no valid call: tell the plugin to stop
    }
}

unsafe extern "C" fn host_infer(
    ctx: *const AiplugCallCtx,
    model: AiplugStr,
    request_json: AiplugStr,
    out: *mut AiplugBuf,
) -> i32 {
    contained(out, || {
        // SAFETY: ctx and views come from the running call (ABI contract).
        let Some(scope) = (unsafe { scope_of(ctx) }) else {
            write_host_buf(out, b"infer called outside a plugin call".to_vec());
            return AIPLUG_STATUS_ERROR;
        };
        let model = String::from_utf8_lossy(unsafe { model.as_bytes() });
        let request = unsafe { request_json.as_bytes() };
        match scope.services.infer(scope, &model, request) {
            Ok(response) => {
                write_host_buf(out, response);
                AIPLUG_STATUS_OK
            }
            Err(failure) => {
                write_host_buf(out, failure.message.into_bytes());
                match failure.status {
                    HookStatus::Cancelled => AIPLUG_STATUS_CANCELLED,
                    HookStatus::Rejected => AIPLUG_STATUS_REJECT,
                    _ => AIPLUG_STATUS_ERROR,
                }
            }
        }
    })
}

/// Decodes the key of a session call, or writes why not.
///
/// # Safety
/// As [`scope_of`]; `key` is valid for the call.
unsafe fn session_args<'a>(
    ctx: *const AiplugCallCtx,
    key: AiplugStr,
) -> Result<(&'a CallScope<'a>, &'a str), String> {
    // SAFETY: forwarded to the caller.
    let scope = unsafe { scope_of(ctx) }.ok_or("session call outside a plugin call")?;
    if scope.session_id.is_empty() {
        return Err("this call belongs to no session (the request carried no session id)".into());
    }
    // SAFETY: forwarded to the caller.
    let key = std::str::from_utf8(unsafe { key.as_bytes() }).map_err(|_| "session key is not UTF-8")?;
    Ok((scope, key))
}

unsafe extern "C" fn host_session_get(ctx: *const AiplugCallCtx, key: AiplugStr, out: *mut AiplugBuf) -> i32 {
    contained(out, || {
        // SAFETY: ctx and key come from the running call (ABI contract).
        let result = unsafe { session_args(ctx, key) }
            .and_then(|(scope, key)| scope.services.session_get(scope.plugin_id, scope.session_id, key));
        match result {
            Ok(Some(value)) => {
                write_host_buf(out, value);
                AIPLUG_STATUS_OK
            }
            Ok(None) => AIPLUG_STATUS_NOT_FOUND,
            Err(message) => {
                write_host_buf(out, message.into_bytes());
                AIPLUG_STATUS_ERROR
            }
        }
    })
}

unsafe extern "C" fn host_session_set(ctx: *const AiplugCallCtx, key: AiplugStr, value: AiplugStr) -> i32 {
    contained(std::ptr::null_mut(), || {
        // SAFETY: ctx, key and value come from the running call (ABI contract).
        let value = unsafe { value.as_bytes() };
        let result = unsafe { session_args(ctx, key) }.and_then(|(scope, key)| {
            scope
                .services
                .session_set(scope.plugin_id, scope.session_id, key, value)
        });
        if result.is_ok() {
            AIPLUG_STATUS_OK
        } else {
            AIPLUG_STATUS_ERROR
        }
    })
}

unsafe extern "C" fn host_session_delete(ctx: *const AiplugCallCtx, key: AiplugStr) -> i32 {
    contained(std::ptr::null_mut(), || {
        // SAFETY: ctx and key come from the running call (ABI contract).
        let result = unsafe { session_args(ctx, key) }.and_then(|(scope, key)| {
            scope
                .services
                .session_delete(scope.plugin_id, scope.session_id, key)
        });
        if result.is_ok() {
            AIPLUG_STATUS_OK
        } else {
            AIPLUG_STATUS_ERROR
        }
    })
}
