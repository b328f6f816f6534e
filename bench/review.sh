#!/usr/bin/env bash
# Review throughput: `aiplug review`'s work (the code-review plugin through
# the host) on the example Go files with a real model, in lines of code per
# second, and the share of the wall time spent outside the model (goal of
# the review issue: under 2%).
#
# What runs (crates/aiplug-host/examples/review_bench.rs, release): the host
# built as `aiplug review` builds it, the code-review plugin staged by
# scripts/build-plugins.sh, the model wrapped in a timer. Each repetition
# reviews every file once; per file it prints the wall time of the invoke,
# the time inside the model, tokens in and out and the findings. The
# summary is the median over repetitions. A warm-up call loads the model
# first (loading weights is not review work). Then one sample of the text
# output of `aiplug review` on the first file.
#
# Usage: bench/review.sh [FILE...]   (default: examples/buggy.go examples/messy.go)
# Environment: REPS (default 3), MODEL (a model name; default: the CLI's
#   default, the local SmolLM2 without DEEPSEEK_API_KEY). About 3 minutes
#   on 2 idle cores with the local default model; run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(examples/buggy.go examples/messy.go)
reps=${REPS:-3}
model_args=()
[ -z "${MODEL:-}" ] || model_args=(--model "$MODEL")

scripts/fetch-default-model.sh
scripts/build-plugins.sh >/dev/null
cargo build --release --quiet -p aiplug-host --features local-llm,wasm --example review_bench
cargo build --release --quiet -p aiplug

results=$(mktemp)
trap 'rm -f "$results"' EXIT
target/release/examples/review_bench --plugins target/plugins --reps "$reps" \
    "${model_args[@]}" "${files[@]}" | tee "$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summary = next(r for r in rows if r.get("summary"))
per = [r for r in rows if not r.get("summary")]
print()
print(f"model {summary['model']}, {summary['files']} files, {summary['lines']} lines, "
      f"{summary['reps']} repetitions")
print(f"{'file':<22}{'lines':>6}{'wall s':>9}{'model s':>9}{'outside ms':>12}"
      f"{'calls':>6}{'tok in':>8}{'tok out':>8}{'findings':>9}")
for r in per:
    print(f"{r['file']:<22}{r['lines']:>6}{r['wall_s']:>9.2f}{r['model_s']:>9.2f}"
          f"{r['outside_ms']:>12.2f}{r['model_calls']:>6}{r['tokens_in']:>8}"
          f"{r['tokens_out']:>8}{r['findings']:>9}")
share = summary["median_outside_share"] * 100
print(f"median: {summary['lines_per_s']:.1f} lines/s, wall {summary['median_wall_s']:.2f} s, "
      f"model {summary['median_model_s']:.2f} s, outside the model {share:.3f}% "
      f"(goal < 2%: {'met' if share < 2 else 'NOT met'})")
PY

echo
echo "sample: aiplug review ${files[0]}"
target/release/aiplug review "${model_args[@]}" "${files[0]}" || true
