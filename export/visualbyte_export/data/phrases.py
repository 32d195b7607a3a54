"""What a question says: a class name bare or in a carrier phrase, English or Korean. Shared by
the text and speech jobs, so that typed and spoken questions are worded alike."""

from __future__ import annotations

import numpy as np

from ..classes import (
    KO_CARRIERS,
    ClassSpec,
    en_carriers,
    en_phrase,
    ko_phrase,
    names_en,
    names_ko,
)


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


def _lang(c: ClassSpec, i: int, n: int, ko_fraction: float) -> str:
    """Korean for about ``ko_fraction`` of a class's samples (spread evenly), if it has ``ko``."""
    if not c.ko:
        return "en"
    return "ko" if int((i + 1) * ko_fraction) > int(i * ko_fraction) else "en"
