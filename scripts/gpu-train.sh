#!/usr/bin/env bash
# Trains on a lent GPU machine, run there from the repository root (the `device` tool's `run`).
# It joins the bundle parts carried in .bundle-*/ (those of earlier calls on the same warm machine
# too) into a dataset, trains on CUDA with the given `train` flags (a run of the same NAME resumes
# where the last call stopped), and leaves NAME.log and the checkpoint, without its optimizer and
# cut into pieces (NAME.pt.000, ... and NAME.pt.sha256), in $OUT. Back here:
# `python -m visualbyte_export bundle join NAME.pt.000 --out last.pt`.
#
#   python -m visualbyte_export bundle pack --data DS --out .bundle-0 --parts 16 --only 0
#   scripts/gpu-train.sh NAME --init models/visualbyte.onnx --max-minutes 8 [train flags...]
#
# Two stages in one call (the second starts from the first; only its checkpoint comes back):
#   scripts/gpu-train.sh a --espeak-share 0.3 ... && \
#     scripts/gpu-train.sh b --init /tmp/visualbyte-runs/a/last.pt --espeak-share 0.7 ...
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
  --no-progress "$@" 2>&1 | tee "$out/$name.log"
# Eight files come back, 16 MB each at most: pieces of 15 MB, 48 MB in all (float16 if need be);
# an earlier stage's pieces make way.
rm -f "$out"/*.pt.[0-9][0-9][0-9] "$out"/*.pt.sha256
cp "$run/last.pt" "$run/$name.pt"
python3 -m visualbyte_export bundle strip "$run/$name.pt" --out "$out" --piece-mb 15 --max-mb 48
