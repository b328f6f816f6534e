#!/usr/bin/env bash
# Hot reload latency benchmark: how long from a plugin's new artefact being
# in place (renamed over the old file, as a deployment does) to the new
# version serving, median and max over 50 reloads, for a native plugin (the
# C test fixture, two builds that answer differently) and a wasm component
# (test-behaviour for wasm32-wasip2, two artefacts).
# (crates/aiplug-host/examples/reload_bench.rs)
#
# Two paths per tier:
#   sync_dir  Host::sync_dir called right after the rename: the pure reload
#             cost (every load stage, on_load, the atomic swap). "serving"
#             is the swap; "returned" adds draining the old version, its
#             on_unload, dlclose and removing its temp copy.
#   watcher   the file watcher of `aiplug serve` (inotify, debounced): rename
#             -> serving, and the same minus the debounce window, which the
#             watcher waits out on purpose (DEFAULT_DEBOUNCE, 200 ms).
#
# Goal (hot reload issue): under 50 ms for a native plugin, excluding the
# debounce window. Needs cc and the wasm32-wasip2 target (added with rustup
# when missing). Usage: bench/reload.sh [--reloads N] [--debounce-ms MS]
# Takes about a minute after the build; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
exec cargo run --quiet --release -p aiplug-host --features wasm --example reload_bench -- "$@"
