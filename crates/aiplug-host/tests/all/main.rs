//! Integration tests of the host library: real plugins (Rust via the SDK, C
//! via `cc`, Go via `go build -buildmode=c-shared`) loaded through the real
//! pipeline. One binary, a module per feature.

mod bad_input;
mod deepseek;
mod examples;
mod host_api;
mod lifecycle;
mod limits;
#[cfg(feature = "local-llm")]
mod local;
mod pull;
mod registry;
mod regression;
mod soak;
mod thread_locals;
mod trust;
#[cfg(feature = "wasm")]
mod wasm;

use std::path::{Path, PathBuf};

use aiplug_host::{Host, HostBuilder};
use aiplug_testkit as kit;

/// Stages the Rust test plugin with `config` (TOML lines of its `[config]`)
/// under `parent`.
pub fn behaviour(parent: &Path, dir: &str, config: &str) -> PathBuf {
    let lib = kit::cargo_plugin("test-behaviour");
    let manifest = kit::manifest(
        "test-behaviour",
        "libtest_behaviour.so",
        &format!("[capabilities]\nmodels = [\"*\"]\n[config]\n{config}\n"),
    );
    kit::stage(parent, dir, &manifest, &lib, "libtest_behaviour.so")
}

/// Stages the C fixture compiled with `defines` under `parent/dir` with the
/// given manifest `extra` lines.
pub fn fixture(parent: &Path, id: &str, defines: &[(&str, &str)], extra: &str) -> PathBuf {
    let quoted = format!("\"{id}\"");
    let mut all = vec![("FIXTURE_ID", quoted.as_str())];
    all.extend_from_slice(defines);
    let lib = kit::c_plugin("test-plugins/fixture.c", &all);
    kit::stage(
        parent,
        id,
        &kit::manifest(id, "libfixture.so", extra),
        &lib,
        "libfixture.so",
    )
}

/// A host with a short init timeout so hanging plugins fail fast.
pub fn host() -> Host {
    HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .init_timeout(std::time::Duration::from_secs(3))
        .build()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
