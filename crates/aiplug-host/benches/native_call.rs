//! The native call path against a direct call (run: `bench/native-call.sh`).
//!
//! `Host::invoke("word-count", input)` on the real `test-behaviour` plugin
//! (a release-built shared library loaded through every stage), against the
//! same `word_count` function called through a `&dyn Service` in this
//! process, for 64 B, 4 KiB and 256 KiB of text. The input crosses the ABI as
//! a borrowed `(ptr, len)` view, so the host's cost per call must not grow
//! with the input: the goal is at most 1.5x the direct call at 4 KiB and the
//! same slope (from 64 B to 256 KiB the host's time per extra KiB at most 2 %
//! above the direct call's, which is about what one copy of the input costs).
//!
//! Three benchmarks per size, in group `native_call`:
//! - `host_invoke`: one `CallOptions` reused for every call;
//! - `host_invoke_fresh_options`: a fresh `CallOptions::new()` per call (what
//!   most real callers do; it allocates a cancellation token);
//! - `direct_dyn`: `word_count` through `&dyn Service`, returning the same
//!   `to_string().into_bytes()` the plugin returns.
//!
//! After criterion's own report, `main` prints a summary table built from the
//! medians criterion stored in `<criterion dir>/native_call/<bench>/<size>/
//! new/estimates.json`, and says whether the goal is met.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aiplug_host::{CallOptions, Host, HostBuilder};
use criterion::{BenchmarkId, Criterion, Throughput};

const GROUP: &str = "native_call";
const HOST: &str = "host_invoke";
const HOST_FRESH: &str = "host_invoke_fresh_options";
const DIRECT: &str = "direct_dyn";
const SIZES: [(usize, &str); 3] = [(64, "64B"), (4 << 10, "4KiB"), (256 << 10, "256KiB")];

/// The goal of the issue: host time at most this multiple of the direct call at 4 KiB.
const MAX_RATIO_4K: f64 = 1.5;
/// "Same slope": the host's per-byte cost at most this fraction above the
/// direct one. One extra copy of the input costs about this much: memcpy runs
/// some 40x faster per byte than `word_count`.
const SLOPE_TOLERANCE: f64 = 0.02;

/// The shape of an in-process service: what the native path is measured against.
trait Service {
    fn infer(&self, input: &[u8]) -> Vec<u8>;
}

/// The plugin's `word-count` task, linked in and called directly.
struct WordCount;

impl Service for WordCount {
    fn infer(&self, input: &[u8]) -> Vec<u8> {
        test_behaviour::word_count(input).to_string().into_bytes()
    }
}

/// `len` bytes of prose: words of varying length, spaces, a newline now and then.
fn text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "the", "plugin", "host", "borrows", "input", "bytes", "without", "copying", "them", "across", "a",
        "boundary",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0usize;
    while out.len() < len {
        out.extend_from_slice(WORDS[i % WORDS.len()].as_bytes());
        i += 1;
        out.push(if i % 11 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Stages the release-built `test-behaviour` plugin under `parent` and loads it.
fn load_plugin(parent: &Path) -> Host {
    let lib = aiplug_testkit::cargo_plugin("test-behaviour");
    let manifest = aiplug_testkit::manifest("test-behaviour", "libtest_behaviour.so", "");
    let dir = aiplug_testkit::stage(parent, "test-behaviour", &manifest, &lib, "libtest_behaviour.so");
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    if let Err(e) = host.load(&dir) {
        panic!("cannot load the test plugin: {e}\n  fix: {}", e.fix());
    }
    host
}

/// Where criterion keeps its results: the rule criterion itself uses
/// (`$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`), with the target
/// directory otherwise found from this executable (`<target>/<profile>/deps/`).
/// Handed to criterion too, so writer and reader agree by construction.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|target| target.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

fn bench(c: &mut Criterion, host: &Host) {
    let direct = WordCount;
    let service: &dyn Service = &direct;
    let reused = CallOptions::new();

    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    // Sizes outermost, so the three variants of one size run back to back.
    for (len, label) in SIZES {
        let input = text(len);
        let expected = service.infer(&input);
        let got = host
            .invoke("word-count", &input, &reused)
            .expect("word-count call");
        assert_eq!(&*got, &expected[..], "host and direct call disagree at {label}");

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new(HOST, label), &input[..], |b, input| {
            b.iter(|| host.invoke(black_box("word-count"), black_box(input), black_box(&reused)))
        });
        group.bench_with_input(BenchmarkId::new(HOST_FRESH, label), &input[..], |b, input| {
            b.iter(|| host.invoke(black_box("word-count"), black_box(input), &CallOptions::new()))
        });
        group.bench_with_input(BenchmarkId::new(DIRECT, label), &input[..], |b, input| {
            b.iter(|| black_box(service).infer(black_box(input)))
        });
    }
    group.finish();
}

/// A median and its 95 % confidence interval, in ns.
#[derive(Clone, Copy)]
struct Median {
    ns: f64,
    low: f64,
    high: f64,
}

impl Median {
    fn half_width(self) -> f64 {
        (self.high - self.low) / 2.0
    }
}

/// The median criterion stored for `bench/size`, if this run measured it
/// (an estimate older than `since` is from an earlier run and is ignored).
fn median(dir: &Path, bench: &str, size: &str, since: SystemTime) -> Option<Median> {
    let path = dir.join(GROUP).join(bench).join(size).join("new/estimates.json");
    let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).ok()? >= since;
    if !fresh {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let m = estimates.get("median")?;
    let ci = m.get("confidence_interval")?;
    Some(Median {
        ns: m.get("point_estimate")?.as_f64()?,
        low: ci.get("lower_bound")?.as_f64()?,
        high: ci.get("upper_bound")?.as_f64()?,
    })
}

/// One input size's medians.
#[derive(Clone, Copy)]
struct Row {
    len: usize,
    label: &'static str,
    host: Option<Median>,
    fresh: Option<Median>,
    direct: Option<Median>,
}

impl Row {
    /// The host median for one `CallOptions` variant.
    fn host(&self, fresh_options: bool) -> Option<Median> {
        if fresh_options {
            self.fresh
        } else {
            self.host
        }
    }
}

fn show(v: Option<f64>, digits: usize, suffix: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}{suffix}"))
}

/// Prints the table and the verdicts (nothing to print when no benchmark
/// ran: `--test`, `--list`, or a filter that matched none).
fn summary(dir: &Path, since: SystemTime) {
    let rows: Vec<Row> = SIZES
        .iter()
        .map(|&(len, label)| Row {
            len,
            label,
            host: median(dir, HOST, label, since),
            fresh: median(dir, HOST_FRESH, label, since),
            direct: median(dir, DIRECT, label, since),
        })
        .collect();
    if rows
        .iter()
        .all(|r| r.host.is_none() && r.fresh.is_none() && r.direct.is_none())
    {
        println!("native_call: no fresh measurements to summarise (test or list mode, or filtered out)");
        return;
    }
    let ns = |m: Option<Median>| m.map(|m| m.ns);
    let ratio = |h: Option<Median>, d: Option<Median>| h.zip(d).map(|(h, d)| h.ns / d.ns);
    let overhead = |h: Option<Median>, d: Option<Median>| h.zip(d).map(|(h, d)| h.ns - d.ns);

    println!();
    println!("native_call summary: medians from {}/{GROUP}", dir.display());
    println!();
    println!("| size | host ns/call (median) | direct ns/call (median) | ratio | host overhead ns (host - direct) |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.label,
            show(ns(r.host), 1, ""),
            show(ns(r.direct), 1, ""),
            show(ratio(r.host, r.direct), 2, "x"),
            show(overhead(r.host, r.direct), 1, ""),
        );
    }
    println!();
    println!("With a fresh `CallOptions::new()` per call:");
    println!();
    println!("| size | host ns/call (median) | direct ns/call (median) | ratio | host overhead ns (host - direct) |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.label,
            show(ns(r.fresh), 1, ""),
            show(ns(r.direct), 1, ""),
            show(ratio(r.fresh, r.direct), 2, "x"),
            show(overhead(r.fresh, r.direct), 1, ""),
        );
    }
    println!();

    let variants = [("reused CallOptions", false), ("fresh CallOptions", true)];
    let at = |label: &str| rows.iter().find(|r| r.label == label).copied();

    // Goal 1: at most 1.5x the direct call at 4 KiB.
    if let Some(r) = at("4KiB") {
        for (name, fresh) in variants {
            if let Some(x) = ratio(r.host(fresh), r.direct) {
                let verdict = if x <= MAX_RATIO_4K { "MET" } else { "NOT MET" };
                println!("goal 1, ratio <= {MAX_RATIO_4K}x at 4 KiB ({name}): {x:.2}x -> {verdict}");
            }
        }
    }

    // Goal 2: the same slope, i.e. the per-call overhead does not grow with
    // the input. One-sided: a host that copied the input would be slower per
    // byte; a lower host slope is noise (or the two builds of `word_count`).
    if let (Some(small), Some(large)) = (at("64B"), at("256KiB")) {
        let kib = (large.len - small.len) as f64 / 1024.0;
        for (name, fresh) in variants {
            let (Some(hs), Some(hl), Some(ds), Some(dl)) =
                (small.host(fresh), large.host(fresh), small.direct, large.direct)
            else {
                continue;
            };
            let host_slope = (hl.ns - hs.ns) / kib;
            let direct_slope = (dl.ns - ds.ns) / kib;
            let excess = host_slope / direct_slope - 1.0;
            let growth = (hl.ns - dl.ns) - (hs.ns - ds.ns);
            let noise = hl.half_width() + dl.half_width() + hs.half_width() + ds.half_width();
            let budget = SLOPE_TOLERANCE * (dl.ns - ds.ns);
            let verdict = if excess <= SLOPE_TOLERANCE {
                "MET"
            } else {
                "NOT MET"
            };
            println!(
                "goal 2, same slope ({name}): host {host_slope:.1} ns/KiB vs direct {direct_slope:.1} ns/KiB \
                 ({:+.2}%, allowed +{:.0}%); overhead {:.1} ns at 64 B, {:.1} ns at 256 KiB \
                 (change {growth:+.1} ns) -> {verdict}",
                excess * 100.0,
                SLOPE_TOLERANCE * 100.0,
                hs.ns - ds.ns,
                hl.ns - dl.ns,
            );
            if noise > budget {
                println!(
                    "  note: the medians' 95% confidence intervals add up to +/-{noise:.0} ns, more than the \
                     {budget:.0} ns the tolerance allows; the slope verdict is within noise (rerun on an idle machine)"
                );
            }
        }
    }
}

fn main() {
    let started = SystemTime::now();
    let dir = criterion_dir();
    let plugins = tempfile::tempdir().expect("temp dir");
    let host = load_plugin(plugins.path());

    let mut c = Criterion::default().output_directory(&dir).configure_from_args();
    bench(&mut c, &host);
    c.final_summary();
    drop(host);
    summary(&dir, started);
}
