"""Questions about words that are not classes, typed and spoken: the held-out negatives
(``neg_*``) and the non-class training words (``unknown_*``)."""

from __future__ import annotations

from ..classes import NEGATIVE_EN, NEGATIVE_KO, UNKNOWN_EN, UNKNOWN_KO
from .config import Config, rng_for
from .phrases import _carrier_phrase
from .speech import KO_VOICE, VoiceSets, _training_delivery, speech_aug
from .text import EVAL_FONTS, TRAIN_FONTS, _case, _hangul_fonts


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
