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

#![deny(missing_docs)]

mod context;
mod export;
mod plugin;

pub use aiplug_abi as abi;
pub use context::{Context, Level};
pub use plugin::{Error, ErrorKind, Hooks, Plugin, Verdict};

/// Items [`export_plugin!`] expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{vtable, Exported, MetadataCell, Slot};
    pub use aiplug_abi::AiplugPluginVtable;
}
