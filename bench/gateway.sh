#!/usr/bin/env bash
# Gateway benchmark: what a gateway in front of an OpenAI-compatible backend
# costs per request, for aiplug and for the usual alternatives, side by side.
#
# Every target forwards `POST /v1/chat/completions` to the same local mock
# backend (bench/mock-backend: a fixed small answer, optional fixed delay,
# SSE streaming too):
#   direct       wrk straight to the backend: the baseline
#   nginx        Debian's nginx as a plain reverse proxy (one worker, upstream
#                keep-alive, access log off): the floor for a proxy
#   aiplug       `aiplug serve` with 3 filter plugins: secret-redactor (C,
#                on_request: scans the request for credentials),
#                prompt-decorator (Rust, on_request: parses the request, adds
#                a system prompt and a suffix, re-serialises it) and
#                test-behaviour (Rust, on_request: scans for a banned phrase;
#                on_response: parses the answer and appends a suffix)
#   litellm-1/2  LiteLLM's proxy (PyPI `litellm[proxy]`, in a venv under
#                target/bench-gateway, no database), one and two workers; it
#                refuses to start without a master key, so it gets a random
#                one and its requests carry it
# For each target and each concurrency (1, 8, 64) wrk runs a warm-up, then a
# measured run, posting a small chat completion (and, in a second section,
# the same with "stream": true).
#
# Columns:
#   req/s        completed requests per second (all on one 2-core machine:
#                wrk, the backend and the gateway compete for the cores, so
#                peak req/s says little about a gateway on its own machine)
#   p50, p99     latency percentiles seen by wrk, in ms
#   +p50         p50 minus the direct p50 at the same concurrency: the latency
#                the gateway adds (at concurrency 1 the honest figure; at 8 and
#                64 it includes queueing behind the other requests)
#   CPU µs/req   user+system CPU of the gateway's processes (the whole process
#                tree: nginx's master and worker, LiteLLM's workers) during the
#                measured run, from /proc/PID/stat, divided by the requests:
#                the figure that predicts how many cores a gateway needs
#   RSS MiB      VmRSS of the gateway's processes after the run, summed
#   backend µs   the mock backend's CPU per request, for scale
#   err          wrk's errors (connect/read/write/timeout and non-2xx)
# Goals (server issue): aiplug within 2x of nginx's CPU per request, at most
# 0.2 ms added p50 at concurrency 1, at most 50 MiB RSS.
#
# Usage: bench/gateway.sh
# Environment:
#   DURATION      measured seconds per run (default 10)
#   WARMUP        warm-up seconds before each run (default 2)
#   CONCURRENCY   connection counts (default "1 8 64")
#   TARGETS       default "direct nginx aiplug litellm-1 litellm-2"
#   STREAM_TARGETS  streaming section (default "direct nginx aiplug litellm-1";
#                 empty to skip it)
#   DELAY_MS      the backend's fixed delay per completion (default 0)
#   AIPLUG_LOG    RUST_LOG for aiplug (default warn: no per-request log line,
#                 as nginx runs with access_log off)
#   WRK_THREADS   wrk threads (default 1: wrk takes the least CPU from the
#                 others; one thread drives 64 connections easily)
# Installs what is missing: nginx and wrk (apt-get), LiteLLM (pip, into
# target/bench-gateway/venv, once; about 750 MB). Builds mock-backend and
# aiplug in release and the plugins. About 7 minutes of runs after that with
# the defaults; run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$root/target/bench-gateway
duration=${DURATION:-10}
warmup=${WARMUP:-2}
concurrency=${CONCURRENCY:-1 8 64}
targets=${TARGETS:-direct nginx aiplug litellm-1 litellm-2}
stream_targets=${STREAM_TARGETS-direct nginx aiplug litellm-1}
delay_ms=${DELAY_MS:-0}
wrk_threads=${WRK_THREADS:-1}
aiplug_log=${AIPLUG_LOG:-warn}
clk_tck=$(getconf CLK_TCK)

log() { printf 'bench/gateway: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes: every one is started in its own process group and ended by
# that group's id on exit.
started=()
stop_group() {
    local pgid=$1 i
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
    local pgid
    for pgid in "${started[@]}"; do stop_group "$pgid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LOG CMD...: starts CMD in a new process group (its pid is the group
# id), stdout and stderr to LOG; sets $last_pid.
start() {
    local out=$1
    shift
    setsid "$@" >"$out" 2>&1 &
    last_pid=$!
    started+=("$last_pid")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_log PID LOG PATTERN SECONDS: prints the first match of the
# extended regex PATTERN in LOG; fails when PID exits or time runs out.
wait_for_log() {
    local pid=$1 file=$2 pattern=$3 deadline=$((SECONDS + $4)) match
    while [ "$SECONDS" -lt "$deadline" ]; do
        match=$(grep -aoE "$pattern" "$file" | head -n 1 || true)
        [ -z "$match" ] || { echo "$match"; return 0; }
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# check_completion URL: one completion through URL must answer 200 with the
# backend's text in it.
check_completion() {
    local body
    body=$(curl -sS -m 30 -w '\n%{http_code}' -H 'Content-Type: application/json' "${auth_args[@]}" \
        -d "$request_body" "$1/v1/chat/completions" 2>&1) || { echo "$body"; return 1; }
    if [ "${body##*$'\n'}" != 200 ] || ! grep -q "mock backend" <<<"$body"; then
        echo "$body" | head -c 600
        return 1
    fi
}

# --- measuring: the process tree under a pid, its CPU ticks and RSS.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            }
            for (p in keep) print p
        }'
}
cpu_ticks() {
    local total=0 pid line fields
    for pid in $(tree_pids "$1"); do
        line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Fields after "(comm) ": state is 1, utime 12, stime 13.
        read -r -a fields <<<"${line##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
rss_kib() {
    local total=0 pid kib n=0
    for pid in $(tree_pids "$1"); do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$kib" ] || continue
        total=$((total + kib))
        n=$((n + 1))
    done
    echo "$total $n"
}

results=$work/results.tsv

# measure NAME MODE URL GATEWAY_PID: warm-up and measured wrk run for each
# concurrency; appends to $results. GATEWAY_PID is empty for direct.
measure() {
    local name=$1 mode=$2 url=$3 gw=$4 c threads script out g0 g1 b0 b1 rss
    script=$work/$mode${gw_auth:+-auth}.lua
    for c in $concurrency; do
        threads=$((wrk_threads < c ? wrk_threads : c))
        wrk -t "$threads" -c "$c" -d "${warmup}s" --timeout 30s -s "$script" "$url/v1/chat/completions" >/dev/null 2>&1 || true
        g0=0; g1=0
        [ -z "$gw" ] || g0=$(cpu_ticks "$gw")
        b0=$(cpu_ticks "$backend_pid")
        out=$(wrk -t "$threads" -c "$c" -d "${duration}s" --timeout 30s -s "$script" "$url/v1/chat/completions" 2>&1) || true
        b1=$(cpu_ticks "$backend_pid")
        rss="- -"
        if [ -n "$gw" ]; then
            g1=$(cpu_ticks "$gw")
            rss=$(rss_kib "$gw")
        fi
        if ! grep -q '^RESULT ' <<<"$out"; then
            unavailable "$name" "$mode" "wrk failed at concurrency $c: $out"
            continue
        fi
        out=$(grep '^RESULT ' <<<"$out")
        # RESULT requests duration_us p50_us p99_us errors
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" "$c" "${out#RESULT }" \
            "$([ -n "$gw" ] && echo $((g1 - g0)) || echo -)" "$((b1 - b0))" "$rss" \
            | tr ' ' '\t' >>"$results"
        log "$name $mode c=$c: $(awk '{ printf "%.0f req/s, p50 %.2f ms", $1 / ($2 / 1e6), $3 / 1000 }' <<<"${out#RESULT }")"
    done
}
unavailable() {
    printf '%s\t%s\tunavailable\t%s\n' "$1" "$2" "$(tr '\n\t' '  ' <<<"$3" | cut -c1-200)" >>"$results"
    log "$1 $2: unavailable: $3"
}

# --- gateways: start_TARGET sets gw_url and gw_pid or returns 1 with the
# reason in $why.
start_nginx() {
    local port dir=$work/nginx
    port=$(free_port)
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream backend {
        server $backend_addr;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    start "$dir/out.log" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
    gw_pid=$last_pid
    gw_url=http://127.0.0.1:$port
    local i
    for i in $(seq 50); do
        curl -s -o /dev/null "$gw_url/v1/models" && return 0
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.1
    done
    why="nginx did not start: $(tail -n 3 "$dir/logs/error.log" "$dir/out.log" 2>/dev/null)"
    return 1
}

start_aiplug() {
    local addr
    start "$work/aiplug.log" env RUST_LOG="$aiplug_log" target/release/aiplug serve --listen 127.0.0.1:0 --config "$work/aiplug.toml"
    gw_pid=$last_pid
    addr=$(wait_for_log "$gw_pid" "$work/aiplug.log" 'listening on http://[0-9.:]+' 30) || {
        why="aiplug serve did not start: $(tail -n 5 "$work/aiplug.log")"
        return 1
    }
    gw_url=${addr#listening on }
}

start_litellm() {
    local workers=$1 port deadline
    [ -x "$work/venv/bin/litellm" ] || { why=$litellm_missing; return 1; }
    port=$(free_port)
    cat >"$work/litellm.yaml" <<EOF
model_list:
  - model_name: mock
    litellm_params:
      model: openai/mock
      api_base: http://$backend_addr/v1
      api_key: dummy
EOF
    # The model cost map ships in the package; fetching it needs a network.
    gw_auth=1
    start "$work/litellm-$workers.log" env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY="$litellm_key" \
        "$work/venv/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 \
        --port "$port" --num_workers "$workers"
    gw_pid=$last_pid
    gw_url=http://127.0.0.1:$port
    deadline=$((SECONDS + 180))
    while [ "$SECONDS" -lt "$deadline" ]; do
        curl -sf -o /dev/null "$gw_url/health/liveliness" && return 0
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.5
    done
    why="litellm did not start: $(tail -n 5 "$work/litellm-$workers.log")"
    return 1
}

# run_target NAME MODE: starts the gateway (none for direct), checks one
# request, measures, stops it.
run_target() {
    local name=$1 mode=$2 reason ok=1
    gw_pid=
    gw_url=http://$backend_addr
    gw_auth=
    why=
    case $name in
        direct) ;;
        nginx) start_nginx || ok= ;;
        aiplug) start_aiplug || ok= ;;
        litellm-1) start_litellm 1 || ok= ;;
        litellm-2) start_litellm 2 || ok= ;;
        *) die "unknown target $name (known: direct nginx aiplug litellm-1 litellm-2)" ;;
    esac
    auth_args=()
    [ -z "$gw_auth" ] || auth_args=(-H "Authorization: Bearer $litellm_key")
    if [ -z "$ok" ]; then
        unavailable "$name" "$mode" "$why"
    else
        if [ "$mode" = stream ]; then
            reason=$(curl -sS -m 30 -H 'Content-Type: application/json' "${auth_args[@]}" -d "$stream_body" \
                "$gw_url/v1/chat/completions" 2>&1) && grep -q '\[DONE\]' <<<"$reason" && reason=
        else
            reason=$(check_completion "$gw_url") && reason=
        fi
        if [ -n "$reason" ]; then
            unavailable "$name" "$mode" "first request failed: $reason"
        else
            log "measuring $name ($mode)"
            measure "$name" "$mode" "$gw_url" "$gw_pid"
        fi
    fi
    [ -z "$gw_pid" ] || stop_group "$gw_pid"
}

# --- setup
mkdir -p "$work"
command -v curl >/dev/null || die "curl is needed"
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    log "installing nginx and wrk (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk; } >&2 ||
        die "could not install nginx and wrk"
fi
litellm_missing=
if [[ " $targets $stream_targets " == *" litellm-"* ]] && [ ! -x "$work/venv/bin/litellm" ]; then
    log "installing litellm[proxy] into $work/venv (once; several minutes)"
    rm -rf "$work/venv"
    if ! { python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q 'litellm[proxy]'; } >"$work/pip.log" 2>&1; then
        litellm_missing="pip install litellm[proxy] failed: $(tail -n 2 "$work/pip.log")"
        rm -rf "$work/venv"
    fi
fi
[ -n "$litellm_missing" ] || [ ! -x "$work/venv/bin/litellm" ] ||
    log "litellm $("$work/venv/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p')"

with_aiplug=
[[ " $targets $stream_targets " != *" aiplug "* ]] || with_aiplug=1
if [ -n "$with_aiplug" ]; then
    log "building mock-backend and aiplug (release) and the plugins"
    cargo build --release --quiet -p mock-backend -p aiplug -p test-behaviour
    scripts/build-plugins.sh "$work/staged" 2>"$work/build-plugins.log" ||
        die "scripts/build-plugins.sh failed: $(tail -n 5 "$work/build-plugins.log")"
else
    log "building mock-backend (release)"
    cargo build --release --quiet -p mock-backend
fi

# The aiplug row's plugins: two staged example filters and test-behaviour,
# pinned the same way.
plugins=$work/plugins
stage_bench_plugins() {
    rm -rf "$plugins" && mkdir -p "$plugins"
    cp -r "$work/staged/secret-redactor" "$work/staged/prompt-decorator" "$plugins/"
    mkdir -p "$plugins/test-behaviour"
    cp target/release/libtest_behaviour.so "$plugins/test-behaviour/"
    cat >"$plugins/test-behaviour/plugin.toml" <<EOF
id = "test-behaviour"
version = "0.1.0"
kind = "native"
entry = "libtest_behaviour.so"
sha256 = "$(sha256sum "$plugins/test-behaviour/libtest_behaviour.so" | cut -d' ' -f1)"
priority = 100
hooks = ["on_request", "on_response"]

[capabilities]
models = ["*"]

[config]
mode = "normal"
reject_word = "IGNORE ALL PREVIOUS INSTRUCTIONS"
response_suffix = " [checked]"
EOF
}
[ -z "$with_aiplug" ] || stage_bench_plugins

request_body='{"model":"mock","messages":[{"role":"user","content":"Summarise the release notes of version 1.4 in two sentences, and list the breaking changes if there are any."}],"max_tokens":64}'
stream_body=${request_body%\}}',"stream":true}'
# LiteLLM refuses to start without a master key, so its requests carry one;
# the others get none.
litellm_key=sk-bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
for mode in chat stream; do
    body=$request_body
    [ "$mode" = chat ] || body=$stream_body
    for auth in "" "-auth"; do
        {
            echo 'wrk.method = "POST"'
            echo 'wrk.headers["Content-Type"] = "application/json"'
            [ -z "$auth" ] || echo "wrk.headers[\"Authorization\"] = \"Bearer $litellm_key\""
            echo "wrk.body = '$body'"
            cat <<'EOF'
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %.0f %.0f %d\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
        } >"$work/$mode$auth.lua"
    done
done

start "$work/backend.log" target/release/mock-backend --listen 127.0.0.1:0 --delay-ms "$delay_ms"
backend_pid=$last_pid
backend_addr=$(wait_for_log "$backend_pid" "$work/backend.log" 'listening on [0-9.:]+' 10) ||
    die "mock-backend did not start: $(cat "$work/backend.log")"
backend_addr=${backend_addr#listening on }

cat >"$work/aiplug.toml" <<EOF
default_model = "mock"

[models.mock]
provider = "openai"
base_url = "http://$backend_addr/v1"

[plugins]
dirs = ["$plugins"]
EOF

: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "backend on $backend_addr (delay ${delay_ms} ms); ${warmup} s warm-up + ${duration} s per run"
for name in $targets; do run_target "$name" chat; done
for name in $stream_targets; do run_target "$name" stream; done

# --- the table
echo
echo "gateway benchmark: ${duration} s per run after ${warmup} s warm-up, backend delay ${delay_ms} ms," \
    "$(nproc) cores, wrk ${wrk_threads} thread(s), load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
awk -F'\t' -v tck="$clk_tck" '
    function ms(us) { return sprintf("%.2f", us / 1000) }
    $3 == "unavailable" { order[++n] = $0; next }
    {
        order[++n] = $0
        if ($1 == "direct") direct[$2, $3] = $6
    }
    END {
        fmt = "%-10s %-6s %4s %8s %8s %8s %8s %10s %8s %8s %4s\n"
        printf fmt, "target", "mode", "conc", "req/s", "p50 ms", "p99 ms", "+p50 ms", "CPU µs/req", "RSS MiB", "backend", "err"
        for (i = 1; i <= n; i++) {
            split(order[i], f, "\t")
            if (f[3] == "unavailable") { printf "%-10s %-6s unavailable: %s\n", f[1], f[2], f[4]; continue }
            req = f[4]; secs = f[5] / 1e6
            added = ((f[2], f[3]) in direct) ? sprintf("%+.2f", (f[6] - direct[f[2], f[3]]) / 1000) : "-"
            cpu = (f[9] == "-" || req == 0) ? "-" : sprintf("%.0f", f[9] * 1e6 / tck / req)
            rss = (f[11] == "-") ? "-" : sprintf("%.1f", f[11] / 1024) (f[12] > 1 ? "/" f[12] "p" : "")
            backend = req == 0 ? "-" : sprintf("%.0f", f[10] * 1e6 / tck / req)
            printf fmt, f[1], f[2], f[3], sprintf("%.0f", req / secs), ms(f[6]), ms(f[7]), added, cpu, rss, backend, f[8]
        }
    }' "$results"
echo "(CPU µs/req and RSS: the gateway's processes; /Np: summed over N processes;" \
    "backend: the mock backend's CPU µs/req; raw rows in ${results#"$root"/})"
