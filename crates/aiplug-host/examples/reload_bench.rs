//! The host's side of `bench/reload.sh`: hot reload latency, from the
//! moment a plugin's new artefact is in place to the moment the new version
//! serves, over a series of reloads, for native plugins (the C fixture, two
//! builds that answer differently; the Rust `test-behaviour` cdylib, and the
//! same library with bytes appended) and, with the `wasm` feature, a wasm
//! component (`test-behaviour` for wasm32-wasip2, and the same component
//! with a custom section appended, so each reload compiles a new artefact).
//!
//! ```text
//! reload_bench [--reloads 50] [--debounce-ms 200]
//! ```
//!
//! Two paths, each measured separately:
//! - `sync_dir`: the file is renamed over the old one, then
//!   [`Host::sync_dir`] is called: the pure reload cost (fingerprint, every
//!   load stage, `on_load`, the swap). "Serving" is when the host reports
//!   the swap ([`Observer::reload`] runs right after it, on the reloading
//!   thread); "returned" also counts draining the old version, its
//!   `on_unload`, closing it and removing its temp copy.
//! - `watcher`: the file is renamed over the old one under a running
//!   [`aiplug_host::watch::watch`] with the given debounce window; the
//!   latency is rename → serving, and the table also gives it minus the
//!   window (the watcher acts once the directory has been quiet that long).
//!
//! Prints a table (median and max per path) and whether the native goal
//! (under 50 ms, debounce window excluded) is met.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aiplug_host::{CallOptions, Host, HostBuilder, Observer, PluginState, SyncChange};
use aiplug_testkit as kit;

/// The time of the last successful swap, and how many there were.
#[derive(Default)]
struct Swaps {
    last: Mutex<(usize, Option<Instant>)>,
    changed: Condvar,
}

impl Observer for Swaps {
    fn reload(&self, _plugin: &str, ok: bool) {
        if ok {
            let mut last = self.last.lock().unwrap();
            *last = (last.0 + 1, Some(Instant::now()));
            self.changed.notify_all();
        }
    }
}

impl Swaps {
    fn count(&self) -> usize {
        self.last.lock().unwrap().0
    }

    /// Waits until more than `seen` swaps happened; returns when the last did.
    fn wait_past(&self, seen: usize, within: Duration) -> Option<Instant> {
        let guard = self.last.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, within, |last| last.0 <= seen)
            .unwrap();
        (guard.0 > seen).then_some(guard.1).flatten()
    }
}

/// A plugin to reload: two artefacts and what each answers.
struct Subject {
    tier: &'static str,
    manifest: String,
    entry: &'static str,
    builds: [Vec<u8>; 2],
    /// Invoked after each reload as a check: target, input, each build's answer.
    check: (&'static str, &'static [u8], [Vec<u8>; 2]),
}

struct Args {
    reloads: usize,
    debounce: Duration,
}

fn parse() -> Args {
    let mut args = Args {
        reloads: 50,
        debounce: aiplug_host::watch::DEFAULT_DEBOUNCE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| die(&format!("{flag} needs a number")));
        match flag.as_str() {
            "--reloads" => args.reloads = value as usize,
            "--debounce-ms" => args.debounce = Duration::from_millis(value),
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    args
}

fn die(message: &str) -> ! {
    eprintln!("reload_bench: {message}\nusage: reload_bench [--reloads N] [--debounce-ms MS]");
    std::process::exit(2)
}

fn native() -> Subject {
    let build = |answer: &str| {
        let answer = format!("\"{answer}\"");
        let defines = [
            ("FIXTURE_ID", "\"bench\""),
            ("FIXTURE_TASK", "\"bench-task\""),
            ("FIXTURE_ANSWER", answer.as_str()),
        ];
        std::fs::read(kit::c_plugin("test-plugins/fixture.c", &defines)).expect("built fixture")
    };
    Subject {
        tier: "native C",
        manifest: kit::manifest("bench", "libreload_bench.so", ""),
        entry: "libreload_bench.so",
        builds: [build("A"), build("B")],
        check: ("bench-task", b"x", [b"A:x".to_vec(), b"B:x".to_vec()]),
    }
}

/// The Rust test plugin (a cdylib with std, the size of a real plugin),
/// and the same library with bytes appended: another artefact, same code.
fn native_rust() -> Subject {
    let library = std::fs::read(kit::cargo_plugin("test-behaviour")).expect("built test-behaviour");
    let mut other = library.clone();
    other.extend_from_slice(b"reload-bench: second build");
    Subject {
        tier: "native Rust",
        manifest: kit::manifest("test-behaviour", "libreload_bench_rs.so", ""),
        entry: "libreload_bench_rs.so",
        builds: [library, other],
        check: ("echo", b"x", [b"x".to_vec(), b"x".to_vec()]),
    }
}

#[cfg(not(feature = "wasm"))]
fn wasm() -> Option<Subject> {
    None
}

#[cfg(feature = "wasm")]
fn wasm() -> Option<Subject> {
    let component = std::fs::read(kit::wasm_plugin("test-behaviour", &[], true)).expect("built component");
    // A custom section at the end: another artefact (another sha256, so a
    // new version, compiled again) with the same code.
    let mut other = component.clone();
    let name = b"reload-bench";
    let payload = b"second build";
    other.push(0); // custom section id
    other.push((1 + name.len() + payload.len()) as u8); // section size (LEB128, < 128)
    other.push(name.len() as u8);
    other.extend_from_slice(name);
    other.extend_from_slice(payload);
    Some(Subject {
        tier: "wasm",
        manifest:
            "id = \"test-behaviour\"\nversion = \"0.1.0\"\nkind = \"wasm\"\nentry = \"reload_bench.wasm\"\n"
                .to_string(),
        entry: "reload_bench.wasm",
        builds: [component, other],
        check: ("echo", b"x", [b"x".to_vec(), b"x".to_vec()]),
    })
}

/// Puts `bytes` in place the way a deployment does: a temp name in the
/// same directory, renamed over the old file (one atomic change).
fn deploy(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes).expect("write the new build");
    std::fs::rename(&staged, path).expect("rename it into place");
}

fn stage(subject: &Subject) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), &subject.manifest).unwrap();
    std::fs::write(dir.join(subject.entry), &subject.builds[0]).unwrap();
    (root, dir)
}

fn host(swaps: &Arc<Swaps>) -> Host {
    HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .observer(Arc::clone(swaps) as Arc<dyn Observer>)
        .build()
}

fn check(host: &Host, subject: &Subject, build: usize) {
    let (target, input, answers) = &subject.check;
    let out = host
        .invoke(target, input, &CallOptions::new())
        .unwrap_or_else(|e| panic!("{} plugin does not answer after a reload: {e}", subject.tier));
    assert_eq!(&*out, answers[build].as_slice(), "the new build answers");
}

/// Reloads through `Host::sync_dir`: (rename → serving, rename → returned).
fn through_sync_dir(subject: &Subject, reloads: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (root, dir) = stage(subject);
    let swaps = Arc::new(Swaps::default());
    let host = host(&swaps);
    for result in host.load_dir(root.path()) {
        result.unwrap_or_else(|e| panic!("{}: {e}", subject.tier));
    }
    let (mut serving, mut returned) = (Vec::new(), Vec::new());
    for i in 1..=reloads {
        let build = i % 2;
        deploy(&dir.join(subject.entry), &subject.builds[build]);
        let start = Instant::now();
        let changes = host.sync_dir(root.path());
        let end = Instant::now();
        assert!(
            matches!(changes.as_slice(), [SyncChange::Reloaded(_)]),
            "{}: {changes:?}",
            subject.tier
        );
        let swapped = swaps.last.lock().unwrap().1.expect("swap reported");
        serving.push(swapped - start);
        returned.push(end - start);
        check(&host, subject, build);
    }
    (serving, returned)
}

/// Reloads through the file watcher: rename → serving.
fn through_watcher(subject: &Subject, reloads: usize, debounce: Duration) -> Vec<Duration> {
    let (root, dir) = stage(subject);
    let swaps = Arc::new(Swaps::default());
    let host = Arc::new(host(&swaps));
    for result in host.load_dir(root.path()) {
        result.unwrap_or_else(|e| panic!("{}: {e}", subject.tier));
    }
    let _watcher = aiplug_host::watch::watch(&host, &[root.path().to_path_buf()], debounce).expect("watch");
    let mut latencies = Vec::new();
    for i in 1..=reloads {
        let build = i % 2;
        let seen = swaps.count();
        deploy(&dir.join(subject.entry), &subject.builds[build]);
        let start = Instant::now();
        let swapped = swaps
            .wait_past(seen, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{}: reload {i} never happened", subject.tier));
        latencies.push(swapped - start);
        // Let the watcher finish retiring the old version, and the
        // debouncer emit every event of this change, before the next: a
        // change made while a deadline from the last one is pending would
        // be picked up early and measure less than the window.
        while host.plugins().iter().any(|p| p.state == PluginState::Draining) {
            std::thread::sleep(Duration::from_millis(1));
        }
        check(&host, subject, build);
        std::thread::sleep(debounce + Duration::from_millis(50));
    }
    latencies
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, max) in milliseconds.
fn stats(samples: &[Duration]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (ms(sorted[sorted.len() / 2]), ms(sorted[sorted.len() - 1]))
}

fn main() {
    let args = parse();
    let subjects: Vec<Subject> = [Some(native()), Some(native_rust()), wasm()]
        .into_iter()
        .flatten()
        .collect();
    let window = ms(args.debounce);

    let mut rows = Vec::new();
    let mut native_worst = 0.0f64;
    for subject in &subjects {
        let (serving, returned) = through_sync_dir(subject, args.reloads);
        let watched = through_watcher(subject, args.reloads, args.debounce);
        let (wm, wx) = stats(&watched);
        let sizes = format!("{} KiB", subject.builds[0].len() / 1024);
        rows.push((
            subject.tier,
            sizes.clone(),
            "sync_dir: rename -> serving",
            stats(&serving),
        ));
        rows.push((
            subject.tier,
            sizes.clone(),
            "sync_dir: rename -> returned",
            stats(&returned),
        ));
        rows.push((
            subject.tier,
            sizes.clone(),
            "watcher: rename -> serving",
            (wm, wx),
        ));
        rows.push((
            subject.tier,
            sizes,
            "watcher minus debounce window",
            (wm - window, wx - window),
        ));
        if subject.tier.starts_with("native") {
            let (_, sync_max) = stats(&serving);
            native_worst = native_worst.max(sync_max).max(wx - window);
        }
    }

    println!();
    println!(
        "hot reload latency, {} reloads per row, debounce window {window:.0} ms, {} CPUs",
        args.reloads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<11} {:>9}  {:<31} {:>10} {:>10}",
        "tier", "artefact", "path", "median ms", "max ms"
    );
    for (tier, size, path, (median, max)) in &rows {
        println!("{tier:<11} {size:>9}  {path:<31} {median:>10.2} {max:>10.2}");
    }
    #[cfg(not(feature = "wasm"))]
    println!("(wasm: built without the `wasm` feature; bench/reload.sh enables it)");
    println!();
    let goal = 50.0;
    println!(
        "native goal: under {goal:.0} ms excluding the debounce window: {} (worst {native_worst:.2} ms)",
        if native_worst < goal { "met" } else { "NOT met" }
    );
}
