#!/usr/bin/env bash
# The main job on a fresh machine, with no configuration and no network
# beyond the package registries: builds aiplug and the example plugins, then
# lists them, diagnoses one, runs one as a service and passes a chat request
# through the filters.
#
# (Once the models and code-review issues land, the main job becomes
# `aiplug review examples/...`.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building aiplug"
cargo build --quiet --release -p aiplug
aiplug=target/release/aiplug

step "building the example plugins (Rust, C, Go) into target/plugins"
scripts/build-plugins.sh

step "aiplug plugins list"
$aiplug plugins list

step "aiplug doctor target/plugins/go-format"
$aiplug doctor target/plugins/go-format

step "aiplug run go-format examples/messy.go"
$aiplug run go-format examples/messy.go

step "aiplug filter examples/chat-request.json  (secret-redactor, then prompt-decorator)"
$aiplug filter examples/chat-request.json
echo
