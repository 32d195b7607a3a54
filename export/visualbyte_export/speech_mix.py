"""Which training speech rows a run draws and how often: the engines it leaves out, the probe
rows no run of a leave-one-engine-out probe trains on, and the share of questions espeak-ng says.

A row's engine is its ``engine`` field in ``train_audio_rows.jsonl``; rows without one are
espeak-ng's (the dataset's original voices, Korean included).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ESPEAK = "espeak"
# Every PROBE_EVERY-th row of a probe engine (in dataset order) is held out of training.
PROBE_EVERY = 3


def read_engines(data: Path, split: str = "train") -> np.ndarray:
    """The engine of each row of ``{split}_audio``, from its rows file."""
    path = Path(data) / f"{split}_audio_rows.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the speech mix needs each row's engine")
    with path.open() as f:
        return np.array([json.loads(line).get("engine", ESPEAK) for line in f if line.strip()])


def probe_mask(engines: np.ndarray, probe_engines: list[str]) -> np.ndarray:
    """True for the probe rows: every ``PROBE_EVERY``-th row of each probe engine, counted from its
    first, so every run that names the same probe engines holds out the same rows."""
    mask = np.zeros(len(engines), dtype=bool)
    for engine in probe_engines:
        rows = np.flatnonzero(engines == engine)
        mask[rows[::PROBE_EVERY]] = True
    return mask


def check_engines(engines: np.ndarray, named: list[str], flag: str) -> None:
    known = sorted(set(engines.tolist()))
    for e in named:
        if e not in known:
            raise SystemExit(f"{flag} {e}: the dataset's speech engines are {', '.join(known)}")


def drawable_labels(
    labels: np.ndarray, engines: np.ndarray, leave_out: list[str], probe_engines: list[str]
) -> np.ndarray:
    """The audio labels the sampler draws from: rows of left-out engines and probe rows become -1
    (never drawn); the rest keep their class."""
    if len(labels) != len(engines):
        raise SystemExit(
            f"train_audio has {len(labels)} rows but its rows file names {len(engines)}: "
            "rebuild the dataset"
        )
    check_engines(engines, leave_out, "--leave-out-engine")
    check_engines(engines, probe_engines, "--probe-engines")
    out = np.asarray(labels, dtype=np.int64).copy()
    out[np.isin(engines, leave_out) | probe_mask(engines, probe_engines)] = -1
    return out


def espeak_groups(engines: np.ndarray) -> np.ndarray:
    """Group 0 for espeak-ng's rows, 1 for every other engine's (``--espeak-share`` draws by it)."""
    return (engines != ESPEAK).astype(np.int64)


def summary(labels: np.ndarray, engines: np.ndarray) -> dict[str, int]:
    """Drawable rows per engine, for the run's log."""
    keep = labels >= 0
    names, counts = np.unique(engines[keep], return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}
