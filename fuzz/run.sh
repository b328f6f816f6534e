#!/usr/bin/env bash
# Fuzzes the three load stages of aiplug-host with cargo-fuzz (libFuzzer) and
# keeps what it found as the regression corpus that `cargo test` replays
# (crates/aiplug-host/tests/fuzz_corpus.rs).
#
#   fuzz/run.sh                      all three targets, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh wasm_validation
#
# Targets (fuzz_targets/*.rs, each one aiplug_host::fuzzing function):
#   manifest         plugin.toml parsing and validation
#   native_format    the shared-object format check that runs before dlopen
#   wasm_validation  component validation, compile, world version and imports
#
# What it does: installs cargo-fuzz if missing (`cargo install`), builds the
# targets on the nightly toolchain (address sanitizer, debug assertions and
# overflow checks on), fills fuzz/corpus/<target> from fuzz/seeds/<target>,
# the regression corpus and a tiny shared object built with `cc`, fuzzes each
# target for FUZZ_SECONDS (default 60) with a 10 s limit per input, and prints
# per target the executions, exec/s and corpus size. It then merges the new
# corpus against the regression corpus (libFuzzer -merge=1: only inputs that
# add coverage), copies up to 30 of the smallest of those (at most 4 KiB each,
# 16 KiB for wasm) into crates/aiplug-host/tests/fuzz-corpus/<target>/, and
# copies every crash, timeout or out-of-memory input there too. Commit them.
#
# How long: the first build takes 10 to 20 minutes (wasmtime and cranelift,
# instrumented; later builds are incremental), then 3 x FUZZ_SECONDS, then
# under a minute per target to merge. fuzz/corpus persists between runs, so a
# second run continues where the first stopped.
#
# A crash: libFuzzer prints the panic and its backtrace and saves the input as
# fuzz/artifacts/<target>/crash-<sha1> (this script also copies it into the
# regression corpus, so `cargo test -p aiplug-host --test fuzz_corpus
# --features wasm` fails on it and names the file). Reproduce and minimise:
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-<sha1>
#   cargo +nightly fuzz tmin <target> fuzz/artifacts/<target>/crash-<sha1>
# (both from the repository root).
#
# Environment: FUZZ_SECONDS (per target, default 60); FUZZ_SANITIZER
# (address, none, ...; default address); FUZZ_CODEGEN_UNITS (default 16: a
# build several times faster than cargo-fuzz's 1, a few percent fewer exec/s).
# Needs the nightly toolchain (rustup toolchain install nightly) and a C
# compiler (cc). Exits non-zero when any target found a crash or timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
codegen_units=${FUZZ_CODEGEN_UNITS:-16}
regression=crates/aiplug-host/tests/fuzz-corpus
keep=30
if [ $# -gt 0 ]; then targets=("$@"); else targets=(manifest native_format wasm_validation); fi

# Longest input the fuzzer makes, and largest input kept in the regression
# corpus. native_format's limit fits the shared object built below.
max_len() { case $1 in manifest) echo 4096 ;; *) echo 16384 ;; esac; }
keep_len() { case $1 in wasm_validation) echo 16384 ;; *) echo 4096 ;; esac; }

step() { printf '\n== %s\n' "$*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
    step "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

build_flags=(--sanitizer "$sanitizer" --codegen-units "$codegen_units")
step "building ${targets[*]} (nightly, sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
    cargo +nightly fuzz build "${build_flags[@]}" "$target"
done

# Seeds that are not committed: a real shared object for this machine (with
# libc, unstripped), truncated copies of it, and the wasm components a
# `cargo build --target wasm32-wasip2` left behind (inputs over max_len are
# cut to it, so these act as truncated components).
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
mkdir -p "$generated/native_format" "$generated/wasm_validation"
printf 'int aiplug_fuzz_seed(int x) { return x + 1; }\n' >"$generated/seed.c"
if cc -shared -fPIC -o "$generated/native_format/cc-shared" "$generated/seed.c"; then
    so="$generated/native_format/cc-shared"
    for n in 64 512 4096; do head -c "$n" "$so" >"$generated/native_format/cc-shared-first-$n"; done
    head -c "$(($(wc -c <"$so") - 16))" "$so" >"$generated/native_format/cc-shared-short-16"
else
    echo "warning: cc failed; native_format starts from the committed seeds only" >&2
fi
for wasm in target/wasm32-wasip2/release/*.wasm; do
    [ -f "$wasm" ] && cp "$wasm" "$generated/wasm_validation/"
done

# One number from libFuzzer's -print_final_stats output: final_stat LOG NAME.
final_stat() { sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -n 1; }

summary=()
failed=0
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts" "$regression/$target"
    for dir in "fuzz/seeds/$target" "$regression/$target" "$generated/$target"; do
        [ -d "$dir" ] && find "$dir" -maxdepth 1 -type f -exec cp {} "$corpus/" \;
    done
    before=$(find "$artifacts" -type f | sort)

    step "fuzzing $target for ${seconds}s (corpus: $(find "$corpus" -type f | wc -l) inputs)"
    log=fuzz/artifacts/$target.log
    started=$(date +%s)
    # The log keeps everything; the terminal gets all but the NEW, REDUCE and
    # NEW_FUNC lines (several per corpus change).
    set +e
    cargo +nightly fuzz run "${build_flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
        tee "$log" | grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE)|^[[:space:]]+NEW_FUNC'
    status=${PIPESTATUS[0]}
    set -e
    elapsed=$(($(date +%s) - started))

    step "keeping new inputs of $target"
    merged=$(mktemp -d)
    baseline=$(mktemp -d)
    find "fuzz/seeds/$target" "$regression/$target" -maxdepth 1 -type f -exec cp {} "$baseline/" \;
    cp "$baseline"/* "$merged/" 2>/dev/null || true
    cargo +nightly fuzz run "${build_flags[@]}" "$target" "$merged" "$corpus" -- \
        -merge=1 -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=4096 \
        >"fuzz/artifacts/$target.merge.log" 2>&1 ||
        echo "warning: merge failed, see fuzz/artifacts/$target.merge.log" >&2
    kept=0
    while read -r size file; do
        [ "$kept" -ge "$keep" ] && break
        [ -e "$baseline/$(basename "$file")" ] && continue
        [ "$size" -le "$(keep_len "$target")" ] || continue
        cp "$file" "$regression/$target/"
        kept=$((kept + 1))
    done < <(find "$merged" -maxdepth 1 -type f -printf '%s %p\n' | sort -n)
    rm -rf "$merged" "$baseline"

    found=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) |
        grep -E '/(crash|timeout|oom|leak)-' || true)
    for file in $found; do cp "$file" "$regression/$target/"; done
    if [ "$status" -ne 0 ] || [ -n "$found" ]; then failed=1; fi

    summary+=("$(printf '%-16s %5ss %12s execs %8s exec/s %6s corpus %4s kept  exit %s%s' \
        "$target" "$elapsed" "$(final_stat "$log" number_of_executed_units)" \
        "$(final_stat "$log" average_exec_per_sec)" "$(find "$corpus" -type f | wc -l)" "$kept" \
        "$status" "${found:+  found: $(echo "$found" | tr '\n' ' ')}")")
done

step "summary (regression corpus: $regression)"
printf '%s\n' "${summary[@]}"
exit "$failed"
