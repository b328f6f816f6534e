#!/usr/bin/env bash
# Local provider benchmark: the `local` provider (LocalModel through the
# ChatModel trait) against llama.cpp's own llama-bench on the same GGUF, the
# same threads and the same flash-attention setting; then memory with 1 vs 4
# model names sharing one file, and time to first token.
#
# What runs:
#   - the default model (SmolLM2-135M-Instruct Q4_1), fetched by
#     scripts/fetch-default-model.sh if it is not there yet;
#   - llama-bench, built once into target/llama-bench from the llama.cpp tree
#     that the sdist of the PyPI package llama-cpp-python==0.3.36 vendors
#     (cmake, Release, GGML_NATIVE=OFF, OpenMP: the same CPU flags
#     llama-cpp-sys-2 builds with; never -march=native, see FACTS.md);
#   - crates/aiplug-host/examples/local_bench.rs, built in release.
#
# Speed, for flash attention on (`-fa 1`, the library's CPU default) and off:
#   theirs  llama-bench -p 512 -n 0            (pp512: prompt tokens/s)
#           llama-bench -p 0 -n 128 -d 512     (tg128 after a 512-token prompt)
#   ours    one greedy request, a 512-token prompt (chat template included),
#           max_tokens 128 with ignore_eos; prompt tokens/s from the call to
#           the first streamed chunk (render, tokenize, slot, context creation
#           and decode all count against us), generated tokens/s from there
#           to the finish chunk (128 sampled, 127 decoded).
#   Each side runs $REPS repetitions (after a warm-up) in each of $ROUNDS
#   alternating rounds, so background load hits both sides alike. The table
#   compares the best sample of each side (the least disturbed run: on a
#   shared machine the mean mostly measures the neighbours) and shows the
#   medians too. Goal: ours/theirs at least 0.97.
# Memory: a process per count opens N names on the same file, loads each and
#   chats once on each; RSS (VmRSS) and peak (VmHWM) afterwards. Goal: RSS
#   with 4 names at most 1.1x that with 1. Time to first token: the first
#   request of a fresh process (open + load + first token, with the file in
#   the page cache and its hash cached) and the median over later requests.
#
# Usage: bench/local-llm.sh            (about 4 minutes on 2 idle cores)
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

# llama-bench, built once and cached.
version=0.3.36
bench_dir=$target/llama-bench
llama_bench=$bench_dir/build/bin/llama-bench
if [ ! -x "$llama_bench" ]; then
    src=$bench_dir/llama_cpp_python-$version/vendor/llama.cpp
    if [ ! -f "$src/CMakeLists.txt" ]; then
        log "downloading the llama-cpp-python $version sdist (llama.cpp sources, 77 MB)"
        mkdir -p "$bench_dir/dl"
        python3 -m pip download --no-deps --no-binary :all: --disable-pip-version-check \
            -d "$bench_dir/dl" "llama-cpp-python==$version" >&2 \
            || die "pip download llama-cpp-python==$version failed (PIP_INDEX_URL for a mirror)"
        tar -xzf "$bench_dir/dl/llama_cpp_python-$version.tar.gz" -C "$bench_dir"
    fi
    log "building llama-bench (a few minutes, once)"
    cmake -S "$src" -B "$bench_dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
        -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$bench_dir/cmake.log" 2>&1 \
        || { cat "$bench_dir/cmake.log" >&2; die "cmake configure failed"; }
    cmake --build "$bench_dir/build" --target llama-bench -j "$(nproc)" >"$bench_dir/build.log" 2>&1 \
        || { tail -n 30 "$bench_dir/build.log" >&2; die "building llama-bench failed"; }
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
        log "flash attention $onoff, round $round/$rounds: llama-bench"
        "$llama_bench" -m "$model" -t "$threads" -fa "$fa" -r "$reps" -p 512 -n 0 -o json \
            >"$out/theirs-pp-$fa-$round.json" 2>/dev/null
        "$llama_bench" -m "$model" -t "$threads" -fa "$fa" -r "$reps" -p 0 -n 128 -d 512 -o json \
            >"$out/theirs-tg-$fa-$round.json" 2>/dev/null
        log "flash attention $onoff, round $round/$rounds: local provider"
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

def samples(pattern, key):
    values = []
    for path in glob.glob(f"{out}/{pattern}"):
        data = load_json(path)
        values += data[0]["samples_ts"] if key is None else data[key]
    return values

print(f"\nLocal provider vs llama-bench: {os.path.basename(model)}, {threads} threads, "
      f"{reps} reps x {rounds} alternating rounds, tokens/s (load average at start: {load})\n")
print(f"{'flash attn':<11} {'test':<14} {'theirs best':>12} {'ours best':>10} {'ratio':>7}"
      f" {'theirs median':>14} {'ours median':>12} {'ratio':>7}  goal: best ratio >= 0.97")
worst = None
for fa in sorted({p.rsplit('-', 2)[1] for p in glob.glob(f"{out}/ours-*.json")}, reverse=True):
    rows = [
        ("pp512", samples(f"theirs-pp-{fa}-*.json", None), samples(f"ours-{fa}-*.json", "pp_samples")),
        ("tg128 @ d512", samples(f"theirs-tg-{fa}-*.json", None), samples(f"ours-{fa}-*.json", "tg_samples")),
    ]
    for test, theirs, mine in rows:
        best = max(mine) / max(theirs)
        median = statistics.median(mine) / statistics.median(theirs)
        worst = best if worst is None else min(worst, best)
        verdict = "met" if best >= 0.97 else "NOT met"
        label = "on" if fa == "1" else "off"
        print(f"{label:<11} {test:<14} {max(theirs):>12.1f} {max(mine):>10.1f} {best:>7.3f}"
              f" {statistics.median(theirs):>14.1f} {statistics.median(mine):>12.1f} {median:>7.3f}  {verdict}")

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
