//! Safe access to the host API from inside a hook.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiplug_abi::{
    AiplugBuf, AiplugCallCtx, AiplugHostApi, AiplugStr, AIPLUG_LOG_DEBUG, AIPLUG_LOG_ERROR, AIPLUG_LOG_INFO,
    AIPLUG_LOG_TRACE, AIPLUG_LOG_WARN, AIPLUG_STATUS_CANCELLED, AIPLUG_STATUS_NOT_FOUND, AIPLUG_STATUS_OK,
};

use crate::{Error, Level};

/// The context of one hook call: who is calling, the session, the deadline,
/// and the host API (`infer`, `log`, sessions, cancellation).
pub struct Context<'a> {
    raw: Option<&'a AiplugCallCtx>,
}

impl<'a> Context<'a> {
    /// Wraps the raw context the host passed to a hook.
    ///
    /// # Safety
    /// `raw` is null or points to a context (and host table) that stays valid
    /// for `'a`, as the host guarantees for the duration of a hook call.
    pub unsafe fn from_raw(raw: *const AiplugCallCtx) -> Context<'a> {
        // SAFETY: forwarded to the caller's guarantee.
        Context {
            raw: unsafe { raw.as_ref() },
        }
    }

    fn host(&self) -> Option<(&'a AiplugCallCtx, &'a AiplugHostApi)> {
        let raw = self.raw?;
        // SAFETY: the host guarantees `host` points to its API table for the
        // whole call (see `from_raw`).
        let host = unsafe { raw.host.as_ref() }?;
        Some((raw, host))
    }

    /// The session this call belongs to, if any.
    pub fn session_id(&self) -> Option<&'a str> {
        let raw = self.raw?;
        // SAFETY: the view is valid for the call ('a).
        let bytes = unsafe { raw.session_id.as_bytes() };
        std::str::from_utf8(bytes).ok().filter(|s| !s.is_empty())
    }

    /// For `invoke`: the task the caller asked for; `None` when the plugin
    /// was called by its id (or for other hooks).
    pub fn task(&self) -> Option<&'a str> {
        let raw = self.raw?;
        // SAFETY: the view is valid for the call ('a).
        let bytes = unsafe { raw.task.as_bytes() };
        std::str::from_utf8(bytes).ok().filter(|s| !s.is_empty())
    }

    /// The call's deadline, if it has one.
    pub fn deadline(&self) -> Option<SystemTime> {
        let ms = self.raw?.deadline_unix_ms;
        (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Whether the caller gave up or the deadline passed. Poll it in long work
    /// and return [`Error::cancelled`] when it turns true.
    pub fn is_cancelled(&self) -> bool {
        match self.host() {
            // SAFETY: ctx and table are valid for the call.
            Some((raw, host)) => unsafe { (host.cancelled)(raw) },
            None => false,
        }
    }

    /// Writes to the host's log, tagged with this plugin's id.
    pub fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Error => AIPLUG_LOG_ERROR,
            Level::Warn => AIPLUG_LOG_WARN,
            Level::Info => AIPLUG_LOG_INFO,
            Level::Debug => AIPLUG_LOG_DEBUG,
            Level::Trace => AIPLUG_LOG_TRACE,
        };
        if let Some((raw, host)) = self.host() {
            // SAFETY: ctx and table are valid for the call; the view borrows `message`.
            unsafe { (host.log)(raw, level, AiplugStr::from_str(message)) }
        }
    }

    /// Runs a chat completion through the host (its model providers and the
    /// other plugins' filters). `request_json` is an OpenAI-style chat request;
    /// a non-empty `model` overrides its `model` field. Returns the response JSON.
    pub fn infer(&self, model: &str, request_json: &str) -> Result<String, Error> {
        let (raw, host) = self.require_host("infer")?;
        let mut out = AiplugBuf::EMPTY;
        // SAFETY: ctx and table are valid for the call; the views borrow
        // locals that outlive the call; `out` is a valid place to write.
        let status = unsafe {
            (host.infer)(
                raw,
                AiplugStr::from_str(model),
                AiplugStr::from_str(request_json),
                &mut out,
            )
        };
        let text = String::from_utf8_lossy(&take_host_buf(host, out)).into_owned();
        match status {
            AIPLUG_STATUS_OK => Ok(text),
            AIPLUG_STATUS_CANCELLED => Err(Error::cancelled(text)),
            _ => Err(Error::new(text)),
        }
    }

    /// Reads `key` from this plugin's store for the current session.
    pub fn session_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let (raw, host) = self.require_host("session_get")?;
        let mut out = AiplugBuf::EMPTY;
        // SAFETY: as in `infer`.
        let status = unsafe { (host.session_get)(raw, AiplugStr::from_str(key), &mut out) };
        let value = take_host_buf(host, out);
        match status {
            AIPLUG_STATUS_OK => Ok(Some(value)),
            AIPLUG_STATUS_NOT_FOUND => Ok(None),
            _ => Err(Error::new(String::from_utf8_lossy(&value).into_owned())),
        }
    }

    /// Stores `value` under `key` in this plugin's store for the current session.
    pub fn session_set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let (raw, host) = self.require_host("session_set")?;
        // SAFETY: as in `infer`.
        let status =
            unsafe { (host.session_set)(raw, AiplugStr::from_str(key), AiplugStr::from_bytes(value)) };
        status_to_result(status, "session_set")
    }

    /// Removes `key` from this plugin's store for the current session.
    pub fn session_delete(&self, key: &str) -> Result<(), Error> {
        let (raw, host) = self.require_host("session_delete")?;
        // SAFETY: as in `infer`.
        let status = unsafe { (host.session_delete)(raw, AiplugStr::from_str(key)) };
        status_to_result(status, "session_delete")
    }

    fn require_host(&self, what: &str) -> Result<(&'a AiplugCallCtx, &'a AiplugHostApi), Error> {
        self.host()
            .ok_or_else(|| Error::new(format!("{what}: the host passed no API table to this call")))
    }
}

fn status_to_result(status: i32, what: &str) -> Result<(), Error> {
    match status {
        AIPLUG_STATUS_OK => Ok(()),
        other => Err(Error::new(format!("{what} failed with host status {other}"))),
    }
}

/// Copies a host buffer out and hands it back to the host's allocator.
fn take_host_buf(host: &AiplugHostApi, buf: AiplugBuf) -> Vec<u8> {
    if buf.is_empty() {
        return Vec::new();
    }
    // SAFETY: the host filled `buf` with `len` valid bytes that live until freed.
    let bytes = unsafe { buf.as_bytes() }.to_vec();
    // SAFETY: `buf` came from this host and is freed exactly once, here.
    unsafe { (host.free_buf)(buf) };
    bytes
}
