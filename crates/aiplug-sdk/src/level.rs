//! Log levels, the same for native and wasm plugins.

/// Log levels for [`Context::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal operation worth recording.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very fine detail.
    Trace,
}
