//! The fuzz targets' regression corpus, replayed on the stable toolchain.
//!
//! Every file under `tests/fuzz-corpus/<target>/` (inputs `fuzz/run.sh` kept:
//! new coverage, and any crash or timeout the fuzzer found) and under the
//! fuzzer's seeds `fuzz/seeds/<target>/` goes through the matching
//! [`aiplug_host::fuzzing`] entry point. Each input runs on its own thread;
//! one that panics, or runs past [`PER_INPUT`], fails the test, and the
//! failure names the file. Replay one by hand with
//! `cargo +nightly fuzz run <target> <file>` from `fuzz/`.
//!
//! `native_format` needs the `native` feature and `wasm_validation` the
//! `wasm` feature; `cargo test --workspace` has both (the `aiplug` crate
//! turns `wasm` on), `cargo test -p aiplug-host` alone only `native`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest one input may run (an unoptimised build, on a shared CI machine);
/// the fuzzer allows 10 s in an optimised one.
const PER_INPUT: Duration = Duration::from_secs(60);

#[test]
fn manifest_corpus() {
    replay("manifest", aiplug_host::fuzzing::manifest);
}

#[cfg(feature = "native")]
#[test]
fn native_format_corpus() {
    replay("native_format", aiplug_host::fuzzing::native_format);
}

#[cfg(feature = "wasm")]
#[test]
fn wasm_validation_corpus() {
    replay("wasm_validation", aiplug_host::fuzzing::wasm_validation);
}

/// Runs every input of `target` through `stage`; fails listing each input
/// that panicked or hung.
fn replay(target: &str, stage: fn(&[u8])) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for dir in [
        crate_dir.join("tests/fuzz-corpus").join(target),
        crate_dir.join("../../fuzz/seeds").join(target),
    ] {
        let files = files_in(&dir);
        assert!(
            !files.is_empty(),
            "{} has no inputs: run fuzz/run.sh, or restore the directory from git",
            dir.display()
        );
        inputs.extend(files);
    }

    let mut failures = Vec::new();
    for file in &inputs {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        if let Err(why) = run_one(stage, bytes) {
            failures.push(format!("{}: {why}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs failed:\n  {}",
        failures.len(),
        inputs.len(),
        failures.join("\n  ")
    );
}

/// The regular files directly in `dir`, sorted; none when it is missing.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// `stage(bytes)` on a thread of its own: `Err` says how it panicked, or that
/// it was still running after [`PER_INPUT`] (the thread is then left behind).
fn run_one(stage: fn(&[u8]), bytes: Vec<u8>) -> Result<(), String> {
    let (done, finished) = mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        stage(&bytes);
        let _ = done.send(());
    });
    match finished.recv_timeout(PER_INPUT) {
        Ok(()) => Ok(()),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("still running after {PER_INPUT:?}")),
        // The sender is dropped without sending only when `stage` panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = worker.join().expect_err("the worker ended without reporting");
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".to_string());
            Err(format!("panicked after {:?}: {message}", started.elapsed()))
        }
    }
}
