//! Aborting a request whose call is cancelled while it waits on the server.
//!
//! ureq blocks in a socket read until bytes come or the timeout passes, and
//! has no way to cancel a request from outside. So the agent's transports
//! are wrapped in [`CancelTransport`], which cuts each wait for input into
//! slices of [`CANCEL_POLL`] (the longest a cancelled request keeps its
//! connection open) and, between slices, looks at the cancellation
//! token of the call running on this thread (set by [`watch`] for the
//! length of one exchange). A cancelled wait fails with an I/O error the
//! provider reports as [`ModelError::Cancelled`](crate::models::ModelError),
//! and ureq drops the half-read connection instead of pooling it, so the
//! server sees the client go and stops generating.
//!
//! A thread-local, not a field, because one agent (and its connection
//! pool) serves every call, while each exchange runs start to end on its
//! caller's thread.

use std::cell::RefCell;
use std::io;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use ureq::unversioned::transport::time::Duration as UreqDuration;

use super::CANCEL_POLL;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// The message of the I/O error a cancelled read fails with.
pub(super) const CANCELLED: &str = "the call was cancelled";

thread_local! {
    static WATCHED: RefCell<Option<CancellationToken>> = const { RefCell::new(None) };
}

/// Makes reads on this thread give up when `token` is cancelled, until the
/// returned guard is dropped (which restores what was watched before).
pub(super) fn watch(token: &CancellationToken) -> Watch {
    let before = WATCHED.with(|w| w.replace(Some(token.clone())));
    Watch { before }
}

/// See [`watch`].
pub(super) struct Watch {
    before: Option<CancellationToken>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let before = self.before.take();
        WATCHED.with(|w| *w.borrow_mut() = before);
    }
}

fn cancelled() -> bool {
    WATCHED.with(|w| w.borrow().as_ref().is_some_and(CancellationToken::is_cancelled))
}

fn watching() -> bool {
    WATCHED.with(|w| w.borrow().is_some())
}

/// Wraps every transport the chained connectors make in a [`CancelTransport`].
#[derive(Debug, Default)]
pub(super) struct CancelConnector;

impl<In: Transport> Connector<In> for CancelConnector {
    type Out = CancelTransport<In>;

    fn connect(&self, _: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| CancelTransport { inner }))
    }
}

/// A transport whose waits for input end early when the watched call is
/// cancelled. Everything else is the inner transport's.
#[derive(Debug)]
pub(super) struct CancelTransport<T> {
    inner: T,
}

impl<T: Transport> Transport for CancelTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if !watching() {
            return self.inner.await_input(timeout);
        }
        // The per-read cap is applied here, where the slices are cut; the
        // inner transport gets only the slice.
        let full = timeout.for_read();
        let started = Instant::now();
        loop {
            if cancelled() {
                return Err(ureq::Error::Io(io::Error::other(CANCELLED)));
            }
            let left = full.after.saturating_sub(started.elapsed());
            let (slice, cut) = if full.after.is_not_happening() || left > CANCEL_POLL {
                (CANCEL_POLL, true)
            } else {
                (left, false)
            };
            let next = NextTimeout {
                after: UreqDuration::Exact(slice),
                reason: full.reason,
                per_read: None,
                per_write: full.per_write,
            };
            match self.inner.await_input(next) {
                Err(ureq::Error::Timeout(_)) if cut => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_is_scoped_and_nests() {
        let outer = CancellationToken::new();
        let inner = CancellationToken::new();
        assert!(!watching());
        {
            let _outer = watch(&outer);
            {
                let _inner = watch(&inner);
                inner.cancel();
                assert!(cancelled());
            }
            assert!(watching());
            assert!(!cancelled(), "the outer token is watched again");
        }
        assert!(!watching());
    }
}
