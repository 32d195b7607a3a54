#!/usr/bin/env bash
# scripts/python-venv.sh VENV: makes VENV the export step's Python environment, exactly as
# export/requirements.lock says (hash-checked, no resolver), plus the export package itself (editable).
# Does nothing while the lock, the Python and the clone it points at are unchanged. A lock older than
# export/pyproject.toml is refused: scripts/lock-python.sh makes a new one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${1:?usage: scripts/python-venv.sh VENV}
LOCK=$ROOT/export/requirements.lock

want=$(sha256sum "$ROOT/export/pyproject.toml" | cut -d' ' -f1)
have=$(sed -n 's/^# pyproject.toml sha256: //p' "$LOCK")
if [ "$want" != "$have" ]; then
    echo "error: export/requirements.lock was made for another export/pyproject.toml" \
        "(lock says ${have:-nothing}, file is $want): run scripts/lock-python.sh and commit the lock" >&2
    exit 1
fi

stamp=$VENV/.visualbyte-stamp
key="$(python3 -c 'import sys; print(sys.base_prefix, sys.version.split()[0])') $(sha256sum "$LOCK" | cut -c1-16) $ROOT"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && "$VENV/bin/python" -c 'import visualbyte_export'; then
    echo "venv up to date: $VENV"
    exit 0
fi
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null ||
    [ "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" != \
      "$(python3 -c 'import sys; print(sys.version_info[:2])')" ]; then
    echo "creating venv: $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
# --require-hashes: every file must match the lock; packages the lock no longer lists are removed.
"${pip[@]}" install -q --require-hashes --no-deps -r "$LOCK"
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$ROOT/export"
extra=$("${pip[@]}" freeze --exclude-editable | sed 's/==.*//' | tr 'A-Z_' 'a-z-' | sort |
    comm -23 - <(grep -Eo '^[A-Za-z0-9._-]+==' "$LOCK" | sed 's/==//' | tr 'A-Z_' 'a-z-' | sort) || true)
if [ -n "$extra" ]; then
    echo "removing packages the lock does not list: $extra"
    # shellcheck disable=SC2086
    "${pip[@]}" uninstall -q -y $extra
fi
"${pip[@]}" check
echo "$key" >"$stamp"
echo "venv ready: $VENV ($(grep -c '^[A-Za-z0-9._-]*==' "$LOCK") locked packages)"
