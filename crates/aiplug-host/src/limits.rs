//! Admission control: at most N calls at once (a gate callers queue at for
//! a bounded time) and at most R calls per second (a token bucket), per
//! plugin from its manifest's `[limits]`, and per model for model calls.
//!
//! The gate's fast path is one compare-and-swap to enter and one atomic
//! decrement to leave; only when it is full do callers take a lock and
//! sleep on a condition variable (waking every 10 ms to notice their
//! cancellation token, which has no blocking wait of its own).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

/// How often a queued caller looks at its cancellation token.
const POLL: Duration = Duration::from_millis(10);

/// Why a caller did not get through the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its cancellation token fired while it waited.
    Cancelled,
    /// Its deadline passed while it waited.
    Deadline,
    /// The gate stayed full for the whole queue time.
    Full,
}

/// A counting gate: at most `max` holders of a [`Pass`] at once.
#[derive(Debug)]
pub(crate) struct Gate {
    max: usize,
    used: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

/// A place inside a [`Gate`]; dropping it lets the next caller in.
#[derive(Debug)]
pub(crate) struct Pass<'a> {
    gate: &'a Gate,
    /// How long the caller queued for it; `None` when it got in at once.
    pub(crate) waited: Option<Duration>,
}

impl Gate {
    /// A gate for `max` (at least 1) holders.
    pub(crate) fn new(max: usize) -> Gate {
        Gate {
            max: max.max(1),
            used: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    /// Holders now.
    pub(crate) fn in_use(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Enters whether or not there is room: for calls that must run (a
    /// lifecycle hook) but are still counted. While it is held, capped
    /// callers see one place fewer.
    pub(crate) fn enter_uncapped(&self) -> Pass<'_> {
        self.used.fetch_add(1, Ordering::SeqCst);
        Pass {
            gate: self,
            waited: None,
        }
    }

    fn try_enter(&self) -> Option<Pass<'_>> {
        let mut used = self.used.load(Ordering::SeqCst);
        while used < self.max {
            match self
                .used
                .compare_exchange_weak(used, used + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Some(Pass {
                        gate: self,
                        waited: None,
                    })
                }
                Err(now) => used = now,
            }
        }
        None
    }

    /// Enters at once when there is room, else waits up to `queue`, until
    /// the `deadline` or cancellation, whichever comes first. The clock is
    /// read only when it has to wait (bench/limits.sh: a clock read is a
    /// fifth of a trivial call's cost).
    pub(crate) fn enter(
        &self,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        queue: Duration,
    ) -> Result<Pass<'_>, Refused> {
        if let Some(pass) = self.try_enter() {
            return Ok(pass);
        }
        let start = Instant::now();
        let queue_until = start
            .checked_add(queue)
            .unwrap_or(start + Duration::from_secs(86_400 * 365));
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Counted before the retry below, so a holder leaving after this
        // point sees a waiter and wakes it (see `Pass::drop`).
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if let Some(mut pass) = self.try_enter() {
                pass.waited = Some(start.elapsed());
                break Ok(pass);
            }
            let now = Instant::now();
            if cancel.is_cancelled() {
                break Err(Refused::Cancelled);
            }
            if deadline.is_some_and(|d| now >= d) {
                break Err(Refused::Deadline);
            }
            if now >= queue_until {
                break Err(Refused::Full);
            }
            let until = deadline.map_or(queue_until, |d| d.min(queue_until));
            let wait = until.saturating_duration_since(now).min(POLL);
            guard = self
                .freed
                .wait_timeout(guard, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let gate = self.gate;
        gate.used.fetch_sub(1, Ordering::SeqCst);
        if gate.waiters.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this wake after the waiter's wait began.
            let _guard = gate.lock.lock().unwrap_or_else(|p| p.into_inner());
            gate.freed.notify_one();
        }
    }
}

/// At most `per_second` calls per second, with a burst of one second's
/// worth (at least 1).
pub(crate) struct Rate {
    limiter: RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        DefaultClock,
        governor::middleware::NoOpMiddleware,
    >,
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rate")
    }
}

impl Rate {
    /// `None` for a rate that is not a positive number.
    pub(crate) fn new(per_second: f64) -> Option<Rate> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / per_second);
        let burst =
            NonZeroU32::new(per_second.ceil().min(f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)?.allow_burst(burst);
        Some(Rate {
            limiter: RateLimiter::direct(quota),
        })
    }

    /// Takes one call's token, or says how long until one is free.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_max_queues_the_rest_and_refuses_after_the_queue_time() {
        let gate = Gate::new(2);
        let cancel = CancellationToken::new();
        let soon = || Duration::from_millis(40);
        let a = gate.enter(&cancel, None, soon()).unwrap();
        let _b = gate.enter(&cancel, None, soon()).unwrap();
        assert_eq!(gate.in_use(), 2);
        assert_eq!(gate.enter(&cancel, None, soon()).unwrap_err(), Refused::Full);
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        let later = Duration::from_secs(5);
        assert_eq!(
            gate.enter(&cancel, deadline, later).unwrap_err(),
            Refused::Deadline
        );

        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.enter(&cancel, None, Duration::from_secs(5)).map(drop));
            std::thread::sleep(Duration::from_millis(30));
            drop(a);
            assert!(
                waiter.join().unwrap().is_ok(),
                "the freed place went to the waiter"
            );
        });

        let other = CancellationToken::new();
        std::thread::scope(|s| {
            let _c = gate.enter(&cancel, None, soon()).unwrap();
            let waiter = s.spawn(|| gate.enter(&other, None, Duration::from_secs(5)).map(drop));
            std::thread::sleep(Duration::from_millis(30));
            other.cancel();
            assert_eq!(waiter.join().unwrap().unwrap_err(), Refused::Cancelled);
        });
        assert_eq!(gate.in_use(), 1);
    }

    #[test]
    fn the_gate_never_admits_more_than_max_under_contention() {
        let gate = Gate::new(3);
        let cancel = CancellationToken::new();
        let high = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let pass = gate.enter(&cancel, None, Duration::from_secs(10)).unwrap();
                        high.fetch_max(gate.in_use(), Ordering::SeqCst);
                        std::hint::spin_loop();
                        drop(pass);
                    }
                });
            }
        });
        assert!(high.load(Ordering::SeqCst) <= 3);
        assert_eq!(gate.in_use(), 0);
    }

    #[test]
    fn the_rate_refuses_past_its_burst_with_a_wait() {
        let rate = Rate::new(2.0).unwrap();
        assert!(rate.check().is_ok());
        assert!(rate.check().is_ok());
        let wait = rate.check().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(Rate::new(0.0).is_none() && Rate::new(f64::NAN).is_none());
    }
}
