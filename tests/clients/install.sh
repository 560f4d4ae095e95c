#!/usr/bin/env bash
# Build the official-clients venv for the client tests: target-stitch 4.0.3 + stitchclient 1.0.1.
#
# Usage: install.sh VENV_DIR        (env: PYTHON=python3, TS_INSTALL_MODE=auto|pinned|wheels)
#
# Both clients go into VENV_DIR, never into the server's venv: target-stitch pins old
# jsonschema/aiohttp/psutil, and stitchclient ships top-level `transit` and `tests` packages that
# overwrite transit-python2 (the server's Transit decoder) and downgrade python-dateutil to 2.x.
# The two clients' requirements are compatible with each other (see NOTES.md).
#
# Idempotent: a complete venv carries $MARKER and is left alone (exit 0 at once). A half-built
# venv (pyvenv.cfg, no marker) is rebuilt with `venv --clear`; any other non-empty VENV_DIR is an
# error. Concurrent runs serialise on VENV_DIR.lock when flock(1) exists.
#
# Install modes:
#   pinned  target-stitch's own pins, exactly as `pip install target-stitch==4.0.3` resolves them.
#           psutil==5.6.6 and simplejson==3.13.2 are sdists: psutil needs a C compiler and Python
#           headers (simplejson falls back to pure Python without them).
#   wheels  same set, but psutil from a binary wheel (5.9.8, abi3) instead of 5.6.6 -- the only
#           override needed when nothing can be compiled. pip cannot override an `==` pin with a
#           constraints file, so target-stitch goes in with --no-deps next to an explicit list.
#   auto    (default) pinned, then wheels if that fails.
# Only python3 and a package index are needed; nothing is read from /opt.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi
VENV_DIR=$1
PYTHON=${PYTHON:-python3}
MODE=${TS_INSTALL_MODE:-auto}
TS_REQ="target-stitch==4.0.3"
SC_REQ="stitchclient==1.0.1"
STAMP="$TS_REQ $SC_REQ layout=1"
MARKER="$VENV_DIR/.importapi-lite-clients"

# target-stitch 4.0.3's install_requires with psutil swapped for a wheel-only release.
WHEELS_DEPS=(
    "jsonschema==2.6.0" "mock==2.0.0" "requests==2.32.4" "singer-python==6.0.1"
    "psutil==5.9.8" "simplejson==3.13.2" "aiohttp==3.13.3" "ciso8601"
)

complete() {
    [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$STAMP" ] && [ -x "$VENV_DIR/bin/target-stitch" ]
}

if complete; then
    echo "install.sh: $VENV_DIR already complete ($STAMP)"
    exit 0
fi

mkdir -p "$(dirname "$VENV_DIR")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV_DIR.lock"
    flock 9
    if complete; then  # another run finished while we waited
        echo "install.sh: $VENV_DIR already complete ($STAMP)"
        exit 0
    fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "install.sh: $PYTHON is older than 3.9 (aiohttp 3.13.3 needs >= 3.9)" >&2
    exit 1
}

if [ -e "$VENV_DIR" ] && [ -n "$(ls -A "$VENV_DIR")" ]; then
    if [ -f "$VENV_DIR/pyvenv.cfg" ]; then
        echo "install.sh: rebuilding incomplete venv $VENV_DIR"
        "$PYTHON" -m venv --clear "$VENV_DIR"
    else
        echo "install.sh: $VENV_DIR is neither empty nor a venv; refusing to touch it" >&2
        exit 1
    fi
else
    "$PYTHON" -m venv "$VENV_DIR"
fi

PIP=("$VENV_DIR/bin/python" -m pip --disable-pip-version-check --no-input)

install_pinned() {
    "${PIP[@]}" install --progress-bar off "$TS_REQ" "$SC_REQ"
}

install_wheels() {
    "${PIP[@]}" install --progress-bar off --only-binary psutil "${WHEELS_DEPS[@]}" "$SC_REQ"
    # pip reports the psutil mismatch against target-stitch's pin here; that warning is expected.
    "${PIP[@]}" install --progress-bar off --no-deps "$TS_REQ"
}

case "$MODE" in
    pinned) install_pinned ;;
    wheels) install_wheels ;;
    auto)
        if ! install_pinned; then
            echo "install.sh: pinned install failed (no C compiler for psutil 5.6.6?);" \
                "retrying with a psutil wheel" >&2
            install_wheels
        fi
        ;;
    *)
        echo "install.sh: TS_INSTALL_MODE must be auto, pinned or wheels, not '$MODE'" >&2
        exit 2
        ;;
esac

# Smoke test: the console script starts (argparse --help exits before reading stdin or config),
# and stitchclient imports once the collections.abc aliases are in place.
"$VENV_DIR/bin/target-stitch" --help >/dev/null
"$VENV_DIR/bin/python" - <<'PY'
import collections, collections.abc
for name in collections.abc.__all__:
    if not hasattr(collections, name):
        setattr(collections, name, getattr(collections.abc, name))
import stitchclient.client  # noqa: F401
PY

echo "$STAMP" >"$MARKER"
VERSIONS=$("${PIP[@]}" list 2>/dev/null | grep -Ei '^(target-stitch|stitchclient|psutil) ' | tr -s ' ' | tr '\n' ';')
echo "install.sh: $VENV_DIR ready ($VERSIONS)"
