#!/usr/bin/env bash
# Build the official clients' venvs for the client tests, each on its own and all at once.
#
# Usage: install.sh PREFIX [NAME...]     (env: PYTHON=python3, TS_INSTALL_MODE=auto|pinned|wheels)
#
#   target-stitch-4.0.3               venv PREFIX: target-stitch 4.0.3 and stitchclient 1.0.1
#   target-stitch-1.9.1               venv PREFIX-target-stitch-1.9.1
#   target-stitch-3.2.2               venv PREFIX-target-stitch-3.2.2, with py311_shims.py
#   python-stitch-client-0.8.0.post1  venv PREFIX-python-stitch-client-0.8.0.post1, with
#                                     transit-python2 (the client imports it, does not declare it)
#   tap-csv-folder-0.0.1a1            venv PREFIX-tap-csv-folder-0.0.1a1 (a singer-sdk 0.41 tap)
#
# No NAME builds them all. They are built in parallel (background jobs, one pip each); each job
# writes to VENV.log, which is printed if it fails. Exit 0 when every venv asked for is complete.
#
# Never the server's venv, and never two clients in one venv unless their pins agree: every
# target-stitch pins old jsonschema/requests/psutil, stitchclient 1.0.1 ships top-level `transit`
# and `tests` packages that overwrite transit-python2 (the server's Transit decoder), and
# python-stitch-client 0.8 pins old requests and python-dateutil. The first venv keeps two clients
# for history: their requirements agree (see NOTES.md).
#
# Idempotent: a complete venv carries $MARKER with its version stamp and is left alone (a run with
# every venv complete takes well under a second). A half-built venv (pyvenv.cfg, no marker) is
# rebuilt with `venv --clear`; any other non-empty directory is an error. Concurrent runs
# serialise on VENV.lock, one lock per venv, when flock(1) exists.
#
# Install modes, for the target-stitch venvs (the others install from wheels or pure-Python
# sdists only):
#   pinned  target-stitch's own pins, exactly as `pip install target-stitch==X` resolves them.
#           psutil (5.3.1 for 1.9.1, 5.6.6 for 3.2.2 and 4.0.3) is an sdist and needs a C compiler
#           and Python headers; simplejson, aiohttp 3.7.4 and msgpack-python fall back to pure
#           Python without them.
#   wheels  the same set, but psutil from a binary wheel (5.9.8, abi3) -- the only override needed
#           when nothing can be compiled. pip cannot override an `==` pin with a constraints file,
#           so target-stitch goes in with --no-deps next to an explicit list of its pins.
#   auto    (default) pinned, then wheels if that fails.
# Only python3 and a package index are needed; nothing is read from /opt.
set -euo pipefail

if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "usage: $0 PREFIX [NAME...]" >&2
    exit 2
fi
PREFIX=$1
shift
PYTHON=${PYTHON:-python3}
MODE=${TS_INSTALL_MODE:-auto}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARKER=.importapi-lite-clients
# A venv holding a copy of the shims is stale once they change.
SHIMS_HASH=$(sha256sum "$HERE/py311_shims.py" | cut -c1-12)
ALL=(target-stitch-4.0.3 target-stitch-1.9.1 target-stitch-3.2.2 python-stitch-client-0.8.0.post1
    tap-csv-folder-0.0.1a1)
if [ $# -eq 0 ]; then
    set -- "${ALL[@]}"
fi

case "$MODE" in
    auto | pinned | wheels) ;;
    *)
        echo "install.sh: TS_INSTALL_MODE must be auto, pinned or wheels, not '$MODE'" >&2
        exit 2
        ;;
esac

venv_dir() {
    if [ "$1" = target-stitch-4.0.3 ]; then echo "$PREFIX"; else echo "$PREFIX-$1"; fi
}

# What a complete venv's marker says: its requirements, and the layout of this script.
stamp() {
    case "$1" in
        target-stitch-4.0.3) echo "target-stitch==4.0.3 stitchclient==1.0.1 layout=1" ;;
        target-stitch-1.9.1) echo "target-stitch==1.9.1 layout=1" ;;
        target-stitch-3.2.2) echo "target-stitch==3.2.2 py311_shims=$SHIMS_HASH layout=1" ;;
        python-stitch-client-0.8.0.post1)
            echo "python-stitch-client==0.8.0.post1 transit-python2==0.8.321 layout=1"
            ;;
        tap-csv-folder-0.0.1a1) echo "tap-csv-folder==0.0.1a1 layout=1" ;;
        *) return 1 ;;
    esac
}

# The console script or module that shows the client is there.
entry_point() {
    case "$1" in
        target-stitch-*) echo bin/target-stitch ;;
        tap-csv-folder-*) echo bin/tap-csv-folder ;;
        *) echo bin/python ;;
    esac
}

complete() {  # NAME
    local dir
    dir=$(venv_dir "$1")
    [ -f "$dir/$MARKER" ] && [ "$(cat "$dir/$MARKER")" = "$(stamp "$1")" ] \
        && [ -x "$dir/$(entry_point "$1")" ]
}

for name in "$@"; do
    stamp "$name" >/dev/null || {
        echo "install.sh: unknown client '$name' (one of: ${ALL[*]})" >&2
        exit 2
    }
done

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "install.sh: $PYTHON is older than 3.9 (aiohttp 3.13.3 needs >= 3.9)" >&2
    exit 1
}

# target-stitch's install_requires with psutil swapped for a wheel-only release (wheels mode).
wheels_deps() {
    case "$1" in
        target-stitch-4.0.3)
            echo "jsonschema==2.6.0 mock==2.0.0 requests==2.32.4 singer-python==6.0.1" \
                "psutil==5.9.8 simplejson==3.13.2 aiohttp==3.13.3 ciso8601"
            ;;
        target-stitch-1.9.1)
            echo "jsonschema==2.6.0 mock==2.0.0 requests==2.20.0 singer-python==5.8.0" \
                "psutil==5.9.8 simplejson==3.11.1"
            ;;
        target-stitch-3.2.2)
            echo "jsonschema==2.6.0 mock==2.0.0 requests==2.20.0 singer-python==5.8.0" \
                "psutil==5.9.8 simplejson==3.11.1 aiohttp==3.7.4 ciso8601"
            ;;
    esac
}

install_pinned() {  # NAME VERSION EXTRA...
    "${PIP[@]}" install --progress-bar off "target-stitch==$2" "${@:3}"
}

install_wheels() {  # NAME VERSION EXTRA...
    local deps
    read -r -a deps <<<"$(wheels_deps "$1")"
    "${PIP[@]}" install --progress-bar off --only-binary psutil "${deps[@]}" "${@:3}"
    # pip reports the psutil mismatch against target-stitch's pin here; that is expected.
    "${PIP[@]}" install --progress-bar off --no-deps "target-stitch==$2"
}

# Install one target-stitch (plus EXTRA requirements) in the chosen mode.
install_target_stitch() {  # NAME VERSION EXTRA...
    case "$MODE" in
        pinned) install_pinned "$@" ;;
        wheels) install_wheels "$@" ;;
        auto)
            if ! install_pinned "$@"; then
                echo "install.sh: pinned install failed (no C compiler for psutil?);" \
                    "retrying with a psutil wheel"
                install_wheels "$@"
            fi
            ;;
    esac
}

install_shims() {  # DIR: py311_shims.py into site-packages, imported at startup by a .pth file
    local site
    site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cp "$HERE/py311_shims.py" "$site/py311_shims.py"
    echo "import py311_shims" >"$site/py311_shims.pth"
}

# Build one venv; runs as a background job with its output in VENV.log.
build() {  # NAME
    local name=$1 dir
    dir=$(venv_dir "$name")
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        if [ -f "$dir/pyvenv.cfg" ]; then
            echo "install.sh: rebuilding incomplete venv $dir"
            "$PYTHON" -m venv --clear "$dir"
        else
            echo "install.sh: $dir is neither empty nor a venv; refusing to touch it" >&2
            return 1
        fi
    else
        "$PYTHON" -m venv "$dir"
    fi
    PIP=("$dir/bin/python" -m pip --disable-pip-version-check --no-input)
    case "$name" in
        target-stitch-4.0.3)
            install_target_stitch "$name" 4.0.3 stitchclient==1.0.1
            # stitchclient needs the collections.abc aliases; the test scripts make them.
            "$dir/bin/python" -c '
import collections, collections.abc
for name in collections.abc.__all__:
    if not hasattr(collections, name):
        setattr(collections, name, getattr(collections.abc, name))
import stitchclient.client'
            ;;
        target-stitch-1.9.1) install_target_stitch "$name" 1.9.1 ;;
        target-stitch-3.2.2)
            install_target_stitch "$name" 3.2.2
            install_shims "$dir"
            ;;
        python-stitch-client-0.8.0.post1)
            # Its flit-built wheel holds only `stitchclient`; `transit` is imported, not declared.
            "${PIP[@]}" install --progress-bar off python-stitch-client==0.8.0.post1 \
                transit-python2==0.8.321
            "$dir/bin/python" -c 'import stitchclient.client'
            ;;
        tap-csv-folder-0.0.1a1)
            "${PIP[@]}" install --progress-bar off --prefer-binary tap-csv-folder==0.0.1a1
            "$dir/bin/tap-csv-folder" --about >/dev/null
            ;;
    esac
    # target-stitch's argparse --help exits before reading stdin or config, after the imports.
    case "$name" in target-stitch-*) "$dir/bin/target-stitch" --help >/dev/null ;; esac
    stamp "$name" >"$dir/$MARKER"
}

# Take the venv's lock, then build it unless another run finished it meanwhile.
locked_build() {  # NAME
    local name=$1 dir
    dir=$(venv_dir "$name")
    mkdir -p "$(dirname "$dir")"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$dir.lock"
        flock 9
    fi
    if complete "$name"; then
        echo "install.sh: $dir already complete ($(stamp "$name"))"
        return 0
    fi
    local started=$SECONDS
    # In the background, so that `set -e` holds inside build (bash ignores it in `build || ...`).
    build "$name" >"$dir.log" 2>&1 &
    if ! wait $!; then
        echo "install.sh: building $dir failed; its log ($dir.log):" >&2
        sed 's/^/    /' "$dir.log" >&2
        return 1
    fi
    echo "install.sh: $dir ready in $((SECONDS - started)) s ($(stamp "$name"))"
}

pids=()
for name in "$@"; do
    if complete "$name"; then
        echo "install.sh: $(venv_dir "$name") already complete ($(stamp "$name"))"
    else
        locked_build "$name" &
        pids+=($!)
    fi
done
failed=0
for pid in ${pids[@]+"${pids[@]}"}; do  # (an empty array is "unbound" to bash < 4.4)
    wait "$pid" || failed=1
done
exit $failed
