//! aiplug's HTTP layer: an OpenAI-compatible API with the plugin pipeline,
//! the plugin API, admin and metrics endpoints.
//!
//! Empty for now: the server arrives with its own issue. The crate exists so
//! the workspace layout (binary → server → host → abi) is fixed from the start
//! and the `server` feature of the binary has something to switch.

#![deny(missing_docs)]

pub use aiplug_host as host;
