#!/usr/bin/env bash
# Limits benchmark: what `[limits]` admission costs a call, and how fast an
# overloaded plugin refuses (crates/aiplug-host/examples/limits_bench.rs).
#
#   1. Throughput of `echo` (16 B) on the real test-behaviour plugin through
#      Host::invoke, on two hosts side by side: admission off, and on with
#      max_concurrency, queue_ms, requests_per_second and timeout_ms all set
#      (never refusing). Median calls/s over alternating rounds, 1 and 2
#      callers; goal: limits cost under 5 %.
#   2. Refusal latency: max_concurrency = 2 with both places held and
#      queue_ms = 0, and a plugin over its requests_per_second; median and
#      p99 next to an admitted call.
#
# Usage: bench/limits.sh [--rounds 15] [--round-ms 300] [--threads 1,2] [--refusals 20000]
# Takes about half a minute after the build; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p aiplug-host --features native --example limits_bench -- "$@"
