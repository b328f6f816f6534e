//! Per-model concurrency: at most `n` calls of one model run at once (a
//! local model's context slots, a remote model's `max_concurrency`); the
//! others wait (on the host's admission [`Gate`]), and give up when their
//! call is cancelled or its deadline passes.

use std::time::Duration;

use crate::limits::{Gate, Pass, Refused};
use crate::models::{ModelCall, ModelError};

/// A queued request waits as long as its call allows; with no deadline,
/// this long at most.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug)]
pub(crate) struct Slots {
    gate: Gate,
}

/// A held slot; dropping it frees the slot.
pub(crate) type Slot<'a> = Pass<'a>;

impl Slots {
    pub(crate) fn new(n: usize) -> Slots {
        Slots { gate: Gate::new(n) }
    }

    /// Waits for a free slot while `call` is live.
    pub(crate) fn acquire(&self, call: ModelCall<'_>) -> Result<Slot<'_>, ModelError> {
        if let Some(error) = stop_reason(call) {
            return Err(error);
        }
        self.gate
            .enter(call.cancel, call.deadline, LONGEST_WAIT)
            .map_err(|refused| match refused {
                Refused::Cancelled => ModelError::Cancelled,
                Refused::Deadline | Refused::Full => ModelError::DeadlineExceeded,
            })
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
