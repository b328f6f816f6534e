//! The embeddable aiplug engine: load AI plugins at run time, verify them
//! stage by stage, and run them around and in front of model calls.
//!
//! No HTTP, no CLI: `aiplug-server` and the `aiplug` binary sit on top.
//!
//! ```no_run
//! use aiplug_host::{CallOptions, HostBuilder};
//!
//! let host = HostBuilder::new().build();
//! match host.load(std::path::Path::new("plugins/prompt-decorator")) {
//!     Ok(info) => println!("loaded {} {}", info.id, info.version),
//!     Err(e) => eprintln!("{e}\n  fix: {}", e.fix()),
//! }
//! let request = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
//! let filtered = host.filter_request(request, &CallOptions::new());
//! ```
//!
//! Loading runs the stages of [`Stage`] in order; each failure is a
//! [`LoadError`] whose [`LoadErrorKind`] says which stage and why, and whose
//! [`LoadError::fix`] says what to do. Calls fail with a [`CallError`].

#![deny(missing_docs)]
// With no plugin tier compiled in, the call machinery has nothing to drive;
// it still has to build (manifest checks work without a tier).
#![cfg_attr(not(any(feature = "native", feature = "wasm")), allow(dead_code))]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod lifecycle;
mod limits;
mod loader;
pub mod manifest;
pub mod models;
pub mod observe;
mod pipeline;
mod registry;
pub mod session;
pub mod trust;
pub mod watch;

pub use error::{
    AbiError, CallError, FormatError, IdentityError, InitError, IntegrityError, Limit, LoadError,
    LoadErrorKind, Stage, SymbolsError,
};
pub use host::{CallOptions, DoctorReport, DoctorRow, Host, HostBuilder, StageOutcome};
pub use lifecycle::{plugin_dirs, ReloadError, SyncChange, UnloadError};
pub use loader::Output;
pub use manifest::{Hook, Manifest, ManifestError, PluginKind};
pub use observe::{CallStats, Observer};
pub use registry::{PluginInfo, PluginState};
pub use tokio_util::sync::CancellationToken;
pub use trust::TrustPolicy;
