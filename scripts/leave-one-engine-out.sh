#!/usr/bin/env bash
# The leave-one-engine-out probe of the model card: does speech from many synthesizers teach the model
# voices it never heard, or only the voices it heard? Two runs continue the default model for the same
# steps, with the same seed and the same speech mix (most questions from the engines other than
# espeak-ng), one never hearing Kokoro (neural), the other never hearing MBROLA (diphones). Every third
# Kokoro and MBROLA question is held out of both runs, so each run is tested on an engine it never heard
# and on one it heard, on the same held-out questions; `probe` prints the table for the card.
#
#   scripts/leave-one-engine-out.sh DATASET [STEPS]   (default 600 steps, one thread a run, in parallel)
#
# DATASET is a `data --audio-engines N` dataset (e.g. the card's ds96g); runs go to
# $VISUALBYTE_RUNS (default /var/cache/visualbyte/runs)/loo-kokoro and loo-mbrola.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in
    -h|--help|"") sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ]; exit ;;
esac
DATA=$(realpath "$1")
STEPS=${2:-600}
RUNS=${VISUALBYTE_RUNS:-/var/cache/visualbyte/runs}
PY=${PYTHON:-/var/cache/visualbyte/venv/bin/python}
PROBE=kokoro,mbrola
cd "$ROOT/export"

train() {  # NAME LEFT-OUT-ENGINE
    "$PY" -m visualbyte_export train --data "$DATA" --run-dir "$RUNS/$1" --init "$ROOT/models/visualbyte.onnx" \
        --arch convnext_femto \
        --backbone-kwargs '{"conv_mlp": true, "norm_layer": "batchnorm2d", "ls_init_value": 1.0}' \
        --input-norm per_image --embed-dim 512 --epochs "$(awk "BEGIN {print $STEPS / 300}")" --steps-per-epoch 300 \
        --batch-classes 32 --lr-backbone 0.00006 --lr-head 0.00012 --warmup-steps 50 --weight-decay 0.05 \
        --audio-lambda 1.0 --ce-weights 0.5,1.5,2.0 --curriculum-epochs 0.0 --align-start 1.0 --align-delay 0.0 \
        --aug 0.5 --aug-style 0.7 --aug-voice 1.0 --unknown-weight 1.0 --unknown-per-batch 12 --drop-path 0.0 \
        --espeak-share 0.3 --probe-engines "$PROBE" --leave-out-engine "$2" \
        --seed 11 --threads 1 --no-eval --no-progress
    "$PY" -m visualbyte_export export --checkpoint "$RUNS/$1/last.pt" --out "$RUNS/$1/visualbyte.onnx" \
        --output posterior --weights f16
}

train loo-kokoro kokoro > "$RUNS/loo-kokoro.log" 2>&1 & a=$!
train loo-mbrola mbrola > "$RUNS/loo-mbrola.log" 2>&1 & b=$!
wait $a
wait $b
"$PY" -m visualbyte_export probe --data "$DATA" --probe-engines "$PROBE" \
    --model "default=$ROOT/models/visualbyte.onnx" \
    --model "without kokoro=$RUNS/loo-kokoro/visualbyte.onnx" \
    --model "without mbrola=$RUNS/loo-mbrola/visualbyte.onnx"
