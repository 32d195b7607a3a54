#!/usr/bin/env bash
# Trains on a lent GPU machine, run there from the repository root (the `device` tool's `run`).
# It joins the bundle parts carried in .bundle-*/ (those of earlier calls on the same warm machine
# too) into a dataset, trains on CUDA with the given `train` flags (a run of the same name resumes
# where the last call stopped), and leaves the checkpoint, without its optimizer and cut into
# pieces, in $OUT with the log. Back here: `python -m visualbyte_export bundle join`.
#
#   python -m visualbyte_export bundle pack --data DS --out .bundle-0 --parts 16 --only 0
#   scripts/gpu-train.sh NAME --init models/visualbyte.onnx --max-minutes 8 [train flags...]
set -euo pipefail
name=${1:?usage: scripts/gpu-train.sh NAME [train flags...]}
shift
out=${OUT:?OUT must name the folder whose files come back}
shopt -s nullglob
parts=(.bundle-*/part-*.tar.xz)
if ((${#parts[@]} == 0)); then
  echo "gpu-train: no bundle parts in .bundle-*/ (bundle pack --out .bundle-0 ...)" >&2
  exit 2
fi
export PYTHONPATH="$PWD/export${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
work=${VISUALBYTE_GPU_WORK:-/tmp} # outside the copy of the repository, so a run outlives a call
data=$work/visualbyte-data
run=$work/visualbyte-runs/$name
rm -rf "$data"
python3 -m visualbyte_export bundle unpack "${parts[@]}" --out "$data"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -m visualbyte_export train --data "$data" --run-dir "$run" --device cuda --amp \
  --no-progress "$@" 2>&1 | tee "$out/train.log"
# Eight files come back, 16 MB each at most: pieces of 15 MB, 48 MB in all (float16 if need be).
python3 -m visualbyte_export bundle strip "$run/last.pt" --out "$out" --piece-mb 15 --max-mb 48
cp "$run/train_log.jsonl" "$out/" 2>/dev/null || true
