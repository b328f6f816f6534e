//! The wasm call path against the native one and a direct call (run:
//! `bench/wasm-call.sh`).
//!
//! `Host::invoke("echo", input)` (the input comes back as the output, so the
//! bytes cross the boundary both ways) on the real `test-behaviour` plugin,
//! the same source built three ways, each loaded through every stage:
//! - `wasm_pooled`: the wasm32-wasip2 component, instances reused from the
//!   plugin's pool (the default);
//! - `wasm_fresh`: the same component with `[limits]
//!   fresh_instance_per_call = true` (instantiate from the `InstancePre`,
//!   `on_load`, the call, drop the store);
//! - `native`: the release shared library;
//! - `direct`: `input.to_vec()` in this process, what `echo` does;
//!
//! for 1 KiB and 64 KiB. Each host call is the full path: a fresh
//! `CallOptions`, the deadline from `[limits] timeout_ms`, the epoch ticker,
//! cancellation, error mapping. Plus `cold_load`: `Host::load` of the
//! component (read, hash, validate, compile, link, first instance,
//! metadata, on_load) and its unload.
//!
//! Goals (the wasm issue): a 1 KiB round trip at most 2 µs pooled and at
//! most 25 µs with a fresh instance per call. After criterion's report,
//! `main` prints a table of medians and the verdicts.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aiplug_host::{CallOptions, Host, HostBuilder};
use criterion::{BenchmarkId, Criterion, Throughput};

const GROUP: &str = "wasm_call";
const VARIANTS: [&str; 4] = ["wasm_pooled", "wasm_fresh", "native", "direct"];
const SIZES: [(usize, &str); 2] = [(1 << 10, "1KiB"), (64 << 10, "64KiB")];
const GOAL_POOLED_NS: f64 = 2_000.0;
const GOAL_FRESH_NS: f64 = 25_000.0;

fn stage_wasm(parent: &Path, dir: &str, extra: &str) -> PathBuf {
    let component = aiplug_testkit::wasm_plugin("test-behaviour", &[], true);
    let manifest = format!(
        "id = \"test-behaviour\"\nversion = \"0.1.0\"\nkind = \"wasm\"\nentry = \"test_behaviour.wasm\"\n{extra}"
    );
    aiplug_testkit::stage(parent, dir, &manifest, &component, "test_behaviour.wasm")
}

fn load(dir: &Path) -> Host {
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    if let Err(e) = host.load(dir) {
        panic!("cannot load {}: {e}\n  fix: {}", dir.display(), e.fix());
    }
    host
}

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

fn bench(c: &mut Criterion, parent: &Path) {
    let pooled = load(&stage_wasm(parent, "pooled", ""));
    let fresh = load(&stage_wasm(
        parent,
        "fresh",
        "[limits]\nfresh_instance_per_call = true\n",
    ));
    let lib = aiplug_testkit::cargo_plugin("test-behaviour");
    let native = load(&aiplug_testkit::stage(
        parent,
        "native",
        &aiplug_testkit::manifest("test-behaviour", "libtest_behaviour.so", ""),
        &lib,
        "libtest_behaviour.so",
    ));

    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (len, label) in SIZES {
        let input: Vec<u8> = b"the plugin host copies bytes into the sandbox and back "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect();
        for (name, host) in [
            ("wasm_pooled", &pooled),
            ("wasm_fresh", &fresh),
            ("native", &native),
        ] {
            let out = host.invoke("echo", &input, &CallOptions::new()).expect("echo");
            assert_eq!(&*out, &input[..], "{name} echo at {label}");
        }
        group.throughput(Throughput::Bytes(len as u64));
        for (name, host) in [
            ("wasm_pooled", &pooled),
            ("wasm_fresh", &fresh),
            ("native", &native),
        ] {
            group.bench_with_input(BenchmarkId::new(name, label), &input[..], |b, input| {
                b.iter(|| host.invoke(black_box("echo"), black_box(input), &CallOptions::new()))
            });
        }
        group.bench_with_input(BenchmarkId::new("direct", label), &input[..], |b, input| {
            b.iter(|| black_box(input).to_vec())
        });
    }
    group.finish();

    let mut cold = c.benchmark_group(GROUP);
    cold.sample_size(10).measurement_time(Duration::from_secs(5));
    let dir = stage_wasm(parent, "cold", "");
    cold.bench_function("cold_load", |b| {
        b.iter(|| {
            let host = HostBuilder::new()
                .trust(aiplug_host::TrustPolicy::AllowUnsigned)
                .build();
            host.load(&dir).expect("load");
            host.unload("test-behaviour").expect("unload");
        })
    });
    cold.finish();
}

fn median(dir: &Path, bench: &str, size: Option<&str>, since: SystemTime) -> Option<f64> {
    let mut path = dir.join(GROUP).join(bench);
    if let Some(size) = size {
        path = path.join(size);
    }
    let path = path.join("new/estimates.json");
    if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < since {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    estimates.get("median")?.get("point_estimate")?.as_f64()
}

fn show(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.2} µs", ns / 1000.0))
}

fn summary(dir: &Path, since: SystemTime) {
    let at = |bench: &str, size: &str| median(dir, bench, Some(size), since);
    if SIZES
        .iter()
        .all(|(_, s)| VARIANTS.iter().all(|v| at(v, s).is_none()))
    {
        println!("wasm_call: no fresh measurements to summarise (test or list mode, or filtered out)");
        return;
    }
    println!();
    println!(
        "wasm_call summary: medians per call, from {}/{GROUP}",
        dir.display()
    );
    println!();
    println!("| input | wasm, pooled instance | wasm, fresh instance per call | native | direct |");
    println!("|---|---|---|---|---|");
    for (_, size) in SIZES {
        println!(
            "| {size} | {} | {} | {} | {} |",
            show(at("wasm_pooled", size)),
            show(at("wasm_fresh", size)),
            show(at("native", size)),
            show(at("direct", size)),
        );
    }
    if let Some(cold) = median(dir, "cold_load", None, since) {
        println!();
        println!(
            "cold load (validate, compile, link, first instance, on_load) + unload: {:.1} ms",
            cold / 1e6
        );
    }
    println!();
    for (bench, goal, what) in [
        ("wasm_pooled", GOAL_POOLED_NS, "pooled instance"),
        ("wasm_fresh", GOAL_FRESH_NS, "fresh instance per call"),
    ] {
        if let Some(ns) = at(bench, "1KiB") {
            let verdict = if ns <= goal { "MET" } else { "NOT MET" };
            println!(
                "goal: 1 KiB round trip, {what}, <= {:.0} µs: {:.2} µs -> {verdict}",
                goal / 1000.0,
                ns / 1000.0
            );
        }
    }
}

fn main() {
    let dir = criterion_dir();
    let since = SystemTime::now() - Duration::from_secs(1);
    let parent = tempfile::tempdir().expect("temp dir");
    let mut c = Criterion::default().output_directory(&dir).configure_from_args();
    bench(&mut c, parent.path());
    c.final_summary();
    summary(&dir, since);
}
