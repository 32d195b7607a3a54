"""Recorded human words in languages other than English, for training: every English
recording is evaluation only (``photos.human_speech_jobs``), but a person saying "Tiger",
"tigre" or "Kamel" is a real voice and microphone, which no synthesizer is.

KTuberling names each recording by its English word in every language folder; Tux Paint names a
stamp's spoken description by the stamp and the language (``tiger_desc_fr.ogg``), and the stamp
names its class (``photos.stamp_class``).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np

from ..photos import (
    KTUBERLING_SOUNDS,
    PhotoSourceMissing,
    _matches,
    _names,
    ktuberling_word,
    stamp_class,
)
from ..speech_mix import RECORDED
from ..wav import read_wav, write_wav
from .speech import ESPEAK_RATE, augment_speech, speech_aug

# A Tux Paint stamp's description spoken in another language: ``tiger_desc_fr.ogg``.
STAMP_DESC_LANG = re.compile(r"^(?P<stem>.+)_desc_(?P<lang>[a-z]{2,3}(?:_[A-Z]{2})?)\.ogg$")


def recorded_speech_jobs(
    classes,
    views: int,
    seed: int,
    sounds: Path = KTUBERLING_SOUNDS,
    stamps: Path | None = None,
) -> list[dict]:
    """Recorded words in languages other than English that name a class, for training (English
    recordings are evaluation only): KTuberling's other languages (each file is named by the
    English word: ``de/egypt_camel.ogg``) and, given Tux Paint's ``stamps``, the stamps'
    descriptions spoken in other languages (``tiger_desc_fr.ogg``) for stamps of a class. Each
    recording gives ``views`` rows with their own augmentation; the same sound file under two
    language folders counts once. Rows carry ``engine`` "recorded"."""
    if not sounds.is_dir():
        raise PhotoSourceMissing(f"{sounds} not found: apt-get install ktuberling-data")
    found = []  # (class index, file, language, speaker)
    for folder in sorted(d for d in sounds.iterdir() if d.is_dir() and d.name != "en"):
        for ogg in sorted(folder.glob("*.ogg")):
            word = ktuberling_word(ogg)
            for i, c in enumerate(classes):
                if _matches(word, _names(c), exact=True):
                    found.append((i, ogg, folder.name, "ktuberling"))
                    break
    if stamps is not None:
        if not stamps.is_dir():
            raise PhotoSourceMissing(f"{stamps} not found: apt-get install tuxpaint-stamps-default")
        index = {c.key: i for i, c in enumerate(classes)}
        for ogg in sorted(stamps.rglob("*_desc_*.ogg")):
            m = STAMP_DESC_LANG.match(ogg.name)
            if not m or m["lang"].startswith("en"):
                continue
            c = stamp_class(ogg.with_name(m["stem"] + ".png"), classes)
            if c is not None:
                found.append((index[c.key], ogg, m["lang"], "tuxpaint"))
    jobs, seen = [], set()
    for y, ogg, lang, speaker in found:
        sound = hashlib.sha256(ogg.read_bytes()).hexdigest()
        if sound in seen:
            continue
        seen.add(sound)
        for view in range(views):
            key = f"{seed}|recorded|{sound}|{view}".encode()
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
            jobs.append(
                {
                    "y": y,
                    "class": classes[y].key,
                    "file": str(ogg),
                    "lang": lang,
                    "speaker": speaker,
                    "engine": RECORDED,
                    "aug": speech_aug(rng, 1.0),
                }
            )
    return jobs


def recorded_lines(jobs: list[dict], workdir: Path) -> list[dict]:
    """Each recording decoded once, then augmented per row as synthesized speech is."""
    lines, decoded = [], {}
    for i, job in enumerate(jobs):
        if job["file"] not in decoded:
            raw = workdir / "decoded.wav"
            decode = ["sox", "-V1", job["file"], "-r", str(ESPEAK_RATE), "-c", "1", "-b", "16"]
            subprocess.run([*decode, str(raw)], check=True)
            decoded = {job["file"]: read_wav(raw)[0]}
        y, rate = augment_speech(decoded[job["file"]], job["aug"])
        wav = workdir / f"{i:06d}.wav"
        write_wav(wav, y, rate)
        lines.append({"kind": "audio", "path": str(wav)})
    return lines
