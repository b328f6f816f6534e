#!/usr/bin/env bash
# Wasm call path benchmark: `Host::invoke("echo", input)` through the wasm
# tier (instances reused from the pool, and a fresh instance per call)
# against the native tier and a direct call, at 1 KiB and 64 KiB, plus the
# cold load of a component (crates/aiplug-host/benches/wasm_call.rs).
#
# Goals (the wasm issue): a 1 KiB round trip at most 2 µs on a pooled
# instance and at most 25 µs with a fresh instance per call, through the
# host's full call path. After criterion's report the bench prints a table of
# medians and the verdicts.
#
# Needs the wasm32-wasip2 target (added with rustup when missing).
# Usage: bench/wasm-call.sh [criterion args...]   e.g. `1KiB` to filter.
# Results: target/criterion/wasm_call/. Takes about two minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
exec cargo bench -p aiplug-host --features wasm --bench wasm_call -- "$@"
