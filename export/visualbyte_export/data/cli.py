"""The command line, ``python -m visualbyte_export data --out DIR ...``: parse_args and main."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from .. import render
from ..classes import check_classes, select_classes, write_classes_csv
from ..photos import PhotoSourceMissing
from .build import Builder
from .config import DEFAULT_DOWNLOADS, DEFAULT_FASHION, Config, Counts
from .sources import fetch_packages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m visualbyte_export data",
        description="Build the VisualByte dataset (pictures, text and speech, rendered by the "
        "runtime).",
    )
    p.add_argument("--out", type=Path, required=True, help="dataset directory")
    p.add_argument("--size", type=int, default=96, help="rendered image size S (default 96)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="6 classes, a few samples each")
    p.add_argument("--classes", help="comma-separated class keys to build (default: all)")
    p.add_argument("--classes-only", action="store_true", help="only write OUT/classes.csv")
    p.add_argument("--cache", type=Path, help="cache of rendered arrays (default OUT/cache)")
    p.add_argument(
        "--downloads",
        type=Path,
        default=DEFAULT_DOWNLOADS,
        help=f"unpacked npm emoji packages (default {DEFAULT_DOWNLOADS})",
    )
    p.add_argument("--fetch", action="store_true", help="npm pack missing emoji packages first")
    p.add_argument("--fashion", type=Path, default=DEFAULT_FASHION, help="Fashion-MNIST directory")
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel speech synthesis"
    )
    p.add_argument(
        "--keep-work", action="store_true", help="keep the WAV/PNG inputs of the renderer"
    )
    p.add_argument(
        "--renderer-from",
        type=Path,
        metavar="MODEL.onnx",
        help="render with the settings this model was trained with (its contract) instead of "
        "the runtime's current ones: rebuilds the data an older model was trained and "
        "evaluated on (evaluate refuses a dataset rendered otherwise)",
    )
    for name, default in asdict(Counts()).items():
        if name.startswith("neg_") or name == "ko_fraction":
            continue
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"{COUNT_UNITS.get(name, 'per class')} (default {default}; "
            f"--tiny: {getattr(Counts.tiny(), name)})",
        )
    return p.parse_args(argv)


COUNT_UNITS = {
    "unknown_en": "non-class English words for training (0 = none)",
    "unknown_ko": "non-class Korean words for training (0 = none)",
    "unknown_audio": "spoken questions per non-class training word",
    "unknown_text": "typed questions per non-class training word",
    "audio_accent": "extra English training speech per class in synthetic accents "
    "(recombined training accents; 0 = none)",
    "audio_engines": "extra English training speech per class from MBROLA, RHVoice, pico, "
    "festival, Piper and Kokoro in turn (scripts/install-voices.sh; 0 = none)",
    "audio_recorded": "views of each recorded non-English word that names a class (KTuberling's "
    "other languages, Tux Paint's spoken stamp descriptions), added to the training speech "
    "(ktuberling-data tuxpaint-stamps-default; 0 = none)",
    "photo_views": "views of each training photo and clip-art picture, plus the held-out photo, "
    "clip-art, human-speech and label splits (gcompris-qt-data openclipart-png ktuberling-data; "
    "0 = none)",
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.classes.split(",")] if args.classes else None
    if args.classes_only:
        classes = select_classes(args.tiny, keys)
        check_classes(classes)
        path = write_classes_csv(classes, args.out / "classes.csv")
        print(f"{len(classes)} classes -> {path}")
        return 0
    counts = Counts.tiny() if args.tiny else Counts()
    for name in asdict(counts):
        v = getattr(args, name, None)
        if v is not None:
            setattr(counts, name, v)
    cfg = Config(
        out=args.out,
        size=args.size,
        seed=args.seed,
        tiny=args.tiny,
        classes=keys,
        cache=args.cache,
        downloads=args.downloads,
        fashion=args.fashion,
        workers=args.workers,
        keep_work=args.keep_work,
        renderer_model=args.renderer_from,
        counts=counts,
    )
    if args.fetch:
        fetch_packages(cfg.downloads, cfg.train_styles + cfg.eval_styles)
    try:
        Builder(cfg).build()
    except (
        render.RendererNotFound,
        render.RenderFailed,
        FileNotFoundError,
        PhotoSourceMissing,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
