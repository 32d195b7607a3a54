#!/usr/bin/env bash
# Re-resolves export/pyproject.toml (with the dev extra) into export/requirements.lock: exact versions with
# sha256 hashes, for CPython 3.11 on x86_64 Linux (the machines the export step runs on). Run it after editing
# the dependencies in pyproject.toml (pins of unchanged packages are kept), or with --upgrade to move every
# package to its newest release; commit both files together.
# The lock's last line records pyproject.toml's sha256, so scripts/python-venv.sh and a test refuse a stale lock.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${VISUALBYTE_CACHE:-/var/cache/visualbyte}
UV_VERSION=0.13.9
TOOLS=$CACHE/lock-tools
if ! "$TOOLS/bin/uv" --version 2>/dev/null | grep -q " $UV_VERSION\b"; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
LOCK=export/requirements.lock
# uv keeps the pins of the file it writes to where it can: start from the current lock.
if [ -f "$LOCK" ]; then cp "$LOCK" "$LOCK.tmp"; fi
"$TOOLS/bin/uv" pip compile --quiet export/pyproject.toml --extra dev --generate-hashes \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu "$@" \
    --custom-compile-command scripts/lock-python.sh -o "$LOCK.tmp"
echo "# pyproject.toml sha256: $(sha256sum export/pyproject.toml | cut -d' ' -f1)" >>"$LOCK.tmp"
mv "$LOCK.tmp" "$LOCK"
echo "wrote $LOCK ($(grep -c '==' "$LOCK") pinned packages)"
