#!/usr/bin/env bash
# DeepSeek provider overhead: what `DeepSeekProvider::chat` adds per request
# and per streamed chunk on top of the network.
#
# What it measures (crates/aiplug-host/benches/deepseek_overhead.rs): the
# provider against a bare `ureq` client making the same exchange with the
# same local protocol server (aiplug-testkit's DeepSeekServer on loopback,
# HTTP keep-alive):
#   - plain requests with a 200 B prompt and with a 32 KiB conversation
#     (serialise the ChatRequest, send, parse the ChatResponse);
#   - a stream of 200 chunks (parse each chunk, call the sink, assemble);
#   - the same CPU work alone, without I/O, as a cross-check.
# It prints a table of medians and says whether the goal of the models issue
# holds: under 100 µs per request excluding the network.
#
# Usage: bench/deepseek-overhead.sh [--quick]
# Takes about half a minute after the build; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p aiplug-host --bench deepseek_overhead -- "$@"
