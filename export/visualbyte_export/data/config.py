"""Settings of a dataset build: the cache version, default places, per-class counts (``Counts``),
``Config``, and the seeded helpers every stage draws its samples with."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import NEGATIVE_EN, NEGATIVE_KO, UNKNOWN_EN, UNKNOWN_KO

# Bump when anything that decides the generated samples changes (the cache key includes it).
DATA_VERSION = 1

DEFAULT_DOWNLOADS = Path(
    os.environ.get("VISUALBYTE_DOWNLOADS", "/var/cache/visualbyte/data/downloads")
)
DEFAULT_FASHION = Path("/usr/share/datasets/fashion-mnist")
# Emoji styles for training and evaluation (sources.STYLE_PACKAGE names their npm packages).
TRAIN_STYLES = ("google", "twitter", "openmoji", "fluent-flat", "fluent-modern")
EVAL_STYLES = ("facebook",)

# Fonts (offline-data.md: train text on these only). Hangul: the Nanum fonts.
FONT_FILES = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "DejaVuSansMono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "DejaVuSans-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "DejaVuSerif-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "NotoSans": "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "NanumSquareR": "/usr/share/fonts/truetype/nanum/NanumSquareR.ttf",
    "NanumGothic": "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    # Other fonts: evaluation only (other_text), never in training.
    "LiberationSans": "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "LiberationSerif": "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "LiberationMono": "/usr/share/fonts/truetype/liberation2/LiberationMono-Regular.ttf",
    "LiberationSans-Italic": "/usr/share/fonts/truetype/liberation2/LiberationSans-Italic.ttf",
    "NotoSerif": "/usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf",
    "NanumMyeongjo": "/usr/share/fonts/truetype/nanum/NanumMyeongjo.ttf",
    "NanumBarunGothic": "/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf",
}


@dataclass
class Counts:
    """Samples per class. Emoji pictures: every style (and skin tone) plain plus ``image_augs``
    augmented copies, at most ``image_train_max`` per class."""

    audio_train: int = 80
    audio_eval: int = 12
    audio_other: int = 5  # other synthesizers (OTHER_SYNTHS), evaluation only; 0 = none
    text_other: int = 4  # other fonts (OTHER_FONTS), evaluation only; 0 = none
    text_train: int = 32
    text_eval: int = 4
    image_augs: int = 3
    image_train_max: int = 48
    image_eval_max: int = 6
    fashion_train: int = 40
    fashion_eval: int = 8
    ko_fraction: float = 0.25  # share of speech/text in Korean, for classes with a Korean name
    neg_en: int = len(NEGATIVE_EN)
    neg_ko: int = len(NEGATIVE_KO)
    # Non-class words for training (``unknown_*.npy``, ``train --unknown-weight``): how many of
    # UNKNOWN_EN / UNKNOWN_KO, and how many spoken and typed questions each; 0 = none.
    unknown_en: int = len(UNKNOWN_EN)
    unknown_ko: int = len(UNKNOWN_KO)
    unknown_audio: int = 10
    unknown_text: int = 8
    # Extra training speech per class in synthetic accents (ACCENT_*); 0 = none.
    audio_accent: int = 0
    # Extra English training speech per class from the other engines (speech_engines.ENGINES,
    # taking turns); 0 = none.
    audio_engines: int = 0
    # Augmented views of each recorded word in a language other than English (data/recorded.py),
    # added to the training speech; 0 = none.
    audio_recorded: int = 0
    # Photographic views of each training photo and clip-art picture (photos.py; the first is
    # the plain picture); 0 = no photo, human-speech or label splits.
    photo_views: int = 0

    @classmethod
    def tiny(cls) -> Counts:
        return cls(
            audio_train=6,
            audio_eval=2,
            audio_other=1,
            text_other=1,
            text_train=4,
            text_eval=1,
            image_augs=1,
            image_train_max=4,
            image_eval_max=1,
            fashion_train=3,
            fashion_eval=2,
            ko_fraction=0.34,
            neg_en=4,
            neg_ko=2,
            unknown_en=3,
            unknown_ko=1,
            unknown_audio=2,
            unknown_text=2,
            audio_accent=0,
            audio_engines=0,
            audio_recorded=0,
            photo_views=0,
        )


@dataclass
class Config:
    out: Path
    size: int = 96
    seed: int = 0
    tiny: bool = False
    classes: list[str] | None = None
    cache: Path | None = None
    downloads: Path = DEFAULT_DOWNLOADS
    fashion: Path = DEFAULT_FASHION
    fonts: dict[str, str] = field(default_factory=lambda: dict(FONT_FILES))
    workers: int = 2
    keep_work: bool = False
    # Render with this ONNX model's renderer settings (its contract) instead of this build's.
    renderer_model: Path | None = None
    counts: Counts = field(default_factory=Counts)
    train_styles: tuple[str, ...] = TRAIN_STYLES
    eval_styles: tuple[str, ...] = EVAL_STYLES

    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"


def log(msg: str) -> None:
    print(f"[data {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="it", file=sys.stderr, mininterval=2.0)


def stable_int(*parts) -> int:
    """A 63-bit integer from the parts, the same on every machine and Python run."""
    h = hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(stable_int(*parts))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
