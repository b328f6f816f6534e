//! Write aiplug plugins in safe Rust.
//!
//! Implement [`Plugin`] for a type, list the hooks it provides, and export it
//! with [`export_plugin!`] from a `cdylib` crate. The SDK builds the C vtable
//! of [`aiplug_abi`], keeps the instance between `on_load` and `on_unload`,
//! turns borrowed views into `&str`/`&[u8]` without copying, and wraps every
//! entry in `catch_unwind` so a panic becomes an error for that call instead
//! of unwinding into the host.
//!
//! ```
//! use aiplug_sdk::{export_plugin, Context, Error, Hooks, Plugin, Verdict};
//!
//! struct NoShouting;
//! impl Plugin for NoShouting {
//!     const ID: &'static str = "no-shouting";
//!     const VERSION: &'static str = "0.1.0";
//!     const HOOKS: Hooks = Hooks::ON_REQUEST;
//!     fn load(_: &Context<'_>, _config: &str) -> Result<Self, Error> { Ok(NoShouting) }
//!     fn on_request(&self, _: &Context<'_>, request: &str) -> Result<Verdict, Error> {
//!         Ok(if request.contains("!!!") { Verdict::Reject("no shouting".into()) } else { Verdict::Continue })
//!     }
//! }
//! export_plugin!(NoShouting);
//! ```

//!
//! The same source builds as a sandboxed WebAssembly component with
//! `cargo build --target wasm32-wasip2` (and a manifest saying
//! `kind = "wasm"`): there [`export_plugin!`] exports the `aiplug:plugin`
//! world of `wit/` instead of the C vtable, and [`Context`] calls the host
//! through the world's imports. A panic then ends the instance (wasm cannot
//! unwind); the host reports it as a panic and uses a fresh instance next.

#![deny(missing_docs)]

#[cfg(not(target_arch = "wasm32"))]
mod context;
#[cfg(not(target_arch = "wasm32"))]
mod export;
mod level;
mod plugin;
#[cfg(target_arch = "wasm32")]
mod wasm;

// The guest bindings name this crate by path both inside it and where
// `export_plugin!` expands.
#[cfg(target_arch = "wasm32")]
extern crate self as aiplug_sdk;

pub use aiplug_abi as abi;
#[cfg(not(target_arch = "wasm32"))]
pub use context::Context;
pub use level::Level;
pub use plugin::{Error, ErrorKind, Hooks, Plugin, Verdict};
#[cfg(target_arch = "wasm32")]
pub use wasm::Context;

/// Items [`export_plugin!`] expands to; not part of the public API.
#[doc(hidden)]
#[cfg(not(target_arch = "wasm32"))]
pub mod __private {
    pub use crate::export::{vtable, Exported, MetadataCell, Slot};
    pub use aiplug_abi::AiplugPluginVtable;
}

/// Items [`export_plugin!`] expands to; not part of the public API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::wasm::{bindings, Adapter, Exported, Slot};
    pub use wit_bindgen;
}
