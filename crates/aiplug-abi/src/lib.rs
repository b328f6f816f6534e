//! The versioned C ABI between the aiplug host and native plugins.
//!
//! A native plugin is a shared library that exports one symbol,
//! [`AIPLUG_ENTRY_SYMBOL`], of type [`AiplugEntryFn`]. It returns a pointer to
//! an [`AiplugPluginVtable`] whose first three fields ([`AiplugPluginVtable::abi_major`],
//! [`AiplugPluginVtable::abi_minor`], [`AiplugPluginVtable::size`]) never move:
//! this is a prefix-type layout, so new optional entries are only ever appended
//! and a host reads only the entries that `size` covers.
//!
//! Rules every plugin and host follow:
//! - Strings and byte inputs cross as borrowed [`AiplugStr`] views, valid only
//!   for the duration of the call that received them: nothing is copied into
//!   the plugin.
//! - Output is returned in an [`AiplugBuf`] owned by whoever allocated it.
//!   The host releases plugin buffers with the plugin's
//!   [`AiplugPluginVtable::free_buf`]; the plugin releases host buffers with
//!   [`AiplugHostApi::free_buf`]. Never free across allocators.
//! - Every hook returns a status code (`AIPLUG_STATUS_*`); on failure the
//!   output buffer, if set, holds a UTF-8 message.
//! - A panic or exception never unwinds across the boundary (the Rust SDK
//!   wraps every entry in `catch_unwind` and returns [`AIPLUG_STATUS_PANIC`]).
//! - Output slots: the host always passes `out` initialised to `{NULL, 0}`.
//!   A plugin that leaves `ptr` NULL produced no output ("unchanged" for
//!   filters); a non-NULL `ptr` with `len` 0 is an empty document.
//! - Threads: hooks may run concurrently on any host thread (up to the
//!   plugin's `limits.max_concurrency`), so they must be thread-safe.
//!   `on_load` runs once, before any other hook; the host never calls
//!   `on_unload` while any other hook of the same plugin is running, and
//!   calls nothing after it. `ctx` and `ctx->host` are valid in every hook,
//!   `on_load` and `on_unload` included.
//!
//! The C header `include/aiplug.h` is generated from this file by cbindgen;
//! a test fails when the committed header is stale.
//!
//! This crate has no dependencies and contains only type definitions and the
//! few helpers both sides need to turn views into slices.

#![deny(missing_docs)]
#![no_std]

use core::ffi::c_void;

/// ABI major version. A host refuses a plugin whose major differs.
pub const AIPLUG_ABI_MAJOR: u32 = 1;
/// ABI minor version. A plugin with an older minor loads with newer features
/// off; entries added in newer minors are appended at the vtable's end.
pub const AIPLUG_ABI_MINOR: u32 = 0;

/// The name of the exported entry symbol, NUL-terminated for `dlsym`.
pub const AIPLUG_ENTRY_SYMBOL: &[u8] = b"aiplug_plugin_entry\0";

/// The hook succeeded. For `on_request`/`on_response` an empty output buffer
/// means "unchanged"; a non-empty one holds the rewritten document.
pub const AIPLUG_STATUS_OK: i32 = 0;
/// The hook failed; the output buffer holds the error message.
pub const AIPLUG_STATUS_ERROR: i32 = 1;
/// `on_request` only: the request is refused; the output buffer holds the reason.
pub const AIPLUG_STATUS_REJECT: i32 = 2;
/// The plugin panicked (or threw); the output buffer holds what is known.
pub const AIPLUG_STATUS_PANIC: i32 = 3;
/// The call was cancelled or hit its deadline, and the plugin gave up.
pub const AIPLUG_STATUS_CANCELLED: i32 = 4;
/// Host API `session_get`: no value stored under that key.
pub const AIPLUG_STATUS_NOT_FOUND: i32 = 5;
/// The entry exists but is not supported in this context (for example `invoke`
/// of a task the plugin does not serve).
pub const AIPLUG_STATUS_UNSUPPORTED: i32 = 6;

/// Log level for [`AiplugHostApi::log`]: error.
pub const AIPLUG_LOG_ERROR: u32 = 1;
/// Log level: warning.
pub const AIPLUG_LOG_WARN: u32 = 2;
/// Log level: information.
pub const AIPLUG_LOG_INFO: u32 = 3;
/// Log level: debug.
pub const AIPLUG_LOG_DEBUG: u32 = 4;
/// Log level: trace.
pub const AIPLUG_LOG_TRACE: u32 = 5;

/// A borrowed view of UTF-8 text or bytes. Not NUL-terminated. `ptr` may be
/// null only when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AiplugStr {
    /// First byte, or null for the empty view.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

// SAFETY: an AiplugStr is an immutable view; whoever creates one guarantees
// the bytes stay valid and unchanged while it is in use, so sharing the view
// between threads cannot introduce a data race.
unsafe impl Sync for AiplugStr {}
// SAFETY: as above; the view owns nothing.
unsafe impl Send for AiplugStr {}

impl AiplugStr {
    /// The empty view.
    pub const EMPTY: AiplugStr = AiplugStr {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A view of `bytes`; the caller keeps `bytes` alive while the view is used.
    pub const fn from_bytes(bytes: &[u8]) -> AiplugStr {
        AiplugStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// A view of `text`; the caller keeps `text` alive while the view is used.
    pub const fn from_str(text: &str) -> AiplugStr {
        AiplugStr::from_bytes(text.as_bytes())
    }

    /// The viewed bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised bytes that stay valid and
    /// unchanged for `'a` (or `len` must be 0).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: non-null and the caller guarantees `len` valid bytes for 'a.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// An owned output buffer, released by the side that allocated it (see the
/// crate docs). `ptr` null means "no output".
#[repr(C)]
#[derive(Debug)]
pub struct AiplugBuf {
    /// First byte, or null for no output.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl AiplugBuf {
    /// The empty buffer (nothing to free).
    pub const EMPTY: AiplugBuf = AiplugBuf {
        ptr: core::ptr::null_mut(),
        len: 0,
    };

    /// Whether the buffer holds nothing (null pointer).
    pub fn is_empty(&self) -> bool {
        self.ptr.is_null()
    }

    /// The buffer's bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised bytes that stay valid for `'a`
    /// (until the buffer is freed), or be null.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        // SAFETY: forwarded to the caller's guarantee.
        unsafe {
            AiplugStr {
                ptr: self.ptr,
                len: self.len,
            }
            .as_bytes()
        }
    }
}

/// What a plugin says about itself. Returned by [`AiplugPluginVtable::metadata`];
/// the plugin keeps it valid until the library is closed.
#[repr(C)]
#[derive(Debug)]
pub struct AiplugMetadata {
    /// Plugin id; must equal the manifest's `id`.
    pub id: AiplugStr,
    /// Plugin version (semver); must equal the manifest's `version`.
    pub version: AiplugStr,
    /// Task names served through `invoke` (may be null when `tasks_len` is 0).
    pub tasks: *const AiplugStr,
    /// Number of entries in `tasks`.
    pub tasks_len: usize,
}

// SAFETY: metadata is immutable after the plugin creates it and lives until
// the library is closed; sharing it between threads is read-only.
unsafe impl Sync for AiplugMetadata {}
// SAFETY: as above.
unsafe impl Send for AiplugMetadata {}

/// The context of one hook call. Valid only during that call.
#[repr(C)]
#[derive(Debug)]
pub struct AiplugCallCtx {
    /// The host API. Valid for the whole call.
    pub host: *const AiplugHostApi,
    /// Opaque host handle for this call; pass the whole context back to the
    /// host API functions, never dereference it.
    pub call: *const c_void,
    /// Session id, empty when the call belongs to no session.
    pub session_id: AiplugStr,
    /// Request id, for logs.
    pub request_id: AiplugStr,
    /// For `invoke`: the task the caller asked for, or empty when it called
    /// the plugin by id (a plugin serving several tasks dispatches on this).
    /// Empty for other hooks.
    pub task: AiplugStr,
    /// Deadline as milliseconds since the Unix epoch; 0 means none. Long work
    /// should also poll [`AiplugHostApi::cancelled`].
    pub deadline_unix_ms: u64,
}

/// Host API table, handed to every hook through [`AiplugCallCtx::host`].
/// Like the plugin vtable it starts with the ABI version and its own size;
/// entries added in later minors are appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AiplugHostApi {
    /// ABI major of the host.
    pub abi_major: u32,
    /// ABI minor of the host.
    pub abi_minor: u32,
    /// `sizeof(AiplugHostApi)` as the host was built.
    pub size: usize,
    /// Releases a buffer the host handed out (from `infer` or `session_get`).
    pub free_buf: unsafe extern "C" fn(buf: AiplugBuf),
    /// Writes `message` to the host's log at `level` (`AIPLUG_LOG_*`), tagged
    /// with the plugin id.
    pub log: unsafe extern "C" fn(ctx: *const AiplugCallCtx, level: u32, message: AiplugStr),
    /// Whether the call was cancelled or its deadline has passed. Cheap; poll
    /// it in long loops.
    pub cancelled: unsafe extern "C" fn(ctx: *const AiplugCallCtx) -> bool,
    /// Runs a chat completion through the host's model providers (and through
    /// the other plugins' filters). `request_json` is an OpenAI-style chat
    /// request; `model` overrides its `model` field when non-empty. On
    /// `AIPLUG_STATUS_OK`, `out` holds the response JSON; otherwise the error
    /// message. Either way the plugin frees `out` with `free_buf`.
    pub infer: unsafe extern "C" fn(
        ctx: *const AiplugCallCtx,
        model: AiplugStr,
        request_json: AiplugStr,
        out: *mut AiplugBuf,
    ) -> i32,
    /// Reads `key` in the (plugin, session) scope into `out` (freed with
    /// `free_buf`). Returns `AIPLUG_STATUS_NOT_FOUND` when absent.
    pub session_get:
        unsafe extern "C" fn(ctx: *const AiplugCallCtx, key: AiplugStr, out: *mut AiplugBuf) -> i32,
    /// Stores `value` under `key` in the (plugin, session) scope.
    pub session_set: unsafe extern "C" fn(ctx: *const AiplugCallCtx, key: AiplugStr, value: AiplugStr) -> i32,
    /// Removes `key` from the (plugin, session) scope; absent keys are fine.
    pub session_delete: unsafe extern "C" fn(ctx: *const AiplugCallCtx, key: AiplugStr) -> i32,
}

/// The plugin's vtable. The first three fields are fixed forever; every
/// later field is optional (null = hook not provided) except `metadata` and
/// `free_buf`, which every ABI 1.x plugin provides.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AiplugPluginVtable {
    /// Must equal the host's [`AIPLUG_ABI_MAJOR`].
    pub abi_major: u32,
    /// The minor the plugin was built against.
    pub abi_minor: u32,
    /// `sizeof(AiplugPluginVtable)` as the plugin was built; the host reads
    /// only entries this covers.
    pub size: usize,
    /// Required: returns the plugin's metadata, valid until the library is closed.
    pub metadata: Option<unsafe extern "C" fn() -> *const AiplugMetadata>,
    /// Required: releases a buffer the plugin handed out.
    pub free_buf: Option<unsafe extern "C" fn(buf: AiplugBuf)>,
    /// `on_load(ctx, config_json, out)`: `config_json` is the manifest's
    /// `[config]` table as JSON. Called once per loaded version; an error
    /// (message in `out`) refuses the load.
    pub on_load: Option<
        unsafe extern "C" fn(ctx: *const AiplugCallCtx, config_json: AiplugStr, out: *mut AiplugBuf) -> i32,
    >,
    /// Request filter `on_request(ctx, request_json, out)`: OK with empty
    /// `out` continues unchanged, OK with `out` set continues with the
    /// rewritten request, `AIPLUG_STATUS_REJECT` refuses with `out` as reason.
    pub on_request: Option<
        unsafe extern "C" fn(ctx: *const AiplugCallCtx, request_json: AiplugStr, out: *mut AiplugBuf) -> i32,
    >,
    /// Named service `invoke(ctx, input, out)`: `out` holds the result.
    pub invoke:
        Option<unsafe extern "C" fn(ctx: *const AiplugCallCtx, input: AiplugStr, out: *mut AiplugBuf) -> i32>,
    /// Response filter `on_response(ctx, request_json, response_json, out)`:
    /// empty `out` keeps the response, `out` set replaces it.
    pub on_response: Option<
        unsafe extern "C" fn(
            ctx: *const AiplugCallCtx,
            request_json: AiplugStr,
            response_json: AiplugStr,
            out: *mut AiplugBuf,
        ) -> i32,
    >,
    /// `on_session_end(ctx, session_id, out)`: release per-session resources.
    pub on_session_end: Option<
        unsafe extern "C" fn(ctx: *const AiplugCallCtx, session_id: AiplugStr, out: *mut AiplugBuf) -> i32,
    >,
    /// `on_unload(ctx, out)`: release everything; the library may be closed after.
    pub on_unload: Option<unsafe extern "C" fn(ctx: *const AiplugCallCtx, out: *mut AiplugBuf) -> i32>,
}

/// Type of the exported entry symbol: returns the plugin's vtable, valid until
/// the library is closed, or null when the plugin cannot run here.
pub type AiplugEntryFn = unsafe extern "C" fn() -> *const AiplugPluginVtable;

/// The smallest `size` an ABI 1.x vtable may declare: it must cover the
/// required `metadata` and `free_buf` entries.
pub const AIPLUG_VTABLE_MIN_SIZE: usize = core::mem::offset_of!(AiplugPluginVtable, free_buf)
    + core::mem::size_of::<Option<unsafe extern "C" fn(AiplugBuf)>>();

impl AiplugPluginVtable {
    /// A vtable of this ABI version with no entries, for building on.
    pub const EMPTY: AiplugPluginVtable = AiplugPluginVtable {
        abi_major: AIPLUG_ABI_MAJOR,
        abi_minor: AIPLUG_ABI_MINOR,
        size: core::mem::size_of::<AiplugPluginVtable>(),
        metadata: None,
        free_buf: None,
        on_load: None,
        on_request: None,
        invoke: None,
        on_response: None,
        on_session_end: None,
        on_unload: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_fields_never_move() {
        assert_eq!(core::mem::offset_of!(AiplugPluginVtable, abi_major), 0);
        assert_eq!(core::mem::offset_of!(AiplugPluginVtable, abi_minor), 4);
        assert_eq!(core::mem::offset_of!(AiplugPluginVtable, size), 8);
        assert_eq!(core::mem::offset_of!(AiplugHostApi, size), 8);
    }

    #[test]
    fn min_size_covers_required_entries_only() {
        let ptr = core::mem::size_of::<usize>();
        assert_eq!(AIPLUG_VTABLE_MIN_SIZE, 16 + 2 * ptr);
        assert!(AIPLUG_VTABLE_MIN_SIZE < core::mem::size_of::<AiplugPluginVtable>());
    }

    #[test]
    fn empty_views_read_as_empty_slices() {
        // SAFETY: EMPTY has a null pointer and length 0.
        assert!(unsafe { AiplugStr::EMPTY.as_bytes() }.is_empty());
        let text = "héllo";
        // SAFETY: `text` outlives the view.
        assert_eq!(unsafe { AiplugStr::from_str(text).as_bytes() }, text.as_bytes());
    }
}
