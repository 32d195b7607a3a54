"""``python -m visualbyte_export probe``: the table of the leave-one-engine-out probe.

Each model is asked the probe rows of each probe engine (training questions no probe run trained on,
speech_mix.py), the other synthesizers, the recorded human words and the held-out espeak-ng
voices, against the evaluation pictures; R@1 and how often the most likely class is right."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import speech_mix
from .embedders import OnnxEmbedder
from .metrics import recall_at_k
from .onnx_meta import read_training


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visualbyte_export probe", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="the dataset the probe runs trained on")
    p.add_argument(
        "--probe-engines", required=True, help="the runs' --probe-engines (comma-separated)"
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=ONNX",
        help="a model to ask, with its column name (repeatable)",
    )
    p.add_argument(
        "--espeak-limit",
        type=int,
        default=1000,
        help="held-out espeak-ng questions asked (a fixed random subset; 0 = all)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    return p


def question_sets(
    data: Path,
    engines: np.ndarray,
    places: np.ndarray,
    probe_engines: list[str],
    espeak_limit: int,
) -> dict:
    """name → (uint8 pictures, labels) of every question set the probe asks; ``engines`` and
    ``places``: each training question's engine and place among its rows (``engine_rows``)."""
    probe = speech_mix.probe_mask(engines, probe_engines, places)
    train_x = np.load(data / "train_audio.npy", mmap_mode="r")
    train_y = np.load(data / "train_audio_y.npy").astype(np.int64)
    sets = {}
    for engine in probe_engines:
        rows = np.flatnonzero(probe & (engines == engine))
        sets[f"{engine} (held-out rows)"] = (np.asarray(train_x[rows]), train_y[rows])
    for name, title in (("other_audio", "other synthesizers"), ("human_audio", "recorded human")):
        if (data / f"{name}.npy").exists():
            sets[title] = (np.load(data / f"{name}.npy"), np.load(data / f"{name}_y.npy"))
    ev_x = np.load(data / "eval_audio.npy", mmap_mode="r")
    ev_y = np.load(data / "eval_audio_y.npy").astype(np.int64)
    idx = np.arange(len(ev_y))
    if espeak_limit and len(idx) > espeak_limit:
        idx = np.sort(np.random.default_rng(0).choice(len(idx), espeak_limit, replace=False))
    sets["espeak-ng held-out voices"] = (np.asarray(ev_x[idx]), ev_y[idx])
    return sets


def ask(model: Path, sets: dict, gallery: tuple, threads: int) -> dict:
    """R@1 against the gallery and the most likely class's accuracy, per question set."""
    embed = OnnxEmbedder(model, threads)
    # A posterior model's vector has one value per class: its largest is the class it heard.
    posterior = read_training(model).get("output") == "posterior"
    g = embed(gallery[0])
    out = {}
    for name, (x, y) in sets.items():
        q = embed(x)
        y = np.asarray(y, dtype=np.int64)
        r1 = recall_at_k(q, y, g, gallery[1], ks=(1,))[1]
        cls = round(float((q.argmax(axis=1) == y).mean()), 4) if posterior else None
        out[name] = {"R@1": round(r1, 4), "class": cls, "n": len(y)}
    return out


def table(results: dict[str, dict]) -> str:
    names = list(results)
    sets = list(next(iter(results.values())))
    lines = [
        "| questions | n | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for s in sets:
        cells = []
        for name in names:
            r = results[name][s]
            cls = "" if r["class"] is None else f" / {r['class']:.2f}"
            cells.append(f"{r['R@1']:.3f}{cls}")
        lines.append(f"| {s} | {results[names[0]][s]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file():
            raise SystemExit(f"--model {spec}: expected NAME=PATH of an existing ONNX model")
        models[name] = Path(path)
    probe = [e for e in args.probe_engines.split(",") if e]
    engines, places = speech_mix.engine_rows(args.data)
    speech_mix.check_engines(engines, probe, "--probe-engines")
    sets = question_sets(args.data, engines, places, probe, args.espeak_limit)
    gallery = (
        np.load(args.data / "eval_image.npy"),
        np.load(args.data / "eval_image_y.npy").astype(np.int64),
    )
    results = {name: ask(path, sets, gallery, args.threads) for name, path in models.items()}
    print("R@1 / most likely class right, against the evaluation pictures:\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0
