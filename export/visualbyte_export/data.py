"""Dataset builder: pictures, typed text and speech for every class, rendered by the runtime.

``python -m visualbyte_export data --out DIR [--size 96] [--seed 0] [--tiny] [--classes-only]``

Sources (docs: /work/shared/reference/offline-data.md; nothing else is downloaded):

- pictures: emoji of five vendor styles for training (google, twitter, openmoji, fluent flat,
  fluent modern), facebook's for evaluation only; Fashion-MNIST photographs (train file for
  training, a slice of the t10k file for evaluation);
- speech: espeak-ng for training, and with ``--audio-engines N`` N more English questions per class
  from the other offline engines (``speech_engines``: MBROLA, RHVoice, pico, festival's HTS and
  diphone voices, Piper and Kokoro). English accents and variants are split into training and
  held-out sets; training also speaks with synthetic accents (``--audio-accent``: espeak-ng voices
  that recombine the training accents' pronunciation parts); Korean (``-v ko``) uses the
  held-out variants for evaluation. Questions spoken by other synthesizers (flite's voices,
  festival's kal) are an evaluation-only split;
- text: DejaVu Sans (regular, bold, mono), DejaVu Serif (regular, bold), Noto Sans and NanumSquareR
  (and the runtime's embedded font) for training, NanumGothic held out for evaluation; typed
  questions in other fonts (Liberation Sans/Serif/Mono/Sans Italic, Noto Serif, Nanum Myeongjo and
  Barun Gothic) are an evaluation-only split.

Pictures are augmented here (placement, background, rotation, colour), speech is augmented here
(noise, gain, time shift, reverb, band limit, sample rate) and written as WAV files; then the
runtime (``visualbyte render batch``) turns WAVs, texts and pictures into ``S x S`` images, one call
per split and modality, so that training sees exactly the pixels the device will draw. Rendered
arrays are cached under ``--cache``; a re-run with the same seed, classes and renderer settings
reuses them, and a rebuild from scratch reproduces them.

Output (``DIR``): ``meta.json``, ``classes.csv``, ``{train,eval}_{image,text,audio}.npy`` (uint8
``[N, S, S, 3]``) with ``..._y.npy`` (int64 ``[N]``), ``..._rows.jsonl`` (what each row is),
``other_text.npy``, ``other_audio.npy`` (+ ``_y.npy``, ``_rows.jsonl``: other fonts, other
synthesizers), ``neg_text.npy``, ``neg_audio.npy`` (+ ``_rows.jsonl``) and ``samples/`` (one
held-out-voice WAV per class). See export/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from . import render
from .classes import (
    KO_CARRIERS,
    NEGATIVE_EN,
    NEGATIVE_KO,
    UNKNOWN_EN,
    UNKNOWN_KO,
    ClassSpec,
    check_classes,
    en_carriers,
    en_phrase,
    ko_phrase,
    names_en,
    names_ko,
    select_classes,
    write_classes_csv,
)
from .photos import (
    PhotoSourceMissing,
    PhotoSources,
    PhotoStage,
    human_speech_jobs,
    label_jobs,
    photo_jobs,
)
from .speech_engines import ENGINES, synthesize
from .wav import read_wav, resample, write_wav

# Bump when anything that decides the generated samples changes (the cache key includes it).
DATA_VERSION = 1

DEFAULT_DOWNLOADS = Path(
    os.environ.get("VISUALBYTE_DOWNLOADS", "/var/cache/visualbyte/data/downloads")
)
DEFAULT_FASHION = Path("/usr/share/datasets/fashion-mnist")

# npm packages of the emoji styles, pinned.
NPM_PACKAGES = {
    "emoji-datasource-google": "16.0.0",
    "emoji-datasource-twitter": "16.0.0",
    "emoji-datasource-facebook": "16.0.0",
    "fluentui-emoji": "1.3.0",
    "openmoji": "17.0.0",
}
TRAIN_STYLES = ("google", "twitter", "openmoji", "fluent-flat", "fluent-modern")
EVAL_STYLES = ("facebook",)
STYLE_PACKAGE = {
    "google": "emoji-datasource-google",
    "twitter": "emoji-datasource-twitter",
    "facebook": "emoji-datasource-facebook",
    "openmoji": "openmoji",
    "fluent-flat": "fluentui-emoji",
    "fluent-modern": "fluentui-emoji",
}
SKIN_TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
FLUENT_TONES = {
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}

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
HANGUL_FONTS = ("NanumSquareR", "NanumGothic", "NanumMyeongjo", "NanumBarunGothic")
# Typed questions in other fonts (Liberation: Arial/Times/Courier metrics), evaluation only.
OTHER_FONTS = (
    "LiberationSans",
    "LiberationSerif",
    "LiberationMono",
    "LiberationSans-Italic",
    "NotoSerif",
    "NanumMyeongjo",
    "NanumBarunGothic",
)
FONT_PACKAGES = "fonts-dejavu-core fonts-nanum fonts-noto-core fonts-liberation2"
EMBEDDED_FONT = (
    "embedded"  # no "font" key: the runtime's built-in font (what the device renders with)
)
TRAIN_FONTS = (
    "DejaVuSans",
    "DejaVuSerif",
    "DejaVuSansMono",
    "DejaVuSans-Bold",
    "DejaVuSerif-Bold",
    "NotoSans",
    "NanumSquareR",
    EMBEDDED_FONT,
)
EVAL_FONTS = ("NanumGothic",)

# espeak-ng voices (language accents) and variants (voice qualities, file names under voices/!v).
EN_VOICES_TRAIN = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029")
EN_VOICES_EVAL = ("en-us-nyc", "en-gb-x-gbcwmd")
KO_VOICE = "ko"
VARIANTS_EVAL = ("f4", "m4", "Annie", "Michael", "klatt3", "steph2", "grandma", "travis")
# Not used at all: "fast" is a speed test, "Mr serious" has a space in its name.
VARIANTS_UNUSED = ("fast", "Mr serious")
ESPEAK_RATE = 22050
# Other synthesizers: held-out evaluation only (offline-data.md: train speech on espeak-ng only).
# flite's built-in voices and festival's kal diphone voice (Debian flite, festival,
# festvox-kallpc16k); English only.
OTHER_SYNTHS = (
    ("flite", "kal"),
    ("flite", "awb"),
    ("flite", "rms"),
    ("flite", "slt"),
    ("festival", "kal_diphone"),
)
OTHER_SYNTH_PACKAGES = "flite festival festvox-kallpc16k"
# Synthetic English accents (training speech only, ``Counts.audio_accent``): espeak-ng voices that
# recombine the pronunciation parts of the *training* accents' voice files (lang/gmw/en*): phoneme
# table, spelling-rule options, vowel and consonant replacements and stress timing, with the first
# formants moved a little (heard only with a variant that sets no formants itself: 8 of espeak-ng's
# 101 variants; the others' formant lines win), plus generic vowel shifts and an intonation tune
# (ACCENT_VOWEL_SHIFTS, ACCENT_TUNES). Nothing comes from the held-out accents (en-us-nyc's and
# en-wm's phoneme tables, the West Midlands h-dropping), so those stay unheard.
ACCENT_PHONEMES = ("en", "en-us", "en-rp", "en-sc", "en-n", "en-wi")
ACCENT_PHONEMES_HELD_OUT = ("en-us-nyc", "en-wm")
ACCENT_DICTRULES = ((), (3, 6), (2, 5, 6, 7), (8,))
ACCENT_REPLACE = (
    ("03", "I", "i"),
    ("03", "I2", "i"),
    ("03", "@", "a#"),
    ("03", "3", "a#"),
    ("03", "@", "V"),
    ("03", "N", "n"),
    ("03", "i", "I2"),
    ("01", "aI", "aI2"),
    ("02", "a", "a/"),
    ("02", "u:", "U"),
    ("00", "D", "d"),
    ("00", "T", "t["),
    ("00", "U@", "o@"),
    ("00", "o@", "O@"),
)
# Vowel shifts (``replace 00``) that move one English vowel to a neighbour on the vowel chart or
# flatten a diphthong to its first part: generic accent variety, not any one accent's rules (each
# changes espeak-ng's output with the en table; E->e does nothing with en-wi), each drawn with
# probability ACCENT_SHIFT_P. Intonation: espeak-ng's tune sets 1-6 (``tunes``; 1 is its default).
ACCENT_VOWEL_SHIFTS = (
    ("E", "a"),
    ("E", "e"),
    ("E", "I"),
    ("a", "E"),
    ("I", "i"),
    ("I", "E"),
    ("i:", "I"),
    ("u:", "U"),
    ("U", "V"),
    ("V", "U"),
    ("V", "0"),
    ("O:", "0"),
    ("3:", "E"),
    ("@", "I"),
    ("e@", "E"),
    ("eI", "E"),
    ("oU", "O:"),
    ("aI", "a"),
    ("aU", "a"),
)
ACCENT_SHIFT_P = 0.12
ACCENT_TUNES = (1, 2, 3, 4, 5, 6)
ACCENT_STRESS = (
    (140, 120, 190, 170, 0, 0, 255, 300),
    (175, 175, 175, 175, 220, 220, 250, 290),
    (180, 130, 200, 200, 0, 0, 250, 270),
    (160, 150, 180, 180, 220, 220, 290, 290),
)

OUTPUT_RATES = (16000, 22050, 44100, 48000)
OUTPUT_RATE_P = (0.45, 0.35, 0.1, 0.1)


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


# ------------------------------------------------------------------------------------------------
# Downloads


def fetch_packages(downloads: Path, styles: tuple[str, ...]) -> None:
    """``npm pack`` the pinned emoji packages the styles need; unpack them under ``downloads/x``."""
    downloads.mkdir(parents=True, exist_ok=True)
    for name in sorted(
        {STYLE_PACKAGE[s] for s in styles} | {"emoji-datasource-google", "openmoji"}
    ):
        version = NPM_PACKAGES[name]
        dest = downloads / "x" / f"{name}-{version}"
        if (dest / "package").is_dir():
            continue
        tgz = downloads / f"{name}-{version}.tgz"
        if not tgz.exists():
            log(f"npm pack {name}@{version}")
            subprocess.run(
                ["npm", "pack", f"{name}@{version}"],
                cwd=downloads,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tf:
            tf.extractall(dest, filter="data")


def package_dir(downloads: Path, name: str) -> Path:
    return downloads / "x" / f"{name}-{NPM_PACKAGES[name]}" / "package"


# ------------------------------------------------------------------------------------------------
# Emoji pictures


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class EmojiIndex:
    """Finds the picture of an emoji (by emoji-datasource short name) in every style."""

    def __init__(self, downloads: Path, raster_dir: Path):
        self.downloads = Path(downloads)
        self.raster_dir = Path(raster_dir)
        base = package_dir(self.downloads, "emoji-datasource-google")
        path = base / "emoji.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run with --fetch (npm pack the emoji packages into "
                f"{self.downloads}) or point --downloads at them"
            )
        entries = json.loads(path.read_text(encoding="utf-8"))
        self.by_short: dict[str, dict] = {}
        for e in entries:
            for s in e["short_names"]:
                self.by_short[s] = e
        self.annotation: dict[str, str] = {}
        om = package_dir(self.downloads, "openmoji") / "data" / "openmoji.json"
        if om.exists():
            for o in json.loads(om.read_text(encoding="utf-8")):
                self.annotation[o["hexcode"]] = o["annotation"]

    def entry(self, short: str) -> dict:
        try:
            return self.by_short[short]
        except KeyError:
            raise KeyError(f"emoji short name {short!r} is not in emoji.json") from None

    def tones(self, short: str) -> list[str | None]:
        """``None`` (the default yellow) plus the five skin tones where the emoji has them."""
        e = self.entry(short)
        return [None, *SKIN_TONES] if e.get("skin_variations") else [None]

    def code(self, short: str, tone: str | None = None) -> str:
        u = self.entry(short)["unified"]
        return u if tone is None else f"{u}-{tone}"

    def picture(self, style: str, short: str, tone: str | None = None) -> Path | None:
        """PNG of the emoji in the style (SVG styles are rasterised once, cached), or None."""
        e = self.entry(short)
        if style in ("google", "twitter", "facebook"):
            root = package_dir(self.downloads, STYLE_PACKAGE[style]) / "img" / style / "64"
            if tone is None:
                if not e.get(f"has_img_{style}"):
                    return None
                name = e["image"]
            else:
                var = (e.get("skin_variations") or {}).get(tone)
                if not var or not var.get(f"has_img_{style}"):
                    return None
                name = var["image"]
            p = root / name
            return p if p.exists() else None
        if style == "openmoji":
            root = package_dir(self.downloads, "openmoji") / "color" / "svg"
            u = e["unified"]
            cands = [u, u.replace("-FE0F", "")]
            if tone is not None:
                cands = [f"{c}-{tone}" for c in cands]
            for c in cands:
                if (root / f"{c}.svg").exists():
                    return self._raster(style, root / f"{c}.svg", self.code(short, tone))
            return None
        if style in ("fluent-flat", "fluent-modern"):
            root = package_dir(self.downloads, "fluentui-emoji") / "icons" / style.split("-")[1]
            u = e["unified"]
            ann = self.annotation.get(u) or self.annotation.get(u.replace("-FE0F", "")) or e["name"]
            slug = _slug(ann or "")
            suffixes = ["", "-default"] if tone is None else [f"-{FLUENT_TONES[tone]}"]
            for suf in suffixes:
                p = root / f"{slug}{suf}.svg"
                if p.exists():
                    return self._raster(style, p, self.code(short, tone))
            return None
        raise ValueError(f"unknown emoji style {style!r}")

    def _raster(self, style: str, svg: Path, code: str, px: int = 128) -> Path:
        out = self.raster_dir / style / f"{code}.png"
        if out.exists():
            return out
        import cairosvg

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        cairosvg.svg2png(url=str(svg), write_to=str(tmp), output_width=px, output_height=px)
        tmp.replace(out)
        return out


def augment_picture(src: Path, rng: np.random.Generator, canvas: int = 160) -> Image.Image:
    """An emoji on a random background: scale, position, rotation, mirror, colour, blur."""
    sprite = Image.open(src).convert("RGBA")
    side = int(canvas * rng.uniform(0.5, 0.95))
    sprite = sprite.resize((side, side), Image.LANCZOS)
    if rng.random() < 0.5:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-20, 20))
    sprite = sprite.rotate(angle, resample=Image.BICUBIC, expand=True)
    bg = _background(rng, canvas)
    max_x = max(canvas - sprite.width, 0)
    max_y = max(canvas - sprite.height, 0)
    x = int(rng.integers(0, max_x + 1)) if max_x else (canvas - sprite.width) // 2
    y = int(rng.integers(0, max_y + 1)) if max_y else (canvas - sprite.height) // 2
    bg.paste(sprite, (x, y), sprite)
    img = bg.convert("RGB")
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.7, 1.3)))
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    return img


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.choice(
        ["white", "light", "colour", "gradient", "noise"], p=[0.3, 0.25, 0.1, 0.2, 0.15]
    )
    if kind == "white":
        return Image.new("RGBA", (size, size), (255, 255, 255, 255))
    if kind == "light":
        c = tuple(int(v) for v in rng.integers(190, 256, 3))
        return Image.new("RGBA", (size, size), (*c, 255))
    if kind == "colour":
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        return Image.new("RGBA", (size, size), (*c, 255))
    if kind == "gradient":
        a = rng.integers(0, 256, 3).astype(np.float32)
        b = rng.integers(0, 256, 3).astype(np.float32)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        grad = (a * (1 - t) + b * t).repeat(size, axis=1)
        if rng.random() < 0.5:
            grad = grad.transpose(1, 0, 2)
        arr = grad.astype(np.uint8)
    else:
        base = rng.integers(60, 220, 3)
        noise = rng.normal(0, 25, (size // 8, size // 8, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
    rgba = np.concatenate([arr, np.full((size, size, 1), 255, np.uint8)], axis=2)
    return Image.fromarray(rgba, "RGBA")


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST


def load_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``part``: "train" (60k) or "t10k" (10k). Images uint8 [N, 28, 28], labels uint8 [N]."""
    images = root / f"{part}-images-idx3-ubyte.gz"
    labels = root / f"{part}-labels-idx1-ubyte.gz"
    for p in (images, labels):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: apt-get install dataset-fashion-mnist")
    return load_idx(images), load_idx(labels)


def augment_fashion(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror, a shift of up to 2 pixels, brightness and contrast."""
    out = img
    if rng.random() < 0.5:
        out = out[:, ::-1]
    pad = np.pad(out, 2)
    dx, dy = (int(v) for v in rng.integers(0, 5, 2))
    out = pad[dy : dy + 28, dx : dx + 28].astype(np.float32)
    out = (out - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)
    return np.clip(out, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Speech


def espeak_data_dir() -> Path:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError("espeak-ng is needed for speech: apt-get install espeak-ng") from err
    m = re.search(r"Data at:\s*(\S+)", out.stdout)
    if not m:
        raise RuntimeError(f"cannot find espeak-ng's data directory in {out.stdout!r}")
    return Path(m.group(1))


def espeak_variants() -> list[str]:
    """Installed variant names (files under voices/!v), sorted."""
    vdir = espeak_data_dir() / "voices" / "!v"
    return sorted(p.name for p in vdir.iterdir() if p.is_file())


@dataclass(frozen=True)
class VoiceSets:
    en_train: tuple[str, ...]
    en_eval: tuple[str, ...]
    variants_train: tuple[str, ...]
    variants_eval: tuple[str, ...]


def voice_sets() -> VoiceSets:
    installed = espeak_variants()
    missing = [v for v in VARIANTS_EVAL if v not in installed]
    if missing:
        raise RuntimeError(f"espeak-ng lacks the held-out variants {missing}")
    train = tuple(v for v in installed if v not in VARIANTS_EVAL and v not in VARIANTS_UNUSED)
    return VoiceSets(EN_VOICES_TRAIN, EN_VOICES_EVAL, train, VARIANTS_EVAL)


def accent_spec(rng: np.random.Generator) -> dict:
    """A random synthetic English accent (see ACCENT_PHONEMES): the parts of an espeak-ng voice."""
    picks = [r for r in ACCENT_REPLACE if rng.random() < 0.3]
    return {
        "phonemes": str(rng.choice(ACCENT_PHONEMES)),
        "dictrules": list(ACCENT_DICTRULES[int(rng.integers(len(ACCENT_DICTRULES)))]),
        "replace": [list(r) for r in picks],
        "stress": list(ACCENT_STRESS[int(rng.integers(len(ACCENT_STRESS)))]),
        "formants": [int(rng.integers(92, 109)) for _ in range(3)],
        "shifts": [list(v) for v in ACCENT_VOWEL_SHIFTS if rng.random() < ACCENT_SHIFT_P],
        "tunes": int(rng.choice(ACCENT_TUNES)),
    }


def accent_voice_text(accent: dict) -> str:
    """The espeak-ng voice file of ``accent`` (an :func:`accent_spec`)."""
    if accent["phonemes"] not in ACCENT_PHONEMES:
        raise ValueError(f"accent phoneme table {accent['phonemes']!r} is not a training one")
    lines = ["name visualbyte-accent", "language en", f"phonemes {accent['phonemes']}"]
    if accent["dictrules"]:
        lines.append("dictrules " + " ".join(str(d) for d in accent["dictrules"]))
    lines.append("stressLength " + " ".join(str(v) for v in accent["stress"]))
    lines += [f"replace {a} {b} {c}" for a, b, c in accent["replace"]]
    lines += [f"replace 00 {a} {b}" for a, b in accent.get("shifts", [])]
    lines += [f"formant {i + 1} {f} 100 100" for i, f in enumerate(accent["formants"])]
    if accent.get("tunes"):
        n = accent["tunes"]
        lines.append(f"tunes s{n} c{n} q{n} e{n}")
    return "\n".join(lines) + "\n"


_ACCENT_DATA: Path | None = None
_ACCENT_LOCK = threading.Lock()


def _accent_voice(accent: dict) -> tuple[Path, str]:
    """An espeak-ng data directory (the installed one, linked, plus a voices/vbaccent folder)
    and the voice name of ``accent`` in it; made once per process, voice files on demand."""
    global _ACCENT_DATA
    with _ACCENT_LOCK:
        if _ACCENT_DATA is None:
            src = espeak_data_dir()
            root = Path(tempfile.mkdtemp(prefix="visualbyte-espeak-"))
            atexit.register(shutil.rmtree, root, True)
            (root / "voices" / "vbaccent").mkdir(parents=True)
            for entry in src.iterdir():
                if entry.name != "voices":
                    (root / entry.name).symlink_to(entry)
            for entry in (src / "voices").iterdir():
                (root / "voices" / entry.name).symlink_to(entry)
            _ACCENT_DATA = root
        text = accent_voice_text(accent)
        name = "a" + hashlib.sha256(text.encode()).hexdigest()[:16]
        path = _ACCENT_DATA / "voices" / "vbaccent" / name
        if not path.exists():
            path.write_text(text)
    return _ACCENT_DATA, f"vbaccent/{name}"


def espeak(
    text: str,
    voice: str,
    variant: str | None,
    speed: int,
    pitch: int,
    gap: int,
    accent: dict | None = None,
) -> np.ndarray:
    """Speech as float32 mono at 22.05 kHz; ``accent`` (an :func:`accent_spec`) replaces
    ``voice`` with that synthetic accent."""
    args = ["espeak-ng"]
    if accent is not None:
        data, voice = _accent_voice(accent)
        args.append(f"--path={data}")
    v = f"{voice}+{variant}" if variant else voice
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        args += ["-v", v, "-s", str(speed), "-p", str(pitch), "-g", str(gap)]
        args += ["-w", tmp.name, "--", text]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {' '.join(args)}: {proc.stderr.strip()}")
        x, rate = read_wav(Path(tmp.name))
    if rate != ESPEAK_RATE:
        x = resample(x, rate, ESPEAK_RATE)
    return x


def other_synth(text: str, synth: str, voice: str) -> np.ndarray:
    """Speech from another synthesizer (``OTHER_SYNTHS``) as float32 mono at 22.05 kHz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        if synth == "flite":
            args = ["flite", "-voice", voice, "-t", text, "-o", tmp.name]
            stdin = None
        elif synth == "festival":
            args = ["text2wave", "-o", tmp.name, "-eval", f"(voice_{voice})"]
            stdin = text
        else:
            raise ValueError(f"unknown synthesizer {synth!r}")
        try:
            proc = subprocess.run(args, input=stdin, capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError(
                f"{args[0]} is not installed (apt-get install {OTHER_SYNTH_PACKAGES}), or pass "
                "--audio-other 0 to build no other-synthesizer speech"
            ) from None
        if proc.returncode != 0 or not Path(tmp.name).stat().st_size:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        x, rate = read_wav(Path(tmp.name))
    if rate != ESPEAK_RATE:
        x = resample(x, rate, ESPEAK_RATE)
    return x


def _coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if colour == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=np.float32)
    f[0] = 1.0
    spec = spec / (np.sqrt(f) if colour == "pink" else f)
    out = np.fft.irfft(spec, n).astype(np.float32)
    return out / (np.std(out) + 1e-9)


def _room_ir(rng: np.random.Generator, rate: int, rt60: float) -> np.ndarray:
    n = int(rate * rt60)
    t = np.arange(n, dtype=np.float32) / rate
    tail = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60)
    ir = tail * 0.3
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir**2))


def augment_speech(x: np.ndarray, aug: dict, rate: int = ESPEAK_RATE) -> tuple[np.ndarray, int]:
    """Applies the recipe ``aug`` (see :func:`speech_aug`); returns the samples and their rate."""
    from scipy.signal import butter, fftconvolve, sosfilt

    rng = np.random.default_rng(aug["noise_seed"])
    speech_rms = float(np.sqrt(np.mean(x**2)) + 1e-9)
    if aug.get("reverb"):
        ir = _room_ir(rng, rate, aug["reverb"]["rt60"])
        wet = fftconvolve(x, ir)[: len(x) + len(ir) // 2].astype(np.float32)
        dry = np.pad(x, (0, len(wet) - len(x)))
        mix = aug["reverb"]["wet"]
        x = (1 - mix) * dry + mix * wet
    if aug.get("band"):
        lo, hi = aug["band"]
        sos = butter(4, [lo, min(hi, rate / 2 - 100)], btype="bandpass", fs=rate, output="sos")
        x = sosfilt(sos, x).astype(np.float32)
    lead = int(rate * aug["lead_ms"] / 1000)
    trail = int(rate * aug["trail_ms"] / 1000)
    x = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    x = x * np.float32(10 ** (aug["gain_db"] / 20))
    if aug.get("noise"):
        colour, snr = aug["noise"]["colour"], aug["noise"]["snr_db"]
        level = speech_rms * 10 ** (aug["gain_db"] / 20) / 10 ** (snr / 20)
        x = x + _coloured_noise(rng, len(x), colour) * np.float32(level)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    out_rate = aug["rate"]
    if out_rate != rate:
        x = resample(x, rate, out_rate)
    return x, out_rate


def speech_aug(rng: np.random.Generator, strength: float = 1.0) -> dict:
    """A random augmentation recipe. ``strength`` 0 gives clean speech (only the time shift)."""
    aug: dict = {
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
        "lead_ms": int(rng.integers(0, 500)),
        "trail_ms": int(rng.integers(0, 300)),
        "gain_db": round(float(rng.uniform(-18, 6)) * strength, 2),
        "rate": int(rng.choice(OUTPUT_RATES, p=OUTPUT_RATE_P)),
        "noise": None,
        "reverb": None,
        "band": None,
    }
    if strength <= 0:
        return aug
    if rng.random() < 0.6 * strength:
        aug["noise"] = {
            "colour": str(rng.choice(["white", "pink", "brown"])),
            "snr_db": round(float(rng.uniform(5, 35)), 1),
        }
    if rng.random() < 0.3 * strength:
        aug["reverb"] = {
            "rt60": round(float(rng.uniform(0.15, 0.6)), 3),
            "wet": round(float(rng.uniform(0.15, 0.5)), 3),
        }
    if rng.random() < 0.2 * strength:
        aug["band"] = [int(rng.integers(80, 400)), int(rng.integers(3400, 7500))]
    return aug


# ------------------------------------------------------------------------------------------------
# Jobs: one dict per sample, fully describing it (the cache key is their digest).


def _phrase(c: ClassSpec, lang: str, rng: np.random.Generator, bare_p: float = 0.3) -> str:
    names = names_ko(c) if lang == "ko" else names_en(c)
    name = names[0] if len(names) == 1 or rng.random() < 0.8 else str(rng.choice(names[1:]))
    return _carrier_phrase(name, lang, c.number, rng, bare_p)


def _carrier_phrase(
    name: str, lang: str, number: str, rng: np.random.Generator, bare_p: float
) -> str:
    """``name`` bare (with probability ``bare_p``) or in a random carrier phrase of its language."""
    if rng.random() < bare_p:
        return name
    if lang == "ko":
        return ko_phrase(str(rng.choice(KO_CARRIERS[1:])), name)
    return en_phrase(str(rng.choice(en_carriers(number)[1:])), name, number)


def _hangul_fonts(fonts: tuple[str, ...] | list[str]) -> list[str]:
    """The fonts of ``fonts`` that can draw Korean."""
    return [f for f in fonts if f in HANGUL_FONTS or f == EMBEDDED_FONT]


def _lang(c: ClassSpec, i: int, n: int, ko_fraction: float) -> str:
    """Korean for about ``ko_fraction`` of a class's samples (spread evenly), if it has ``ko``."""
    if not c.ko:
        return "en"
    return "ko" if int((i + 1) * ko_fraction) > int(i * ko_fraction) else "en"


def audio_jobs(cfg: Config, classes: list[ClassSpec], split: str, voices: VoiceSets) -> list[dict]:
    n = cfg.counts.audio_train if split == "train" else cfg.counts.audio_eval
    en_voices = voices.en_train if split == "train" else voices.en_eval
    variants = voices.variants_train if split == "train" else voices.variants_eval
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "audio", split, c.key, i)
            lang = _lang(c, i, n, cfg.counts.ko_fraction)
            voice = KO_VOICE if lang == "ko" else str(rng.choice(en_voices))
            if split == "train":
                speed, pitch = int(rng.integers(110, 211)), int(rng.integers(15, 86))
                strength = 1.0
            else:
                speed, pitch = int(rng.integers(130, 191)), int(rng.integers(30, 71))
                strength = 0.0 if i % 2 == 0 else 0.7  # half clean, half mildly augmented
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": lang,
                    "text": _phrase(c, lang, rng),
                    "voice": voice,
                    "variant": str(rng.choice(variants)),
                    "speed": speed,
                    "pitch": pitch,
                    "gap": int(rng.integers(0, 5)),
                    "aug": speech_aug(rng, strength),
                }
            )
    return jobs


def _training_delivery(rng: np.random.Generator, voices: VoiceSets) -> dict:
    """How a training question is spoken, after its words and voice: a training variant, speed,
    pitch, word gap and full augmentation (drawn from ``rng`` in that order)."""
    return {
        "variant": str(rng.choice(voices.variants_train)),
        "speed": int(rng.integers(110, 211)),
        "pitch": int(rng.integers(15, 86)),
        "gap": int(rng.integers(0, 5)),
        "aug": speech_aug(rng, 1.0),
    }


def accent_jobs(cfg: Config, classes: list[ClassSpec], voices: VoiceSets) -> list[dict]:
    """Extra English training questions per class spoken in synthetic accents (:func:`accent_spec`),
    with training variants, speeds, carriers and augmentation (``Counts.audio_accent``)."""
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(cfg.counts.audio_accent):
            rng = rng_for(cfg.seed, "audio-accent", c.key, i)
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "voice": "accent",
                    "accent": accent_spec(rng),
                    **_training_delivery(rng, voices),
                }
            )
    return jobs


def engine_jobs(cfg: Config, classes: list[ClassSpec]) -> list[dict]:
    """Extra English training questions per class spoken by the other engines
    (``Counts.audio_engines``): the engines take turns, each question draws a voice of its engine
    (a Kokoro voice may be a blend of two speakers), a tempo, a carrier and augmentation."""
    engines = list(ENGINES)
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(cfg.counts.audio_engines):
            rng = rng_for(cfg.seed, "audio-engine", c.key, i)
            engine = engines[(cid + i) % len(engines)]
            voice = str(rng.choice(ENGINES[engine]))
            if engine == "kokoro" and rng.random() < 0.6:
                other = str(rng.choice([v for v in ENGINES[engine] if v != voice]))
                voice = f"{voice}+{other}@{rng.uniform(0.2, 0.8):.2f}"
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "engine": engine,
                    "voice": f"{engine}:{voice}",
                    "tempo": round(float(rng.uniform(0.8, 1.25)), 3),
                    "aug": speech_aug(rng, 1.0),
                }
            )
    return jobs


def _case(text: str, rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.5:
        return text
    if r < 0.8:
        return text[:1].upper() + text[1:]
    if r < 0.9:  # Every Word Capitalised (not str.title(): "Where'S")
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    return text.upper()


def _typed(c: ClassSpec, lang: str, rng: np.random.Generator) -> str:
    """A typed question: the name or a carrier phrase, English in a random case."""
    text = _phrase(c, lang, rng, bare_p=0.4)
    return _case(text, rng) if lang == "en" else text


def text_jobs(cfg: Config, classes: list[ClassSpec], split: str) -> list[dict]:
    n = cfg.counts.text_train if split == "train" else cfg.counts.text_eval
    fonts = TRAIN_FONTS if split == "train" else EVAL_FONTS
    ko_fonts = _hangul_fonts(fonts)
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "text", split, c.key, i)
            lang = _lang(c, i, n, cfg.counts.ko_fraction)
            text = _typed(c, lang, rng)
            if text != c.en and rng.random() < 0.3 and " " in text and not text.endswith("?"):
                text += "?"
            font = str(rng.choice(ko_fonts if lang == "ko" else fonts))
            jitter = None
            if split == "train" and rng.random() < 0.3:
                jitter = {
                    "scale": round(float(rng.uniform(0.6, 0.95)), 3),
                    "x": round(float(rng.random()), 3),
                    "y": round(float(rng.random()), 3),
                }
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": lang,
                    "text": text,
                    "font": font,
                    "jitter": jitter,
                }
            )
    return jobs


def other_text_jobs(cfg: Config, classes: list[ClassSpec]) -> list[dict]:
    """Typed questions in fonts never used in training (``OTHER_FONTS``), for evaluation only:
    phrases, languages and case as the held-out font's split, fonts taken in turn (Korean only
    in the ones with Hangul)."""
    n = cfg.counts.text_other
    hangul = [f for f in OTHER_FONTS if f in HANGUL_FONTS]
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "text-other", c.key, i)
            lang = _lang(c, i, n, cfg.counts.ko_fraction)
            text = _typed(c, lang, rng)
            fonts = hangul if lang == "ko" else OTHER_FONTS
            font = fonts[(cid + i) % len(fonts)]
            jobs.append(
                {"y": cid, "class": c.key, "lang": lang, "text": text, "font": font, "jitter": None}
            )
    return jobs


def image_jobs(
    cfg: Config,
    classes: list[ClassSpec],
    split: str,
    emoji: EmojiIndex | None,
    fashion_rows: dict | None = None,
) -> list[dict]:
    """Pictures of a split; ``fashion_rows[(split, key)]``: Fashion-MNIST rows (fashion_pick)."""
    cnt = cfg.counts
    jobs = []
    for cid, c in enumerate(classes):
        rows = []
        if c.group == "fashion":
            part = "train" if split == "train" else "t10k"
            rows = [
                {
                    "source": "fashion",
                    "part": part,
                    "index": index,
                    "aug": split == "train" and i % 2 == 1,
                }
                for i, index in enumerate(fashion_rows[(split, c.key)])
            ]
        else:
            assert emoji is not None
            styles = cfg.train_styles if split == "train" else cfg.eval_styles
            base = []
            for short in c.emoji:
                for tone in emoji.tones(short):
                    for style in styles:
                        if emoji.picture(style, short, tone) is not None:
                            base.append(
                                {
                                    "source": "emoji",
                                    "style": style,
                                    "emoji": short,
                                    "code": emoji.code(short, tone),
                                    "tone": tone,
                                }
                            )
            if not base:
                raise RuntimeError(f"class {c.key}: no {split} picture in styles {styles}")
            augs = cnt.image_augs if split == "train" else 0
            limit = cnt.image_train_max if split == "train" else cnt.image_eval_max
            rng = rng_for(cfg.seed, "image-pick", split, c.key)
            # Plain pictures first (default tone before skin tones), then augmented copies.
            plain = [dict(b, aug=None) for b in base]
            plain.sort(key=lambda b: b["tone"] is not None)
            if len(plain) > limit:
                keep_default = [b for b in plain if b["tone"] is None]
                others = [b for b in plain if b["tone"] is not None]
                order = list(rng.permutation(len(others)))
                plain = (keep_default + [others[j] for j in order])[:limit]
            extra = []
            for a in range(augs):
                for b in base:
                    extra.append(dict(b, aug=a))
            order = list(rng.permutation(len(extra)))
            rows = plain + [extra[j] for j in order][: max(limit - len(plain), 0)]
        for r in rows:
            jobs.append({"y": cid, "class": c.key, **r})
    return jobs


def fashion_pick(cfg: Config, classes: list[ClassSpec], labels_train, labels_test) -> dict:
    """Which Fashion-MNIST rows each fashion class uses, per split (seeded, disjoint by file)."""
    picks = {}
    for c in classes:
        if c.group != "fashion":
            continue
        for split, labels, k in (
            ("train", labels_train, cfg.counts.fashion_train),
            ("eval", labels_test, cfg.counts.fashion_eval),
        ):
            idx = np.flatnonzero(labels == c.fashion_label)
            rng = rng_for(cfg.seed, "fashion", split, c.key)
            picks[(split, c.key)] = [int(v) for v in rng.choice(idx, size=k, replace=False)]
    return picks


def other_audio_jobs(cfg: Config, classes: list[ClassSpec]) -> list[dict]:
    """English questions from the other synthesizers, for evaluation only: the same phrases and
    mild augmentation as the held-out espeak-ng split, voices taken in turn."""
    n = cfg.counts.audio_other
    jobs = []
    for cid, c in enumerate(classes):
        for i in range(n):
            rng = rng_for(cfg.seed, "audio-other", c.key, i)
            synth, voice = OTHER_SYNTHS[(cid + i) % len(OTHER_SYNTHS)]
            jobs.append(
                {
                    "y": cid,
                    "class": c.key,
                    "lang": "en",
                    "text": _phrase(c, "en", rng),
                    "synth": synth,
                    "voice": f"{synth}:{voice}",
                    "aug": speech_aug(rng, 0.0 if i % 2 == 0 else 0.7),
                }
            )
    return jobs


def unknown_jobs(cfg: Config, voices: VoiceSets) -> tuple[list[dict], list[dict]]:
    """Questions about words that are not classes (UNKNOWN_EN/KO), typed and spoken the way the
    training questions are (training fonts, voices, variants, speeds, carriers and augmentation),
    for the training loss that teaches the model to be unsure of them."""
    words = [("en", w) for w in UNKNOWN_EN[: cfg.counts.unknown_en]]
    words += [("ko", w) for w in UNKNOWN_KO[: cfg.counts.unknown_ko]]
    ko_fonts = _hangul_fonts(TRAIN_FONTS)
    text, audio = [], []
    for lang, w in words:
        for i in range(cfg.counts.unknown_text):
            rng = rng_for(cfg.seed, "unknown-text", lang, w, i)
            t = _carrier_phrase(w, lang, "one", rng, 0.4)
            text.append(
                {
                    "y": -1,
                    "lang": lang,
                    "word": w,
                    "text": _case(t, rng) if lang == "en" else t,
                    "font": str(rng.choice(ko_fonts if lang == "ko" else TRAIN_FONTS)),
                    "jitter": None,
                }
            )
        for i in range(cfg.counts.unknown_audio):
            rng = rng_for(cfg.seed, "unknown-audio", lang, w, i)
            audio.append(
                {
                    "y": -1,
                    "lang": lang,
                    "word": w,
                    "text": _carrier_phrase(w, lang, "one", rng, 0.3),
                    "voice": KO_VOICE if lang == "ko" else str(rng.choice(voices.en_train)),
                    **_training_delivery(rng, voices),
                }
            )
    return text, audio


def negative_jobs(cfg: Config, voices: VoiceSets) -> tuple[list[dict], list[dict]]:
    words = [("en", w) for w in NEGATIVE_EN[: cfg.counts.neg_en]]
    words += [("ko", w) for w in NEGATIVE_KO[: cfg.counts.neg_ko]]
    text, audio = [], []
    for lang, w in words:
        phrases = [w, f"where is the {w}" if lang == "en" else f"{w} 어디 있어"]
        for j, p in enumerate(phrases):
            rng = rng_for(cfg.seed, "neg", lang, w, j)
            t = _case(p, rng) if lang == "en" else p
            text.append(
                {"y": -1, "lang": lang, "word": w, "text": t, "font": EVAL_FONTS[0], "jitter": None}
            )
            for k in range(2):
                voice = KO_VOICE if lang == "ko" else str(rng.choice(voices.en_eval))
                audio.append(
                    {
                        "y": -1,
                        "lang": lang,
                        "word": w,
                        "text": p,
                        "voice": voice,
                        "variant": str(rng.choice(voices.variants_eval)),
                        "speed": int(rng.integers(130, 191)),
                        "pitch": int(rng.integers(30, 71)),
                        "gap": 0,
                        "aug": speech_aug(rng, 0.0 if k == 0 else 0.7),
                    }
                )
    return text, audio


# ------------------------------------------------------------------------------------------------
# Turning jobs into renderer inputs


class Builder:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.cache = cfg.cache_dir()
        self.work = self.cache / "work"
        self.binary = render.find_binary()
        self.renderer = render.render_config(cfg.size, self.binary, cfg.renderer_model)
        if int(self.renderer.get("size", cfg.size)) != cfg.size:
            raise render.RenderFailed(
                f"--renderer-from {cfg.renderer_model} renders {self.renderer['size']} px, "
                f"not --size {cfg.size}: pass --size {self.renderer['size']}"
            )
        self.classes = select_classes(cfg.tiny, cfg.classes)
        check_classes(self.classes)
        self._emoji: EmojiIndex | None = None
        self._fashion: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.timings: dict[str, float] = {}

    # -- sources
    @property
    def emoji(self) -> EmojiIndex:
        if self._emoji is None:
            self._emoji = EmojiIndex(self.cfg.downloads, self.cache / "emoji-raster")
        return self._emoji

    def fashion(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part not in self._fashion:
            self._fashion[part] = load_fashion(self.cfg.fashion, part)
        return self._fashion[part]

    def font_path(self, name: str) -> str | None:
        if name == EMBEDDED_FONT:
            return None
        path = self.cfg.fonts.get(name)
        if not path or not Path(path).exists():
            raise FileNotFoundError(
                f"font {name} not found at {path}: apt-get install {FONT_PACKAGES}"
            )
        return path

    # -- caching
    def cached(self, name: str, jobs: list[dict], make_lines, post=None) -> np.ndarray:
        """Renders ``jobs`` (cached by their digest, the renderer settings and DATA_VERSION)."""
        key = digest(
            {"v": DATA_VERSION, "renderer": self.renderer, "size": self.cfg.size, "jobs": jobs}
        )
        path = self.cache / "rendered" / f"{name}-{key[:20]}.npy"
        if path.exists():
            log(f"{name}: {len(jobs)} rows from cache {path.name}")
            return np.load(path)
        t0 = time.time()
        workdir = self.work / name
        workdir.mkdir(parents=True, exist_ok=True)
        lines = make_lines(jobs, workdir)
        t1 = time.time()
        log(f"{name}: rendering {len(lines)} items with {self.binary.name} render batch")
        arr = render.render_batch(
            lines, self.cfg.size, self.binary, workdir=self.work, model=self.cfg.renderer_model
        )
        if post is not None:
            arr = post(jobs, arr)
        t2 = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
        if not self.cfg.keep_work:
            shutil.rmtree(workdir, ignore_errors=True)
        self.timings[f"{name}.prepare_s"] = round(t1 - t0, 1)
        self.timings[f"{name}.render_s"] = round(t2 - t1, 1)
        log(f"{name}: prepared in {t1 - t0:.1f}s, rendered in {t2 - t1:.1f}s")
        return arr

    # -- speech
    def speech_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        def one(job: dict) -> dict:
            path = workdir / f"{digest(job)[:24]}.wav"
            if not path.exists():
                self.synth(job, path)
            return {"kind": "audio", "path": str(path)}

        with ThreadPoolExecutor(max_workers=max(self.cfg.workers, 1)) as pool:
            it = pool.map(one, jobs)
            return list(_progress(it, len(jobs), f"speech {workdir.name}"))

    def synth(self, job: dict, path: Path) -> None:
        if "synth" in job:
            x = other_synth(job["text"], job["synth"], job["voice"].split(":", 1)[1])
        elif "engine" in job:
            voice = job["voice"].split(":", 1)[1]
            x = synthesize(job["text"], job["engine"], voice, job["tempo"], ESPEAK_RATE)
        else:
            x = espeak(
                job["text"],
                job["voice"],
                job["variant"],
                job["speed"],
                job["pitch"],
                job["gap"],
                job.get("accent"),
            )
        if x.size == 0 or not np.any(x):
            raise RuntimeError(f"{job.get('synth', 'espeak-ng')} produced silence for {job}")
        y, rate = augment_speech(x, job["aug"])
        write_wav(path, y, rate)

    # -- text
    def text_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        for job in jobs:
            line = {"kind": "text", "text": job["text"]}
            font = self.font_path(job["font"])
            if font:
                line["font"] = font
            lines.append(line)
        return lines

    @staticmethod
    def text_post(jobs: list[dict], arr: np.ndarray) -> np.ndarray:
        """Shrinks and moves the rendered text of jobs with a ``jitter`` (white fill)."""
        out = arr.copy()
        s = arr.shape[1]
        for i, job in enumerate(jobs):
            j = job.get("jitter")
            if not j:
                continue
            side = max(int(round(s * j["scale"])), 8)
            small = np.asarray(Image.fromarray(arr[i]).resize((side, side), Image.BILINEAR))
            x = int(round((s - side) * j["x"]))
            y = int(round((s - side) * j["y"]))
            canvas = np.full_like(arr[i], 255)
            canvas[y : y + side, x : x + side] = small
            out[i] = canvas
        return out

    # -- pictures
    def image_lines(self, jobs: list[dict], workdir: Path) -> list[dict]:
        lines = []
        for job in _progress(jobs, len(jobs), f"pictures {workdir.name}"):
            if job["source"] == "fashion":
                images, _ = self.fashion(job["part"])
                img = images[job["index"]]
                if job["aug"]:
                    img = augment_fashion(img, rng_for(self.cfg.seed, "fashion-aug", job["index"]))
                path = workdir / f"fashion-{job['part']}-{job['index']}-{int(job['aug'])}.png"
                Image.fromarray(img, "L").save(path)
            else:
                tone = job["code"].split("-")[-1] if job["tone"] else None
                src = self.emoji.picture(job["style"], job["emoji"], tone)
                if job["aug"] is None:
                    path = src
                else:
                    rng = rng_for(self.cfg.seed, "emoji-aug", job["style"], job["code"], job["aug"])
                    path = workdir / f"{job['style']}-{job['code']}-{job['aug']}.png"
                    augment_picture(src, rng).save(path)
            lines.append({"kind": "image", "path": str(path)})
        return lines

    # -- the whole dataset
    def build(self) -> dict:
        cfg = self.cfg
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        log(f"{len(self.classes)} classes, size {cfg.size}, seed {cfg.seed}, cache {self.cache}")
        voices = voice_sets()
        fonts_needed = set(TRAIN_FONTS) | set(EVAL_FONTS)
        if cfg.counts.text_other > 0:
            fonts_needed |= set(OTHER_FONTS)
        for f in fonts_needed:
            self.font_path(f)
        embedded = str(self.renderer.get("text", {}).get("font", ""))
        if any(_slug(e) in _slug(embedded) for e in (*EVAL_FONTS, *OTHER_FONTS) if embedded):
            raise RuntimeError(f"the runtime's embedded font {embedded!r} is the held-out font")

        picks = {}
        if any(c.group == "fashion" for c in self.classes):
            picks = fashion_pick(
                cfg, self.classes, self.fashion("train")[1], self.fashion("t10k")[1]
            )
        counts: dict[str, int] = {}
        for split in ("train", "eval"):
            # pictures
            jobs = image_jobs(cfg, self.classes, split, self._emoji_if_needed(), picks)
            self._save(
                out, split, "image", jobs, self.cached(f"{split}_image", jobs, self.image_lines)
            )
            # text
            jobs = text_jobs(cfg, self.classes, split)
            arr = self.cached(f"{split}_text", jobs, self.text_lines, self.text_post)
            self._save(out, split, "text", jobs, arr)
            # speech
            jobs = audio_jobs(cfg, self.classes, split, voices)
            arr = self.cached(f"{split}_audio", jobs, self.speech_lines)
            if split == "train" and cfg.counts.audio_accent > 0:
                # a separate cached array, so that adding accents re-synthesizes nothing else
                more = accent_jobs(cfg, self.classes, voices)
                arr = np.concatenate(
                    [arr, self.cached("train_audio_accent", more, self.speech_lines)]
                )
                jobs = jobs + more
            if split == "train" and cfg.counts.audio_engines > 0:
                more = engine_jobs(cfg, self.classes)
                arr = np.concatenate(
                    [arr, self.cached("train_audio_engines", more, self.speech_lines)]
                )
                jobs = jobs + more
            self._save(out, split, "audio", jobs, arr)
            for m in ("image", "text", "audio"):
                counts[f"{split}_{m}"] = int(np.load(out / f"{split}_{m}_y.npy").shape[0])

        if cfg.counts.text_other > 0:
            jobs = other_text_jobs(cfg, self.classes)
            arr = self.cached("other_text", jobs, self.text_lines)
            self._save(out, "other", "text", jobs, arr)
            counts["other_text"] = len(jobs)
        if cfg.counts.audio_other > 0:
            jobs = other_audio_jobs(cfg, self.classes)
            arr = self.cached("other_audio", jobs, self.speech_lines)
            self._save(out, "other", "audio", jobs, arr)
            counts["other_audio"] = len(jobs)

        if cfg.counts.photo_views > 0:
            counts.update(self.photo_splits(out))

        neg_text, neg_audio = negative_jobs(cfg, voices)
        arr = self.cached("neg_text", neg_text, self.text_lines)
        self._save_neg(out, "neg_text", neg_text, arr)
        arr = self.cached("neg_audio", neg_audio, self.speech_lines)
        self._save_neg(out, "neg_audio", neg_audio, arr)
        counts["neg_text"], counts["neg_audio"] = len(neg_text), len(neg_audio)

        unk_text, unk_audio = unknown_jobs(cfg, voices)
        if unk_text:
            arr = self.cached("unknown_text", unk_text, self.text_lines)
            self._save_neg(out, "unknown_text", unk_text, arr)
        if unk_audio:
            arr = self.cached("unknown_audio", unk_audio, self.speech_lines)
            self._save_neg(out, "unknown_audio", unk_audio, arr)
        counts["unknown_text"], counts["unknown_audio"] = len(unk_text), len(unk_audio)

        self.write_samples(out / "samples", voices)
        write_classes_csv(self.classes, out / "classes.csv")
        meta = self.meta(voices, counts)
        meta["timings_s"] = dict(self.timings, total=round(time.time() - t_start, 1))
        (out / "meta.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        log(f"done in {time.time() - t_start:.0f}s: {counts}")
        return meta

    def photo_splits(self, out: Path) -> dict[str, int]:
        """Photographs and clip art (``train_photo`` and the held-out ``photo_image``,
        ``clipart_image``), recorded human speech (``human_audio``, evaluation only) and each
        class name typed once (``label_text``, what a labelled memory is also found by)."""
        sources = PhotoSources()
        stage = PhotoStage(self.cfg.seed, sources)
        pictures = sources.gcompris(self.classes) + sources.openclipart(self.classes)
        counts = {}
        for name, jobs in photo_jobs(pictures, self.classes, self.cfg.counts.photo_views).items():
            split, modality = name.split("_", 1)
            self._save(out, split, modality, jobs, self.cached(name, jobs, stage.picture_lines))
            counts[name] = len(jobs)
        jobs = human_speech_jobs(self.classes)
        self._save(out, "human", "audio", jobs, self.cached("human_audio", jobs, stage.human_lines))
        counts["human_audio"] = len(jobs)
        jobs = [dict(j, font=EMBEDDED_FONT) for j in label_jobs(self.classes)]
        self._save(out, "label", "text", jobs, self.cached("label_text", jobs, self.text_lines))
        return counts

    def _emoji_if_needed(self) -> EmojiIndex | None:
        return self.emoji if any(c.group != "fashion" for c in self.classes) else None

    @staticmethod
    def _save(out: Path, split: str, modality: str, jobs: list[dict], arr: np.ndarray) -> None:
        y = np.array([j["y"] for j in jobs], np.int64)
        assert arr.shape[0] == y.shape[0]
        _save_array(out / f"{split}_{modality}.npy", arr)
        _save_array(out / f"{split}_{modality}_y.npy", y)
        _write_rows(out / f"{split}_{modality}_rows.jsonl", jobs)

    @staticmethod
    def _save_neg(out: Path, name: str, jobs: list[dict], arr: np.ndarray) -> None:
        _save_array(out / f"{name}.npy", arr)
        _write_rows(out / f"{name}_rows.jsonl", jobs)

    def write_samples(self, folder: Path, voices: VoiceSets) -> None:
        """One WAV per class, "where is the <name>" (or the Korean question) in a held-out voice."""
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for cid, c in enumerate(self.classes):
            rng = rng_for(self.cfg.seed, "sample", c.key)
            voice = voices.en_eval[cid % len(voices.en_eval)]
            variant = voices.variants_eval[cid % len(voices.variants_eval)]
            template = {
                "one": "where is the {n}",
                "plural": "where are the {n}",
                "mass": "where is the {n}",
            }[c.number]
            text = template.format(n=c.en)
            path = folder / f"{cid:03d}-{c.key}.wav"
            if not path.exists():
                x = espeak(text, voice, variant, int(rng.integers(150, 180)), 50, 0)
                y, rate = augment_speech(
                    x,
                    {
                        "noise_seed": 0,
                        "lead_ms": 200,
                        "trail_ms": 200,
                        "gain_db": -3.0,
                        "rate": 16000,
                    },
                )
                write_wav(path, y, rate)
            rows.append(
                {
                    "file": path.name,
                    "id": cid,
                    "key": c.key,
                    "text": text,
                    "voice": f"{voice}+{variant}",
                }
            )
        _write_rows(folder / "index.jsonl", rows)

    def meta(self, voices: VoiceSets, counts: dict) -> dict:
        cfg = self.cfg
        cnt = cfg.counts
        return {
            "seed": cfg.seed,
            "size": cfg.size,
            "renderer": self.renderer,
            "classes": [
                {"id": i, "en": c.en, "ko": c.ko, "group": c.group}
                for i, c in enumerate(self.classes)
            ],
            "splits": {
                "train": {
                    "image": {
                        "emoji_styles": list(cfg.train_styles),
                        "emoji_per_class": "every style and skin tone plain, plus "
                        f"{cnt.image_augs} augmented copies each, at most "
                        f"{cnt.image_train_max} per class",
                        "fashion": f"{cnt.fashion_train} per class from train-images-idx3 "
                        "(every second one augmented)",
                    },
                    "text": {
                        "fonts": list(TRAIN_FONTS),
                        "korean_fonts": ["NanumSquareR", EMBEDDED_FONT],
                        "per_class": cnt.text_train,
                        "jitter": "30% shrunk to 60-95% and moved, white fill",
                    },
                    "audio": {
                        "en_voices": list(voices.en_train),
                        "ko_voice": KO_VOICE,
                        "variants": list(voices.variants_train),
                        "per_class": cnt.audio_train,
                        "accent_per_class": cnt.audio_accent,
                        "engines_per_class": cnt.audio_engines,
                        "engines": {e: list(v) for e, v in ENGINES.items()}
                        if cnt.audio_engines
                        else {},
                        "accents": "synthetic: training accents' phoneme tables "
                        f"{list(ACCENT_PHONEMES)}, spelling rules, replacements and stress "
                        "recombined, formants 1-3 at 92-108% (unless the variant sets its own), "
                        f"each of {len(ACCENT_VOWEL_SHIFTS)} vowel shifts at {ACCENT_SHIFT_P:.0%}, "
                        f"tunes {ACCENT_TUNES[0]}-{ACCENT_TUNES[-1]}",
                        "speed_wpm": [110, 210],
                        "pitch": [15, 85],
                        "augment": "noise 60% (white/pink/brown, SNR 5-35 dB), reverb 30% "
                        "(RT60 0.15-0.6 s), band limit 20%, gain -18..+6 dB, lead 0-500 ms, "
                        "trail 0-300 ms, rate 16/22.05/44.1/48 kHz",
                    },
                },
                "eval": {
                    "image": {
                        "emoji_styles": list(cfg.eval_styles),
                        "emoji_per_class": f"plain, at most {cnt.image_eval_max}",
                        "fashion": f"{cnt.fashion_eval} per class from t10k-images-idx3",
                    },
                    "text": {"fonts": list(EVAL_FONTS), "per_class": cnt.text_eval},
                    "audio": {
                        "en_voices": list(voices.en_eval),
                        "ko_voice": KO_VOICE,
                        "variants": list(voices.variants_eval),
                        "per_class": cnt.audio_eval,
                        "speed_wpm": [130, 190],
                        "pitch": [30, 70],
                        "augment": "even rows clean, odd rows mild (strength 0.7)",
                    },
                },
                "other_fonts": {
                    "fonts": list(OTHER_FONTS),
                    "korean_fonts": [f for f in OTHER_FONTS if f in HANGUL_FONTS],
                    "per_class": cnt.text_other,
                    "use": "evaluation only (other_text.npy)",
                },
                "other_speech": {
                    "synthesizers": [f"{a}:{b}" for a, b in OTHER_SYNTHS],
                    "per_class": cnt.audio_other,
                    "language": "en",
                    "augment": "even rows clean, odd rows mild (strength 0.7)",
                    "use": "evaluation only (other_audio.npy)",
                },
                "negatives": {
                    "en": list(NEGATIVE_EN[: cnt.neg_en]),
                    "ko": list(NEGATIVE_KO[: cnt.neg_ko]),
                    "forms": "bare word and 'where is the <word>' / '<word> 어디 있어'",
                    "text_font": EVAL_FONTS[0],
                    "audio": "2 renderings each, eval voices and variants",
                },
                "unknown": {
                    "en": len(UNKNOWN_EN[: cnt.unknown_en]),
                    "ko": len(UNKNOWN_KO[: cnt.unknown_ko]),
                    "per_word": {"text": cnt.unknown_text, "audio": cnt.unknown_audio},
                    "forms": "bare word or a training carrier phrase",
                    "fonts_voices": "the training fonts, voices, variants and augmentation",
                    "use": "training only (unknown_*.npy, train --unknown-weight)",
                },
                "korean_fraction": cnt.ko_fraction,
                "photos": {
                    "train": "GCompris photographs and word drawings, openclipart clip art (up to "
                    f"12 a class), each plain plus {cnt.photo_views - 1} photographic views "
                    "(photos.photo_view: cut-outs on photo backgrounds, crops, perspective, colour "
                    "cast, blur, noise, JPEG)",
                    "held_out": "photo_image.npy: GCompris' 'explore animals' photographs and "
                    "every fourth other photo of a class; clipart_image.npy: every fourth clip-art "
                    "file of a class (plain, evaluation only)",
                    "human_speech": "human_audio.npy: KTuberling's English word recordings that "
                    "name a class (evaluation only)",
                    "labels": "label_text.npy: each class name typed once in the embedded font",
                }
                if cnt.photo_views
                else {},
            },
            "counts": counts,
            "data_version": DATA_VERSION,
            "renderer_binary": {"path": str(self.binary), "sha256": _file_sha256(self.binary)},
            "tiny": cfg.tiny,
            "counts_per_class": asdict(cnt),
            "renderer_from": _model_id_and_digest(cfg.renderer_model)
            if cfg.renderer_model
            else None,
        }


def _model_id_and_digest(path: Path) -> dict:
    """The model whose renderer settings a dataset was built with (``--renderer-from``)."""
    from .onnx_init import onnx_model_info

    try:
        info = onnx_model_info(Path(path))
    except Exception:  # the renderer took its settings from it; only its id is unknown here
        return {"model_id": None, "sha256": _file_sha256(Path(path))}
    return {"model_id": info["model_id"], "sha256": info["sha256"]}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save_array(path: Path, arr: np.ndarray) -> None:
    """``np.save`` to a new file that then replaces ``path``: a training run that has the old
    array memory-mapped keeps reading it (rewriting the file in place truncated it under the
    reader, which died of SIGBUS)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    tmp.replace(path)


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------
# Command line


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


if __name__ == "__main__":
    sys.exit(main())
