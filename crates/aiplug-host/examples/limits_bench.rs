//! The host's side of `bench/limits.sh`: what the admission machinery of
//! `[limits]` costs a call, and how fast an overloaded plugin says no.
//!
//! ```text
//! limits_bench [--rounds 15] [--round-ms 300] [--threads 1,2] [--refusals 20000]
//! ```
//!
//! 1. Throughput of a trivial call (`echo` of 16 bytes on the real
//!    `test-behaviour` plugin, release build, through `Host::invoke`: the
//!    whole pipeline of a call) on two hosts side by side: admission off
//!    ([`HostBuilder::admission`]`(false)`), and on with every limit set
//!    (`max_concurrency`, `queue_ms`, `requests_per_second`, `timeout_ms`;
//!    all high enough never to refuse, so only their bookkeeping is
//!    measured). Rounds alternate the order of the two; the table gives the
//!    median calls/s of each per thread count, the ratio, and whether the
//!    overhead is under the goal (5 %).
//! 2. Refusal latency under overload: `max_concurrency = 2`, `queue_ms = 0`,
//!    both places held by `sleep` calls, then a caller's calls are each
//!    refused; and a plugin over its `requests_per_second`. Median and p99
//!    of the time to the refusal, next to an admitted call's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiplug_host::{CallError, CallOptions, Host, HostBuilder, PluginState};
use aiplug_testkit as kit;

/// The goal of the issue: limits on cost under 5 % of throughput.
const GOAL_OVERHEAD: f64 = 0.05;
const INPUT: &[u8] = b"sixteen bytes ok";

struct Args {
    rounds: usize,
    round: Duration,
    threads: Vec<usize>,
    refusals: usize,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 15,
        round: Duration::from_millis(300),
        threads: vec![1, 2],
        refusals: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| {
            v.parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--rounds" => args.rounds = number(&value).max(1),
            "--round-ms" => args.round = Duration::from_millis(number(&value).max(10) as u64),
            "--threads" => args.threads = value.split(',').map(number).filter(|&n| n > 0).collect(),
            "--refusals" => args.refusals = number(&value).max(100),
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!("limits_bench: {problem}\nusage: limits_bench [--rounds N] [--round-ms MS] [--threads 1,2] [--refusals N]");
    std::process::exit(2)
}

/// A host with the release-built `test-behaviour` plugin, staged under
/// `parent/name` with `limits` as its manifest's `[limits]` table.
fn host(parent: &Path, name: &str, limits: &str, admission: bool) -> Host {
    let lib = kit::cargo_plugin("test-behaviour");
    let manifest = kit::manifest("test-behaviour", "libtest_behaviour.so", limits);
    let dir = kit::stage(parent, name, &manifest, &lib, "libtest_behaviour.so");
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .admission(admission)
        .build();
    if let Err(e) = host.load(&dir) {
        panic!("cannot load the test plugin: {e}\n  fix: {}", e.fix());
    }
    host
}

/// Calls per second of `threads` callers invoking `echo` for `length`.
fn throughput(host: &Host, threads: usize, length: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let calls: u64 = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let options = CallOptions::new();
                    let mut calls = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let out = host.invoke("echo", INPUT, &options).expect("echo");
                        assert_eq!(&*out, INPUT);
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        callers.into_iter().map(|c| c.join().expect("caller")).sum()
    });
    calls as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Times `n` calls of `echo`, each of which must be refused by `limit`.
fn refusal_times(host: &Host, n: usize, limit: &str) -> Vec<Duration> {
    let options = CallOptions::new();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let result = host.invoke("echo", INPUT, &options);
            let took = started.elapsed();
            match result {
                Err(CallError::Overloaded { limit: l, .. }) if l == limit => took,
                other => panic!("expected a {limit} refusal, got {other:?}"),
            }
        })
        .collect();
    times.sort();
    times
}

fn admitted_times(host: &Host, n: usize) -> Vec<Duration> {
    let options = CallOptions::new();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            host.invoke("echo", INPUT, &options).expect("echo");
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn main() {
    let args = args();
    let root = tempfile::tempdir().expect("temp dir");
    eprintln!("building the test plugin (release) and loading it ...");
    let off = host(root.path(), "off", "", false);
    let on = host(
        root.path(),
        "on",
        "[limits]\nmax_concurrency = 4096\nqueue_ms = 1000\nrequests_per_second = 100000000\ntimeout_ms = 30000\n",
        true,
    );

    let defaults = host(root.path(), "defaults", "", true);
    let hosts = [
        ("off", &off),
        ("on, defaults", &defaults),
        ("on, every limit", &on),
    ];

    println!(
        "## Throughput: `echo` of {} B through Host::invoke, admission off vs on",
        INPUT.len()
    );
    println!(
        "{} rounds of {} ms per host and thread count, the hosts in a rotating order; \
         \"defaults\" is a manifest without [limits] (max_concurrency 8, queue_ms 1000, timeout_ms 30000), \
         \"every limit\" adds requests_per_second\n",
        args.rounds,
        args.round.as_millis()
    );
    println!("| callers | host | calls/s (median) | ns/call | vs off | overhead | goal < 5 % |");
    println!("|---:|:--|---:|---:|---:|---:|:--|");
    let mut worst = 0.0f64;
    for &threads in &args.threads {
        // Warm every host (caches, thread-locals, the allocator).
        for (_, host) in hosts {
            throughput(host, threads, args.round / 2);
        }
        let mut samples = vec![Vec::new(); hosts.len()];
        for round in 0..args.rounds {
            for k in 0..hosts.len() {
                let i = (round + k) % hosts.len();
                samples[i].push(throughput(hosts[i].1, threads, args.round));
            }
        }
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        for (i, (label, _)) in hosts.iter().enumerate() {
            let ratio = medians[i] / medians[0];
            let overhead = 1.0 - ratio;
            let verdict = if i == 0 {
                "".to_string()
            } else {
                worst = worst.max(overhead);
                (if overhead < GOAL_OVERHEAD {
                    "met"
                } else {
                    "NOT met"
                })
                .to_string()
            };
            println!(
                "| {threads} | {label} | {:.0} | {:.0} | {ratio:.3} | {:.1} % | {verdict} |",
                medians[i],
                1e9 * threads as f64 / medians[i],
                overhead * 100.0,
            );
        }
    }

    println!(
        "\n## Refusal latency under overload ({} calls each)\n",
        args.refusals
    );
    // Both places held by `sleep` calls that end when cancelled.
    let busy = Arc::new(host(
        root.path(),
        "busy",
        "[limits]\nmax_concurrency = 2\nqueue_ms = 0\n",
        true,
    ));
    let release = CallOptions::new();
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (busy, options) = (Arc::clone(&busy), release.clone());
            std::thread::spawn(move || {
                let _ = busy.invoke("sleep", b"60000", &options);
            })
        })
        .collect();
    let held = Instant::now();
    while busy
        .plugins()
        .iter()
        .find(|p| p.state == PluginState::Active)
        .is_none_or(|p| p.in_flight < 2)
    {
        assert!(
            held.elapsed() < Duration::from_secs(10),
            "the sleepers never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let full = refusal_times(&busy, args.refusals, "max_concurrency");
    release.cancel.cancel();
    for sleeper in sleepers {
        sleeper.join().expect("sleeper");
    }

    let rated = host(root.path(), "rated", "[limits]\nrequests_per_second = 1\n", true);
    rated
        .invoke("echo", INPUT, &CallOptions::new())
        .expect("the first call fits the rate");
    let over_rate = refusal_times(&rated, args.refusals, "requests_per_second");
    let admitted = admitted_times(&on, args.refusals);

    println!("| call | median | p99 |");
    println!("|:--|---:|---:|");
    for (label, times) in [
        ("refused: max_concurrency full, queue_ms = 0", &full),
        ("refused: over requests_per_second", &over_rate),
        ("admitted (limits on, for comparison)", &admitted),
    ] {
        println!(
            "| {label} | {:.2} µs | {:.2} µs |",
            quantile(times, 0.5).as_secs_f64() * 1e6,
            quantile(times, 0.99).as_secs_f64() * 1e6
        );
    }
    println!(
        "\nthroughput goal (limits cost < 5 %): {}",
        if worst < GOAL_OVERHEAD { "met" } else { "NOT met" }
    );
}
