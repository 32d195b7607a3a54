#!/usr/bin/env bash
# Re-creates the default model in models/ with one command: runs, from the repository root, the lines of
# the "Re-create" block of models/MODEL_CARD.md (the card `evaluate` wrote for the shipped model): take
# the parent model out of git history, build the dataset, train, export, evaluate (which rewrites the
# card) and rebuild the index of the default image memory.
#
#   scripts/recreate-model.sh             run them (the training step alone takes its --budget-minutes)
#   scripts/recreate-model.sh --dry-run   print them
#   scripts/recreate-model.sh --card F    take them from another card
#
# Needs what scripts/test.sh installs (espeak-ng, flite, festival, the fonts; the Python venv is made or
# brought up to export/requirements.lock here) plus the dataset sources of export/README.md (npm for the emoji packages, Debian's
# dataset-fashion-mnist and fonts-noto-core). The runtime is built first (release), because the dataset
# is rendered by it and the export checks parity against it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARD=models/MODEL_CARD.md
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --card) CARD=${2:?--card needs a file}; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$CARD" ] || { echo "error: $CARD not found" >&2; exit 2; }

# The first fenced block after the "## Re-create" heading.
BLOCK=$(awk '/^## Re-create/ {on = 1; next}
             on && /^```/ {if (inside) exit; inside = 1; next}
             on && inside {print}' "$CARD")
if [ -z "$BLOCK" ]; then
    echo "error: $CARD has no \"## Re-create\" block with commands" >&2
    exit 2
fi
if [ "$DRY" = 1 ]; then
    printf '%s\n' "$BLOCK"
    exit 0
fi

CACHE=${VISUALBYTE_CACHE:-/var/cache/visualbyte}
if [ -z "${PYTHON:-}" ]; then
    scripts/python-venv.sh "$CACHE/venv"
fi
PY_DIR=$(dirname "${PYTHON:-$CACHE/venv/bin/python}")
if [ ! -x "$PY_DIR/python" ]; then
    echo "error: no Python at $PY_DIR/python: run scripts/test.sh once (it makes the venv), or set PYTHON" >&2
    exit 2
fi
export PATH="$PY_DIR:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
echo "== building the runtime (release)"
cargo build --release -p visualbyte
export VISUALBYTE_BIN=$CARGO_TARGET_DIR/release/visualbyte
echo "== running the Re-create block of $CARD"
printf '%s\n' "$BLOCK"
bash -euo pipefail -c "$BLOCK"
