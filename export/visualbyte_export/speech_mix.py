"""Which training speech rows a run draws and how often: the engines it leaves out, the probe
rows no run of a leave-one-engine-out probe trains on, and the shares of questions espeak-ng says
and recorded human words say;
``train``'s flags for them (``add_args``) and what they make of a run's labels (``for_run``).

A row's engine is its ``engine`` field in ``train_audio_rows.jsonl``; rows without one are
espeak-ng's (the dataset's original voices, Korean included).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

ESPEAK = "espeak"
# The engine of recorded human words (data/recorded.py), drawn by ``--recorded-share``.
RECORDED = "recorded"
# Every PROBE_EVERY-th row of a probe engine (in dataset order) is held out of training.
PROBE_EVERY = 3
# `hearing`'s verdicts about the training questions, read by ``--heard-only`` and by bundles.
HEARD_FILE = "train_audio_heard.jsonl"


def read_engines(data: Path, split: str = "train") -> np.ndarray:
    """The engine of each row of ``{split}_audio``, from its rows file."""
    return engine_rows(data, split)[0]


def places_in_engine(engines: np.ndarray) -> np.ndarray:
    """Each row's place among its engine's rows (0, 1, 2, … per engine, in row order)."""
    places = np.zeros(len(engines), dtype=np.int64)
    for engine in np.unique(engines):
        at = np.flatnonzero(engines == engine)
        places[at] = np.arange(len(at))
    return places


def engine_rows(data: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Each row's engine and its place among that engine's rows of the whole dataset: the
    ``engine_row`` field where a bundle part wrote it (its rows are a subset), else its place in
    this file."""
    path = Path(data) / f"{split}_audio_rows.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the speech mix needs each row's engine")
    with path.open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    engines = np.array([r.get("engine", ESPEAK) for r in rows])
    places = places_in_engine(engines)
    for i, r in enumerate(rows):
        places[i] = r.get("engine_row", places[i])
    return engines, places


def probe_mask(engines: np.ndarray, probe_engines: list[str], places: np.ndarray) -> np.ndarray:
    """True for the probe rows: every ``PROBE_EVERY``-th row of each probe engine, counted from its
    first (``places``: each row's place among its engine's rows of the whole dataset, from
    :func:`engine_rows`), so every run that names the same probe engines holds out the same
    rows."""
    return np.isin(engines, probe_engines) & (places % PROBE_EVERY == 0)


def check_engines(engines: np.ndarray, named: list[str], flag: str) -> None:
    known = sorted(set(engines.tolist()))
    for e in named:
        if e not in known:
            raise SystemExit(f"{flag} {e}: the dataset's speech engines are {', '.join(known)}")


def drawable_labels(
    labels: np.ndarray,
    engines: np.ndarray,
    leave_out: list[str],
    probe_engines: list[str],
    places: np.ndarray,
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
    out[np.isin(engines, leave_out) | probe_mask(engines, probe_engines, places)] = -1
    return out


def espeak_groups(engines: np.ndarray) -> np.ndarray:
    """Group 0 for espeak-ng's rows, 1 for every other engine's (``--espeak-share`` draws by it)."""
    return (engines != ESPEAK).astype(np.int64)


def recorded_groups(engines: np.ndarray) -> np.ndarray:
    """Group 0 for espeak-ng's rows, 2 for recorded words, 1 for every other engine's."""
    return np.where(engines == RECORDED, 2, espeak_groups(engines))


def group_shares(
    drawable: np.ndarray, engines: np.ndarray, espeak: float | None, recorded: float
) -> list[float]:
    """The shares of groups 0-2 (:func:`recorded_groups`): ``recorded`` for recorded words and
    the rest split ``espeak`` to the synthesizers' rows between espeak-ng and the other engines
    (without it, as many as the drawable rows hold)."""
    if espeak is None:
        synthesized = (drawable >= 0) & (engines != RECORDED)
        espeak = float(np.mean(engines[synthesized] == ESPEAK)) if synthesized.any() else 1.0
    return [espeak * (1.0 - recorded), (1.0 - espeak) * (1.0 - recorded), recorded]


def summary(labels: np.ndarray, engines: np.ndarray) -> dict[str, int]:
    """Drawable rows per engine, for the run's log."""
    keep = labels >= 0
    names, counts = np.unique(engines[keep], return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


# -------------------------------------------------------------------------------- train's flags
def add_args(p: argparse.ArgumentParser) -> None:
    """``train``'s flags for which synthesizers' questions a run hears, and how often."""
    p.add_argument(
        "--leave-out-engine",
        default="",
        metavar="E1,E2",
        help="never train on these engines' speech (comma-separated: espeak, mbrola, rhvoice, "
        "pico, festival, piper, kokoro): one half of a leave-one-engine-out probe",
    )
    p.add_argument(
        "--probe-engines",
        default="",
        metavar="E1,E2",
        help="hold every third training question of these engines out of training, in every run "
        "of a probe, so `probe` can test each run on them",
    )
    p.add_argument(
        "--espeak-share",
        type=float,
        help="share of spoken questions drawn from espeak-ng's rows (the rest from the other "
        "engines'); default: as the dataset holds them",
    )
    p.add_argument(
        "--recorded-share",
        type=float,
        help="share of spoken questions drawn from recorded human words in other languages "
        "(`data --audio-recorded`), for the classes that have them; the rest is split as "
        "--espeak-share says. Default: recorded words count as one more engine",
    )
    p.add_argument(
        "--heard-only",
        action="store_true",
        help="leave out the training questions Whisper did not hear as their class (`hearing` "
        "checks them; unchecked questions stay)",
    )


class SpeechMix(NamedTuple):
    """What the sampler draws spoken questions from: labels (-1: never drawn) and, with
    ``--espeak-share``, each row's group and the groups' shares."""

    labels: np.ndarray
    groups: np.ndarray | None = None
    shares: list[float] | None = None


def for_run(args: argparse.Namespace, labels: np.ndarray, log: Callable) -> SpeechMix:
    """The speech mix ``train``'s flags ask for, over the dataset's training audio labels."""
    probe = [e for e in args.probe_engines.split(",") if e]
    leave_out = [e for e in args.leave_out_engine.split(",") if e]
    share, recorded = args.espeak_share, args.recorded_share
    for flag, value in (("--espeak-share", share), ("--recorded-share", recorded)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise SystemExit(f"{flag} {value}: a share between 0 and 1")
    if not (leave_out or probe or share is not None or recorded is not None or args.heard_only):
        return SpeechMix(labels)
    engines, places = engine_rows(args.data)
    drawable = drawable_labels(labels, engines, leave_out, probe, places)
    if args.heard_only:
        from .hearing import unheard_rows  # hearing needs this module: imported when used

        drawable[unheard_rows(args.data, len(drawable))] = -1
    log(f"speech rows drawn per engine: {summary(drawable, engines)}")
    if recorded is not None:
        if not (engines[drawable >= 0] == RECORDED).any():
            raise SystemExit(
                f"--recorded-share {recorded}: {args.data} has no recorded words to draw "
                "(build it with `data --audio-recorded N`)"
            )
        shares = group_shares(drawable, engines, share, recorded)
        log(f"speech shares (espeak-ng, other engines, recorded): {[round(x, 3) for x in shares]}")
        return SpeechMix(drawable, recorded_groups(engines), shares)
    if share is None:
        return SpeechMix(drawable)
    return SpeechMix(drawable, espeak_groups(engines), [share, 1.0 - share])
