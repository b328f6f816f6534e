#!/usr/bin/env bash
# Local provider benchmark: the `local` provider (LocalModel through the
# ChatModel trait) against llama.cpp's own llama-bench on the same GGUF, the
# same threads and the same flash-attention setting; then memory with 1 vs 4
# model names sharing one file, and time to first token.
#
# What runs:
#   - the default model (SmolLM2-135M-Instruct Q4_1), fetched by
#     scripts/fetch-default-model.sh if it is not there yet;
#   - llama-bench twice over, each built once and cached under target/:
#       sdist  the llama.cpp tree that the sdist of the PyPI package
#              llama-cpp-python==0.3.36 vendors (target/llama-bench);
#       same   the llama.cpp that llama-cpp-sys-2 vendors, i.e. the very
#              library the provider links, with tools/llama-bench taken from
#              that sdist (llama-cpp-sys-2 ships no tools)
#              (target/llama-bench-sys). The two llama.cpp versions differ,
#              so "same" isolates the provider's own cost;
#     both: cmake Release, GGML_NATIVE=OFF, OpenMP, static: the CPU flags
#     llama-cpp-sys-2 builds with (never -march=native, see FACTS.md);
#   - crates/aiplug-host/examples/local_bench.rs, built in release.
#
# Speed, for flash attention on (`-fa 1`, the library's CPU default) and off:
#   llama-bench -p 512 -n 0            (pp512: prompt tokens/s)
#   llama-bench -p 0 -n 128 -d 512     (tg128 after a 512-token prompt)
#   ours: one greedy request, a 512-token prompt (chat template included),
#     max_tokens 128 with ignore_eos; prompt tokens/s from the call to the
#     first streamed chunk (render, tokenize, slot, context creation and
#     decode all count against us), generated tokens/s from there to the
#     finish chunk (128 sampled, 127 decoded).
#   Every side runs $REPS repetitions (after a warm-up) in each of $ROUNDS
#   alternating rounds, so background load hits all sides alike. The table
#   compares the best sample of each side (the least disturbed run: on a
#   shared machine the mean mostly measures the neighbours) and shows the
#   ratio of medians too. Goal: ours/theirs at least 0.97.
# Memory: a process per count opens N names on the same file, loads each and
#   chats once on each; RSS (VmRSS) and peak (VmHWM) afterwards. Goal: RSS
#   with 4 names at most 1.1x that with 1. Time to first token: the first
#   request of a fresh process (open + load + first token, with the file in
#   the page cache and its hash cached) and the median over later requests.
#
# Usage: bench/local-llm.sh   (about 5 minutes on 2 idle cores, plus about
#        20 minutes the first time to build the two llama-bench)
# Environment: THREADS (default 2), REPS (3), ROUNDS (3), FA ("1 0": which
#   flash-attention settings to compare), MODEL (a GGUF path; default: the
#   default model). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
threads=${THREADS:-2}
reps=${REPS:-3}
rounds=${ROUNDS:-3}
fa_settings=${FA:-1 0}
target=${CARGO_TARGET_DIR:-$root/target}
log() { printf 'local-llm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -n "${MODEL:-}" ]; then
    model=$MODEL
else
    log "default model"
    model=$(scripts/fetch-default-model.sh | tail -n 1)
fi
[ -f "$model" ] || die "$model is missing"

# build_llama_bench SRC DIR: configure and build llama-bench from SRC into DIR/build.
build_llama_bench() {
    local src=$1 dir=$2
    log "building llama-bench in $dir (a few minutes, once)"
    cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_OPENMP=ON \
        -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_APP=OFF >"$dir/cmake.log" 2>&1 \
        || { tail -n 30 "$dir/cmake.log" >&2; die "cmake configure failed (log: $dir/cmake.log)"; }
    cmake --build "$dir/build" --target llama-bench -j "$(nproc)" >"$dir/build.log" 2>&1 \
        || { tail -n 30 "$dir/build.log" >&2; die "building llama-bench failed (log: $dir/build.log)"; }
}

# sdist: llama-cpp-python's vendored llama.cpp.
version=0.3.36
sdist_dir=$target/llama-bench
sdist_src=$sdist_dir/llama_cpp_python-$version/vendor/llama.cpp
if [ ! -f "$sdist_src/tools/llama-bench/llama-bench.cpp" ]; then
    log "downloading the llama-cpp-python $version sdist (llama.cpp sources, 77 MB)"
    mkdir -p "$sdist_dir/dl"
    python3 -m pip download --no-deps --no-binary :all: --disable-pip-version-check \
        -d "$sdist_dir/dl" "llama-cpp-python==$version" >&2 \
        || die "pip download llama-cpp-python==$version failed (PIP_INDEX_URL for a mirror)"
    tar -xzf "$sdist_dir/dl/llama_cpp_python-$version.tar.gz" -C "$sdist_dir"
fi
[ -x "$sdist_dir/build/bin/llama-bench" ] || build_llama_bench "$sdist_src" "$sdist_dir"

# same: llama-cpp-sys-2's llama.cpp with the sdist's tools/llama-bench.
same_dir=$target/llama-bench-sys
if [ ! -x "$same_dir/build/bin/llama-bench" ]; then
    sys_manifest=$(cargo metadata --format-version 1 --manifest-path crates/aiplug-host/Cargo.toml \
        --features local-llm 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next(p["manifest_path"] for p in d["packages"] if p["name"] == "llama-cpp-sys-2"))')
    sys_src=$(dirname "$sys_manifest")/llama.cpp
    [ -f "$sys_src/CMakeLists.txt" ] || die "no llama.cpp sources in $sys_src (run cargo fetch)"
    rm -rf "$same_dir/src"
    mkdir -p "$same_dir"
    cp -r "$sys_src" "$same_dir/src"
    chmod -R u+w "$same_dir/src"
    cp "$sdist_src"/tools/llama-bench/* "$same_dir/src/tools/llama-bench/"
    printf 'add_subdirectory(llama-bench)\n' >"$same_dir/src/tools/CMakeLists.txt"
    build_llama_bench "$same_dir/src" "$same_dir"
fi

log "building local_bench (release)"
cargo build --release --quiet -p aiplug-host --features local-llm --example local_bench
ours=$target/release/examples/local_bench

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.0) }'; then
    log "warning: load average is $load: other work on this machine will skew the numbers"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for fa in $fa_settings; do
    if [ "$fa" = 1 ]; then onoff=on; else onoff=off; fi
    for round in $(seq 1 "$rounds"); do
        log "flash attention $onoff, round $round/$rounds"
        for peer in sdist same; do
            if [ $peer = sdist ]; then bin=$sdist_dir/build/bin/llama-bench; else bin=$same_dir/build/bin/llama-bench; fi
            "$bin" -m "$model" -t "$threads" -fa "$fa" -r "$reps" -p 512 -n 0 -o json \
                >"$out/$peer-pp-$fa-$round.json" 2>/dev/null
            "$bin" -m "$model" -t "$threads" -fa "$fa" -r "$reps" -p 0 -n 128 -d 512 -o json \
                >"$out/$peer-tg-$fa-$round.json" 2>/dev/null
        done
        "$ours" speed --model "$model" --threads "$threads" --fa "$onoff" --pp 512 --tg 128 \
            --reps "$reps" >"$out/ours-$fa-$round.json"
    done
done
log "memory and time to first token"
"$ours" memory --model "$model" --threads "$threads" --names 1 >"$out/mem-1.json"
"$ours" memory --model "$model" --threads "$threads" --names 4 >"$out/mem-4.json"

python3 - "$out" "$model" "$threads" "$reps" "$rounds" "$load" <<'EOF'
import glob, json, os, statistics, sys
out, model, threads, reps, rounds, load = sys.argv[1:]

def load_json(path):
    with open(path) as f:
        return json.load(f)

def samples(pattern, key=None):
    values = []
    for path in glob.glob(f"{out}/{pattern}"):
        data = load_json(path)
        values += data[0]["samples_ts"] if key is None else data[key]
    return values

print(f"\nLocal provider vs llama-bench: {os.path.basename(model)}, {threads} threads, "
      f"{reps} reps x {rounds} alternating rounds, tokens/s (load average at start: {load})")
print("sdist: llama-bench from llama-cpp-python 0.3.36; same: llama-bench on llama-cpp-sys-2's llama.cpp\n")
print(f"{'FA':<4} {'test':<13} {'sdist':>7} {'same':>7} {'ours':>7}   {'ours/sdist':>10} {'ours/same':>9}"
      f"   {'median ratios':>15}   goal: best ratio >= 0.97")
worst = None
for fa in sorted({p.rsplit('-', 2)[1] for p in glob.glob(f"{out}/ours-*.json")}, reverse=True):
    for test, kind, key in (("pp512", "pp", "pp_samples"), ("tg128 @ d512", "tg", "tg_samples")):
        sdist = samples(f"sdist-{kind}-{fa}-*.json")
        same = samples(f"same-{kind}-{fa}-*.json")
        mine = samples(f"ours-{fa}-*.json", key)
        r_sdist, r_same = max(mine) / max(sdist), max(mine) / max(same)
        m_sdist = statistics.median(mine) / statistics.median(sdist)
        m_same = statistics.median(mine) / statistics.median(same)
        for r in (r_sdist, r_same):
            worst = r if worst is None else min(worst, r)
        verdict = "met" if min(r_sdist, r_same) >= 0.97 else "NOT met"
        label = "on" if fa == "1" else "off"
        print(f"{label:<4} {test:<13} {max(sdist):>7.1f} {max(same):>7.1f} {max(mine):>7.1f}   "
              f"{r_sdist:>10.3f} {r_same:>9.3f}   {m_sdist:>7.3f} {m_same:>7.3f}   {verdict}")

m1, m4 = load_json(f"{out}/mem-1.json"), load_json(f"{out}/mem-4.json")
print(f"\nMemory: model names sharing {os.path.basename(model)} (one process each)\n")
print(f"{'names':>5} {'RSS MB':>8} {'peak MB':>8} {'vs 1 name':>10} {'1st token, fresh process':>26} {'1st token, loaded':>18}")
for m in (m1, m4):
    print(f"{m['names']:>5} {m['rss_kb']/1024:>8.1f} {m['peak_rss_kb']/1024:>8.1f} "
          f"{m['rss_kb']/m1['rss_kb']:>10.3f} {m['cold_first_token_ms']:>23.1f} ms {m['warm_first_token_ms']:>15.1f} ms")
ratio = m4["rss_kb"] / m1["rss_kb"]
print(f"\nRSS 4 names / 1 name: {ratio:.3f} (goal <= 1.1: {'met' if ratio <= 1.1 else 'NOT met'}); "
      f"worst best-sample speed ratio: {worst:.3f} (goal >= 0.97: {'met' if worst >= 0.97 else 'NOT met'})")
print(f"(first token: a {m1['prompt_tokens']}-token chat prompt, greedy; 'fresh process' is open + load + "
      f"first token with the file in the page cache; 'loaded' is the median of later requests)")
EOF
