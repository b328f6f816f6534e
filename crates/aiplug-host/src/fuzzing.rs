//! Entry points for the fuzz targets under `fuzz/` and their regression
//! corpus (`tests/fuzz_corpus.rs`): each runs one load stage on arbitrary
//! bytes exactly as the pipeline does, and throws the verdict away. What is
//! checked is that hostile input gets an error, never a panic, a hang or a
//! crash. Not a stable API.

use std::path::Path;

/// The manifest stage: `bytes` as a `plugin.toml`.
pub fn manifest(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = crate::manifest::Manifest::parse(text, Path::new("fuzz/plugin.toml"));
    }
}

/// The native format stage: `bytes` as a shared object for this machine.
#[cfg(feature = "native")]
pub fn native_format(bytes: &[u8]) {
    let _ = crate::loader::format::check_shared_library(Path::new("fuzz/libfuzz.so"), bytes);
}

/// The wasm format and symbols stages: `bytes` as a plugin component
/// (validated and compiled, then its world version and imports checked).
#[cfg(feature = "wasm")]
pub fn wasm_validation(bytes: &[u8]) {
    let path = Path::new("fuzz/plugin.wasm");
    if let Ok(component) = crate::loader::wasm::compile(path, bytes) {
        let _ = crate::loader::wasm::link(path, &component);
    }
}
