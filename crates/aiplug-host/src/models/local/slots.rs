//! A counting semaphore for contexts: at most `slots` requests of one model
//! run at once; the others wait, and give up when their call is cancelled
//! or its deadline passes.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::models::{ModelCall, ModelError};

/// How often a waiter looks at its cancellation token (which has no
/// blocking wait of its own); a freed slot wakes waiters at once.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub(crate) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    slots: &'a Slots,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot while `call` is live.
    pub(crate) fn acquire(&self, call: ModelCall<'_>) -> Result<Slot<'_>, ModelError> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(error) = stop_reason(call) {
                return Err(error);
            }
            if *free > 0 {
                *free -= 1;
                return Ok(Slot { slots: self });
            }
            let wait = call.remaining().map_or(POLL, |left| left.min(POLL));
            free = self
                .freed
                .wait_timeout(free, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.slots.freed.notify_one();
    }
}

/// Why `call` must stop now, if it must: cancellation wins over the deadline.
pub(crate) fn stop_reason(call: ModelCall<'_>) -> Option<ModelError> {
    if call.cancel.is_cancelled() {
        Some(ModelError::Cancelled)
    } else if call.is_cancelled() {
        Some(ModelError::DeadlineExceeded)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn waiters_get_freed_slots_and_give_up_on_deadline_or_cancel() {
        let slots = Slots::new(1);
        let cancel = CancellationToken::new();
        let call = ModelCall {
            cancel: &cancel,
            deadline: None,
        };
        let held = slots.acquire(call).unwrap();

        let soon = ModelCall {
            cancel: &cancel,
            deadline: Some(Instant::now() + Duration::from_millis(50)),
        };
        let started = Instant::now();
        assert_eq!(slots.acquire(soon).unwrap_err(), ModelError::DeadlineExceeded);
        assert!(started.elapsed() < Duration::from_secs(1));

        std::thread::scope(|s| {
            let waiter = s.spawn(|| slots.acquire(call).map(drop));
            std::thread::sleep(Duration::from_millis(30));
            drop(held);
            assert!(
                waiter.join().unwrap().is_ok(),
                "the freed slot went to the waiter"
            );
        });

        let _held = slots.acquire(call).unwrap();
        let other = CancellationToken::new();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                slots.acquire(ModelCall {
                    cancel: &other,
                    deadline: None,
                })
            });
            std::thread::sleep(Duration::from_millis(30));
            other.cancel();
            assert_eq!(waiter.join().unwrap().unwrap_err(), ModelError::Cancelled);
        });
    }
}
