//! `[limits]`: concurrency with a bounded queue, calls per second,
//! deadlines, and cancellation that leaves nothing behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiplug_host::{CallError, CallOptions, CancellationToken, HostBuilder};

use crate::tempdir;

/// The test plugin with `[limits]` lines.
fn limited(parent: &std::path::Path, dir: &str, limits: &str) -> std::path::PathBuf {
    let lib = aiplug_testkit::cargo_plugin("test-behaviour");
    let manifest = aiplug_testkit::manifest(
        "test-behaviour",
        "libtest_behaviour.so",
        &format!("[limits]\n{limits}\n"),
    );
    aiplug_testkit::stage(parent, dir, &manifest, &lib, "libtest_behaviour.so")
}

#[test]
fn a_burst_never_runs_more_than_max_concurrency_and_the_rest_wait_or_are_refused() {
    let dir = tempdir();
    let host = Arc::new(
        HostBuilder::new()
            .trust(aiplug_host::TrustPolicy::AllowUnsigned)
            .build(),
    );
    host.load(&limited(dir.path(), "b", "max_concurrency = 4\nqueue_ms = 300"))
        .unwrap();
    let (ok, busy) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..100 {
            s.spawn(|| {
                for _ in 0..10 {
                    match host.invoke("sleep", b"5", &CallOptions::new()) {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(CallError::Overloaded {
                            limit, retry_after, ..
                        }) => {
                            assert_eq!(limit, "max_concurrency");
                            assert!(retry_after > Duration::ZERO);
                            busy.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(other) => panic!("unexpected: {other}"),
                    };
                }
            });
        }
    });
    let high = host.invoke("high-water", b"", &CallOptions::new()).unwrap();
    let high: usize = String::from_utf8_lossy(&high).parse().unwrap();
    let (ok, busy) = (ok.into_inner(), busy.into_inner());
    assert_eq!(ok + busy, 1000);
    assert!(high <= 4, "{high} calls ran at once");
    assert!(ok >= 4, "some calls ran: {ok}");
    println!("1000 calls, max_concurrency 4: {ok} ran (high-water {high}), {busy} refused after queueing");
}

#[test]
fn calls_over_the_rate_are_refused_with_the_wait() {
    let dir = tempdir();
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    host.load(&limited(dir.path(), "b", "requests_per_second = 5.0"))
        .unwrap();
    let results: Vec<_> = (0..8)
        .map(|_| host.invoke("echo", b"x", &CallOptions::new()))
        .collect();
    let refused: Vec<Duration> = results
        .iter()
        .filter_map(|r| match r {
            Err(CallError::Overloaded {
                limit: "requests_per_second",
                retry_after,
                ..
            }) => Some(*retry_after),
            _ => None,
        })
        .collect();
    assert_eq!(
        results.len() - refused.len(),
        5,
        "a second's burst goes through: {results:?}"
    );
    assert!(
        refused.iter().all(|w| *w <= Duration::from_millis(200)),
        "{refused:?}"
    );
}

#[test]
fn a_plugin_past_its_timeout_fails_at_the_deadline_and_the_next_call_works() {
    let dir = tempdir();
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    host.load(&limited(dir.path(), "b", "timeout_ms = 200")).unwrap();
    let started = Instant::now();
    let error = host.invoke("sleep", b"5000", &CallOptions::new()).unwrap_err();
    assert!(matches!(error, CallError::Cancelled { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        &*host.invoke("echo", b"again", &CallOptions::new()).unwrap(),
        b"again"
    );
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn a_thousand_cancelled_calls_leave_nothing_behind() {
    let dir = tempdir();
    let host = Arc::new(
        HostBuilder::new()
            .trust(aiplug_host::TrustPolicy::AllowUnsigned)
            .build(),
    );
    host.load(&limited(dir.path(), "b", "max_concurrency = 8\nqueue_ms = 2000"))
        .unwrap();
    // Warm up once so lazily created state is in the baseline.
    host.invoke("sleep", b"1", &CallOptions::new()).unwrap();
    let workers = 16;
    let (baseline_threads, baseline_fds) = (threads(), open_fds());
    let cancelled = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for worker in 0..workers {
            let (host, cancelled) = (&host, &cancelled);
            s.spawn(move || {
                for i in 0..(1000 / workers) {
                    let cancel = CancellationToken::new();
                    let mut options = CallOptions::new();
                    options.cancel = cancel.clone();
                    // Cancel before the call, while queued, or mid-call.
                    match (worker + i) % 3 {
                        0 => cancel.cancel(),
                        _ => {
                            let delay = Duration::from_micros(((worker * 37 + i * 101) % 3000) as u64);
                            std::thread::spawn(move || {
                                std::thread::sleep(delay);
                                cancel.cancel();
                            });
                        }
                    }
                    if host.invoke("sleep", b"20", &options).is_err() {
                        cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // The cancelling threads end on their own; give them a moment.
    let settled = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        threads() <= baseline_threads
    });
    let in_flight: usize = host.plugins().iter().map(|p| p.in_flight).sum();
    println!(
        "cancelled {} of 1000; threads {} -> {}, fds {} -> {}, in flight {in_flight}",
        cancelled.load(Ordering::Relaxed),
        baseline_threads,
        threads(),
        baseline_fds,
        open_fds()
    );
    assert!(
        settled,
        "threads back to the baseline {baseline_threads}: {}",
        threads()
    );
    assert!(
        open_fds() <= baseline_fds + 2,
        "fds {baseline_fds} -> {}",
        open_fds()
    );
    assert_eq!(in_flight, 0, "no call left in flight");
    assert!(
        cancelled.load(Ordering::Relaxed) > 300,
        "most calls were cancelled"
    );
    // The plugin still serves, with all its places free.
    assert_eq!(&*host.invoke("echo", b"ok", &CallOptions::new()).unwrap(), b"ok");
}
