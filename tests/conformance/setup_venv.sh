#!/usr/bin/env bash
# Create (or refresh) the conformance-suite virtualenv at <repo>/target/conformance-venv.
# Idempotent: does nothing when the venv exists and was built from the current requirements.txt.
#
#   bash tests/conformance/setup_venv.sh
#   target/conformance-venv/bin/pytest tests/conformance -q
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/target/conformance-venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup_venv.sh: $python not found" >&2
    exit 1
fi

want="$( { sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; echo "$venv"; } | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

# python3 -m venv needs ensurepip (Debian: python3-venv / python3.X-venv).
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup_venv.sh: installing python${pyver}-venv" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv" >/dev/null \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "setup_venv.sh: the venv module is unavailable; install python${pyver}-venv" >&2
        exit 1
    fi
fi

mkdir -p "$repo/target"
# Made afresh: a venv's scripts name its own path, so one that was moved or made for other
# requirements is not patched up in place.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import h2o_audit_trail, pytest, requests' >/dev/null
printf '%s\n' "$want" > "$stamp"
echo "setup_venv.sh: venv ready at $venv" >&2
