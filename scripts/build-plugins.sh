#!/usr/bin/env bash
# Builds the example plugins under plugins/ the way their authors would and
# stages each as a ready-to-load plugin directory (plugin.toml next to the
# artefact, with the artefact's sha256 pinned, signed) under OUT (default
# target/plugins), which the repository's aiplug.toml points the host at.
#
#   code-review       Rust, through aiplug-sdk (cargo, release): `aiplug review`
#   prompt-decorator  Rust, through aiplug-sdk (cargo, release)
#   prompt-guard      Rust, through aiplug-sdk, as a sandboxed wasm component
#                     (cargo --target wasm32-wasip2, release)
#   secret-redactor   C, against include/aiplug.h (cc)
#   go-format         Go, -buildmode=c-shared (Go from scripts/install-go.sh)
#
# Usage: scripts/build-plugins.sh [OUT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/plugins}
cd "$root"
log() { printf 'build-plugins: %s\n' "$*" >&2; }

# stage ID ARTEFACT: copies plugins/ID/plugin.toml and ARTEFACT into OUT/ID
# and pins the artefact's sha256 in the staged manifest.
stage() {
    local id=$1 artefact=$2 dir=$out/$1 entry sha
    entry=$(sed -n 's/^entry = "\(.*\)"$/\1/p' "plugins/$id/plugin.toml")
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$artefact" "$dir/$entry"
    sha=$(sha256sum "$dir/$entry" | cut -d' ' -f1)
    # The pin goes right after `entry`, before any [table].
    sed "s/^entry = .*/&\nsha256 = \"$sha\"/" "plugins/$id/plugin.toml" > "$dir/plugin.toml"
    log "staged $id ($entry, sha256 $sha)"
}

log "building code-review and prompt-decorator (Rust)"
cargo build --quiet --release -p code-review -p prompt-decorator
stage code-review target/release/libcode_review.so
stage prompt-decorator target/release/libprompt_decorator.so

log "building prompt-guard (Rust, wasm32-wasip2 component)"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --quiet --release --target wasm32-wasip2 -p prompt-guard
stage prompt-guard target/wasm32-wasip2/release/prompt_guard.wasm

log "building secret-redactor (C)"
mkdir -p target/c-plugins
${CC:-cc} -std=c11 -shared -fPIC -O2 -Wall -Wextra -Werror -I include \
    -o target/c-plugins/libsecret_redactor.so plugins/secret-redactor/secret_redactor.c
stage secret-redactor target/c-plugins/libsecret_redactor.so

log "building go-format (Go)"
gobin=$(scripts/install-go.sh | tail -n 1)
mkdir -p target/go-plugins
(
    cd plugins/go-format
    GOROOT=$(dirname "$gobin") GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=1 \
        "$gobin/go" build -buildmode=c-shared -o "$root/target/go-plugins/libgo_format.so" .
)
stage go-format target/go-plugins/libgo_format.so

# Hosts load signed plugins only (outside --allow-unsigned): sign each
# staged plugin with this checkout's key (made once, kept under
# target/signing, or AIPLUG_SIGNING_KEY) and trust that key in this user's
# trust store ($AIPLUG_HOME/trusted-keys).
log "signing the plugins"
cargo build --quiet --release -p aiplug
aiplug=target/release/aiplug
key=${AIPLUG_SIGNING_KEY:-$root/target/signing/local.key}
if [ ! -f "$key" ]; then
    "$aiplug" keys generate "$(basename "$key" .key)" --dir "$(dirname "$key")" >/dev/null
    log "made the signing key $key"
fi
"$aiplug" keys trust "${key%.key}.pub" >&2
for id in code-review prompt-decorator prompt-guard secret-redactor go-format; do
    "$aiplug" plugins sign "$out/$id" --key "$key" >/dev/null
done

log "done: plugins are in $out, signed with $key"
