//! What the host tells an embedder about its work, for metrics and
//! accounting: an [`Observer`] of every plugin hook and model call, and the
//! per-call [`CallStats`] a caller reads afterwards.
//!
//! The host itself keeps no metrics and depends on no metrics crate: the
//! server turns these callbacks into Prometheus series, a library user may
//! ignore them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::models::{ChatResponse, ModelError};

/// Receives the outcome and duration of every plugin hook the host runs
/// and every model call it makes. Called on the calling thread right after
/// the work, so implementations must be cheap (an atomic add, not I/O).
pub trait Observer: Send + Sync {
    /// A plugin hook returned: `outcome` is `ok` (a filter that rejects a
    /// request did its job: also `ok`), `failed`, `panicked`, `cancelled`
    /// (its caller gave up or its deadline passed) or `stopped` (a wasm
    /// plugin hit a limit).
    fn hook_call(&self, plugin: &str, hook: &'static str, elapsed: Duration, outcome: &'static str) {
        let _ = (plugin, hook, elapsed, outcome);
    }

    /// A call to `plugin` was refused before it ran: `limit` is
    /// `max_concurrency` (no place within its queue time) or
    /// `requests_per_second`.
    fn refused(&self, plugin: &str, limit: &'static str) {
        let _ = (plugin, limit);
    }

    /// A call to `plugin` waited `waited` for a place (only reported when
    /// it had to wait).
    fn queued(&self, plugin: &str, waited: Duration) {
        let _ = (plugin, waited);
    }

    /// A model call returned.
    fn model_call(&self, model: &str, elapsed: Duration, result: Result<&ChatResponse, &ModelError>) {
        let _ = (model, elapsed, result);
    }

    /// A plugin was reloaded (`ok`) or its reload was refused.
    fn reload(&self, plugin: &str, ok: bool) {
        let _ = (plugin, ok);
    }
}

/// What one call (and every model call nested in it, such as a plugin's
/// own `infer`) spent in models. Shared by the clones of a
/// [`CallOptions`](crate::CallOptions), so the caller can read it after the
/// call, e.g. to report its own overhead as total time minus model time.
#[derive(Debug, Default)]
pub struct CallStats {
    model_nanos: AtomicU64,
    model_calls: AtomicU64,
    first_model_start: OnceLock<Instant>,
}

impl CallStats {
    /// Time spent inside model providers.
    pub fn model_time(&self) -> Duration {
        Duration::from_nanos(self.model_nanos.load(Ordering::Relaxed))
    }

    /// Model calls made.
    pub fn model_calls(&self) -> u64 {
        self.model_calls.load(Ordering::Relaxed)
    }

    /// When the call's first model call started (after the request
    /// filters), if one did: a streaming caller reports the time before it
    /// as its own overhead.
    pub fn first_model_start(&self) -> Option<Instant> {
        self.first_model_start.get().copied()
    }

    pub(crate) fn model_call_started(&self, at: Instant) {
        let _ = self.first_model_start.set(at);
    }

    pub(crate) fn add_model_call(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.model_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.model_calls.fetch_add(1, Ordering::Relaxed);
    }
}
