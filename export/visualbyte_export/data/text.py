"""Typed questions: the fonts of each split and the text jobs (training, held-out font, other
fonts)."""

from __future__ import annotations

import numpy as np

from ..classes import ClassSpec
from .config import Config, rng_for
from .phrases import _lang, _phrase

# Sets of the fonts named in config.FONT_FILES (that table is there because it is Config's default).
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


def _hangul_fonts(fonts: tuple[str, ...] | list[str]) -> list[str]:
    """The fonts of ``fonts`` that can draw Korean."""
    return [f for f in fonts if f in HANGUL_FONTS or f == EMBEDDED_FONT]


# ------------------------------------------------------------------------------------------------
# Jobs: one dict per sample, fully describing it (the cache key is their digest).


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
